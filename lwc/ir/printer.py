"""The printer of the textual IR: one deterministic, canonical line per constant and node.

The text is canonical so that ``print_graph(parse_graph(t)) == t`` for printed text ``t`` and so
that the diff between two passes shows only what changed: names are printed as they are (the
graph keeps them unique, nothing is renumbered), attributes come in declaration order with
defaults left out, and every number is spelled so that parsing gives back the identical bits.
The grammar and its rules are documented in ``lwc/ir/parser.py``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.core import Graph, Node, Value
from lwc.ir.types import DType, QuantParams, TensorType

INLINE_LIMIT = 16
"""Constants with at most this many elements are printed inline as ``dense<[...]>``."""

_BARE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_BARE_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_KEYWORDS = frozenset({"inf", "nan", "true", "false", "dense", "loc", "return", "graph"})


def format_name(sigil: str, name: str) -> str:
    """``%name`` / ``@name``, JSON-quoted when the name holds characters outside [A-Za-z0-9_.-]."""
    return sigil + (name if _BARE_NAME.fullmatch(name) else json.dumps(name))


def format_float(x: float) -> str:
    """Python's shortest repr, which round-trips a float64 exactly; inf and nan spelled bare."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


def format_literal(v: Any) -> str:
    """An attribute value: bool, int, float, string (JSON-escaped) or a list of them."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return format_float(float(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ",".join(format_literal(x) for x in v) + "]"
    raise TypeError(f"cannot print attribute value {v!r} of type {type(v).__name__}")


def _format_dim(d: int | str) -> str:
    if isinstance(d, int):
        return str(d)
    return d if _BARE_SYMBOL.fullmatch(d) and d not in _KEYWORDS else json.dumps(d)


def format_quant(q: QuantParams) -> str:
    """``!q(scale=[...], zero_point=[...], axis=0, bits=4)``; axis and bits only when set."""
    parts = [f"scale=[{', '.join(format_float(s) for s in q.scale)}]",
             f"zero_point=[{', '.join(str(int(z)) for z in q.zero_point)}]"]
    if q.axis is not None:
        parts.append(f"axis={q.axis}")
    if q.bits != 8:
        parts.append(f"bits={q.bits}")
    return f"!q({', '.join(parts)})"


def format_type(t: TensorType) -> str:
    """``f32[N,3,32,32]`` plus `` !q(...)`` for quantised types."""
    text = f"{t.dtype}[{','.join(_format_dim(d) for d in t.shape)}]"
    return f"{text} {format_quant(t.quant)}" if t.quant is not None else text


def format_element(x: Any, dtype: DType) -> str:
    """One element of a dense constant, exact: the shortest decimal that parses (as float64,
    then cast) back to the same float32/float16 bits, else the float64 repr."""
    if dtype == DType.BOOL:
        return "true" if bool(x) else "false"
    if dtype.is_int:
        return str(int(x))
    f = float(x)
    if not math.isfinite(f):
        return format_float(f)
    short = str(dtype.numpy.type(x))
    if dtype != DType.F64 and dtype.numpy.type(float(short)) == dtype.numpy.type(x):
        return short if ("." in short or "e" in short) else short + ".0"
    return repr(f)


def format_dense(data: np.ndarray) -> str:
    """``dense<[...]>`` with the elements in row-major order; the shape comes from the type."""
    dtype = DType.from_numpy(data.dtype)
    return "dense<[" + ", ".join(format_element(x, dtype) for x in data.reshape(-1)) + "]>"


def is_inline(value: Value, inline_limit: int = INLINE_LIMIT) -> bool:
    """Whether a constant is printed inline (small) rather than as a sidecar reference."""
    return value.data is not None and value.data.size <= inline_limit


def sidecar_arrays(graph: Graph, inline_limit: int = INLINE_LIMIT) -> dict[str, np.ndarray]:
    """The constants that the printed text references by ``@name``: the ``.npz`` sidecar."""
    return {k: v.data for k, v in graph.constants.items()
            if v.data is not None and not is_inline(v, inline_limit)}


def format_attrs(node: Node) -> str:
    """``{k=v, ...}`` in the op's declaration order, defaults left out; '' when there are none."""
    from lwc.ops.registry import REQUIRED, registered_ops

    op = registered_ops().get(node.op)
    items: list[tuple[str, Any]] = []
    if op is None:
        items = [(k, v) for k, v in node.attrs.items() if v is not None]
    else:
        for key, spec in op.attrs.items():
            v = node.attrs.get(key)
            if v is None or (spec.default is not REQUIRED and _same(v, spec.default)):
                continue
            items.append((key, _as_kind(v, spec.kind)))
        items += [(k, v) for k, v in node.attrs.items() if k not in op.attrs and v is not None]
    if not items:
        return ""
    return " {" + ", ".join(f"{k}={format_literal(v)}" for k, v in items) + "}"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) or (isinstance(a, (list, tuple)) and tuple(a) == tuple(b))
    except (TypeError, ValueError):
        return False


def _as_kind(v: Any, kind: str) -> Any:
    """Spell a value as its declared kind, so an int stored in a float attribute prints as 1.0."""
    if kind == "float" and isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
        return float(v)
    if kind == "floats" and isinstance(v, (list, tuple)):
        return [float(x) for x in v]
    if kind == "bool" and isinstance(v, (int, np.integer)):
        return bool(v)
    return v


def format_node(node: Node) -> str:
    """``%a, %b = op(%x, %y) {attrs} : type, type loc("name")``."""
    results = ", ".join(format_name("%", v.name) for v in node.outputs)
    operands = ", ".join(format_name("%", v.name) for v in node.inputs)
    types = ", ".join(format_type(v.type) for v in node.outputs)
    line = f"{results} = {node.op}({operands}){format_attrs(node)} : {types}"
    return line + (f" loc({json.dumps(node.name)})" if node.name else "")


def format_constant(value: Value, inline_limit: int = INLINE_LIMIT) -> str:
    """``%w = const(@w) : type`` (sidecar) or ``%b = const(dense<[...]>) : type`` (inline)."""
    assert value.data is not None
    inline = is_inline(value, inline_limit)
    src = format_dense(value.data) if inline else format_name("@", value.name)
    return f"{format_name('%', value.name)} = const({src}) : {format_type(value.type)}"


def print_graph(graph: Graph, *, weights_file: str | None = None,
                inline_limit: int = INLINE_LIMIT) -> str:
    """The canonical text of ``graph``: constants first (in insertion order), then nodes (in
    their topological order), then ``return``. ``weights_file`` only names the sidecar in the
    header comment."""
    header = "# lwc textual IR"
    if weights_file and sidecar_arrays(graph, inline_limit):
        header += f"; weights in {weights_file}"
    params = ", ".join(f"{format_name('%', v.name)}: {format_type(v.type)}" for v in graph.inputs)
    results = ", ".join(format_type(v.type) for v in graph.outputs)
    lines = [header, f"graph {format_name('@', graph.name)}({params}) -> ({results}) {{"]
    lines += [f"  {format_constant(v, inline_limit)}" for v in graph.constants.values()]
    lines += [f"  {format_node(n)}" for n in graph.nodes]
    ret = ", ".join(format_name("%", v.name) for v in graph.outputs)
    lines += [f"  return {ret}".rstrip(), "}"]
    return "\n".join(lines) + "\n"


def print_values(values: Sequence[Value] | Mapping[str, Value]) -> str:
    """``%a: f32[1,2], %b: i8[3]``: a one-line summary for error messages and logs."""
    vs = list(values.values()) if isinstance(values, Mapping) else list(values)
    return ", ".join(f"{format_name('%', v.name)}: {format_type(v.type)}" for v in vs)
