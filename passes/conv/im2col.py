"""``im2col``: every conv becomes an ``im2col`` op and one (batched) matmul."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lwc.ir.core import Graph
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.rewrite import Rewriter
from lwc.passes.conv.common import convs
from lwc.passes.conv.lowering import lower_to_matmul


@register_pass
@dataclass(frozen=True)
class Im2ColLowering(Pass):
    """Lower conv to im2col + matmul (exact; MACs unchanged, the column copy is the cost).

    The columns are [N, C*K, P]; with g groups the matmul is batched over groups. Depthwise convs
    (one input channel per group) are left alone unless ``depthwise``: their "GEMM" has one row.
    """

    name: ClassVar[str] = "im2col"
    exact: ClassVar[bool] = True
    depthwise: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        count = 0
        for p in convs(graph):
            g, cin = p.attrs["group"], int(p.x.type.shape[1])
            if g > 1 and g == cin and not self.depthwise:
                continue
            if not all(isinstance(d, int) for d in p.node.output.type.shape[2:]):
                continue  # the reshapes around the matmul need static spatial dims
            rw = Rewriter(graph, p.node, ctx)
            cols = rw.create("im2col", p.x, attrs={
                "kernel": p.kernel, "strides": p.strides(), "pads": p.pads(),
                "dilations": p.dilations()}, name=f"{p.node.label}.im2col")
            lower_to_matmul(rw, p, cols.output, [cols])
            count += 1
        if count:
            graph.remove_unused_constants()
        return PassResult(changed=bool(count), stats={"lowered": count})
