"""Channels-last and channel-blocked convolutions, the targets of the ``convert-layout`` pass.

``conv_nhwc`` is ``conv`` with the channel axis last: x [N, *spatial, C], weights
[Cout, *kernel, Cin/group] (OHWI, so a kernel reads Cin contiguously), optional bias [Cout] and
the same fused epilogue (``act``, ``residual`` in NHWC). Mobile CPU kernels (TFLite, XNNPACK)
prefer this layout. The reference kernel transposes to NCHW and reuses conv's kernel, so the two
ops agree exactly. ``conv_nchwc`` is the NCHW[x]c blocked form (see its docstring).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import TensorType
from lwc.ops.conv import Conv, apply_activation, conv_reference
from lwc.ops.registry import Attr, Op, register_op


def to_channels_first(t: TensorType) -> TensorType:
    return t.with_shape((t.shape[0], t.shape[-1], *t.shape[1:-1]))


def to_channels_last(t: TensorType) -> TensorType:
    return t.with_shape((t.shape[0], *t.shape[2:], t.shape[1]))


def weight_to_oihw(w: TensorType) -> TensorType:
    return w.with_shape((w.shape[0], w.shape[-1], *w.shape[1:-1]))


@register_op
class ConvNHWC(Op):
    """Convolution over N<spatial>C input with O<kernel>I weights (channels last)."""

    name = "conv_nhwc"
    num_inputs = (2, 4)
    attrs = dict(Conv.attrs)

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, w = ins[0], ins[1]
        if x.rank < 3 or w.rank != x.rank:
            raise ValueError(f"input {x} and weight {w} must both be rank >= 3 and equal")
        first = [to_channels_first(x), weight_to_oihw(w), *ins[2:]]
        if attrs["residual"]:
            first[-1] = to_channels_first(ins[-1])
        return [to_channels_last(t) for t in Conv().infer(first, attrs)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        nsp = xs[0].ndim - 2
        x = np.moveaxis(xs[0], -1, 1)
        w = np.moveaxis(xs[1], -1, 1)
        residual = xs[-1] if attrs["residual"] else None
        bias = xs[2] if len(xs) > (3 if attrs["residual"] else 2) else None
        y = conv_reference(x, w, bias, attrs)
        if residual is not None:
            y = y + np.moveaxis(residual, -1, 1)
        y = apply_activation(y, attrs["act"], attrs["alpha"], attrs["clip_min"], attrs["clip_max"])
        assert y.ndim == nsp + 2
        return [np.ascontiguousarray(np.moveaxis(y, 1, -1)).astype(xs[0].dtype, copy=False)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        w = ins[1].concrete_shape()
        return outs[0].numel() * int(np.prod(w[1:]))


def unblock(t: TensorType) -> TensorType:
    """[N, C/b, *spatial, b] -> [N, C, *spatial]."""
    c = t.shape[1] * t.shape[-1] if isinstance(t.shape[1], int) else t.shape[1]
    return t.with_shape((t.shape[0], c, *t.shape[2:-1]))


def block(t: TensorType, b: int) -> TensorType:
    """[N, C, *spatial] -> [N, C/b, *spatial, b]."""
    c = t.shape[1]
    if not isinstance(c, int) or c % b:
        raise ValueError(f"{t}: channels do not split into blocks of {b}")
    return t.with_shape((t.shape[0], c // b, *t.shape[2:], b))


def unblock_array(a: np.ndarray) -> np.ndarray:
    n, cb, *sp, b = a.shape
    return np.moveaxis(a, -1, 2).reshape(n, cb * b, *sp)


def block_array(a: np.ndarray, b: int) -> np.ndarray:
    n, c, *sp = a.shape
    return np.ascontiguousarray(np.moveaxis(a.reshape(n, c // b, b, *sp), 2, -1))


@register_op
class ConvNCHWc(Op):
    """Convolution over channel-blocked NC<spatial>c input (x [N, C/b, *spatial, b]) with weights
    blocked on output channels (w [Cout/b, Cin/group, *kernel, b]); the output, bias-free residual
    included, is blocked the same way. Vector CPU kernels (TVM's NCHW[x]c) keep b channels in one
    SIMD register. ``block`` is b."""

    name = "conv_nchwc"
    num_inputs = (2, 4)
    attrs = {**Conv.attrs, "block": Attr("int", 8)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, w, b = ins[0], ins[1], attrs["block"]
        if x.rank < 4 or w.rank != x.rank or x.shape[-1] != b or w.shape[-1] != b:
            raise ValueError(f"input {x} and weight {w} must be blocked by {b} and of equal rank")
        first = [unblock(x), unblock_weight_type(w), *ins[2:]]
        if attrs["residual"]:
            first[-1] = unblock(ins[-1])
        return [block(t, b) for t in Conv().infer(first, attrs)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, w = unblock_array(xs[0]), unblock_weight(xs[1])
        residual = unblock_array(xs[-1]) if attrs["residual"] else None
        bias = xs[2] if len(xs) > (3 if attrs["residual"] else 2) else None
        y = conv_reference(x, w, bias, attrs)
        if residual is not None:
            y = y + residual
        y = apply_activation(y, attrs["act"], attrs["alpha"], attrs["clip_min"], attrs["clip_max"])
        return [block_array(y, attrs["block"]).astype(xs[0].dtype, copy=False)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        w = ins[1].concrete_shape()
        return outs[0].numel() * int(np.prod(w[1:-1]))


def unblock_weight_type(w: TensorType) -> TensorType:
    co = w.shape[0] * w.shape[-1] if isinstance(w.shape[0], int) else w.shape[0]
    return w.with_shape((co, *w.shape[1:-1]))


def unblock_weight(w: np.ndarray) -> np.ndarray:
    """[Cout/b, Cin/g, *k, b] -> [Cout, Cin/g, *k]."""
    return np.moveaxis(w, -1, 1).reshape(w.shape[0] * w.shape[-1], *w.shape[1:-1])


def block_weight(w: np.ndarray, b: int) -> np.ndarray:
    """[Cout, Cin/g, *k] -> [Cout/b, Cin/g, *k, b]."""
    return np.ascontiguousarray(np.moveaxis(w.reshape(w.shape[0] // b, b, *w.shape[1:]), 1, -1))
