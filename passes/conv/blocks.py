"""Architecture-block recognisers: inverted residuals with linear bottleneck (MobileNet v2),
depthwise-separable pairs (MobileNet v1, Xception) and Inception modules (parallel branches
joined by a concat). ``find_blocks(graph)`` is a plain analysis (usable with ``ctx.analysis``);
the ``label-blocks`` pass records every block for ``lwc opt --json`` and changes nothing.

Both unfused graphs (conv -> batch_norm -> activation) and fused ones (``act`` on the conv) are
recognised: batch_norm is a linear step, activations are standalone ops or a conv's ``act``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from lwc.ir.core import Graph, Node, Value
from lwc.ops.registry import get_op
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass

ACT_OPS = ("relu", "clip", "leaky_relu", "hard_swish", "sigmoid", "hard_sigmoid", "tanh", "elu",
           "prelu")
"""Standalone nonlinearities (a conv/gemm ``act`` counts as one too)."""
LINEAR_OPS = ("batch_norm", "identity", "dropout")
"""Per-channel linear steps that may sit inside a block without breaking linearity."""


@dataclass(frozen=True)
class Block:
    """One recognised block: its kind, its nodes in graph order, entry and exit values."""

    kind: str
    nodes: tuple[Node, ...]
    input: Value
    output: Value
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "nodes": [n.label for n in self.nodes],
                "input": self.input.name, "output": self.output.name, **self.info}


def _conv_attrs(n: Node) -> dict[str, Any]:
    return get_op("conv").complete_attrs(n.attrs, n.label)


def is_depthwise(n: Node) -> bool:
    """A conv with one input channel per group (group > 1)."""
    if n.op != "conv":
        return False
    g = _conv_attrs(n)["group"]
    return g > 1 and n.inputs[0].type.shape[1] == g and n.inputs[1].type.shape[1] == 1


def is_pointwise(n: Node) -> bool:
    """An ungrouped 1x1 conv."""
    return (n.op == "conv" and _conv_attrs(n)["group"] == 1
            and all(k == 1 for k in n.inputs[1].type.shape[2:]))


def fused_act(n: Node) -> str:
    return str(n.attrs.get("act", "")) if n.op in ("conv", "gemm", "winograd_conv") else ""


def _reader(graph: Graph, v: Value) -> Node | None:
    if len(v.uses) != 1 or any(o is v for o in graph.outputs):
        return None
    return v.uses[0].node


def walk_forward(graph: Graph, v: Value, allow_act: bool) -> tuple[list[Node], Value, bool]:
    """Follow single readers of ``v`` through linear steps (and activations if ``allow_act``):
    (passed nodes, the last value, whether an activation was passed)."""
    passed: list[Node] = []
    saw_act = False
    while (r := _reader(graph, v)) is not None and (
            r.op in LINEAR_OPS or (allow_act and r.op in ACT_OPS)):
        saw_act |= r.op in ACT_OPS
        passed.append(r)
        v = r.output
    return passed, v, saw_act


def walk_backward(graph: Graph, v: Value) -> tuple[list[Node], Value, bool]:
    """Follow single-use producers of ``v`` back through linear steps and activations."""
    passed: list[Node] = []
    saw_act = False
    while (p := v.producer) is not None and (p.op in LINEAR_OPS or p.op in ACT_OPS) and \
            _reader(graph, v) is not None:
        saw_act |= p.op in ACT_OPS
        passed.append(p)
        v = p.inputs[0]
    return passed[::-1], v, saw_act


def _ordered(graph: Graph, nodes: list[Node]) -> tuple[Node, ...]:
    ids = {id(n) for n in nodes}
    return tuple(n for n in graph.nodes if id(n) in ids)


def inverted_residual(graph: Graph, dw: Node) -> Block | None:
    """[1x1 expand -> act] -> depthwise -> act -> 1x1 project (linear) [-> + input]."""
    mid, v, act_mid = walk_forward(graph, dw.output, allow_act=True)
    proj = _reader(graph, v)
    if proj is None or not is_pointwise(proj) or not (act_mid or fused_act(dw)):
        return None
    if fused_act(proj):
        return None
    tail, end, saw_act = walk_forward(graph, proj.output, allow_act=False)
    after = _reader(graph, end)
    if saw_act or (after is not None and after.op in ACT_OPS):
        return None  # a nonlinearity after the projection: not a linear bottleneck
    before, src, act_in = walk_backward(graph, dw.inputs[0])
    nodes = [dw, *mid, proj, *tail]
    expand = src.producer
    entry = dw.inputs[0]
    has_expand = (expand is not None and is_pointwise(expand) and (act_in or fused_act(expand))
                  and _reader(graph, src) is not None
                  and expand.output.type.shape[1] > expand.inputs[0].type.shape[1])
    if has_expand:
        assert expand is not None
        nodes[:0] = [expand, *before]
        entry = expand.inputs[0]
    out, residual = end, bool(proj.attrs.get("residual")) and proj.inputs[-1] is entry
    if proj.attrs.get("residual") and not residual:
        return None
    if after is not None and after.op == "add" and any(i is entry for i in after.inputs):
        nodes.append(after)
        out, residual = after.output, True
    return Block("inverted_residual", _ordered(graph, nodes), entry, out,
                 {"expand": has_expand, "residual": residual,
                  "depthwise": dw.label, "project": proj.label})


def separable_pair(graph: Graph, dw: Node) -> Block | None:
    """depthwise -> [batch_norm] -> 1x1 conv with no standalone nonlinearity in between (a fused
    ``act`` on the depthwise conv is allowed and reported)."""
    mid, v, _ = walk_forward(graph, dw.output, allow_act=False)
    pw = _reader(graph, v)
    if pw is None or not is_pointwise(pw):
        return None
    return Block("depthwise_separable", _ordered(graph, [dw, *mid, pw]), dw.inputs[0],
                 pw.output, {"act": fused_act(dw), "depthwise": dw.label, "pointwise": pw.label})


def _ancestors(v: Value, depth: int) -> dict[Value, int]:
    """Values reachable backwards from ``v`` within ``depth`` nodes, with their distance."""
    dist = {v: 0}
    frontier = [v]
    for d in range(1, depth + 1):
        nxt = []
        for u in frontier:
            if u.producer is None:
                continue
            for w in u.producer.inputs:
                if w.data is None and w not in dist:
                    dist[w] = d
                    nxt.append(w)
        frontier = nxt
    return dist


def _between(src: Value, v: Value, depth: int) -> list[Node]:
    """Nodes on backward paths from ``v`` that reach ``src`` (within ``depth``)."""
    found: list[Node] = []
    seen: set[int] = set()

    def reaches(u: Value, d: int) -> bool:
        if u is src:
            return True
        if u.producer is None or d == 0:
            return False
        hit = False
        for w in u.producer.inputs:
            hit |= reaches(w, d - 1)
        if hit and id(u.producer) not in seen:
            seen.add(id(u.producer))
            found.append(u.producer)
        return hit

    reaches(v, depth)
    return found


def inception_module(graph: Graph, cat: Node, depth: int = 8,
                     min_branches: int = 3) -> Block | None:
    """A concat of >= ``min_branches`` branches that all start at one value, with a conv."""
    if len(cat.inputs) < min_branches or any(v.data is not None for v in cat.inputs):
        return None
    maps = [_ancestors(v, depth) for v in cat.inputs]
    common = [v for v in maps[0] if all(v in m for m in maps[1:])]
    common = [v for v in common if all(m[v] >= 1 for m in maps)]
    if not common:
        return None
    src = min(common, key=lambda v: max(m[v] for m in maps))
    nodes: list[Node] = []
    for v in cat.inputs:
        nodes += [n for n in _between(src, v, depth) if n not in nodes]
    if not any(n.op == "conv" for n in nodes):
        return None
    return Block("inception", _ordered(graph, [*nodes, cat]), src, cat.output,
                 {"branches": len(cat.inputs), "concat": cat.label})


def find_blocks(graph: Graph) -> list[Block]:
    """Every recognised block, inverted residuals first, then separable pairs, then Inception."""
    dws = [n for n in graph.nodes if is_depthwise(n)]
    out = [b for n in dws if (b := inverted_residual(graph, n)) is not None]
    out += [b for n in dws if (b := separable_pair(graph, n)) is not None]
    out += [b for n in graph.nodes if n.op == "concat"
            and (b := inception_module(graph, n)) is not None]
    return out


@register_pass
@dataclass(frozen=True)
class LabelBlocks(Pass):
    """Record inverted residuals, depthwise-separable pairs and Inception modules (no change)."""

    name: ClassVar[str] = "label-blocks"
    exact: ClassVar[bool] = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        blocks = ctx.analysis(find_blocks, graph)
        counts: dict[str, int] = {}
        for b in blocks:
            counts[b.kind] = counts.get(b.kind, 0) + 1
            first = b.nodes[0]
            info = b.to_json()
            ctx.record(first, block=info.pop("kind"), **{k: v for k, v in info.items()})
        return PassResult(changed=False, stats=counts, preserves=(find_blocks,))
