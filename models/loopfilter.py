"""`convlstm-loop`: a ConvLSTM in-loop filter for the lossy coding.

The network runs after deblocking, on what the decoder has at that moment: the
reconstructed YCoCg-R planes, the quantiser step, which 4x4 blocks carried
levels or were intra (the rest were copied by motion compensation), and its own
recurrent state from the earlier frames of the group (reset at keyframes). It
returns a correction of each plane in pixel units; the encoder keeps it where it
lowers the perceptual distance against the source (loop_filter.py in the lossy
package signals where), and the corrected frame is both the output and every
later frame's reference, so what it repairs is not paid for again.

Everything runs at half resolution after a space-to-depth of the inputs (full
information, four times the channels): small convolutions at full resolution are
memory-bound on a CPU, and the recurrent state costs a quarter.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
import zstandard
from fpcodec.codec.heap import release_free_memory
from torch import nn

from .intnet import IN_BITS, QConv, QConvLSTMCell, check_bounds, exact_inference, qconvs, relu
from .last import LastFramePredictor

# Input channels, all in Q7 integer units: Y - 128, Co / 2, Cg / 2, the step
# feature, the coded-block map, and the pixel's column and row within its 4x4
# block (convolutions cannot see where the transform's block edges lie otherwise:
# at half resolution a block is two samples wide, in either phase).
N_INPUTS = 7
CORRECTION_MAX = 31  # pixel units: a filter repairs, it does not repaint
ACT_ON = 64  # the coded-block map's value where a block carried levels or was intra


def step_feature(step_y: int) -> int:
    """The Y plane's DC step (1/16 units, as the quantiser tables hold it) as one Q7
    input: an integer square root, so that the fine steps of high qualities stay
    apart; exact integers on every machine."""
    return min(127, math.isqrt(16 * max(0, int(step_y))))


class LoopFilterNet(nn.Module):
    name = "convlstm-loop"
    align = 2
    # unshuffle (1) + four 3x3 convolutions at half resolution (2 each): 9, plus one
    # for the alignment of a tile's start: a tile keeps this much halo.
    reach = 10

    def __init__(self, embed: int = 12, hidden: int = 8, head: int = 12) -> None:
        super().__init__()
        self.embed_ch, self.hidden, self.head_ch = embed, hidden, head
        self.embed = QConv(4 * N_INPUTS, embed, 3, f_in=IN_BITS)
        self.cell = QConvLSTMCell(embed, hidden)
        self.head1 = QConv(embed + hidden, head, 3)
        # four sub-pixels x three planes; zero at first: the untrained filter is off
        self.head2 = QConv(
            head, 12, 3, f_out=0, zero_init=True, out_min=-CORRECTION_MAX, out_max=CORRECTION_MAX
        )

    def config(self) -> dict:
        return {"embed": self.embed_ch, "hidden": self.hidden, "head": self.head_ch}

    def macs_per_pixel(self) -> int:
        c = 9 * (4 * N_INPUTS * self.embed_ch)
        c += 9 * (self.embed_ch + self.hidden) * 4 * self.hidden
        c += 9 * (self.embed_ch + self.hidden) * self.head_ch + 9 * self.head_ch * 12
        return c // 4

    def init_state(self, n: int, h: int, w: int, device: torch.device) -> list[torch.Tensor]:
        z = torch.zeros(n, self.hidden, h // 2, w // 2, device=device)
        return [z, z.clone()]

    def step(
        self, x: torch.Tensor, state: list[torch.Tensor], quant: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (N, 7, H, W) inputs in Q7 units (filter_inputs), H and W even. Returns the correction
        (N, 3, H, W) in pixel units of Y, Co, Cg, and the new state."""
        h, c = state
        e = relu(self.embed(F.pixel_unshuffle(x, 2), quant))
        h, c = self.cell(e, h, c, quant)
        out = self.head2(relu(self.head1(torch.cat([e, h], 1), quant)), quant)
        return F.pixel_shuffle(out, 2), [h, c]


def filter_inputs(
    planes: np.ndarray, step_y: int, act: np.ndarray, rows: tuple[int, int] | None = None
) -> np.ndarray:
    """(3, H, W) YCoCg-R planes, the Y step, the (H/4, W/4) coded-block map ->
    (7, H, W) int8 network inputs; with rows=(y0, y1), those rows only (a band's
    inputs: the whole frame's are 7 bytes a pixel)."""
    _, hp, wp = planes.shape
    y0, y1 = (0, hp) if rows is None else rows
    x = np.empty((N_INPUTS, y1 - y0, wp), np.int8)
    x[0] = np.clip(planes[0, y0:y1] - 128, -128, 127)
    x[1] = np.clip(planes[1, y0:y1] >> 1, -128, 127)
    x[2] = np.clip(planes[2, y0:y1] >> 1, -128, 127)
    x[3] = step_feature(step_y)
    a = act[y0 // 4 : -(-y1 // 4)].astype(np.int8) * ACT_ON
    x[4] = np.repeat(np.repeat(a, 4, 0), 4, 1)[y0 % 4 : y0 % 4 + y1 - y0, :wp]
    x[5] = (np.arange(wp) & 3)[None, :] * 32 - 48
    x[6] = (np.arange(y0, y1) & 3)[:, None] * 32 - 48
    return x


# Float32 values one window may keep alive (about 32 MB): the band height follows
# from the frame width, so memory stays bounded at any frame size. Half the window
# of 2^24 was also faster, one thread, same corrections: 0.93 -> 0.75 s at 1920x1088,
# 1.86 -> 1.55 s at 8192x512 (0.038 -> 0.042 s at 480x272, one window before).
WINDOW_VALUES = 1 << 23
# Pixels of one band of rows, whose inputs and results (about 20 bytes a pixel) are
# held whole-width: a wide frame's bands are lower than its tiles are wide.
BAND_PIXELS = 1 << 21
# Padded pixels up to which the encoder keeps a frame's correction and new state
# (9 bytes a pixel) from weighing them to keeping them; a larger frame runs the
# network again to keep them, in place as the decoder does: twice the network's
# time where the frame keeps the filter, 300 MB less at the size cap.
KEEP_PIXELS = 1 << 22

# Above KEEP_PIXELS the recurrent state is held zstd-compressed between frames, in
# chunks of this many bytes (decompressed one at a time into the tensors: no second
# copy): the frame's coding, the largest phase, does not read it, and a trained
# filter's state is mostly small values (a fifth to a third of its 6 bytes a pixel
# on the corpus's clips). Incompressible, it is held as it was.
PACK_CHUNK = 1 << 23
_PACK = zstandard.ZstdCompressor(level=1)


class LearnedLoopFilter:
    """Exact integer inference of a LoopFilterNet over a whole frame, in bands of
    rows with a halo of the network's reach, so that memory is bounded at any frame
    size and banded output equals whole-frame output bit for bit (every value is an
    exact integer, and zero padding at a band's edge reaches only into its halo).

    The recurrent state is whole-frame at half resolution (h int8, c int16). The
    encoder's step (`correction`) computes the new state into fresh buffers and
    `commit` keeps it: the encoder runs the filter before knowing whether the frame
    will use it, and a frame that does not use it leaves the state as it was (on
    both sides: the decoder then does not run the network at all). The decoder
    knows the frame's map first, so its step (`filter_in_place`) writes the state
    and the planes where they lie.
    """

    def __init__(self, net: LoopFilterNet, band: int | None = None) -> None:
        self.net = net.eval()
        for conv in qconvs(net):
            conv.freeze()
        check_bounds(net, 128.0)
        self.band = band
        # None while the state is all zeros (after a reset, until a frame keeps the
        # filter): at the size cap that is 192 MiB not held while a frame is coded
        self._state: list[torch.Tensor] | None = None
        self._shape: tuple[int, int] | None = None
        self._packed: list[list[bytes]] | None = None  # compressed state ([]: held, _stow)
        self._pending: list[torch.Tensor] | None = None
        self._weighed: np.ndarray | None = None  # the correction `weigh` kept

    def reset(self) -> None:
        self._state = None
        self._packed = None
        self._pending = None
        self._weighed = None

    def _work_per_pixel(self) -> int:
        """Float32 values a window holds per pixel at its peak: the exact (GEMM) path
        unfolds a 3x3 convolution's input, 9 values per input channel and half-res
        sample, beside the layers' outputs."""
        n = self.net
        cins = (4 * N_INPUTS, n.embed_ch + n.hidden, n.head_ch)
        return (9 * max(cins) + 2 * (4 * N_INPUTS + 5 * n.hidden + n.embed_ch + 12)) // 4

    def _tile(self, hp: int, wp: int) -> tuple[int, int]:
        """(rows, columns) of a tile: a window of a tile and its halo holds about
        WINDOW_VALUES floats. Whole-width bands while they are at least four halos
        high, else square tiles: a band of a wide frame would be mostly halo, each
        halo row computed twice."""
        reach = self.net.reach
        if self.band is not None:
            side = max(2, self.band // 2 * 2)
            return side, side
        area = WINDOW_VALUES // self._work_per_pixel()
        rows = (area // max(1, wp) - 2 * reach) // 2 * 2
        if rows >= 8 * reach:
            return rows, wp
        # a band's results wait whole-width for the next band (filter_in_place)
        side = max(2 * reach, (math.isqrt(area) - 2 * reach) // 2 * 2)
        rows = max(2 * reach, min(side, BAND_PIXELS // wp) // 2 * 2)
        cols = max(2 * reach, (area // (rows + 2 * reach) - 2 * reach) // 2 * 2)
        return rows, min(cols, wp)

    def _start(self, hp: int, wp: int) -> None:
        if self._shape != (hp, wp):
            self._state = self._packed = None
            self._shape = (hp, wp)
        self._load()

    def _load(self) -> None:
        """The state's tensors, from their compressed chunks where it was stowed (the
        chunks stay valid until the state changes)."""
        if self._state is not None or not self._packed:
            return
        state = self._zero_state()
        unpack = zstandard.ZstdDecompressor()
        for t, chunks in zip(state, self._packed, strict=True):
            flat = t.view(-1).numpy().view(np.uint8)
            at = 0
            for chunk in chunks:
                raw = unpack.decompress(chunk, max_output_size=PACK_CHUNK)
                flat[at : at + len(raw)] = np.frombuffer(raw, np.uint8)
                at += len(raw)
            if at != flat.size:
                raise RuntimeError("loop filter state: a stowed chunk is short")
        self._state = state

    def _stow(self) -> None:
        """Between frames, a large frame's state is held compressed (PACK_CHUNK). A
        state that hardly compresses is held as it is, and not tried again until it
        changes (an empty list of chunks says so)."""
        if self._state is None or self._shape[0] * self._shape[1] <= KEEP_PIXELS:
            return
        if self._packed is None:
            packed = []
            for t in self._state:
                flat = t.view(-1).numpy().view(np.uint8)
                packed.append(
                    [
                        _PACK.compress(flat[i : i + PACK_CHUNK].tobytes())
                        for i in range(0, flat.size, PACK_CHUNK)
                    ]
                )
            small = (
                sum(len(c) for chunks in packed for c in chunks)
                < 3 * sum(t.numel() * t.element_size() for t in self._state) // 4
            )
            self._packed = packed if small else []
        if self._packed:
            self._state = None

    def _zero_state(self) -> list[torch.Tensor]:
        hp, wp = self._shape
        n = self.net.hidden
        return [
            torch.zeros(1, n, hp // 2, wp // 2, dtype=torch.int8),
            torch.zeros(1, n, hp // 2, wp // 2, dtype=torch.int16),
        ]

    def _bands(self, hp: int, wp: int) -> list[tuple[int, int, int, int]]:
        """(y0, y1, ya, yb): each band's rows and the rows its window reads."""
        rows, halo = self._tile(hp, wp)[0], self.net.reach
        return [
            (y0, min(hp, y0 + rows), max(0, y0 - halo), min(hp, y0 + rows + halo))
            for y0 in range(0, hp, rows)
        ]

    def _band_step(
        self, planes: np.ndarray, step_y: int, act: np.ndarray, band: tuple[int, int, int, int]
    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """One band's int8 correction and new state rows, from copies of its window."""
        y0, y1, ya, yb = band
        _, hp, wp = planes.shape
        cols, halo = self._tile(hp, wp)[1], self.net.reach
        x = filter_inputs(planes, step_y, act, (ya, yb))
        r0, r1 = y0 - ya, y1 - ya
        corr = np.empty((3, y1 - y0, wp), np.int8)
        h_new = torch.empty((1, self.net.hidden, (y1 - y0) // 2, wp // 2), dtype=torch.int8)
        c_new = torch.empty(h_new.shape, dtype=torch.int16)
        for x0 in range(0, wp, cols):
            # columns as rows: zero padding at a window's side reaches only its halo
            x1 = min(wp, x0 + cols)
            xa, xb = max(0, x0 - halo), min(wp, x1 + halo)
            xw = torch.from_numpy(x[:, :, xa:xb])[None].float()
            if self._state is None:
                zeros = torch.zeros(1, self.net.hidden, yb // 2 - ya // 2, xb // 2 - xa // 2)
                sw = [zeros, zeros]
            else:
                sw = [t[:, :, ya // 2 : yb // 2, xa // 2 : xb // 2].float() for t in self._state]
            # the GEMM path: plain sums of products, exact by check_bounds; the direct
            # (oneDNN) path would need LearnedPredictor's per-shape verification first
            with exact_inference(fast=False):
                out, (h, c) = self.net.step(xw, sw, quant=True)
            c0, c1 = x0 - xa, x1 - xa
            corr[:, :, x0:x1] = out[0, :, r0:r1, c0:c1].to(torch.int8).numpy()
            h_new[..., x0 // 2 : x1 // 2] = h[:, :, r0 // 2 : r1 // 2, c0 // 2 : c1 // 2]
            c_new[..., x0 // 2 : x1 // 2] = c[:, :, r0 // 2 : r1 // 2, c0 // 2 : c1 // 2]
        return corr, h_new, c_new

    def correction(self, planes: np.ndarray, step_y: int, act: np.ndarray) -> np.ndarray:
        """(3, H, W) int8 corrections of the planes (H, W even; each within
        CORRECTION_MAX), and the new state kept pending until `commit` (the encoder's
        step: it weighs the correction before it knows whether the frame keeps it)."""
        _, hp, wp = planes.shape
        self._start(hp, wp)
        h_new = torch.empty((1, self.net.hidden, hp // 2, wp // 2), dtype=torch.int8)
        c_new = torch.empty(h_new.shape, dtype=torch.int16)
        out = np.empty((3, hp, wp), np.int8)
        for band in self._bands(hp, wp):
            y0, y1 = band[0], band[1]
            out[:, y0:y1], h_new[:, :, y0 // 2 : y1 // 2], c_new[:, :, y0 // 2 : y1 // 2] = (
                self._band_step(planes, step_y, act, band)
            )
            release_free_memory(hp * wp)  # the band's windows
        self._pending = [h_new, c_new]
        return out

    def weigh(
        self,
        planes: np.ndarray,
        step_y: int,
        act: np.ndarray,
        gains: Callable[[np.ndarray, int, int], None],
    ) -> None:
        """The encoder's first step: gains(corr, y0, y1) sees each band's correction
        of rows y0..y1 before the frame's map is chosen; then `keep` or `discard`.
        The state does not move. A frame of up to KEEP_PIXELS keeps its correction
        and pending state for `keep`; a larger one keeps nothing."""
        _, hp, wp = planes.shape
        self._weighed = self._pending = None
        if hp * wp <= KEEP_PIXELS:
            corr = self.correction(planes, step_y, act)
            self._weighed = corr
            for y0, y1, _, _ in self._bands(hp, wp):
                gains(corr[:, y0:y1], y0, y1)
            return
        self._start(hp, wp)
        for band in self._bands(hp, wp):
            gains(self._band_step(planes, step_y, act, band)[0], band[0], band[1])
            release_free_memory(hp * wp)  # the band's windows

    def keep(
        self,
        planes: np.ndarray,
        step_y: int,
        act: np.ndarray,
        apply: Callable[[np.ndarray, np.ndarray, int, int], None],
    ) -> None:
        """The frame keeps the correction `weigh` saw, on the planes it weighed
        (unchanged since): apply(planes, corr, y0, y1) adds it band by band, and the
        state moves on; the same planes and state as correction, apply, commit."""
        corr, self._weighed = self._weighed, None
        if corr is None:
            self.filter_in_place(planes, step_y, act, apply)
            return
        for y0, y1, _, _ in self._bands(*planes.shape[1:]):
            apply(planes, corr[:, y0:y1], y0, y1)
        self.commit()

    def discard(self) -> None:
        """The frame does not keep the correction: the state stays as it was."""
        self._weighed = self._pending = None
        self._stow()

    def filter_in_place(
        self,
        planes: np.ndarray,
        step_y: int,
        act: np.ndarray,
        apply: Callable[[np.ndarray, np.ndarray, int, int], None],
    ) -> None:
        """The decoder's step, on a frame whose map keeps the correction: the state
        and the planes are written where they lie, band by band, with no frame-sized
        correction or second state (9 bytes a pixel at the size cap). A band's results
        are written once no later band's window reads its rows (the windows read
        copies), so the output is `correction`'s, then `apply` of it, then `commit`.
        apply(planes, corr, y0, y1) adds a band's correction to rows y0..y1."""
        _, hp, wp = planes.shape
        self._start(hp, wp)
        self._pending = None
        if self._state is None:
            self._state = self._zero_state()
        self._packed = None  # the state is written below
        bands = self._bands(hp, wp)
        waiting: list[tuple[tuple[int, int, int, int], tuple]] = []
        for i, band in enumerate(bands):
            waiting.append((band, self._band_step(planes, step_y, act, band)))
            release_free_memory(hp * wp)  # the band's windows
            reads_from = bands[i + 1][2] if i + 1 < len(bands) else hp
            while waiting and waiting[0][0][1] <= reads_from:
                (y0, y1, _, _), (corr, h, c) = waiting.pop(0)
                apply(planes, corr, y0, y1)
                self._state[0][:, :, y0 // 2 : y1 // 2] = h
                self._state[1][:, :, y0 // 2 : y1 // 2] = c
        self._stow()

    def commit(self) -> None:
        """The frame used the correction: its new state becomes the state."""
        if self._pending is not None:
            self._state = self._pending
            self._packed = None
        self._pending = None
        self._stow()


class LoopFilterPredictor(LastFramePredictor):
    """The default predictor: the last frame as the frame prediction (a causal
    network cannot know the motion of the frame it predicts; the transmitted vectors
    do), with the learned stage where it pays, inside the lossy coding loop. Lossless
    codings see the last frame, exactly as with `last`."""

    def __init__(self, net: LoopFilterNet, sha256: bytes, band: int | None = None) -> None:
        super().__init__()
        self.name = net.name
        self.weights_sha256 = sha256
        self.loop_filter = LearnedLoopFilter(net, band)
