"""``factorize-depthwise{multiplier=M|full}``: a KxK conv as a depthwise conv (channel multiplier
M) followed by a pointwise 1x1 conv, fitted per input channel by a rank-M SVD.

For input channel c the weight slice W[:, c] is a Cout x K^2 matrix; W[:, c] ~ sum_m s_m u_m v_m^T
keeps its M largest singular triplets. Depthwise filter (c, m) is s_m v_m (output channel c*M+m of
a group=Cin conv) and pointwise column c*M+m is u_m. The layer's error is the discarded energy
sum(s_m^2, m >= M) / sum(s^2) over all slices; ``full`` (M = min(Cout, K^2)) is exact. MACs go
from HW*Cout*Cin*K^2 to HW*Cin*M*(K^2 + Cout): with M = 1 a ratio of 1/Cout + 1/K^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwc.errors import PassError
from lwc.ir.core import Graph
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.passes.conv.common import ConvParts, const_of, convs, cost_record
from lwc.rewrite import Rewriter


def slice_svds(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched SVD of the per-input-channel slices: U [Cin, Cout, r], S [Cin, r], Vt [Cin, r, K^2]
    with r = min(Cout, K^2), in float64."""
    cout, cin = w.shape[:2]
    mats = w.astype(np.float64).reshape(cout, cin, -1).transpose(1, 0, 2)  # Cin, Cout, K^2
    u, s, vt = np.linalg.svd(mats, full_matrices=False)
    return u, s, vt


def factorize(w: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(depthwise [Cin*M, 1, *k], pointwise [Cout, Cin*M, 1...], per-slice errors [Cin])."""
    cout, cin, kernel = w.shape[0], w.shape[1], w.shape[2:]
    u, s, vt = slice_svds(w)
    energy = np.sum(s ** 2, axis=1)
    discarded = np.sum(s[:, m:] ** 2, axis=1)
    errors = np.divide(discarded, energy, out=np.zeros_like(energy), where=energy > 0)
    dw = (s[:, :m, None] * vt[:, :m, :]).reshape(cin * m, 1, *kernel)
    pw = u[:, :, :m].transpose(1, 0, 2).reshape(cout, cin * m, *([1] * len(kernel)))
    return dw, pw, errors


def layer_error(w: np.ndarray, m: int) -> float:
    """Discarded energy over total energy of the whole weight (the reported ``error``)."""
    _, s, _ = slice_svds(w)
    total = float(np.sum(s ** 2))
    return float(np.sum(s[:, m:] ** 2)) / total if total > 0 else 0.0


def eligible(p: ConvParts) -> bool:
    """Ungrouped conv with a kernel of more than one tap."""
    return p.attrs["group"] == 1 and int(np.prod(p.kernel)) > 1


@register_pass
@dataclass(frozen=True)
class FactorizeDepthwise(Pass):
    """Approximate KxK convs by depthwise (multiplier M) + pointwise convs via per-channel SVD.

    ``multiplier`` is M or ``full`` (exact). A layer whose relative reconstruction error exceeds
    ``max_error`` is refused (and recorded as such). Records MACs/params before/after, ``error``
    and ``max_slice_error``.
    """

    name: ClassVar[str] = "factorize-depthwise"
    exact: ClassVar[bool] = False
    multiplier: int | str = 1
    max_error: float = 1.0

    def rank(self, p: ConvParts) -> int:
        full = min(p.w.shape[0], int(np.prod(p.kernel)))
        if self.multiplier == "full":
            return full
        if not isinstance(self.multiplier, int) or self.multiplier < 1:
            raise PassError(f"pass {self.name}: multiplier must be a positive int or full, "
                            f"got {self.multiplier!r}")
        return min(self.multiplier, full)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        done = refused = 0
        for p in convs(graph):
            if not eligible(p):
                continue
            m = self.rank(p)
            dw, pw, errors = factorize(p.w, m)
            err = layer_error(p.w, m)
            conv = p.node
            if err > self.max_error:
                ctx.record(conv, refused=True, error=err, max_error=self.max_error, multiplier=m)
                refused += 1
                continue
            rw = Rewriter(graph, conv, ctx)
            cin = int(p.x.type.shape[1])
            d = rw.create("conv", p.x, const_of(rw, dw, p.w, f"{conv.label}.dw.w"), attrs={
                "strides": p.strides(), "pads": p.pads(), "dilations": p.dilations(),
                "group": cin}, name=f"{conv.label}.dw")
            pw_attrs = {**p.epilogue(), "residual": p.attrs["residual"]}
            q = rw.create("conv", d.output, const_of(rw, pw, p.w, f"{conv.label}.pw.w"),
                          *p.tail(), attrs=pw_attrs, name=f"{conv.label}.pw")
            rw.record(conv, **cost_record([conv], [d, q]), multiplier=m, error=err,
                      max_slice_error=float(np.max(errors)))
            rw.replace(conv, q)
            done += 1
        if done:
            graph.remove_unused_constants()
        return PassResult(changed=bool(done), stats={"factorized": done, "refused": refused})
