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

Fast path (binary input, O a multiple of 4; see ``_xnor_blocked``): four output channels per
<4 x i64> vector, weights as ``[O/4, taps*CW, 4]``, the pixel's words stored 4 times side by
side, and the words summed by carry-save adders (Harley-Seal) so that only one vector per bit
weight is popcounted; the first adder level is computed from xor-linear forms of the words
(``parity_forms``); border pixels zero their padded taps' x words and subtract the filters'
ones there (``tap_popcounts``); on AVX2 the bit counts use ``vpshufb`` weight tables and
``vpsadbw`` lane sums. On the 256->256 3x3
14x14 conv (``benchmarks/bench_xnor.py``) this is about 1.25x faster than one xor + byte-wise
popcount per vector; ``docs/compression.md`` has the measured ratios.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import F32, I64, i64
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


PACK_CHUNK = 16
"""Pixels of a row packed together: one <chunk x float> load per channel, compare and or-in."""


@dataclass(frozen=True)
class PackSpec:
    C: int
    H: int
    W: int
    ternary: bool
    threshold: float
    rep: int = 1
    """Copies of each sign word written side by side (4: the lane-blocked xnor kernel reads a
    pixel's word k as one <4 x i64> vector, the same word for 4 output channels)."""


def emit_pack(module: ir.Module, name: str, s: PackSpec) -> None:
    """args = [x f32 NCHW, signs u64 NHWC'(xrep), (mask)]; items = N*H rows.

    A row's pixels are packed PACK_CHUNK at a time: per channel one vector load of the row
    (contiguous in NCHW), a vector compare, and the bits or-ed into one i64 per pixel."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, sp = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    mp = irb.arg_ptr(b, args, 2) if s.ternary else None
    cw = -(-s.C // 64)
    with irb.loop(b, lo, hi, name="r") as r:
        n = b.sdiv(r, i64(s.H))
        h = b.srem(r, i64(s.H))
        plane = b.add(irb.mul(b, irb.mul(b, n, s.C), s.H * s.W), irb.mul(b, h, s.W))
        for w0 in range(0, s.W, PACK_CHUNK):
            wc = min(PACK_CHUNK, s.W - w0)
            fty, ity = ir.VectorType(F32, wc), ir.VectorType(I64, wc)
            t = ir.Constant(fty, [float(np.float32(s.threshold))] * wc)
            mt = ir.Constant(fty, [float(np.float32(-s.threshold))] * wc)
            z = ir.Constant(fty, [0.0] * wc)
            ity32 = ir.VectorType(ir.IntType(32), wc)
            with irb.loop(b, 0, cw, name="j") as j:
                halves = []
                for half in range(2):  # channels 64j + 32*half + (0..31), bit = channel
                    c0 = b.add(irb.mul(b, j, 64), i64(32 * half))
                    left = b.sub(i64(s.C), c0)
                    nb = b.select(b.icmp_signed("<", left, i64(32)), left, i64(32))
                    nb = b.select(b.icmp_signed("<", nb, i64(0)), i64(0), nb)
                    init = [ir.Constant(ity32, [0] * wc), ir.Constant(ity32, [0] * wc)]
                    # from the top channel down: acc = 2*acc + bit, so bit i ends at position i
                    with irb.carried_loop(b, 0, nb, init, name="bit") as (i, carry):
                        c = b.add(c0, b.sub(b.sub(nb, i), i64(1)))
                        src = b.add(b.add(plane, irb.mul(b, c, s.H * s.W)), i64(w0))
                        v = b.load(irb.gep(b, x, src, F32), typ=fty, align=4)
                        if s.ternary:
                            pos = b.fcmp_ordered(">", v, t)
                            nz = b.or_(pos, b.fcmp_ordered("<", v, mt))
                        else:
                            pos = nz = b.fcmp_ordered(">=", v, z)
                        sw, mw = carry.values
                        carry.next = [b.sub(b.add(sw, sw), b.sext(pos, ity32)),
                                      b.sub(b.add(mw, mw), b.sext(nz, ity32))]
                    halves.append([b.zext(v_, ity) for v_ in carry.out])
                sh32 = ir.Constant(ity, [32] * wc)
                sw = b.or_(halves[0][0], b.shl(halves[1][0], sh32))
                mw = b.or_(halves[0][1], b.shl(halves[1][1], sh32))
                for q in range(wc):
                    k = ir.Constant(ir.IntType(32), q)
                    dst = irb.mul(b, b.add(irb.mul(b, b.add(irb.mul(b, r, s.W), i64(w0 + q)),
                                                   cw), j), s.rep)
                    word = b.extract_element(sw, k)
                    for e in range(s.rep):
                        irb.store(b, word, sp, b.add(dst, i64(e)))
                    if mp is not None:
                        irb.store(b, b.extract_element(mw, k), mp, dst)
    b.ret_void()


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
    """args = [signs, (mask), wbits, (alpha), out f32 NCHW]; items = N*OH output rows.

    When a pixel's words fit (taps x CW <= UNROLL_WORDS) they are loaded once per output pixel
    and every output channel runs a fully unrolled xor/popcount over them, on <4 x i64> vectors
    when CW is a multiple of 4; pixels whose taps all lie inside the input take a branch without
    the padding masks."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    ptrs = [irb.arg_ptr(b, args, k) for k in range(3 + s.ternary + s.alpha + 2 * blocked(s))]
    sp = ptrs.pop(0)
    mp = ptrs.pop(0) if s.ternary else None
    wp = ptrs.pop(0)
    wfp = ptrs.pop(0) if blocked(s) else None
    pwp = ptrs.pop(0) if blocked(s) else None
    ap = ptrs.pop(0) if s.alpha else None
    out = ptrs.pop(0)
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
            tapinfo = []  # (in range?, x word index base)
            valid = i64(0)
            allok = ir.Constant(ir.IntType(1), 1)
            for kh, kw in taps:
                ih = b.add(ih0, i64(kh * s.DH))
                iw = b.add(iw0, i64(kw * s.DW))
                ok = b.and_(b.icmp_unsigned("<", ih, i64(s.H)), b.icmp_unsigned("<", iw, i64(s.W)))
                pix = b.add(irb.mul(b, b.add(irb.mul(b, n, s.H), ih), s.W), iw)
                tapinfo.append((ok, b.select(ok, irb.mul(b, pix, cw), i64(0))))
                valid = b.add(valid, b.select(ok, i64(s.C), i64(0)))
                allok = b.and_(allok, ok)
            if blocked(s):
                _xnor_blocked(b, s, sp, wfp, pwp, ap, out, tapinfo, allok, valid, n, oh, ow)
            elif not unrolled:
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


LANES = 4
"""Output channels per <4 x i64> vector in the lane-blocked kernel."""


def blocked(s: XnorSpec) -> bool:
    """Binary input, O a multiple of LANES and few enough words per pixel to unroll: the
    lane-blocked Harley-Seal kernel."""
    words = s.KH * s.KW * -(-s.C // 64)
    return not s.ternary and s.O % LANES == 0 and words <= UNROLL_WORDS


def parity_forms(nw: int) -> tuple[list[tuple[int, ...]], int, bool]:
    """The xor-linear forms the first carry-save level needs, for nw words d_0..d_{nw-1}.

    Streaming Harley-Seal adds d_{2m+1}, d_{2m+2} to the running parity P_{2m}; its carry is
    maj(P_{2m}, d_{2m+1}, d_{2m+2}) = (P_{2m+1} & (d_{2m+1} ^ d_{2m+2})) ^ d_{2m+1}. Every
    operand is a xor of words d_k = x_k ^ w_k, so it equals (xor of the x_k) ^ (xor of the w_k):
    the x side is computed once per pixel, the w side at compile time, and each form costs one
    xor per output block. Returns (forms as word-index tuples: 3 per carry, then 2 for a final
    half adder if nw is even, then the parity P_{nw-1}), the number of carries, half adder?"""
    m_count = (nw - 1) // 2
    forms: list[tuple[int, ...]] = []
    for m in range(m_count):
        forms += [tuple(range(2 * m + 2)), (2 * m + 1, 2 * m + 2), (2 * m + 1,)]
    half = 2 * m_count + 1 == nw - 1
    if half:
        forms += [tuple(range(2 * m_count + 1)), (nw - 1,)]
    forms.append(tuple(range(nw)))
    return forms, m_count, half


def weight_forms(wl: np.ndarray) -> np.ndarray:
    """[OB, nw, LANES] blocked weight words -> [OB, forms, LANES] xors (parity_forms order)."""
    forms, _, _ = parity_forms(wl.shape[1])
    return np.stack([np.bitwise_xor.reduce(wl[:, list(f), :], axis=1) for f in forms], axis=1)


def tap_popcounts(wl: np.ndarray, cw: int) -> np.ndarray:
    """[OB, taps*cw, LANES] blocked weight words -> [OB, taps, LANES] int32 ones per tap: what a
    padded tap (x words 0) adds to the count, subtracted again on border pixels."""
    ob, nw, lanes = wl.shape
    bits = np.unpackbits(np.ascontiguousarray(wl).view(np.uint8), axis=None)
    ones = bits.reshape(ob, nw, lanes, 64).sum(axis=3, dtype=np.int32)
    return np.ascontiguousarray(ones.reshape(ob, nw // cw, cw, lanes).sum(axis=2, dtype=np.int32))


def _csa(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Carry-save adder: bitwise x + y + z = lo + 2*hi."""
    u = b.xor(x, y)
    return b.xor(u, z), b.or_(b.and_(x, y), b.and_(u, z))


def _xnor_blocked(b: ir.IRBuilder, s: XnorSpec, sp, wfp, pwp, ap, out, tapinfo, allok, valid,
                  n, oh, ow) -> None:  # noqa: ANN001
    """LANES output channels at once, lane l of every vector = output channel 4*ob + l.

    The pixel's sign words are stored LANES times side by side (PackSpec.rep) and the weights
    as [O/4, taps*CW, 4], so word k of the pixel xor-ed with word k of 4 filters is one vector
    op. The taps*CW xor vectors are summed bit-sliced by carry-save adders (Harley-Seal): the
    buckets of weight 2^k keep at most two vectors, so only one vector per weight is
    popcounted and summed per 64-bit lane, which is per output channel: no horizontal
    reduction. Generic targets: byte-wise ``ctpop.v32i8``, the counts combined in bytes by
    doubling (Horner) and the lanes' bytes summed by SWAR shifts; AVX2 targets (``s.avx2``):
    ``vpshufb`` nibble lookups in tables pre-scaled by the bucket's weight (no doubling adds)
    and ``vpsadbw`` for the lane sums. The first adder level (the running parity and its
    carries) is computed from parity_forms: the x side per pixel into a stack buffer, the w
    side precomputed (``wfp``). Border pixels take the same path with a padded tap's x words
    set to 0, so it counts popcount(w) per filter; that is subtracted again from a
    compile-time table of ones per (filter, tap) (``pwp``), which keeps the cheaper form-based
    adders on the border too. Output blocks go in pairs (when O/4 is even) so each x-side load
    serves two blocks.

    Tried and not kept (no gain measurable on the shared 2-core znver3 box): a Wallace tree
    instead of the streaming adders (more spills), sweeping a row's pixels per output block so
    the weight forms stay in L1, counting a few words per pixel with scalar popcnt on the
    otherwise idle integer pipes, and four blocks per iteration (spills)."""
    cw = -(-s.C // 64)
    nw = len(tapinfo) * cw
    vt = ir.VectorType(I64, LANES)
    v32 = ir.VectorType(ir.IntType(8), 32)
    ctpop8 = irb.intrinsic(b.module, "llvm.ctpop.v32i8", v32, [v32])
    zero, ones = ir.Constant(vt, [0] * LANES), ir.Constant(vt, [-1] * LANES)

    def lconst(v: int) -> ir.Constant:
        return ir.Constant(vt, [v] * LANES)

    def horner(vs: list[ir.Value]) -> ir.Value:
        """sum 2^i * popcount(vs[i]) per byte (callers keep it < 256)."""
        acc = None
        for v in reversed(vs):
            pc = b.call(ctpop8, [b.bitcast(v, v32)])
            acc = pc if acc is None else b.add(b.add(acc, acc), pc)
        return b.bitcast(acc, vt)

    if s.avx2:
        pshufb = irb.intrinsic(b.module, "llvm.x86.avx2.pshuf.b", v32, [v32, v32])
        psad = irb.intrinsic(b.module, "llvm.x86.avx2.psad.bw", vt, [v32, v32])
        zero8 = ir.Constant(v32, [0] * 32)
        nib = ir.Constant(v32, [0x0F] * 32)

    def weighted(vs: list[ir.Value]) -> ir.Value:
        """sum 2^i * popcount(vs[i]) per byte by nibble lookups in tables pre-scaled by 2^i
        (no doubling adds; callers keep it < 256)."""
        acc = None
        for i, v in enumerate(vs):
            tab = ir.Constant(v32, [bin(q % 16).count("1") << i for q in range(32)])
            lo_ = b.and_(b.bitcast(v, v32), nib)
            hi_ = b.and_(b.bitcast(b.lshr(v, lconst(4)), v32), nib)
            for part in (lo_, hi_):
                pc = b.call(pshufb, [tab, part])
                acc = pc if acc is None else b.add(acc, pc)
        return acc

    def lane_sum16(v: ir.Value) -> ir.Value:
        """bytes of each 64-bit lane -> 4 16-bit partial sums (SWAR)."""
        m = lconst(0x00FF00FF00FF00FF)
        return b.add(b.and_(v, m), b.and_(b.lshr(v, lconst(8)), m))

    fast = b.append_basic_block("interior")
    slow = b.append_basic_block("border")
    join = b.append_basic_block("pixel.done")
    b.cbranch(allok, fast, slow)
    forms, m_count, half = parity_forms(nw)
    nf = len(forms)
    here = b.block
    b.position_at_start(b.function.entry_basic_block)
    xbuf = b.alloca(vt, size=i64(nf))
    xbuf.align = 32
    b.position_at_end(here)

    def xword(k: int) -> ir.Value:
        base = tapinfo[k // cw][1]
        return b.load(irb.gep(b, sp, irb.mul(b, b.add(base, i64(k % cw)), LANES), I64),
                      typ=vt, align=8)

    v4 = ir.VectorType(ir.IntType(32), LANES)
    unroll = 2 if s.O % (2 * LANES) == 0 else 1

    def finish(ob: ir.Value, buckets: dict[int, list[ir.Value]], corr: ir.Value | None) -> None:
        """One vector per weight -> popcounts -> 4 outputs of block ``ob``."""
        k = 0
        while k <= max(buckets):  # half adders; a carry leaves weight k+1 at most 3
            vs = buckets.get(k, [])
            if len(vs) >= 2:
                lo_, hi_ = _csa(b, *vs) if len(vs) == 3 else (b.xor(*vs), b.and_(*vs))
                buckets[k] = [lo_]
                buckets.setdefault(k + 1, []).append(hi_)
            k += 1
        top = max(buckets)
        vecs = [buckets[k][0] if buckets.get(k) else zero for k in range(top + 1)]
        # bytes: weights 1..8 (<= 8*15) and 16..2^top (<= 8*31 for top <= 8)
        if s.avx2:  # per-lane byte sums by vpsadbw, no SWAR reduction
            cnt = b.call(psad, [weighted(vecs[:4]), zero8])
            if top >= 4:
                cnt = b.add(cnt, b.shl(b.call(psad, [weighted(vecs[4:]), zero8]), lconst(4)))
        else:
            cnt = lane_sum16(horner(vecs[:4]))
            if top >= 4:
                cnt = b.add(cnt, b.shl(lane_sum16(horner(vecs[4:])), lconst(4)))
            cnt = b.add(cnt, b.lshr(cnt, lconst(16)))
            cnt = b.and_(b.add(cnt, b.lshr(cnt, lconst(32))), lconst(0xFFFF))
        cnt = b.trunc(cnt, v4)
        if corr is not None:  # padded taps counted popcount(0 ^ w): take them out
            cnt = b.sub(cnt, corr)
        dot = b.sub(b.trunc(irb.splat(b, valid, LANES), v4),
                    b.shl(cnt, ir.Constant(v4, [1] * LANES)))
        y = b.sitofp(dot, ir.VectorType(F32, LANES))
        o0 = irb.mul(b, ob, LANES)
        if ap is not None:
            y = b.fmul(y, b.load(irb.gep(b, ap, o0, F32), typ=ir.VectorType(F32, LANES),
                                 align=4))
        for l in range(LANES):
            o = b.add(o0, i64(l))
            oidx = b.add(irb.mul(b, b.add(irb.mul(b, b.add(irb.mul(b, n, s.O), o), s.OH),
                                          oh), s.OW), ow)
            irb.store(b, b.extract_element(y, ir.Constant(ir.IntType(32), l)), out, oidx)

    ntaps = len(tapinfo)
    for block, masked in ((fast, False), (slow, True)):
        b.position_at_end(block)
        # the pixel's x side of every form, once for all output blocks; a padded tap's words
        # are 0, so it counts popcount(w) ones, subtracted per block from ``pwp``
        xs = [xword(k) for k in range(nw)]
        if masked:
            okms = [b.select(ok, ones, zero) for ok, _ in tapinfo]
            xs = [b.and_(x_, okms[k // cw]) for k, x_ in enumerate(xs)]
            v4ones, v4zero = ir.Constant(v4, [-1] * LANES), ir.Constant(v4, [0] * LANES)
            nokms = [b.select(ok, v4zero, v4ones) for ok, _ in tapinfo]
        prefix = [xs[0]]
        for k in range(1, nw):
            prefix.append(b.xor(prefix[-1], xs[k]))
        for f, form in enumerate(forms):
            if form == tuple(range(len(form))):
                v = prefix[len(form) - 1]
            else:
                v = xs[form[0]]
                for k in form[1:]:
                    v = b.xor(v, xs[k])
            b.store(v, irb.gep(b, xbuf, i64(f), vt), align=32)
        with irb.loop(b, 0, s.O // (LANES * unroll), name="ob") as obu:
            obs = [b.add(irb.mul(b, obu, unroll), i64(u)) for u in range(unroll)]
            bks: list[dict[int, list[ir.Value]]] = [{} for _ in obs]
            corrs: list[ir.Value | None] = [None] * unroll
            if masked:
                for u, ob in enumerate(obs):
                    pb = irb.mul(b, ob, ntaps * LANES)
                    terms = [b.and_(b.load(irb.gep(b, pwp, b.add(pb, i64(t * LANES)),
                                                   ir.IntType(32)), typ=v4, align=4), nokms[t])
                             for t in range(ntaps)]
                    corrs[u] = irb.add(b, *terms) if len(terms) > 1 else terms[0]

            def push(u: int, k: int, v: ir.Value) -> None:
                """Streaming Harley-Seal: a weight's third vector is carry-save added at once."""
                bk = bks[u].setdefault(k, [])
                bk.append(v)
                if len(bk) == 3:
                    lo_, hi_ = _csa(b, *bk)
                    bks[u][k] = [lo_]
                    push(u, k + 1, hi_)

            fbases = [irb.mul(b, ob, nf * LANES) for ob in obs]

            def form(f: int) -> list[ir.Value]:
                """Form f for each output block: one x-side load, shared."""
                xv = b.load(irb.gep(b, xbuf, i64(f), vt), typ=vt, align=32)
                return [b.xor(xv, b.load(irb.gep(b, wfp, b.add(fb, i64(f * LANES)), I64),
                                         typ=vt, align=8)) for fb in fbases]

            for m in range(m_count):
                p_, q_, r_ = form(3 * m), form(3 * m + 1), form(3 * m + 2)
                for u in range(unroll):
                    push(u, 1, b.xor(b.and_(p_[u], q_[u]), r_[u]))
            if half:
                p_, q_ = form(3 * m_count), form(3 * m_count + 1)
                for u in range(unroll):
                    push(u, 1, b.and_(p_[u], q_[u]))
            for u, v in enumerate(form(nf - 1)):
                push(u, 0, v)
            for ob, buckets, corr in zip(obs, bks, corrs):
                finish(ob, buckets, corr)
        b.branch(join)
    b.position_at_end(join)


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
    rep = 1
    if blocked(spec):  # [O/4, KH*KW*CW, 4]: word k of 4 filters side by side
        rep = LANES
        wbits = np.ascontiguousarray(wbits.reshape(geom["O"] // LANES, LANES, -1)
                                     .transpose(0, 2, 1))
    ps = PackSpec(c, h, wd, ternary, thr, rep)
    nwords = n * h * wd * cw * rep
    signs = ctx.alloc(nwords * 8)
    args = [ctx.buf(x), signs]
    mask = None
    if ternary:
        mask = ctx.alloc(nwords * 8)
        args.append(mask)
    ctx.call(ps, emit_pack, args, n * h, work=n * c * h * wd)
    kargs = [signs] + ([mask] if mask is not None else []) + [ctx.const(wbits)]
    if blocked(spec):
        kargs.append(ctx.const(weight_forms(wbits)))
        kargs.append(ctx.const(tap_popcounts(wbits, cw)))
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
