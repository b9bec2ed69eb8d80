"""Static memory planning: every intermediate lives at a fixed offset of one workspace arena.

First, values that can share storage are grouped: views (reshape, flatten, squeeze, ...) alias
their input; an elementwise op (or a conv/gemm's fused residual) writes over an input whose
storage dies at that node; a batch-1 concat makes its producers write straight into its output.
Then each group gets a lifetime [first definition, last use], and groups plus per-node scratch
are packed greedily, largest first, at the lowest offset that no overlapping lifetime occupies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lwc.ir.core import Graph, Node, Value
from lwc.ops.registry import get_op

VIEW_OPS = frozenset({"reshape", "flatten", "squeeze", "unsqueeze", "identity", "dropout"})
ALIGN = 64


def _nbytes(v: Value) -> int:
    return v.type.nbytes()


@dataclass(eq=False)
class Group:
    """Values sharing one storage block; offsets are bytes from the block's start."""

    size: int
    members: dict[int, tuple[Value, int]] = field(default_factory=dict)
    anchor: tuple[str, int] | None = None
    """("in", i), ("const", -1) or ("out", i) for storage the arena does not own."""
    start: int = 0
    end: int = 0


@dataclass
class Aliases:
    group: dict[int, Group] = field(default_factory=dict)
    offset: dict[int, int] = field(default_factory=dict)
    inplace_concat: set[int] = field(default_factory=set)
    output_copies: list[int] = field(default_factory=list)
    """Indices of graph outputs that need a final copy into the caller's buffer."""

    def add(self, g: Group, v: Value, off: int) -> None:
        g.members[id(v)] = (v, off)
        self.group[id(v)] = g
        self.offset[id(v)] = off

    def merge(self, src: Group, dst: Group, shift: int) -> None:
        for v, off in list(src.members.values()):
            self.add(dst, v, off + shift)
        dst.start = min(dst.start, src.start)
        dst.end = max(dst.end, src.end)


def _last_uses(graph: Graph) -> dict[int, int]:
    last: dict[int, int] = {}
    for t, n in enumerate(graph.nodes):
        for v in n.inputs:
            last[id(v)] = t
    for v in graph.outputs:
        last[id(v)] = len(graph.nodes) + 1
    return last


def _inplace_candidates(node: Node) -> list[int]:
    """Operand indices whose storage the node may overwrite with its (only) result."""
    if len(node.outputs) != 1:
        return []
    op = get_op(node.op)
    if op.elementwise or node.op == "batch_norm":
        return list(range(len(node.inputs))) if op.elementwise else [0]
    if node.op in ("conv", "gemm") and node.attrs.get("residual"):
        return [len(node.inputs) - 1]
    return []


def plan_aliases(graph: Graph, inplace: bool = True) -> Aliases:
    al = Aliases()
    last = _last_uses(graph)
    for i, v in enumerate(graph.inputs):
        al.add(Group(_nbytes(v), anchor=("in", i), start=-1, end=last.get(id(v), -1)), v, 0)
    for v in graph.constants.values():
        al.add(Group(_nbytes(v), anchor=("const", -1), start=-1, end=10**9), v, 0)
    for t, node in enumerate(graph.nodes):
        out = node.outputs[0] if node.outputs else None
        if node.op in VIEW_OPS and out is not None and id(node.inputs[0]) in al.group:
            src = node.inputs[0]
            g = al.group[id(src)]
            al.add(g, out, al.offset[id(src)])
            g.end = max(g.end, last.get(id(out), t))
            continue
        if node.op == "concat" and _concat_inplace(graph, node, al, last, t):
            continue
        if inplace and out is not None and _try_inplace(node, al, last, t):
            continue
        for v in node.outputs:
            al.add(Group(_nbytes(v), start=t, end=last.get(id(v), t)), v, 0)
    claimed: set[int] = set()
    for i, v in enumerate(graph.outputs):
        g = al.group[id(v)]
        simple = al.offset[id(v)] == 0 and _nbytes(v) == g.size
        if g.anchor is None and id(g) not in claimed and simple:
            g.anchor = ("out", i)
            claimed.add(id(g))
        else:
            al.output_copies.append(i)
    return al


def _try_inplace(node: Node, al: Aliases, last: dict[int, int], t: int) -> bool:
    out = node.outputs[0]
    for k in _inplace_candidates(node):
        v = node.inputs[k]
        g = al.group.get(id(v))
        if g is None or g.anchor is not None or g.end > t:
            continue
        if v.type.shape != out.type.shape or _nbytes(v) != _nbytes(out):
            continue
        if al.offset[id(v)] != 0 or g.size != _nbytes(out):
            continue
        if not get_op(node.op).elementwise and any(
                al.group.get(id(x)) is g for j, x in enumerate(node.inputs) if j != k):
            continue  # e.g. a conv reading its residual's storage as B: tiles would overwrite it
        al.add(g, out, 0)
        g.end = max(g.end, last.get(id(out), t))
        return True
    return False


def _concat_inplace(graph: Graph, node: Node, al: Aliases, last: dict[int, int], t: int) -> bool:
    """Place each input at its offset inside the concat's output (batch-1 layouts only)."""
    out = node.output
    axis = node.attrs.get("axis", 0) % out.type.rank
    if math.prod(out.type.concrete_shape()[:axis]) != 1:
        return False
    ins = node.inputs
    for v in ins:
        g = al.group.get(id(v))
        if (g is None or g.anchor is not None or v.producer is None
                or sum(x is v for x in ins) > 1 or al.offset[id(v)] != 0 or g.size != _nbytes(v)):
            return False
        if sum(1 for x in ins if al.group.get(id(x)) is g) > 1:
            return False
    dst = Group(_nbytes(out), start=t, end=last.get(id(out), t))
    al.add(dst, out, 0)
    off = 0
    for v in ins:
        al.merge(al.group[id(v)], dst, off)
        off += _nbytes(v)
    al.inplace_concat.add(id(node))
    return True


@dataclass
class Layout:
    """Where every group and scratch buffer lives."""

    arena_size: int
    group_offset: dict[int, int]
    scratch_offset: dict[tuple[int, int], int]
    sum_intermediates: int
    largest: int


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def assign(graph: Graph, al: Aliases, scratch: dict[int, list[int]]) -> Layout:
    """Greedy by size: each block goes at the lowest offset free during its whole lifetime."""
    blocks: list[tuple[int, int, int, object]] = []  # (size, start, end, key)
    seen: set[int] = set()
    outs = {id(v) for v in graph.outputs}
    inter = [_nbytes(v) for n in graph.nodes if n.op not in VIEW_OPS for v in n.outputs
             if id(v) not in outs]
    sum_inter, largest = sum(inter), max(inter, default=0)
    for g in al.group.values():
        if id(g) in seen or g.anchor is not None:
            continue
        seen.add(id(g))
        blocks.append((_align(g.size), g.start, max(g.end, g.start), ("g", id(g))))
    for step, sizes in scratch.items():
        for k, sz in enumerate(sizes):
            blocks.append((_align(sz), step, step, ("s", step, k)))
    blocks.sort(key=lambda b: (-b[0], b[1]))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, start, end)
    gofs: dict[int, int] = {}
    sofs: dict[tuple[int, int], int] = {}
    arena = 0
    for size, start, end, key in blocks:
        busy = sorted((o, o + s) for o, s, a, b in placed if not (b < start or end < a))
        off = 0
        for lo, hi in busy:
            if off + size <= lo:
                break
            off = max(off, _align(hi))
        placed.append((off, size, start, end))
        arena = max(arena, off + size)
        if key[0] == "g":
            gofs[key[1]] = off
        else:
            sofs[(key[1], key[2])] = off
    return Layout(arena, gofs, sofs, sum_inter, largest)
