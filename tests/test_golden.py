"""Golden files of what the encoder writes today (tests/golden/make_golden.py).

Decoding a committed file guards the decoder; re-encoding its committed source and
comparing the bytes guards the encoder, which every other test only checks against
its own decoder (a bitstream change made on both sides would pass them all).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from fpcodec.codec.container import CODINGS

import fpcodec

GOLDEN = Path(__file__).parent / "golden"
sys.path.insert(0, str(GOLDEN))
import make_golden  # noqa: E402

PINNED = sorted(make_golden.RECIPES)


def _meta(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


@pytest.mark.parametrize("name", PINNED)
def test_encoder_still_writes_the_pinned_bytes(name, tmp):
    out = tmp / "a.fpc"
    make_golden.encode_recipe(name, out)
    meta = _meta(name)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert (digest, out.stat().st_size) == (meta["encoder_sha256"], meta["encoder_bytes"]), (
        f"{name}: the encoder's output changed; if that is intended and the syntax is "
        f"unchanged, re-pin with `python tests/golden/make_golden.py --pin {name}` "
        "and say why in the commit; a changed syntax needs a new coding number"
    )


@pytest.mark.parametrize("name", PINNED)
def test_golden_file_holds_the_codings_its_recipe_names(name):
    _, _, codings = make_golden.RECIPES[name]
    meta = _meta(name)
    info = fpcodec.info(GOLDEN / meta["file"])
    assert set(info["codings"]) == set(meta["codings"]) >= codings
    assert info["entropy"] == meta["encode"].get("entropy", "arith")


def test_every_coding_and_backend_the_encoder_writes_has_a_golden_file():
    written = set(CODINGS.values())  # format 1.0 holds only what the encoder writes
    covered: dict[str, set[str]] = {}
    for name in PINNED:
        meta = _meta(name)
        for c in meta["codings"]:
            covered.setdefault(c, set()).add(meta["encode"].get("entropy", "arith"))
    for coding in written:
        # raw stores bytes as they are, whichever backend the header names
        want = {"arith"} if coding == "raw" else {"arith", "zstd"}
        assert want <= covered.get(coding, set()), coding
