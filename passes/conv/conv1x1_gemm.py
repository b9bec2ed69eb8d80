"""``conv1x1-to-gemm``: a 1x1, stride-1, unpadded conv is a matmul on [N, C, H*W] (no copy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from lwc.ir.core import Graph
from lwc.ir.types import TensorType
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.rewrite import Rewriter
from lwc.passes.conv.common import ConvParts, convs
from lwc.passes.conv.lowering import lower_to_matmul


def is_pointwise(p: ConvParts) -> bool:
    """1x1 kernel, unit strides, no padding: every output pixel reads only its own input pixel."""
    return (all(k == 1 for k in p.kernel) and all(s == 1 for s in p.strides())
            and not any(p.pads()))


def _positions(t: TensorType) -> int | str:
    out: int | str = 1
    for d in t.shape[2:]:
        if isinstance(d, str):
            return -1
        out = int(out) * d
    return out


@register_pass
@dataclass(frozen=True)
class Conv1x1ToGemm(Pass):
    """Rewrite 1x1 stride-1 convs as W[Cout, Cin] @ x[N, Cin, H*W] matmuls (exact).

    The input is only reshaped (a view, no data movement) and the output reshaped back; grouped
    1x1 convs become one batched matmul [g, Cout/g, Cin/g] @ [N, g, Cin/g, H*W]. Bias, residual
    and activation follow as ops that ``fuse`` does not re-fold into matmul, so run this last.
    """

    name: ClassVar[str] = "conv1x1-to-gemm"
    exact: ClassVar[bool] = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        count = 0
        for p in convs(graph):
            npos = _positions(p.x.type)
            if not is_pointwise(p) or npos == -1:
                continue
            rw = Rewriter(graph, p.node, ctx)
            cols = rw.create("reshape", p.x, attrs={"shape": (0, int(p.x.type.shape[1]), npos)},
                             name=f"{p.node.label}.flat")
            lower_to_matmul(rw, p, cols.output, [cols])
            count += 1
        if count:
            graph.remove_unused_constants()
        return PassResult(changed=bool(count), stats={"lowered": count})
