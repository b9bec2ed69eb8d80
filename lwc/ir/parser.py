"""The parser of the textual IR (``.lwc`` files); the grammar lives in ``grammar.lark``.

Syntax, one op per line (``#`` starts a comment)::

    graph @conv_relu(%x: f32[N,3,32,32]) -> (f32[N,16,32,32]) {
      %w = const(@w) : f32[16,3,3,3]                  # from the .npz sidecar, key "w"
      %b = const(dense<[0.5, -1.0]>) : f32[2]         # inline, exact
      %y = conv(%x, %w, %b) {pads=[1,1,1,1], act="relu"} : f32[N,16,32,32] loc("conv1")
      %a, %c = split(%y) {axis=1, sizes=[8,8]} : f32[N,8,32,32], f32[N,8,32,32]
      return %a, %c
    }

- Names: ``%value``, ``@graph`` and ``@weight`` are bare when made of ``[A-Za-z0-9_.-]``, else
  JSON-quoted (``%"a b"``). Value names are kept exactly; a name may be defined only once.
- Types: ``dtype[dims]`` with int or symbolic dims (``N``; JSON-quoted if not an identifier),
  optionally followed by ``!q(scale=[...], zero_point=[...], axis=0, bits=8)``.
- Attributes: ``{key=value, ...}`` with ints, floats (``inf``, ``-inf``, ``nan`` allowed),
  JSON strings, ``true``/``false`` and ``[...]`` lists; checked against the op's declaration.
- Constants: ``const(@key)`` reads ``key`` from the weights (the ``.npz`` sidecar), whose dtype
  and shape must equal the declared type; ``const(dense<[...]>)`` holds the elements inline
  (flat in row-major order, or nested).
- ``loc("...")`` at the end of an op line is the node's label (``Node.name``, the ONNX node name).
- The graph is built as written (no re-inference), then verified: a declared type that differs
  from the inferred one is an error reported at its line.

Errors are one line, ``file:line:col: error: message`` (``ParseError`` for text that cannot be
read, ``VerifyError`` for a well-formed graph that breaks an IR invariant); the caret context
for humans is in the exception's ``context`` attribute (see ``format_error``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lwc.errors import LwcError, ParseError, UnsupportedOpError, VerifyError
from lwc.ir.core import Graph, Node, Value
from lwc.ir.printer import format_type
from lwc.ir.text_syntax import Dense, GraphRecord, Pos, Ref, SourceError, Stmt, read_records
from lwc.ir.types import DType, TensorType


class _Located:
    """Mixin: where in which text an error is, and the caret lines for printing to humans."""

    filename: str
    pos: Pos
    context: str


class TextParseError(ParseError, _Located):
    """Text that does not follow the grammar or names something that does not exist."""


class TextVerifyError(VerifyError, _Located):
    """A well-formed text whose graph breaks an IR invariant (e.g. a wrong declared type)."""


def format_error(err: LwcError) -> str:
    """The one-line message plus, for errors located in a text, the source line and a caret."""
    ctx = getattr(err, "context", "")
    return f"{err}\n{ctx}" if ctx else str(err)


def _located(cls: type[LwcError], msg: str, pos: Pos, filename: str, text: str) -> LwcError:
    err = cls(f"{filename}:{pos.line}:{pos.column}: error: {msg}")
    err.filename, err.pos = filename, pos  # type: ignore[attr-defined]
    lines = text.splitlines()
    src = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
    err.context = f"{src}\n{' ' * (pos.column - 1)}^" if src else ""  # type: ignore[attr-defined]
    return err


# ----- from records to a Graph ----------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


_KIND_CHECK: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "float": _is_number,
    "str": lambda v: isinstance(v, str),
    "bool": _is_bool,
    "ints": lambda v: isinstance(v, list) and all(map(_is_int, v)),
    "floats": lambda v: isinstance(v, list) and all(map(_is_number, v)),
}


class _Builder:
    """Resolves names in order (so a use before its definition is an error) and builds nodes."""

    def __init__(self, rec: GraphRecord, weights: Mapping[str, np.ndarray] | None) -> None:
        self.rec = rec
        self.weights = weights
        self.graph = Graph(rec.name)
        self.env: dict[str, Value] = {}
        self.node_pos: dict[int, Pos] = {}

    def define(self, ref: Ref, value: Value) -> Value:
        if ref.name in self.env:
            raise SourceError(f"value %{ref.name} is defined twice", ref.pos)
        self.env[ref.name] = value
        self.graph._claim(ref.name)
        return value

    def lookup(self, ref: Ref) -> Value:
        if ref.weight:
            raise SourceError(f"@{ref.name}: weights are read only by const(...)", ref.pos)
        if (v := self.env.get(ref.name)) is None:
            raise SourceError(f"use of undefined value %{ref.name}", ref.pos)
        return v

    def build(self) -> Graph:
        for p in self.rec.params:
            self.graph.inputs.append(self.define(p.ref, Value(p.ref.name, p.type)))
        for st in self.rec.stmts:
            self.constant(st) if st.op == "const" else self.node(st)
        self.graph.outputs = [self.lookup(r) for r in self.rec.ret]
        got = [v.type for v in self.graph.outputs]
        if got != self.rec.out_types:
            want = ", ".join(map(format_type, self.rec.out_types))
            raise SourceError(f"return types ({', '.join(map(format_type, got))}) differ from "
                              f"the header's ({want})", self.rec.ret_pos)
        return self.graph

    def constant(self, st: Stmt) -> None:
        if len(st.results) != 1 or len(st.operands) != 1 or len(st.types) != 1:
            raise SourceError("const takes one operand (@key or dense<...>) and defines one value",
                              st.pos)
        if st.attrs or st.label:
            raise SourceError("const takes no attributes and no loc(...)", st.attrs_pos or st.pos)
        src, t = st.operands[0], st.types[0]
        if not t.is_static:
            raise SourceError(f"constant type {format_type(t)} must have static dims", st.pos)
        if isinstance(src, Dense):
            data = _dense_array(src, t)
        elif src.weight:
            data = self.weight(src, t)
        else:
            raise SourceError(f"const takes @key or dense<...>, not %{src.name}", src.pos)
        data.setflags(write=False)
        ref = st.results[0]
        self.graph.constants[ref.name] = self.define(ref, Value(ref.name, t, data=data))

    def weight(self, ref: Ref, t: TensorType) -> np.ndarray:
        if self.weights is None or ref.name not in self.weights:
            where = ("no weights were given (no .npz sidecar)" if self.weights is None
                     else "it is not in the weights")
            raise SourceError(f"weight @{ref.name} is referenced but {where}", ref.pos)
        arr = np.asarray(self.weights[ref.name])
        if str(arr.dtype) != str(t.dtype.numpy) or tuple(arr.shape) != t.shape:
            raise SourceError(f"weight @{ref.name} is {arr.dtype}{list(arr.shape)} in the weights, "
                              f"declared {format_type(t)}", ref.pos)
        return arr.copy() if arr.flags.writeable else arr

    def node(self, st: Stmt) -> None:
        from lwc.ops.registry import get_op

        try:
            op = get_op(st.op)
        except UnsupportedOpError:
            raise SourceError(f"unknown op {st.op!r}", st.op_pos) from None
        if len(st.results) != len(st.types):
            raise SourceError(f"{len(st.results)} results but {len(st.types)} types", st.pos)
        raw: dict[str, Any] = {}
        for key, (value, pos) in st.attrs.items():
            if (spec := op.attrs.get(key)) is None:
                known = ", ".join(op.attrs) or "none"
                raise SourceError(f"{st.op} has no attribute {key} (it has: {known})", pos)
            if not _KIND_CHECK[spec.kind](value):
                raise SourceError(f"{st.op}.{key} takes {spec.kind}, got {value!r}", pos)
            raw[key] = value
        try:
            attrs = op.strip_defaults(op.complete_attrs(raw, st.label or st.op))
        except VerifyError as e:
            raise SourceError(str(e), st.attrs_pos or st.op_pos) from None
        inputs = [self.lookup(r) for r in st.operands if isinstance(r, Ref)]
        if len(inputs) != len(st.operands):
            raise SourceError(f"{st.op}: inline constants must be defined with const(...)",
                              st.op_pos)
        outs = [Value(r.name, t) for r, t in zip(st.results, st.types, strict=True)]
        for r, v in zip(st.results, outs, strict=True):
            self.define(r, v)
        node = Node(st.op, inputs, outs, attrs, name=st.label)
        self.graph.nodes.append(node)
        self.node_pos[id(node)] = st.pos


def _dense_array(src: Dense, t: TensorType) -> np.ndarray:
    """An exact array from an inline literal: floats parse as float64 and are cast once."""
    flat = _flatten(src.data)
    want = int(np.prod([int(d) for d in t.shape], dtype=np.int64))
    if len(flat) != want:
        raise SourceError(f"dense<...> has {len(flat)} elements, {format_type(t)} needs {want}",
                          src.pos)
    nested = isinstance(src.data, list) and any(isinstance(x, list) for x in src.data)
    if nested and (shape := _nested_shape(src.data)) != t.shape:
        got = "a ragged shape" if shape is None else f"shape {list(shape)}"
        raise SourceError(f"nested dense<...> has {got}, declared {format_type(t)}", src.pos)
    ok = _is_bool if t.dtype == DType.BOOL else _is_int if t.dtype.is_int else _is_number
    if bad := [x for x in flat if not ok(x)]:
        raise SourceError(f"dense<...> element {bad[0]!r} is not a {t.dtype} value", src.pos)
    try:
        if t.dtype.is_float:
            arr = np.array(flat, dtype=np.float64).astype(t.dtype.numpy)
        else:
            arr = np.array(flat, dtype=t.dtype.numpy)
    except OverflowError:
        raise SourceError(f"dense<...> holds a value out of range for {t.dtype}", src.pos) from None
    if t.dtype.is_int and any(int(a) != x for a, x in zip(arr, flat, strict=True)):
        raise SourceError(f"dense<...> holds a value out of range for {t.dtype}", src.pos)
    return arr.reshape(tuple(int(d) for d in t.shape))


def _nested_shape(data: Any) -> tuple[int, ...] | None:
    """The shape of a nested list literal, or None when it is ragged."""
    if not isinstance(data, list):
        return ()
    inner = {_nested_shape(x) for x in data}
    if len(inner) > 1:
        return None
    sub = inner.pop() if inner else ()
    return None if sub is None else (len(data), *sub)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [y for x in data for y in _flatten(x)]


# ----- entry point ----------------------------------------------------------------------------
def parse_graph(text: str, filename: str = "<string>",
                weights: Mapping[str, np.ndarray] | None = None) -> Graph:
    """Parse one graph; ``weights`` maps ``@key`` names to arrays (the ``.npz`` sidecar)."""
    try:
        rec = read_records(text)
        builder = _Builder(rec, weights)
        graph = builder.build()
    except SourceError as err:
        raise _located(TextParseError, err.msg, err.pos, filename, text) from None
    _verify(graph, builder.node_pos, rec.pos, filename, text)
    return graph


def _verify(graph: Graph, node_pos: Mapping[int, Pos], graph_pos: Pos, filename: str,
            text: str) -> None:
    """Run the verifier; report a failure at the line of the node it names."""
    try:
        graph.verify()
    except VerifyError as e:
        node = getattr(e, "node", None)
        pos = node_pos.get(id(node), graph_pos) if node is not None else graph_pos
        msg = str(e).removeprefix(f"graph @{graph.name}: ")
        raise _located(TextVerifyError, msg, pos, filename, text) from None


__all__ = ["Pos", "TextParseError", "TextVerifyError", "format_error", "parse_graph"]
