"""Backend-local graph preparation on a private copy: bind symbolic dims, fold inference
batch_norm into the preceding conv, and fuse residual adds and activations into conv/gemm
epilogues (the ``act``/``residual`` attributes documented in ``lwc.ops.conv``). Graphs already
fused by the pass pipeline pass through unchanged."""

from __future__ import annotations

import numpy as np

from lwc.errors import InputError
from lwc.ir.core import Graph, Node, Value
from lwc.ir.types import TensorType
from lwc.ops.registry import get_op

_ACT_ATTR = {"conv": "alpha", "gemm": "alpha_act"}


def concretize(graph: Graph, bindings: dict[str, int] | None = None) -> Graph:
    """A copy whose symbolic dims are bound (default 1: batch 1) and types re-inferred."""
    g = graph.copy()
    b = dict(bindings or {})
    if all(v.type.is_static for v in g.inputs):
        return g
    for v in g.inputs:
        for d in v.type.shape:
            if isinstance(d, str):
                b.setdefault(d, 1)
        v.type = TensorType(v.type.dtype, v.type.concrete_shape(b), v.type.quant)
    for n in g.nodes:
        op = get_op(n.op)
        try:
            types = op.infer([v.type for v in n.inputs], op.complete_attrs(n.attrs, n.label))
        except ValueError as e:
            raise InputError(f"node {n.label} ({n.op}): cannot bind {b}: {e}") from None
        for v, t in zip(n.outputs, types):
            v.type = t
    return g


def _single_user(g: Graph, v: Value) -> Node | None:
    users = v.users
    if len(users) != 1 or len(v.uses) != 1 or v in g.outputs:
        return None
    return users[0]


def fold_batch_norm(g: Graph) -> int:
    done = 0
    for bn in list(g.nodes_of("batch_norm")):
        x = bn.inputs[0]
        conv = x.producer
        if conv is None or conv.op != "conv" or _single_user(g, x) is not bn:
            continue
        if conv.attrs.get("act") or conv.attrs.get("residual"):
            continue
        params = [v.data for v in bn.inputs[1:]]
        w = conv.inputs[1].data
        if any(p is None for p in params) or w is None:
            continue
        scale, beta, mean, var = (np.asarray(p, np.float64) for p in params)
        eps = get_op("batch_norm").complete_attrs(bn.attrs)["epsilon"]
        s = scale / np.sqrt(var + eps)
        bias = conv.inputs[2].data if len(conv.inputs) > 2 else np.zeros(w.shape[0])
        if bias is None:
            continue
        w2 = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        b2 = ((np.asarray(bias, np.float64) - mean) * s + beta).astype(w.dtype)
        wv = g.add_constant(w2, conv.inputs[1].name + ".bn")
        bv = g.add_constant(b2, conv.label + ".bias")
        conv.set_inputs([conv.inputs[0], wv, bv])
        g.replace_all_uses(bn.output, conv.output)
        g.erase_node(bn)
        done += 1
    return done


def _is_depthwise(n: Node) -> bool:
    return n.op == "conv" and n.inputs[1].type.shape[1] == 1 and \
        n.attrs.get("group", 1) == n.inputs[0].type.shape[1] and n.inputs[0].type.rank == 4


def fuse_residual(g: Graph) -> int:
    done = 0
    for add in list(g.nodes_of("add")):
        out = add.output
        cands = []
        for k, v in enumerate(add.inputs):
            p = v.producer
            other = add.inputs[1 - k]
            if (p is None or p.op not in ("conv", "gemm") or _single_user(g, v) is not add
                    or p.attrs.get("act") or p.attrs.get("residual") or _is_depthwise(p)
                    or other.type.shape != out.type.shape or other is v or v.type != out.type):
                continue
            if p.op == "gemm" and len(p.inputs) == 2:
                continue  # a residual operand would be read as C
            cands.append((g.nodes.index(p), p, other))
        if not cands:
            continue
        _, p, other = max(cands, key=lambda c: c[0])
        p.set_inputs([*p.inputs, other])
        p.attrs["residual"] = True
        g.nodes.remove(p)
        g.nodes.insert(g.nodes.index(add), p)
        g.replace_all_uses(out, p.output)
        g.erase_node(add)
        done += 1
    return done


def fuse_activation(g: Graph) -> int:
    done = 0
    for act in list(g.nodes):
        if act.op not in ("relu", "clip", "leaky_relu", "hard_swish", "sigmoid"):
            continue
        v = act.inputs[0]
        p = v.producer
        if p is None or p.op not in ("conv", "gemm") or _single_user(g, v) is not act:
            continue
        if p.attrs.get("act"):
            continue
        a = get_op(act.op).complete_attrs(act.attrs)
        if act.op == "clip":
            lo, hi = a["min"], a["max"]
            if (lo, hi) == (0.0, 6.0):
                p.attrs["act"] = "relu6"
            else:
                p.attrs.update(act="clip", clip_min=lo, clip_max=hi)
        else:
            p.attrs["act"] = act.op
            if act.op == "leaky_relu":
                p.attrs[_ACT_ATTR[p.op]] = a["alpha"]
        g.replace_all_uses(act.output, v)
        g.erase_node(act)
        done += 1
    return done


def rewrite_conv_transpose(g: Graph) -> int:
    """conv_transpose -> zero-stuff (reshape, pad, reshape) + pad + stride-1 conv with each
    group's weights transposed and flipped, so it runs on the conv kernels."""
    from lwc.ops.conv import spatial_attrs

    done = 0
    for n in list(g.nodes_of("conv_transpose")):
        x, w = n.inputs[0], n.inputs[1]
        if w.data is None:
            continue  # no lowering: the backend reports it
        a = get_op("conv_transpose").complete_attrs(n.attrs, n.label)
        xs = x.type.concrete_shape()
        nsp = len(xs) - 2
        strides, dil, pads = spatial_attrs(a, nsp)
        opad = a["output_padding"] or (0,) * nsp
        grp = a["group"]
        cur = x
        if any(st > 1 for st in strides):
            inter = [xs[0], xs[1]] + [d for i in range(nsp) for d in (xs[2 + i], 1)]
            cur = g.add_node("reshape", [cur], {"shape": inter}, before=n).output
            hi = [0, 0] + [d for i in range(nsp) for d in (0, strides[i] - 1)]
            cur = g.add_node("pad", [cur], {"pads": [0] * len(inter) + hi}, before=n).output
            flat = [xs[0], xs[1]] + [xs[2 + i] * strides[i] for i in range(nsp)]
            cur = g.add_node("reshape", [cur], {"shape": flat}, before=n).output
        lo, hi = [], []
        for i in range(nsp):
            full = dil[i] * (w.type.shape[2 + i] - 1)
            lo.append(full - pads[i])
            hi.append(full - pads[nsp + i] + opad[i] - (strides[i] - 1))
        if any(lo) or any(hi):
            cur = g.add_node("pad", [cur], {"pads": [0, 0, *lo, 0, 0, *hi]}, before=n).output
        wd = np.asarray(w.data)
        cg, og = wd.shape[0] // grp, wd.shape[1]
        wt = wd.reshape(grp, cg, og, *wd.shape[2:]).swapaxes(1, 2).reshape(grp * og, cg,
                                                                          *wd.shape[2:])
        wt = np.ascontiguousarray(np.flip(wt, axis=tuple(range(2, 2 + nsp))))
        ins = [cur, g.add_constant(wt, w.name + ".t"), *n.inputs[2:]]
        conv = g.add_node("conv", ins, {"dilations": dil, "group": grp}, before=n)
        g.replace_all_uses(n.output, conv.output)
        g.erase_node(n)
        done += 1
    return done


def _to_nchw(g: Graph, v: Value, layout: str, before: Node) -> Value:
    r = v.type.rank
    if layout == "nhwc":
        return g.add_node("transpose", [v], {"perm": (0, r - 1, *range(1, r - 1))},
                          before=before).output
    t = g.add_node("transpose", [v], {"perm": (0, 1, r - 1, *range(2, r - 1))}, before=before)
    shp = t.output.type.concrete_shape()
    return g.add_node("reshape", [t.output], {"shape": (shp[0], shp[1] * shp[2], *shp[3:])},
                      before=before).output


def _from_nchw(g: Graph, v: Value, layout: str, block: int, before: Node) -> Value:
    r = v.type.rank
    if layout == "nhwc":
        return g.add_node("transpose", [v], {"perm": (0, *range(2, r), 1)}, before=before).output
    shp = v.type.concrete_shape()
    t = g.add_node("reshape", [v], {"shape": (shp[0], shp[1] // block, block, *shp[2:])},
                   before=before).output
    return g.add_node("transpose", [t], {"perm": (0, 1, *range(3, r + 1), 2)},
                      before=before).output


def rewrite_layout_convs(g: Graph) -> int:
    """conv_nhwc / conv_nchwc -> layout changes around a plain NCHW conv (correct, not fast: the
    backend's kernels are NCHW)."""
    from lwc.ops.layout import unblock_weight

    done = 0
    for n in list(g.nodes_of("conv_nhwc", "conv_nchwc")):
        w = n.inputs[1]
        if w.data is None:
            continue
        layout = "nhwc" if n.op == "conv_nhwc" else "nchwc"
        a = dict(n.attrs)
        block = int(a.pop("block", 8))
        wd = np.moveaxis(w.data, -1, 1) if layout == "nhwc" else unblock_weight(w.data)
        ins = [_to_nchw(g, n.inputs[0], layout, n), g.add_constant(np.ascontiguousarray(wd),
                                                                   w.name + ".nchw")]
        ins += list(n.inputs[2:])
        if a.get("residual"):
            ins[-1] = _to_nchw(g, ins[-1], layout, n)
        conv = g.add_node("conv", ins, a, before=n)
        out = _from_nchw(g, conv.output, layout, block, n)
        g.replace_all_uses(n.output, out)
        g.erase_node(n)
        done += 1
    return done


def rewrite_winograd(g: Graph) -> int:
    """winograd_conv -> the 3x3 conv it computes: the weights are recovered from U = G w G^T as
    w = G+ U G+^T (G has full column rank, so this is exact in real arithmetic; float64 here).
    Correct, not fast: the backend has no Winograd kernel, and its im2row GEMM is the same
    arithmetic as the conv the pass replaced."""
    from lwc.ops.winograd import MATRICES

    done = 0
    for n in list(g.nodes_of("winograd_conv")):
        u = n.inputs[1]
        if u.data is None:
            continue
        a = get_op("winograd_conv").complete_attrs(n.attrs, n.label)
        gp = np.linalg.pinv(MATRICES[a["tile"]][1])
        w = np.einsum("ka,aboc,lb->ockl", gp, np.asarray(u.data, np.float64), gp)
        wv = g.add_constant(w.astype(u.data.dtype), u.name + ".conv")
        attrs = {k: a[k] for k in ("pads", "act", "alpha", "clip_min", "clip_max", "residual")}
        conv = g.add_node("conv", [n.inputs[0], wv, *n.inputs[2:]], attrs, before=n)
        g.replace_all_uses(n.output, conv.output)
        g.erase_node(n)
        done += 1
    return done


def prepare(graph: Graph, opt_level: int, bindings: dict[str, int] | None = None) -> Graph:
    g = concretize(graph, bindings)
    rewrite_conv_transpose(g)
    rewrite_layout_convs(g)
    rewrite_winograd(g)
    if opt_level >= 1:
        fold_batch_norm(g)
        fuse_residual(g)
        fuse_activation(g)
        g.remove_unused_constants()
    g.verify()
    return g
