"""Channel coupling for structured pruning: which channels of which values must go together.

Every non-constant value with a concrete axis 1 (NC... activations, [N, F] features) gets one
element per channel. Ops tie elements: elementwise ops, batch norm and pools tie channel ``i`` of
their inputs to channel ``i`` of their output (a depthwise conv with channel multiplier ``m``: input
channel ``i`` to output channels ``i*m .. i*m+m-1``); concat (and split) along axis 1
tie each input channel to its offset in the output; flatten/reshape to [N, C*R] ties input channel
``c`` to the R output features ``c*R .. c*R+R-1``. The connected components of these ties
(``scipy.sparse.csgraph.connected_components``) are the units that are removed together: removing
a component removes one slice from every value it touches, and every op can be sliced to match.

Producers (conv with group 1, depthwise conv, conv_transpose, gemm/matmul with constant weights)
create new channels from whole input slices, so they cut the ties: their output channels are
their own components. A component is *frozen* (never removed) when it reaches a graph input or
output, or any op this analysis does not understand (channel_shuffle, LRN, softmax, grouped
convs other than depthwise, reshapes that move channels, ...): those ops would mix the channel
with others, so slicing it out would not be consistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lwc.ir.core import Graph, Node, Value
from lwc.ops.registry import get_op
from lwc.ops.tensor import norm_axis

PASS_THROUGH = ("batch_norm", "max_pool", "avg_pool", "global_avg_pool", "global_max_pool",
                "identity", "dropout", "cast")
"""Ops whose first input's channel i becomes output channel i (other operands: per-channel
parameters, sliced along with it)."""


@dataclass
class Producer:
    """A node that creates its output channels from whole input slices."""

    node: Node
    kind: str
    """"conv", "depthwise", "conv_transpose", "gemm" or "matmul"."""


@dataclass
class ChannelGroups:
    """The coupling analysis of one graph; build it with ``analyse(graph)``."""

    graph: Graph
    base: dict[Value, int] = field(default_factory=dict)
    """Index of each value's channel 0 among all elements."""
    producers: list[Producer] = field(default_factory=list)
    frozen_by: dict[str, str] = field(default_factory=dict)
    """Node label -> why its channels are frozen (op name or a short reason)."""
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Component of every element."""
    frozen: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    """Per component: must be kept."""

    def has(self, v: Value) -> bool:
        return v in self.base

    def size(self, v: Value) -> int:
        return int(v.type.shape[1])

    def components(self, v: Value) -> np.ndarray:
        """The component of each channel of ``v``."""
        b = self.base[v]
        return self.labels[b:b + self.size(v)]

    @property
    def count(self) -> int:
        return len(self.frozen)


def _channelled(v: Value) -> bool:
    return (not v.is_constant and v.type.rank >= 2 and isinstance(v.type.shape[1], int)
            and v.type.shape[1] > 0)


class _Builder:
    """Collects tie edges and frozen elements node by node."""

    def __init__(self, graph: Graph) -> None:
        self.g = ChannelGroups(graph)
        n = 0
        for v in graph.values():
            if _channelled(v):
                self.g.base[v] = n
                n += int(v.type.shape[1])
        self.n = n
        self.src: list[np.ndarray] = []
        self.dst: list[np.ndarray] = []
        self.frozen_elems: list[np.ndarray] = []

    # ----- primitives ------------------------------------------------------------------------
    def idx(self, v: Value) -> np.ndarray:
        b = self.g.base[v]
        return np.arange(b, b + self.g.size(v))

    def edge(self, a: np.ndarray, b: np.ndarray) -> None:
        self.src.append(a)
        self.dst.append(b)

    def freeze(self, v: Value) -> None:
        if self.g.has(v):
            self.frozen_elems.append(self.idx(v))

    def tie(self, a: Value, b: Value) -> bool:
        """Channel i of ``a`` is channel i of ``b``; False when they do not both have channels
        of the same count."""
        if not (self.g.has(a) and self.g.has(b)) or self.g.size(a) != self.g.size(b):
            return False
        self.edge(self.idx(a), self.idx(b))
        return True

    def freeze_node(self, node: Node, why: str) -> None:
        for v in (*node.inputs, *node.outputs):
            self.freeze(v)
        self.g.frozen_by.setdefault(node.label, why)

    # ----- per-op rules: True when the node is understood and its ties recorded ---------------
    def couple(self, node: Node) -> None:
        rule = getattr(self, "op_" + node.op, None)
        if rule is not None:
            ok = rule(node)
        elif node.op in PASS_THROUGH:
            ok = self.pass_through(node)
        elif get_op(node.op).elementwise and len(node.outputs) == 1:
            ok = self.elementwise(node)
        else:
            ok = False
        if not ok:
            self.freeze_node(node, node.op)

    def pass_through(self, node: Node) -> bool:
        if not all(v.is_constant for v in node.inputs[1:]):
            return False
        x, y = node.inputs[0], node.output
        if not self.g.has(x) and not self.g.has(y):
            return True  # no channels involved
        return self.tie(x, y)

    def elementwise(self, node: Node) -> bool:
        y = node.output
        if not self.g.has(y):
            return not any(self.g.has(v) for v in node.inputs)
        c, r = self.g.size(y), y.type.rank
        for v in node.inputs:
            axis = 1 - (r - v.type.rank)  # the operand axis aligned with channel axis 1
            dim = v.type.shape[axis] if 0 <= axis < v.type.rank else 1
            if dim == 1:
                continue  # broadcasts along the channels: nothing to slice
            if v.is_constant:
                if dim != c:
                    return False
            elif not (axis == 1 and self.tie(v, y)):
                return False
        return True

    def _residual_and_bias(self, node: Node, y: Value, bias: Value | None,
                           residual: Value | None) -> bool:
        if bias is not None and not bias.is_constant:
            return False
        return residual is None or self.tie(residual, y)

    def op_conv(self, node: Node) -> bool:
        from lwc.passes.conv.common import conv_parts

        p = conv_parts(node)
        x, y = node.inputs[0], node.output
        if p is None or not (self.g.has(x) and self.g.has(y)):
            return False
        if not self._residual_and_bias(node, y, p.bias, p.residual):
            return False
        g, cin, cout = p.attrs["group"], self.g.size(x), self.g.size(y)
        if g == 1:
            self.g.producers.append(Producer(node, "conv"))
            return True
        if g == cin and cout % cin == 0:
            # depthwise, channel multiplier m: output channel j reads input channel j // m only
            self.g.producers.append(Producer(node, "depthwise"))
            self.edge(self.g.base[x] + np.arange(cout) // (cout // cin), self.idx(y))
            return True
        self.g.frozen_by[node.label] = f"conv with group={g} (only depthwise is pruned)"
        return False

    def op_conv_transpose(self, node: Node) -> bool:
        x, y = node.inputs[0], node.output
        attrs = get_op("conv_transpose").complete_attrs(node.attrs, node.label)
        if attrs["group"] != 1 or not node.inputs[1].is_constant:
            return False
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        if not (self.g.has(x) and self.g.has(y)) or not self._residual_and_bias(node, y, bias,
                                                                               None):
            return False
        self.g.producers.append(Producer(node, "conv_transpose"))
        return True

    def op_gemm(self, node: Node) -> bool:
        attrs = get_op("gemm").complete_attrs(node.attrs, node.label)
        a, y = node.inputs[0], node.output
        if attrs["trans_a"] or not node.inputs[1].is_constant:
            return False
        if not (self.g.has(a) and self.g.has(y)):
            return False
        residual = node.inputs[-1] if attrs["residual"] else None
        has_c = len(node.inputs) > (3 if attrs["residual"] else 2)
        c = node.inputs[2] if has_c else None
        if not self._residual_and_bias(node, y, c, residual):
            return False
        self.g.producers.append(Producer(node, "gemm"))
        return True

    def op_matmul(self, node: Node) -> bool:
        a, b, y = node.inputs[0], node.inputs[1], node.output
        if not (b.is_constant and b.type.rank == 2 and a.type.rank == 2):
            return False
        if not (self.g.has(a) and self.g.has(y)):
            return False
        self.g.producers.append(Producer(node, "matmul"))
        return True

    def op_concat(self, node: Node) -> bool:
        y = node.output
        axis = norm_axis(get_op("concat").complete_attrs(node.attrs)["axis"], y.type.rank)
        if axis != 1:
            return all(self.tie(x, y) for x in node.inputs)
        if not all(self.g.has(x) for x in node.inputs) or not self.g.has(y):
            return False
        off = self.g.base[y]
        for x in node.inputs:
            n = self.g.size(x)
            self.edge(self.idx(x), np.arange(off, off + n))
            off += n
        return True

    def op_split(self, node: Node) -> bool:
        x = node.inputs[0]
        axis = norm_axis(get_op("split").complete_attrs(node.attrs)["axis"], x.type.rank)
        if axis != 1:
            return all(self.tie(x, y) for y in node.outputs)
        if not self.g.has(x) or not all(self.g.has(y) for y in node.outputs):
            return False
        off = self.g.base[x]
        for y in node.outputs:
            n = self.g.size(y)
            self.edge(np.arange(off, off + n), self.idx(y))
            off += n
        return True

    def op_flatten(self, node: Node) -> bool:
        x = node.inputs[0]
        axis = get_op("flatten").complete_attrs(node.attrs)["axis"]
        axis = axis % (x.type.rank + 1) if axis < 0 else axis
        return axis == 1 and self._merge_trailing(x, node.output)

    def op_reshape(self, node: Node) -> bool:
        x, y = node.inputs[0], node.output
        if y.type.rank != 2 or x.type.shape[0] != y.type.shape[0]:
            return False
        return self._merge_trailing(x, y)

    def _merge_trailing(self, x: Value, y: Value) -> bool:
        """y = x.reshape(N, C*R): feature f of y is channel f // R of x."""
        if not (self.g.has(x) and self.g.has(y)) or y.type.rank != 2:
            return False
        rest = x.type.shape[2:]
        if not all(isinstance(d, int) for d in rest):
            return False
        r = int(np.prod(rest, dtype=np.int64))
        if r == 0 or self.g.size(y) != self.g.size(x) * r:
            return False
        self.edge(self.g.base[x] + np.arange(self.g.size(y)) // r, self.idx(y))
        return True

    def op_squeeze(self, node: Node) -> bool:
        x, y = node.inputs[0], node.output
        axes = get_op("squeeze").complete_attrs(node.attrs)["axes"]
        kept_first = {norm_axis(a, x.type.rank) for a in axes}.isdisjoint({0, 1})
        return bool(axes) and kept_first and self.tie(x, y)

    def op_unsqueeze(self, node: Node) -> bool:
        x, y = node.inputs[0], node.output
        axes = get_op("unsqueeze").complete_attrs(node.attrs)["axes"]
        return {norm_axis(a, y.type.rank) for a in axes}.isdisjoint({0, 1}) and self.tie(x, y)

    def op_transpose(self, node: Node) -> bool:
        x, y = node.inputs[0], node.output
        perm = get_op("transpose").complete_attrs(node.attrs)["perm"]
        return tuple(perm[:2]) == (0, 1) and self.tie(x, y)

    def op_pad(self, node: Node) -> bool:
        x, y = node.inputs[0], node.output
        pads, r = get_op("pad").complete_attrs(node.attrs)["pads"], x.type.rank
        return len(node.inputs) == 1 and pads[1] == 0 and pads[r + 1] == 0 and self.tie(x, y)

    # ----- result -----------------------------------------------------------------------------
    def finish(self) -> ChannelGroups:
        g = self.g
        for v in (*g.graph.inputs, *g.graph.outputs):
            self.freeze(v)
            if v.producer is not None:
                g.frozen_by.setdefault(v.producer.label, "graph output")
        src = np.concatenate(self.src) if self.src else np.zeros(0, np.int64)
        dst = np.concatenate(self.dst) if self.dst else np.zeros(0, np.int64)
        adj = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(self.n, self.n))
        _, g.labels = connected_components(adj, directed=False)
        g.frozen = np.zeros(int(g.labels.max()) + 1 if self.n else 0, bool)
        if self.frozen_elems:
            g.frozen[g.labels[np.concatenate(self.frozen_elems)]] = True
        return g


def analyse(graph: Graph) -> ChannelGroups:
    """Channel components of ``graph``, its producers and what is frozen (see the module doc)."""
    b = _Builder(graph)
    for node in graph.nodes:
        b.couple(node)
    return b.finish()
