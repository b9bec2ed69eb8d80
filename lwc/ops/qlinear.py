"""Quantised (QLinear) ops with exact integer semantics, and the float ``fake_quant`` of QAT.

Operands follow ONNX QLinearConv: every quantised tensor travels with its scale and zero point,
``real = scale * (q - zero_point)``. Activations are per-tensor (u8 or i8, any zero point);
weights may be per output channel (``w_scale``/``w_zp`` of length Cout, or N for gemm).

Semantics (the oracle the LLVM int8 kernels and the QDQ export are checked against)::

    acc[o, p] = bias[o] + sum_{c,k} (x[c, p+k] - x_zp) * (w[o, c, k] - w_zp[o])   # int32
    M[o]      = f32( f32(x_scale * w_scale[o]) / y_scale )                         # float32
    v         = rint_half_even( f32(acc[o, p]) * M[o] )                            # float32
    y[o, p]   = clamp(v, lo - y_zp, hi - y_zp) + y_zp                              # y's dtype

- Padding contributes exactly zero (a padded tap is ``x_zp``, so ``x - x_zp`` = 0).
- The accumulator is int32; the caller keeps ``K * 255 * 127`` (K = Cin/group * kernel size)
  below 2**31 (K < 66,000), so it never wraps. ``f32(acc)`` rounds to nearest-even above 2**24.
- Requantisation uses a float32 multiplier and round-half-to-even (``np.rint``, LLVM
  ``llvm.rint.f32``); every step is one IEEE-754 single-precision operation, so a native kernel
  reproduces it bit for bit. onnxruntime's QLinearConv requantises the same way (float scale,
  nearest-even), so a QDQ export agrees within 1 LSB (ties can round differently).
- The fused activation is a clamp in the integer domain: ``[lo, hi]`` is the output dtype's range
  narrowed by ``act``: relu -> lo = max(lo, y_zp); relu6 -> also hi = min(hi, Q(6)); clip ->
  [Q(clip_min), Q(clip_max)] with ``Q(r) = y_zp + rint(r / y_scale)``. Quantisation is monotone
  and Q(0) = y_zp, so this equals quantising the float activation's output exactly.

``qlinear_add`` requantises ``f32(a - a_zp) * f32(a_scale / y_scale) + f32(b - b_zp) *
f32(b_scale / y_scale)`` the same way (float32 products and sum, then rint, clamp, + y_zp).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import DType, TensorType, broadcast_shapes
from lwc.ops.conv import Conv, conv_reference
from lwc.ops.quant import QUANT_DTYPES
from lwc.ops.registry import Attr, Op, register_op

QACTS = ("", "relu", "relu6", "clip")
"""Activations a quantised op can fuse (they are all clamps)."""

_EPILOGUE = {
    "act": Attr("str", "", "'' | relu | relu6 | clip: a clamp in the integer domain"),
    "clip_min": Attr("float", 0.0),
    "clip_max": Attr("float", 6.0),
}


def requant_multiplier(in_scale: np.ndarray | float, w_scale: np.ndarray | float,
                       out_scale: np.ndarray | float) -> np.ndarray:
    """M = f32(f32(in_scale * w_scale) / out_scale), one per output channel (float32)."""
    prod = np.float32(in_scale) * np.asarray(w_scale, np.float32)
    return (prod / np.float32(out_scale)).astype(np.float32)


def act_bounds(act: str, clip_min: float, clip_max: float, y_scale: float, y_zp: int,
               dtype: np.dtype) -> tuple[int, int]:
    """The integer clamp [lo, hi] of a fused activation (see the module docstring)."""
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)

    def q(r: float) -> int:
        return int(min(max(y_zp + int(np.rint(np.float32(r) / np.float32(y_scale))), lo), hi))

    if act == "relu":
        lo = max(lo, y_zp)
    elif act == "relu6":
        lo, hi = max(lo, y_zp), min(hi, q(6.0))
    elif act == "clip":
        lo, hi = max(lo, q(clip_min)), min(hi, q(clip_max))
    elif act != "":
        raise ValueError(f"quantised ops fuse only {', '.join(a for a in QACTS if a)}, got {act!r}")
    return lo, hi


def requantize(acc: np.ndarray, mult: np.ndarray, y_zp: int, lo: int, hi: int,
               dtype: np.dtype) -> np.ndarray:
    """int32 accumulators -> quantised outputs; ``mult`` broadcasts against ``acc``."""
    v = np.rint(acc.astype(np.float32) * mult.astype(np.float32))
    v = np.clip(v, np.float32(lo - y_zp), np.float32(hi - y_zp))
    return (v.astype(np.int32) + np.int32(y_zp)).astype(dtype)


def _scalar(a: np.ndarray) -> Any:
    return np.asarray(a).reshape(-1)[0]


def _check_scalar_q(t: TensorType, s: TensorType, zp: TensorType, what: str) -> None:
    if t.dtype not in QUANT_DTYPES:
        raise ValueError(f"{what} {t} must be i8 or u8")
    if not s.dtype.is_float or s.numel() != 1:
        raise ValueError(f"{what} scale {s} must be one float")
    if zp.dtype != t.dtype or zp.numel() != 1:
        raise ValueError(f"{what} zero point {zp} must be one {t.dtype}")


def _check_channel_q(w: TensorType, s: TensorType, zp: TensorType, n: Any, what: str) -> None:
    if w.dtype not in QUANT_DTYPES:
        raise ValueError(f"{what} {w} must be i8 or u8")
    if not s.dtype.is_float or s.rank > 1 or s.numel() not in (1, n):
        raise ValueError(f"{what} scale {s} must be one float or one per output channel ({n})")
    if zp.dtype != w.dtype or zp.shape != s.shape:
        raise ValueError(f"{what} zero point {zp} must be {w.dtype} shaped like its scale {s}")


def _check_bias(ins: Sequence[TensorType], n: Any) -> None:
    if len(ins) > 8 and (ins[8].dtype != DType.I32 or ins[8].shape != (n,)):
        raise ValueError(f"bias {ins[8]} must be i32[{n}]")


@register_op
class QLinearConv(Op):
    """Quantised convolution: ``(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp[, bias])``
    with int32 accumulation, float32 requantisation and a fused clamp (module docstring)."""

    name = "qlinear_conv"
    num_inputs = (8, 9)
    attrs = {k: v for k, v in Conv.attrs.items()
             if k in ("strides", "pads", "dilations", "group")} | _EPILOGUE

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, xs, xz, w, ws, wz, ys, yz = ins[:8]
        _check_scalar_q(x, xs, xz, "input")
        _check_channel_q(w, ws, wz, w.shape[0], "weight")
        _check_scalar_q(TensorType(yz.dtype, ()), ys, yz, "output")
        _check_bias(ins, w.shape[0])
        if attrs["act"] not in QACTS:
            raise ValueError(f"act {attrs['act']!r} is not one of {QACTS}")
        fattrs = {**attrs, "act": "", "alpha": 0.0, "residual": False}
        out = Conv().infer([x.with_dtype(DType.F32), w.with_dtype(DType.F32)], fattrs)[0]
        return [TensorType(yz.dtype, out.shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, x_s, x_z, w, w_s, w_z, y_s, y_z = xs[:8]
        acc = qconv_accumulate(x, _scalar(x_z), w, w_z, xs[8] if len(xs) > 8 else None, attrs)
        mult = requant_multiplier(_scalar(x_s), w_s.reshape(-1), _scalar(y_s))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        lo, hi = act_bounds(attrs["act"], attrs["clip_min"], attrs["clip_max"], _scalar(y_s),
                            int(_scalar(y_z)), y_z.dtype)
        return [requantize(acc, mult.reshape(shape), int(_scalar(y_z)), lo, hi, y_z.dtype)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        return outs[0].numel() * int(np.prod(ins[3].concrete_shape()[1:]))


def qconv_accumulate(x: np.ndarray, x_zp: Any, w: np.ndarray, w_zp: np.ndarray,
                     bias: np.ndarray | None, attrs: Mapping[str, Any]) -> np.ndarray:
    """The int32 accumulators of a quantised conv (exact: float64 holds every partial sum)."""
    wz = np.asarray(w_zp, np.float64).reshape((-1,) + (1,) * (w.ndim - 1))
    xf = x.astype(np.float64) - float(x_zp)
    wf = w.astype(np.float64) - wz
    acc = conv_reference(xf, wf, None, {**attrs, "dilations": attrs.get("dilations", ())})
    acc = acc.astype(np.int64)
    if bias is not None:
        acc += bias.astype(np.int64).reshape((1, -1) + (1,) * (x.ndim - 2))
    return acc.astype(np.int32)


@register_op
class QLinearGemm(Op):
    """Quantised fully connected layer: ``y = requant(A' @ B' + bias)`` with operands
    ``(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp[, bias])``; B' = B^T if ``trans_b``;
    ``b_scale``/``b_zp`` are per tensor or per output column N."""

    name = "qlinear_gemm"
    num_inputs = (8, 9)
    attrs = {"trans_b": Attr("bool", False)} | _EPILOGUE

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        a, as_, az, b, bs, bz, ys, yz = ins[:8]
        if a.rank != 2 or b.rank != 2:
            raise ValueError(f"qlinear_gemm operands {a} and {b} must be rank 2")
        k2, n = b.shape[::-1] if attrs["trans_b"] else b.shape
        if a.shape[1] != k2 and not isinstance(a.shape[1], str):
            raise ValueError(f"qlinear_gemm inner dimensions differ: {a} and B' [{k2},{n}]")
        _check_scalar_q(a, as_, az, "input")
        _check_channel_q(b, bs, bz, n, "weight")
        _check_scalar_q(TensorType(yz.dtype, ()), ys, yz, "output")
        _check_bias(ins, n)
        if attrs["act"] not in QACTS:
            raise ValueError(f"act {attrs['act']!r} is not one of {QACTS}")
        return [TensorType(yz.dtype, (a.shape[0], n))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        a, a_s, a_z, b, b_s, b_z, y_s, y_z = xs[:8]
        bt = b.T if attrs["trans_b"] else b  # [K, N]
        af = a.astype(np.float64) - float(_scalar(a_z))
        bf = bt.astype(np.float64) - np.asarray(b_z, np.float64).reshape(1, -1)
        acc = (af @ bf).astype(np.int64)
        if len(xs) > 8:
            acc += xs[8].astype(np.int64).reshape(1, -1)
        mult = requant_multiplier(_scalar(a_s), b_s.reshape(-1), _scalar(y_s))
        lo, hi = act_bounds(attrs["act"], attrs["clip_min"], attrs["clip_max"], _scalar(y_s),
                            int(_scalar(y_z)), y_z.dtype)
        return [requantize(acc.astype(np.int32), mult.reshape(1, -1), int(_scalar(y_z)), lo, hi,
                           y_z.dtype)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        return outs[0].numel() * ins[0].concrete_shape()[1]


@register_op
class QLinearAdd(Op):
    """Quantised broadcasting add ``(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)``:
    a residual join of two int8 branches (requantised as in the module docstring)."""

    name = "qlinear_add"
    num_inputs = (8, 8)
    attrs = dict(_EPILOGUE)

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        a, as_, az, b, bs, bz, ys, yz = ins
        _check_scalar_q(a, as_, az, "input a")
        _check_scalar_q(b, bs, bz, "input b")
        _check_scalar_q(TensorType(yz.dtype, ()), ys, yz, "output")
        if attrs["act"] not in QACTS:
            raise ValueError(f"act {attrs['act']!r} is not one of {QACTS}")
        return [TensorType(yz.dtype, broadcast_shapes(a.shape, b.shape))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        a, a_s, a_z, b, b_s, b_z, y_s, y_z = xs
        fa = np.float32(np.float32(_scalar(a_s)) / np.float32(_scalar(y_s)))
        fb = np.float32(np.float32(_scalar(b_s)) / np.float32(_scalar(y_s)))
        da = (a.astype(np.int32) - np.int32(_scalar(a_z))).astype(np.float32) * fa
        db = (b.astype(np.int32) - np.int32(_scalar(b_z))).astype(np.float32) * fb
        zp = int(_scalar(y_z))
        lo, hi = act_bounds(attrs["act"], attrs["clip_min"], attrs["clip_max"], _scalar(y_s), zp,
                            y_z.dtype)
        v = np.clip(np.rint(da + db), np.float32(lo - zp), np.float32(hi - zp))
        return [(v.astype(np.int32) + np.int32(zp)).astype(y_z.dtype)]


@register_op
class FakeQuant(Op):
    """float -> float ``dequantize(quantize(x))`` per tensor, for quantisation-aware training:
    ``(clip(rint(x / scale) + zero_point, qmin, qmax) - zero_point) * scale`` with the range of
    ``dtype`` (u8: 0..255, i8: -128..127). Its gradient is the clipped straight-through
    estimator (lwc/train/fake_quant.py)."""

    name = "fake_quant"
    elementwise = True
    attrs = {"scale": Attr("float"), "zero_point": Attr("int", 0), "dtype": Attr("str", "u8")}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        if not ins[0].dtype.is_float:
            raise ValueError(f"fake_quant needs a float input, got {ins[0]}")
        if attrs["dtype"] not in ("u8", "i8") or not attrs["scale"] > 0:
            raise ValueError(f"fake_quant needs dtype u8|i8 and scale > 0, got {dict(attrs)}")
        info = np.iinfo(DType(attrs["dtype"]).numpy)
        if not info.min <= attrs["zero_point"] <= info.max:
            raise ValueError(f"zero point {attrs['zero_point']} outside {attrs['dtype']}")
        return [ins[0]]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        info = np.iinfo(DType(attrs["dtype"]).numpy)
        s, z = np.float32(attrs["scale"]), attrs["zero_point"]
        q = np.clip(np.rint(x.astype(np.float32) / s) + z, info.min, info.max)
        return [((q - z) * s).astype(x.dtype)]
