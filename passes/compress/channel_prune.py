"""``prune-channels{ratio=0.5,min_channels=8}``: structured filter/channel pruning by L1 norm
(Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017) that leaves a smaller dense graph.

The channel coupling analysis (``channel_groups``) splits every activation's channels into
components that must be removed together (through residual adds, depthwise convs, batch norm,
concats and flatten -> gemm). Components touching the same set of values form a *group* (e.g. the
residual stream of one ResNet stage, or one concat input); in each group the lowest-scoring
``ratio`` of the components are removed, keeping at least ``min_channels``. A component's score is
the sum, over the layers producing it, of the L1 norm of its filter divided by the layer's mean
filter L1 norm (so layers of different scale count alike); a filter followed only by a batch
norm is scaled by that batch norm's |gamma| / sqrt(var + eps). Then every producer's output
channels (weights, bias, batch-norm parameters, per-channel constants) and every consumer's input
channels are sliced to match, depthwise convs get the new group count, and types are re-inferred.

The pass is approximate: a removed channel's activation is dropped even where it was not zero
(e.g. a bias or batch-norm shift); fine-tune afterwards (``lwc compress --recipe prune-channels``).
Removing channels whose activation is identically zero leaves the outputs unchanged -- the tests
check exactly that on ResNet-18, MobileNet v2, Inception, SqueezeNet, LeNet-5 and the MLP.
Grouped convs other than depthwise (group == input channels, any channel multiplier), channel
shuffles and
channel-moving reshapes are not pruned: their channels are frozen (see ``channel_groups``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from lwc.analysis import reinfer_types
from lwc.cost import Cost, graph_cost
from lwc.errors import PassError
from lwc.ir.core import Graph, Node, Value
from lwc.ops.registry import get_op
from lwc.ops.tensor import norm_axis
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.passes.compress.channel_groups import ChannelGroups, Producer, analyse
from lwc.passes.conv.common import cost_of


@dataclass(frozen=True)
class LayerChange:
    """One producer layer's output channels and cost before and after pruning."""

    node: str
    op: str
    channels_before: int
    channels_after: int
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    ref: Node | None = field(default=None, repr=False, compare=False)
    """The node itself (for ``ctx.record``)."""


@dataclass
class PruneResult:
    before: Cost
    after: Cost
    removed: int
    """Components (channel slices) removed."""
    groups: int
    """Groups that lost at least one component."""
    frozen: int
    """Components that could not be removed (graph inputs/outputs, unsupported ops)."""
    layers: list[LayerChange] = field(default_factory=list)

    @property
    def mac_ratio(self) -> float:
        return self.after.macs / self.before.macs if self.before.macs else 1.0

    @property
    def param_ratio(self) -> float:
        return self.after.params / self.before.params if self.before.params else 1.0


# ----- scoring ----------------------------------------------------------------------------------
def filter_l1(p: Producer) -> np.ndarray:
    """L1 norm of each output channel's filter."""
    w = np.abs(np.asarray(p.node.inputs[1].data, dtype=np.float64))
    if p.kind in ("conv", "depthwise"):
        return w.reshape(w.shape[0], -1).sum(axis=1)
    if p.kind == "conv_transpose":
        return w.sum(axis=tuple(i for i in range(w.ndim) if i != 1))
    if p.kind == "gemm" and get_op("gemm").complete_attrs(p.node.attrs)["trans_b"]:
        return w.sum(axis=1)
    return w.sum(axis=0)  # gemm without trans_b, matmul: B is [K, N]


def _bn_scale(y: Value, graph: Graph) -> np.ndarray | None:
    """|gamma| / sqrt(var + eps) of a batch norm that is ``y``'s only reader, else None."""
    users = y.users
    if len(users) != 1 or users[0].op != "batch_norm" or y in graph.outputs:
        return None
    bn = users[0]
    gamma, var = bn.inputs[1].data, bn.inputs[4].data
    if gamma is None or var is None or bn.inputs[0] is not y:
        return None
    eps = get_op("batch_norm").complete_attrs(bn.attrs)["epsilon"]
    return np.abs(gamma.astype(np.float64)) / np.sqrt(var.astype(np.float64) + eps)


def scores(groups: ChannelGroups) -> tuple[np.ndarray, np.ndarray]:
    """(score, has_producer) per component."""
    score = np.zeros(groups.count)
    produced = np.zeros(groups.count, bool)
    for p in groups.producers:
        y = p.node.output
        l1 = filter_l1(p)
        if (s := _bn_scale(y, groups.graph)) is not None:
            l1 = l1 * s
        mean = float(l1.mean()) if l1.size else 0.0
        comp = groups.components(y)
        np.add.at(score, comp, l1 / mean if mean > 0 else l1)
        produced[comp] = True
    return score, produced


def choose(groups: ChannelGroups, ratio: float, min_channels: int) -> tuple[np.ndarray, int]:
    """(removed mask per component, number of groups touched)."""
    score, produced = scores(groups)
    members: dict[int, set[int]] = defaultdict(set)  # component -> values (by index) it touches
    for i, v in enumerate(groups.base):
        for c in np.unique(groups.components(v)):
            members[int(c)].add(i)
    by_sig: dict[frozenset[int], list[int]] = defaultdict(list)
    for c, vals in members.items():
        by_sig[frozenset(vals)].append(c)
    removed = np.zeros(groups.count, bool)
    touched = 0
    for comps in by_sig.values():
        total = len(comps)
        cand = [c for c in comps if produced[c] and not groups.frozen[c]]
        n = min(int(np.floor(ratio * total + 1e-9)), total - max(min_channels, 1), len(cand))
        if n <= 0:
            continue
        cand.sort(key=lambda c: (score[c], c))
        removed[cand[:n]] = True
        touched += 1
    return removed, touched


# ----- slicing ----------------------------------------------------------------------------------
class _Slicer:
    """Applies a removal mask: slices constants and fixes attributes node by node."""

    def __init__(self, groups: ChannelGroups, removed: np.ndarray) -> None:
        self.g, self.graph, self.removed = groups, groups.graph, removed

    def keep(self, v: Value) -> np.ndarray | None:
        """Kept channel indices of ``v``; None when nothing of it is removed."""
        if not self.g.has(v):
            return None
        gone = self.removed[self.g.components(v)]
        return np.flatnonzero(~gone) if gone.any() else None

    def keep_all(self, v: Value) -> np.ndarray:
        k = self.keep(v)
        return np.arange(self.g.size(v)) if k is None else k

    def set_const(self, node: Node, index: int, data: np.ndarray) -> None:
        """Replace operand ``index`` (a constant) for this node only."""
        v = node.inputs[index]
        data = np.ascontiguousarray(data)
        if len(v.uses) == 1 and v not in self.graph.outputs:
            self.graph.set_constant(v, data)
        else:
            node.set_input(index, self.graph.add_constant(data, v.name))

    def take(self, node: Node, index: int, keep: np.ndarray, axis: int) -> None:
        self.set_const(node, index, np.take(node.inputs[index].data, keep, axis=axis))

    def apply(self, node: Node, kind: str | None) -> None:
        ins, y = node.inputs, node.outputs[0]
        if kind in ("conv", "depthwise", "conv_transpose", "gemm", "matmul"):
            ki, ko = self.keep(ins[0]), self.keep(y)
            if ki is None and ko is None:
                return
            getattr(self, "_" + kind)(node, self.keep_all(ins[0]), self.keep_all(y))
        elif node.op == "batch_norm":
            if (k := self.keep(y)) is not None:
                for i in range(1, 5):
                    self.take(node, i, k, 0)
        elif node.op == "split":
            x = ins[0]
            axis = norm_axis(get_op("split").complete_attrs(node.attrs)["axis"], x.type.rank)
            if axis == 1 and self.keep(x) is not None:
                node.attrs["sizes"] = tuple(len(self.keep_all(o)) for o in node.outputs)
        elif node.op == "reshape":
            shape = list(get_op("reshape").complete_attrs(node.attrs)["shape"])
            if (k := self.keep(y)) is not None and shape[1] not in (0, -1):
                node.attrs["shape"] = (shape[0], len(k))
        elif get_op(node.op).elementwise:
            if self.g.has(y) and (k := self.keep(y)) is not None:
                self._per_channel_constants(node, k)

    def _per_channel_constants(self, node: Node, keep: np.ndarray) -> None:
        y = node.outputs[0]
        c, r = self.g.size(y), y.type.rank
        for i, v in enumerate(node.inputs):
            axis = 1 - (r - v.type.rank)
            if v.is_constant and 0 <= axis < v.type.rank and v.type.shape[axis] == c and c > 1:
                self.take(node, i, keep, axis)

    def _bias(self, node: Node, index: int, ko: np.ndarray) -> None:
        if index < len(node.inputs) and node.inputs[index].is_constant:
            self.take(node, index, ko, node.inputs[index].data.ndim - 1)

    def _conv(self, node: Node, ki: np.ndarray, ko: np.ndarray) -> None:
        w = node.inputs[1].data
        self.set_const(node, 1, w[ko][:, ki])
        residual = bool(node.attrs.get("residual"))
        if len(node.inputs) > (3 if residual else 2):
            self._bias(node, 2, ko)

    def _depthwise(self, node: Node, ki: np.ndarray, ko: np.ndarray) -> None:
        self.set_const(node, 1, node.inputs[1].data[ko])
        node.attrs["group"] = len(ki)
        residual = bool(node.attrs.get("residual"))
        if len(node.inputs) > (3 if residual else 2):
            self._bias(node, 2, ko)

    def _conv_transpose(self, node: Node, ki: np.ndarray, ko: np.ndarray) -> None:
        self.set_const(node, 1, node.inputs[1].data[ki][:, ko])
        self._bias(node, 2, ko)

    def _gemm(self, node: Node, ki: np.ndarray, ko: np.ndarray) -> None:
        attrs = get_op("gemm").complete_attrs(node.attrs)
        b = node.inputs[1].data
        self.set_const(node, 1, b[ko][:, ki] if attrs["trans_b"] else b[ki][:, ko])
        has_c = len(node.inputs) > (3 if attrs["residual"] else 2)
        n_old = node.outputs[0].type.shape[1]
        if has_c and (c := node.inputs[2]).type.rank >= 1 and c.type.shape[-1] == n_old != 1:
            self._bias(node, 2, ko)

    def _matmul(self, node: Node, ki: np.ndarray, ko: np.ndarray) -> None:
        self.set_const(node, 1, node.inputs[1].data[ki][:, ko])


def prune_channels(graph: Graph, ratio: float = 0.5, min_channels: int = 8) -> PruneResult:
    """Remove the lowest-L1 ``ratio`` of the channels of every coupled group (in place)."""
    if not 0.0 <= ratio < 1.0:
        raise PassError(f"prune-channels: ratio must be in [0, 1), got {ratio}")
    if min_channels < 1:
        raise PassError(f"prune-channels: min_channels must be >= 1, got {min_channels}")
    before = graph_cost(graph)
    groups = analyse(graph)
    removed, touched = choose(groups, ratio, min_channels)
    kinds = {id(p.node): p.kind for p in groups.producers}
    layers = []
    if removed.any():
        slicer = _Slicer(groups, removed)
        old = {id(p.node): (p.node.output.type.shape[1], *cost_of([p.node]))
               for p in groups.producers}
        for node in list(graph.nodes):
            slicer.apply(node, kinds.get(id(node)))
        graph.remove_unused_constants()
        reinfer_types(graph)
        for p in groups.producers:
            ch, macs, params = old[id(p.node)]
            if p.node.output.type.shape[1] != ch or cost_of([p.node])[1] != params:
                macs_after, params_after = cost_of([p.node])
                layers.append(LayerChange(p.node.label, p.node.op, int(ch),
                                          int(p.node.output.type.shape[1]), macs, macs_after,
                                          params, params_after, p.node))
    frozen = int(groups.frozen.sum())
    return PruneResult(before, graph_cost(graph), int(removed.sum()), touched, frozen, layers)


@register_pass
@dataclass(frozen=True)
class PruneChannels(Pass):
    """Structured channel pruning by filter L1 norm, consistent through adds, depthwise and concat.

    Removes the lowest-scoring ``ratio`` of the channels of each coupled group (at least
    ``min_channels`` stay), slicing producers and consumers into a smaller dense graph. Records
    each changed layer's channels, MACs and parameters, and the whole graph's before/after.
    """

    name: ClassVar[str] = "prune-channels"
    exact: ClassVar[bool] = False
    ratio: float = 0.5
    min_channels: int = 8

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        r = prune_channels(graph, self.ratio, self.min_channels)
        for layer in r.layers:
            ctx.record(layer.ref or layer.node, channels_before=layer.channels_before,
                       channels_after=layer.channels_after, macs_before=layer.macs_before,
                       macs_after=layer.macs_after, params_before=layer.params_before,
                       params_after=layer.params_after)
        stats: dict[str, Any] = {"removed": r.removed, "groups": r.groups, "frozen": r.frozen}
        ctx.record(graph.name, macs_before=r.before.macs, macs_after=r.after.macs,
                   params_before=r.before.params, params_after=r.after.params,
                   mac_ratio=r.mac_ratio, param_ratio=r.param_ratio)
        return PassResult(changed=r.removed > 0, stats=stats)
