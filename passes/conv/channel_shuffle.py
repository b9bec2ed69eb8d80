"""``channel-shuffle``: PyTorch's exported channel shuffle -- reshape [N, C, *S] to
[N, g, C/g, *S], transpose (0, 2, 1, ...), reshape back -- becomes one ``channel_shuffle{groups}``.
Exact: both move channel ``j * (C/g) + i`` to position ``i * g + j``."""

from __future__ import annotations

from lwc.rewrite import Match, Rewriter, any_value, op, pattern_set
from lwc.passes.conv.common import cost_record

channel_shuffle = pattern_set(
    "channel-shuffle", exact=True,
    doc="Recognise reshape-transpose-reshape channel shuffles as channel_shuffle{groups}.\n\n"
        "Exact (a pure data movement). The inner reshape and transpose must have no other "
        "reader; the result must have the input's type.")


def shuffle_groups(m: Match) -> int | None:
    """g when the matched chain is a channel shuffle of x with g groups, else None."""
    x = m.value("x").type
    split = m.node("split").output.type
    perm = tuple(m.node("swap").attrs.get("perm", ()))
    if x.rank < 3 or split.rank != x.rank + 1 or m.root.output.type != x:
        return None
    n, c, rest = x.shape[0], x.shape[1], tuple(x.shape[2:])
    g, cg = split.shape[1], split.shape[2]
    if not all(isinstance(d, int) for d in (c, g, cg)) or g * cg != c:
        return None
    if split.shape[0] != n or tuple(split.shape[3:]) != rest:
        return None
    if perm != (0, 2, 1, *range(3, split.rank)):
        return None
    return int(g)


@channel_shuffle.rule(op("reshape", op("transpose", op("reshape", any_value("x"), name="split",
                                                         single_use=True),
                                       name="swap", single_use=True)))
def recognise(m: Match, rw: Rewriter) -> None:
    g = shuffle_groups(m)
    if g is None:
        return
    label = m.node("swap").label
    new = rw.create("channel_shuffle", m.value("x"), attrs={"groups": g}, name=label)
    old = [m.node("split"), m.node("swap"), m.root]
    rw.record(new, **cost_record(old, [new]), groups=g, replaced=len(old))
    rw.replace(m.root, new)
