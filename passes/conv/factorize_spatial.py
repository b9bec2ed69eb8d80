"""``factorize-spatial{rank=R|full}``: a KhxKw conv as a Khx1 conv to R channels then a 1xKw conv
(Inception-v3 style), from an SVD of the weight reshaped to (Cin*Kh) x (Kw*Cout).

M[(c, i), (j, o)] = W[o, c, i, j] = sum_r A[r, c, i] B[o, r, j] with A = sqrt(s) U^T and
B = sqrt(s) V^T: the first conv takes the vertical taps (stride, padding and dilation of H), the
second the horizontal ones (those of W; zero padding commutes because the first conv has no
bias). Error = discarded sum(s^2) / sum(s^2); ``full`` (R = min(Cin*Kh, Kw*Cout)) is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwc.errors import PassError
from lwc.ir.core import Graph
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.passes.conv.common import (ConvParts, const_of, convs, cost_record, spatial_kind,
                                    truncation_error)
from lwc.rewrite import Rewriter


def factorize(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertical [R, Cin, Kh, 1], horizontal [Cout, R, 1, Kw], singular values)."""
    cout, cin, kh, kw = w.shape
    mat = w.astype(np.float64).transpose(1, 2, 3, 0).reshape(cin * kh, kw * cout)
    u, s, vt = np.linalg.svd(mat, full_matrices=False)
    root = np.sqrt(s[:rank])
    a = (u[:, :rank] * root).T.reshape(rank, cin, kh, 1)
    b = (root[:, None] * vt[:rank]).reshape(rank, kw, cout).transpose(2, 0, 1)
    return a, b.reshape(cout, rank, 1, kw), s


def eligible(p: ConvParts) -> bool:
    return spatial_kind(p) and p.attrs["group"] == 1 and p.kernel[0] > 1 and p.kernel[1] > 1


@register_pass
@dataclass(frozen=True)
class FactorizeSpatial(Pass):
    """Approximate KxK convs by Kx1 then 1xK convs through ``rank`` channels (SVD).

    ``rank`` is R or ``full`` (exact). Layers whose relative reconstruction error exceeds
    ``max_error`` are refused. Records MACs/params before/after and ``error``.
    """

    name: ClassVar[str] = "factorize-spatial"
    exact: ClassVar[bool] = False
    rank: int | str = 1
    max_error: float = 1.0

    def layer_rank(self, p: ConvParts) -> int:
        cout, cin, kh, kw = p.w.shape
        full = min(cin * kh, kw * cout)
        if self.rank == "full":
            return full
        if not isinstance(self.rank, int) or self.rank < 1:
            raise PassError(f"pass {self.name}: rank must be a positive int or full, "
                            f"got {self.rank!r}")
        return min(self.rank, full)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        done = refused = 0
        for p in convs(graph):
            if not eligible(p):
                continue
            r = self.layer_rank(p)
            a, b, s = factorize(p.w, r)
            err = truncation_error(s, r)
            conv = p.node
            if err > self.max_error:
                ctx.record(conv, refused=True, error=err, max_error=self.max_error, rank=r)
                refused += 1
                continue
            (sh, sw), (dh, dw), pads = p.strides(), p.dilations(), p.pads()
            rw = Rewriter(graph, conv, ctx)
            v = rw.create("conv", p.x, const_of(rw, a, p.w, f"{conv.label}.v.w"), attrs={
                "strides": (sh, 1), "dilations": (dh, 1), "pads": (pads[0], 0, pads[2], 0)},
                name=f"{conv.label}.v")
            h = rw.create("conv", v.output, const_of(rw, b, p.w, f"{conv.label}.h.w"),
                          *p.tail(), attrs={
                              **p.epilogue(), "residual": p.attrs["residual"],
                              "strides": (1, sw), "dilations": (1, dw),
                              "pads": (0, pads[1], 0, pads[3])}, name=f"{conv.label}.h")
            rw.record(conv, **cost_record([conv], [v, h]), rank=r, error=err)
            rw.replace(conv, h)
            done += 1
        if done:
            graph.remove_unused_constants()
        return PassResult(changed=bool(done), stats={"factorized": done, "refused": refused})
