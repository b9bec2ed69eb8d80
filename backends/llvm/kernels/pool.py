"""Windowed max/avg pooling over any number of spatial axes. One work item per (n, c) plane;
taps outside the input are skipped by a bounds test. The average divisor (data taps, or taps
inside the explicit padding with ``count_include_pad``; ceil_mode overhang never counts) is a
compile-time table per output position."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import i64
from lwc.backends.llvm.kernels.act import call_math
from lwc.backends.llvm.plan import LowerCtx, attrs_of, lowers, shape
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Node
from lwc.ops.conv import spatial_attrs


@dataclass(frozen=True)
class PoolSpec:
    kind: str
    in_sp: tuple[int, ...]
    out_sp: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]


def emit_pool(module: ir.Module, name: str, s: PoolSpec) -> None:
    """args = [x, out, (divisors)]; items = planes."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, out = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    div = irb.arg_ptr(b, args, 2) if s.kind == "avg" else None
    nsp = len(s.in_sp)
    in_plane, out_plane = math.prod(s.in_sp), math.prod(s.out_sp)
    in_st = [math.prod(s.in_sp[d + 1:]) for d in range(nsp)]
    init = irb.f32(float("-inf") if s.kind == "max" else 0.0)
    with irb.loop(b, lo, hi, name="pl") as pl:
        src = irb.gep(b, x, irb.mul(b, pl, in_plane))
        dst = irb.gep(b, out, irb.mul(b, pl, out_plane))
        with irb.loop(b, 0, out_plane, name="o") as o:
            rem, base = o, []
            for d in reversed(range(nsp)):
                od = b.srem(rem, i64(s.out_sp[d]))
                rem = b.sdiv(rem, i64(s.out_sp[d]))
                base.append(b.sub(irb.mul(b, od, s.strides[d]), i64(s.pads[d])))
            base.reverse()
            acc = init
            for taps in itertools.product(*[range(k) for k in s.kernel]):
                ok = ir.Constant(ir.IntType(1), 1)
                idx = i64(0)
                for d, t in enumerate(taps):
                    c = b.add(base[d], i64(t * s.dilations[d]))
                    ok = b.and_(ok, b.icmp_unsigned("<", c, i64(s.in_sp[d])))
                    idx = b.add(idx, irb.mul(b, c, in_st[d]))
                v = irb.load(b, src, b.select(ok, idx, i64(0)))
                if s.kind == "max":
                    # maxnum keeps each tap's dependence on acc single, so LLVM's analyses stay
                    # linear in the number of taps (nested selects made them exponential)
                    acc = call_math(b, "maxnum", acc, b.select(ok, v, irb.f32(float("-inf"))))
                else:
                    acc = b.fadd(acc, b.select(ok, v, irb.f32(0.0)))
            if div is not None:
                acc = b.fdiv(acc, irb.load(b, div, o))
            irb.store(b, acc, dst, o)
    b.ret_void()


def _divisors(in_sp: tuple, out_sp: tuple, kernel: tuple, strides: tuple, pads: tuple,
              dil: tuple, include_pad: bool) -> np.ndarray:
    nsp = len(in_sp)
    per_axis = []
    for d in range(nsp):
        lo_ok, hi_ok = (-pads[d], in_sp[d] + pads[nsp + d]) if include_pad else (0, in_sp[d])
        cnt = [sum(1 for k in range(kernel[d]) if lo_ok <= o * strides[d] - pads[d] + k * dil[d] < hi_ok)
               for o in range(out_sp[d])]
        per_axis.append(np.asarray(cnt, np.float32))
    tab = per_axis[0]
    for p in per_axis[1:]:
        tab = np.multiply.outer(tab, p)
    return np.ascontiguousarray(tab, np.float32).ravel()


@lowers("max_pool", "avg_pool")
def lower_pool(node: Node, ctx: LowerCtx) -> None:
    x, out = node.inputs[0], node.output
    if x.type.dtype in ("i8", "u8"):
        from lwc.backends.llvm.kernels.int8 import lower_int_max_pool

        return lower_int_max_pool(node, ctx)
    if x.type.dtype != "f32":
        raise UnsupportedOpError(f"node {node.label} ({node.op}): dtype {x.type.dtype} is not "
                                 "supported by the llvm backend (f32 only)")
    a = attrs_of(node)
    xs, os_ = shape(x), shape(out)
    nsp = len(xs) - 2
    strides, dil, pads = spatial_attrs({**a, "dilations": a.get("dilations", ())}, nsp)
    kind = "max" if node.op == "max_pool" else "avg"
    s = PoolSpec(kind, tuple(xs[2:]), tuple(os_[2:]), tuple(a["kernel"]), tuple(strides),
                 tuple(pads[:nsp]), tuple(dil))
    divs = None
    if kind == "avg":
        divs = ctx.const(_divisors(s.in_sp, s.out_sp, s.kernel, s.strides, pads, s.dilations,
                                   a["count_include_pad"]))
    if nsp == 2 and _fused_plane(ctx, node, s, pads, xs, divs):
        return
    args = [ctx.buf(x), ctx.buf(out)] + ([divs] if divs is not None else [])
    ctx.call(s, emit_pool, args, xs[0] * xs[1], work=out.type.numel() * math.prod(s.kernel))


def _fused_plane(ctx: LowerCtx, node: Node, s: PoolSpec, pads: tuple, xs: tuple,
                 divs: object) -> bool:
    """2-D pools through the depthwise kernel's padded, phase-split plane (contiguous,
    vectorisable taps): padding is -inf (max) or 0 (avg, divided by the divisor table), extended
    at the bottom/right so that ceil_mode windows stay inside the plane."""
    from lwc.backends.llvm.kernels.depthwise import (FUSED_MAX_PLANE, DepthwiseSpec,
                                                     emit_depthwise_fused)

    (H, W), (OH, OW), (KH, KW) = s.in_sp, s.out_sp, s.kernel
    (sh, sw), (dh, dw) = s.strides, s.dilations
    pt, pl = pads[0], pads[1]
    pb = max(pads[2], (OH - 1) * sh + (KH - 1) * dh + 1 - H - pt)
    pr = max(pads[3], (OW - 1) * sw + (KW - 1) * dw + 1 - W - pl)
    spec = DepthwiseSpec(xs[0] * xs[1], xs[1], H, W, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl, pb,
                         pr, False, mode=s.kind)
    if spec.plane > FUSED_MAX_PLANE:
        return False
    w = divs if divs is not None else ctx.buf(node.inputs[0])  # unused by "max"
    ctx.call(spec, emit_depthwise_fused, [ctx.buf(node.inputs[0]), w, ctx.buf(node.output)],
             spec.CT, work=spec.CT * (OH * OW * KH * KW + spec.plane))
    return True
