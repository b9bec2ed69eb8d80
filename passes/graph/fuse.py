"""Epilogue fusion: conv/gemm absorb a following bias add, residual add and activation, so a
backend runs conv+bias+add+act as one kernel (attributes ``act``, ``residual``; see
``lwc/ops/conv.py``). Also turns ``matmul`` by a constant matrix into ``gemm``."""

from __future__ import annotations

from typing import Any

import numpy as np

from lwc.ir.core import Node, Value
from lwc.rewrite import Match, Rewriter, any_value, attrs_of, const, op, pattern_set

fuse = pattern_set(
    "fuse", exact=True,
    doc="Fuse bias add, residual add and activation into conv/gemm epilogues.\n\n"
        "Exact: the fused op computes act(conv(x) + bias + residual) in the same order as the "
        "separate ops. Only producers read by nothing else are fused.")

PRODUCERS = ("conv", "gemm")

ACT_OPS = ("relu", "clip", "leaky_relu", "hard_swish", "sigmoid")


def _has_bias(node: Node, attrs: dict[str, Any]) -> bool:
    return len(node.inputs) > (3 if attrs["residual"] else 2)


def _channel_vector(c: np.ndarray, out_rank: int, channels: int, axis: int) -> np.ndarray | None:
    """``c`` as a per-channel vector when it broadcasts along every axis but ``axis``."""
    if c.ndim > out_rank:
        return None
    shape = (1,) * (out_rank - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,)).copy()


def _rebuild(rw: Rewriter, node: Node, inputs: list[Value], fused: Node, **changes: Any) -> Node:
    """``node`` with new operands and attributes; records which op it absorbed."""
    new = rw.create(node.op, *inputs, attrs={**node.attrs, **changes}, name=node.name)
    rw.record(new, fused=f"{fused.op} {fused.label}")
    return new


@fuse.rule(op("add", op(PRODUCERS, name="p", single_use=True), const("c"), commutative=True))
def bias_add(m: Match, rw: Rewriter) -> None:
    """conv(x) + c -> conv(x, bias=b + c) when c is one value per output channel."""
    p, attrs = m.node("p"), m.attrs("p")
    out = p.outputs[0]
    if attrs["act"] or attrs["residual"] or m.root.outputs[0].type != out.type:
        return
    channels = out.type.shape[1]
    if not isinstance(channels, int):
        return
    vec = _channel_vector(m["c"], out.type.rank, channels, 1)
    if vec is None or m["c"].dtype != np.dtype(out.type.dtype.numpy):
        return
    ins = list(p.inputs)
    if p.op == "gemm":
        old = ins[2].data * attrs["beta"] if _has_bias(p, attrs) else None
        if old is not None and _channel_vector(old, 2, channels, 1) is None:
            return
        base = np.zeros(channels) if old is None else _channel_vector(old, 2, channels, 1)
        new = rw.create("gemm", ins[0], ins[1], rw.const((base + vec).astype(vec.dtype), "bias"),
                        attrs={**p.attrs, "beta": 1.0}, name=p.name)
        rw.replace(m.root, new)
        return
    if _has_bias(p, attrs):
        if ins[2].data is None:
            return
        vec = ins[2].data + vec
        ins = ins[:2]
    bias = rw.const(vec.astype(m["c"].dtype), "bias")
    rw.replace(m.root, _rebuild(rw, p, [*ins[:2], bias], m.root))


@fuse.rule(op("add", op(PRODUCERS, name="p", single_use=True), any_value("r"), commutative=True))
def residual_add(m: Match, rw: Rewriter) -> None:
    """conv(x) + r -> conv{residual}(x, w, b, r) when r has exactly the output's shape."""
    p, attrs, r = m.node("p"), m.attrs("p"), m.value("r")
    out = p.outputs[0]
    if attrs["act"] or attrs["residual"] or r.type != out.type:
        return
    if m.root.outputs[0].type != out.type:
        return
    if p.op == "gemm" and not _has_bias(p, attrs):
        return  # gemm's residual slot follows C; an add without C is a bias add
    rw.replace(m.root, _rebuild(rw, p, [*p.inputs, r], m.root, residual=True))


def _act_attrs(node: Node, producer: str) -> dict[str, Any] | None:
    """The producer attributes that express activation ``node``, or None."""
    a = attrs_of(node)
    if node.op == "clip":
        if a["min"] == 0.0 and a["max"] == 6.0:
            return {"act": "relu6"}
        if a["min"] == 0.0 and a["max"] == float("inf"):
            return {"act": "relu"}
        return {"act": "clip", "clip_min": a["min"], "clip_max": a["max"]}
    if node.op == "leaky_relu":
        return {"act": "leaky_relu", "alpha" if producer == "conv" else "alpha_act": a["alpha"]}
    return {"act": node.op}


@fuse.rule(op(ACT_OPS, op(PRODUCERS, name="p", single_use=True)))
def activation(m: Match, rw: Rewriter) -> None:
    """act(conv(x)) -> conv{act}(x) for relu, relu6 (clip 0..6), clip, leaky_relu, hard_swish,
    sigmoid."""
    p = m.node("p")
    if attrs_of(p)["act"] or not p.outputs[0].type.dtype.is_float:
        return
    if (changes := _act_attrs(m.root, p.op)) is None:
        return
    rw.replace(m.root, _rebuild(rw, p, list(p.inputs), m.root, **changes))


@fuse.rule(op("matmul", any_value("a"), const("b")))
def matmul_to_gemm(m: Match, rw: Rewriter) -> None:
    """matmul(A[M,K], B[K,N]) with constant B is a gemm (which then takes bias and act)."""
    a, b = m.value("a"), m["b"]
    if a.type.rank != 2 or b.ndim != 2:
        return
    rw.replace(m.root, rw.create("gemm", a, m.value("b"), name=m.root.name))
