"""BatchNorm folding: an inference BatchNorm after a conv, conv_transpose or gemm is a
per-output-channel affine map, so it can live in that op's weights and bias."""

from __future__ import annotations

import numpy as np

from lwc.rewrite import Match, Rewriter, any_value, const, op, pattern_set

fold_bn = pattern_set(
    "fold-bn", exact=True,
    doc="Fold inference BatchNorm into the preceding conv, conv_transpose or gemm.\n\n"
        "Exact up to float rounding: y = (W*x + b - mean) * s + beta with s = gamma/sqrt(var+eps)"
        " equals (W*s)*x + ((b - mean)*s + beta). The producer must have no other reader and no "
        "fused epilogue (act/residual), since BN must apply before those.")

BN_PARAMS = (const("gamma"), const("beta"), const("mean"), const("var"))


def _scale_shift(m: Match) -> tuple[np.ndarray, np.ndarray]:
    """(s, t) in float64 with bn(y) = y * s + t."""
    eps = m.attrs("bn")["epsilon"]
    s = m["gamma"].astype(np.float64) / np.sqrt(m["var"].astype(np.float64) + eps)
    t = m["beta"].astype(np.float64) - m["mean"].astype(np.float64) * s
    return s, t


def _plain(node_attrs: dict) -> bool:
    return not node_attrs.get("act") and not node_attrs.get("residual")


@fold_bn.rule(op("batch_norm", op("conv", any_value("x"), const("w"), const("b", optional=True),
                                  name="conv", single_use=True), *BN_PARAMS, name="bn"))
def fold_into_conv(m: Match, rw: Rewriter) -> None:
    conv = m.node("conv")
    if not _plain(m.attrs("conv")):
        return
    s, t = _scale_shift(m)
    w = m["w"]
    b = m.get("b", np.zeros(w.shape[0]))
    new_w = (w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    new_b = (b.astype(np.float64) * s + t).astype(w.dtype)
    fused = rw.create("conv", m.value("x"), rw.const(new_w, m.value("w").name),
                      rw.const(new_b, f"{conv.label}.bias"), attrs=conv.attrs, name=conv.name)
    rw.record(fused, folded=m.node("bn").label)
    rw.replace(m.root, fused)


@fold_bn.rule(op("batch_norm", op("conv_transpose", any_value("x"), const("w"),
                                  const("b", optional=True), name="conv", single_use=True),
                 *BN_PARAMS, name="bn"))
def fold_into_conv_transpose(m: Match, rw: Rewriter) -> None:
    """Weights are [Cin, Cout/g, k...]: output channel g*Cout/g + j is column j of group g."""
    conv = m.node("conv")
    s, t = _scale_shift(m)
    w = m["w"]
    g = m.attrs("conv")["group"]
    cin, cog = w.shape[0], w.shape[1]
    ws = w.astype(np.float64).reshape(g, cin // g, cog, *w.shape[2:])
    ws = ws * s.reshape(g, 1, cog, *([1] * (w.ndim - 2)))
    b = m.get("b", np.zeros(g * cog))
    new_b = (b.astype(np.float64) * s + t).astype(w.dtype)
    fused = rw.create("conv_transpose", m.value("x"),
                      rw.const(ws.reshape(w.shape).astype(w.dtype), m.value("w").name),
                      rw.const(new_b, f"{conv.label}.bias"), attrs=conv.attrs, name=conv.name)
    rw.record(fused, folded=m.node("bn").label)
    rw.replace(m.root, fused)


@fold_bn.rule(op("batch_norm", op("gemm", any_value("a"), const("w"), const("c", optional=True),
                                  name="gemm", single_use=True), *BN_PARAMS, name="bn"))
def fold_into_gemm(m: Match, rw: Rewriter) -> None:
    """bn(alpha*A@B' + beta*C) = alpha*A@(B'*s) + (beta*C*s + t): scale B's output columns."""
    gemm, attrs = m.node("gemm"), m.attrs("gemm")
    if not _plain(attrs):
        return
    s, t = _scale_shift(m)
    w = m["w"].astype(np.float64)
    w = w * (s.reshape(-1, 1) if attrs["trans_b"] else s.reshape(1, -1))
    c = m.get("c", np.zeros(1)).astype(np.float64) * attrs["beta"]
    new_c = (np.broadcast_to(c, np.broadcast_shapes(c.shape, s.shape)) * s + t)
    dtype = m["w"].dtype
    new_attrs = {**gemm.attrs, "beta": 1.0}
    fused = rw.create("gemm", m.value("a"), rw.const(w.astype(dtype), m.value("w").name),
                      rw.const(new_c.astype(dtype), f"{gemm.label}.bias"), attrs=new_attrs,
                      name=gemm.name)
    rw.record(fused, folded=m.node("bn").label)
    rw.replace(m.root, fused)
