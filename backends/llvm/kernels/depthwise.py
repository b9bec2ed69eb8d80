"""Depthwise 2-D convolution (one filter per channel, MobileNet's 3x3 layers).

Phase 1 copies each channel into a zero-padded plane split by column phase (column ``q`` of
phase ``q % stride``), so that phase 2 reads every tap of a stride-s convolution as a contiguous
run: ``out[oh, ow] = bias + sum_{kh,kw} w * P[(kw*d) % s][oh*s + kh*d][ow + (kw*d) // s]``.
Phase 2's inner loop over ``ow`` holds all taps, so LLVM vectorises it into FMAs; bias and the
activation are applied before the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import F32, i64
from lwc.backends.llvm.kernels.act import apply_act


@dataclass(frozen=True)
class DepthwiseSpec:
    CT: int
    """Channels times batch (work items)."""
    C: int
    H: int
    W: int
    OH: int
    OW: int
    KH: int
    KW: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pl: int
    pb: int
    pr: int
    bias: bool
    act: str = ""
    alpha: float = 0.01
    lo: float = 0.0
    hi: float = 6.0
    mode: str = "conv"
    """"conv" (weights, bias, activation), or "max"/"avg" pooling through the fused kernel
    (for "avg" the second argument is the per-output divisor table)."""

    @property
    def hp(self) -> int:
        return self.H + self.pt + self.pb

    @property
    def wq(self) -> int:
        return -(-(self.W + self.pl + self.pr) // self.sw)

    @property
    def plane(self) -> int:
        """Scratch floats per channel."""
        return self.sw * self.hp * self.wq


def _tap_rows(b: ir.IRBuilder, s: DepthwiseSpec, taps: list[tuple[int, int]], oh: ir.Value,
              plane: ir.Value) -> list[ir.Value]:
    """Pointers to the start of each kernel tap's input row for output row ``oh`` in a padded,
    stride-phase-split plane (so the inner loop over output columns is unit-stride)."""
    rows = []
    for kh, kw in taps:
        col = kw * s.dw
        r = b.add(irb.mul(b, oh, s.sh), i64(kh * s.dh))
        off = b.add(irb.mul(b, r, s.wq), i64((col % s.sw) * s.hp * s.wq + col // s.sw))
        rows.append(irb.gep(b, plane, off))
    return rows


def emit_pad_split(module: ir.Module, name: str, s: DepthwiseSpec) -> None:
    """args = [x, scratch]; items = CT channels."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, dst = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    with irb.loop(b, lo, hi, name="c") as c:
        src = irb.gep(b, x, irb.mul(b, c, s.H * s.W))
        pl = irb.gep(b, dst, irb.mul(b, c, s.plane))
        with irb.loop(b, 0, s.sw, name="q") as q:
            with irb.loop(b, 0, s.hp, name="r") as r:
                ih = b.sub(r, i64(s.pt))
                row_ok = b.icmp_unsigned("<", ih, i64(s.H))
                drow = irb.gep(b, pl, b.add(irb.mul(b, q, s.hp * s.wq), irb.mul(b, r, s.wq)))
                with irb.loop(b, 0, s.wq, name="t") as t:
                    iw = b.sub(b.add(q, irb.mul(b, t, s.sw)), i64(s.pl))
                    ok = b.and_(row_ok, b.icmp_unsigned("<", iw, i64(s.W)))
                    idx = b.select(ok, b.add(irb.mul(b, ih, s.W), iw), i64(0))
                    v = irb.load(b, src, idx)
                    irb.store(b, b.select(ok, v, irb.f32(0.0)), drow, t)
    b.ret_void()


def emit_depthwise(module: ir.Module, name: str, s: DepthwiseSpec) -> None:
    """args = [scratch, w, (bias), out]; items = CT channels."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    sp = irb.arg_ptr(b, args, 0)
    wp = irb.arg_ptr(b, args, 1)
    bp = irb.arg_ptr(b, args, 2) if s.bias else None
    out = irb.arg_ptr(b, args, 3 if s.bias else 2)
    fma = irb.intrinsic(module, "llvm.fmuladd.f32", F32, [F32, F32, F32])
    taps = [(kh, kw) for kh in range(s.KH) for kw in range(s.KW)]
    with irb.loop(b, lo, hi, name="c") as c:
        ch = b.srem(c, i64(s.C))
        wc = irb.gep(b, wp, irb.mul(b, ch, s.KH * s.KW))
        ws = [irb.load(b, wc, k) for k in range(len(taps))]
        bias = irb.load(b, bp, ch) if bp is not None else irb.f32(0.0)
        pl = irb.gep(b, sp, irb.mul(b, c, s.plane))
        orow0 = irb.gep(b, out, irb.mul(b, c, s.OH * s.OW))
        with irb.loop(b, 0, s.OH, name="oh") as oh:
            rows = _tap_rows(b, s, taps, oh, pl)
            orow = irb.gep(b, orow0, irb.mul(b, oh, s.OW))
            with irb.loop(b, 0, s.OW, name="ow") as ow:
                acc = bias
                for wk, rp in zip(ws, rows):
                    acc = b.call(fma, [wk, irb.load(b, rp, ow), acc])
                acc = apply_act(b, acc, s.act, s.alpha, s.lo, s.hi)
                irb.store(b, acc, orow, ow)
    b.ret_void()


FUSED_MAX_PLANE = 64 * 1024
"""Largest padded plane (floats, 256 KiB) that the fused kernel keeps on the stack: it then stays
in L2 between the copy and the taps, instead of a whole layer's padded copy going through L3."""


def emit_depthwise_fused(module: ir.Module, name: str, s: DepthwiseSpec) -> None:
    """args = [x, w, (bias), out]; items = CT channels. Each channel is padded and phase-split into
    a stack buffer (interior rows by straight copies, borders zeroed), then convolved as in
    ``emit_depthwise``."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x = irb.arg_ptr(b, args, 0)
    wp = irb.arg_ptr(b, args, 1)
    bp = irb.arg_ptr(b, args, 2) if s.bias else None
    out = irb.arg_ptr(b, args, 3 if s.bias else 2)
    buf = b.alloca(F32, size=s.plane, name="plane")
    buf.align = 64
    fma = irb.intrinsic(module, "llvm.fmuladd.f32", F32, [F32, F32, F32])
    fmax = irb.intrinsic(module, "llvm.maxnum.f32", F32, [F32, F32])
    taps = [(kh, kw) for kh in range(s.KH) for kw in range(s.KW)]
    zero = irb.f32(float("-inf") if s.mode == "max" else 0.0)  # the padding value
    with irb.loop(b, lo, hi, name="c") as c:
        src = irb.gep(b, x, irb.mul(b, c, s.H * s.W))
        for q in range(s.sw):
            # column t of phase q reads input column q + t*sw - pl
            tlo = max(0, -(-(s.pl - q) // s.sw))
            thi = min(s.wq, (s.W - 1 + s.pl - q) // s.sw + 1)
            qbase = q * s.hp * s.wq
            with irb.loop(b, 0, s.hp, name=f"r{q}") as r:
                drow = irb.gep(b, buf, b.add(i64(qbase), irb.mul(b, r, s.wq)))
                ih = b.sub(r, i64(s.pt))
                row_ok = b.icmp_unsigned("<", ih, i64(s.H))
                with b.if_else(row_ok) as (inside, outside):
                    with inside:
                        with irb.loop(b, 0, tlo, name="zl") as t:
                            irb.store(b, zero, drow, t)
                        srow = irb.gep(b, src, irb.mul(b, ih, s.W))
                        if thi > tlo:
                            with irb.loop(b, tlo, thi, name="cp") as t:
                                iw = b.add(irb.mul(b, t, s.sw), i64(q - s.pl))
                                irb.store(b, irb.load(b, srow, iw), drow, t)
                        with irb.loop(b, max(tlo, thi), s.wq, name="zr") as t:
                            irb.store(b, zero, drow, t)
                    with outside:
                        with irb.loop(b, 0, s.wq, name="zr") as t:
                            irb.store(b, zero, drow, t)
        if s.mode == "conv":
            ch = b.srem(c, i64(s.C))
            wc = irb.gep(b, wp, irb.mul(b, ch, s.KH * s.KW))
            ws = [irb.load(b, wc, k) for k in range(len(taps))]
            init = irb.load(b, bp, ch) if bp is not None else irb.f32(0.0)
        else:
            ws, init = [None] * len(taps), zero
        orow0 = irb.gep(b, out, irb.mul(b, c, s.OH * s.OW))
        with irb.loop(b, 0, s.OH, name="oh") as oh:
            rows = _tap_rows(b, s, taps, oh, buf)
            orow = irb.gep(b, orow0, irb.mul(b, oh, s.OW))
            with irb.loop(b, 0, s.OW, name="ow") as ow:
                acc = init
                for wk, rp in zip(ws, rows):
                    v = irb.load(b, rp, ow)
                    if s.mode == "conv":
                        acc = b.call(fma, [wk, v, acc])
                    elif s.mode == "max":  # one use of acc per tap (see pool.py)
                        acc = b.call(fmax, [acc, v])
                    else:
                        acc = b.fadd(acc, v)
                if s.mode == "avg":
                    acc = b.fdiv(acc, irb.load(b, wp, b.add(irb.mul(b, oh, s.OW), ow)))
                acc = apply_act(b, acc, s.act, s.alpha, s.lo, s.hi)
                irb.store(b, acc, orow, ow)
    b.ret_void()
