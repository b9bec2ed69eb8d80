"""Constant folding: run the reference kernel on nodes whose operands are all constants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwc.ir.core import Graph
from lwc.ops.registry import get_op
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.rewrite import Rewriter, attrs_of


@register_pass
@dataclass(frozen=True)
class ConstFold(Pass):
    """Replace nodes whose inputs are all constants by the constants they compute.

    Exact: the result is what the interpreter would compute at run time with the same kernel.
    Results above ``max_elements`` stay computed at run time (folding would bloat the model).
    """

    name: ClassVar[str] = "const-fold"
    exact: ClassVar[bool] = True
    max_elements: int = 1 << 22

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        folded = 0
        for node in list(graph.nodes):
            if not node.inputs or not all(v.data is not None for v in node.inputs):
                continue
            if any(o.type.numel() > self.max_elements for o in node.outputs):
                continue
            args = [v.data for v in node.inputs if v.data is not None]
            results = get_op(node.op).compute(args, attrs_of(node))
            rw = Rewriter(graph, node)
            consts = [rw.const(np.asarray(r).astype(o.type.dtype.numpy, copy=False), o.name)
                      for r, o in zip(results, node.outputs)]
            rw.replace(node, consts)
            folded += 1
        graph.remove_unused_constants()
        return PassResult(changed=folded > 0, stats={"folded": folded})
