"""Reshape and transpose simplification: chains of shape-only ops collapse into one reshape,
transpose pairs compose, and ops that leave the shape (or order) unchanged disappear."""

from __future__ import annotations

from collections.abc import Sequence

from lwc.ir.types import Dim
from lwc.ops.tensor import reshape_shape
from lwc.rewrite import Match, Rewriter, any_value, op, pattern_set, takes_output_name

simplify_reshape = pattern_set(
    "simplify-reshape", exact=True,
    doc="Collapse reshape/flatten/squeeze/unsqueeze chains, compose transposes, drop no-ops.\n\n"
        "Exact: these ops only move (or re-index) elements; composing them moves the same "
        "elements to the same places.")

SHAPE_OPS = ("reshape", "flatten", "squeeze", "unsqueeze")
"""Ops that reinterpret the row-major buffer without moving elements."""


def reshape_target(src: Sequence[Dim], dst: Sequence[Dim]) -> tuple[int, ...] | None:
    """A reshape ``shape`` attribute taking ``src`` to ``dst`` (0 keeps a symbol in place, one
    -1 absorbs the rest), or None when symbols make that impossible."""
    target = []
    for i, d in enumerate(dst):
        if isinstance(d, int):
            target.append(d)
        elif i < len(src) and src[i] == d:
            target.append(0)
        else:
            return None
    try:
        ok = tuple(reshape_shape(src, target)) == tuple(dst)
    except ValueError:
        return None
    if ok and 0 in target and any(t == 0 and isinstance(dst[i], int)
                                  for i, t in enumerate(target)):
        return None  # a literal 0-sized dim would read as "copy"
    return tuple(target) if ok else None


def _remove(m: Match, rw: Rewriter, src_name: str = "x") -> None:
    out, src = m.root.outputs[0], m.value(src_name)
    if out.type != src.type:
        return
    if any(o is out for o in m.graph.outputs) and not takes_output_name(m.graph, out, src):
        return
    rw.replace(out, src)


@simplify_reshape.rule(op(SHAPE_OPS, op(SHAPE_OPS, any_value("x"), ...), ...))
def collapse_reshapes(m: Match, rw: Rewriter) -> None:
    """shape_op(shape_op(x)) -> reshape(x) (the inner op stays if others read it)."""
    root = m.root
    target = reshape_target(m.value("x").type.shape, root.outputs[0].type.shape)
    if target is None or len(root.inputs) != 1:
        return
    rw.replace(root, rw.create("reshape", m.value("x"), attrs={"shape": target}, name=root.name))


@simplify_reshape.rule(op(SHAPE_OPS, any_value("x"), ...))
def noop_reshape(m: Match, rw: Rewriter) -> None:
    if len(m.root.inputs) == 1:
        _remove(m, rw)


def _perm(rank: int, perm: Sequence[int]) -> list[int]:
    return list(perm) if perm else list(range(rank))[::-1]


@simplify_reshape.rule(op("transpose", op("transpose", any_value("x"), name="inner")))
def compose_transposes(m: Match, rw: Rewriter) -> None:
    """transpose(transpose(x, p1), p2) -> transpose(x, p1[p2]) (or x if that is the identity)."""
    rank = m.value("x").type.rank
    p1 = _perm(rank, m.node("inner").attrs.get("perm", ()))
    p2 = _perm(rank, m.root.attrs.get("perm", ()))
    perm = tuple(p1[i] for i in p2)
    if perm == tuple(range(rank)):
        _remove(m, rw)
        return
    rw.replace(m.root, rw.create("transpose", m.value("x"), attrs={"perm": perm},
                                 name=m.root.name))


@simplify_reshape.rule(op("transpose", any_value("x")))
def identity_transpose(m: Match, rw: Rewriter) -> None:
    rank = m.value("x").type.rank
    if tuple(_perm(rank, m.root.attrs.get("perm", ()))) == tuple(range(rank)):
        _remove(m, rw)
