"""Integer networks: one forward pass that trains in float and infers exactly.

Every tensor in these networks holds values in *integer units* of a fixed-point
format: activations are Q5 (real value a / 32, clamped to int8 range), network
inputs Q7 (pixel - 128), LSTM gates Q7 in [0, 128], cell state Q5 in [-512, 511].
A convolution with integer weights q (real w = q / 2^F_w, F_w chosen per layer from
its largest weight) accumulates exact integers and is brought back to Q5 by a
rounding shift: out = floor((acc + 2^(s-1)) / 2^s). Nonlinearities are hard
(ReLU, hard sigmoid, hard tanh): piecewise linear in integer units.

The same module code runs in three modes:

* float   -- no rounding anywhere: the plain float model (training warm-up);
* quant   -- weights and activations rounded with straight-through gradients
             (quantisation-aware training);
* exact   -- `quant` under `torch.no_grad()` inside `exact_inference()`: every
             value is an integer, every product and sum stays below 2^24, so
             float32 arithmetic computes them exactly whatever the summation order,
             thread count or device. That is the path the codec uses.

Why this is exact (Ballé et al., "Integer Networks for Data Compression", 2019,
made concrete): integers below 2^24 are exact in float32; a sum of exactly
representable integers whose partial sums all stay below 2^24 is exact in any
order; scaling by a power of two is exact; floor is exact. The 2^24 bound is not
assumed: `check_bounds` proves it per output channel from the integer weights
(sum |q| * max|input| + |bias| + rounding) when weights are loaded, and refuses
weights that could exceed it. What is excluded: algorithms that do not compute
plain sums of products (Winograd/FFT convolutions) and reduced-precision math
(TF32, bf16 reductions). `exact_inference()` disables cuDNN (whose algorithm
search may pick Winograd or FFT kernels) and sets the highest float32 matmul
precision. On the CPU, oneDNN's convolutions are direct (ideep asks for
`convolution_direct`), i.e. plain sums of products, and much faster than the
im2col + GEMM fallback; `exact_inference(fast=True)` keeps them, and the
predictor verifies that choice bit-for-bit against the GEMM path at every new
frame size before trusting it (LearnedPredictor).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

ACT_BITS = 5  # Q5 activations
ACT_MAX = 127
ACT_MIN = -128
IN_BITS = 7  # network inputs: pixel - 128
GATE_ONE = 128  # Q7 one
CELL_MAX = 511
EXACT_LIMIT = 1 << 24
MAX_WEIGHT_BITS = 14


def ste_floor(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


class Mode:
    FLOAT = "float"
    QUANT = "quant"


def rshift_round(x: torch.Tensor, s: int, quant: bool) -> torch.Tensor:
    """x / 2^s, rounded half up in quant mode (exact for integer x below 2^24)."""
    if s == 0:
        return x
    y = (x + (2.0 ** (s - 1) if quant else 0.0)) * (2.0**-s)
    return ste_floor(y) if quant else y


def weight_bits(w: torch.Tensor) -> int:
    """Fractional bits so that the largest weight maps to at most 127."""
    m = float(w.detach().abs().max())
    if m == 0:
        return MAX_WEIGHT_BITS
    return int(max(0, min(MAX_WEIGHT_BITS, math.floor(math.log2(127.0 / m)))))


class QConv(nn.Module):
    """Conv2d/Conv3d in integer units: input Q(f_in), output Q5 (or Q0 pixel units)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k,
        stride=1,
        f_in: int = ACT_BITS,
        f_out: int = ACT_BITS,
        dims: int = 2,
        zero_init: bool = False,
        out_min: int = ACT_MIN,
        out_max: int = ACT_MAX,
    ):
        super().__init__()
        ks = (k,) * dims if isinstance(k, int) else tuple(k)
        self.dims = dims
        self.stride = stride
        self.padding = tuple(kk // 2 for kk in ks)
        self.weight = nn.Parameter(torch.empty(cout, cin, *ks))
        self.bias = nn.Parameter(torch.zeros(cout))
        if zero_init:
            nn.init.zeros_(self.weight)
        else:
            fan_in = cin * math.prod(ks)
            nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / fan_in) * 2.0 ** (ACT_BITS - f_in))
        self.f_in, self.f_out = f_in, f_out
        self.out_min, self.out_max = out_min, out_max
        # Integer weights frozen for exact inference (set by freeze()).
        self.register_buffer("q_weight", torch.zeros(0), persistent=False)
        self.register_buffer("q_bias", torch.zeros(0), persistent=False)
        self.frozen_bits: int | None = None

    def _conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        fn = F.conv2d if self.dims == 2 else F.conv3d
        return fn(x, w, None, self.stride, self.padding)

    def quantised(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Integer weights q, integer bias (accumulator units) and weight bits."""
        fw = weight_bits(self.weight)
        q = torch.round(self.weight.detach() * 2.0**fw).clamp(-127, 127)
        b = torch.round(self.bias.detach() * 2.0 ** (self.f_in + fw))
        return q, b, fw

    def freeze(self) -> None:
        q, b, fw = self.quantised()
        self.q_weight, self.q_bias, self.frozen_bits = q, b, fw

    def forward(self, x: torch.Tensor, quant: bool) -> torch.Tensor:
        if self.frozen_bits is not None and not torch.is_grad_enabled():
            fw, q, b = self.frozen_bits, self.q_weight, self.q_bias
        elif quant:
            fw = weight_bits(self.weight)
            q = ste_round(self.weight * 2.0**fw).clamp(-127, 127)
            b = ste_round(self.bias * 2.0 ** (self.f_in + fw))
        else:
            fw = weight_bits(self.weight)
            q = self.weight * 2.0**fw
            b = self.bias * 2.0 ** (self.f_in + fw)
        shape = (1, -1) + (1,) * self.dims
        acc = self._conv(x, q) + b.view(shape)
        y = rshift_round(acc, self.f_in + fw - self.f_out, quant)
        return y.clamp(self.out_min, self.out_max)

    def bound(self, in_max: float) -> float:
        """Largest |accumulator| this layer can reach for inputs bounded by in_max."""
        q, b, fw = self.quantised()
        s = self.f_in + fw - self.f_out
        per_out = q.abs().flatten(1).sum(1) * in_max + b.abs() + (2.0 ** (s - 1) if s > 0 else 0)
        return float(per_out.max())


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, min=0)


def hard_sigmoid_q7(a: torch.Tensor) -> torch.Tensor:
    """Q5 pre-activation -> Q7 gate in [0, 128]: clamp(x/4 + 1/2, 0, 1)."""
    return torch.clamp(a + GATE_ONE // 2, 0, GATE_ONE)


def hard_tanh_q7(a: torch.Tensor) -> torch.Tensor:
    """Q5 value -> Q7 in [-128, 128]: clamp(x, -1, 1)."""
    return torch.clamp(a * 4, -GATE_ONE, GATE_ONE)


class QConvLSTMCell(nn.Module):
    """ConvLSTM cell with hard gates, all in integer units (state h Q5, c Q5)."""

    def __init__(self, cin: int, hidden: int, k: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = QConv(cin + hidden, 4 * hidden, k)
        with torch.no_grad():  # forget gate biased open: remember by default
            self.gates.bias[hidden : 2 * hidden].fill_(1.0)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, quant: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.gates(torch.cat([x, h], 1), quant)
        zi, zf, zo, zg = torch.split(z, self.hidden, 1)
        i, f, o = hard_sigmoid_q7(zi), hard_sigmoid_q7(zf), hard_sigmoid_q7(zo)
        g = hard_tanh_q7(zg)
        c = rshift_round(f * c, 7, quant) + rshift_round(i * g, 9, quant)
        c = c.clamp(-CELL_MAX - 1, CELL_MAX)
        h = rshift_round(o * hard_tanh_q7(c), 9, quant).clamp(ACT_MIN, ACT_MAX)
        return h, c


def avg_pool2(x: torch.Tensor, quant: bool) -> torch.Tensor:
    """2x2 mean, rounded: exact (a sum of four integers, then a shift)."""
    s = F.avg_pool2d(x, 2) * 4.0
    return rshift_round(s, 2, quant)


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def qconvs(module: nn.Module) -> Iterator[QConv]:
    for m in module.modules():
        if isinstance(m, QConv):
            yield m


def check_bounds(module: nn.Module, in_max: float = 512.0) -> float:
    """Prove every accumulator stays below 2^24 (raises otherwise); returns the worst.

    in_max bounds any layer input in integer units: activations are clamped to int8,
    cell states to 10 bits, inputs to 8 bits; 512 covers them all.
    """
    worst = 0.0
    for conv in qconvs(module):
        b = conv.bound(in_max)
        worst = max(worst, b)
        if b >= EXACT_LIMIT:
            raise ValueError(
                f"layer bound {b:.0f} reaches 2^24: integer inference would not be exact"
            )
    return worst


@contextlib.contextmanager
def exact_inference(fast: bool = False) -> Iterator[None]:
    """Integer inference: no autograd, full float32 precision, no cuDNN; GEMM-based
    convolutions on the CPU too unless `fast` (oneDNN direct convolution)."""
    prev_prec = torch.get_float32_matmul_precision()
    prev_tf32 = torch.backends.cuda.matmul.allow_tf32
    prev_cudnn_tf32 = torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad(), torch.backends.cudnn.flags(enabled=False), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # oneDNN's TF32 notice on toggling its flags
            with torch.backends.mkldnn.flags(enabled=fast):
                yield
    finally:
        torch.set_float32_matmul_precision(prev_prec)
        torch.backends.cuda.matmul.allow_tf32 = prev_tf32
        torch.backends.cudnn.allow_tf32 = prev_cudnn_tf32
