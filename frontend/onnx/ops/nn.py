"""ONNX converters: convolution, pooling, normalisation, matrix products, softmax, reductions and
linear quantisation.

``auto_pad`` is resolved to explicit pads here (it needs static spatial sizes), so the IR only
knows ``pads = [lo..., hi...]``. Extra outputs (MaxPool's Indices, training-mode BatchNorm
statistics) are never produced: the importer refuses a model that reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lwc.frontend.onnx.registry import ImportContext, converter
from lwc.ir.types import DType

if TYPE_CHECKING:
    import onnx

    from lwc.ir import Value

Ins = list["Value | None"]


def _need(ctx: ImportContext, node: onnx.NodeProto, ins: Ins, i: int, what: str) -> Value:
    if i >= len(ins) or (v := ins[i]) is None:
        raise ctx.fail(node, f"needs input {i} ({what})")
    return v


def _opt(ins: Ins, i: int) -> Value | None:
    return ins[i] if i < len(ins) else None


def resolve_pads(ctx: ImportContext, node: onnx.NodeProto, a: dict[str, Any],
                 spatial: Sequence[int | str], kernel: Sequence[int]) -> list[int]:
    """Explicit [lo..., hi...] pads for a conv/pool node from ``pads`` or ``auto_pad``."""
    nsp = len(kernel)
    strides = list(a.get("strides") or [1] * nsp)
    dil = list(a.get("dilations") or [1] * nsp)
    auto = a.get("auto_pad", "NOTSET") or "NOTSET"
    if auto == "NOTSET":
        pads = list(a.get("pads") or [0] * (2 * nsp))
        if len(pads) != 2 * nsp:
            raise ctx.fail(node, f"pads {pads} do not fit {nsp} spatial axes")
        return pads
    if auto == "VALID":
        return [0] * (2 * nsp)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.fail(node, f"auto_pad {auto!r} is not supported")
    lo, hi = [], []
    for i in range(nsp):
        size = spatial[i]
        if not isinstance(size, int):
            raise ctx.fail(node, f"auto_pad {auto} needs a static spatial size, got {size}")
        out = -(-size // strides[i])
        total = max(0, (out - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1 - size)
        small, big = total // 2, total - total // 2
        lo.append(small if auto == "SAME_UPPER" else big)
        hi.append(big if auto == "SAME_UPPER" else small)
    return lo + hi


def _kernel(ctx: ImportContext, node: onnx.NodeProto, a: dict[str, Any],
            w: Value | None) -> list[int]:
    if "kernel_shape" in a:
        return [int(k) for k in a["kernel_shape"]]
    if w is None or not all(isinstance(d, int) for d in w.type.shape[2:]):
        raise ctx.fail(node, "has no kernel_shape and no static weight shape to take it from")
    return [int(d) for d in w.type.shape[2:]]


# ----- convolution ----------------------------------------------------------------------------
@converter("Conv")
def conv(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x, w = _need(ctx, node, ins, 0, "X"), _need(ctx, node, ins, 1, "W")
    a = ctx.attrs(node)
    kernel = _kernel(ctx, node, a, w)
    if list(w.type.shape[2:]) != kernel:
        raise ctx.fail(node, f"kernel_shape {kernel} disagrees with weight {w.type}")
    attrs = {
        "strides": a.get("strides", ()),
        "dilations": a.get("dilations", ()),
        "pads": resolve_pads(ctx, node, a, x.type.shape[2:], kernel),
        "group": a.get("group", 1),
    }
    operands = [x, w] + ([b] if (b := _opt(ins, 2)) is not None else [])
    return [ctx.emit("conv", operands, attrs, node=node)]


@converter("ConvTranspose")
def conv_transpose(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x, w = _need(ctx, node, ins, 0, "X"), _need(ctx, node, ins, 1, "W")
    a = ctx.attrs(node)
    kernel = _kernel(ctx, node, a, w)
    nsp = len(kernel)
    strides = list(a.get("strides") or [1] * nsp)
    dil = list(a.get("dilations") or [1] * nsp)
    opad = list(a.get("output_padding") or [0] * nsp)
    auto = a.get("auto_pad", "NOTSET") or "NOTSET"
    out_shape = a.get("output_shape")
    explicit = out_shape is not None
    if auto in ("SAME_UPPER", "SAME_LOWER") and not explicit:
        out_shape = [_static(ctx, node, d) * s for d, s in zip(x.type.shape[2:], strides)]
    if out_shape is not None:
        out_shape = list(out_shape)[-nsp:]  # some exporters include N and C
        lo, hi = [], []
        for i in range(nsp):
            size = _static(ctx, node, x.type.shape[2 + i])
            total = strides[i] * (size - 1) + opad[i] + dil[i] * (kernel[i] - 1) + 1 - out_shape[i]
            if total < 0 and explicit:
                raise ctx.fail(node, f"output_shape {out_shape} is larger than the input allows")
            total = max(total, 0)  # as onnxruntime: SAME never pads negatively
            small, big = total // 2, total - total // 2
            lo.append(small if auto == "SAME_UPPER" else big)
            hi.append(big if auto == "SAME_UPPER" else small)
        pads = lo + hi
    elif auto == "VALID":
        pads = [0] * (2 * nsp)
    else:
        pads = list(a.get("pads") or [0] * (2 * nsp))
    attrs = {"strides": strides, "dilations": dil, "pads": pads, "group": a.get("group", 1),
             "output_padding": opad}
    operands = [x, w] + ([b] if (b := _opt(ins, 2)) is not None else [])
    return [ctx.emit("conv_transpose", operands, attrs, node=node)]


def _static(ctx: ImportContext, node: onnx.NodeProto, d: int | str) -> int:
    if not isinstance(d, int):
        raise ctx.fail(node, f"needs static spatial sizes to compute its pads, got {d}")
    return d


# ----- normalisation --------------------------------------------------------------------------
@converter("BatchNormalization")
def batch_norm(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    a = ctx.attrs(node)
    if ctx.opset < 7 and a.get("spatial", 1) != 1:
        raise ctx.fail(node, "spatial=0 (per-activation statistics) is not supported")
    if a.get("training_mode", 0):
        raise ctx.fail(node, "training_mode=1 is not supported (inference only)")
    names = ("X", "scale", "B", "mean", "var")
    operands = [_need(ctx, node, ins, i, n) for i, n in enumerate(names)]
    return [ctx.emit("batch_norm", operands, {"epsilon": a.get("epsilon", 1e-5)}, node=node)]


@converter("LRN")
def lrn(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    a = ctx.attrs(node)
    if "size" not in a:
        raise ctx.fail(node, "needs attribute size")
    attrs = {k: a[k] for k in ("size", "alpha", "beta", "bias") if k in a}
    return [ctx.emit("lrn", [_need(ctx, node, ins, 0, "X")], attrs, node=node)]


# ----- pooling --------------------------------------------------------------------------------
def _pool_attrs(ctx: ImportContext, node: onnx.NodeProto, x: Value) -> dict[str, Any]:
    a = ctx.attrs(node)
    if "kernel_shape" not in a:
        raise ctx.fail(node, "needs attribute kernel_shape")
    kernel = [int(k) for k in a["kernel_shape"]]
    return {
        "kernel": kernel,
        "strides": a.get("strides", ()),
        "pads": resolve_pads(ctx, node, a, x.type.shape[2:], kernel),
        "dilations": a.get("dilations", ()),
        "ceil_mode": a.get("ceil_mode", 0),
        "count_include_pad": a.get("count_include_pad", 0),
    }


@converter("MaxPool")
def max_pool(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    # storage_order only affects the Indices output, which is never produced.
    x = _need(ctx, node, ins, 0, "X")
    attrs = _pool_attrs(ctx, node, x)
    del attrs["count_include_pad"]
    return [ctx.emit("max_pool", [x], attrs, node=node)]


@converter("AveragePool")
def avg_pool(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x = _need(ctx, node, ins, 0, "X")
    attrs = _pool_attrs(ctx, node, x)
    if any(d != 1 for d in attrs.pop("dilations")):
        raise ctx.fail(node, "dilated average pooling is not supported")
    return [ctx.emit("avg_pool", [x], attrs, node=node)]


@converter("GlobalAveragePool")
def global_avg_pool(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    return [ctx.emit("global_avg_pool", [_need(ctx, node, ins, 0, "X")], node=node)]


@converter("GlobalMaxPool")
def global_max_pool(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    return [ctx.emit("global_max_pool", [_need(ctx, node, ins, 0, "X")], node=node)]


# ----- matrix products ------------------------------------------------------------------------
@converter("Gemm")
def gemm(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    # Before opset 7, `broadcast` said whether C may broadcast; a C that fits either way is the
    # same computation, and inference rejects one that does not broadcast.
    a = ctx.attrs(node)
    attrs = {"alpha": a.get("alpha", 1.0), "beta": a.get("beta", 1.0),
             "trans_a": a.get("transA", 0), "trans_b": a.get("transB", 0)}
    operands = [_need(ctx, node, ins, 0, "A"), _need(ctx, node, ins, 1, "B")]
    if (c := _opt(ins, 2)) is not None and attrs["beta"] != 0.0:
        operands.append(c)
    return [ctx.emit("gemm", operands, attrs, node=node)]


@converter("MatMul")
def matmul(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    a, b = _need(ctx, node, ins, 0, "A"), _need(ctx, node, ins, 1, "B")
    return [ctx.emit("matmul", [a, b], node=node)]


# ----- softmax --------------------------------------------------------------------------------
def _softmax(op: str, ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x = _need(ctx, node, ins, 0, "input")
    rank = x.type.rank
    if ctx.opset >= 13:
        return [ctx.emit(op, [x], {"axis": ctx.attrs(node).get("axis", -1)}, node=node)]
    # Before opset 13 the input is coerced to 2-D at `axis` and normalised over the second dim.
    axis = ctx.attrs(node).get("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if axis == rank - 1:
        return [ctx.emit(op, [x], {"axis": -1}, node=node)]
    # Coercion to 2-D = normalising jointly over axes axis..rank-1: merge them (leading dims are
    # copied with reshape's 0, so a symbolic batch survives), normalise, and split them again.
    rest = x.type.shape[axis:]
    if not all(isinstance(d, int) for d in rest):
        raise ctx.fail(node, f"opset<13 {node.op_type} over axis {axis} of {x.type} needs static "
                             "dimensions from the axis on")
    merged = ctx.emit("reshape", [x], {"shape": [0] * axis + [int(np.prod(rest))]}, node=node)
    y = ctx.emit(op, [merged], {"axis": -1}, node=node)
    return [ctx.emit("reshape", [y], {"shape": [0] * axis + list(rest)}, node=node)]


@converter("Softmax")
def softmax(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    return _softmax("softmax", ctx, node, ins)


@converter("LogSoftmax")
def log_softmax(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    return _softmax("log_softmax", ctx, node, ins)


# ----- reductions -----------------------------------------------------------------------------
def _reduce(op: str, axes_input_since: int) -> None:
    onnx_name = {"reduce_mean": "ReduceMean", "reduce_sum": "ReduceSum",
                 "reduce_max": "ReduceMax"}[op]

    @converter(onnx_name)
    def convert(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
        x = _need(ctx, node, ins, 0, "data")
        a = ctx.attrs(node)
        if ctx.opset >= axes_input_since:
            axes_v = _opt(ins, 1)
            axes_c = ctx.const(axes_v) if axes_v is not None else np.zeros(0, np.int64)
            if axes_c is None:
                raise ctx.fail(node, "axes must be a constant known at import time")
            axes = [int(v) for v in np.asarray(axes_c).reshape(-1)]
            if not axes and a.get("noop_with_empty_axes", 0):
                return [ctx.emit("identity", [x], node=node)]
        else:
            axes = [int(v) for v in a.get("axes", [])]
        return [ctx.emit(op, [x], {"axes": axes, "keepdims": a.get("keepdims", 1)}, node=node)]

    convert.__name__ = op


_reduce("reduce_mean", 18)
_reduce("reduce_sum", 13)
_reduce("reduce_max", 18)


# ----- linear quantisation --------------------------------------------------------------------
_ONNX_INT8, _ONNX_UINT8 = 3, 2  # TensorProto.INT8 / UINT8


def _scalar_zero_point(ctx: ImportContext, scale: Value, dtype: DType) -> Value:
    shape = tuple(int(d) for d in scale.type.shape)
    return ctx.add_constant(np.zeros(shape, dtype=dtype.numpy), "zero_point")


@converter("QuantizeLinear")
def quantize_linear(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x, scale = _need(ctx, node, ins, 0, "x"), _need(ctx, node, ins, 1, "y_scale")
    a = ctx.attrs(node)
    if a.get("block_size", 0):
        raise ctx.fail(node, "blocked quantisation (block_size) is not supported")
    zp = _opt(ins, 2)
    if zp is None:
        want = {0: DType.U8, _ONNX_UINT8: DType.U8, _ONNX_INT8: DType.I8}.get(
            a.get("output_dtype", 0))
        if want is None:
            raise ctx.fail(node, f"output_dtype {a['output_dtype']} is not int8 or uint8")
        zp = _scalar_zero_point(ctx, scale, want)
    if zp.type.dtype not in (DType.I8, DType.U8):
        raise ctx.fail(node, f"zero point {zp.type} is not int8 or uint8")
    return [ctx.emit("quantize_linear", [x, scale, zp], {"axis": a.get("axis", 1)}, node=node)]


@converter("DequantizeLinear")
def dequantize_linear(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x, scale = _need(ctx, node, ins, 0, "x"), _need(ctx, node, ins, 1, "x_scale")
    a = ctx.attrs(node)
    if a.get("block_size", 0):
        raise ctx.fail(node, "blocked quantisation (block_size) is not supported")
    operands = [x, scale] + ([zp] if (zp := _opt(ins, 2)) is not None else [])
    return [ctx.emit("dequantize_linear", operands, {"axis": a.get("axis", 1)}, node=node)]
