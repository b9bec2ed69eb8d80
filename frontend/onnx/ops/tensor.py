"""ONNX converters: shape and data-movement ops, constants and shape queries.

Operands that ONNX passes as tensors but lwc keeps as attributes (Reshape's shape, Slice's
bounds, Pad's pads, ...) must be import-time constants; a run-time value there is refused with an
``UnsupportedOpError`` naming the node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lwc.frontend.onnx.loader import lwc_dtype
from lwc.frontend.onnx.registry import ImportContext, converter
from lwc.ops.tensor import INT64_MAX

if TYPE_CHECKING:
    import onnx

    from lwc.ir import Value

Ins = list["Value | None"]


def _x(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> Value:
    if not ins or ins[0] is None:
        raise ctx.fail(node, "needs a data input")
    return ins[0]


def _ints(ctx: ImportContext, node: onnx.NodeProto, ins: Ins, i: int,
          what: str) -> list[int] | None:
    """The int list held by optional constant input ``i`` (None when absent)."""
    if i >= len(ins) or ins[i] is None:
        return None
    c = ctx.const(ins[i])
    if c is None:
        raise ctx.fail(node, f"{what} must be a constant known at import time")
    return [int(v) for v in np.asarray(c).reshape(-1)]


@converter("Identity")
def identity(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    return [_x(ctx, node, ins)]


@converter("Dropout")
def dropout(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    # Inference semantics in every version: ratio / training_mode inputs and is_test are ignored;
    # a consumed mask output is refused by the importer (only one result is returned).
    return [ctx.emit("dropout", [_x(ctx, node, ins)], node=node)]


@converter("Flatten")
def flatten(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    return [ctx.emit("flatten", [_x(ctx, node, ins)], {"axis": ctx.attrs(node).get("axis", 1)},
                     node=node)]


@converter("Reshape")
def reshape_v1(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x = _x(ctx, node, ins)
    shape = _ints(ctx, node, ins, 1, "the target shape")
    if shape is None:
        shape = [int(s) for s in ctx.attrs(node).get("shape", [])]
    if ctx.attrs(node).get("allowzero", 0) and 0 in shape:
        if -1 in shape:
            raise ctx.fail(node, "allowzero with both 0 and -1 in the target is ambiguous")
        # a literal zero-sized dim: the reshape is only valid on an empty tensor
    elif 0 in shape:
        shape = [x.type.shape[i] if s == 0 and isinstance(x.type.shape[i], int) else s
                 for i, s in enumerate(shape)]
    return [ctx.emit("reshape", [x], {"shape": shape}, node=node)]


@converter("Transpose")
def transpose(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    perm = ctx.attrs(node).get("perm", [])
    return [ctx.emit("transpose", [_x(ctx, node, ins)], {"perm": perm}, node=node)]


@converter("Concat")
def concat(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    vals = [v for v in ins if v is not None]
    axis = ctx.attrs(node).get("axis", 1 if ctx.opset < 4 else None)
    if axis is None:
        raise ctx.fail(node, "needs attribute axis")
    # Empty operands (a shape-[0] piece) contribute nothing.
    vals = [v for v in vals if not (v.data is not None and v.data.size == 0)] or vals[:1]
    return [ctx.emit("concat", vals, {"axis": axis}, node=node)]


@converter("Split")
def split(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x = _x(ctx, node, ins)
    attrs = ctx.attrs(node)
    axis = attrs.get("axis", 0)
    sizes = _ints(ctx, node, ins, 1, "split sizes") if ctx.opset >= 13 else attrs.get("split")
    dim = x.type.shape[axis % x.type.rank]
    if not isinstance(dim, int):
        raise ctx.fail(node, f"cannot split the symbolic axis {axis} of {x.type}")
    if not sizes:
        n = attrs.get("num_outputs", len(node.output))
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
    return ctx.emit_multi("split", [x], {"axis": axis, "sizes": sizes}, node=node)


@converter("Slice")
def slice_v1(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    a = ctx.attrs(node)
    return _slice(ctx, node, ins, a["starts"], a["ends"], a.get("axes"), None)


@converter("Slice", since=10)
def slice_v10(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    starts = _ints(ctx, node, ins, 1, "slice starts")
    ends = _ints(ctx, node, ins, 2, "slice ends")
    if starts is None or ends is None:
        raise ctx.fail(node, "needs starts and ends")
    return _slice(ctx, node, ins, starts, ends, _ints(ctx, node, ins, 3, "slice axes"),
                  _ints(ctx, node, ins, 4, "slice steps"))


def _slice(ctx: ImportContext, node: onnx.NodeProto, ins: Ins, starts: list[int], ends: list[int],
           axes: list[int] | None, steps: list[int] | None) -> list[Value]:
    x = _x(ctx, node, ins)
    rank = x.type.rank
    axes = [a % rank for a in (axes if axes is not None else range(len(starts)))]
    clamp = INT64_MAX // 2
    attrs: dict[str, Any] = {"starts": [max(min(s, clamp), -clamp) for s in starts],
                             "ends": [max(min(e, clamp), -clamp) for e in ends],
                             "axes": axes}
    if steps is not None and any(s != 1 for s in steps):
        attrs["steps"] = steps
    return [ctx.emit("slice", [x], attrs, node=node)]


@converter("Squeeze")
def squeeze(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    axes = _ints(ctx, node, ins, 1, "squeeze axes") if ctx.opset >= 13 \
        else ctx.attrs(node).get("axes")
    return [ctx.emit("squeeze", [_x(ctx, node, ins)], {"axes": axes or []}, node=node)]


@converter("Unsqueeze")
def unsqueeze(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    axes = _ints(ctx, node, ins, 1, "unsqueeze axes") if ctx.opset >= 13 \
        else ctx.attrs(node).get("axes")
    if not axes:
        raise ctx.fail(node, "needs axes")
    return [ctx.emit("unsqueeze", [_x(ctx, node, ins)], {"axes": axes}, node=node)]


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge"}


@converter("Pad")
def pad_v2(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    a = ctx.attrs(node)
    pads = a.get("pads", a.get("paddings"))
    return _pad(ctx, node, _x(ctx, node, ins), pads, a.get("mode", "constant"),
                float(a.get("value", 0.0)))


@converter("Pad", since=11)
def pad_v11(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x = _x(ctx, node, ins)
    pads = _ints(ctx, node, ins, 1, "pads")
    value = 0.0
    if len(ins) > 2 and ins[2] is not None:
        c = ctx.const(ins[2])
        if c is None:
            raise ctx.fail(node, "the pad value must be a constant")
        value = float(np.asarray(c).reshape(-1)[0]) if np.asarray(c).size else 0.0
    axes = _ints(ctx, node, ins, 3, "pad axes")
    if axes is not None and pads is not None:
        rank = x.type.rank
        full = [0] * (2 * rank)
        for k, ax in enumerate(axes):
            full[ax % rank] = pads[k]
            full[rank + ax % rank] = pads[len(axes) + k]
        pads = full
    return _pad(ctx, node, x, pads, ctx.attrs(node).get("mode", "constant"), value)


def _pad(ctx: ImportContext, node: onnx.NodeProto, x: Value, pads: list[int] | None, mode: str,
         value: float) -> list[Value]:
    if pads is None:
        raise ctx.fail(node, "needs pads")
    if mode not in _PAD_MODES:
        raise ctx.fail(node, f"pad mode {mode!r} is not supported (constant, reflect, edge)")
    return [ctx.emit("pad", [x], {"pads": pads, "mode": _PAD_MODES[mode], "value": value},
                     node=node)]


@converter("Constant")
def constant(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    a = ctx.attrs(node)
    kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
             "value_ints": np.int64}
    if "value" in a:
        data = np.asarray(a["value"])
    elif (key := next((k for k in kinds if k in a), None)) is not None:
        data = np.asarray(a[key], dtype=kinds[key])
    else:
        raise ctx.fail(node, f"constant attribute {', '.join(a) or '(none)'} is not supported")
    return [ctx.add_constant(data, node.output[0] or "const")]


@converter("ConstantOfShape")
def constant_of_shape(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    shape = _ints(ctx, node, ins, 0, "the shape")
    if shape is None:
        raise ctx.fail(node, "needs a shape")
    value = ctx.attrs(node).get("value")
    fill = np.asarray(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
    nbytes = int(np.prod(shape, dtype=np.int64)) * fill.dtype.itemsize
    if any(s < 0 for s in shape) or nbytes > 1 << 32:
        raise ctx.fail(node, f"shape {shape} is negative or too large to materialise")
    return [ctx.add_constant(np.full(shape, fill[0], dtype=fill.dtype), node.output[0] or "fill")]


@converter("Shape")
def shape(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Any]:
    a = ctx.attrs(node)
    # shape_value is the importer's extension of ImportContext for shape arithmetic
    x = _x(ctx, node, ins)
    return [ctx.shape_value(x, a.get("start", 0), a.get("end"))]  # type: ignore[attr-defined]


@converter("Size")
def size(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    t = _x(ctx, node, ins).type
    if not t.is_static:
        raise ctx.fail(node, f"the size of {t} is only known at run time")
    return [ctx.add_constant(np.array(t.numel(), dtype=np.int64), "size")]


@converter("Gather")
def gather(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x = _x(ctx, node, ins)
    if len(ins) < 2 or ins[1] is None:
        raise ctx.fail(node, "needs indices")
    return [ctx.emit("gather", [x, ins[1]], {"axis": ctx.attrs(node).get("axis", 0)}, node=node)]


@converter("Cast")
def cast(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    to = ctx.attrs(node)["to"]
    if isinstance(to, str):  # opset 6 spelled the type as a string
        import onnx as _onnx

        to = _onnx.TensorProto.DataType.Value(to.upper())
    dt = lwc_dtype(int(to), f"node {node.name or node.output[0]!r} (Cast)")
    return [ctx.emit("cast", [_x(ctx, node, ins)], {"to": str(dt)}, node=node)]


@converter("Expand")
def expand(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    shape = _ints(ctx, node, ins, 1, "the target shape")
    return [ctx.emit("expand", [_x(ctx, node, ins)], {"shape": shape}, node=node)]


@converter("Tile")
def tile(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    reps = _ints(ctx, node, ins, 1, "repeats")
    return [ctx.emit("tile", [_x(ctx, node, ins)], {"repeats": reps}, node=node)]


@converter("DepthToSpace")
def depth_to_space(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    a = ctx.attrs(node)
    return [ctx.emit("depth_to_space", [_x(ctx, node, ins)],
                     {"blocksize": a["blocksize"], "mode": a.get("mode", "DCR")}, node=node)]
