"""Shape arithmetic at import time: ONNX ``Shape`` subgraphs that never reach the IR.

Exporters compute reshape targets from run-time shapes (``Shape -> Gather -> Unsqueeze -> Concat
-> Reshape`` in torchvision's flatten). When every dim is static, ``Shape`` is simply a constant
and ordinary folding does the rest. With a symbolic dim (dynamic batch ``N``) the importer keeps a
``ShapeValue``: a small int64 tensor whose entries are ints, symbol names, or ``UNKNOWN``. The ops
below propagate it; a ``Reshape``/``Expand`` consuming it turns symbols back into ONNX's "copy this
dim" (0) or "infer" (-1) markers. Anything else that needs a symbolic shape at run time is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lwc.ops.tensor import INT64_MAX

if TYPE_CHECKING:
    import onnx

    from lwc.frontend.onnx.importer import Importer
    from lwc.ir import Value

UNKNOWN = "?"
"""An entry computed from a symbol in a way we cannot name (e.g. ``N * 3``)."""


@dataclass
class ShapeValue:
    """An int64 tensor known at import time up to symbolic entries (numpy object array)."""

    data: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.ndarray):  # numpy returns a bare element for 0-d picks
            arr = np.empty((), dtype=object)
            arr[()] = self.data
            self.data = arr

    @property
    def is_static(self) -> bool:
        return all(isinstance(e, (int, np.integer)) for e in self.data.flat)


def shape_of(dims: Sequence[int | str], start: int = 0, end: int | None = None) -> np.ndarray:
    """ONNX Shape (with opset-15 start/end, clamped) as an object array."""
    r = len(dims)
    s = min(max(start + r if start < 0 else start, 0), r)
    e = r if end is None else min(max(end + r if end < 0 else end, 0), r)
    return np.array([d if isinstance(d, str) else int(d) for d in dims[s:e]], dtype=object)


def _arith(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        a, b = int(a), int(b)
        if op == "Div":
            return int(a / b) if b else UNKNOWN
        return {"Add": a + b, "Sub": a - b, "Mul": a * b}[op]
    if op == "Mul" and (a == 1 or b == 1):
        return b if a == 1 else a
    if op in ("Add", "Sub") and b == 0:
        return a
    if op == "Add" and a == 0:
        return b
    if op == "Div" and b == 1:
        return a
    return UNKNOWN


def propagate(imp: Importer, node: onnx.NodeProto, ins: list[Any]) -> list[Any] | None:
    """Outputs of ``node`` when some operand is a ``ShapeValue``; None if we cannot follow it."""
    op = node.op_type
    arrs = [_as_object(imp, v) for v in ins]
    attrs = imp.attrs(node)
    if op in ("Identity", "Cast"):
        return [ShapeValue(arrs[0])] if arrs[0] is not None else None
    if op == "Shape":
        return [imp.add_constant(np.array(arrs[0].shape, dtype=np.int64), "shape")]
    if op == "Gather" and arrs[1] is not None:
        idx = np.asarray(arrs[1].astype(np.int64))
        axis = attrs.get("axis", 0)
        return [ShapeValue(np.take(arrs[0], idx, axis=axis))]
    if op == "Unsqueeze" or op == "Squeeze":
        axes = attrs.get("axes") if imp.opset < 13 else (
            None if len(arrs) < 2 or arrs[1] is None else [int(a) for a in arrs[1].flat])
        x = arrs[0]
        if op == "Unsqueeze":
            for a in sorted(int(a) % (x.ndim + len(axes)) for a in axes or ()):
                x = np.expand_dims(x, a)
        else:
            x = np.squeeze(x, axis=tuple(axes) if axes else None)
        return [ShapeValue(x)]
    if op == "Concat" and all(a is not None for a in arrs):
        return [ShapeValue(np.concatenate(arrs, axis=attrs.get("axis", 0)))]
    if op == "Slice":
        return _slice(imp, node, arrs, attrs)
    if op in ("Add", "Sub", "Mul", "Div") and all(a is not None for a in arrs):
        a, b = np.broadcast_arrays(arrs[0], arrs[1])
        out = np.empty(a.shape, dtype=object)
        for i in np.ndindex(a.shape):
            out[i] = _arith(op, a[i], b[i])
        return [ShapeValue(out)]
    if op == "Reshape" and isinstance(ins[0], ShapeValue) and arrs[1] is not None:
        return [ShapeValue(arrs[0].reshape([int(s) for s in arrs[1].flat]))]
    return None


def concretize(imp: Importer, node: onnx.NodeProto, ins: list[Any]) -> list[Any]:
    """Replace a symbolic Reshape/Expand target by an int64 constant the converter can use."""
    if len(ins) < 2 or not isinstance(ins[1], ShapeValue) or ins[0] is None \
            or isinstance(ins[0], ShapeValue):
        return ins
    if node.op_type == "Reshape":
        return [ins[0], _reshape_target(imp, node, ins[0], ins[1]), *ins[2:]]
    if node.op_type == "Expand":
        return [ins[0], _expand(imp, node, ins[0], ins[1]), *ins[2:]]
    return ins


def _as_object(imp: Importer, v: Any) -> np.ndarray | None:
    if isinstance(v, ShapeValue):
        return v.data
    data = imp.const(v) if v is not None else None
    return None if data is None else np.asarray(data).astype(object)


def _slice(imp: Importer, node: onnx.NodeProto, arrs: list[Any],
           attrs: dict[str, Any]) -> list[Any]:
    x = arrs[0]
    if imp.opset < 10:
        starts, ends, axes = attrs["starts"], attrs["ends"], attrs.get("axes")
        steps = None
    else:
        if any(a is None for a in arrs[1:3]) or any(
                a is None and i < len(node.input) and node.input[i] for i, a in enumerate(arrs)):
            raise imp.fail(node, "slice bounds of a shape computation must be constants")
        starts, ends = list(arrs[1].flat), list(arrs[2].flat)
        axes = list(arrs[3].flat) if len(arrs) > 3 and arrs[3] is not None else None
        steps = list(arrs[4].flat) if len(arrs) > 4 and arrs[4] is not None else None
    idx = [slice(None)] * x.ndim
    for k, (s, e) in enumerate(zip(starts, ends)):
        a = int(axes[k]) if axes is not None else k
        st = int(steps[k]) if steps is not None else 1
        e = min(int(e), INT64_MAX)
        idx[a % x.ndim] = slice(*slice(int(s), e, st).indices(x.shape[a % x.ndim]))
    return [ShapeValue(x[tuple(idx)])]


def _reshape_target(imp: Importer, node: onnx.NodeProto, data: Value, target: ShapeValue) -> Value:
    """Symbols become 0 where the input has the same symbol at the same position, else -1."""
    out = []
    src = data.type.shape
    for i, e in enumerate(target.data.flat):
        if isinstance(e, (int, np.integer)):
            out.append(int(e))
        elif i < len(src) and src[i] == e:
            out.append(0)
        else:
            out.append(-1)
    if out.count(-1) > 1:
        raise imp.fail(node, f"reshape target {list(target.data.flat)} has more than one "
                             "dimension that is only known at run time")
    return imp.add_constant(np.array(out, dtype=np.int64), "shape")


def _expand(imp: Importer, node: onnx.NodeProto, data: Value, target: ShapeValue) -> Value:
    entries = list(target.data.flat)
    src = data.type.shape
    off = len(entries) - len(src)
    out = []
    for i, e in enumerate(entries):
        if isinstance(e, (int, np.integer)):
            out.append(int(e))
        elif i - off >= 0 and src[i - off] == e:
            out.append(1)  # broadcasting keeps the input's own (symbolic) dim
        else:
            raise imp.fail(node, f"expand to {entries} needs a run-time size")
    return imp.add_constant(np.array(out, dtype=np.int64), "shape")
