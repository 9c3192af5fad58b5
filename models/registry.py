"""Predictors by name, and the lookup the decoder does from a file's header.

Trained predictors are identified by name *and* the SHA-256 of their weight file:
the decoder must run exactly the network the encoder ran, so a file asking for
weights that are not installed is refused by name rather than decoded wrongly.
Weight files are found among the weights shipped in the package, then in the
directories listed in $FPCODEC_WEIGHTS (os.pathsep-separated), then in an explicit
path given by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fpcodec.codec.errors import PredictorUnavailable

from .last import LastFramePredictor
from .predictor import Predictor

# The defaults, lossy and otherwise. The learned in-loop stage (convlstm-loop) ships
# and is selectable, but it does not earn its place: on the held-out clips it codes
# no smaller than `last` at equal distance; source-fitted adaptive filters would gain
# about 1.2% (in-loop restoration), 2.6% (refining the motion-compensated prediction)
# and 1% (a per-unit context of the levels) on the held-out clips, and a network
# trained for the refinement realises 0.2% of the bytes (bench/results/
# filter-headroom, mc-refine, context; bench/RESULTS.md). The causal frame
# predictors (convlstm and the other catz models) do not code smaller than the last
# frame either (bench/RESULTS.md). A stage that wins becomes DEFAULT_PREDICTOR;
# lossless coding has its own default, since a stage of the lossy loop changes
# nothing there but the decoder's start-up (torch).
DEFAULT_PREDICTOR = "last"
DEFAULT_LOSSLESS_PREDICTOR = "last"


def describe_defaults() -> str:
    """The defaults in words, for --help."""
    if DEFAULT_PREDICTOR == DEFAULT_LOSSLESS_PREDICTOR:
        return DEFAULT_PREDICTOR
    return f"{DEFAULT_PREDICTOR} with --quality, {DEFAULT_LOSSLESS_PREDICTOR} otherwise"


def default_predictor(quality: int) -> str:
    """The predictor `fpcodec encode` uses when none is named."""
    return DEFAULT_PREDICTOR if quality else DEFAULT_LOSSLESS_PREDICTOR


# Suffix naming the float reference path of a trained predictor (benchmark only).
FLOAT_SUFFIX = "+float"

# Untrained predictors: constructed from nothing.
_PLAIN: dict[str, Callable[[], Predictor]] = {"last": LastFramePredictor}


# The trained architectures' names, spelled out so that listing them (the CLI's
# choices, its help) does not import torch; tests/test_cli.py checks it against
# zoo.ARCHITECTURES.
TRAINED_NAMES = ("convlstm", "convlstm-ae", "cnn2d", "hybrid3d", "convlstm-loop")


def trained_names() -> tuple[str, ...]:
    return TRAINED_NAMES


# The trained frame predictors, which have a float reference path (NAME+float); the
# in-loop filter has none (its float network's corrections are never its output).
FLOAT_PATH_NAMES = ("convlstm", "convlstm-ae", "cnn2d", "hybrid3d")


# The catz frame predictors carry a whole-frame recurrent state (up to 16.5 bytes a
# pixel) beside the coder's frame buffers: whole processes at the format's 2^25-pixel
# cap took 1.6-2.3 GiB (bench/RESULTS.md, "Memory at the size cap"), over issue 20's
# 1.5 GiB bound. Within this cap, which 4K UHD fits, they stay inside it, so an encoder
# refuses larger frames with them and a decoder refuses such a file unless its caller
# lifts the cap (a resource limit, as dav1d's --sizelimit: the file is not malformed).
# The learned loop filter and `last` keep the format's own cap (their state is banded
# or stowed, and measured within the bound at 2^25 pixels).
MEMORY_CAPPED_PIXELS = 1 << 23


def max_frame_pixels(name: str) -> int | None:
    """The largest frame, in pixels, that predictor `name` codes within the memory
    bound; None where the format's own cap is the only one."""
    base, _ = _split_float(name)
    return MEMORY_CAPPED_PIXELS if base in FLOAT_PATH_NAMES else None


def check_frame_size(
    name: str, width: int, height: int, exc: type[Exception], hint: str = ""
) -> None:
    """Refuse a width x height frame for predictor `name` above its memory cap, in
    one line (before anything frame-sized is allocated or a weight file is read)."""
    cap = max_frame_pixels(name)
    if cap is not None and width * height > cap:
        raise exc(
            f"predictor {name!r} codes frames of at most {cap} pixels within its memory "
            f"bound; {width}x{height} is {width * height}{hint}"
        )


def available_predictors() -> tuple[str, ...]:
    return (*_PLAIN, *trained_names())


def _split_float(name: str) -> tuple[str, bool]:
    """`convlstm+float` names the float reference path of `convlstm` (benchmark only)."""
    if not name.endswith(FLOAT_SUFFIX):  # the common case must not import torch
        return name, False
    if name[: -len(FLOAT_SUFFIX)] in FLOAT_PATH_NAMES:
        return name[: -len(FLOAT_SUFFIX)], True
    return name, False


def create_predictor(name: str, weights: str | Path | None = None) -> Predictor:
    """A predictor for encoding: `name` with its shipped weights (or `weights`).

    `NAME+float` gives the float path of a trained predictor, which the benchmark
    compares with the integer path; its files are not portable across machines.
    """
    name, float_path = _split_float(name)
    if name in _PLAIN:
        if weights is not None:
            raise PredictorUnavailable(f"predictor {name!r} takes no weights")
        return _PLAIN[name]()
    if name not in trained_names():
        raise PredictorUnavailable(
            f"unknown predictor {name!r} (available: {', '.join(available_predictors())})"
        )
    from .weights import load_predictor

    return load_predictor(name, weights, float_path)


def predictor_for_stream(
    name: str, sha256: bytes, weights: str | Path | None = None, float_path: bool = False
) -> Predictor:
    """The predictor a file was encoded with, or a clear refusal naming it.

    A file naming a float reference path (`NAME+float`) is refused unless the caller
    asks for it (`float_path`, the benchmark measuring that path): float inference is
    not exact, so such a file decodes only where it happens to repeat bit-for-bit.
    """
    name, is_float = _split_float(name)
    if is_float and not float_path:
        raise PredictorUnavailable(
            f"file needs the float reference path of {name!r} ({name}{FLOAT_SUFFIX}), "
            "which is benchmark-only and not portable; refusing to decode it"
        )
    float_path = is_float
    if name in _PLAIN:
        if any(sha256):
            raise PredictorUnavailable(
                f"file names predictor {name!r} with weights; corrupt header?"
            )
        return _PLAIN[name]()
    if name not in trained_names():
        raise PredictorUnavailable(
            f"file needs predictor {name!r} ({sha256.hex()[:16]}), which this fpcodec does not have"
        )
    from .weights import find_predictor

    return find_predictor(name, sha256, weights, float_path)
