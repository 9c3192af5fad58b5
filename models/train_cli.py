"""`fpcodec train` (filled in with the trained predictors)."""

from __future__ import annotations

import argparse


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    return None
