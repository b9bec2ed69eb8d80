"""Bit-packed kernels for binary and ternary networks: xnor_conv / xnor_gemm by xor + popcount on
64-bit words (``llvm.ctpop.i64``), plus binarize, ternarize and sign_threshold.

Layout. Weights are packed at compile time to ``[O, KH, KW, CW]`` uint64 words (CW = ceil(C/64),
bit j of word i = channel 64*i + j, 1 = +1, tail bits 0). A pack kernel turns the float input
``[N, C, H, W]`` into the same channel-packed form per pixel, ``[N, H, W, CW]``: the sign plane
(bit = x >= 0, or x > t for a ternary input) and, for a ternary input, a nonzero-mask plane
(|x| > t). A gemm is the 1x1 case with H = W = 1 and C = K.

Arithmetic. Per output the kernel sums over the kernel taps that fall inside the input:
binary ``C - 2*popcount(s ^ w)`` per tap (tail bits are 0 on both sides, so they never count),
ternary ``popcount(m) - 2*popcount(m & (s ^ w))``. Taps in the padding are masked out (their
words are and-ed with 0 and they add nothing to the count), which is exactly the interpreter's
zero padding of the quantised input: a +-1 bit cannot represent the 0 a padded position
contributes. The integer is converted to float32 and multiplied by alpha[o] (if any), one
rounding, as in the reference, so results are bit-exact.

Fast path (binary input, O a multiple of 4): ``xnor_blocked``, four output channels per
<4 x i64> vector summed by carry-save adders (Harley-Seal), one output row per call with the
weights kept in L1. Other shapes (ternary inputs, O not a multiple of 4) use the per-pixel
kernels here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import F32, I64, i64
from lwc.backends.llvm.kernels.xnor_blocked import (LANES, emit_row, pixel_taps, tap_popcounts,
                                                    weight_forms)
from lwc.backends.llvm.plan import LowerCtx, attrs_of, lowers, shape
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Node
from lwc.ops.binary import pack_bits
from lwc.ops.conv import spatial_attrs

UNROLL_WORDS = 256
"""Per-pixel words (taps x CW) up to which the input words are loaded once per output pixel and
the tap loop is fully unrolled."""


def _f32c(v: float) -> ir.Constant:
    return irb.f32(float(np.float32(v)))


PACK_CHUNK = 8
"""Pixels of a row packed together: one <8 x float> load per channel, compare, shift-add."""


@dataclass(frozen=True)
class PackSpec:
    C: int
    H: int
    W: int
    ternary: bool
    threshold: float


def emit_pack(module: ir.Module, name: str, s: PackSpec) -> None:
    """args = [x f32 NCHW, signs u64 NHWC', (mask)]; items = N*H rows.

    A row's pixels are packed PACK_CHUNK at a time: per channel one vector load of the row
    (contiguous in NCHW), a vector compare, and the bit shifted into a 32-bit accumulator per
    pixel; two halves make a word. Full words loop with a constant trip count (LLVM unrolls
    it), the last partial word is emitted with its own constant bit counts."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, sp = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    mp = irb.arg_ptr(b, args, 2) if s.ternary else None
    cw, full = -(-s.C // 64), s.C // 64
    with irb.loop(b, lo, hi, name="r") as r:
        n = b.sdiv(r, i64(s.H))
        h = b.srem(r, i64(s.H))
        plane = b.add(irb.mul(b, irb.mul(b, n, s.C), s.H * s.W), irb.mul(b, h, s.W))
        for w0 in range(0, s.W, PACK_CHUNK):
            wc = min(PACK_CHUNK, s.W - w0)
            chunk = _PackChunk(b, s, x, plane, w0, wc)

            def store(j: ir.Value, words: list[ir.Value]) -> None:
                for q in range(wc):
                    k = ir.Constant(ir.IntType(32), q)
                    dst = b.add(irb.mul(b, b.add(irb.mul(b, r, s.W), i64(w0 + q)), cw), j)
                    for ptr, word in zip((sp, mp), words):
                        irb.store(b, b.extract_element(word, k), ptr, dst)

            if full:
                with irb.loop(b, 0, full, name="j") as j:
                    store(j, chunk.word(irb.mul(b, j, 64), 32, 32))
            if s.C % 64:
                tail = s.C % 64
                store(i64(full), chunk.word(i64(64 * full), min(tail, 32), max(tail - 32, 0)))
    b.ret_void()


class _PackChunk:
    """The sign (and ternary nonzero) words of ``wc`` pixels of one row."""

    def __init__(self, b: ir.IRBuilder, s: PackSpec, x: ir.Value, plane: ir.Value, w0: int,
                 wc: int) -> None:
        self.b, self.s, self.x, self.plane, self.w0, self.wc = b, s, x, plane, w0, wc
        self.fty = ir.VectorType(F32, wc)
        self.i32 = ir.VectorType(ir.IntType(32), wc)
        self.i64 = ir.VectorType(I64, wc)

    def half(self, c0: ir.Value, nb: int) -> list[ir.Value]:
        """Channels c0 .. c0+nb-1 as bits 0..nb-1, per pixel (sign, then mask if ternary)."""
        b, s, wc = self.b, self.s, self.wc
        zero = ir.Constant(self.i32, [0] * wc)
        init = [zero, zero] if s.ternary else [zero]
        if nb == 0:
            return init
        t = ir.Constant(self.fty, [float(np.float32(s.threshold))] * wc)
        mt = ir.Constant(self.fty, [float(np.float32(-s.threshold))] * wc)
        z = ir.Constant(self.fty, [0.0] * wc)
        # from the top channel down: acc = 2*acc + bit, so bit i ends at position i
        with irb.carried_loop(b, 0, nb, init, name="bit") as (i, carry):
            c = b.add(c0, b.sub(i64(nb - 1), i))
            src = b.add(b.add(self.plane, irb.mul(b, c, s.H * s.W)), i64(self.w0))
            v = b.load(irb.gep(b, self.x, src, F32), typ=self.fty, align=4)
            if s.ternary:
                bits = [b.fcmp_ordered(">", v, t)]
                bits.append(b.or_(bits[0], b.fcmp_ordered("<", v, mt)))
            else:
                bits = [b.fcmp_ordered(">=", v, z)]
            carry.next = [b.sub(b.add(acc, acc), b.sext(bit, self.i32))
                          for acc, bit in zip(carry.values, bits)]
        return carry.out

    def word(self, c0: ir.Value, lo_bits: int, hi_bits: int) -> list[ir.Value]:
        """The 64-bit words of channels c0 .. c0+63 (lo_bits + hi_bits of them present)."""
        b = self.b
        lo_ = self.half(c0, lo_bits)
        hi_ = self.half(b.add(c0, i64(32)), hi_bits)
        sh32 = ir.Constant(self.i64, [32] * self.wc)
        return [b.or_(b.zext(lv, self.i64), b.shl(b.zext(hv, self.i64), sh32))
                for lv, hv in zip(lo_, hi_)]


@dataclass(frozen=True)
class XnorSpec:
    C: int
    H: int
    W: int
    O: int
    OH: int
    OW: int
    KH: int
    KW: int
    SH: int
    SW: int
    PT: int
    PL: int
    DH: int
    DW: int
    ternary: bool
    alpha: bool
    avx2: bool = False
    """x86 with AVX2: the blocked kernel counts with ``vpshufb`` weight tables and ``vpsadbw``."""


def emit_xnor(module: ir.Module, name: str, s: XnorSpec) -> None:
    """args = [signs, (mask), wbits, (alpha), out f32 NCHW], or for the lane-blocked kernel
    [signs, weight forms, tap ones, (alpha), out]; items = N*OH output rows.

    When a pixel's words fit (taps x CW <= UNROLL_WORDS) they are loaded once per output pixel
    and every output channel runs a fully unrolled xor/popcount over them, on <4 x i64> vectors
    when CW is a multiple of 4; pixels whose taps all lie inside the input take a branch without
    the padding masks."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    ptrs = [irb.arg_ptr(b, args, k) for k in range(3 + s.ternary + s.alpha + blocked(s))]
    sp = ptrs.pop(0)
    mp = ptrs.pop(0) if s.ternary else None
    wp = None if blocked(s) else ptrs.pop(0)
    wfp = ptrs.pop(0) if blocked(s) else None
    pwp = ptrs.pop(0) if blocked(s) else None
    ap = ptrs.pop(0) if s.alpha else None
    out = ptrs.pop(0)
    if blocked(s):
        with irb.loop(b, lo, hi, name="r") as r:
            emit_row(b, s, sp, wfp, pwp, ap, out, b.sdiv(r, i64(s.OH)), b.srem(r, i64(s.OH)))
        b.ret_void()
        return
    cw = -(-s.C // 64)
    taps = [(kh, kw) for kh in range(s.KH) for kw in range(s.KW)]
    unrolled = len(taps) * cw <= UNROLL_WORDS
    lanes = 4 if cw % 4 == 0 else 1
    wty = I64 if lanes == 1 else ir.VectorType(I64, lanes)
    ctpop = irb.intrinsic(module, f"llvm.ctpop.{'i64' if lanes == 1 else 'v4i64'}", wty, [wty])
    ctpop1 = irb.intrinsic(module, "llvm.ctpop.i64", I64, [I64])
    bytewise = lanes == 4 and len(taps) * cw // lanes <= 31
    v32 = ir.VectorType(ir.IntType(8), 32)
    v32x16 = ir.VectorType(ir.IntType(16), 32)
    ctpop8 = irb.intrinsic(module, "llvm.ctpop.v32i8", v32, [v32])
    reduce16 = irb.intrinsic(module, "llvm.vector.reduce.add.v32i16", ir.IntType(16), [v32x16])

    def hsum(v: ir.Value) -> ir.Value:
        if lanes == 1:
            return v
        return irb.add(b, *[b.extract_element(v, ir.Constant(ir.IntType(32), k))
                            for k in range(lanes)])

    def loadw(ptr: ir.Value, idx: ir.Value) -> ir.Value:
        return b.load(irb.gep(b, ptr, idx, I64), typ=wty, align=8)

    def store_out(dot: ir.Value, n: ir.Value, o: ir.Value, oh: ir.Value, ow: ir.Value) -> None:
        y = b.sitofp(dot, F32)
        if ap is not None:
            y = b.fmul(y, irb.load(b, ap, o))
        oidx = b.add(irb.mul(b, b.add(irb.mul(b, b.add(irb.mul(b, n, s.O), o), s.OH), oh),
                             s.OW), ow)
        irb.store(b, y, out, oidx)

    zero = ir.Constant(wty, 0) if lanes == 1 else ir.Constant(wty, [0] * lanes)
    ones = ir.Constant(wty, -1) if lanes == 1 else ir.Constant(wty, [-1] * lanes)
    with irb.loop(b, lo, hi, name="r") as r:
        n = b.sdiv(r, i64(s.OH))
        oh = b.srem(r, i64(s.OH))
        ih0 = b.sub(irb.mul(b, oh, s.SH), i64(s.PT))
        with irb.loop(b, 0, s.OW, name="ow") as ow:
            iw0 = b.sub(irb.mul(b, ow, s.SW), i64(s.PL))
            tapinfo, valid, allok = pixel_taps(b, s, n, ih0, iw0)
            if not unrolled:
                _xnor_rolled(b, s, sp, mp, wp, tapinfo, valid, n, oh, ow, ctpop1, store_out)
            else:
                # the pixel's words (and masks) once, for every output channel
                xs: list[tuple[ir.Value, ir.Value]] = []
                tern_count = i64(0)
                for ok, base in tapinfo:
                    okm = b.select(ok, ones, zero)
                    for j in range(0, cw, lanes):
                        sw = loadw(sp, b.add(base, i64(j)))
                        mw = okm  # a padded tap's xor must not count: mask it out
                        if mp is not None:
                            mw = b.and_(loadw(mp, b.add(base, i64(j))), okm)
                            tern_count = b.add(tern_count, hsum(b.call(ctpop, [mw])))
                        xs.append((sw, mw))
                total = tern_count if s.ternary else valid
                fast = b.append_basic_block("interior")
                slow = b.append_basic_block("border")
                join = b.append_basic_block("pixel.done")
                b.cbranch(allok if mp is None else ir.Constant(ir.IntType(1), 0), fast, slow)
                for block, masked in ((fast, False), (slow, True)):
                    b.position_at_end(block)
                    with irb.loop(b, 0, s.O, name="o") as o:
                        wbase = irb.mul(b, o, len(taps) * cw)
                        if bytewise:  # per-byte counts summed in bytes (<= 8 * 31 < 256)
                            acc = ir.Constant(v32, [0] * 32)
                        else:
                            acc = zero
                        for idx, (sw, mw) in enumerate(xs):
                            d = b.xor(sw, loadw(wp, b.add(wbase, i64(idx * lanes))))
                            if masked:
                                d = b.and_(d, mw)
                            if bytewise:
                                acc = b.add(acc, b.call(ctpop8, [b.bitcast(d, v32)]))
                            else:
                                acc = b.add(acc, b.call(ctpop, [d]))
                        if bytewise:
                            ones_cnt = b.zext(b.call(reduce16, [b.zext(acc, v32x16)]), I64)
                        else:
                            ones_cnt = hsum(acc)
                        store_out(b.sub(total, b.shl(ones_cnt, i64(1))), n, o, oh, ow)
                    b.branch(join)
                b.position_at_end(join)
    b.ret_void()


def blocked(s: XnorSpec) -> bool:
    """Binary input, O a multiple of LANES and few enough words per pixel to unroll: the
    lane-blocked Harley-Seal kernel (``xnor_blocked``)."""
    words = s.KH * s.KW * -(-s.C // 64)
    return not s.ternary and s.O % LANES == 0 and words <= UNROLL_WORDS


def _xnor_rolled(b: ir.IRBuilder, s: XnorSpec, sp, mp, wp, tapinfo, valid, n, oh, ow,
                 ctpop, store_out) -> None:  # noqa: ANN001
    """Many words per pixel: loop over the words of each tap for every output channel."""
    cw = -(-s.C // 64)
    ones, zero = i64(-1), i64(0)
    with irb.loop(b, 0, s.O, name="o") as o:
        wbase = irb.mul(b, o, len(tapinfo) * cw)
        acc, cnt = i64(0), i64(0)
        for t, (ok, base) in enumerate(tapinfo):
            okm = b.select(ok, ones, zero)
            with irb.carried_loop(b, 0, cw, [acc, cnt], name="j") as (j, carry):
                a0, c0 = carry.values
                sw = irb.load(b, sp, b.add(base, j), I64)
                wv = irb.load(b, wp, b.add(wbase, b.add(j, i64(t * cw))), I64)
                mw, c1 = okm, c0
                if mp is not None:
                    mw = b.and_(irb.load(b, mp, b.add(base, j), I64), okm)
                    c1 = b.add(c0, b.call(ctpop, [mw]))
                d = b.and_(b.xor(sw, wv), mw)
                carry.next = [b.add(a0, b.call(ctpop, [d])), c1]
            acc, cnt = carry.out
        total = cnt if s.ternary else valid
        store_out(b.sub(total, b.shl(acc, i64(1))), n, o, oh, ow)


def _mode(a: dict) -> tuple[bool, float]:
    return a["input"] == "ternary", float(a["threshold"])


def _lower_xnor(node: Node, ctx: LowerCtx, geom: dict) -> None:
    x, w = node.inputs[0], node.inputs[1]
    alpha = node.inputs[2] if len(node.inputs) > 2 else None
    if x.type.dtype != "f32":
        raise UnsupportedOpError(f"node {node.label} ({node.op}): dtype {x.type.dtype} is not "
                                 "supported by the llvm backend (f32 only)")
    if w.data is None or (alpha is not None and alpha.data is None):
        raise UnsupportedOpError(f"node {node.label} ({node.op}): the llvm backend needs "
                                 "constant weights and alpha")
    ternary, thr = _mode(attrs_of(node))
    n, c, h, wd = geom["N"], geom["C"], geom["H"], geom["W"]
    cw = -(-c // 64)
    wt = np.asarray(w.data).reshape(geom["O"], c, geom["KH"], geom["KW"]).transpose(0, 2, 3, 1)
    wbits = pack_bits(wt >= 0)  # [O, KH, KW, CW]
    spec = XnorSpec(c, h, wd, geom["O"], geom["OH"], geom["OW"], geom["KH"], geom["KW"],
                    geom["SH"], geom["SW"], geom["PT"], geom["PL"], geom["DH"], geom["DW"],
                    ternary, alpha is not None)
    if blocked(spec) and "+avx2" in ctx.features:
        spec = dataclasses.replace(spec, avx2=True)
    if blocked(spec):  # [O/4, KH*KW*CW, 4]: word k of 4 filters side by side
        wbits = np.ascontiguousarray(wbits.reshape(geom["O"] // LANES, LANES, -1)
                                     .transpose(0, 2, 1))
    ps = PackSpec(c, h, wd, ternary, thr)
    nwords = n * h * wd * cw
    signs = ctx.alloc(nwords * 8)
    args = [ctx.buf(x), signs]
    mask = None
    if ternary:
        mask = ctx.alloc(nwords * 8)
        args.append(mask)
    ctx.call(ps, emit_pack, args, n * h, work=n * c * h * wd)
    kargs = [signs] + ([mask] if mask is not None else [])
    if blocked(spec):
        kargs += [ctx.const(weight_forms(wbits)), ctx.const(tap_popcounts(wbits, cw))]
    else:
        kargs.append(ctx.const(wbits))
    if alpha is not None:
        kargs.append(ctx.const(np.asarray(alpha.data, np.float32)))
    kargs.append(ctx.buf(node.output))
    work = n * geom["OH"] * geom["OW"] * geom["O"] * geom["KH"] * geom["KW"] * cw
    ctx.call(spec, emit_xnor, kargs, n * geom["OH"], work=work)


@lowers("xnor_conv")
def lower_xnor_conv(node: Node, ctx: LowerCtx) -> None:
    a = attrs_of(node)
    n, c, h, w = shape(node.inputs[0])
    o, _, kh, kw = shape(node.inputs[1])
    _, _, oh, ow = shape(node.output)
    strides, dil, pads = spatial_attrs(a, 2)
    _lower_xnor(node, ctx, dict(N=n, C=c, H=h, W=w, O=o, OH=oh, OW=ow, KH=kh, KW=kw,
                                SH=strides[0], SW=strides[1], PT=pads[0], PL=pads[1],
                                DH=dil[0], DW=dil[1]))


@lowers("xnor_gemm")
def lower_xnor_gemm(node: Node, ctx: LowerCtx) -> None:
    n, k = shape(node.inputs[0])
    o = shape(node.inputs[1])[0]
    _lower_xnor(node, ctx, dict(N=n, C=k, H=1, W=1, O=o, OH=1, OW=1, KH=1, KW=1, SH=1, SW=1,
                                PT=0, PL=0, DH=1, DW=1))


# ---- binarize / ternarize / sign_threshold ----------------------------------------------------
@dataclass(frozen=True)
class QuantSpec:
    kind: str
    """binarize, ternarize or threshold (per channel tau/dir)."""
    C: int
    plane: int
    threshold: float = 0.0


def emit_quant(module: ir.Module, name: str, s: QuantSpec) -> None:
    """args = [x, (tau, dir), out]; items = N*C planes."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x = irb.arg_ptr(b, args, 0)
    if s.kind == "threshold":
        tau, dirp, out = (irb.arg_ptr(b, args, k) for k in (1, 2, 3))
    else:
        out = irb.arg_ptr(b, args, 1)
    one, mone, zero = irb.f32(1.0), irb.f32(-1.0), irb.f32(0.0)
    t = _f32c(s.threshold)
    with irb.loop(b, lo, hi, name="r") as r:
        if s.kind == "threshold":
            c = b.srem(r, i64(s.C))
            tc = irb.load(b, tau, c)
            up = b.fcmp_ordered(">", irb.load(b, dirp, c), zero)
        with irb.loop(b, 0, s.plane, name="p") as p:
            idx = b.add(irb.mul(b, r, s.plane), p)
            v = irb.load(b, x, idx)
            if s.kind == "binarize":
                y = b.select(b.fcmp_ordered(">=", v, zero), one, mone)
            elif s.kind == "ternarize":
                y = b.select(b.fcmp_ordered(">", v, t), one,
                             b.select(b.fcmp_ordered("<", v, b.fneg(t)), mone, zero))
            else:
                on = b.select(up, b.fcmp_ordered(">=", v, tc), b.fcmp_ordered("<=", v, tc))
                y = b.select(on, one, mone)
            irb.store(b, y, out, idx)
    b.ret_void()


@lowers("binarize", "ternarize", "sign_threshold")
def lower_quant(node: Node, ctx: LowerCtx) -> None:
    x = node.inputs[0]
    if x.type.dtype != "f32":
        raise UnsupportedOpError(f"node {node.label} ({node.op}): dtype {x.type.dtype} is not "
                                 "supported by the llvm backend (f32 only)")
    xs = shape(x)
    if node.op == "sign_threshold":
        c, plane = xs[1], math.prod(xs[2:])
        spec = QuantSpec("threshold", c, plane)
        args = [ctx.buf(x), ctx.buf(node.inputs[1]), ctx.buf(node.inputs[2])]
        items = xs[0] * c
    else:
        total = math.prod(xs)
        plane = xs[-1] if len(xs) > 1 else total
        items = total // plane
        thr = attrs_of(node).get("threshold", 0.0)
        spec = QuantSpec(node.op, 1, plane, thr)
        args = [ctx.buf(x)]
    ctx.call(spec, emit_quant, args + [ctx.buf(node.output)], items, work=math.prod(xs))
