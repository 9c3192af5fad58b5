"""The codec's view of a trained network: a Predictor running exact integer inference."""

from __future__ import annotations

import numpy as np
import torch

from .framenet import FrameNet, snap_to_neighbours
from .intnet import check_bounds, exact_inference, qconvs
from .predictor import Prediction, Predictor
from .registry import FLOAT_SUFFIX, MEMORY_CAPPED_PIXELS

# Spread (expected |error| in pixels) -> confidence bucket for the entropy coder.
SPREAD_EDGES = (2, 6, 16)


def spread_buckets(spread: np.ndarray) -> np.ndarray:
    out = np.zeros(spread.shape, np.uint8)
    for edge in SPREAD_EDGES:
        out += spread >= edge
    return out


# Float32 values one inference window may keep alive (about 256 MB): with the
# frame's own buffers this keeps a step within the memory bound at any frame size...
WINDOW_VALUES = 1 << 26
# ...less what the recurrent state takes at the predictor's frame cap, twice over: a
# lossy GIF encode whose pixel frames win keeps the state of its lossless twin's
# predictor too (codec/gifchoice.Shadow). Windows and states share this many bytes.
# convlstm-ae (16.5 bytes a pixel of state) peaked at 1,566 MiB there with 256 MB
# windows and at 1,355 with the 76 MB this leaves it (1,325 with 64, 1,433 with 128);
# convlstm (4.5) and the stateless networks keep 256 MB (bench/RESULTS.md, issue 20).
WINDOWS_AND_STATE_BYTES = 340 << 20


def window_values(net: FrameNet) -> int:
    """The float32 values one window of `net` may keep alive (WINDOWS_AND_STATE_BYTES),
    never under 2^22 (16 MB): a network with more than about 20 bytes a pixel of
    state would then go over the budget (convlstm-ae, the largest, has 16.5). Tiled
    inference is exact at any window size: only speed and memory change."""
    state = 2 * net.state_bytes_per_pixel() * MEMORY_CAPPED_PIXELS
    return int(min(WINDOW_VALUES, max(1 << 22, (WINDOWS_AND_STATE_BYTES - state) // 4)))


# Bytes of one band of new recurrent state (two are held: the band being computed
# and the one waiting to be stored). Wide frames get lower bands, not bigger buffers.
BAND_BYTES = 1 << 25


def _to_q7(frame: np.ndarray, align: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H', W') int8 pixel - 128, sides padded (replicated) to
    a multiple of `align`. Kept as int8: a float32 copy of a frame at the size cap
    would take 400 MB; windows are widened to float32 one at a time."""
    h, w = frame.shape[:2]
    ph, pw = (-h) % align, (-w) % align
    if ph or pw:
        frame = np.pad(frame, ((0, ph), (0, pw), (0, 0)), mode="edge")
    # always a copy: ascontiguousarray returns the frame itself where its transpose is
    # already contiguous (a 1x1 frame), and the XOR below would write into the frame
    # the predictor observes (the encoder's reconstruction, a source's frame)
    planes = np.array(frame.transpose(2, 0, 1), order="C")
    planes ^= np.uint8(0x80)  # in place: one frame-sized copy, not two
    return torch.from_numpy(planes.view(np.int8))[None]


def tile_geometry(net: FrameNet, hp: int, wp: int, tile: int | None = None) -> tuple[int, int, int]:
    """(tile height, tile width, halo) for a padded frame of hp x wp.

    The halo is the network's one-step reach plus the snap radius, rounded up to its
    alignment; tiles are at least one halo high (band-delayed state updates in
    `LearnedPredictor.observe` rely on it). A frame that fits one window is one tile.
    """
    a = net.align
    halo = -(-(net.reach + net.snap) // a) * a
    if tile is None:
        area = max(window_values(net) // max(1, net.work_per_pixel()), 1)
        if hp * wp <= area:
            return hp, wp, halo
        side = max(int(area**0.5) - 2 * halo, halo, a)
        tw = wp if wp + 2 * halo <= side * 2 else side
        th = max(area // (tw + 2 * halo) - 2 * halo, halo, a)
        spb = net.state_bytes_per_pixel()
        if spb and th * wp * spb > BAND_BYTES:
            th = max(int(BAND_BYTES / (wp * spb)), halo, a)
            tw = max(min(wp, area // (th + 2 * halo) - 2 * halo), halo, a)
    else:
        th = tw = max(tile, halo, a)
    th, tw = max(a, th // a * a), max(a, tw // a * a)
    return min(th, hp), min(tw, wp), halo


class LearnedPredictor(Predictor):
    """float_path: run the float network instead (the benchmark's reference for how
    much the integer network costs). Its name carries FLOAT_SUFFIX so its files can
    never pass for integer-path files; they decode only where float inference happens
    to repeat exactly (same machine, same threads), which is why the codec never
    chooses it by itself and the decoder refuses it.

    Inference is tiled so that memory stays bounded at any frame size: the network's
    one step runs on windows (a tile plus a halo of its receptive field), and only the
    tiles' centres are kept. The recurrent state stays whole-frame, as compact
    integers, so the receptive field does not grow from frame to frame; integer
    inference makes each window's values exactly the whole frame's (zero padding at a
    window's edge only reaches into the halo), so tiled predictions are bit-identical
    to whole-frame ones. `tile` forces a tile side (tests).
    """

    def __init__(
        self,
        net: FrameNet,
        sha256: bytes,
        device: str | torch.device = "cpu",
        float_path: bool = False,
        tile: int | None = None,
    ) -> None:
        self.float_path = float_path
        self.name = net.name + (FLOAT_SUFFIX if float_path else "")
        self.weights_sha256 = sha256
        self.net = net.eval()
        for conv in qconvs(net):
            conv.freeze()
        check_bounds(net, 128.0)  # proves exactness of every layer, or refuses the weights
        self.device = torch.device(device)
        self.net.to(self.device)
        for conv in qconvs(net):  # frozen integer weights travel with the module
            conv.q_weight = conv.q_weight.to(self.device)
            conv.q_bias = conv.q_bias.to(self.device)
        self.tile = tile
        self._state: list | None = None
        self._last: np.ndarray | None = None
        self._pred: Prediction | None = None
        self._shape = (0, 0)
        self._fast: dict[tuple[int, int], bool] = {}  # window size -> fast path verified

    def reset(self, height: int, width: int) -> None:
        self._state = None
        self._last = None
        self._pred = None
        self._shape = (height, width)

    def _fast_ok(self, hp: int, wp: int) -> bool:
        """Does the fast convolution path give the GEMM path's exact results here?

        Both must be exact by the accumulator bounds; this catches a library that
        would pick a non-direct algorithm (e.g. Winograd) for some shape. Checked
        once per window size on a deterministic probe clip.
        """
        key = (hp, wp)
        if key not in self._fast:
            g = torch.Generator().manual_seed(hp * 65537 + wp)
            probe = [
                torch.randint(-128, 128, (1, 3, hp, wp), generator=g).float().to(self.device)
                for _ in range(3)
            ]
            outs = []
            for fast in (True, False):
                with exact_inference(fast):
                    state = self.net.init_state(1, hp, wp, self.device)
                    res = []
                    for x in probe:
                        d, s, state = self.net.step(x, state, quant=True)
                        res += [d, s]
                    outs.append(res)
            self._fast[key] = all(torch.equal(a, b) for a, b in zip(*outs, strict=True))
        return self._fast[key]

    def _init_state(self, hp: int, wp: int) -> list:
        """The net's initial state, whole-frame, in its compact integer types."""
        shapes = self.net.init_state(1, hp, wp, torch.device("meta"))
        return [
            None
            if t is None
            else torch.zeros(
                t.shape,
                dtype=torch.float32 if self.float_path else self.net.state_dtype(i),
                device=self.device,
            )
            for i, t in enumerate(shapes)
        ]

    def observe(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        self._pred = None  # its buffers go before this frame's are made
        x = _to_q7(frame, self.net.align).to(self.device)
        hp, wp = x.shape[2], x.shape[3]
        if self._state is None:
            self._state = self._init_state(hp, wp)
        state = self._state
        th, tw, halo = tile_geometry(self.net, hp, wp, self.tile)
        rgb = np.empty((h, w, 3), np.uint8)
        buckets = np.empty((h, w), np.uint8)
        # What each element of the new state is: the current frame ("x"), an old
        # element passed on (its index), or computed (None). Same for every window.
        kinds: list | None = None
        pending: tuple[int, int, list] | None = None  # a band's new state, not yet stored
        for y0 in range(0, hp, th):
            y1 = min(y0 + th, hp)
            ya, yb = max(0, y0 - halo), min(hp, y1 + halo)
            band: list = [None] * len(state)
            for x0 in range(0, wp, tw):
                x1 = min(x0 + tw, wp)
                xa, xb = max(0, x0 - halo), min(wp, x1 + halo)
                xw = x[..., ya:yb, xa:xb].float()
                sw = [None if t is None else _crop(t, hp, ya, yb, xa, xb).float() for t in state]
                fast = self.float_path or (
                    self.device.type == "cpu" and self._fast_ok(*xw.shape[2:])
                )
                with exact_inference(fast):
                    delta, spread, new = self.net.step(xw, sw, quant=not self.float_path)
                    if self.float_path:
                        delta, spread = delta.round(), spread.round()
                    pix = xw + 128.0
                    pred = (pix + delta).clamp(0, 255)
                    if self.net.snap:
                        pred = snap_to_neighbours(pred, pix, self.net.snap)
                if kinds is None:
                    kinds = [_kind(t, xw, sw) for t in new]
                    _check_kinds(kinds, state)
                r0, r1 = y0 - ya, min(y1, h) - ya
                c0, c1 = x0 - xa, min(x1, w) - xa
                if r1 > r0 and c1 > c0:
                    tile_rgb = pred[0, :, r0:r1, c0:c1].to(torch.uint8).permute(1, 2, 0)
                    rgb[y0 : min(y1, h), x0 : min(x1, w)] = tile_rgb.cpu().numpy()
                    s = spread[0, 0, r0:r1, c0:c1].to(torch.int16).cpu().numpy()
                    buckets[y0 : min(y1, h), x0 : min(x1, w)] = spread_buckets(s)
                for i, t in enumerate(new):
                    if kinds[i] is None:
                        if band[i] is None:
                            shape = list(state[i].shape)
                            shape[-2] = (y1 - y0) // (hp // shape[-2])
                            band[i] = torch.empty(shape, dtype=state[i].dtype, device=self.device)
                        step = hp // state[i].shape[-2]
                        _store(band[i], t, step, y0 - ya, y1 - ya, x0 - xa, x1 - xa, x0)
            # Windows of the next band still read this band's old state (as far as the
            # halo reaches, never further: tiles are at least a halo high), so a band's
            # new state is stored only once the next band is done.
            if pending is not None:
                _flush(state, hp, *pending)
            pending = (y0, y1, band)
        if pending is not None:
            _flush(state, hp, *pending)
        assert kinds is not None
        self._state = [
            x if k == "x" else (state[i] if k is None else state[k]) for i, k in enumerate(kinds)
        ]
        self._pred = Prediction(rgb, buckets)
        self._last = frame

    def predict(self) -> Prediction:
        if self._pred is None:
            raise RuntimeError("predict() before any frame was observed")
        return self._pred


def _crop(t: torch.Tensor, hp: int, ya: int, yb: int, xa: int, xb: int) -> torch.Tensor:
    s = hp // t.shape[-2]  # the element's resolution: 1, 1/2, 1/4 of the frame
    return t[..., ya // s : yb // s, xa // s : xb // s]


def _kind(t, xw: torch.Tensor, sw: list) -> str | int | None:
    if t is xw:
        return "x"
    for j, old in enumerate(sw):
        if t is old:
            return j
    return None


def _check_kinds(kinds: list, state: list) -> None:
    # Computed elements are updated in place: none may be passed on as well.
    for i, k in enumerate(kinds):
        if k is None and (i >= len(state) or state[i] is None or i in kinds):
            raise RuntimeError(f"state element {i} cannot be updated in place")


def _store(
    band: torch.Tensor, t: torch.Tensor, s: int, r0: int, r1: int, c0: int, c1: int, x0: int
) -> None:
    """Write the tile centre of window value t (window rows r0:r1, columns c0:c1, in
    frame pixels) into the band buffer at frame column x0; s: t's resolution step."""
    centre = t[..., r0 // s : r1 // s, c0 // s : c1 // s]
    band[..., x0 // s : x0 // s + centre.shape[-1]] = centre.to(band.dtype)


def _flush(state: list, hp: int, y0: int, y1: int, band: list) -> None:
    for t, b in zip(state, band, strict=True):
        if b is not None:
            s = hp // t.shape[-2]
            t[..., y0 // s : y1 // s, :] = b
