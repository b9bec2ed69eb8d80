"""The int8 model the accelerator runs: per-tensor symmetric activations, per-channel symmetric
weights, int32 biases and fixed-point requantisation, plus its integer reference semantics.

``run_reference`` is the oracle the functional simulator must match bit for bit. All arithmetic
is integer; GEMMs use float64 BLAS, which is exact because every partial sum stays below 2**53
(checked).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lwc.ops.conv import conv_out_dim, sliding_windows

MULT_BITS = 15
"""Requantisation multipliers are normalised to [2**14, 2**15): 15 bits of precision, and an
int32 accumulator times a multiplier stays far inside int64."""


def quant_multiplier(real: float) -> tuple[int, int]:
    """(mult, shift) with mult / 2**shift ~= real, mult in [2**14, 2**15), shift >= 1."""
    if real <= 0 or not math.isfinite(real):
        return 0, 1
    shift = (MULT_BITS - 1) - math.floor(math.log2(real))
    shift = min(max(shift, 1), 62)
    mult = int(round(real * 2.0 ** shift))
    if mult >= 1 << MULT_BITS and shift > 1:
        mult, shift = int(round(real * 2.0 ** (shift - 1))), shift - 1
    return mult, shift


def rshift_round(x: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """Arithmetic right shift with round-half-up; ``shift`` >= 1 (scalar or broadcastable)."""
    s = np.asarray(shift, dtype=np.int64)
    return (x + (np.int64(1) << (s - 1))) >> s


def requant(acc: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int, lo: int,
            hi: int) -> np.ndarray:
    y = rshift_round(acc.astype(np.int64) * np.asarray(mult, np.int64), shift)
    return np.clip(y, lo, hi).astype(np.int8)


@dataclass
class QTensor:
    name: str
    shape: tuple[int, int, int, int]
    """NCHW with N = 1; 2-D tensors [1, F] are [1, F, 1, 1]."""
    scale: float
    storage: str = ""
    """For aliases (reshape/flatten): the tensor whose bytes these are; "" = its own."""

    @property
    def base(self) -> str:
        return self.storage or self.name

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class QConv:
    """conv / gemm (as a 1x1 conv) with bias, per-channel requantisation and a clamp."""

    name: str
    x: str
    y: str
    w: np.ndarray
    """int8 [O, C/g, kh, kw]."""
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    """top, left, bottom, right."""
    dilations: tuple[int, int] = (1, 1)
    group: int = 1
    lo: int = -128
    hi: int = 127
    kind: str = "conv"

    @property
    def is_depthwise(self) -> bool:
        return self.group > 1 and self.w.shape[1] == 1 and self.w.shape[0] == self.group


@dataclass
class QAdd:
    name: str
    a: str
    b: str
    y: str
    ma: int
    mb: int
    shift: int
    lo: int = -128
    hi: int = 127
    kind: str = "add"


@dataclass
class QPool:
    name: str
    x: str
    y: str
    mode: str
    """max, avg (count_include_pad semantics) or gavg."""
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    mult: int = 1
    shift: int = 1
    kind: str = "pool"


@dataclass
class QConcat:
    name: str
    xs: list[str]
    y: str
    mults: list[int]
    shifts: list[int]
    kind: str = "concat"


QLayer = QConv | QAdd | QPool | QConcat


@dataclass
class QModel:
    tensors: dict[str, QTensor]
    layers: list[QLayer]
    input: str
    outputs: list[str]
    float_input: str = ""
    """Name of the float graph input the int8 input quantises."""
    float_outputs: list[str] = field(default_factory=list)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        t = self.tensors[self.input]
        q = np.clip(np.round(np.asarray(x, np.float64) / t.scale), -128, 127).astype(np.int8)
        return q.reshape(t.shape)

    def dequantize(self, name: str, q: np.ndarray) -> np.ndarray:
        return q.astype(np.float32) * np.float32(self.tensors[name].scale)


# ----- integer reference semantics ----------------------------------------------------------

def im2col(x: np.ndarray, kh: int, kw: int, strides: tuple[int, int],
           pads: tuple[int, int, int, int], dil: tuple[int, int]) -> np.ndarray:
    """[C, H, W] int8 -> [OH*OW, C*kh*kw] (column order c, i, j), zero padded."""
    c = x.shape[0]
    xp = np.pad(x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    cols = sliding_windows(xp[None], (kh, kw), strides, dil)[0]  # c, oh, ow, kh, kw
    oh, ow = cols.shape[1:3]
    return cols.transpose(1, 2, 0, 3, 4).reshape(oh * ow, c * kh * kw)


def out_hw(h: int, w: int, kh: int, kw: int, strides: tuple[int, int],
           pads: tuple[int, int, int, int], dil: tuple[int, int]) -> tuple[int, int]:
    return (int(conv_out_dim(h, kh, strides[0], pads[0], pads[2], dil[0])),
            int(conv_out_dim(w, kw, strides[1], pads[1], pads[3], dil[1])))


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer GEMM through float64 BLAS; exact while |sums| < 2**53 (asserted)."""
    assert a.shape[-1] * 128 * 128 < 2 ** 52, "reduction too long for exact float64 GEMM"
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def ref_conv(lyr: QConv, x: np.ndarray) -> np.ndarray:
    o, cg, kh, kw = lyr.w.shape
    c = x.shape[1]
    outs = []
    for g in range(lyr.group):
        xg = x[0, g * cg:(g + 1) * cg]
        a = im2col(xg, kh, kw, lyr.strides, lyr.pads, lyr.dilations)
        og = o // lyr.group
        wg = lyr.w[g * og:(g + 1) * og].reshape(og, -1).T
        outs.append(exact_matmul(a, wg))
    assert c == cg * lyr.group
    acc = np.concatenate(outs, axis=1) + lyr.bias.astype(np.int64)
    y = requant(acc, lyr.mult, lyr.shift, lyr.lo, lyr.hi)  # [M, O]
    oh, ow = out_hw(x.shape[2], x.shape[3], kh, kw, lyr.strides, lyr.pads, lyr.dilations)
    return y.T.reshape(1, o, oh, ow)


def ref_pool(lyr: QPool, x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape[1:]
    if lyr.mode == "gavg":
        s = x[0].astype(np.int64).reshape(c, -1).sum(axis=1)
        return requant(s, lyr.mult, lyr.shift, -128, 127).reshape(1, c, 1, 1)
    kh, kw = lyr.kernel
    pad_val = -128 if lyr.mode == "max" else 0
    p = lyr.pads
    xp = np.pad(x[0], ((0, 0), (p[0], p[2]), (p[1], p[3])), constant_values=pad_val)
    oh, ow = out_hw(h, w, kh, kw, lyr.strides, p, (1, 1))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    win = win[:, ::lyr.strides[0], ::lyr.strides[1]][:, :oh, :ow]
    if lyr.mode == "max":
        return win.max(axis=(3, 4)).astype(np.int8)[None]
    s = win.astype(np.int64).sum(axis=(3, 4))
    return requant(s, lyr.mult, lyr.shift, -128, 127)[None]


def run_reference(qm: QModel, xq: np.ndarray) -> dict[str, np.ndarray]:
    """Execute the int8 model layer by layer; returns every tensor by name."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):  # many mid-sized GEMMs: one thread is faster
        return _run_reference(qm, xq)


def _run_reference(qm: QModel, xq: np.ndarray) -> dict[str, np.ndarray]:
    env: dict[str, np.ndarray] = {qm.input: xq.reshape(qm.tensors[qm.input].shape)}

    def get(name: str) -> np.ndarray:
        t = qm.tensors[name]
        return env[t.base].reshape(t.shape)

    for lyr in qm.layers:
        if isinstance(lyr, QConv):
            env[lyr.y] = ref_conv(lyr, get(lyr.x))
        elif isinstance(lyr, QAdd):
            a, b = get(lyr.a).astype(np.int64), get(lyr.b).astype(np.int64)
            env[lyr.y] = np.clip(rshift_round(a * lyr.ma + b * lyr.mb, lyr.shift),
                                 lyr.lo, lyr.hi).astype(np.int8)
        elif isinstance(lyr, QPool):
            env[lyr.y] = ref_pool(lyr, get(lyr.x))
        else:
            parts = [requant(get(n).astype(np.int64), m, s, -128, 127)
                     for n, m, s in zip(lyr.xs, lyr.mults, lyr.shifts)]
            env[lyr.y] = np.concatenate(parts, axis=1)
    return {name: get(name) for name in qm.tensors if qm.tensors[name].base in env}
