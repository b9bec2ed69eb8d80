"""Graph analyses (use counts, shapes, liveness, costs) and the cache that holds them.

An analysis is a plain function ``graph -> result``. ``AnalysisManager.get(fn, graph)`` computes
it once and keeps it until a pass reports a change (the ``PassManager`` then calls
``invalidate``), so passes that only read the graph share the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lwc.errors import VerifyError

if TYPE_CHECKING:
    from lwc.ir.core import Graph, Node, Value
    from lwc.ir.types import TensorType


class AnalysisManager:
    """Cache of analysis results keyed by (function, graph identity)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Callable[..., Any], int], Any] = {}
        self.computed = 0
        """How many times an analysis actually ran (tests use it to see the cache work)."""

    def get(self, fn: Callable[[Graph], Any], graph: Graph) -> Any:
        key = (fn, id(graph))
        if key not in self._cache:
            self._cache[key] = fn(graph)
            self.computed += 1
        return self._cache[key]

    def invalidate(self, keep: Iterable[Callable[..., Any]] = ()) -> None:
        """Drop every cached result except those of the analyses in ``keep``."""
        kept = set(keep)
        self._cache = {k: v for k, v in self._cache.items() if k[0] in kept}


def use_counts(graph: Graph) -> dict[Value, int]:
    """Number of distinct reader nodes per value, graph outputs counting as one reader each."""
    counts: dict[Value, int] = {v: v.num_users for v in graph.values()}
    for v in graph.outputs:
        counts[v] = counts.get(v, 0) + 1
    return counts


def shapes(graph: Graph) -> dict[Value, TensorType]:
    """Re-infer every node's output types from its inputs (without changing the graph)."""
    from lwc.ops.registry import get_op

    types: dict[Value, TensorType] = {v: v.type for v in graph.inputs}
    types.update({v: v.type for v in graph.constants.values()})
    for n in graph.nodes:
        op = get_op(n.op)
        outs = op.infer([types.get(v, v.type) for v in n.inputs], op.complete_attrs(n.attrs))
        types.update(zip(n.outputs, outs))
    return types


def reinfer_types(graph: Graph, nodes: Iterable[Node] | None = None) -> int:
    """Write re-inferred output types back onto the values of ``nodes`` (default: all), in graph
    order; returns how many types changed. Call after a pass changes a constant's shape."""
    from lwc.ops.registry import get_op

    wanted = None if nodes is None else {id(n) for n in nodes}
    changed = 0
    for n in graph.nodes:
        if wanted is not None and id(n) not in wanted and not any(
                v.producer is not None and id(v.producer) in wanted for v in n.inputs):
            continue
        op = get_op(n.op)
        try:
            outs = op.infer([v.type for v in n.inputs], op.complete_attrs(n.attrs, n.label))
        except (ValueError, IndexError, KeyError, TypeError) as e:
            raise VerifyError(f"node {n.label} ({n.op}): re-inference failed: {e}") from None
        for v, t in zip(n.outputs, outs):
            if v.type != t:
                v.type = t
                changed += 1
        if wanted is not None and changed:
            wanted.add(id(n))  # propagate to readers of a changed value
    return changed


@dataclass(frozen=True)
class Liveness:
    """Live range of each intermediate value as [defining step, last reading step] in node order,
    and the peak bytes of simultaneously live intermediates (batch symbols bound to 1)."""

    ranges: dict[Value, tuple[int, int]]
    peak_bytes: int


def liveness(graph: Graph) -> Liveness:
    """Live ranges of node outputs (graph outputs live to the end) and peak live bytes."""
    end = len(graph.nodes)
    ranges: dict[Value, tuple[int, int]] = {}
    for step, n in enumerate(graph.nodes):
        for v in n.outputs:
            ranges[v] = (step, step)
        for v in n.inputs:
            if v in ranges:
                ranges[v] = (ranges[v][0], step)
    for v in graph.outputs:
        if v in ranges:
            ranges[v] = (ranges[v][0], end)
    delta = [0] * (end + 2)
    for v, (lo, hi) in ranges.items():
        size = v.type.nbytes()
        delta[lo] += size
        delta[hi + 1] -= size
    peak = live = 0
    for d in delta:
        live += d
        peak = max(peak, live)
    return Liveness(ranges, peak)


def node_cost(n: Node) -> Any:
    """``Op.cost`` of one node: MACs, parameters (constant operands) and bytes moved, batch 1.
    Rewrites report it before and after through ``ctx.record``."""
    from lwc.ops.registry import get_op

    op = get_op(n.op)
    return op.cost([v.type for v in n.inputs], [v.type for v in n.outputs],
                   op.complete_attrs(n.attrs), [v.is_constant for v in n.inputs])


def node_costs(graph: Graph) -> dict[Node, Any]:
    """``node_cost`` for every node."""
    return {n: node_cost(n) for n in graph.nodes}


def total_macs(graph: Graph) -> int:
    return sum(c.macs for c in node_costs(graph).values())


__all__ = ["AnalysisManager", "Liveness", "liveness", "node_cost", "node_costs", "reinfer_types",
           "shapes", "total_macs", "use_counts"]
