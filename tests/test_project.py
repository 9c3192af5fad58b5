"""The project's promises about itself: CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sh_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = _sh_blocks(quick)
    assert len(blocks) == 2, "the Quickstart has exactly two commands"
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1] in ci.splitlines()


def test_quickstart_example_is_bundled_with_its_licence():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    first = _sh_blocks(quick)[0]
    example = re.search(r"(examples/\S+\.gif)", first).group(1)
    assert (ROOT / example).is_file()
    assert Path(example).name in (ROOT / "examples" / "LICENSES.md").read_text()
