"""The pattern language of ``lwc.rewrite``: ``op(...)``, ``any_value(...)``, ``const(...)``.

Patterns match a node (and, through its operands, the DAG above it), filling a capture dict:
names bound to nodes, values or constants. Import them from ``lwc.rewrite``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lwc.ir.core import Graph, Node, Value

Predicate = Callable[[Any], bool]


def attrs_of(node: Node) -> dict[str, Any]:
    """A node's attributes with every default filled in (``node.attrs`` omits defaults)."""
    from lwc.ops.registry import get_op

    return get_op(node.op).complete_attrs(node.attrs, node.label)


# ----- patterns -----------------------------------------------------------------------------------


class Pattern:
    """Base of value patterns. ``name`` captures what matched; ``optional`` lets it be absent."""

    name: str | None = None
    optional: bool = False

    def match(self, v: Value, caps: dict[str, Any], graph: Graph) -> bool:
        raise NotImplementedError

    def _bind(self, obj: Any, caps: dict[str, Any]) -> bool:
        if self.name is None:
            return True
        if self.name in caps:
            return caps[self.name] is obj
        caps[self.name] = obj
        return True


@dataclass(eq=False)
class AnyValue(Pattern):
    name: str | None = None
    where: Predicate | None = None
    """Called with the Value."""
    optional: bool = False

    def match(self, v: Value, caps: dict[str, Any], graph: Graph) -> bool:
        return (self.where is None or bool(self.where(v))) and self._bind(v, caps)


@dataclass(eq=False)
class Const(Pattern):
    name: str | None = None
    where: Predicate | None = None
    """Called with the constant's numpy payload."""
    optional: bool = False

    def match(self, v: Value, caps: dict[str, Any], graph: Graph) -> bool:
        if v.data is None or (self.where is not None and not self.where(v.data)):
            return False
        return self._bind(v, caps)


@dataclass(eq=False)
class OpPattern(Pattern):
    ops: tuple[str, ...]
    inputs: tuple[Pattern, ...] | None = None
    name: str | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    """Attribute name -> required value or predicate over the (default-completed) value."""
    where: Predicate | None = None
    """Called with the Node."""
    single_use: bool = False
    """Every output is read by exactly one node and is not a graph output (safe to fuse away)."""
    commutative: bool = False
    """Also try the two inputs swapped (for add, mul, max, min)."""
    variadic: bool = False
    optional: bool = False

    def match(self, v: Value, caps: dict[str, Any], graph: Graph) -> bool:
        return v.producer is not None and self.match_node(v.producer, caps, graph, v)

    def match_node(self, n: Node, caps: dict[str, Any], graph: Graph,
                   v: Value | None = None) -> bool:
        if n.op not in self.ops or not self._check_node(n, graph):
            return False
        if self.name is not None:
            if self.name in caps and caps[self.name] is not n:
                return False
            caps[self.name] = n
            caps["__value__" + self.name] = v if v is not None else n.outputs[0]
        if self.inputs is None:
            return True
        orders = [n.inputs]
        if self.commutative and len(n.inputs) == 2:
            orders.append(n.inputs[::-1])
        for ins in orders:
            trial = dict(caps)
            if self._match_inputs(ins, trial, graph):
                caps.clear()
                caps.update(trial)
                return True
        return False

    def _check_node(self, n: Node, graph: Graph) -> bool:
        if self.single_use and not _single_use(n, graph):
            return False
        if self.attrs:
            full = attrs_of(n)
            for key, want in self.attrs.items():
                got = full.get(key)
                if not (want(got) if callable(want) else got == want):
                    return False
        return self.where is None or bool(self.where(n))

    def _match_inputs(self, ins: Sequence[Value], caps: dict[str, Any], graph: Graph) -> bool:
        assert self.inputs is not None
        if len(ins) > len(self.inputs) and not self.variadic:
            return False
        for i, p in enumerate(self.inputs):
            if i >= len(ins):
                if not p.optional:
                    return False
                continue
            if not p.match(ins[i], caps, graph):
                return False
        return True


def _single_use(n: Node, graph: Graph) -> bool:
    return all(len(v.uses) == 1 and not is_graph_output(graph, v) for v in n.outputs)


def is_graph_output(graph: Graph, v: Value) -> bool:
    return any(o is v for o in graph.outputs)


def op(ops: str | Sequence[str], *inputs: Pattern | Any, name: str | None = None,
       attrs: Mapping[str, Any] | None = None, where: Predicate | None = None,
       single_use: bool = False, commutative: bool = False) -> OpPattern:
    """Match a node whose op is ``ops`` (or one of them). A trailing ``...`` in ``inputs``
    accepts further inputs; no inputs at all accepts any."""
    names = (ops,) if isinstance(ops, str) else tuple(ops)
    variadic = bool(inputs) and inputs[-1] is Ellipsis
    pats = tuple(p for p in inputs if p is not Ellipsis)
    return OpPattern(names, pats if inputs else None, name, dict(attrs or {}), where, single_use,
                     commutative, variadic)


def any_value(name: str | None = None, *, where: Predicate | None = None,
              optional: bool = False) -> AnyValue:
    """Match any value (graph input, constant or node output)."""
    return AnyValue(name, where, optional)


def const(name: str | None = None, *, optional: bool = False,
          where: Predicate | None = None) -> Const:
    """Match a constant; ``m[name]`` is then its numpy payload."""
    return Const(name, where, optional)


__all__ = ["AnyValue", "Const", "OpPattern", "Pattern", "Predicate", "any_value", "attrs_of",
           "const", "is_graph_output", "op"]
