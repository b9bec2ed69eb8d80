"""Common-subexpression elimination over constants (equal payloads) and nodes (same op, same
attributes, same operands)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

from lwc.ir.core import Graph, Value
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.rewrite import Rewriter


def _const_key(v: Value) -> tuple[Any, ...]:
    assert v.data is not None
    digest = hashlib.blake2b(v.data.tobytes(), digest_size=16).hexdigest()
    return (str(v.data.dtype), v.data.shape, digest)


def _attr_key(attrs: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, repr(v)) for k, v in attrs.items()))


@register_pass
@dataclass(frozen=True)
class CommonSubexpressionElimination(Pass):
    """Merge duplicate constants and nodes that compute the same thing from the same operands.

    Exact: every op is a pure function of its operands and attributes.
    """

    name: ClassVar[str] = "cse"
    exact: ClassVar[bool] = True
    constants: bool = True
    """Also merge constants with byte-identical payloads."""

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        merged_consts = self._merge_constants(graph) if self.constants else 0
        seen: dict[tuple[Any, ...], Any] = {}
        merged = 0
        for node in list(graph.nodes):
            key = (node.op, tuple(id(v) for v in node.inputs), _attr_key(node.attrs))
            if (first := seen.get(key)) is None:
                seen[key] = node
                continue
            if any(any(o is v for o in graph.outputs) for v in node.outputs):
                continue  # keep a distinct graph output name
            Rewriter(graph, node).replace(node, first.outputs)
            merged += 1
        graph.remove_unused_constants()
        return PassResult(changed=bool(merged or merged_consts),
                          stats={"nodes": merged, "constants": merged_consts})

    @staticmethod
    def _merge_constants(graph: Graph) -> int:
        first: dict[tuple[Any, ...], Value] = {}
        merged = 0
        for v in list(graph.constants.values()):
            if any(o is v for o in graph.outputs):
                continue
            key = _const_key(v)
            if (keep := first.get(key)) is None:
                first[key] = v
            elif v.uses:
                graph.replace_all_uses(v, keep)
                merged += 1
        return merged
