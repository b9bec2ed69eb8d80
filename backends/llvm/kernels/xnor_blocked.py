"""The lane-blocked Harley-Seal xnor conv (binary input, O a multiple of 4): one output row per
call, weights kept in L1.

Layout. Four output channels per <4 x i64> vector: lane l of every vector belongs to output
channel 4*ob + l. The weights are ``[O/4, taps*CW, 4]`` and a pixel's sign word k is broadcast
to the 4 lanes, so word k of the pixel xor-ed with word k of 4 filters is one vector op.

Counting. The taps*CW xor vectors of an output are summed bit-sliced by carry-save adders
(Harley-Seal): the bucket of weight 2^k keeps at most two vectors, so only one vector per bit
weight is popcounted and summed per 64-bit lane, which is per output channel: no horizontal
reduction. The first adder level (the running parity and its carries) is computed from
``parity_forms``: xor-linear forms of the words whose x side is computed once per pixel and
whose w side is precomputed (``weight_forms``), one xor per form and output block. Generic
targets count bytes with ``ctpop.v32i8`` and sum a lane's bytes by SWAR shifts; AVX2 targets
use ``vpshufb`` nibble lookups in tables pre-scaled by the bucket's weight and ``vpsadbw``.

Loop order. Phase 1 writes the x side of every form for a chunk of the row's pixels into a stack
buffer (padded taps' words zeroed), with each pixel's number of valid products and a mask of its
padded taps. Phase 2 runs over pairs of output blocks outside and the chunk's pixels inside, so
a pair's weight forms (3.4 KB for 256 channels, 3x3) are read from L2 once per chunk and then
from L1, instead of all 112 KB of weight forms streaming from L2 for every pixel. A chunk's
buffer is at most ``ROW_BUFFER_BYTES`` so that it and the pair's forms stay in a 32 KB L1.
Border pixels count a padded tap as popcount(0 ^ w) = popcount(w), which is subtracted again
from a compile-time table of ones per (filter, tap) (``tap_popcounts``).

On the 256->256 3x3 14x14 conv this order is about 10% faster than sweeping all output blocks
per pixel (``benchmarks/bench_xnor.py``; ``docs/compression.md`` has the ratios).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import F32, I64, i64

if TYPE_CHECKING:
    from lwc.backends.llvm.kernels.xnor import XnorSpec

LANES = 4
"""Output channels per <4 x i64> vector."""

ROW_BUFFER_BYTES = 24 * 1024
"""Largest stack buffer of x-side forms per chunk of a row (L1 is 32 KB on the targets we tune
for; the pair of blocks' weight forms needs the rest)."""

I32 = ir.IntType(32)
V4I64 = ir.VectorType(I64, LANES)
V4I32 = ir.VectorType(I32, LANES)
V32I8 = ir.VectorType(ir.IntType(8), 32)


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


def chunk_pixels(s: XnorSpec) -> int:
    """Pixels per chunk of a row: as many as fit ROW_BUFFER_BYTES of x-side forms."""
    nf = len(parity_forms(s.KH * s.KW * -(-s.C // 64))[0])
    return max(1, min(s.OW, ROW_BUFFER_BYTES // (nf * 32)))


def pixel_taps(b: ir.IRBuilder, s: XnorSpec, n: ir.Value, ih0: ir.Value, iw0: ir.Value
               ) -> tuple[list[tuple[ir.Value, ir.Value]], ir.Value, ir.Value]:
    """Per kernel tap of the output pixel whose window starts at (ih0, iw0): (inside the input?,
    index of its first packed word, 0 when padded); the number of valid products (C per inside
    tap); whether every tap is inside."""
    cw = -(-s.C // 64)
    taps, valid, allok = [], i64(0), ir.Constant(ir.IntType(1), 1)
    for kh in range(s.KH):
        for kw in range(s.KW):
            ih = b.add(ih0, i64(kh * s.DH))
            iw = b.add(iw0, i64(kw * s.DW))
            ok = b.and_(b.icmp_unsigned("<", ih, i64(s.H)), b.icmp_unsigned("<", iw, i64(s.W)))
            pix = b.add(irb.mul(b, b.add(irb.mul(b, n, s.H), ih), s.W), iw)
            taps.append((ok, b.select(ok, irb.mul(b, pix, cw), i64(0))))
            valid = b.add(valid, b.select(ok, i64(s.C), i64(0)))
            allok = b.and_(allok, ok)
    return taps, valid, allok


def _csa(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Carry-save adder: bitwise x + y + z = lo + 2*hi."""
    u = b.xor(x, y)
    return b.xor(u, z), b.or_(b.and_(x, y), b.and_(u, z))


def _splat64(v: int) -> ir.Constant:
    return ir.Constant(V4I64, [v] * LANES)


class _Counter:
    """Bucket vectors (one per bit weight) -> per-lane counts, generic or AVX2."""

    def __init__(self, b: ir.IRBuilder, avx2: bool) -> None:
        self.b, self.avx2 = b, avx2
        m = b.module
        if avx2:
            self.pshufb = irb.intrinsic(m, "llvm.x86.avx2.pshuf.b", V32I8, [V32I8, V32I8])
            self.psad = irb.intrinsic(m, "llvm.x86.avx2.psad.bw", V4I64, [V32I8, V32I8])
        else:
            self.ctpop8 = irb.intrinsic(m, "llvm.ctpop.v32i8", V32I8, [V32I8])

    def weighted(self, vs: list[ir.Value]) -> ir.Value:
        """Per byte: sum_i 2^i * popcount(vs[i]) (callers keep it below 256)."""
        b, acc = self.b, None
        nib = ir.Constant(V32I8, [0x0F] * 32)
        for i, v in enumerate(vs):
            if self.avx2:  # nibble lookups in tables pre-scaled by 2^i: no doubling adds
                tab = ir.Constant(V32I8, [bin(q % 16).count("1") << i for q in range(32)])
                parts = [b.and_(b.bitcast(v, V32I8), nib),
                         b.and_(b.bitcast(b.lshr(v, _splat64(4)), V32I8), nib)]
                pcs = [b.call(self.pshufb, [tab, p]) for p in parts]
            else:
                pc = b.call(self.ctpop8, [b.bitcast(v, V32I8)])
                pcs = [b.shl(pc, ir.Constant(V32I8, [i] * 32)) if i else pc]
            for pc in pcs:
                acc = pc if acc is None else b.add(acc, pc)
        return acc

    def lane_sum(self, v: ir.Value) -> ir.Value:
        """The 8 bytes of each 64-bit lane summed."""
        b = self.b
        if self.avx2:
            return b.call(self.psad, [v, ir.Constant(V32I8, [0] * 32)])
        m = _splat64(0x00FF00FF00FF00FF)
        c = b.bitcast(v, V4I64)
        c = b.add(b.and_(c, m), b.and_(b.lshr(c, _splat64(8)), m))
        c = b.add(c, b.lshr(c, _splat64(16)))
        return b.and_(b.add(c, b.lshr(c, _splat64(32))), _splat64(0xFFFF))

    def count(self, buckets: dict[int, list[ir.Value]]) -> ir.Value:
        """Settle the buckets to one vector per weight, then sum 2^k * popcount per lane."""
        b, k = self.b, 0
        while k <= max(buckets):  # half adders; a carry leaves weight k+1 at most 3
            vs = buckets.get(k, [])
            if len(vs) >= 2:
                lo_, hi_ = _csa(b, *vs) if len(vs) == 3 else (b.xor(*vs), b.and_(*vs))
                buckets[k] = [lo_]
                buckets.setdefault(k + 1, []).append(hi_)
            k += 1
        top = max(buckets)
        zero = ir.Constant(V4I64, [0] * LANES)
        vecs = [buckets[k][0] if buckets.get(k) else zero for k in range(top + 1)]
        # bytes: weights 1..8 (<= 8*15) and 16..2^top (<= 8*31 for top <= 8)
        cnt = self.lane_sum(self.weighted(vecs[:4]))
        if top >= 4:
            cnt = b.add(cnt, b.shl(self.lane_sum(self.weighted(vecs[4:])), _splat64(4)))
        return b.trunc(cnt, V4I32)


def emit_row(b: ir.IRBuilder, s: XnorSpec, sp: ir.Value, wfp: ir.Value, pwp: ir.Value,
             ap: ir.Value | None, out: ir.Value, n: ir.Value, oh: ir.Value) -> None:
    """One output row (image n, row oh): args as ``emit_xnor``'s blocked form."""
    cw = -(-s.C // 64)
    ntaps = s.KH * s.KW
    nw = ntaps * cw
    forms, m_count, half = parity_forms(nw)
    nf = len(forms)
    unroll = 2 if s.O % (2 * LANES) == 0 else 1
    pch = chunk_pixels(s)
    counter = _Counter(b, s.avx2)

    here = b.block
    b.position_at_start(b.function.entry_basic_block)
    xbuf = b.alloca(V4I64, size=i64(pch * nf))
    xbuf.align = 32
    nokbuf = b.alloca(V4I32, size=i64(pch * ntaps))
    nokbuf.align = 16
    validbuf = b.alloca(I64, size=i64(pch))
    borderbuf = b.alloca(I64, size=i64(pch))
    b.position_at_end(here)

    ih0 = b.sub(irb.mul(b, oh, s.SH), i64(s.PT))
    with irb.loop(b, 0, -(-s.OW // pch), name="chunk") as chunk:
        c0 = irb.mul(b, chunk, pch)
        count = b.sub(b.select(b.icmp_signed("<", b.add(c0, i64(pch)), i64(s.OW)),
                               b.add(c0, i64(pch)), i64(s.OW)), c0)
        _x_forms(b, s, sp, forms, n, ih0, c0, count, xbuf, nokbuf, validbuf, borderbuf)
        with irb.loop(b, 0, s.O // (LANES * unroll), name="ob") as obu:
            obs = [b.add(irb.mul(b, obu, unroll), i64(u)) for u in range(unroll)]
            with irb.loop(b, 0, count, name="px") as px:
                is_border = b.icmp_unsigned("!=", irb.load(b, borderbuf, px, I64), i64(0))
                interior = b.append_basic_block("px.interior")
                border = b.append_basic_block("px.border")
                done = b.append_basic_block("px.done")
                b.cbranch(is_border, border, interior)
                for block, masked in ((interior, False), (border, True)):
                    b.position_at_end(block)
                    corrs = _corrections(b, obs, ntaps, pwp, nokbuf, px) if masked else None
                    counts = _pixel_counts(b, obs, wfp, xbuf, px, nf, m_count, half, counter)
                    valid = irb.load(b, validbuf, px, I64)
                    for u, ob in enumerate(obs):
                        cnt = counts[u] if corrs is None else b.sub(counts[u], corrs[u])
                        _store_outputs(b, s, cnt, valid, ap, out, n, oh, b.add(c0, px), ob)
                    b.branch(done)
                b.position_at_end(done)


def _x_forms(b: ir.IRBuilder, s: XnorSpec, sp: ir.Value, forms: list[tuple[int, ...]],
             n: ir.Value, ih0: ir.Value, c0: ir.Value,
             count: ir.Value, xbuf: ir.Value, nokbuf: ir.Value, validbuf: ir.Value,
             borderbuf: ir.Value) -> None:
    """Phase 1: per pixel of the chunk, the x side of every form (padded taps' words 0), the
    number of valid products, a border flag and per tap a lane mask that is -1 if padded."""
    cw = -(-s.C // 64)
    ntaps, nf = s.KH * s.KW, len(forms)
    ones, zero = _splat64(-1), _splat64(0)
    v4ones, v4zero = ir.Constant(V4I32, [-1] * LANES), ir.Constant(V4I32, [0] * LANES)
    with irb.loop(b, 0, count, name="xf") as px:
        iw0 = b.sub(irb.mul(b, b.add(c0, px), s.SW), i64(s.PL))
        tapinfo, valid, allok = pixel_taps(b, s, n, ih0, iw0)
        xs: list[ir.Value] = []
        for t, (ok, base) in enumerate(tapinfo):
            okm = b.select(ok, ones, zero)
            for j in range(cw):
                xv = irb.splat(b, irb.load(b, sp, b.add(base, i64(j)), I64), LANES)
                xs.append(b.and_(xv, okm))
            b.store(b.select(ok, v4zero, v4ones),
                    irb.gep(b, nokbuf, b.add(irb.mul(b, px, ntaps), i64(t)), V4I32), align=16)
        irb.store(b, valid, validbuf, px)
        irb.store(b, b.zext(b.not_(allok), I64), borderbuf, px)
        prefix = [xs[0]]
        for x in xs[1:]:
            prefix.append(b.xor(prefix[-1], x))
        xb = irb.mul(b, px, nf)
        for f, form in enumerate(forms):
            if form == tuple(range(len(form))):
                v = prefix[len(form) - 1]
            else:
                v = xs[form[0]]
                for k in form[1:]:
                    v = b.xor(v, xs[k])
            b.store(v, irb.gep(b, xbuf, b.add(xb, i64(f)), V4I64), align=32)


def _corrections(b: ir.IRBuilder, obs: list[ir.Value], ntaps: int, pwp: ir.Value,
                 nokbuf: ir.Value, px: ir.Value) -> list[ir.Value]:
    """Per output block, the ones its filters have in the pixel's padded taps."""
    nok = [b.load(irb.gep(b, nokbuf, b.add(irb.mul(b, px, ntaps), i64(t)), V4I32),
                  typ=V4I32, align=16) for t in range(ntaps)]
    out = []
    for ob in obs:
        pb = irb.mul(b, ob, ntaps * LANES)
        terms = [b.and_(b.load(irb.gep(b, pwp, b.add(pb, i64(t * LANES)), I32), typ=V4I32,
                               align=4), nok[t]) for t in range(ntaps)]
        out.append(irb.add(b, *terms) if len(terms) > 1 else terms[0])
    return out


def _pixel_counts(b: ir.IRBuilder, obs: list[ir.Value], wfp: ir.Value, xbuf: ir.Value,
                  px: ir.Value, nf: int, m_count: int, half: bool,
                  counter: _Counter) -> list[ir.Value]:
    """Per output block, the ones of (pixel xor filters) over all words, as <4 x i32>."""
    buckets: list[dict[int, list[ir.Value]]] = [{} for _ in obs]
    fbases = [irb.mul(b, ob, nf * LANES) for ob in obs]
    xb = irb.mul(b, px, nf)

    def push(u: int, k: int, v: ir.Value) -> None:
        """Streaming Harley-Seal: a weight's third vector is carry-save added at once."""
        bk = buckets[u].setdefault(k, [])
        bk.append(v)
        if len(bk) == 3:
            lo_, hi_ = _csa(b, *bk)
            buckets[u][k] = [lo_]
            push(u, k + 1, hi_)

    def form(f: int) -> list[ir.Value]:
        """Form f for each output block: one x-side load, shared."""
        xv = b.load(irb.gep(b, xbuf, b.add(xb, i64(f)), V4I64), typ=V4I64, align=32)
        return [b.xor(xv, b.load(irb.gep(b, wfp, b.add(fb, i64(f * LANES)), I64), typ=V4I64,
                                 align=8)) for fb in fbases]

    for m in range(m_count):
        p_, q_, r_ = form(3 * m), form(3 * m + 1), form(3 * m + 2)
        for u in range(len(obs)):
            push(u, 1, b.xor(b.and_(p_[u], q_[u]), r_[u]))
    if half:
        p_, q_ = form(3 * m_count), form(3 * m_count + 1)
        for u in range(len(obs)):
            push(u, 1, b.and_(p_[u], q_[u]))
    for u, v in enumerate(form(nf - 1)):
        push(u, 0, v)
    return [counter.count(bk) for bk in buckets]


def _store_outputs(b: ir.IRBuilder, s: XnorSpec, cnt: ir.Value, valid: ir.Value,
                   ap: ir.Value | None, out: ir.Value, n: ir.Value, oh: ir.Value, ow: ir.Value,
                   ob: ir.Value) -> None:
    """dot = valid - 2*ones, times alpha, to the 4 output channels of block ob."""
    dot = b.sub(b.trunc(irb.splat(b, valid, LANES), V4I32), b.shl(cnt, ir.Constant(V4I32,
                                                                               [1] * LANES)))
    y = b.sitofp(dot, ir.VectorType(F32, LANES))
    o0 = irb.mul(b, ob, LANES)
    if ap is not None:
        y = b.fmul(y, b.load(irb.gep(b, ap, o0, F32), typ=ir.VectorType(F32, LANES), align=4))
    for lane in range(LANES):
        o = b.add(o0, i64(lane))
        oidx = b.add(irb.mul(b, b.add(irb.mul(b, b.add(irb.mul(b, n, s.O), o), s.OH), oh),
                             s.OW), ow)
        irb.store(b, b.extract_element(y, ir.Constant(I32, lane)), out, oidx)
