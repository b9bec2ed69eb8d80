"""ONNX export: every IR op as standard ONNX, or in the ``ai.lwc`` custom domain if ONNX lacks it.

Fused epilogues are unfolded exactly (conv{act=relu, residual} -> Conv, Add, Relu), shape-carrying
attributes become int64 constant inputs as opset 13+ wants them, and symbolic dims become
``dim_param``. Ops with no exact ONNX form are written as ``ai.lwc`` nodes (version 1, documented
in docs/onnx-custom-domain.md); onnxruntime cannot run those, and the exporter logs a warning and
lists them in the model's ``lwc.custom_ops`` metadata (or refuses with ``allow_custom=False``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lwc.errors import ModelFormatError, UnsupportedOpError
from lwc.frontend.onnx import export_binary
from lwc.ir.core import Graph, Node
from lwc.ir.types import DType, TensorType
from lwc.ops.registry import get_op

log = logging.getLogger(__name__)

CUSTOM_DOMAIN = "ai.lwc"
CUSTOM_VERSION = 1
MIN_OPSET = 13

ONNX_DTYPE = {
    DType.F64: TensorProto.DOUBLE, DType.F32: TensorProto.FLOAT, DType.F16: TensorProto.FLOAT16,
    DType.I64: TensorProto.INT64, DType.I32: TensorProto.INT32, DType.I16: TensorProto.INT16,
    DType.I8: TensorProto.INT8, DType.U8: TensorProto.UINT8, DType.BOOL: TensorProto.BOOL,
}

SIMPLE = {
    "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "max": "Max",
    "min": "Min", "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "neg": "Neg",
    "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "reciprocal": "Reciprocal",
    "erf": "Erf", "softplus": "Softplus", "softsign": "Softsign", "floor": "Floor",
    "ceil": "Ceil", "sign": "Sign", "not": "Not", "and": "And", "or": "Or", "equal": "Equal",
    "less": "Less", "greater": "Greater", "greater_equal": "GreaterOrEqual",
    "less_equal": "LessOrEqual", "where": "Where", "prelu": "PRelu",
    "identity": "Identity", "dropout": "Identity", "matmul": "MatMul",
    "global_avg_pool": "GlobalAveragePool", "global_max_pool": "GlobalMaxPool",
}
"""IR ops that are one ONNX op with the same operands and no attributes."""

RENAMED_ATTRS: dict[str, tuple[str, dict[str, str]]] = {
    "leaky_relu": ("LeakyRelu", {"alpha": "alpha"}),
    "hard_sigmoid": ("HardSigmoid", {"alpha": "alpha", "beta": "beta"}),
    "elu": ("Elu", {"alpha": "alpha"}),
    "selu": ("Selu", {"alpha": "alpha", "gamma": "gamma"}),
    "shrink": ("Shrink", {"lambd": "lambd", "bias": "bias"}),
    "batch_norm": ("BatchNormalization", {"epsilon": "epsilon"}),
    "lrn": ("LRN", {"size": "size", "alpha": "alpha", "beta": "beta", "bias": "bias"}),
    "softmax": ("Softmax", {"axis": "axis"}),
    "log_softmax": ("LogSoftmax", {"axis": "axis"}),
    "concat": ("Concat", {"axis": "axis"}),
    "flatten": ("Flatten", {"axis": "axis"}),
    "gather": ("Gather", {"axis": "axis"}),
    "transpose": ("Transpose", {"perm": "perm"}),
    "depth_to_space": ("DepthToSpace", {"blocksize": "blocksize", "mode": "mode"}),
    "quantize_linear": ("QuantizeLinear", {"axis": "axis"}),
    "dequantize_linear": ("DequantizeLinear", {"axis": "axis"}),
    "max_pool": ("MaxPool", {"kernel": "kernel_shape", "strides": "strides", "pads": "pads",
                             "dilations": "dilations", "ceil_mode": "ceil_mode"}),
    "avg_pool": ("AveragePool", {"kernel": "kernel_shape", "strides": "strides", "pads": "pads",
                                 "ceil_mode": "ceil_mode",
                                 "count_include_pad": "count_include_pad"}),
    "conv_transpose": ("ConvTranspose", {"strides": "strides", "pads": "pads",
                                         "dilations": "dilations", "group": "group",
                                         "output_padding": "output_padding"}),
}
"""IR ops that are one ONNX op with the same operands; attributes renamed (empty lists omitted)."""

SHAPE_INPUTS = {"reshape": ("Reshape", "shape"), "expand": ("Expand", "shape"),
                "tile": ("Tile", "repeats"), "unsqueeze": ("Unsqueeze", "axes"),
                "squeeze": ("Squeeze", "axes")}
"""IR ops whose one ints attribute is ONNX's second (int64 tensor) input; empty means absent."""

REDUCE = {"reduce_mean": "ReduceMean", "reduce_sum": "ReduceSum", "reduce_max": "ReduceMax"}


class _Emitter:
    """Accumulates ONNX nodes and initializers with graph-unique names."""

    def __init__(self, graph: Graph, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.names: set[str] = {v.name for v in graph.values()}
        self.custom: list[str] = []

    def fresh(self, hint: str) -> str:
        name, i = hint, 0
        while name in self.names:
            i += 1
            name = f"{hint}.{i}"
        self.names.add(name)
        return name

    def const(self, data: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(data), name))
        return name

    def ints(self, values: Sequence[int], hint: str) -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def emit(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], label: str,
             domain: str = "", **attrs: Any) -> None:
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs),
                                           name=self.fresh(f"{label}/{op_type}"),
                                           domain=domain or None, **attrs))


Handler = Callable[[_Emitter, Node, dict[str, Any], list[str], list[str]], None]


def _onnx_attr(value: Any) -> Any:
    """An IR attribute value as helper.make_node wants it; None (omit) for empty lists."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, tuple):
        return list(value) if value else None
    return value


def _epilogue(em: _Emitter, node: Node, a: dict[str, Any], y: str, out: str,
              residual: str | None, leaky_alpha: float) -> None:
    """The fused ``residual`` add and ``act`` of conv/gemm, as separate exact ONNX ops."""
    act = a["act"]
    if residual is not None:
        summed = out if not act else em.fresh(f"{out}.residual")
        em.emit("Add", [y, residual], [summed], node.label)
        y = summed
    if not act:
        return
    dtype = node.output.type.dtype.numpy
    if act == "relu":
        em.emit("Relu", [y], [out], node.label)
    elif act in ("relu6", "clip"):
        lo, hi = (0.0, 6.0) if act == "relu6" else (a["clip_min"], a["clip_max"])
        em.emit("Clip", [y, em.const(np.asarray(lo, dtype), f"{out}.min"),
                         em.const(np.asarray(hi, dtype), f"{out}.max")], [out], node.label)
    elif act == "leaky_relu":
        em.emit("LeakyRelu", [y], [out], node.label, alpha=leaky_alpha)
    elif act == "sigmoid":
        em.emit("Sigmoid", [y], [out], node.label)
    elif act == "hard_swish":
        _hard_swish(em, y, out, node.label)
    else:
        raise UnsupportedOpError(f"node {node.label} ({node.op}): fused act {act!r} "
                                 "has no ONNX form")


def _hard_swish(em: _Emitter, x: str, out: str, label: str) -> None:
    if em.opset >= 14:
        em.emit("HardSwish", [x], [out], label)
        return
    # opset 13: x * hard_sigmoid(x; 1/6, 1/2), which is how ONNX defines HardSwish
    gate = em.fresh(f"{out}.gate")
    em.emit("HardSigmoid", [x], [gate], label, alpha=1.0 / 6.0, beta=0.5)
    em.emit("Mul", [x, gate], [out], label)


def _conv(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    residual = ins.pop() if a["residual"] else None
    fused = residual is not None or a["act"]
    y = em.fresh(f"{outs[0]}.conv") if fused else outs[0]
    kernel = node.inputs[1].type.shape[2:]
    em.emit("Conv", ins, [y], node.label, kernel_shape=list(kernel),
            strides=_onnx_attr(a["strides"]), pads=_onnx_attr(a["pads"]),
            dilations=_onnx_attr(a["dilations"]), group=a["group"])
    _epilogue(em, node, a, y, outs[0], residual, a["alpha"])


def _gemm(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    residual = ins.pop() if a["residual"] else None
    fused = residual is not None or a["act"]
    y = em.fresh(f"{outs[0]}.gemm") if fused else outs[0]
    em.emit("Gemm", ins, [y], node.label, alpha=a["alpha"], beta=a["beta"],
            transA=int(a["trans_a"]), transB=int(a["trans_b"]))
    _epilogue(em, node, a, y, outs[0], residual, a["alpha_act"])


def _clip(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    dtype = node.inputs[0].type.dtype.numpy
    bounds = []
    for key in ("min", "max"):
        v = a[key]
        finite = np.isfinite(v)
        if finite and np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            v = min(max(v, info.min), info.max)
        bounds.append(em.const(np.asarray(v, dtype), f"{outs[0]}.{key}") if finite else "")
    while bounds and bounds[-1] == "":
        bounds.pop()
    em.emit("Clip", [ins[0], *bounds], outs, node.label)


def _hard_swish_node(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
                     outs: list[str]) -> None:
    _hard_swish(em, ins[0], outs[0], node.label)


def _split(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    em.emit("Split", [ins[0], em.ints(a["sizes"], f"{node.label}.split")], outs, node.label,
            axis=a["axis"])


def _slice(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    out = outs[0]
    args = [ins[0], em.ints(a["starts"], f"{out}.starts"), em.ints(a["ends"], f"{out}.ends")]
    if a["axes"] or a["steps"]:
        axes = a["axes"] or tuple(range(len(a["starts"])))
        args.append(em.ints(axes, f"{outs[0]}.axes"))
    if a["steps"]:
        args.append(em.ints(a["steps"], f"{outs[0]}.steps"))
    em.emit("Slice", args, outs, node.label)


def _pad(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    dtype = node.inputs[0].type.dtype.numpy
    args = [ins[0], em.ints(a["pads"], f"{outs[0]}.pads")]
    if a["mode"] == "constant":
        args.append(em.const(np.asarray(a["value"]).astype(dtype), f"{outs[0]}.value"))
    em.emit("Pad", args, outs, node.label, mode=a["mode"])


def _cast(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    em.emit("Cast", ins, outs, node.label, to=ONNX_DTYPE[DType(a["to"])])


def _reduce(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    op_type = REDUCE[node.op]
    axes_as_input = op_type == "ReduceSum" or em.opset >= 18
    args = list(ins)
    attrs: dict[str, Any] = {"keepdims": int(a["keepdims"])}
    if a["axes"] and axes_as_input:
        args.append(em.ints(a["axes"], f"{outs[0]}.axes"))
    elif a["axes"]:
        attrs["axes"] = list(a["axes"])
    em.emit(op_type, args, outs, node.label, **attrs)


def _channel_shuffle(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
                     outs: list[str]) -> None:
    """Reshape (N, g, C/g, rest) -> Transpose(0, 2, 1, 3) -> Reshape back: exact, as torch does."""
    t = node.inputs[0].type
    g, c = a["groups"], int(t.shape[1])
    grouped, swapped = em.fresh(f"{outs[0]}.grouped"), em.fresh(f"{outs[0]}.swapped")
    em.emit("Reshape", [ins[0], em.ints([0, g, c // g, -1], f"{outs[0]}.shape1")], [grouped],
            node.label)
    em.emit("Transpose", [grouped], [swapped], node.label, perm=[0, 2, 1, 3])
    rest = t.shape[2:]
    if sum(isinstance(d, str) for d in rest) <= 1:
        dims = [d if isinstance(d, int) else -1 for d in rest]
        back = em.ints([0, c, *dims], f"{outs[0]}.shape2")
    else:  # several symbolic spatial dims: take the shape from the input itself
        back = em.fresh(f"{outs[0]}.shape2")
        em.emit("Shape", [ins[0]], [back], node.label)
    em.emit("Reshape", [swapped, back], outs, node.label)


def _custom(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str], outs: list[str]) -> None:
    """An op ONNX cannot express exactly: ``ai.lwc.<op>`` with all attributes, typed as declared."""
    specs = get_op(node.op).attrs
    kinds = {"int": onnx.AttributeProto.INT, "bool": onnx.AttributeProto.INT,
             "float": onnx.AttributeProto.FLOAT, "str": onnx.AttributeProto.STRING,
             "ints": onnx.AttributeProto.INTS, "floats": onnx.AttributeProto.FLOATS}
    attrs = [helper.make_attribute(k, int(v) if isinstance(v, bool) else
                                   (list(v) if isinstance(v, tuple) else v),
                                   attr_type=kinds[specs[k].kind]) for k, v in a.items()]
    proto = helper.make_node(node.op, ins, outs, name=em.fresh(f"{node.label}/{node.op}"),
                             domain=CUSTOM_DOMAIN)
    proto.attribute.extend(attrs)
    em.nodes.append(proto)
    em.custom.append(node.op)


def _scalar_input(em: _Emitter, node: Node, i: int, name: str) -> str:
    """A per-tensor scale/zero point as an ONNX scalar (QDQ ops read a 1-element 1-D tensor
    as per-axis)."""
    v = node.inputs[i]
    if v.data is not None and v.data.ndim > 0:
        return em.const(v.data.reshape(()), f"{name}.scalar")
    return name


def _dq(em: _Emitter, node: Node, ins: list[str], first: int, label: str, axis: int = 1) -> str:
    """DequantizeLinear of the quantised operand at ``first`` (its scale, zero point follow)."""
    out = em.fresh(f"{ins[first]}.dq")
    if node.inputs[first + 1].type.numel() == 1:
        args = [ins[first], _scalar_input(em, node, first + 1, ins[first + 1]),
                _scalar_input(em, node, first + 2, ins[first + 2])]
        em.emit("DequantizeLinear", args, [out], label)
    else:
        em.emit("DequantizeLinear", ins[first:first + 3], [out], label, axis=axis)
    return out


def _q_epilogue(em: _Emitter, node: Node, a: dict[str, Any], y: str, ins: list[str],
                outs: list[str], scale_at: int = 6) -> None:
    """Fused clamp (as the float activation) then QuantizeLinear to the output's scale/zp."""
    if a["act"] == "relu":
        act_out = em.fresh(f"{outs[0]}.act")
        em.emit("Relu", [y], [act_out], node.label)
        y = act_out
    elif a["act"]:
        lo, hi = (0.0, 6.0) if a["act"] == "relu6" else (a["clip_min"], a["clip_max"])
        act_out = em.fresh(f"{outs[0]}.act")
        em.emit("Clip", [y, em.const(np.asarray(lo, np.float32), f"{outs[0]}.min"),
                         em.const(np.asarray(hi, np.float32), f"{outs[0]}.max")], [act_out],
                node.label)
        y = act_out
    em.emit("QuantizeLinear", [y, _scalar_input(em, node, scale_at, ins[scale_at]),
                               _scalar_input(em, node, scale_at + 1, ins[scale_at + 1])],
            outs, node.label)


def _qdq_bias(em: _Emitter, node: Node, ins: list[str], n_out: int) -> list[str]:
    """The int32 bias dequantised at scale x_scale * w_scale (zero point 0), as QDQ wants."""
    if len(ins) < 9:
        return []
    xs, ws = node.inputs[1].data, node.inputs[4].data
    if xs is None or ws is None:
        raise UnsupportedOpError(f"node {node.label} ({node.op}): QDQ export needs constant "
                                 "scales")
    scale = (np.float32(xs.reshape(-1)[0]) * ws.astype(np.float32).reshape(-1))
    scale = np.broadcast_to(scale, (n_out,)).astype(np.float32)
    out = em.fresh(f"{ins[8]}.dq")
    em.emit("DequantizeLinear", [ins[8], em.const(scale, f"{ins[8]}.scale"),
                                 em.const(np.zeros(n_out, np.int32), f"{ins[8]}.zp")],
            [out], node.label, axis=0)
    return [out]


def _qlinear_conv(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
                  outs: list[str]) -> None:
    """QDQ form: DQ(x), DQ(w, axis 0), DQ(bias) -> Conv -> clamp -> Q (onnxruntime fuses it
    back into QLinearConv)."""
    cout = int(node.inputs[3].type.shape[0])
    x, w = _dq(em, node, ins, 0, node.label), _dq(em, node, ins, 3, node.label, axis=0)
    y = em.fresh(f"{outs[0]}.conv")
    em.emit("Conv", [x, w, *_qdq_bias(em, node, ins, cout)], [y], node.label,
            kernel_shape=list(node.inputs[3].type.shape[2:]), strides=_onnx_attr(a["strides"]),
            pads=_onnx_attr(a["pads"]), dilations=_onnx_attr(a["dilations"]), group=a["group"])
    _q_epilogue(em, node, a, y, ins, outs)


def _qlinear_gemm(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
                  outs: list[str]) -> None:
    """QDQ form: DQ(a), DQ(b, per output column), DQ(bias) -> Gemm -> clamp -> Q."""
    n = int(node.inputs[3].type.shape[0 if a["trans_b"] else 1])
    x = _dq(em, node, ins, 0, node.label)
    w = _dq(em, node, ins, 3, node.label, axis=0 if a["trans_b"] else 1)
    y = em.fresh(f"{outs[0]}.gemm")
    em.emit("Gemm", [x, w, *_qdq_bias(em, node, ins, n)], [y], node.label,
            transB=int(a["trans_b"]))
    _q_epilogue(em, node, a, y, ins, outs)


def _qlinear_add(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
                 outs: list[str]) -> None:
    """QDQ form: DQ(a), DQ(b) -> Add -> clamp -> Q."""
    x, y = _dq(em, node, ins, 0, node.label), _dq(em, node, ins, 3, node.label)
    s = em.fresh(f"{outs[0]}.add")
    em.emit("Add", [x, y], [s], node.label)
    _q_epilogue(em, node, a, s, ins, outs)


def _fake_quant(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
                outs: list[str]) -> None:
    """QuantizeLinear then DequantizeLinear with the attributes as scalar constants."""
    zp_dtype = DType(a["dtype"]).numpy
    s = em.const(np.asarray(a["scale"], np.float32), f"{outs[0]}.scale")
    z = em.const(np.asarray(a["zero_point"], zp_dtype), f"{outs[0]}.zp")
    q = em.fresh(f"{outs[0]}.q")
    em.emit("QuantizeLinear", [ins[0], s, z], [q], node.label)
    em.emit("DequantizeLinear", [q, s, z], outs, node.label)


HANDLERS: dict[str, Handler] = {
    "conv": _conv, "gemm": _gemm, "clip": _clip, "hard_swish": _hard_swish_node,
    "split": _split, "slice": _slice, "pad": _pad, "cast": _cast,
    "channel_shuffle": _channel_shuffle, **dict.fromkeys(REDUCE, _reduce),
    "qlinear_conv": _qlinear_conv, "qlinear_gemm": _qlinear_gemm, "qlinear_add": _qlinear_add,
    "fake_quant": _fake_quant,
}


def _export_node(em: _Emitter, node: Node, allow_custom: bool) -> None:
    op = get_op(node.op)
    a = op.complete_attrs(node.attrs, node.label)
    ins = [v.name for v in node.inputs]
    outs = [v.name for v in node.outputs]
    if node.op in SIMPLE:
        em.emit(SIMPLE[node.op], ins, outs, node.label)
    elif node.op in RENAMED_ATTRS:
        op_type, names = RENAMED_ATTRS[node.op]
        em.emit(op_type, ins, outs, node.label,
                **{names[k]: _onnx_attr(v) for k, v in a.items() if k in names})
    elif node.op in SHAPE_INPUTS:
        op_type, key = SHAPE_INPUTS[node.op]
        extra = [em.ints(a[key], f"{outs[0]}.{key}")] if a[key] or node.op != "squeeze" else []
        em.emit(op_type, ins + extra, outs, node.label)
    elif node.op in HANDLERS:
        HANDLERS[node.op](em, node, a, ins, outs)
    elif node.op in export_binary.HANDLERS and export_binary.exportable(node):
        export_binary.HANDLERS[node.op](em, node, a, ins, outs)
    elif allow_custom:
        _custom(em, node, a, ins, outs)
    else:
        raise UnsupportedOpError(f"node {node.label} ({node.op}) has no standard ONNX form; "
                                 f"export with allow_custom=True to write it as {CUSTOM_DOMAIN}")


def value_info(name: str, t: TensorType) -> onnx.ValueInfoProto:
    """An ONNX typed value; symbolic dims become ``dim_param``."""
    return helper.make_tensor_value_info(name, ONNX_DTYPE[t.dtype], list(t.shape))


def to_onnx(graph: Graph, opset: int = 17, *, allow_custom: bool = True) -> onnx.ModelProto:
    """Convert a verified graph to an ONNX model (default domain ``opset``, 13 or newer)."""
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise UnsupportedOpError(f"graph @{graph.name}: cannot export to opset {opset}; supported "
                                 f"{MIN_OPSET}..{onnx.defs.onnx_opset_version()}")
    graph.verify()
    em = _Emitter(graph, opset)
    for node in graph.nodes:
        _export_node(em, node, allow_custom)
    # constants the ONNX nodes read (a handler may replace one, e.g. by int8 sign weights)
    used = {name for n in em.nodes for name in n.input} | {v.name for v in graph.outputs}
    inits = [numpy_helper.from_array(np.asarray(v.data), v.name)
             for v in graph.constants.values() if v.name in used and v.data is not None]
    boundary = {v.name for v in graph.inputs} | {v.name for v in graph.outputs}
    inner = [value_info(v.name, v.type) for n in graph.nodes for v in n.outputs
             if v.name not in boundary]
    og = helper.make_graph(em.nodes, graph.name,
                           [value_info(v.name, v.type) for v in graph.inputs],
                           [value_info(v.name, v.type) for v in graph.outputs],
                           initializer=inits + em.initializers, value_info=inner)
    imports = [helper.make_opsetid("", opset)]
    if em.custom:
        imports.append(helper.make_opsetid(CUSTOM_DOMAIN, CUSTOM_VERSION))
        log.warning("graph @%s: ops %s exported to custom domain %s; onnxruntime cannot run them",
                    graph.name, ", ".join(sorted(set(em.custom))), CUSTOM_DOMAIN)
    model = helper.make_model(og, opset_imports=imports, producer_name="lwc")
    model.ir_version = helper.find_min_ir_version_for(imports, ignore_unknown=True)
    if em.custom:
        helper.set_model_props(model, {"lwc.custom_ops": ",".join(sorted(set(em.custom)))})
    if quantised := [v.name for v in graph.values() if v.type.quant is not None]:
        log.warning("graph @%s: quantisation parameters on the types of %d values (%s, ...) have "
                    "no ONNX form and are dropped", graph.name, len(quantised), quantised[0])
    return model


def custom_ops(model: onnx.ModelProto) -> list[str]:
    """The ``ai.lwc`` op types a model uses: non-empty means onnxruntime cannot run it."""
    return sorted({n.op_type for n in model.graph.node if n.domain == CUSTOM_DOMAIN})


def export_onnx(graph: Graph, path: str | os.PathLike[str], opset: int = 17, *,
                allow_custom: bool = True) -> onnx.ModelProto:
    """Write ``graph`` to ``path`` as ONNX, atomically (a failed export leaves no file)."""
    from lwc.fileio import atomic_write_bytes

    model = to_onnx(graph, opset, allow_custom=allow_custom)
    if model.ByteSize() >= 2**31:
        raise ModelFormatError(f"{path}: graph @{graph.name} exceeds ONNX's 2 GiB protobuf limit")
    atomic_write_bytes(path, model.SerializeToString())
    return model


__all__ = ["CUSTOM_DOMAIN", "custom_ops", "export_onnx", "to_onnx"]
