"""Dead-code elimination: drop nodes no graph output depends on, then unread constants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lwc.ir.core import Graph
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass


def live_nodes(graph: Graph) -> set[int]:
    """Ids of the nodes some graph output depends on (a reverse walk from the outputs)."""
    live: set[int] = set()
    stack = [v.producer for v in graph.outputs if v.producer is not None]
    while stack:
        n = stack.pop()
        if id(n) in live:
            continue
        live.add(id(n))
        stack.extend(v.producer for v in n.inputs if v.producer is not None)
    return live


@register_pass
@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Remove nodes and constants that no graph output depends on.

    Exact: every op is pure, so a result nobody reads cannot affect the outputs.
    """

    name: ClassVar[str] = "dce"
    exact: ClassVar[bool] = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        live = live_nodes(graph)
        dead = [n for n in graph.nodes if id(n) not in live]
        for n in reversed(dead):  # readers first, so each erased node is unread
            n.drop_inputs()
        for n in dead:
            graph.nodes.remove(n)
            for v in n.outputs:
                graph._names.discard(v.name)
        consts = graph.remove_unused_constants()
        return PassResult(changed=bool(dead or consts), stats={"nodes": len(dead),
                                                                "constants": consts})
