"""`fpcodec bench` (filled in with the benchmark)."""

from __future__ import annotations

import argparse


def add_bench_parser(sub: argparse._SubParsersAction) -> None:
    return None
