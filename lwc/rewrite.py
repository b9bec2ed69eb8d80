"""Declarative DAG patterns, a change-tracking ``Rewriter`` and a fixed-point driver.

A pattern is built from ``op(...)``, ``any_value(...)`` and ``const(...)`` (after TVM's DPL and
tinygrad's UPat); a rule is a plain function ``(Match, Rewriter) -> None`` that declines a match
by returning early. ``pattern_set(name)`` groups rules into a registered pass that applies them
greedily until nothing matches::

    fold = pattern_set("fold-double-neg", exact=True, doc="-(-x) is x.")

    @fold.rule(op("neg", op("neg", any_value("x"), single_use=True)))
    def double_neg(m: Match, rw: Rewriter) -> None:
        rw.replace(m.root, m.value("x"))

Captures: ``name=`` on any pattern. A name used twice must bind the same value (so
``op("mul", any_value("x"), op("sigmoid", any_value("x")))`` matches only x*sigmoid(x)).
Inputs: positional; trailing ``const(..., optional=True)`` patterns may be absent, and a final
``...`` accepts any further inputs. ``op(...)`` without input patterns accepts any inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lwc.errors import PassError
from lwc.ir.core import Graph, Node, Value
from lwc.ir.types import TensorType
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.patterns import (
    AnyValue,
    Const,
    OpPattern,
    Pattern,
    any_value,
    attrs_of,
    const,
    is_graph_output,
    op,
)


def match(pattern: OpPattern, node: Node, graph: Graph) -> Match | None:
    """Match ``pattern`` with ``node`` as its root; None if it does not match."""
    caps: dict[str, Any] = {}
    return Match(graph, node, caps) if pattern.match_node(node, caps, graph) else None


# ----- matches and the rewriter -------------------------------------------------------------------


class Match:
    """The captures of one successful match."""

    def __init__(self, graph: Graph, root: Node, caps: dict[str, Any]) -> None:
        self.graph, self.root, self._caps = graph, root, caps

    def node(self, name: str) -> Node:
        if not isinstance(obj := self._caps.get(name), Node):
            raise KeyError(f"pattern capture {name!r} is not a node")
        return obj

    def value(self, name: str) -> Value:
        obj = self._caps.get("__value__" + name, self._caps.get(name))
        if not isinstance(obj, Value):
            raise KeyError(f"pattern capture {name!r} is not a value (or was not matched)")
        return obj

    def __getitem__(self, name: str) -> np.ndarray:
        data = self.value(name).data
        if data is None:
            raise KeyError(f"pattern capture {name!r} is not a constant")
        return data

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def attrs(self, name: str) -> dict[str, Any]:
        return attrs_of(self.node(name))

    def __contains__(self, name: str) -> bool:
        return name in self._caps

    def __repr__(self) -> str:
        caps = ", ".join(k for k in self._caps if not k.startswith("__"))
        return f"<Match root={self.root.label} captures=[{caps}]>"


class Rewriter:
    """Edits the graph on behalf of a rule; new nodes go before ``root`` (keeping topological
    order) and every creation, erasure and replacement is counted."""

    def __init__(self, graph: Graph, root: Node | None = None,
                 ctx: PassContext | None = None) -> None:
        self.graph, self.root, self.ctx = graph, root, ctx
        self.created: list[Node] = []
        self.erased: list[Node] = []
        self.replaced = 0
        self.modified: list[Node] = []

    @property
    def changed(self) -> bool:
        return bool(self.created or self.erased or self.replaced or self.modified)

    def create(self, op_name: str, *inputs: Value, attrs: Mapping[str, Any] | None = None,
               name: str = "") -> Node:
        """Add a node (types inferred) just before the match root (at the end once it is gone)."""
        root = self.root if self.root is not None and self.root in self.graph.nodes else None
        node = self.graph.add_node(op_name, list(inputs), attrs, name=name, before=root)
        self.created.append(node)
        return node

    def record(self, node: Node | str, **stats: Any) -> None:
        """Report per-layer figures (MACs before/after, error) to the pass context, if any."""
        if self.ctx is not None:
            self.ctx.record(node, **stats)

    def const(self, data: np.ndarray, name: str = "const") -> Value:
        return self.graph.add_constant(data, name)

    def replace(self, old: Node | Value, new: Node | Value | Sequence[Value]) -> None:
        """Make every reader of ``old`` read ``new``, then erase ``old``'s node and whatever it
        alone kept alive. Graph outputs keep their names (the new value is renamed, or an
        ``identity`` carries the name when the new value is an input or another output)."""
        olds = old.outputs if isinstance(old, Node) else [old]
        news = (new.outputs if isinstance(new, Node) else [new] if isinstance(new, Value)
                else list(new))
        if len(olds) != len(news):
            raise PassError(f"rewrite: replacing {len(olds)} values with {len(news)}")
        for o, n in zip(olds, news):
            if not compatible(o.type, n.type):
                raise PassError(f"rewrite: %{o.name} is {o.type} but its replacement %{n.name} "
                                f"is {n.type}")
        producer = old if isinstance(old, Node) else old.producer
        renames = []
        for o, n in zip(olds, news):
            slots = [i for i, v in enumerate(self.graph.outputs) if v is o]
            self.graph.replace_all_uses(o, n)
            self.replaced += 1
            if slots and o is not n:
                renames.append((o, n, slots))
        if producer is not None and producer in self.graph.nodes:
            self.erase_dead(producer)  # also frees the old output names
        for o, n, slots in renames:
            self._keep_output_name(o, n, slots)

    def _keep_output_name(self, o: Value, n: Value, slots: list[int]) -> None:
        """Graph output slots that held ``o`` now hold ``n``: give them ``o``'s name back."""
        if takes_output_name(self.graph, o, n, slots) and o.name not in self.graph._names:
            rename(self.graph, n, o.name)
            return
        ident = self.create("identity", n, name=o.name)
        for i in slots:
            self.graph.outputs[i] = ident.output

    def erase(self, node: Node) -> None:
        self.graph.erase_node(node)
        self.erased.append(node)

    def erase_dead(self, node: Node) -> None:
        """Erase ``node`` if nothing reads it, then its producers that become unread."""
        stack = [node]
        while stack:
            n = stack.pop()
            if n not in self.graph.nodes or any(v.uses or is_graph_output(self.graph, v)
                                                 for v in n.outputs):
                continue
            producers = [v.producer for v in n.inputs if v.producer is not None]
            self.erase(n)
            stack.extend(producers)

    def set_attrs(self, node: Node, **attrs: Any) -> None:
        """Change attributes in place (defaults are stripped); output types must not change."""
        from lwc.ops.registry import get_op

        opdef = get_op(node.op)
        full = opdef.complete_attrs({**node.attrs, **attrs}, node.label)
        outs = opdef.infer([v.type for v in node.inputs], full)
        for v, t in zip(node.outputs, outs):
            if not compatible(v.type, t):
                raise PassError(f"rewrite: new attributes change %{v.name} from {v.type} to {t}")
        node.attrs = opdef.strip_defaults(full)
        self.modified.append(node)

    def set_input(self, node: Node, index: int, value: Value) -> None:
        node.set_input(index, value)
        self.modified.append(node)


def compatible(a: TensorType, b: TensorType) -> bool:
    """Same dtype and rank; static dims equal (a symbol matches anything)."""
    if a.dtype != b.dtype or a.rank != b.rank:
        return False
    return all(x == y or isinstance(x, str) or isinstance(y, str) for x, y in zip(a.shape, b.shape))


def takes_output_name(graph: Graph, old: Value, new: Value,
                      slots: Sequence[int] | None = None) -> bool:
    """Whether ``new`` can be renamed to graph output ``old``'s name when it replaces it: not a
    graph input, not another output, and the name is (or will be) free."""
    slots = [i for i, v in enumerate(graph.outputs) if v is old] if slots is None else slots
    other = any(v is new and i not in slots for i, v in enumerate(graph.outputs))
    free = old.name not in graph._names or old.producer is not None
    return (new.producer is not None or new.data is not None) and not other and free \
        and len(slots) == 1


def rename(graph: Graph, v: Value, name: str) -> None:
    """Give a node output or constant a new (free) name; graph inputs keep theirs."""
    if v.producer is None and v.data is None:
        raise PassError(f"cannot rename graph input %{v.name}")
    if name in graph._names:
        raise PassError(f"cannot rename %{v.name} to %{name}: name taken")
    graph._names.discard(v.name)
    if v.data is not None:
        graph.constants.pop(v.name, None)
        graph.constants[name] = v
    v.name = name
    graph._names.add(name)


# ----- driver -------------------------------------------------------------------------------------

RuleFn = Callable[[Match, Rewriter], Any]


@dataclass
class Rule:
    pattern: OpPattern
    fn: RuleFn
    name: str
    hits: int = 0


def apply_rules(graph: Graph, rules: Sequence[Rule], *, max_iterations: int = 100,
                ctx: PassContext | None = None) -> dict[str, int]:
    """Apply ``rules`` greedily, sweeping the graph until a sweep changes nothing; returns the
    hits per rule. Raises ``PassError`` if no fixed point is reached within ``max_iterations``."""
    by_op: dict[str, list[Rule]] = {}
    for r in rules:
        for o in r.pattern.ops:
            by_op.setdefault(o, []).append(r)
    hits = {r.name: 0 for r in rules}
    for _ in range(max_iterations):
        erased: set[int] = set()
        changed = False
        for node in list(graph.nodes):
            if id(node) in erased:
                continue
            for rule in by_op.get(node.op, ()):
                caps: dict[str, Any] = {}
                if not rule.pattern.match_node(node, caps, graph):
                    continue
                rw = Rewriter(graph, node, ctx)
                rule.fn(Match(graph, node, caps), rw)
                if not rw.changed:
                    continue
                for n in rw.created:
                    rw.erase_dead(n)  # a rule that built nodes but did not use them
                erased.update(id(n) for n in rw.erased)
                hits[rule.name] += 1
                rule.hits += 1
                changed = True
                break
        if not changed:
            graph.remove_unused_constants()
            return hits
        graph.toposort()  # cheap when already ordered; guards rules that append nodes
    raise PassError(f"rewrite rules {', '.join(r.name for r in rules)} did not reach a fixed "
                    f"point in {max_iterations} sweeps")


class PatternSet:
    """A named group of rules that is also a registered pass (``exact`` tag, one option
    ``max_iterations``). Add rules with the ``rule`` decorator."""

    def __init__(self, name: str, exact: bool = True, doc: str = "") -> None:
        self.name, self.exact = name, exact
        self.rules: list[Rule] = []
        rules = self.rules

        def run(p: Pass, graph: Graph, ctx: PassContext) -> PassResult:
            limit = p.max_iterations  # type: ignore[attr-defined]
            hits = apply_rules(graph, rules, max_iterations=limit, ctx=ctx)
            stats = {k: v for k, v in hits.items() if v}
            return PassResult(changed=bool(stats), stats=stats)

        import dataclasses

        ns = {"name": name, "exact": exact, "run": run, "__module__": __name__,
              "__doc__": doc or f"Pattern rewrites {name}."}
        cls = dataclasses.make_dataclass(
            "".join(w.title() for w in name.split("-")) + "Patterns",
            [("max_iterations", int, dataclasses.field(default=100))],
            bases=(Pass,), namespace=ns, frozen=True)
        self.pass_class: type[Pass] = register_pass(cls)

    def rule(self, pattern: OpPattern, name: str | None = None) -> Callable[[RuleFn], RuleFn]:
        if not isinstance(pattern, OpPattern):
            raise TypeError("a rule's root pattern must be op(...)")

        def deco(fn: RuleFn) -> RuleFn:
            self.rules.append(Rule(pattern, fn, name or fn.__name__))
            return fn

        return deco

    def apply(self, graph: Graph, max_iterations: int = 100) -> dict[str, int]:
        return apply_rules(graph, self.rules, max_iterations=max_iterations)


def pattern_set(name: str, exact: bool = True, doc: str = "") -> PatternSet:
    """Create (and register as a pass) an empty rule set called ``name``."""
    return PatternSet(name, exact, doc)


__all__ = ["AnyValue", "Const", "Match", "OpPattern", "Pattern", "PatternSet", "Rewriter", "Rule",
           "any_value", "apply_rules", "attrs_of", "compatible", "const", "match", "op",
           "pattern_set", "rename", "takes_output_name"]
