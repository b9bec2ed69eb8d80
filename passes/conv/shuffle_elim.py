"""``eliminate-shuffle``: remove ``channel_shuffle`` nodes by permuting weights instead.

Sinking: the shuffle moves below channel-wise consumers (depthwise conv, batch_norm, per-channel
affine, unary activations, pools), whose per-channel parameters are re-indexed, until a conv
whose groups the permutation keeps (any dense conv) or a gemm on [N, C] absorbs it into its input
axis. Hoisting: otherwise it moves above channel-wise producers until a conv (or gemm) producing
its input absorbs it into its output axis. A shuffle that reaches neither is left where it is (a
shuffle between two grouped convs cannot be absorbed: that is what it is for). Exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwc.ir.core import Graph, Node, Value
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.rewrite import Rewriter
from lwc.passes.conv.channelwise import keeps_groups, out_perm, param_axes, shuffle_perm
from lwc.passes.conv.common import conv_parts, cost_record
from lwc.ops.registry import get_op


def _only_reader(graph: Graph, v: Value) -> Node | None:
    """The single node reading ``v`` (at operand 0 only), or None."""
    if len(v.uses) != 1 or v.uses[0].index != 0 or any(o is v for o in graph.outputs):
        return None
    return v.uses[0].node


def _gemm_ok(node: Node) -> bool:
    attrs = get_op("gemm").complete_attrs(node.attrs)
    return (node.inputs[1].data is not None and not attrs["trans_a"] and not attrs["residual"]
            and node.inputs[0].type.rank == 2)


def _absorbs_input(node: Node, perm: np.ndarray) -> bool:
    if node.op == "gemm":
        return _gemm_ok(node)
    p = conv_parts(node)
    return p is not None and keeps_groups(perm, p.attrs["group"])


def _absorbs_output(node: Node, perm: np.ndarray) -> bool:
    if node.op == "gemm":
        c = node.inputs[2] if len(node.inputs) > 2 else None
        return _gemm_ok(node) and (c is None or c.data is not None)
    p = conv_parts(node)
    return (p is not None and p.residual is None and keeps_groups(perm, p.attrs["group"])
            and (p.bias is None or p.bias.data is not None))


def _rebuild(rw: Rewriter, node: Node, first: Value, order: np.ndarray | None,
             axes: dict[int, int | None]) -> Node:
    """``node`` reading ``first``, its per-channel constants taken in ``order``."""
    ins = [first]
    for i, v in enumerate(node.inputs[1:], start=1):
        ax = axes.get(i)
        if order is not None and ax is not None and v.data is not None:
            ins.append(rw.const(np.take(v.data, order, axis=ax), v.name))
        else:
            ins.append(v)
    return rw.create(node.op, *ins, attrs=node.attrs, name=node.name)


def _weights_in(rw: Rewriter, node: Node, first: Value, inv: np.ndarray) -> Node:
    """Absorber with its input-channel axis re-indexed: reads unpermuted ``first``."""
    w = node.inputs[1]
    if node.op == "gemm":
        trans_b = get_op("gemm").complete_attrs(node.attrs)["trans_b"]
        new_w = np.take(w.data, inv, axis=1 if trans_b else 0)
    else:
        groups = get_op("conv").complete_attrs(node.attrs)["group"]
        cg = w.data.shape[1]
        local = inv.reshape(groups, cg) % cg  # block-preserving: index inside each group
        new_w = np.stack([np.take(w.data[j * (w.data.shape[0] // groups):
                                         (j + 1) * (w.data.shape[0] // groups)],
                                  local[j], axis=1) for j in range(groups)]).reshape(w.data.shape)
    return rw.create(node.op, first, rw.const(new_w, w.name), *node.inputs[2:],
                     attrs=node.attrs, name=node.name)


def _weights_out(rw: Rewriter, node: Node, src: np.ndarray) -> Node:
    """Producer with its output-channel axis taken in ``src`` order (weights, bias)."""
    ins = list(node.inputs)
    w = ins[1]
    if node.op == "gemm":
        trans_b = get_op("gemm").complete_attrs(node.attrs)["trans_b"]
        ins[1] = rw.const(np.take(w.data, src, axis=0 if trans_b else 1), w.name)
        if len(ins) > 2 and ins[2].type.shape and ins[2].type.shape[-1] == len(src):
            ins[2] = rw.const(np.take(ins[2].data, src, axis=-1), ins[2].name)
    else:
        ins[1] = rw.const(np.take(w.data, src, axis=0), w.name)
        if len(ins) > 2:
            ins[2] = rw.const(np.take(ins[2].data, src, axis=0), ins[2].name)
    return rw.create(node.op, *ins, attrs=node.attrs, name=node.name)


def try_sink(graph: Graph, shuffle: Node, ctx: PassContext) -> bool:
    perm = shuffle_perm(int(shuffle.output.type.shape[1]), shuffle.attrs["groups"])
    chain: list[tuple[Node, dict[int, int | None], np.ndarray]] = []
    cur = shuffle.output
    while (reader := _only_reader(graph, cur)) is not None:
        if reader.op in ("conv", "gemm") and _absorbs_input(reader, perm):
            rw = Rewriter(graph, reader, ctx)
            v = shuffle.inputs[0]
            made = []
            for node, axes, pout in chain:
                made.append(_rebuild(rw, node, v, np.argsort(pout), axes))
                v = made[-1].output
            new = _weights_in(rw, reader, v, np.argsort(perm))
            rw.record(shuffle, **cost_record([shuffle, *(c[0] for c in chain), reader],
                                             [*made, new]),
                      direction="sink", absorbed_by=reader.label, through=len(chain))
            rw.replace(reader, new)
            return True
        axes = param_axes(reader, 0)
        if axes is None:
            return False
        perm = out_perm(reader, perm)
        chain.append((reader, axes, perm))
        cur = reader.output
    return False


def try_hoist(graph: Graph, shuffle: Node, ctx: PassContext) -> bool:
    src = shuffle_perm(int(shuffle.output.type.shape[1]), shuffle.attrs["groups"])
    chain: list[tuple[Node, dict[int, int | None]]] = []
    cur = shuffle.inputs[0]
    while (prod := cur.producer) is not None and _only_reader(graph, cur) is not None:
        if prod.op in ("conv", "gemm") and _absorbs_output(prod, src):
            rw = Rewriter(graph, shuffle, ctx)
            made = [_weights_out(rw, prod, src)]
            v = made[0].output
            for node, axes in reversed(chain):
                made.append(_rebuild(rw, node, v, src, axes))
                v = made[-1].output
            rw.record(shuffle, **cost_record([prod, *(c[0] for c in chain), shuffle], made),
                      direction="hoist", absorbed_by=prod.label, through=len(chain))
            rw.replace(shuffle, v)
            return True
        axes = param_axes(prod, 0)
        if axes is None or out_perm(prod, src) is not src:  # a depthwise multiplier > 1
            return False
        chain.append((prod, axes))
        cur = prod.inputs[0]
    return False


@register_pass
@dataclass(frozen=True)
class EliminateShuffle(Pass):
    """Absorb channel_shuffle nodes into neighbouring conv/gemm weights (exact).

    Run ``channel-shuffle`` first so exported reshape-transpose-reshape shuffles are ops.
    Each removed shuffle records where it went (``direction``, ``absorbed_by``, ``through``).
    """

    name: ClassVar[str] = "eliminate-shuffle"
    exact: ClassVar[bool] = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        removed = kept = 0
        for node in list(graph.nodes):
            if node.op != "channel_shuffle" or node not in graph.nodes:
                continue
            if not isinstance(node.output.type.shape[1], int):
                kept += 1
                continue
            if try_sink(graph, node, ctx) or try_hoist(graph, node, ctx):
                removed += 1
            else:
                kept += 1
        if removed:
            graph.remove_unused_constants()
        return PassResult(changed=bool(removed), stats={"removed": removed, "kept": kept})
