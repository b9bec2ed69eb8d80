"""Which ops act channel by channel, and how a channel permutation moves through them.

With ``y = x[:, perm]`` (a channel shuffle), a channel-wise op Q with per-channel parameters
theta satisfies ``Q_theta(x[:, perm]) = Q_theta'(x)[:, perm_out]`` where theta' is theta
re-indexed by ``argsort(perm_out)``: the permutation sinks below Q. A dense conv (or a grouped
conv whose groups the permutation keeps) absorbs it into its weights' input axis, and a conv
producing x absorbs it into its output axis.
"""

from __future__ import annotations

import numpy as np

from lwc.ir.core import Node, Value
from lwc.ops.registry import get_op

POOLS = ("max_pool", "avg_pool", "global_avg_pool", "global_max_pool")


def shuffle_perm(channels: int, groups: int) -> np.ndarray:
    """src with ``channel_shuffle(x)[:, i] == x[:, src[i]]``."""
    return np.arange(channels).reshape(groups, channels // groups).T.reshape(-1)


def _per_channel_axis(v: Value, out_rank: int, channels: int) -> int | None | bool:
    """Axis of constant ``v`` that runs over channels; None if it is broadcast over channels;
    False if it is neither (then the op is not channel-wise)."""
    shape = v.type.shape
    if len(shape) > out_rank:
        return False
    full = (1,) * (out_rank - len(shape)) + tuple(shape)
    if any(d != 1 for i, d in enumerate(full) if i != 1):
        return False
    if full[1] == 1:
        return None
    return (1 - (out_rank - len(shape))) if full[1] == channels else False


def param_axes(node: Node, index: int) -> dict[int, int | None] | None:
    """For a channel-wise ``node`` reading the permuted value at operand ``index``: operand index
    -> channel axis of that constant (None = broadcast). None when ``node`` is not channel-wise
    (then the permutation cannot pass through it)."""
    if index != 0 or not node.outputs or node.output.type.rank < 2:
        return None
    channels = node.output.type.shape[1]
    rank = node.output.type.rank
    op = node.op
    if op == "batch_norm":
        if not all(v.data is not None for v in node.inputs[1:]):
            return None
        return {i: 0 for i in range(1, 5)}
    if op in POOLS:
        return {}
    if op in ("flatten", "reshape"):
        return {} if _flattens_channels(node) else None
    if op == "conv":
        return _depthwise_axes(node)
    opdef = get_op(op)
    if not opdef.elementwise:
        return None
    if len(node.inputs) == 1:
        return {}
    if len(node.inputs) != 2 or node.inputs[1].data is None:
        return None
    axis = _per_channel_axis(node.inputs[1], rank, int(channels))
    if axis is False:
        return None
    return {1: axis}  # type: ignore[dict-item]


def _depthwise_axes(node: Node) -> dict[int, int | None] | None:
    from lwc.passes.conv.common import conv_parts

    p = conv_parts(node)
    if p is None or p.residual is not None:
        return None
    cin = int(p.x.type.shape[1])
    if p.attrs["group"] != cin or p.w.shape[1] != 1:
        return None
    axes: dict[int, int | None] = {1: 0}
    if p.bias is not None:
        if p.bias.data is None:
            return None
        axes[2] = 0
    return axes


def _flattens_channels(node: Node) -> bool:
    """A flatten/reshape of [N, C, *S] (static C, S) to [N, C * prod(S)]: channel i becomes the
    block of prod(S) features starting at i * prod(S)."""
    src, dst = node.inputs[0].type, node.output.type
    dims = src.shape[1:]
    if dst.rank != 2 or not all(isinstance(d, int) for d in dims) or dst.shape[0] != src.shape[0]:
        return False
    return node.op == "reshape" or node.attrs.get("axis", 1) == 1


def multiplier(node: Node) -> int:
    """Output channels per input channel: a depthwise conv's multiplier, a flatten's prod(S)."""
    if node.op in ("conv", "flatten", "reshape"):
        return int(node.output.type.shape[1]) // int(node.inputs[0].type.shape[1])
    return 1


def out_perm(node: Node, perm: np.ndarray) -> np.ndarray:
    """The output-channel permutation after sinking ``perm`` through ``node``."""
    m = multiplier(node)
    if m == 1:
        return perm
    return (perm[:, None] * m + np.arange(m)[None, :]).reshape(-1)


def keeps_groups(perm: np.ndarray, groups: int) -> bool:
    """True when ``perm`` maps every block of len(perm)/groups channels onto itself."""
    size = len(perm) // groups
    return bool(np.all(perm // size == np.arange(len(perm)) // size))
