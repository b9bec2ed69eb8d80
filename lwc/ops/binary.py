"""Binary and ternary network ops (BNN, XNOR-Net, TBN) with exact integer reference semantics.

- ``binarize``: ``+1`` where ``x >= 0`` else ``-1`` (so sign(0) = +1, unlike ONNX ``Sign``; NaN
  gives -1).
- ``ternarize {threshold}``: ``+1`` where ``x > t``, ``-1`` where ``x < -t``, else 0 (TBN).
- ``xnor_conv(x, w, alpha?)`` / ``xnor_gemm(x, w, alpha?)``: the dot products of the quantised
  input (``binarize`` or ``ternarize``, chosen by ``input``) with ``binarize(w)``, an exact integer
  in ``[-K, K]`` (K = reduction length, checked to stay below 2**24 so float32 holds it exactly),
  optionally times ``alpha[o]`` (one float32 rounding). Padded positions of the conv contribute
  0, as in a float conv of the quantised tensors with zero padding; ±1 bits cannot hold a 0, so
  packed kernels skip (mask out) the taps that fall into padding instead of padding with a value.
  On packed bits a ±1 dot is ``K - 2*popcount(a xor w)``; with a ternary input split into a
  nonzero mask m and sign s it is ``popcount(m) - 2*popcount(m and (s xor w))``.
- ``sign_threshold(x, tau, dir)``: the inference form of BatchNorm + sign in a BNN. Per channel
  (axis 1) ``+1`` where ``x >= tau`` (``dir`` > 0) or ``x <= tau`` (``dir`` < 0), else ``-1``.

Every result is float32 (the accumulators are exact integers in it), so the ops compose with the
float pooling/reshape ops between binary layers; ``lwc.passes.compress.binarize`` builds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import TensorType
from lwc.ops.conv import conv_out_dim, conv_reference, spatial_attrs
from lwc.ops.registry import Attr, Cost, Op, register_op

MAX_EXACT = 1 << 24
"""Largest reduction length whose integer dot products float32 represents exactly."""

INPUT_MODES = ("binary", "ternary")


def binarize(x: np.ndarray) -> np.ndarray:
    """+1 where x >= 0, else -1 (sign(0) = +1), in x's float type."""
    dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    return np.where(x >= 0, 1, -1).astype(dt)


def ternarize(x: np.ndarray, threshold: float) -> np.ndarray:
    """+1 above ``threshold``, -1 below ``-threshold``, 0 in between."""
    dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
    t = np.asarray(threshold, x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)
    return (np.where(x > t, 1, 0) - np.where(x < -t, 1, 0)).astype(dt)


def quantise_input(x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    """The input operand of an xnor op as it enters the dot product (float32 ±1 / 0)."""
    q = binarize(x) if attrs["input"] == "binary" else ternarize(x, attrs["threshold"])
    return q.astype(np.float32)


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a boolean array along its last axis into little-endian uint64 words (bit j of word i
    is element 64*i + j); the tail of the last word is 0."""
    b = np.asarray(bits, bool)
    k = b.shape[-1]
    words = -(-k // 64)
    padded = np.zeros(b.shape[:-1] + (words * 64,), bool)
    padded[..., :k] = b
    by = np.packbits(padded.reshape(b.shape[:-1] + (words, 8, 8)), axis=-1, bitorder="little")
    return by.reshape(b.shape[:-1] + (words, 8)).view("<u8").reshape(b.shape[:-1] + (words,))


def popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per uint64 word."""
    by = np.ascontiguousarray(words, "<u8").view(np.uint8).reshape(words.shape + (8,))
    return np.unpackbits(by, axis=-1).sum(axis=-1, dtype=np.int64)


def packed_dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum_k x[..., k] * w[k] for x in {-1, 0, +1} and w in {-1, +1}, on packed bits:
    with m = (x != 0), s = (x > 0), v = (w > 0): popcount(m) - 2 * popcount(m & (s ^ v)),
    which for a binary x (m all ones) is K - 2 * popcount(s ^ v)."""
    m, s, v = pack_bits(x != 0), pack_bits(x > 0), pack_bits(w > 0)
    return popcount(m).sum(-1) - 2 * popcount(m & (s ^ v)).sum(-1)


def _check_mode(attrs: Mapping[str, Any]) -> None:
    if attrs["input"] not in INPUT_MODES:
        raise ValueError(f"input must be one of {INPUT_MODES}, got {attrs['input']!r}")
    if attrs["threshold"] < 0 or not np.isfinite(attrs["threshold"]):
        raise ValueError(f"threshold must be finite and >= 0, got {attrs['threshold']}")


def _check_alpha(ins: Sequence[TensorType], cout: Any) -> None:
    if len(ins) > 2:
        a = ins[2]
        if not a.dtype.is_float or a.rank != 1 or (isinstance(cout, int) and a.shape[0] != cout):
            raise ValueError(f"alpha {a} must be a float vector [{cout}] (one per output filter)")


def _packed_cost(op: Op, ins: Sequence[TensorType], outs: Sequence[TensorType],
                 attrs: Mapping[str, Any], const_inputs: Sequence[bool]) -> Cost:
    """Bytes moved count the weight at 1 bit per element (how the kernels store it)."""
    params = sum(t.numel() for t, c in zip(ins, const_inputs) if c)
    w = ins[1].numel()
    moved = ins[0].nbytes() + -(-w // 8) + sum(t.nbytes() for t in ins[2:])
    moved += sum(t.nbytes() for t in outs)
    return Cost(op.macs(ins, outs, attrs), params, moved)


def _scale(acc: np.ndarray, xs: Sequence[np.ndarray], axis: int) -> np.ndarray:
    if len(xs) < 3:
        return acc
    shape = [1] * acc.ndim
    shape[axis] = -1
    return acc * xs[2].astype(np.float32).reshape(shape)


@register_op
class Binarize(Op):
    """+1 where x >= 0 else -1 (sign(0) = +1): BNN/XNOR-Net activation binarisation."""

    name = "binarize"
    elementwise = True

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        if not ins[0].dtype.is_float:
            raise ValueError(f"binarize needs a float input, got {ins[0]}")
        return [ins[0]]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [binarize(xs[0])]


@register_op
class Ternarize(Op):
    """+1 where x > threshold, -1 where x < -threshold, else 0 (TBN's ternary activations)."""

    name = "ternarize"
    elementwise = True
    attrs = {"threshold": Attr("float", 0.5, "dead-zone half width, >= 0")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        if not ins[0].dtype.is_float:
            raise ValueError(f"ternarize needs a float input, got {ins[0]}")
        if attrs["threshold"] < 0 or not np.isfinite(attrs["threshold"]):
            raise ValueError(f"threshold must be finite and >= 0, got {attrs['threshold']}")
        return [ins[0]]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [ternarize(xs[0], attrs["threshold"])]


MODE_ATTRS = {
    "input": Attr("str", "binary", "binary: sign(x) with sign(0)=+1; ternary: by threshold"),
    "threshold": Attr("float", 0.5, "ternary dead-zone half width"),
}


@register_op
class XnorConv(Op):
    """2-D conv of binarize/ternarize(x) with binarize(w): exact integer sums (xnor + popcount),
    times alpha[o] when given; padding contributes 0."""

    name = "xnor_conv"
    cost = _packed_cost
    num_inputs = (2, 3)
    attrs = {
        "strides": Attr("ints", ()),
        "pads": Attr("ints", (), "[top, left, bottom, right]; padded taps contribute 0"),
        "dilations": Attr("ints", ()),
        **MODE_ATTRS,
    }

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, w = ins[0], ins[1]
        _check_mode(attrs)
        if x.rank != 4 or w.rank != 4:
            raise ValueError(f"xnor_conv is 2-D: input {x} and weight {w} must be rank 4")
        if not x.dtype.is_float or not w.dtype.is_float:
            raise ValueError(f"xnor_conv needs float operands, got {x} and {w}")
        if isinstance(x.shape[1], int) and isinstance(w.shape[1], int) and x.shape[1] != w.shape[1]:
            raise ValueError(f"weight {w} has {w.shape[1]} input channels, input {x} has "
                             f"{x.shape[1]}")
        k = np.prod([d for d in w.shape[1:] if isinstance(d, int)])
        if k >= MAX_EXACT:
            raise ValueError(f"reduction length {k} of weight {w} is not exact in float32")
        _check_alpha(ins, w.shape[0])
        strides, dil, pads = spatial_attrs(attrs, 2)
        spatial = [conv_out_dim(x.shape[2 + i], int(w.shape[2 + i]), strides[i], pads[i],
                                pads[2 + i], dil[i]) for i in range(2)]
        return [TensorType(x.dtype, (x.shape[0], w.shape[0], *spatial))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        qx = quantise_input(xs[0], attrs)
        sw = binarize(xs[1]).astype(np.float32)
        conv_attrs = {"strides": attrs["strides"], "pads": attrs["pads"],
                      "dilations": attrs["dilations"], "group": 1}
        acc = conv_reference(qx, sw, None, conv_attrs)  # integers < 2**24: exact in float32
        return [_scale(acc, xs, 1).astype(xs[0].dtype, copy=False)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        """Binary multiply-accumulates (each one bit of an xnor/popcount word operation)."""
        return outs[0].numel() * int(np.prod(ins[1].concrete_shape()[1:]))


@register_op
class XnorGemm(Op):
    """y[n, o] = alpha[o] * sum_k q(x[n, k]) * binarize(w[o, k]) (w is [O, K], as trans_b gemm)."""

    name = "xnor_gemm"
    cost = _packed_cost
    num_inputs = (2, 3)
    attrs = dict(MODE_ATTRS)

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, w = ins[0], ins[1]
        _check_mode(attrs)
        if x.rank != 2 or w.rank != 2:
            raise ValueError(f"xnor_gemm needs input [N, K] and weight [O, K], got {x} and {w}")
        if not x.dtype.is_float or not w.dtype.is_float:
            raise ValueError(f"xnor_gemm needs float operands, got {x} and {w}")
        if isinstance(x.shape[1], int) and isinstance(w.shape[1], int) and x.shape[1] != w.shape[1]:
            raise ValueError(f"input {x} and weight {w} disagree on K")
        if isinstance(w.shape[1], int) and w.shape[1] >= MAX_EXACT:
            raise ValueError(f"reduction length {w.shape[1]} is not exact in float32")
        _check_alpha(ins, w.shape[0])
        return [TensorType(x.dtype, (x.shape[0], w.shape[0]))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        qx = quantise_input(xs[0], attrs)
        sw = binarize(xs[1]).astype(np.float32)
        acc = qx @ sw.T
        return [_scale(acc, xs, 1).astype(xs[0].dtype, copy=False)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        return outs[0].numel() * int(ins[1].concrete_shape()[1])


@register_op
class SignThreshold(Op):
    """+1 where x >= tau[c] (dir[c] > 0) or x <= tau[c] (dir[c] < 0), else -1; channel axis 1.

    BatchNorm followed by sign folded for integer inputs (BNN inference)."""

    name = "sign_threshold"
    num_inputs = (3, 3)

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, tau, d = ins
        if x.rank < 2 or not x.dtype.is_float:
            raise ValueError(f"sign_threshold needs a float input [N, C, ...], got {x}")
        c = x.shape[1]
        for name, t in (("tau", tau), ("dir", d)):
            if t.dtype != x.dtype or t.rank != 1 or (isinstance(c, int) and t.shape[0] != c):
                raise ValueError(f"{name} {t} must be a {x.dtype} vector [{c}]")
        return [x]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, tau, d = xs
        shape = (1, -1) + (1,) * (x.ndim - 2)
        tau, d = tau.reshape(shape), d.reshape(shape)
        on = np.where(d > 0, x >= tau, x <= tau)
        return [np.where(on, 1, -1).astype(x.dtype)]


__all__ = ["MAX_EXACT", "binarize", "pack_bits", "packed_dot", "popcount", "quantise_input",
           "ternarize"]
