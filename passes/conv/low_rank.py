"""``low-rank{energy=E|mac_ratio=r}``: a gemm or 1x1 conv with weight matrix W [N, K] becomes two
layers of width R from the truncated SVD W ~ (U_R sqrt(S_R)) (sqrt(S_R) V_R^T).

MACs per output row go from K*N to R*(K + N). The rank is the smallest R keeping ``energy`` of
sum(s^2), or with ``mac_ratio`` the largest R with R*(K + N) <= mac_ratio*K*N. Error = discarded
sum(s^2) / sum(s^2). A layer where R gives no MAC saving is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwc.errors import PassError
from lwc.ir.core import Graph, Node
from lwc.ops.registry import get_op
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.passes.conv.common import ConvParts, const_of, conv_parts, cost_record, truncation_error
from lwc.rewrite import Rewriter


def choose_rank(s: np.ndarray, k: int, n: int, energy: float, mac_ratio: float) -> int:
    """The rank by ``mac_ratio`` when it is > 0, else by kept ``energy``; at least 1."""
    if mac_ratio > 0:
        return max(1, min(len(s), int(mac_ratio * k * n // (k + n))))
    e = np.cumsum(s.astype(np.float64) ** 2)
    if e[-1] <= 0:
        return 1
    return int(min(len(s), np.searchsorted(e / e[-1], energy - 1e-12) + 1))


def split(mat: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first [R, K], second [N, R], s) with second @ first the rank-R truncation of mat [N, K]."""
    u, s, vt = np.linalg.svd(mat.astype(np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    return root[:, None] * vt[:rank], u[:, :rank] * root, s


def _pointwise(p: ConvParts | None) -> bool:
    return (p is not None and p.attrs["group"] == 1 and all(k == 1 for k in p.kernel))


def _gemm_weight(node: Node) -> np.ndarray | None:
    """W [N, K] of a gemm with constant B (y = A' @ W^T), or None."""
    b = node.inputs[1].data
    if b is None:
        return None
    attrs = get_op("gemm").complete_attrs(node.attrs)
    return b if attrs["trans_b"] else b.T


@register_pass
@dataclass(frozen=True)
class LowRank(Pass):
    """Approximate gemm and 1x1 conv layers by two thinner layers (truncated SVD).

    Rank by kept ``energy`` or by target ``mac_ratio`` (used when > 0); a layer whose relative
    reconstruction error exceeds ``max_error`` is refused. Records MACs/params, rank and error.
    """

    name: ClassVar[str] = "low-rank"
    exact: ClassVar[bool] = False
    energy: float = 0.99
    mac_ratio: float = 0.0
    max_error: float = 1.0

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if not 0 < self.energy <= 1:
            raise PassError(f"pass {self.name}: energy must be in (0, 1], got {self.energy}")
        done = refused = 0
        for node in list(graph.nodes):
            p = conv_parts(node)
            if node.op == "conv" and _pointwise(p):
                assert p is not None
                mat = p.w.reshape(p.w.shape[0], -1)
            elif node.op == "gemm" and (w := _gemm_weight(node)) is not None:
                mat = w
            else:
                continue
            n, k = mat.shape
            first, second, s = split(mat, min(mat.shape))
            r = choose_rank(s, k, n, self.energy, self.mac_ratio)
            err = truncation_error(s, r)
            if r * (k + n) >= k * n or err > self.max_error:
                ctx.record(node, refused=True, rank=r, error=err, max_error=self.max_error,
                           reason="no MAC saving" if r * (k + n) >= k * n else "max_error")
                refused += 1
                continue
            first, second = first[:r], second[:, :r]
            rw = Rewriter(graph, node, ctx)
            made = (self._conv(rw, p, first, second) if node.op == "conv"
                    else self._gemm(rw, node, first, second))
            rw.record(node, **cost_record([node], made), rank=r, error=err)
            rw.replace(node, made[-1])
            done += 1
        if done:
            graph.remove_unused_constants()
        return PassResult(changed=bool(done), stats={"factorized": done, "refused": refused})

    @staticmethod
    def _conv(rw: Rewriter, p: ConvParts | None, first: np.ndarray,
              second: np.ndarray) -> list[Node]:
        assert p is not None
        conv, ones = p.node, (1,) * p.nsp
        a = rw.create("conv", p.x, const_of(rw, first.reshape(*first.shape, *ones), p.w,
                                            f"{conv.label}.lr1.w"),
                      attrs={"strides": p.strides(), "pads": p.pads(),
                             "dilations": p.dilations()}, name=f"{conv.label}.lr1")
        b = rw.create("conv", a.output, const_of(rw, second.reshape(*second.shape, *ones), p.w,
                                                 f"{conv.label}.lr2.w"),
                      *p.tail(), attrs={**p.epilogue(), "residual": p.attrs["residual"]},
                      name=f"{conv.label}.lr2")
        return [a, b]

    @staticmethod
    def _gemm(rw: Rewriter, node: Node, first: np.ndarray, second: np.ndarray) -> list[Node]:
        attrs = get_op("gemm").complete_attrs(node.attrs)
        dtype = node.inputs[1].data
        a = rw.create("gemm", node.inputs[0], const_of(rw, first, dtype, f"{node.label}.lr1.w"),
                      attrs={"trans_a": attrs["trans_a"], "trans_b": True},
                      name=f"{node.label}.lr1")
        rest = {k: v for k, v in attrs.items() if k not in ("trans_a", "trans_b")}
        b = rw.create("gemm", a.output, const_of(rw, second, dtype, f"{node.label}.lr2.w"),
                      *node.inputs[2:], attrs={**rest, "trans_b": True},
                      name=f"{node.label}.lr2")
        return [a, b]
