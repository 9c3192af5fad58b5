"""Argument types and help formatting shared by every subcommand.

A value outside its range is a usage error: argparse reports it in one line and
exits 2, before any work starts (and before anything heavy is imported).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer within lo..hi (no upper bound when hi is None)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {span}, not {v}")
        return v

    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float | None = None, open_lo: bool = False) -> Callable[[str], float]:
    """A finite number within lo..hi; open_lo excludes lo itself."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (v > lo if open_lo else v >= lo) or (hi is not None and v > hi) or v != v:
            low = f"> {lo}" if open_lo else f">= {lo}"
            raise argparse.ArgumentTypeError(
                f"must be {low}" + (f" and <= {hi}" if hi is not None else "") + f", not {text}"
            )
        return v

    parse.__name__ = "number"
    return parse


def int_list(lo: int, hi: int) -> Callable[[str], list[int]]:
    """Comma-separated integers, each within lo..hi."""
    one = int_in(lo, hi)

    def parse(text: str) -> list[int]:
        return [one(x.strip()) for x in text.split(",") if x.strip()]

    parse.__name__ = "list"
    return parse


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in epilogs as written and shows every option's default
    (unless its help already names it, or there is nothing to show)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
            and not isinstance(action, argparse._VersionAction)
        ):
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            text += f" (default: {shown})"
        return text


class Parser(argparse.ArgumentParser):
    """One-line usage errors with exit status 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)
