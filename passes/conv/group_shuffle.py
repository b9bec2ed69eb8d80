"""``group-shuffle{groups=g}``: a dense 1x1 conv approximated by a grouped 1x1 conv followed by a
channel shuffle (ShuffleNet's building block), keeping the block structure of W.

After ``channel_shuffle{g}``, output channel i comes from grouped output src[i], which reads input
group i mod g; so the approximation keeps W[i, c] where c is in group (i mod g) and drops the rest.
Error = dropped energy / total energy of W. MACs and parameters fall by g.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwc.errors import PassError
from lwc.ir.core import Graph
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.passes.conv.channelwise import shuffle_perm
from lwc.passes.conv.common import ConvParts, const_of, convs, cost_record, emit_epilogue
from lwc.rewrite import Rewriter


def block_weights(w: np.ndarray, groups: int) -> tuple[np.ndarray, float]:
    """(grouped weight [Cout, Cin/g, 1...] in pre-shuffle order, relative error)."""
    cout, cin = w.shape[:2]
    og, cg = cout // groups, cin // groups
    mat = w.reshape(cout, cin).astype(np.float64)
    src = shuffle_perm(cout, groups)
    wg = np.zeros((cout, cg))
    kept = 0.0
    for i in range(cout):
        k = src[i]
        j = k // og
        wg[k] = mat[i, j * cg:(j + 1) * cg]
        kept += float(np.sum(wg[k] ** 2))
    total = float(np.sum(mat ** 2))
    err = 1 - kept / total if total > 0 else 0.0
    return wg.reshape(cout, cg, *w.shape[2:]), max(err, 0.0)


def eligible(p: ConvParts, groups: int) -> bool:
    cout, cin = p.w.shape[:2]
    return (p.attrs["group"] == 1 and all(k == 1 for k in p.kernel) and cout % groups == 0
            and cin % groups == 0 and (p.bias is None or p.bias.data is not None))


@register_pass
@dataclass(frozen=True)
class GroupShuffle(Pass):
    """Approximate dense 1x1 convs by grouped 1x1 convs + channel shuffle (block-diagonal fit).

    Layers whose relative reconstruction error exceeds ``max_error`` are refused. Records
    MACs/params before/after and ``error``.
    """

    name: ClassVar[str] = "group-shuffle"
    exact: ClassVar[bool] = False
    groups: int = 2
    max_error: float = 1.0

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if self.groups < 2:
            raise PassError(f"pass {self.name}: groups must be >= 2, got {self.groups}")
        done = refused = 0
        for p in convs(graph):
            if not eligible(p, self.groups):
                continue
            wg, err = block_weights(p.w, self.groups)
            conv = p.node
            if err > self.max_error:
                ctx.record(conv, refused=True, error=err, max_error=self.max_error)
                refused += 1
                continue
            rw = Rewriter(graph, conv, ctx)
            inv = np.argsort(shuffle_perm(p.w.shape[0], self.groups))
            ins = [p.x, const_of(rw, wg, p.w, f"{conv.label}.gw")]
            if p.bias is not None:
                ins.append(rw.const(np.take(p.bias.data, inv), f"{conv.label}.gb"))
            fused_act = p.epilogue() if p.residual is None else {}
            g = rw.create("conv", *ins, attrs={
                **fused_act, "group": self.groups, "strides": p.strides(), "pads": p.pads(),
                "dilations": p.dilations()}, name=f"{conv.label}.group")
            s = rw.create("channel_shuffle", g.output, attrs={"groups": self.groups},
                          name=f"{conv.label}.shuffle")
            out = s.output
            if p.residual is not None:
                out = emit_epilogue(rw, out, p.epilogue(), p.residual, conv.label)
            rw.record(conv, **cost_record([conv], [g, s]), groups=self.groups, error=err)
            rw.replace(conv, out)
            done += 1
        if done:
            graph.remove_unused_constants()
        return PassResult(changed=bool(done), stats={"factorized": done, "refused": refused})
