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
import stat
import warnings
from importlib import resources
from pathlib import Path

import torch
from fpcodec.codec.errors import FpcError, PredictorUnavailable

from .framenet import FrameNet
from .intnet import qconvs
from .learned import LearnedPredictor
from .loopfilter import LoopFilterNet, LoopFilterPredictor
from .zoo import NETWORKS, build, check_config

FORMAT = "fpcodec-weights-1"
_NAME = re.compile(r"^(?P<arch>[a-z0-9-]+)-(?P<hash>[0-9a-f]{16})\.pt$")
# Larger than any network the zoo builds within check_config's bounds (the largest,
# convlstm-ae with every size at 256, serialises to 61 MB): a weight file is read
# whole before its hash can be checked, so its size is checked first.
MAX_WEIGHT_BYTES = 1 << 27


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


def _read_capped(path: Path) -> bytes:
    """The file's bytes, refusing anything but a regular file within MAX_WEIGHT_BYTES
    before reading (a device such as /dev/zero, a FIFO or a huge sparse file would
    otherwise be read without bound)."""
    try:
        # Non-blocking open: a FIFO without a writer must not hang before fstat.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise PredictorUnavailable(f"cannot read weights {path}: {e.strerror or e}") from None
    with open(fd, "rb", closefd=True) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PredictorUnavailable(f"weights {path} are not a regular file")
        if st.st_size > MAX_WEIGHT_BYTES:
            raise PredictorUnavailable(
                f"weights {path} are {st.st_size:,} bytes, more than any fpcodec network "
                f"takes ({MAX_WEIGHT_BYTES:,}); refusing to read them"
            )
        os.set_blocking(fd, True)
        try:
            data = f.read(MAX_WEIGHT_BYTES + 1)
        except OSError as e:
            raise PredictorUnavailable(f"cannot read weights {path}: {e.strerror or e}") from None
    if len(data) > MAX_WEIGHT_BYTES:  # grew while being read
        raise PredictorUnavailable(f"weights {path} exceed {MAX_WEIGHT_BYTES:,} bytes")
    return data


def read_weights(path: str | Path) -> tuple[dict, bytes]:
    """Load a weight file, verifying its hash against its name. Returns (payload, sha256)."""
    path = Path(path)
    data = _read_capped(path)
    digest = hashlib.sha256(data).digest()
    m = _NAME.match(path.name)
    if m and m.group("hash") != digest.hex()[:16]:
        raise PredictorUnavailable(
            f"weights {path.name} do not match the hash in their name "
            f"(file is {digest.hex()[:16]}): damaged or modified, refusing them"
        )
    if not data:
        raise PredictorUnavailable(f"{path.name} is empty, not an fpcodec weight file")
    try:
        with warnings.catch_warnings():  # its warnings about odd files are more lines
            warnings.simplefilter("ignore")
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        # torch's message runs to several lines and advises weights_only=False, which
        # would run arbitrary code from the file: name the problem in one line instead.
        why = "not a torch file" if not data.startswith(b"PK") else "refused by the safe loader"
        raise PredictorUnavailable(
            f"{path.name} is not an fpcodec weight file ({why}: {type(e).__name__})"
        ) from None
    if (
        not isinstance(payload, dict)
        or payload.get("format") != FORMAT
        or payload.get("arch") not in NETWORKS
    ):
        raise PredictorUnavailable(f"{path.name} is not an fpcodec weight file")
    return payload, digest


def _bad(payload: dict, what: str) -> PredictorUnavailable:
    return PredictorUnavailable(f"not a usable fpcodec weight file ({payload['arch']}): {what}")


def net_from_payload(payload: dict) -> FrameNet:
    config = payload.get("config") or {}
    try:  # sizes come from the file: bound them before building (and allocating)
        if not isinstance(config, dict):
            raise FpcError(f"config is {type(config).__name__}, not a mapping")
        check_config(payload["arch"], config)
    except FpcError as e:
        raise PredictorUnavailable(f"not a usable fpcodec weight file: {e}") from None
    net = build(payload["arch"], config)
    # Every check below names the problem in one line: torch's own messages span
    # several, and a missing key would otherwise surface as a bare KeyError.
    sd = payload.get("state_dict")
    if not isinstance(sd, dict):
        raise _bad(payload, "no state dict")
    want = net.state_dict()
    missing = sorted(set(want) - set(sd))
    extra = sorted(set(sd) - set(want))
    if missing or extra:
        which = f"{len(missing)} tensors missing" if missing else f"{len(extra)} unknown tensors"
        raise _bad(
            payload,
            f"state dict does not fit the network ({which}, e.g. {(missing or extra)[0]!r})",
        )
    for k, t in sd.items():
        if not isinstance(t, torch.Tensor) or t.shape != want[k].shape:
            raise _bad(payload, f"tensor {k!r} has the wrong shape or type")
    try:
        net.load_state_dict(sd)
    except (RuntimeError, TypeError, ValueError) as e:
        raise _bad(payload, f"state dict refused ({type(e).__name__})") from None
    # The stored integer weights are what the codec runs: check the float weights
    # still reproduce them (they would not if the file were tampered with inside).
    qset = set(qconvs(net))
    convs = {name: m for name, m in net.named_modules() if m in qset}
    ints_all = payload.get("int")
    if not isinstance(ints_all, dict) or set(ints_all) != set(convs):
        raise _bad(payload, "integer weights missing or not those of the network")
    for name, ints in ints_all.items():
        q, b, fw = convs[name].quantised()
        if not (
            isinstance(ints, dict)
            and isinstance(ints.get("q"), torch.Tensor)
            and isinstance(ints.get("b"), torch.Tensor)
            and fw == ints.get("bits")
            and torch.equal(q.to(torch.int16), ints["q"])
            and torch.equal(b.to(torch.int64), ints["b"])
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
) -> LearnedPredictor | LoopFilterPredictor:
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
    return _predictor(net, digest, float_path)


def _predictor(
    net: FrameNet | LoopFilterNet, digest: bytes, float_path: bool
) -> LearnedPredictor | LoopFilterPredictor:
    if isinstance(net, LoopFilterNet):
        if float_path:
            raise PredictorUnavailable(f"{net.name} has no float reference path")
        return LoopFilterPredictor(net, digest)
    return LearnedPredictor(net, digest, float_path=float_path)


def find_predictor(
    name: str, sha256: bytes, weights: str | Path | None = None, float_path: bool = False
) -> LearnedPredictor | LoopFilterPredictor:
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
                return _predictor(net, digest, float_path)
    raise PredictorUnavailable(
        f"file needs predictor {name!r} with weights {sha256.hex()[:16]}..., "
        "which are not installed "
        f"(looked in the package and $FPCODEC_WEIGHTS; pass --weights FILE)"
    )
