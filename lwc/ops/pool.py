"""Pooling (1-D, 2-D, 3-D): windowed max and average, and their global forms.

Pads are ``[lo..., hi...]`` as in ONNX. With ``ceil_mode`` the output may gain one more window per
axis, which may hang over the padded input; as in ONNX the last window must start inside the
input or its left padding, and the overhang counts neither as data nor as padding. Pools do no
multiply-accumulates, so ``macs`` is 0 (as in the MobileNet papers' counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import Dim, TensorType
from lwc.ops.conv import WINDOW_ATTRS, conv_out_dim, spatial_attrs
from lwc.ops.registry import Attr, Op, register_op


def pool_out_shape(x: TensorType, attrs: Mapping[str, Any]) -> tuple[Dim, ...]:
    """NC<spatial> output shape of a windowed pool; symbols pass through."""
    kernel = attrs["kernel"]
    nsp = x.rank - 2
    if nsp < 1:
        raise ValueError(f"pool input {x} must have rank >= 3 (N, C, spatial...)")
    if len(kernel) != nsp:
        raise ValueError(f"kernel {list(kernel)} does not fit {nsp} spatial axes of {x}")
    if any(k < 1 for k in kernel):
        raise ValueError(f"kernel {list(kernel)} must be positive")
    strides, dil, pads = spatial_attrs(attrs, nsp)
    spatial = [conv_out_dim(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nsp + i], dil[i],
                            attrs["ceil_mode"]) for i in range(nsp)]
    return (x.shape[0], x.shape[1], *spatial)


def _reduce_windows(x: np.ndarray, attrs: Mapping[str, Any], fill: float | int,
                    out_sp: Sequence[Dim], ufunc: np.ufunc, padded: bool = False) -> np.ndarray:
    """Reduce every window of ``x`` with ``ufunc`` to (N, C, *out): ``x`` is padded by the explicit
    pads (unless already ``padded``) plus the overhang of ceil_mode's last window, then combined
    one kernel tap at a time over strided slices (no windowed copy of the input)."""
    nsp = x.ndim - 2
    strides, dil, pads = spatial_attrs(attrs, nsp)
    kernel = attrs["kernel"]
    out = [int(o) for o in out_sp]
    widths = [(0, 0), (0, 0)]
    for i in range(nsp):
        lo, hi = (0, 0) if padded else (pads[i], pads[nsp + i])
        need = (out[i] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1
        widths.append((lo, hi + max(0, need - (x.shape[2 + i] + lo + hi))))
    xp = np.pad(x, widths, constant_values=fill) if any(w != (0, 0) for w in widths) else x
    acc: np.ndarray | None = None
    for tap in np.ndindex(*kernel):
        sl = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                   for t, d, s, o in zip(tap, dil, strides, out))
        patch = xp[(slice(None), slice(None), *sl)]
        acc = patch.copy() if acc is None else ufunc(acc, patch, out=acc)
    assert acc is not None
    return acc


class _Pool(Op):
    """Shared inference for windowed pools."""

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        return [ins[0].with_shape(pool_out_shape(ins[0], attrs))]


@register_op
class MaxPool(_Pool):
    """Windowed maximum; padding never wins (it is the dtype's lowest finite value)."""

    name = "max_pool"
    attrs = {
        "kernel": Attr("ints"),
        **WINDOW_ATTRS,
        "ceil_mode": Attr("bool", False),
    }

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        # The lowest finite value, as onnxruntime: a window of only padding gives it, not -inf.
        info = np.finfo(x.dtype) if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype)
        fill = info.min
        out_sp = pool_out_shape(TensorType.of(x), attrs)[2:]
        return [_reduce_windows(x, attrs, fill, out_sp, np.maximum)]


@register_op
class AvgPool(_Pool):
    """Windowed mean; ``count_include_pad`` says whether explicit padding counts in the divisor."""

    name = "avg_pool"
    attrs = {
        "kernel": Attr("ints"),
        "strides": Attr("ints", ()),
        "pads": Attr("ints", (), "[lo_0, lo_1, ..., hi_0, hi_1, ...] as in ONNX"),
        "ceil_mode": Attr("bool", False),
        "count_include_pad": Attr("bool", False),
    }

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        nsp = x.ndim - 2
        out_sp = pool_out_shape(TensorType.of(x), attrs)[2:]
        total = _reduce_windows(x.astype(np.float64), attrs, 0, out_sp, np.add)
        # The divisor: window elements that are data (or explicit padding, if counted).
        _, _, pads = spatial_attrs(attrs, nsp)
        ones = np.ones((1, 1, *x.shape[2:]), dtype=np.float64)
        if attrs["count_include_pad"]:
            widths = [(0, 0), (0, 0)] + [(pads[i], pads[nsp + i]) for i in range(nsp)]
            ones = np.pad(ones, widths, constant_values=1.0)
        count = _reduce_windows(ones, attrs, 0, out_sp, np.add, padded=attrs["count_include_pad"])
        return [(total / count).astype(x.dtype)]


class _GlobalPool(Op):
    """Pool over every spatial axis, keeping the rank: NC<spatial> -> NC1..1."""

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x = ins[0]
        if x.rank < 3:
            raise ValueError(f"global pool input {x} must have rank >= 3 (N, C, spatial...)")
        return [x.with_shape((x.shape[0], x.shape[1]) + (1,) * (x.rank - 2))]


@register_op
class GlobalAvgPool(_GlobalPool):
    """Mean over all spatial positions (the classifier head of ResNet and MobileNet)."""

    name = "global_avg_pool"

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        axes = tuple(range(2, x.ndim))
        return [x.mean(axis=axes, keepdims=True, dtype=np.float64).astype(x.dtype)]


@register_op
class GlobalMaxPool(_GlobalPool):
    """Maximum over all spatial positions."""

    name = "global_max_pool"

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]
