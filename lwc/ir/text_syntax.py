"""The concrete syntax of the textual IR: the LALR parser over ``grammar.lark`` and a transformer
that turns the parse tree into plain records (statements with source positions, literals as
Python values, types as ``TensorType``). Name resolution and graph building happen in
``lwc.ir.parser``; keeping them apart keeps each step small and separately testable.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree, UnexpectedInput, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

from lwc.ir.types import DType, QuantParams, TensorType


@dataclass(frozen=True)
class Pos:
    """A 1-based source position."""

    line: int
    column: int


class SourceError(Exception):
    """A problem at a source position; ``lwc.ir.parser`` turns it into a located ``LwcError``."""

    def __init__(self, msg: str, pos: Pos) -> None:
        super().__init__(msg)
        self.msg, self.pos = msg, pos


# ----- records: what a statement says, before names are resolved ----------------------------
@dataclass
class Ref:
    """A use of a name: ``%value`` or ``@weight``."""

    name: str
    pos: Pos
    weight: bool = False
    """``@name`` (a sidecar key) rather than ``%name`` (a value)."""


@dataclass
class Dense:
    """An inline ``dense<...>`` literal (nested lists of Python numbers)."""

    data: Any
    pos: Pos


@dataclass
class Stmt:
    """One ``results = op(operands) {attrs} : types loc(...)`` line."""

    results: list[Ref]
    op: str
    op_pos: Pos
    operands: list[Ref | Dense]
    attrs: dict[str, tuple[Any, Pos]]
    attrs_pos: Pos | None
    types: list[TensorType]
    label: str
    pos: Pos


@dataclass
class Param:
    """One graph parameter ``%name: type``."""

    ref: Ref
    type: TensorType


@dataclass
class Ret:
    """The ``return`` line."""

    refs: list[Ref]
    pos: Pos


@dataclass
class GraphRecord:
    """The whole graph as written, names not yet resolved."""

    name: str
    pos: Pos
    params: list[Param] = field(default_factory=list)
    out_types: list[TensorType] = field(default_factory=list)
    stmts: list[Stmt] = field(default_factory=list)
    ret: list[Ref] = field(default_factory=list)
    ret_pos: Pos = Pos(1, 1)


def _tpos(tok: Token) -> Pos:
    return Pos(tok.line or 1, tok.column or 1)


def _mpos(meta: Any) -> Pos:
    return Pos(getattr(meta, "line", 1), getattr(meta, "column", 1))


def _name(tok: Token) -> str:
    body = str(tok)[1:]
    return json.loads(body) if body.startswith('"') else body


@v_args(meta=True)
class _ToRecords(Transformer[Token, GraphRecord]):
    """Bottom-up: literals to Python values, types to ``TensorType``, statements to records."""

    def start(self, meta: Any, ch: list[GraphRecord]) -> GraphRecord:
        return ch[0]

    def graph(self, meta: Any, ch: list[Any]) -> GraphRecord:
        rec = GraphRecord(_name(ch[0]), _tpos(ch[0]))
        for c in ch[1:]:
            if isinstance(c, Param):
                rec.params.append(c)
            elif isinstance(c, TensorType):
                rec.out_types.append(c)
            elif isinstance(c, Stmt):
                rec.stmts.append(c)
            elif isinstance(c, Ret):
                rec.ret, rec.ret_pos = c.refs, c.pos
        return rec

    def param(self, meta: Any, ch: list[Any]) -> Param:
        return Param(Ref(_name(ch[0]), _tpos(ch[0])), ch[1])

    def ret(self, meta: Any, ch: list[Token]) -> Ret:
        return Ret([Ref(_name(t), _tpos(t)) for t in ch], _mpos(meta))

    def stmt(self, meta: Any, ch: list[Any]) -> Stmt:
        i = next(k for k, c in enumerate(ch) if isinstance(c, Token) and c.type == "OPNAME")
        results = [Ref(_name(t), _tpos(t)) for t in ch[:i]]
        st = Stmt(results, str(ch[i]), _tpos(ch[i]), [], {}, None, [], "", _mpos(meta))
        for c in ch[i + 1:]:
            if isinstance(c, (Ref, Dense)):
                st.operands.append(c)
            elif isinstance(c, TensorType):
                st.types.append(c)
            elif isinstance(c, tuple):
                st.attrs, st.attrs_pos = c
            else:
                st.label = c
        return st

    def loc(self, meta: Any, ch: list[Token]) -> str:
        return str(json.loads(str(ch[0])))

    def value_ref(self, meta: Any, ch: list[Token]) -> Ref:
        return Ref(_name(ch[0]), _tpos(ch[0]))

    def weight_ref(self, meta: Any, ch: list[Token]) -> Ref:
        return Ref(_name(ch[0]), _tpos(ch[0]), weight=True)

    def dense(self, meta: Any, ch: list[Any]) -> Dense:
        return Dense(ch[0], _mpos(meta))

    def attrs(self, meta: Any, ch: list[tuple[str, Any, Pos]]) -> tuple[dict[str, Any], Pos]:
        out: dict[str, tuple[Any, Pos]] = {}
        for key, value, pos in ch:
            if key in out:
                raise SourceError(f"attribute {key} given twice", pos)
            out[key] = (value, pos)
        return out, _mpos(meta)

    def attr(self, meta: Any, ch: list[Any]) -> tuple[str, Any, Pos]:
        return str(ch[0]), ch[1], _tpos(ch[0])

    def type(self, meta: Any, ch: list[Any]) -> TensorType:
        pos = _tpos(ch[0])
        try:
            dtype = DType(str(ch[0]))
        except ValueError:
            raise SourceError(f"unknown dtype {str(ch[0])!r}; known: "
                              + ", ".join(d.value for d in DType), pos) from None
        quant = ch[-1] if isinstance(ch[-1], QuantParams) else None
        dims = ch[1:-1] if quant is not None else ch[1:]
        return TensorType(dtype, tuple(dims), quant)

    def quant(self, meta: Any, ch: list[tuple[str, Any, Pos]]) -> QuantParams:
        kw: dict[str, Any] = {}
        for key, value, pos in ch:
            if key not in ("scale", "zero_point", "axis", "bits") or key in kw:
                raise SourceError(f"!q takes scale, zero_point, axis, bits once each, not {key}",
                                  pos)
            if key in ("scale", "zero_point"):
                value = value if isinstance(value, list) else [value]
                conv = _exact_float if key == "scale" else _exact_int
                kw[key] = tuple(conv(v, pos) for v in value)
            else:
                kw[key] = _exact_int(value, pos)
        try:
            return QuantParams(**kw)
        except (TypeError, ValueError) as e:
            raise SourceError(f"bad quantisation parameters: {e}", _mpos(meta)) from None

    def static_dim(self, meta: Any, ch: list[Token]) -> int:
        if (d := int(ch[0])) < 0:
            raise SourceError(f"dimension {d} is negative", _tpos(ch[0]))
        return d

    def symbol_dim(self, meta: Any, ch: list[Token]) -> str:
        s = str(ch[0])
        return str(json.loads(s)) if s.startswith('"') else s

    def number(self, meta: Any, ch: list[Token]) -> int | float:
        s = str(ch[0])
        return int(s) if ch[0].type == "INT" else float(s)

    def string(self, meta: Any, ch: list[Token]) -> str:
        return str(json.loads(str(ch[0])))

    def true(self, meta: Any, ch: list[Any]) -> bool:
        return True

    def false(self, meta: Any, ch: list[Any]) -> bool:
        return False

    def list(self, meta: Any, ch: list[Any]) -> list[Any]:
        return list(ch)


def _exact_float(v: Any, pos: Pos) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SourceError(f"expected a number, got {v!r}", pos)
    return float(v)


def _exact_int(v: Any, pos: Pos) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise SourceError(f"expected an integer, got {v!r}", pos)
    return v


# ----- the parser and its syntax errors ------------------------------------------------------
@functools.cache
def _lark() -> Lark:
    grammar = resources.files("lwc.ir").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


_TERMINAL_NAMES = {
    "VALUE": "%value", "GLOBAL": "@name", "OPNAME": "a name", "DTYPE": "a type",
    "INT": "an integer", "NUMBER": "a number", "STRING": "a string", "$END": "end of input",
}


def _describe(term: str) -> str:
    if term in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[term]
    try:
        pattern = _lark().get_terminal(term).pattern
    except KeyError:
        return term
    return f"'{pattern.value}'" if pattern.type == "str" else term


def _syntax_message(e: UnexpectedInput) -> str:
    if isinstance(e, UnexpectedToken):
        expected = sorted({_describe(t) for t in e.expected})
        got = "end of input" if e.token.type == "$END" else repr(str(e.token))
        return f"expected {_or(expected)}, got {got}"
    if isinstance(e, UnexpectedCharacters):
        allowed = sorted({_describe(t) for t in (e.allowed or ())})
        tail = f"; expected {_or(allowed)}" if allowed else ""
        return f"unexpected character {e.char!r}{tail}"
    if isinstance(e, UnexpectedEOF):
        expected = sorted({_describe(t) for t in e.expected})
        return f"unexpected end of input; expected {_or(expected)}"
    return str(e).splitlines()[0]


def _or(items: list[str]) -> str:
    if len(items) > 6:
        items = [*items[:6], "..."]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]



def read_records(text: str) -> GraphRecord:
    """Parse ``text`` into a ``GraphRecord``; every failure is a ``SourceError`` with a position."""
    try:
        tree: Tree[Token] = _lark().parse(text)
    except UnexpectedInput as e:
        pos = Pos(getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1)
        if isinstance(e, UnexpectedToken) and e.token.type == "$END":
            lines = text.rstrip().splitlines() or [""]  # point just past the last text
            pos = Pos(len(lines), len(lines[-1]) + 1)
        raise SourceError(_syntax_message(e), pos) from None
    try:
        return _ToRecords().transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, SourceError):
            raise e.orig_exc from None
        raise


__all__ = ["Dense", "GraphRecord", "Param", "Pos", "Ref", "Ret", "SourceError", "Stmt",
           "read_records"]
