"""ONNX -> lwc IR: walks the graph in order and hands each node to its versioned converter.

Names. lwc value names must match ``[A-Za-z_][A-Za-z0-9_.-]*``; ONNX names are arbitrary strings.
Graph inputs and outputs keep their ONNX names whenever those are valid identifiers (``lwc run``
reads and writes npz files keyed by them); any other character becomes ``_`` and a leading
non-letter gets a ``_`` prefix (``Graph.fresh_name``), e.g. ``input:0`` -> ``input_0``,
``0`` -> ``_0``. Intermediate values are named after the ONNX output they come from.

Folding. ``emit`` runs the op's reference kernel at import time when every operand is a constant,
so weight-only subgraphs (``ConstantOfShape``, reshaped biases, ...) become constants. ONNX
``Shape``/``Size`` results on symbolic shapes are tracked as ``ShapeValue`` (see
``shape_values``) and never reach the IR.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from lwc.errors import LwcError, ModelFormatError, UnsupportedOpError
from lwc.frontend.onnx import shape_values
from lwc.frontend.onnx.loader import check_leniently, lwc_dtype, read_model, tensor_to_numpy
from lwc.frontend.onnx.registry import find_converter, supported_ops
from lwc.frontend.onnx.shape_values import ShapeValue
from lwc.ir import Dim, Graph, TensorType, Value
from lwc.ir.core import _sanitize
from lwc.ops.registry import get_op

MIN_OPSET, MAX_OPSET = 6, 21
"""Default-domain opsets we import. 6 is accepted because the ONNX backend suite's PyTorch cases
use it; the only semantic difference for our ops is legacy broadcasting, handled by converters."""

DEFAULT_DOMAINS = ("", "ai.onnx")


def import_onnx(path: str | os.PathLike[str]) -> Graph:
    """Read and import an ``.onnx`` file (external data must sit in the model's folder)."""
    p = Path(path)
    model = read_model(p)
    return import_model(model, p.parent, str(p))


def import_model(model: onnx.ModelProto, base_dir: Path | None = None,
                 source: str = "<model>") -> Graph:
    """Import an in-memory model; ``base_dir`` resolves external data, ``source`` names errors."""
    if not model.HasField("graph"):
        raise ModelFormatError(f"{source}: the model has no graph")
    imp = Importer(model, base_dir, source)
    return imp.run()


def _opset(model: onnx.ModelProto, source: str) -> int:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        versions = [1] if not model.opset_import else []
    if not versions:
        raise ModelFormatError(f"{source}: the model imports no default-domain ONNX opset")
    v = int(versions[0])
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise UnsupportedOpError(f"{source}: ONNX opset {v} is not supported; lwc imports opsets "
                                 f"{MIN_OPSET}..{MAX_OPSET} of the default domain")
    return v


class Importer:
    """The ``ImportContext`` of one model import: value map, constants and node emission."""

    def __init__(self, model: onnx.ModelProto, base_dir: Path | None, source: str) -> None:
        self.model = model
        self.base_dir = base_dir
        self.source = source
        self.opset = _opset(model, source)
        self.graph = Graph(_sanitize(model.graph.name) or "main")
        self.values: dict[str, Value | ShapeValue] = {}
        self.checker_note = check_leniently(model)
        self._node: onnx.NodeProto | None = None

    # ----- ImportContext ----------------------------------------------------------------------
    def attrs(self, node: onnx.NodeProto) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                out[a.name] = tensor_to_numpy(a.t, self.base_dir, self._where(node))
                continue
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                raise self.fail(node, f"attribute {a.name} holds a subgraph")
            v = helper.get_attribute_value(a)
            if isinstance(v, bytes):
                v = v.decode("utf-8", errors="replace")
            elif isinstance(v, list):
                v = [x.decode("utf-8", errors="replace") if isinstance(x, bytes) else x for x in v]
            out[a.name] = v
        return out

    def const(self, value: Value | ShapeValue | None) -> np.ndarray | None:
        if isinstance(value, ShapeValue):
            return np.array(value.data, dtype=np.int64) if value.is_static else None
        return None if value is None else value.data

    def add_constant(self, data: np.ndarray, name: str = "const") -> Value:
        return self.graph.add_constant(np.asarray(data), name)

    def emit(self, op: str, inputs: Sequence[Value], attrs: Mapping[str, Any] | None = None, *,
             node: onnx.NodeProto | None = None) -> Value:
        outs = self.emit_multi(op, inputs, attrs, node=node)
        if len(outs) != 1:
            raise LwcError(f"{self.source}: op {op} gave {len(outs)} results where one was "
                           "expected")
        return outs[0]

    def emit_multi(self, op: str, inputs: Sequence[Value], attrs: Mapping[str, Any] | None = None,
                   *, node: onnx.NodeProto | None = None) -> list[Value]:
        node = node or self._node
        hint = _value_hint(node, op)
        opdef = get_op(op)
        if inputs and all(v.data is not None for v in inputs):
            full = opdef.complete_attrs(attrs or {}, where=hint)
            opdef.infer([v.type for v in inputs], full)  # same checks as a real node
            results = opdef.compute([v.data for v in inputs], full)  # type: ignore[misc]
            return [self.add_constant(r, hint) for r in results]
        n = self.graph.add_node(op, inputs, attrs, name=node.name if node is not None else "",
                                output_names=[hint])
        return list(n.outputs)

    def fail(self, node: onnx.NodeProto, message: str) -> Exception:
        return UnsupportedOpError(f"{self._where(node)}: {message}")

    # ----- extras used by the tensor converters -----------------------------------------------
    def shape_value(self, v: Value | ShapeValue, start: int = 0, end: int | None = None) -> Any:
        """ONNX Shape of ``v``: a constant when static, else a symbolic ``ShapeValue``."""
        dims = v.data.shape if isinstance(v, ShapeValue) else v.type.shape
        arr = shape_values.shape_of(dims, start, end)
        return self._settle(ShapeValue(arr))

    # ----- the walk ---------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.model.graph
        inits = {t.name: t for t in g.initializer}
        for vi in g.input:
            if vi.name not in inits:
                self.values[vi.name] = self.graph.add_input(vi.name, self._input_type(vi))
        reserved = [self.graph.fresh_name(o.name) for o in g.output]
        for name, t in inits.items():
            data = tensor_to_numpy(t, self.base_dir, self.source)
            self.values[name] = self.graph.add_constant(data, name or "init")
        for node in g.node:
            self._convert(node)
        for o, r in zip(g.output, reserved):
            self.graph.outputs.append(self._output(o.name, r))
        self.graph.remove_unused_constants()
        self.graph.verify()
        return self.graph

    def _convert(self, node: onnx.NodeProto) -> None:
        self._node = node
        if node.domain not in DEFAULT_DOMAINS:
            raise UnsupportedOpError(f"{self._where(node)}: domain {node.domain!r} is not "
                                     "supported (only the default ONNX domain is)")
        ins: list[Any] = []
        for name in node.input:
            if not name:
                ins.append(None)
            elif name not in self.values:
                raise ModelFormatError(f"{self._where(node)}: input {name!r} is not defined before "
                                       "use (graph not topologically sorted?)")
            else:
                ins.append(self.values[name])
        ins = shape_values.concretize(self, node, ins)
        try:
            if any(isinstance(v, ShapeValue) for v in ins):
                outs = shape_values.propagate(self, node, ins)
                if outs is None:
                    raise self.fail(node, "computes with a run-time shape in a way lwc cannot "
                                          "express statically")
            else:
                fn = find_converter(node.op_type, self.opset)
                if fn is None:
                    raise UnsupportedOpError(f"{self._where(node)} is not supported; supported "
                                             "ONNX ops: " + ", ".join(supported_ops()))
                outs = fn(self, node, ins)
        except LwcError as e:
            if self.source in str(e):
                raise
            raise type(e)(f"{self._where(node)}: {e}") from None
        except (ValueError, IndexError, KeyError, TypeError) as e:
            raise ModelFormatError(f"{self._where(node)}: {e}") from None
        used = [o for o in node.output]
        for name, v in zip(used, outs):
            if name:
                self.values[name] = self._settle(v)
        for name in used[len(outs):]:
            if name and _is_read(self.model.graph, name):
                raise self.fail(node, f"output {name!r} is not supported")

    def _settle(self, v: Any) -> Any:
        if isinstance(v, ShapeValue) and v.is_static:
            return self.add_constant(np.array(v.data, dtype=np.int64), "shape")
        return v

    def _output(self, onnx_name: str, reserved: str) -> Value:
        v = self.values.get(onnx_name)
        if v is None:
            raise ModelFormatError(f"{self.source}: graph output {onnx_name!r} is never produced")
        if isinstance(v, ShapeValue):
            raise UnsupportedOpError(f"{self.source}: graph output {onnx_name!r} is a run-time "
                                     "shape")
        if v.producer is None or v in self.graph.outputs or v.name == reserved:
            if v.name == reserved:
                return v
            node = self.graph.add_node("identity", [v], name=reserved)
            v = node.output
        v.name = reserved  # the name was claimed up front, so it is free and unique
        return v

    def _input_type(self, vi: onnx.ValueInfoProto) -> TensorType:
        where = f"{self.source}: graph input {vi.name!r}"
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedOpError(f"{where} is not a tensor")
        tt = vi.type.tensor_type
        dtype = lwc_dtype(tt.elem_type, where)
        if not tt.HasField("shape"):
            raise ModelFormatError(f"{where} has no shape (rank unknown)")
        shape: list[Dim] = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(int(d.dim_value))
            elif d.HasField("dim_param") and _sanitize(d.dim_param):
                shape.append(_sanitize(d.dim_param))
            else:
                shape.append("N" if i == 0 else f"{_sanitize(vi.name) or 'in'}_d{i}")
        return TensorType(dtype, tuple(shape))

    def _where(self, node: onnx.NodeProto) -> str:
        label = node.name or (node.output[0] if node.output else "?")
        return f"{self.source}: node {label!r} (op {node.op_type}, opset {self.opset})"


def _value_hint(node: onnx.NodeProto | None, op: str) -> str:
    if node is not None and node.output and node.output[0]:
        return _sanitize(node.output[0]) or op
    return op


def _is_read(graph: onnx.GraphProto, name: str) -> bool:
    return any(name in n.input for n in graph.node) or any(o.name == name for o in graph.output)
