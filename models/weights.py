"""Versioned weight files, named and checked by their content hash.

A weight file is `torch.save` of a plain dict (loaded with `weights_only=True`):
the architecture name and constructor config, the float state dict (for training
and resuming) and the integer weights the codec runs (authoritative for
decoding). It is named `<arch>-<first 16 hex of its SHA-256>.pt`, with a model
card `<same>.json` beside it. Loading recomputes the hash; a file whose name
promises another hash is refused, and a decoder looks weights up by the full
hash recorded in the .fpc header, so it only ever runs the exact network the
encoder ran. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from importlib import resources
from pathlib import Path

import torch
from fpcodec.codec.errors import FpcError, PredictorUnavailable

from .framenet import FrameNet
from .intnet import qconvs
from .learned import LearnedPredictor
from .zoo import ARCHITECTURES, build, check_config

FORMAT = "fpcodec-weights-1"
_NAME = re.compile(r"^(?P<arch>[a-z0-9-]+)-(?P<hash>[0-9a-f]{16})\.pt$")


def shipped_dir() -> Path:
    return Path(str(resources.files("fpcodec.models") / "weights"))


def search_dirs() -> list[Path]:
    dirs = [shipped_dir()]
    for d in os.environ.get("FPCODEC_WEIGHTS", "").split(os.pathsep):
        if d:
            dirs.append(Path(d))
    return dirs


def _default_files() -> dict[str, str]:
    f = shipped_dir() / "DEFAULTS.json"
    if not f.exists():
        return {}
    return json.loads(f.read_text())


def serialise(net: FrameNet, extra: dict | None = None) -> bytes:
    ints = {}
    for name, conv in net.named_modules():
        if conv in set(qconvs(net)):
            q, b, fw = conv.quantised()
            ints[name] = {"q": q.to(torch.int16), "b": b.to(torch.int64), "bits": fw}
    payload = {
        "format": FORMAT,
        "arch": net.name,
        "config": net.config(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "int": ints,
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save_weights(
    net: FrameNet, directory: str | Path, card: dict, extra: dict | None = None
) -> Path:
    """Write `<arch>-<hash16>.pt` and its model card; returns the weight path."""
    data = serialise(net, extra)
    digest = hashlib.sha256(data).hexdigest()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{net.name}-{digest[:16]}.pt"
    tmp = path.with_suffix(".pt.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    card = {**card, "arch": net.name, "config": net.config(), "sha256": digest, "file": path.name}
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def read_weights(path: str | Path) -> tuple[dict, bytes]:
    """Load a weight file, verifying its hash against its name. Returns (payload, sha256)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PredictorUnavailable(f"cannot read weights {path}: {e.strerror or e}") from None
    digest = hashlib.sha256(data).digest()
    m = _NAME.match(path.name)
    if m and m.group("hash") != digest.hex()[:16]:
        raise PredictorUnavailable(
            f"weights {path.name} do not match the hash in their name "
            f"(file is {digest.hex()[:16]}): damaged or modified, refusing them"
        )
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise PredictorUnavailable(f"{path.name} is not an fpcodec weight file ({e})") from None
    if (
        not isinstance(payload, dict)
        or payload.get("format") != FORMAT
        or payload.get("arch") not in ARCHITECTURES
    ):
        raise PredictorUnavailable(f"{path.name} is not an fpcodec weight file")
    return payload, digest


def net_from_payload(payload: dict) -> FrameNet:
    config = payload.get("config") or {}
    try:  # sizes come from the file: bound them before building (and allocating)
        if not isinstance(config, dict):
            raise FpcError(f"config is {type(config).__name__}, not a mapping")
        check_config(payload["arch"], config)
    except FpcError as e:
        raise PredictorUnavailable(f"not a usable fpcodec weight file: {e}") from None
    net = build(payload["arch"], config)
    net.load_state_dict(payload["state_dict"])
    # The stored integer weights are what the codec runs: check the float weights
    # still reproduce them (they would not if the file were tampered with inside).
    convs = dict(net.named_modules())
    for name, ints in payload["int"].items():
        q, b, fw = convs[name].quantised()
        if (
            fw != ints["bits"]
            or not torch.equal(q.to(torch.int16), ints["q"])
            or not torch.equal(b.to(torch.int64), ints["b"])
        ):
            raise PredictorUnavailable(
                f"weights for {payload['arch']}: integer and float weights disagree"
            )
    return net


def load_net(path: str | Path) -> tuple[FrameNet, bytes]:
    payload, digest = read_weights(path)
    return net_from_payload(payload), digest


def load_predictor(
    name: str, weights: str | Path | None = None, float_path: bool = False
) -> LearnedPredictor:
    """The predictor `name` with explicit weights, else its shipped default."""
    if weights is None:
        default = _default_files().get(name)
        if default is None:
            raise PredictorUnavailable(
                f"no trained weights for predictor {name!r} are installed; "
                f"train some with `fpcodec train --model {name}` and pass --weights"
            )
        weights = shipped_dir() / default
    net, digest = load_net(weights)
    if net.name != name:
        raise PredictorUnavailable(
            f"{Path(weights).name} holds a {net.name!r} network, not {name!r}"
        )
    return LearnedPredictor(net, digest, float_path=float_path)


def find_predictor(
    name: str, sha256: bytes, weights: str | Path | None = None, float_path: bool = False
) -> LearnedPredictor:
    """The predictor with exactly these weights (by hash), or a refusal naming them."""
    candidates: list[Path] = []
    if weights is not None:
        candidates.append(Path(weights))
    prefix = f"{name}-{sha256.hex()[:16]}.pt"
    candidates += [d / prefix for d in search_dirs()]
    for c in candidates:
        if c.exists():
            net, digest = load_net(c)
            if digest == sha256 and net.name == name:
                return LearnedPredictor(net, digest, float_path=float_path)
    raise PredictorUnavailable(
        f"file needs predictor {name!r} with weights {sha256.hex()[:16]}..., "
        "which are not installed "
        f"(looked in the package and $FPCODEC_WEIGHTS; pass --weights FILE)"
    )
