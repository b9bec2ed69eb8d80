"""Helpers shared by the conv rewrites: reading a conv's operands, cost figures for
``ctx.record``, re-emitting a fused epilogue as plain ops, and the SVD error measure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lwc.cost import node_cost
from lwc.ir.core import Graph, Node, Value
from lwc.ops.registry import get_op
from lwc.rewrite import Rewriter

EPILOGUE = ("act", "alpha", "clip_min", "clip_max")
"""Conv attributes of the fused activation (``residual`` is handled with the operands)."""


@dataclass
class ConvParts:
    """A conv node's operands and complete attributes, weights as numpy."""

    node: Node
    attrs: dict[str, Any]
    x: Value
    w: np.ndarray
    bias: Value | None
    residual: Value | None

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.w.shape[2:])

    @property
    def nsp(self) -> int:
        return self.w.ndim - 2

    def strides(self) -> tuple[int, ...]:
        return tuple(self.attrs["strides"]) or (1,) * self.nsp

    def dilations(self) -> tuple[int, ...]:
        return tuple(self.attrs["dilations"]) or (1,) * self.nsp

    def pads(self) -> tuple[int, ...]:
        return tuple(self.attrs["pads"]) or (0,) * (2 * self.nsp)

    def tail(self) -> list[Value]:
        """Operands after the weight (bias, residual) as the conv has them."""
        return list(self.node.inputs[2:])

    def epilogue(self) -> dict[str, Any]:
        return {k: self.attrs[k] for k in EPILOGUE}


def conv_parts(node: Node) -> ConvParts | None:
    """The parts of a conv with a constant weight and concrete channel counts; else None."""
    if node.op != "conv" or len(node.inputs) < 2 or node.inputs[1].data is None:
        return None
    attrs = get_op("conv").complete_attrs(node.attrs, node.label)
    ins = node.inputs
    residual = ins[-1] if attrs["residual"] else None
    nb = 3 if attrs["residual"] else 2
    bias = ins[2] if len(ins) > nb else None
    if not isinstance(ins[0].type.shape[1], int):
        return None
    return ConvParts(node, attrs, ins[0], np.asarray(ins[1].data), bias, residual)


def cost_of(nodes: Iterable[Node]) -> tuple[int, int]:
    """(MACs, parameters) summed over ``nodes`` by ``lwc.cost.node_cost`` (batch 1)."""
    macs = params = 0
    for n in nodes:
        c = node_cost(n)
        macs += c.macs
        params += c.params
    return macs, params


def cost_record(before: Sequence[Node], after: Sequence[Node]) -> dict[str, Any]:
    """``macs_before/after``, ``params_before/after`` and ``mac_ratio`` for ``ctx.record``."""
    mb, pb = cost_of(before)
    ma, pa = cost_of(after)
    return {"macs_before": mb, "macs_after": ma, "params_before": pb, "params_after": pa,
            "mac_ratio": ma / mb if mb else None}


def emit_epilogue(rw: Rewriter, y: Value, epi: dict[str, Any], residual: Value | None,
                  name: str) -> Value:
    """Residual add then the fused activation, as separate ops (for lowerings to matmul)."""
    if residual is not None:
        y = rw.create("add", y, residual, name=f"{name}.residual").output
    act = epi.get("act", "")
    if not act:
        return y
    if act == "relu6":
        return rw.create("clip", y, attrs={"min": 0.0, "max": 6.0}, name=f"{name}.act").output
    if act == "clip":
        return rw.create("clip", y, attrs={"min": epi["clip_min"], "max": epi["clip_max"]},
                         name=f"{name}.act").output
    if act == "leaky_relu":
        return rw.create("leaky_relu", y, attrs={"alpha": epi["alpha"]},
                         name=f"{name}.act").output
    return rw.create(act, y, name=f"{name}.act").output


def truncation_error(s: np.ndarray, keep: int) -> float:
    """Relative squared Frobenius error of a rank-``keep`` SVD truncation: the discarded
    singular values' energy over the total (Eckart-Young)."""
    total = float(np.sum(s.astype(np.float64) ** 2))
    return float(np.sum(s[keep:].astype(np.float64) ** 2)) / total if total > 0 else 0.0


def relative_error(approx: np.ndarray, exact: np.ndarray) -> float:
    """||approx - exact||_F^2 / ||exact||_F^2 in float64 (0 for an all-zero ``exact``)."""
    e = exact.astype(np.float64)
    den = float(np.sum(e * e))
    return float(np.sum((approx.astype(np.float64) - e) ** 2)) / den if den > 0 else 0.0


def const_of(rw: Rewriter, data: np.ndarray, like: np.ndarray, name: str) -> Value:
    """A new constant in ``like``'s dtype."""
    return rw.const(np.ascontiguousarray(data).astype(like.dtype), name)


def convs(graph: Graph) -> Iterator[ConvParts]:
    """Every conv of the graph with constant weights, in graph order. The node list is a
    snapshot; each conv's operands are read when it is reached, after earlier rewrites."""
    for n in list(graph.nodes):
        if n in graph.nodes and (p := conv_parts(n)) is not None:
            yield p


def spatial_kind(p: ConvParts) -> bool:
    """True for a 2-d conv (NCHW), the only kind the 2-d rewrites handle."""
    return p.nsp == 2 and p.x.type.rank == 4
