"""Reductions (reduce_mean/sum/max, global pools), softmax/log_softmax and LRN.

A reduction is one work item per output element looping over the reduced axes (collapsed where
contiguous), accumulating in f32 with reassociation allowed so the inner loop vectorises.
Softmax works on the [outer, n, inner] view of its axis: max, sum of exp, scale."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import i64
from lwc.backends.llvm.kernels.act import call_math
from lwc.backends.llvm.kernels.tensor import collapse, contiguous_strides
from lwc.backends.llvm.plan import LowerCtx, attrs_of, lowers, shape
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Node

FAST = ("reassoc", "nsz", "contract")


def running_max(b: ir.IRBuilder, acc: ir.Value, v: ir.Value) -> ir.Value:
    """``llvm.maximum`` (NaN-propagating, like numpy's max). Not ``select(acc > v, acc, v)``:
    that uses ``acc`` twice, and once LLVM fully unrolls a short constant-trip loop the chain is a
    DAG that the loop vectoriser's VPlan analyses walk exponentially (a 26-element reduce_max
    took minutes to compile)."""
    return call_math(b, "maximum", acc, v)


@dataclass(frozen=True)
class ReduceSpec:
    kind: str
    """"sum", "mean" or "max"."""
    keep_shape: tuple[int, ...]
    keep_strides: tuple[int, ...]
    red_shape: tuple[int, ...]
    red_strides: tuple[int, ...]


def emit_reduce(module: ir.Module, name: str, s: ReduceSpec) -> None:
    """args = [x, out]; items = output elements."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, out = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    init = irb.f32(float("-inf") if s.kind == "max" else 0.0)
    with irb.loop(b, lo, hi, name="o") as o:
        rem, base = o, i64(0)
        for d in reversed(range(len(s.keep_shape))):
            idx = b.srem(rem, i64(s.keep_shape[d]))
            rem = b.sdiv(rem, i64(s.keep_shape[d]))
            base = b.add(base, irb.mul(b, idx, s.keep_strides[d]))
        acc = _reduce_nest(b, x, base, s, 0, init)
        if s.kind == "mean":
            acc = b.fdiv(acc, irb.f32(float(math.prod(s.red_shape))))
        irb.store(b, acc, out, o)
    b.ret_void()


def _reduce_nest(b: ir.IRBuilder, x: ir.Value, base: ir.Value, s: ReduceSpec, d: int,
                 acc: ir.Value) -> ir.Value:
    with irb.carried_loop(b, 0, s.red_shape[d], [acc], name=f"k{d}") as (k, carry):
        off = b.add(base, irb.mul(b, k, s.red_strides[d]))
        cur = carry.values[0]
        if d + 1 < len(s.red_shape):
            carry.next = [_reduce_nest(b, x, off, s, d + 1, cur)]
        else:
            v = irb.load(b, x, off)
            carry.next = [running_max(b, cur, v) if s.kind == "max"
                          else b.fadd(cur, v, flags=FAST)]
    return carry.out[0]


def reduce_call(ctx: LowerCtx, node: Node, kind: str, axes: tuple[int, ...]) -> None:
    x, out = node.inputs[0], node.output
    if x.type.dtype != "f32":
        raise UnsupportedOpError(f"node {node.label} ({node.op}): dtype {x.type.dtype} is not "
                                 "supported by the llvm backend (f32 only)")
    xs = shape(x)
    st = contiguous_strides(xs)
    keep = [d for d in range(len(xs)) if d not in axes]
    ks, kst = collapse(tuple(xs[d] for d in keep) or (1,), tuple(st[d] for d in keep) or (0,))
    rs, rst = collapse(tuple(xs[d] for d in axes) or (1,), tuple(st[d] for d in axes) or (0,))
    spec = ReduceSpec(kind, ks, kst, rs, rst)
    ctx.call(spec, emit_reduce, [ctx.buf(x), ctx.buf(out)], out.type.numel(), work=x.type.numel())


@lowers("reduce_mean", "reduce_sum", "reduce_max")
def lower_reduce(node: Node, ctx: LowerCtx) -> None:
    rank = node.inputs[0].type.rank
    axes = tuple(sorted(a % rank for a in (attrs_of(node)["axes"] or range(rank))))
    reduce_call(ctx, node, node.op.split("_")[1], axes)


@lowers("global_avg_pool", "global_max_pool")
def lower_global_pool(node: Node, ctx: LowerCtx) -> None:
    rank = node.inputs[0].type.rank
    reduce_call(ctx, node, "mean" if node.op == "global_avg_pool" else "max",
                tuple(range(2, rank)))


@dataclass(frozen=True)
class SoftmaxSpec:
    n: int
    inner: int
    log: bool


def emit_softmax(module: ir.Module, name: str, s: SoftmaxSpec) -> None:
    """args = [x, out]; items = outer * inner rows."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, out = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    with irb.loop(b, lo, hi, name="r") as r:
        base = b.add(irb.mul(b, b.sdiv(r, i64(s.inner)), s.n * s.inner), b.srem(r, i64(s.inner)))
        with irb.carried_loop(b, 0, s.n, [irb.f32(float("-inf"))], name="m") as (k, c):
            v = irb.load(b, x, b.add(base, irb.mul(b, k, s.inner)))
            c.next = [running_max(b, c.values[0], v)]
        mx = c.out[0]
        with irb.carried_loop(b, 0, s.n, [irb.f32(0.0)], name="s") as (k, c2):
            off = b.add(base, irb.mul(b, k, s.inner))
            e = call_math(b, "exp", b.fsub(irb.load(b, x, off), mx))
            if not s.log:
                irb.store(b, e, out, off)
            c2.next = [b.fadd(c2.values[0], e)]
        tot = c2.out[0]
        lse = call_math(b, "log", tot) if s.log else None
        with irb.loop(b, 0, s.n, name="w") as k:
            off = b.add(base, irb.mul(b, k, s.inner))
            if s.log:
                irb.store(b, b.fsub(b.fsub(irb.load(b, x, off), mx), lse), out, off)
            else:
                irb.store(b, b.fdiv(irb.load(b, out, off), tot), out, off)
    b.ret_void()


@lowers("softmax", "log_softmax")
def lower_softmax(node: Node, ctx: LowerCtx) -> None:
    x = node.inputs[0]
    xs = shape(x) or (1,)
    axis = attrs_of(node)["axis"] % len(xs)
    s = SoftmaxSpec(xs[axis], math.prod(xs[axis + 1:]), node.op == "log_softmax")
    rows = math.prod(xs[:axis]) * s.inner
    ctx.call(s, emit_softmax, [ctx.buf(x), ctx.buf(node.output)], rows, work=x.type.numel() * 8)


@dataclass(frozen=True)
class LrnSpec:
    C: int
    inner: int
    size: int
    alpha: float
    beta: float
    bias: float


def emit_lrn(module: ir.Module, name: str, s: LrnSpec) -> None:
    """args = [x, out]; items = N * C (each item one channel plane)."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, out = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    lo_w = (s.size - 1) // 2
    with irb.loop(b, lo, hi, name="nc") as nc:
        n = b.sdiv(nc, i64(s.C))
        c = b.srem(nc, i64(s.C))
        plane = irb.mul(b, n, s.C * s.inner)
        with irb.loop(b, 0, s.inner, name="p") as p:
            acc = irb.f32(0.0)
            for t in range(s.size):
                cc = b.add(c, i64(t - lo_w))
                ok = b.icmp_unsigned("<", cc, i64(s.C))
                off = b.add(plane, b.add(irb.mul(b, b.select(ok, cc, i64(0)), s.inner), p))
                v = irb.load(b, x, off)
                acc = b.fadd(acc, b.select(ok, b.fmul(v, v), irb.f32(0.0)))
            den = b.fadd(irb.f32(s.bias), b.fmul(irb.f32(s.alpha / s.size), acc))
            den = call_math(b, "pow", den, irb.f32(s.beta))
            off = b.add(plane, b.add(irb.mul(b, c, s.inner), p))
            irb.store(b, b.fdiv(irb.load(b, x, off), den), out, off)
    b.ret_void()


@lowers("lrn")
def lower_lrn(node: Node, ctx: LowerCtx) -> None:
    a = attrs_of(node)
    xs = shape(node.inputs[0])
    s = LrnSpec(xs[1], math.prod(xs[2:]), a["size"], a["alpha"], a["beta"], a["bias"])
    ctx.call(s, emit_lrn, [ctx.buf(node.inputs[0]), ctx.buf(node.output)], xs[0] * xs[1],
             work=node.output.type.numel() * s.size)

