"""Model-level cost figures: MACs, parameters and bytes moved, per node and summed.

The per-node rule is the op registry's ``Op.cost``: MACs from the op's ``macs`` hook (batch
symbols bound to 1), parameters = elements of the node's constant operands, bytes = operands read
plus results written. Papers count differently -- MobileNet's "4.2M parameters" are conv and fc
weights and biases only, without batch-norm statistics -- so ``graph_cost`` takes an ``ops``
filter: ``graph_cost(g, ops=("conv", "gemm"))`` is the papers' rule.
"""

from __future__ import annotations

from collections.abc import Collection

from lwc.ir.core import Graph, Node
from lwc.ops.registry import Cost, get_op

PAPER_OPS = ("conv", "conv_transpose", "gemm", "matmul")
"""The ops whose MACs and weights papers count (batch norm folds away, activations are free)."""


def node_cost(node: Node) -> Cost:
    """One node's cost by the registry's rule (constants shared by several nodes count for each)."""
    op = get_op(node.op)
    attrs = op.complete_attrs(node.attrs, node.label)
    ins = [v.type for v in node.inputs]
    outs = [v.type for v in node.outputs]
    return op.cost(ins, outs, attrs, [v.is_constant for v in node.inputs])


def graph_cost(graph: Graph, ops: Collection[str] | None = None) -> Cost:
    """Sum of ``node_cost`` over the graph's nodes, or over those whose op is in ``ops``."""
    macs = params = moved = 0
    for node in graph.nodes:
        if ops is not None and node.op not in ops:
            continue
        c = node_cost(node)
        macs += c.macs
        params += c.params
        moved += c.bytes
    return Cost(macs, params, moved)


__all__ = ["PAPER_OPS", "Cost", "graph_cost", "node_cost"]
