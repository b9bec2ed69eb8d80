"""Binary and ternary networks as graph rewrites: BNN, XNOR-Net and TBN.

Three steps, each a pass (``binarize``, ``lower-xnor``, ``fold-bn-sign``) and a function:

1. ``prepare`` rewrites the hidden conv/gemm layers (the first and last weight layers stay real
   unless asked) into their *training* form, a float simulation that ``lwc.train`` can
   differentiate: ``batch_norm -> binarize|ternarize -> conv/gemm`` whose weight is trained
   through the ``SignSTE`` transform (``sign(W)`` for BNN, ``mean|W| * sign(W)`` per output filter
   for XNOR-Net and TBN). XNOR-Net also multiplies by the activation scale
   ``K = box_filter(mean_c |x|)`` (``abs -> reduce_mean(axis 1) -> avg_pool`` with the conv's
   window, stride and padding, zero padding counted, i.e. the paper's k = 1/(wh)); for a gemm K
   is the mean |x| of each row. BNN drops the binary layers' biases (the next BatchNorm absorbs
   them) so that the layer outputs stay integers.
2. ``lower_binary`` turns each ``conv|gemm(binarize|ternarize(x), alpha*sign)`` into
   ``xnor_conv|xnor_gemm(x, sign, alpha)`` (bias, if any, as a following ``add``): the same
   function computed as exact integer dot products times alpha, up to float rounding of the
   alpha scaling (none at all for BNN, whose alpha is 1).
3. ``fold_bn_sign`` replaces a ``batch_norm`` whose every reader binarises its output by
   ``sign_threshold(x, tau, dir)``. tau is found by bisection over the float32 values using
   the interpreter's own batch_norm kernel, so the result is bit-identical for every finite
   input; when the input is an integer accumulator (an xnor op without alpha, possibly through
   relu/max_pool/flatten) tau is rounded to the integer the popcount is compared with, and the
   fold is checked on every integer in [-K, K].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from lwc.errors import PassError
from lwc.ir.core import Graph, Node, Value
from lwc.ops.binary import binarize
from lwc.ops.registry import get_op
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.train.trainer import SignSTE

SCHEMES = ("bnn", "xnor", "tbn")
INTEGER_PRESERVING = ("relu", "max_pool", "flatten", "reshape", "identity")
"""Ops that map integer-valued float tensors to integer-valued ones (bounds kept)."""


@dataclass
class Prepared:
    """What ``prepare`` did: the binarised layers and what the trainer needs."""

    scheme: str
    layers: list[str]
    """Labels of the conv/gemm nodes made binary, in graph order."""
    transforms: dict[str, SignSTE] = field(default_factory=dict)
    """Weight transforms by constant name (the binary weights)."""
    extra: list[str] = field(default_factory=list)
    """Float constants outside the trainer's usual weight slots that must also train."""


def weight_layers(graph: Graph) -> list[Node]:
    """conv and gemm nodes with a constant weight, in graph order."""
    return [n for n in graph.nodes if n.op in ("conv", "gemm") and n.inputs[1].is_constant]


def eligible(node: Node) -> str:
    """Why ``node`` cannot become a binary layer ("" when it can)."""
    a = get_op(node.op).complete_attrs(node.attrs, node.label)
    if a.get("act") or a.get("residual"):
        return "it has a fused activation or residual"
    if node.op == "conv":
        if node.inputs[0].type.rank != 4 or a["group"] != 1:
            return "only ungrouped 2-D convolutions are binarised"
        if any(d != 1 for d in a["dilations"]):
            return "dilated convolutions are not binarised"
    elif a["trans_a"] or a["alpha"] != 1.0:
        return "gemm with trans_a or alpha != 1"
    return ""


def select_layers(graph: Graph, names: Sequence[str] | None = None, first: bool = False,
                  last: bool = False) -> list[Node]:
    """The layers to binarise: ``names`` (node labels) if given, else every weight layer but the
    first and the last (each included on request)."""
    layers = weight_layers(graph)
    if names is not None:
        by_label = {n.label: n for n in layers}
        missing = [k for k in names if k not in by_label]
        if missing:
            raise PassError(f"graph @{graph.name}: no conv/gemm layer named {', '.join(missing)}; "
                            f"layers: {', '.join(by_label)}")
        chosen = [by_label[k] for k in names]
    else:
        chosen = layers[(0 if first else 1):(None if last else -1)] if len(layers) > 1 else (
            layers if first or last else [])
    for n in chosen:
        if (why := eligible(n)):
            raise PassError(f"node {n.label} ({n.op}): cannot binarise: {why}")
    return chosen


def _rewire(graph: Graph, old: Value, new: Value, keep: Sequence[Node]) -> None:
    """Every reader of ``old`` except the nodes in ``keep`` reads ``new`` instead."""
    for use in list(old.uses):
        if not any(use.node is k for k in keep):
            use.node.set_input(use.index, new)
    graph.outputs = [new if v is old else v for v in graph.outputs]


def prepare(graph: Graph, scheme: str, *, threshold: float = 0.5,
            layers: Sequence[str] | None = None, first: bool = False,
            last: bool = False) -> Prepared:
    """Rewrite ``graph`` in place into the training form of ``scheme`` (see the module doc)."""
    if scheme not in SCHEMES:
        raise PassError(f"unknown binary scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    chosen = select_layers(graph, layers, first, last)
    prep = Prepared(scheme, [n.label for n in chosen])
    for node in chosen:
        _prepare_layer(graph, node, prep, threshold)
    graph.toposort()
    graph.remove_unused_constants()
    graph.verify()
    return prep


def _prepare_layer(graph: Graph, node: Node, prep: Prepared, threshold: float) -> None:
    label, scheme = node.label, prep.scheme
    x = node.inputs[0]
    c = int(x.type.concrete_shape()[1])
    f32 = np.float32
    params = [graph.add_constant(np.ones(c, f32), f"{label}.bn.scale"),
              graph.add_constant(np.zeros(c, f32), f"{label}.bn.bias"),
              graph.add_constant(np.zeros(c, f32), f"{label}.bn.mean"),
              graph.add_constant(np.ones(c, f32), f"{label}.bn.var")]
    bn = graph.add_node("batch_norm", [x, *params], name=f"{label}.bn", before=node)
    if scheme == "tbn":
        q = graph.add_node("ternarize", [bn.output], {"threshold": threshold},
                           name=f"{label}.ternarize", before=node)
    else:
        q = graph.add_node("binarize", [bn.output], name=f"{label}.binarize", before=node)
    w, bias = node.inputs[1], (node.inputs[2] if len(node.inputs) > 2 else None)
    attrs = dict(node.attrs)
    if node.op == "gemm":
        a = get_op("gemm").complete_attrs(node.attrs)
        if not a["trans_b"]:
            graph.set_constant(w, np.ascontiguousarray(np.asarray(w.data).T))
            attrs["trans_b"] = True
        if bias is not None and a["beta"] != 1.0:
            graph.set_constant(bias, np.asarray(bias.data) * np.float32(a["beta"]))
        attrs.pop("beta", None)
    prep.transforms[w.name] = SignSTE(scaled=scheme != "bnn")
    keep_bias = bias is not None and scheme == "tbn"
    node.set_inputs([q.output, w] + ([bias] if keep_bias else []))
    node.attrs = attrs
    if scheme != "xnor":
        return
    # XNOR-Net: y = (sign(x) * sign(W)) * alpha * K + b with K = box(mean_c |x|)
    ab = graph.add_node("abs", [bn.output], name=f"{label}.abs")
    mean = graph.add_node("reduce_mean", [ab.output], {"axes": (1,), "keepdims": True},
                          name=f"{label}.mean")
    k = mean
    if node.op == "conv":
        ca = get_op("conv").complete_attrs(node.attrs)
        k = graph.add_node("avg_pool", [mean.output],
                           {"kernel": tuple(w.type.concrete_shape()[2:]),
                            "strides": ca["strides"], "pads": ca["pads"],
                            "count_include_pad": True}, name=f"{label}.kmap")
    scaled = graph.add_node("mul", [node.output, k.output], name=f"{label}.scaled")
    out = scaled
    if bias is not None:
        shape = (1, -1, 1, 1) if node.op == "conv" else (1, -1)
        b = graph.add_constant(np.asarray(bias.data).reshape(shape), f"{label}.bias")
        out = graph.add_node("add", [scaled.output, b], name=f"{label}.biased")
        prep.extra.append(b.name)
    _rewire(graph, node.output, out.output, keep=[scaled])


def commit_binary(graph: Graph, prep: Prepared) -> None:
    """Replace each binarised weight by its effective value (what training would commit)."""
    for name, t in prep.transforms.items():
        v = graph.constants[name]
        graph.set_constant(v, t.effective(np.asarray(v.data)))


# ---- lowering to xnor ops ---------------------------------------------------------------------
def binary_filters(w: np.ndarray) -> np.ndarray | None:
    """alpha per output filter if every weight of each filter is +-alpha, else None."""
    a = np.abs(w.reshape(w.shape[0], -1))
    if a.shape[1] == 0 or not np.array_equal(a, np.broadcast_to(a[:, :1], a.shape)):
        return None
    return a[:, 0].astype(np.float32)


def lower_binary(graph: Graph, ctx: PassContext | None = None) -> int:
    """conv/gemm reading a binarize/ternarize/sign_threshold output with +-alpha weights ->
    xnor_conv/xnor_gemm. Returns the number of layers lowered."""
    count = 0
    for node in list(graph.nodes):
        if node.op not in ("conv", "gemm") or not node.inputs[1].is_constant:
            continue
        q = node.inputs[0].producer
        if q is None or q.op not in ("binarize", "ternarize", "sign_threshold") or eligible(node):
            continue
        if node.op == "conv" and node.inputs[0].type.rank != 4:
            continue
        a = get_op(node.op).complete_attrs(node.attrs, node.label)
        w = np.asarray(node.inputs[1].data)
        if node.op == "gemm" and not a["trans_b"]:
            w = w.T
        alpha = binary_filters(w)
        if alpha is None:
            continue
        if q.op == "sign_threshold":
            xin, mode = q.output, {}
        elif q.op == "binarize":
            xin, mode = q.inputs[0], {}
        else:
            xin = q.inputs[0]
            mode = {"input": "ternary", "threshold": q.attrs.get("threshold", 0.5)}
        wv = node.inputs[1]
        signs = binarize(w).astype(w.dtype)
        if wv.num_users == 1 and not (node.op == "gemm" and not a["trans_b"]):
            graph.set_constant(wv, signs)
        else:
            wv = graph.add_constant(signs, f"{wv.name}.sign")
        operands = [xin, wv]
        if not np.all(alpha == 1):
            operands.append(graph.add_constant(alpha, f"{node.label}.alpha"))
        if node.op == "conv":
            attrs = {"strides": a["strides"], "pads": a["pads"], "dilations": a["dilations"]}
            new = graph.add_node("xnor_conv", operands, {**attrs, **mode}, name=node.label,
                                 before=node)
        else:
            new = graph.add_node("xnor_gemm", operands, mode, name=node.label, before=node)
        out = new.output
        if len(node.inputs) > 2:
            b = np.asarray(node.inputs[2].data)
            if node.op == "conv":
                b = b.reshape(1, -1, 1, 1)
            else:
                b = b * np.float32(a["beta"])
            bc = graph.add_constant(b.astype(np.float32), f"{node.label}.bias")
            out = graph.add_node("add", [out, bc], name=f"{node.label}.bias", before=node).output
        _rewire(graph, node.output, out, keep=[])
        graph.erase_node(node)
        if q.op in ("binarize", "ternarize") and not q.output.uses and \
                not any(v is q.output for v in graph.outputs):
            graph.erase_node(q)
        if ctx is not None:
            ctx.record(new, input=new.attrs.get("input", "binary"),
                       alpha=len(operands) > 2, weights=int(w.size))
        count += 1
    if count:
        graph.remove_unused_constants()
    return count


# ---- BatchNorm + sign -> integer threshold ----------------------------------------------------
def integer_bound(v: Value) -> int | None:
    """K such that ``v`` holds integers in [-K, K] (an unscaled xnor accumulator, possibly through
    relu/max_pool/reshape), else None."""
    p = v.producer
    while p is not None and p.op in INTEGER_PRESERVING:
        p = p.inputs[0].producer
    if p is None:
        return None
    if p.op in ("xnor_conv", "xnor_gemm") and len(p.inputs) == 2:
        return int(np.prod(p.inputs[1].type.concrete_shape()[1:]))
    if p.op in ("binarize", "sign_threshold"):
        return 1
    return None


def _ordered(x: np.ndarray) -> np.ndarray:
    """float32 -> int64 that sorts like the floats (-0 and +0 both map to 0)."""
    bits = x.astype(np.float32).view(np.int32).astype(np.int64)
    return np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))


def _unordered(o: np.ndarray) -> np.ndarray:
    bits = np.where(o >= 0, o, (-o) | 0x80000000).astype(np.uint32)
    return bits.view(np.float32)


def sign_thresholds(bn: Node, bound: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(tau, dir) with binarize(batch_norm(x)) == sign_threshold(x, tau, dir) for every finite
    float32 x (for every integer in [-bound, bound] when ``bound`` is given: tau is then an
    integer). Found by bisection over float32 with the batch_norm reference kernel itself."""
    op = get_op("batch_norm")
    attrs = op.complete_attrs(bn.attrs, bn.label)
    params = [np.asarray(v.data) for v in bn.inputs[1:]]
    c = params[0].shape[0]

    def bn_at(x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # +-FLT_MAX probes may overflow
            return op.compute([x.astype(np.float32), *params], attrs)[0]

    def on(o: np.ndarray) -> np.ndarray:
        return bn_at(_unordered(o).reshape(1, c)).reshape(c) >= 0

    big = np.float32(np.finfo(np.float32).max)
    lo = np.full(c, _ordered(np.array(-big))[()])
    hi = np.full(c, _ordered(np.array(big))[()])
    f_lo = bn_at(np.full((1, c), -big)).reshape(c)
    f_hi = bn_at(np.full((1, c), big)).reshape(c)
    up = f_hi > f_lo
    down = f_hi < f_lo
    # increasing: smallest x with bn(x) >= 0; decreasing: largest such x (bisect on "not on")
    a, b = lo.copy(), hi.copy()  # invariant: answer in (a, b] for up, [a, b) for down
    on_lo, on_hi = on(lo), on(hi)
    for _ in range(40):
        mid = (a + b) // 2
        m = on(mid)
        go_right = np.where(up, ~m, m)  # up: answer is right of mid when mid is off
        a = np.where(go_right & (b - a > 1), mid, a)
        b = np.where(~go_right & (b - a > 1), mid, b)
    inf = np.float32(np.inf)
    tau_up = np.where(on_lo, -inf, np.where(on_hi, _unordered(b), inf))
    tau_down = np.where(on_hi, inf, np.where(on_lo, _unordered(a), -inf))
    flat_on = on(np.zeros(c, np.int64))
    tau_flat = np.where(flat_on, -inf, inf)
    tau = np.where(up, tau_up, np.where(down, tau_down, tau_flat)).astype(np.float32)
    sign = np.where(down, -1.0, 1.0).astype(np.float32)
    if bound is not None:
        lim = bound + 1
        tau = np.where(sign > 0, np.ceil(tau), np.floor(tau)).clip(-lim, lim).astype(np.float32)
        grid = np.arange(-bound, bound + 1, dtype=np.float32)
        x = np.broadcast_to(grid[:, None], (grid.size, c)).astype(np.float32)
        want = bn_at(x) >= 0
        got = np.where(sign > 0, x >= tau, x <= tau)
        if not np.array_equal(want, got):
            raise PassError(f"node {bn.label}: batch_norm is not monotone on integers; "
                            "cannot fold it into a threshold")
    return tau, sign


def _binarising_reader(node: Node, index: int) -> bool:
    if node.op == "binarize":
        return True
    if node.op in ("xnor_conv", "xnor_gemm") and index == 0:
        return get_op(node.op).complete_attrs(node.attrs)["input"] == "binary"
    return False


def fold_bn_sign(graph: Graph, ctx: PassContext | None = None) -> int:
    """batch_norm read only by binarising ops -> sign_threshold. Returns the number folded."""
    count = 0
    for bn in list(graph.nodes_of("batch_norm")):
        y = bn.output
        if not all(v.is_constant for v in bn.inputs[1:]) or not y.uses or \
                any(v is y for v in graph.outputs):
            continue
        if not all(_binarising_reader(u.node, u.index) for u in y.uses):
            continue
        bound = integer_bound(bn.inputs[0])
        tau, sign = sign_thresholds(bn, bound)
        st = graph.add_node("sign_threshold", [bn.inputs[0],
                                               graph.add_constant(tau, f"{bn.label}.tau"),
                                               graph.add_constant(sign, f"{bn.label}.dir")],
                            name=f"{bn.label}.sign", before=bn)
        for use in list(y.uses):
            if use.node.op == "binarize":  # binarize(+-1) is the identity
                _rewire(graph, use.node.output, st.output, keep=[])
                graph.erase_node(use.node)
            else:
                use.node.set_input(use.index, st.output)
        graph.erase_node(bn)
        if ctx is not None:
            ctx.record(st, integer=bound is not None, channels=int(tau.size))
        count += 1
    if count:
        graph.remove_unused_constants()
    return count


# ---- passes -----------------------------------------------------------------------------------
@register_pass
@dataclass(frozen=True)
class Binarize(Pass):
    """Make hidden conv/gemm layers binary (bnn, xnor) or ternary-input (tbn), untrained.

    Inserts BatchNorm + binarize/ternarize before each layer, sets its weights to sign(W)
    (bnn) or mean|W| * sign(W) per filter (xnor, tbn) and, for xnor, multiplies by the
    activation scale K. Fine-tune afterwards (``lwc compress --recipe bnn|xnor|tbn``)."""

    name: ClassVar[str] = "binarize"
    exact: ClassVar[bool] = False
    scheme: str = "xnor"
    threshold: float = 0.5
    first: bool = False
    last: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        prep = prepare(graph, self.scheme, threshold=self.threshold, first=self.first,
                       last=self.last)
        commit_binary(graph, prep)
        for label in prep.layers:
            ctx.record(label, scheme=self.scheme)
        return PassResult(bool(prep.layers), {"binarised": len(prep.layers)})


@register_pass
@dataclass(frozen=True)
class LowerXnor(Pass):
    """Lower conv/gemm on binarised inputs with +-alpha weights to xnor_conv/xnor_gemm.

    Integer dot products times alpha: equal to the float layer up to the rounding of the alpha
    scaling (bit-exact when alpha is 1, as in BNN)."""

    name: ClassVar[str] = "lower-xnor"
    exact: ClassVar[bool] = False

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        n = lower_binary(graph, ctx)
        return PassResult(bool(n), {"lowered": n})


@register_pass
@dataclass(frozen=True)
class FoldBnSign(Pass):
    """Fold BatchNorm followed by sign into an integer/float threshold (bit-identical)."""

    name: ClassVar[str] = "fold-bn-sign"
    exact: ClassVar[bool] = True

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        n = fold_bn_sign(graph, ctx)
        return PassResult(bool(n), {"folded": n})
