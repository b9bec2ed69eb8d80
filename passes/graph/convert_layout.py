"""Layout conversion NCHW -> NHWC or NCHW[x]c: every 2-D conv becomes ``conv_nhwc`` (or the
channel-blocked ``conv_nchwc``) between layout transforms (a transpose; for blocking a reshape and
a transpose), then those sink through channel-agnostic ops and cancel pairwise, so a chain of
convs keeps activations in the new layout and only the graph boundary (and ops with no such form,
such as pools) keeps transforms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from lwc.passes.graph.simplify_reshape import reshape_target, simplify_reshape

from lwc.ir.core import Graph, Node, Value
from lwc.ops.layout import block_array, block_weight
from lwc.ops.registry import get_op
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.rewrite import Match, Rewriter, Rule, any_value, apply_rules, const, op

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def _perm(node: Node) -> tuple[int, ...]:
    rank = node.inputs[0].type.rank
    return tuple(node.attrs.get("perm", ())) or tuple(range(rank))[::-1]


def _to_nhwc(rw: Rewriter, v: Value) -> Value:
    """``v`` channels-last: a transposed copy of a constant, else a transpose node."""
    if v.data is not None:
        return rw.const(np.ascontiguousarray(np.transpose(v.data, TO_NHWC)), v.name)
    return rw.create("transpose", v, attrs={"perm": TO_NHWC}).output


def _convert_conv(graph: Graph, node: Node) -> bool:
    """conv(x, w, [b], [r]) -> T(conv_nhwc(T(x), w_ohwi, [b], [T(r)]))."""
    x, w = node.inputs[0], node.inputs[1]
    if x.type.rank != 4 or w.data is None:
        return False
    rw = Rewriter(graph, node)
    ins = [_to_nhwc(rw, x), _to_nhwc(rw, w)]
    rest = list(node.inputs[2:])
    if node.attrs.get("residual"):
        rest[-1] = _to_nhwc(rw, rest[-1])
    y = rw.create("conv_nhwc", *ins, *rest, attrs=node.attrs, name=node.name).output
    rw.replace(node, rw.create("transpose", y, attrs={"perm": TO_NCHW}))
    return True


def _to_blocked(rw: Rewriter, v: Value, b: int) -> Value:
    """[N, C, H, W] -> [N, C/b, H, W, b]: reshape then transpose (constants are converted)."""
    if v.data is not None:
        return rw.const(block_array(v.data, b), v.name)
    _, c, h, w = v.type.shape
    r = rw.create("reshape", v, attrs={"shape": (0, c // b, b, h, w)}).output  # type: ignore
    return rw.create("transpose", r, attrs={"perm": (0, 1, 3, 4, 2)}).output


def _convert_conv_blocked(graph: Graph, node: Node, b: int) -> bool:
    """conv(x, w, [b], [r]) -> unblock(conv_nchwc(block(x), block(w), [b], [block(r)]))."""
    x, w, y = node.inputs[0], node.inputs[1], node.outputs[0]
    shapes = (x.type.shape[1:], y.type.shape[1:])
    if x.type.rank != 4 or w.data is None or not all(isinstance(d, int) for s in shapes for d in s):
        return False
    if x.type.shape[1] % b or y.type.shape[1] % b:  # type: ignore[operator]
        return False
    rw = Rewriter(graph, node)
    rest = list(node.inputs[2:])
    if node.attrs.get("residual"):
        rest[-1] = _to_blocked(rw, rest[-1], b)
    yb = rw.create("conv_nchwc", _to_blocked(rw, x, b), rw.const(block_weight(w.data, b), w.name),
                   *rest, attrs={**node.attrs, "block": b}, name=node.name).output
    t = rw.create("transpose", yb, attrs={"perm": (0, 1, 4, 2, 3)}).output
    rw.replace(node, rw.create("reshape", t, attrs={"shape": (0, *y.type.shape[1:])}))
    return True


# ----- transpose sinking -------------------------------------------------------------------------

def _unary(m: Match, rw: Rewriter) -> None:
    """act(T(x)) -> T(act(x)) for one-input elementwise ops."""
    root = m.root
    if len(root.inputs) != 1 or not get_op(root.op).elementwise:
        return
    y = rw.create(root.op, m.value("x"), attrs=root.attrs, name=root.name).output
    rw.replace(root, rw.create("transpose", y, attrs={"perm": _perm(m.node("t"))}))


def _unary_reshape(m: Match, rw: Rewriter) -> None:
    """act(reshape(x)) -> reshape(act(x)): elementwise ops do not care about the shape."""
    root = m.root
    if len(root.inputs) != 1 or not get_op(root.op).elementwise:
        return
    y = rw.create(root.op, m.value("x"), attrs=root.attrs, name=root.name).output
    rw.replace(root, rw.create("reshape", y, attrs=m.node("t").attrs))


def _binary_both(m: Match, rw: Rewriter) -> None:
    """bin(T(a, p), T(b, p)) -> T(bin(a, b), p)."""
    p = _perm(m.node("t"))
    if p != _perm(m.node("u")) or not get_op(m.root.op).elementwise:
        return
    y = rw.create(m.root.op, m.value("a"), m.value("b"), attrs=m.root.attrs).output
    rw.replace(m.root, rw.create("transpose", y, attrs={"perm": p}))


def _binary_const(m: Match, rw: Rewriter) -> None:
    """bin(T(x, p), c) -> T(bin(x, T(c4, p^-1)), p), with c4 = c padded to the rank; operand
    order is kept (sub and div are not commutative)."""
    root, t = m.root, m.node("t")
    p, c = _perm(t), m["c"]
    if c.ndim > len(p) or not get_op(root.op).elementwise:
        return
    c4 = np.transpose(c.reshape((1,) * (len(p) - c.ndim) + c.shape), _inverse(p))
    cv = rw.const(np.ascontiguousarray(c4), m.value("c").name)
    ins = [m.value("x"), cv] if root.inputs[0] is t.outputs[0] else [cv, m.value("x")]
    y = rw.create(root.op, *ins, attrs=root.attrs).output
    rw.replace(root, rw.create("transpose", y, attrs={"perm": p}))


def _concat(m: Match, rw: Rewriter) -> None:
    """concat(T(a, p), T(b, p), ..., axis=k) -> T(concat(a, b, ..., axis=p[k]), p)."""
    root = m.root
    producers = [v.producer for v in root.inputs]
    if any(n is None or n.op != "transpose" or len(n.outputs[0].uses) != 1 for n in producers):
        return
    perms = {_perm(n) for n in producers}  # type: ignore[arg-type]
    if len(perms) != 1:
        return
    p = perms.pop()
    axis = root.attrs.get("axis", 0) % len(p)
    y = rw.create("concat", *[n.inputs[0] for n in producers],  # type: ignore[union-attr]
                  attrs={"axis": p[axis]}, name=root.name).output
    rw.replace(root, rw.create("transpose", y, attrs={"perm": p}))


def _global_pool(m: Match, rw: Rewriter) -> None:
    """global_pool(T(x, NHWC->NCHW)) -> T(reduce(x, spatial axes of NHWC))."""
    if _perm(m.node("t")) != TO_NCHW:
        return
    reduce = "reduce_mean" if m.root.op == "global_avg_pool" else "reduce_max"
    y = rw.create(reduce, m.value("x"), attrs={"axes": (1, 2), "keepdims": True}).output
    rw.replace(m.root, rw.create("transpose", y, attrs={"perm": TO_NCHW}))


def _transpose_as_reshape(m: Match, rw: Rewriter) -> None:
    """A transpose that only moves size-1 axes is a reshape (which then folds into flatten)."""
    x, p = m.value("x"), _perm(m.root)
    moved = [i for i in p if x.type.shape[i] != 1]
    if moved != sorted(moved) or p == tuple(range(len(p))):
        return
    target = reshape_target(x.type.shape, m.root.outputs[0].type.shape)
    if target is not None:
        rw.replace(m.root, rw.create("reshape", x, attrs={"shape": target}, name=m.root.name))


T = op("transpose", any_value("x"), name="t", single_use=True)
UNARY = ("relu", "clip", "leaky_relu", "sigmoid", "hard_swish", "hard_sigmoid", "tanh", "neg",
         "abs", "exp", "sqrt", "identity", "dropout")
SINK_RULES = [
    Rule(op(UNARY, T), _unary, "sink_unary"),
    Rule(op(UNARY, op("reshape", any_value("x"), name="t", single_use=True)), _unary_reshape,
         "sink_unary_reshape"),
    Rule(op(("add", "sub", "mul", "div", "max", "min"),
            op("transpose", any_value("a"), name="t", single_use=True),
            op("transpose", any_value("b"), name="u", single_use=True)), _binary_both,
         "sink_binary"),
    Rule(op(("add", "sub", "mul", "div", "max", "min"), T, const("c"), commutative=True),
         _binary_const, "sink_binary_const"),
    Rule(op("concat"), _concat, "sink_concat"),
    Rule(op(("global_avg_pool", "global_max_pool"), T), _global_pool, "sink_global_pool"),
    Rule(op("transpose", any_value("x")), _transpose_as_reshape, "transpose_as_reshape"),
]


@register_pass
@dataclass(frozen=True)
class ConvertLayout(Pass):
    """Convert 2-D convs to NHWC (conv_nhwc) or NCHW[x]c (conv_nchwc) and cancel the layout
    transforms between them.

    Exact: the new convs sum the same products as conv; transposes and reshapes only move
    elements, and a pair cancels only when the composition is the identity. ``layout`` is
    ``NHWC`` or ``NCHW<b>c`` (e.g. ``NCHW8c``; convs whose channel counts b does not divide stay).
    """

    name: ClassVar[str] = "convert-layout"
    exact: ClassVar[bool] = True
    layout: str = "NHWC"

    def __post_init__(self) -> None:
        if self.layout != "NHWC" and not re.fullmatch(r"NCHW([1-9]\d*)c", self.layout):
            raise ValueError(f"layout must be NHWC or NCHW<b>c such as NCHW8c, got {self.layout!r}")

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        blocked = re.fullmatch(r"NCHW(\d+)c", self.layout)
        convs = [n for n in graph.nodes if n.op == "conv"]
        if blocked:
            b = int(blocked.group(1))
            converted = sum(_convert_conv_blocked(graph, n, b) for n in convs)
        else:
            converted = sum(_convert_conv(graph, n) for n in convs)
        if not converted:
            return PassResult(changed=False)
        hits = apply_rules(graph, [*SINK_RULES, *simplify_reshape.rules])
        graph.remove_unused_constants()
        stats = {"converted": converted, **{k: v for k, v in hits.items() if v}}
        stats["transposes_left"] = len(graph.nodes_of("transpose"))
        return PassResult(changed=True, stats=stats)
