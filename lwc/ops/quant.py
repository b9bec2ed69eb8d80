"""Linear (affine) quantisation at graph level: ONNX QuantizeLinear and DequantizeLinear.

``q = saturate(round_half_to_even(x / scale) + zero_point)`` and ``x = (q - zero_point) * scale``,
per tensor (scalar or one-element scale) or per channel along ``axis``. The integer type comes from
the zero point (int8 or uint8). No multiply-accumulates (``macs`` 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import DType, TensorType
from lwc.ops.reduce import norm_axis
from lwc.ops.registry import Attr, Op, register_op

QUANT_DTYPES = (DType.I8, DType.U8)


def check_qparams(x: TensorType, scale: TensorType, zp: TensorType | None, axis: int) -> None:
    """Scale/zero point must be scalars (per tensor) or vectors as long as ``x.shape[axis]``."""
    if scale.rank > 1 or (zp is not None and zp.rank > 1):
        raise ValueError(f"scale {scale} and zero point {zp} must be scalars or 1-D")
    if zp is not None and zp.shape != scale.shape:
        raise ValueError(f"zero point {zp} must have the shape of scale {scale}")
    if scale.rank == 1 and scale.shape[0] != 1:
        n = x.shape[norm_axis(axis, x.rank)]
        if isinstance(n, int) and isinstance(scale.shape[0], int) and n != scale.shape[0]:
            raise ValueError(f"per-axis scale {scale} does not fit axis {axis} of {x}")


def _along(p: np.ndarray, x_ndim: int, axis: int) -> np.ndarray:
    """Reshape a per-axis vector so it broadcasts along ``axis`` of an ``x_ndim``-d tensor."""
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    shape = [1] * x_ndim
    shape[axis % x_ndim] = -1
    return p.reshape(shape)


@register_op
class QuantizeLinear(Op):
    """float -> int8/uint8 (the zero point's dtype), rounding half to even and saturating."""

    name = "quantize_linear"
    num_inputs = (3, 3)
    attrs = {"axis": Attr("int", 1)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, scale, zp = ins
        if not x.dtype.is_float or not scale.dtype.is_float:
            raise ValueError(f"quantize_linear needs float input and scale, got {x} and {scale}")
        if zp.dtype not in QUANT_DTYPES:
            raise ValueError(f"zero point {zp} must be i8 or u8")
        check_qparams(x, scale, zp, attrs["axis"])
        return [TensorType(zp.dtype, x.shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, scale, zp = xs
        axis = attrs["axis"]
        s = _along(scale, x.ndim, axis).astype(np.float32)
        z = _along(zp, x.ndim, axis).astype(np.float64)
        q = np.rint(x.astype(np.float32) / s).astype(np.float64) + z  # rint: half to even
        info = np.iinfo(zp.dtype)
        return [np.clip(q, info.min, info.max).astype(zp.dtype)]


@register_op
class DequantizeLinear(Op):
    """int -> float (the scale's dtype): (q - zero_point) * scale."""

    name = "dequantize_linear"
    num_inputs = (2, 3)
    attrs = {"axis": Attr("int", 1)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, scale = ins[0], ins[1]
        zp = ins[2] if len(ins) > 2 else None
        if not x.dtype.is_int or not scale.dtype.is_float:
            raise ValueError(f"dequantize_linear needs integer input and float scale, got {x} "
                             f"and {scale}")
        if zp is not None and zp.dtype != x.dtype:
            raise ValueError(f"zero point {zp} must have the dtype of input {x}")
        check_qparams(x, scale, zp, attrs["axis"])
        return [TensorType(scale.dtype, x.shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, scale = xs[0], xs[1]
        axis = attrs["axis"]
        z = _along(xs[2], x.ndim, axis).astype(np.int64) if len(xs) > 2 else np.int64(0)
        s = _along(scale, x.ndim, axis)
        return [((x.astype(np.int64) - z).astype(scale.dtype) * s).astype(scale.dtype)]
