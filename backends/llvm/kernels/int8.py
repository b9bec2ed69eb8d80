"""int8 conv and gemm: int32 accumulation and fused float32 requantisation + clamp, bit-exact with
``lwc/ops/qlinear.py`` (whose docstring is the specification).

Both ops become one GEMM per group, ``acc[p, o] = sum_k col[p, k] * w[o, k] + bias'[o]``, where
``col`` is the im2col of the input (padding taps hold ``x_zp``; one row of K per output pixel,
K tap-major so each tap is one contiguous run of channels copied from a channels-last int16
copy of the input; just a widening copy for gemm) and ``bias' = bias - x_zp * sum_k w[o, k]``
folds the input zero point in at compile time (weights are symmetric: ``w_zp`` = 0, else the op
is refused). A 3x3 stride-1 conv (one group, channels in whole 16-lane vectors) instead takes an
integer Winograd F(2x2, 3x3) path: 16 GEMMs of 4x fewer rows and K = channels, 2.25x fewer
multiplies, exact (see ``WG_G2``). Operands are widened to int16 (weights are packed as int16
panels at compile time) so the inner loop is the AVX2 ``vpmaddwd`` pattern: 16 x (i16 * i16)
products summed pairwise into 8 x i32 lanes, exact (|x * w| <= 128 * 127, two per lane: no int16
saturation, unlike ``pmaddubsw``'s u8 x s8 pair sums). The register tile is MR = 6 pixels x
NR = 16 output channels (12 accumulators of <8 x i32>): per k pair, each pixel's two taps are
broadcast as one i32 and multiplied with two weight vectors (8 channels x 2 taps). The epilogue is
the spec's requantisation on 8 channels at once: sitofp, fmul by the float32 multipliers,
``llvm.rint``, clamp, fptosi, + y_zp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import F32, I32, i64
from lwc.backends.llvm.plan import LowerCtx, attrs_of, lowers, shape
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Node
from lwc.ops.conv import spatial_attrs
from lwc.ops.qlinear import act_bounds, requant_multiplier

I8T, I16 = ir.IntType(8), ir.IntType(16)
MR = 6   # pixels per register tile
NR = 16  # output channels per register tile (two <8 x i32> accumulators per pixel)


@dataclass(frozen=True)
class Im2ColSpec:
    """x [N, G*cg, *in_sp] (i8/u8) -> cols [N, G, P, Kp] i16."""

    signed: bool
    groups: int
    cg: int
    in_sp: tuple[int, ...]
    out_sp: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    x_zp: int
    kp: int


@dataclass(frozen=True)
class QGemmSpec:
    """cols [B, P, Kp] i16 x packed w [G][O16/NR][Kp/2][NR][2] i16 -> y (strided int8 output)."""

    groups: int
    p: int
    og: int
    kp: int
    y_signed: bool
    y_zp: int
    lo: float
    hi: float
    y_pix_stride: int
    """element distance between consecutive pixels of one output channel."""
    y_chan_stride: int
    y_batch_stride: int
    """element distance between consecutive (batch * G + group) blocks of the output."""
    raw: bool = False
    """store the int32 sums as y [B, P, O16] instead of requantising (Winograd's products)."""

    @property
    def o16(self) -> int:
        return -(-self.og // NR) * NR


def _ext(b: ir.IRBuilder, v: ir.Value, ty: ir.Type, signed: bool) -> ir.Value:
    return b.sext(v, ty) if signed else b.zext(v, ty)


def emit_im2col(module: ir.Module, name: str, s: Im2ColSpec) -> None:
    """args = [x, cols]; one work item per (n, g, output pixel)."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, cols = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    nsp = len(s.in_sp)
    p_total = math.prod(s.out_sp)
    plane = math.prod(s.in_sp)
    ksz = math.prod(s.kernel)
    in_st = [math.prod(s.in_sp[d + 1:]) for d in range(nsp)]
    zp16 = ir.Constant(I16, s.x_zp)
    with irb.loop(b, lo, hi, name="it") as it:
        p = b.srem(it, i64(p_total))
        ng = b.sdiv(it, i64(p_total))  # n * G + g
        src = irb.gep(b, x, irb.mul(b, ng, s.cg * plane), I8T)
        dst = irb.gep(b, cols, irb.mul(b, it, s.kp), I16)
        rem, base = p, []
        for d in reversed(range(nsp)):
            base.append(b.sub(irb.mul(b, b.srem(rem, i64(s.out_sp[d])), s.strides[d]),
                              i64(s.pads[d])))
            rem = b.sdiv(rem, i64(s.out_sp[d]))
        base.reverse()
        # the window lies inside the input (no padding tap): unconditional loads at constant
        # offsets from the window's corner; otherwise every tap is bounds-checked
        inside = ir.Constant(ir.IntType(1), 1)
        corner = i64(0)
        for d in range(nsp):
            span = (s.kernel[d] - 1) * s.dilations[d]
            inside = b.and_(inside, b.icmp_unsigned("<", base[d], i64(max(s.in_sp[d] - span, 0))))
            corner = b.add(corner, irb.mul(b, base[d], in_st[d]))
        offsets = [sum(t * s.dilations[d] * in_st[d] for d, t in enumerate(taps))
                   for taps in np.ndindex(*s.kernel)]
        with b.if_else(inside) as (fast, slow):
            with fast:
                with irb.loop(b, 0, s.cg, name="cf") as c:
                    win = irb.gep(b, src, b.add(irb.mul(b, c, plane), corner), I8T)
                    row = irb.gep(b, dst, irb.mul(b, c, ksz), I16)
                    for t, off in enumerate(offsets):
                        v = _ext(b, irb.load(b, win, off, I8T), I16, s.signed)
                        irb.store(b, v, row, t)
            with slow:
                with irb.loop(b, 0, s.cg, name="c") as c:
                    cbase = irb.mul(b, c, plane)
                    for t, taps in enumerate(np.ndindex(*s.kernel)):
                        ok = ir.Constant(ir.IntType(1), 1)
                        idx = cbase
                        for d, tap in enumerate(taps):
                            pos = b.add(base[d], i64(tap * s.dilations[d]))
                            ok = b.and_(ok, b.icmp_unsigned("<", pos, i64(s.in_sp[d])))
                            idx = b.add(idx, irb.mul(b, pos, in_st[d]))
                        v = irb.load(b, src, b.select(ok, idx, i64(0)), I8T)
                        v16 = b.select(ok, _ext(b, v, I16, s.signed), zp16)
                        irb.store(b, v16, dst, b.add(irb.mul(b, c, ksz), i64(t)))
        with irb.loop(b, s.cg * ksz, s.kp, name="kpad") as k:
            irb.store(b, ir.Constant(I16, 0), dst, k)
    b.ret_void()


@dataclass(frozen=True)
class ToNhwcSpec:
    """x [N, G*cg, *sp] (i8/u8) -> xt [N*G, prod(sp), cg] i16: channels last, widened."""

    signed: bool
    cg: int
    plane: int


def emit_to_nhwc(module: ir.Module, name: str, s: ToNhwcSpec) -> None:
    """args = [x, xt]; one work item per (n*G + g, input pixel)."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, xt = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    with irb.loop(b, lo, hi, name="it") as it:
        q = b.srem(it, i64(s.plane))
        ng = b.sdiv(it, i64(s.plane))
        src = irb.gep(b, x, b.add(irb.mul(b, ng, s.cg * s.plane), q), I8T)
        dst = irb.gep(b, xt, irb.mul(b, it, s.cg), I16)
        with irb.loop(b, 0, s.cg, name="c") as c:
            v = _ext(b, irb.load(b, src, irb.mul(b, c, s.plane), I8T), I16, s.signed)
            irb.store(b, v, dst, c)
    b.ret_void()


def emit_im2col_nhwc(module: ir.Module, name: str, s: Im2ColSpec) -> None:
    """args = [xt (from ``emit_to_nhwc``), cols]; one work item per (n, g, output pixel). K runs
    tap-major (k = tap * cg + c), so each tap is one contiguous run of cg int16 copied from the
    channels-last input (vectorised by LLVM), or cg copies of x_zp where the tap is padding."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    xt, cols = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    nsp = len(s.in_sp)
    p_total = math.prod(s.out_sp)
    plane = math.prod(s.in_sp)
    in_st = [math.prod(s.in_sp[d + 1:]) for d in range(nsp)]
    zp16 = ir.Constant(I16, s.x_zp)
    with irb.loop(b, lo, hi, name="it") as it:
        p = b.srem(it, i64(p_total))
        ng = b.sdiv(it, i64(p_total))  # n * G + g
        src = irb.gep(b, xt, irb.mul(b, ng, plane * s.cg), I16)
        dst = irb.gep(b, cols, irb.mul(b, it, s.kp), I16)
        rem, base = p, []
        for d in reversed(range(nsp)):
            base.append(b.sub(irb.mul(b, b.srem(rem, i64(s.out_sp[d])), s.strides[d]),
                              i64(s.pads[d])))
            rem = b.sdiv(rem, i64(s.out_sp[d]))
        base.reverse()
        for t, taps in enumerate(np.ndindex(*s.kernel)):
            ok = ir.Constant(ir.IntType(1), 1)
            idx = i64(0)
            for d, tap in enumerate(taps):
                pos = b.add(base[d], i64(tap * s.dilations[d]))
                ok = b.and_(ok, b.icmp_unsigned("<", pos, i64(s.in_sp[d])))
                idx = b.add(idx, irb.mul(b, pos, in_st[d]))
            run = irb.gep(b, dst, i64(t * s.cg), I16)
            with b.if_else(ok) as (inside, pad):
                with inside:
                    row = irb.gep(b, src, irb.mul(b, idx, s.cg), I16)
                    with irb.loop(b, 0, s.cg, name="cp") as c:
                        irb.store(b, irb.load(b, row, c, I16), run, c)
                with pad:
                    with irb.loop(b, 0, s.cg, name="zp") as c:
                        irb.store(b, zp16, run, c)
        with irb.loop(b, s.cg * math.prod(s.kernel), s.kp, name="kpad") as k:
            irb.store(b, ir.Constant(I16, 0), dst, k)
    b.ret_void()


def _pmaddwd(b: ir.IRBuilder, a: ir.Value, w: ir.Value) -> ir.Value:
    """<16 x i16> x <16 x i16> -> <8 x i32> pairwise sums (the shape LLVM turns into vpmaddwd)."""
    v16 = irb.vec(16, I32)
    prod = b.mul(b.sext(a, v16), b.sext(w, v16))
    even = b.shuffle_vector(prod, ir.Constant(v16, ir.Undefined),
                            ir.Constant(irb.vec(8, I32), list(range(0, 16, 2))))
    odd = b.shuffle_vector(prod, ir.Constant(v16, ir.Undefined),
                           ir.Constant(irb.vec(8, I32), list(range(1, 16, 2))))
    return b.add(even, odd)


def emit_qgemm(module: ir.Module, name: str, s: QGemmSpec) -> None:
    """args = [cols, wpack, bias' (i32 [G*O16]), mult (f32 [G*O16]), y].

    One work item = (batch*group block, panel of NR output channels, block of MR pixels); items
    of one panel are consecutive so its packed weights stay in cache. Per k pair the micro-kernel
    broadcasts each pixel's two int16 activations (one i32) to all lanes and multiplies them with
    two weight vectors (8 channels x 2 k each): MR x NR/8 vpmaddwd into <8 x i32> accumulators
    whose lanes are output channels, so the requantisation epilogue is vectorised too."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    cols, wp, bias, mult, y = (irb.arg_ptr(b, args, k) for k in range(5))
    v16, v8, f8 = irb.vec(16, I16), irb.vec(8, I32), irb.vec(8, F32)
    nv = NR // 8
    pblocks = -(-s.p // MR)
    panels = s.o16 // NR
    npairs = s.kp // 2
    rint = irb.intrinsic(module, "llvm.rint.v8f32", f8, [f8])
    fmin = irb.intrinsic(module, "llvm.minnum.v8f32", f8, [f8, f8])
    fmax = irb.intrinsic(module, "llvm.maxnum.v8f32", f8, [f8, f8])
    zero = ir.Constant(v8, [0] * 8)
    lo_v, hi_v = ir.Constant(f8, [s.lo] * 8), ir.Constant(f8, [s.hi] * 8)
    zp_v = ir.Constant(v8, [s.y_zp] * 8)
    with irb.loop(b, lo, hi, name="it") as it:
        pb = b.srem(it, i64(pblocks))
        rest = b.sdiv(it, i64(pblocks))
        panel = b.srem(rest, i64(panels))
        bg = b.sdiv(rest, i64(panels))  # batch * G + g
        g = b.srem(bg, i64(s.groups))
        last = i64(s.p - 1)
        pix = []
        for i in range(MR):
            pi = b.add(irb.mul(b, pb, MR), i64(i))
            pix.append((pi, b.select(b.icmp_signed("<", pi, last), pi, last)))
        rows = [irb.gep(b, cols, b.mul(b.add(irb.mul(b, bg, s.p), pc), i64(s.kp)), I16)
                for _, pc in pix]
        ch0 = b.add(irb.mul(b, g, s.o16), irb.mul(b, panel, NR))  # packed channel index
        wpan = irb.gep(b, wp, irb.mul(b, ch0, s.kp), I16)
        with irb.carried_loop(b, 0, npairs, [zero] * (MR * nv), name="kp") as (kp, carry):
            ws = [b.load(irb.gep(b, wpan, b.add(irb.mul(b, kp, NR * 2), i64(v * 16)), I16),
                         typ=v16, align=2) for v in range(nv)]
            nxt = []
            for i in range(MR):
                xi = irb.load(b, rows[i], kp, I32)  # two int16 taps k, k+1 as one i32
                xv = b.bitcast(irb.splat(b, xi, 8), v16)
                nxt += [b.add(carry.values[i * nv + v], _pmaddwd(b, xv, ws[v]))
                        for v in range(nv)]
            carry.next = nxt
        accs = carry.out
        if s.raw:
            for i, (pi, _) in enumerate(pix):
                with b.if_then(b.icmp_signed("<", pi, i64(s.p))):
                    row = irb.add(b, irb.mul(b, bg, s.p * s.o16), irb.mul(b, pi, s.o16),
                                  irb.mul(b, panel, NR))
                    for v in range(nv):
                        b.store(accs[i * nv + v], irb.gep(b, y, b.add(row, i64(8 * v)), I32),
                                align=4)
        else:
            ybase = irb.mul(b, bg, s.y_batch_stride)
            o_base = irb.mul(b, panel, NR)  # channel within the group
            for v in range(nv):
                bv = b.load(irb.gep(b, bias, b.add(ch0, i64(v * 8)), I32), typ=v8, align=4)
                mv = b.load(irb.gep(b, mult, b.add(ch0, i64(v * 8)), F32), typ=f8, align=4)
                for i, (pi, _) in enumerate(pix):
                    r = b.fmul(b.sitofp(b.add(accs[i * nv + v], bv), f8), mv)
                    r = b.call(fmin, [b.call(fmax, [b.call(rint, [r]), lo_v]), hi_v])
                    q = b.trunc(b.add(b.fptosi(r, v8), zp_v), irb.vec(8, I8T))
                    with b.if_then(b.icmp_signed("<", pi, i64(s.p))):  # one test per pixel
                        for lane in range(8):
                            o = b.add(o_base, i64(v * 8 + lane))
                            idx = irb.add(b, ybase, irb.mul(b, o, s.y_chan_stride),
                                          irb.mul(b, pi, s.y_pix_stride))
                            val = b.extract_element(q, ir.Constant(I32, lane))
                            if s.og % NR == 0:  # full panels: no channel test
                                irb.store(b, val, y, idx)
                                continue
                            with b.if_then(b.icmp_signed("<", o, i64(s.og))):
                                irb.store(b, val, y, idx)
    b.ret_void()


# ---- Winograd F(2x2, 3x3) in integers: 2.25x fewer multiplies for 3x3 stride-1 convs ----------
# Y = A^T [(G g G^T) . (B^T d B)] A; with G' = 2G every transform is integer, so the products
# are computed exactly as 4 Y (the tile sums may wrap in int32, but arithmetic is modulo 2^32 and
# 4 Y itself fits, checked at lowering), then shifted right by 2.
WG_G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], np.int64)
WG_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
WG_AT = ((1, 1, 1, 0), (0, 1, -1, -1))
WG_VEC = 16  # channels per input-transform vector (<16 x i16>)


@dataclass(frozen=True)
class WinoInSpec:
    """xt [N, H, W, C] i16 -> v [16, N*th*tw, C] i16 (B^T d B of every 4x4 input tile)."""

    n: int
    c: int
    in_hw: tuple[int, int]
    tiles: tuple[int, int]
    pads: tuple[int, int]


def _lincomb(b: ir.IRBuilder, coefs: tuple[int, ...], xs: list[ir.Value]) -> ir.Value:
    """sum coefs[i] * xs[i] for coefficients in {-1, 0, 1} (adds and subtracts only)."""
    acc = None
    for k, x in zip(coefs, xs):
        if k == 0:
            continue
        if acc is None:
            acc = x if k == 1 else b.sub(ir.Constant(x.type, None), x)
        else:
            acc = b.add(acc, x) if k == 1 else b.sub(acc, x)
    return acc


def emit_wino_input(module: ir.Module, name: str, s: WinoInSpec) -> None:
    """args = [xt, zprow (i16 [C] of x_zp), v]; one work item per output tile. Taps outside the
    input read the zero-point row (the spec's padding)."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    xt, zrow, v = (irb.arg_ptr(b, args, k) for k in range(3))
    (h, w), (th, tw), (pt, pl) = s.in_hw, s.tiles, s.pads
    ntiles = s.n * th * tw
    vt = irb.vec(WG_VEC, I16)
    with irb.loop(b, lo, hi, name="it") as it:
        tx = b.srem(it, i64(tw))
        rest = b.sdiv(it, i64(tw))
        ty = b.srem(rest, i64(th))
        n = b.sdiv(rest, i64(th))
        ptrs = []
        for r in range(4):
            iy = b.add(irb.mul(b, ty, 2), i64(r - pt))
            for c in range(4):
                ix = b.add(irb.mul(b, tx, 2), i64(c - pl))
                ok = b.and_(b.icmp_unsigned("<", iy, i64(h)), b.icmp_unsigned("<", ix, i64(w)))
                idx = irb.add(b, irb.mul(b, n, h * w), irb.mul(b, iy, w), ix)
                row = irb.gep(b, xt, irb.mul(b, b.select(ok, idx, i64(0)), s.c), I16)
                ptrs.append(b.select(ok, row, zrow))
        with irb.loop(b, 0, s.c // WG_VEC, name="cb") as cb:
            off = irb.mul(b, cb, WG_VEC)
            d = [b.load(irb.gep(b, p_, off, I16), typ=vt, align=2) for p_ in ptrs]
            t = [[_lincomb(b, WG_BT[i], [d[r * 4 + c] for r in range(4)]) for c in range(4)]
                 for i in range(4)]
            for i in range(4):
                for j in range(4):
                    val = _lincomb(b, WG_BT[j], t[i])
                    dst = irb.add(b, irb.mul(b, it, s.c), i64((i * 4 + j) * ntiles * s.c), off)
                    b.store(val, irb.gep(b, v, dst, I16), align=2)
    b.ret_void()


@dataclass(frozen=True)
class WinoOutSpec:
    """m [16, N*th*tw, O16] i32 -> y [N, O, OH, OW] int8 (A^T m A / 4, + bias', requantised)."""

    n: int
    o: int
    o16: int
    out_hw: tuple[int, int]
    tiles: tuple[int, int]
    y_zp: int
    lo: float
    hi: float


def emit_wino_output(module: ir.Module, name: str, s: WinoOutSpec) -> None:
    """args = [m, bias' (i32 [O16]), mult (f32 [O16]), y]; one work item per output tile,
    8 channels at a time, requantised as ``emit_qgemm``'s epilogue."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    m, bias, mult, y = (irb.arg_ptr(b, args, k) for k in range(4))
    (oh, ow), (th, tw) = s.out_hw, s.tiles
    ntiles = s.n * th * tw
    v8, f8 = irb.vec(8, I32), irb.vec(8, F32)
    rint = irb.intrinsic(module, "llvm.rint.v8f32", f8, [f8])
    fmin = irb.intrinsic(module, "llvm.minnum.v8f32", f8, [f8, f8])
    fmax = irb.intrinsic(module, "llvm.maxnum.v8f32", f8, [f8, f8])
    lo_v, hi_v = ir.Constant(f8, [s.lo] * 8), ir.Constant(f8, [s.hi] * 8)
    zp_v, two = ir.Constant(v8, [s.y_zp] * 8), ir.Constant(v8, [2] * 8)
    with irb.loop(b, lo, hi, name="it") as it:
        tx = b.srem(it, i64(tw))
        rest = b.sdiv(it, i64(tw))
        ty = b.srem(rest, i64(th))
        n = b.sdiv(rest, i64(th))
        with irb.loop(b, 0, -(-s.o // 8), name="ob") as ob:
            o0 = irb.mul(b, ob, 8)
            mk = [b.load(irb.gep(b, m, irb.add(b, irb.mul(b, it, s.o16), o0,
                                               i64(k * ntiles * s.o16)), I32), typ=v8, align=4)
                  for k in range(16)]
            t = [[_lincomb(b, WG_AT[i], [mk[r * 4 + c] for r in range(4)]) for c in range(4)]
                 for i in range(2)]
            bv = b.load(irb.gep(b, bias, o0, I32), typ=v8, align=4)
            mv = b.load(irb.gep(b, mult, o0, F32), typ=f8, align=4)
            for i in range(2):
                oy = b.add(irb.mul(b, ty, 2), i64(i))
                for j in range(2):
                    ox = b.add(irb.mul(b, tx, 2), i64(j))
                    acc = b.add(b.ashr(_lincomb(b, WG_AT[j], t[i]), two), bv)
                    r = b.fmul(b.sitofp(acc, f8), mv)
                    r = b.call(fmin, [b.call(fmax, [b.call(rint, [r]), lo_v]), hi_v])
                    q = b.trunc(b.add(b.fptosi(r, v8), zp_v), irb.vec(8, I8T))
                    inside = b.and_(b.icmp_signed("<", oy, i64(oh)),
                                    b.icmp_signed("<", ox, i64(ow)))
                    with b.if_then(inside):
                        pix = irb.add(b, irb.mul(b, oy, ow), ox)
                        for lane in range(8):
                            o = b.add(o0, i64(lane))
                            idx = irb.add(b, irb.mul(b, n, s.o * oh * ow), irb.mul(b, o, oh * ow),
                                          pix)
                            val = b.extract_element(q, ir.Constant(I32, lane))
                            if s.o % 8 == 0:
                                irb.store(b, val, y, idx)
                                continue
                            with b.if_then(b.icmp_signed("<", o, i64(s.o))):
                                irb.store(b, val, y, idx)
    b.ret_void()


def _winograd_ok(xs_: tuple, w: np.ndarray, groups: int, strides: tuple, dil: tuple) -> bool:
    """3x3, stride 1, no dilation, one group, channels in whole vectors, and 4 Y within int32."""
    if (len(xs_) != 4 or groups != 1 or w.shape[2:] != (3, 3) or tuple(strides) != (1, 1)
            or tuple(dil) != (1, 1) or xs_[1] % WG_VEC):
        return False
    return 4 * 255 * int(np.abs(w.astype(np.int64)).sum(axis=(1, 2, 3)).max()) < 2**31


def _lower_winograd(node: Node, ctx: LowerCtx, w: np.ndarray, x_zp: int, bias_p: np.ndarray,
                    mult_p: np.ndarray, spec: QGemmSpec, pads: tuple) -> None:
    x, out = node.inputs[0], node.output
    n, c, h, wd = shape(x)
    _, o, oh, ow = shape(out)
    tiles = (-(-oh // 2), -(-ow // 2))
    nt = n * tiles[0] * tiles[1]
    u = np.einsum("ai,ocij,bj->aboc", WG_G2, w.astype(np.int64), WG_G2).reshape(16 * o, c)
    xt = ctx.alloc(n * h * wd * c * 2)
    ctx.call(ToNhwcSpec(x.type.dtype == "i8", c, h * wd), emit_to_nhwc, [ctx.buf(x), xt],
             n * h * wd, work=n * h * wd * c)
    v = ctx.alloc(16 * nt * c * 2)
    ctx.call(WinoInSpec(n, c, (h, wd), tiles, (pads[0], pads[1])), emit_wino_input,
             [xt, ctx.const(np.full(c, x_zp, np.int16)), v], nt, work=nt * c * 16)
    gspec = replace(spec, groups=16, p=nt, kp=c, raw=True)
    m = ctx.alloc(16 * nt * gspec.o16 * 4)
    ctx.call(gspec, emit_qgemm, [v, ctx.const(_pack(u.astype(np.int16), 16, o, c)),
                                 ctx.const(bias_p), ctx.const(mult_p), m],
             16 * (gspec.o16 // NR) * -(-nt // MR), work=16 * nt * gspec.o16 * c)
    ctx.call(WinoOutSpec(n, o, gspec.o16, (oh, ow), tiles, spec.y_zp, spec.lo, spec.hi),
             emit_wino_output, [m, ctx.const(bias_p), ctx.const(mult_p), ctx.buf(out)], nt,
             work=nt * gspec.o16 * 16)


def _const(node: Node, i: int) -> np.ndarray:
    d = node.inputs[i].data
    if d is None:
        raise UnsupportedOpError(f"node {node.label} ({node.op}): operand {i} "
                                 f"(%{node.inputs[i].name}) must be a constant for llvm")
    return d


def _pack(w2: np.ndarray, groups: int, og: int, kp: int) -> np.ndarray:
    """[G*og, K] int8 -> [G][O16/NR][Kp/2][NR][2] int16, zero-padded (channel panels, k pairs)."""
    o16 = -(-og // NR) * NR
    k = w2.shape[1]
    full = np.zeros((groups, o16, kp), np.int16)
    full[:, :og, :k] = w2.reshape(groups, og, k)
    return np.ascontiguousarray(
        full.reshape(groups, o16 // NR, NR, kp // 2, 2).transpose(0, 1, 3, 2, 4))


def _epilogue_consts(node: Node, w2: np.ndarray, groups: int, og: int, x_zp: int
                     ) -> tuple[np.ndarray, np.ndarray, int, float, float, bool]:
    """(bias' [G*O16] i32, mult [G*O16] f32, y_zp, lo - y_zp, hi - y_zp, y signed)."""
    a = attrs_of(node)
    if np.any(_const(node, 5) != 0):
        raise UnsupportedOpError(f"node {node.label} ({node.op}): llvm int8 kernels need "
                                 "symmetric weights (w_zp = 0)")
    xs, ys, yz = _const(node, 1), _const(node, 6), _const(node, 7)
    ws = np.broadcast_to(_const(node, 4).reshape(-1), (w2.shape[0],))
    cout = w2.shape[0]
    bias = (_const(node, 8).astype(np.int64) if len(node.inputs) > 8
            else np.zeros(cout, np.int64))
    bias = bias - x_zp * w2.astype(np.int64).sum(axis=1)
    if np.abs(bias).max(initial=0) >= 2**31:
        raise UnsupportedOpError(f"node {node.label}: folded bias overflows int32")
    mult = requant_multiplier(xs.reshape(-1)[0], ws, ys.reshape(-1)[0])
    o16 = -(-og // NR) * NR
    bias_p = np.zeros((groups, o16), np.int32)
    mult_p = np.zeros((groups, o16), np.float32)
    bias_p[:, :og] = bias.reshape(groups, og)
    mult_p[:, :og] = mult.reshape(groups, og)
    y_zp = int(yz.reshape(-1)[0])
    lo, hi = act_bounds(a["act"], a["clip_min"], a["clip_max"], float(ys.reshape(-1)[0]), y_zp,
                        yz.dtype)
    return (bias_p.ravel(), mult_p.ravel(), y_zp, float(lo - y_zp), float(hi - y_zp),
            yz.dtype == np.int8)


@dataclass(frozen=True)
class QDepthwiseSpec:
    """Depthwise (one input channel per group) int8 conv: x [N, C, *in_sp] -> y [N, C*mult, ...]."""

    signed: bool
    cout: int
    mult: int
    in_sp: tuple[int, ...]
    out_sp: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    x_zp: int
    y_zp: int
    lo: float
    hi: float


def emit_qdepthwise(module: ir.Module, name: str, s: QDepthwiseSpec) -> None:
    """args = [x, w (i32 [Cout, taps]), bias (i32 [Cout]), mult (f32 [Cout]), y]; one item per
    (n, output channel) plane. Taps are unrolled; a padded tap contributes 0 (it would read
    x_zp), so the accumulator is exactly the spec's."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, wt, bias, mult, y = (irb.arg_ptr(b, args, k) for k in range(5))
    nsp = len(s.in_sp)
    in_plane, out_plane = math.prod(s.in_sp), math.prod(s.out_sp)
    ntaps = math.prod(s.kernel)
    in_st = [math.prod(s.in_sp[d + 1:]) for d in range(nsp)]
    rint = irb.intrinsic(module, "llvm.rint.f32", F32, [F32])
    fmin = irb.intrinsic(module, "llvm.minnum.f32", F32, [F32, F32])
    fmax = irb.intrinsic(module, "llvm.maxnum.f32", F32, [F32, F32])
    zp = ir.Constant(I32, s.x_zp)
    with irb.loop(b, lo, hi, name="pl") as pl:  # pl = n * Cout + o
        o = b.srem(pl, i64(s.cout))
        n = b.sdiv(pl, i64(s.cout))
        plane_in = b.add(irb.mul(b, n, s.cout // s.mult), b.sdiv(o, i64(s.mult)))
        src = irb.gep(b, x, irb.mul(b, plane_in, in_plane), I8T)
        dst = irb.gep(b, y, irb.mul(b, pl, out_plane), I8T)
        taps_w = [irb.load(b, wt, b.add(irb.mul(b, o, ntaps), i64(t)), I32) for t in range(ntaps)]
        bo = irb.load(b, bias, o, I32)
        mo = irb.load(b, mult, o, F32)
        with irb.loop(b, 0, out_plane, name="op") as op_:
            rem, base = op_, []
            for d in reversed(range(nsp)):
                base.append(b.sub(irb.mul(b, b.srem(rem, i64(s.out_sp[d])), s.strides[d]),
                                  i64(s.pads[d])))
                rem = b.sdiv(rem, i64(s.out_sp[d]))
            base.reverse()
            acc = bo
            for t, taps in enumerate(np.ndindex(*s.kernel)):
                ok = ir.Constant(ir.IntType(1), 1)
                idx = i64(0)
                for d, tap in enumerate(taps):
                    pos = b.add(base[d], i64(tap * s.dilations[d]))
                    ok = b.and_(ok, b.icmp_unsigned("<", pos, i64(s.in_sp[d])))
                    idx = b.add(idx, irb.mul(b, pos, in_st[d]))
                v = _ext(b, irb.load(b, src, b.select(ok, idx, i64(0)), I8T), I32, s.signed)
                v = b.select(ok, b.sub(v, zp), ir.Constant(I32, 0))
                acc = b.add(acc, b.mul(v, taps_w[t]))
            r = b.call(rint, [b.fmul(b.sitofp(acc, F32), mo)])
            r = b.call(fmin, [b.call(fmax, [r, irb.f32(s.lo)]), irb.f32(s.hi)])
            q = b.trunc(b.add(b.fptosi(r, I32), ir.Constant(I32, s.y_zp)), I8T)
            irb.store(b, q, dst, op_)
    b.ret_void()


def emit_qdepthwise2d(module: ir.Module, name: str, s: QDepthwiseSpec) -> None:
    """2-D depthwise, args as ``emit_qdepthwise``, written so LLVM vectorises along output
    columns: per output row an int32 row of accumulators (on the stack) starts at the bias, each
    tap whose input row exists adds ``(x - x_zp) * w`` over exactly the columns where its input
    column is in range (bounds from compile-time arithmetic, no per-element tests), then one
    requantisation loop writes the row. Same integer sums as the spec, in another order
    (integer addition is associative)."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, wt, bias, mult, y = (irb.arg_ptr(b, args, k) for k in range(5))
    (ih_n, iw_n), (oh_n, ow_n) = s.in_sp, s.out_sp
    (kh_n, kw_n), (sh, sw), (ph, pw), (dh, dw) = s.kernel, s.strides, s.pads, s.dilations
    rint = irb.intrinsic(module, "llvm.rint.f32", F32, [F32])
    fmin = irb.intrinsic(module, "llvm.minnum.f32", F32, [F32, F32])
    fmax = irb.intrinsic(module, "llvm.maxnum.f32", F32, [F32, F32])
    row = b.alloca(I32, size=i64(ow_n), name="accrow")
    zp = ir.Constant(I32, s.x_zp)
    with irb.loop(b, lo, hi, name="pl") as pl:  # pl = n * Cout + o
        o = b.srem(pl, i64(s.cout))
        n = b.sdiv(pl, i64(s.cout))
        plane_in = b.add(irb.mul(b, n, s.cout // s.mult), b.sdiv(o, i64(s.mult)))
        src = irb.gep(b, x, irb.mul(b, plane_in, ih_n * iw_n), I8T)
        dst = irb.gep(b, y, irb.mul(b, pl, oh_n * ow_n), I8T)
        wts = [irb.load(b, wt, b.add(irb.mul(b, o, kh_n * kw_n), i64(t)), I32)
               for t in range(kh_n * kw_n)]
        bo = irb.load(b, bias, o, I32)
        mo = irb.load(b, mult, o, F32)
        with irb.loop(b, 0, oh_n, name="oh") as oh:
            with irb.loop(b, 0, ow_n, name="z") as z:
                irb.store(b, bo, row, z)
            for kh in range(kh_n):
                ih = b.add(irb.mul(b, oh, sh), i64(kh * dh - ph))
                ok = b.icmp_unsigned("<", ih, i64(ih_n))
                with b.if_then(ok):
                    src_row = irb.gep(b, src, irb.mul(b, ih, iw_n), I8T)
                    for kw in range(kw_n):
                        off = kw * dw - pw
                        c_lo = -(off // sw) if off < 0 else 0  # first ow with iw >= 0
                        c_hi = min(ow_n, (iw_n - 1 - off) // sw + 1) if iw_n - 1 - off >= 0 else 0
                        if c_hi <= c_lo:
                            continue
                        wk = wts[kh * kw_n + kw]
                        with irb.loop(b, c_lo, c_hi, name="ow") as ow:
                            iw = b.add(irb.mul(b, ow, sw), i64(off))
                            v = _ext(b, irb.load(b, src_row, iw, I8T), I32, s.signed)
                            acc = b.add(irb.load(b, row, ow, I32), b.mul(b.sub(v, zp), wk))
                            irb.store(b, acc, row, ow)
            drow = irb.gep(b, dst, irb.mul(b, oh, ow_n), I8T)
            with irb.loop(b, 0, ow_n, name="rq") as ow:
                r = b.call(rint, [b.fmul(b.sitofp(irb.load(b, row, ow, I32), F32), mo)])
                r = b.call(fmin, [b.call(fmax, [r, irb.f32(s.lo)]), irb.f32(s.hi)])
                irb.store(b, b.trunc(b.add(b.fptosi(r, I32), ir.Constant(I32, s.y_zp)), I8T),
                          drow, ow)
    b.ret_void()


def _lower_depthwise(node: Node, ctx: LowerCtx, w: np.ndarray, strides: tuple, pads: tuple,
                     dil: tuple) -> None:
    x, out = node.inputs[0], node.output
    xs_, os_ = shape(x), shape(out)
    nsp = len(xs_) - 2
    cout = w.shape[0]
    ys, yz = _const(node, 6), _const(node, 7)
    y_zp = int(yz.reshape(-1)[0])
    a = attrs_of(node)
    lo, hi = act_bounds(a["act"], a["clip_min"], a["clip_max"], float(ys.reshape(-1)[0]), y_zp,
                        yz.dtype)
    ws = np.broadcast_to(_const(node, 4).reshape(-1), (cout,))
    mult = requant_multiplier(_const(node, 1).reshape(-1)[0], ws, ys.reshape(-1)[0])
    bias = (_const(node, 8).astype(np.int32) if len(node.inputs) > 8
            else np.zeros(cout, np.int32))
    spec = QDepthwiseSpec(x.type.dtype == "i8", cout, cout // xs_[1], tuple(xs_[2:]),
                          tuple(os_[2:]), tuple(w.shape[2:]), tuple(strides), tuple(pads[:nsp]),
                          tuple(dil), int(_const(node, 2).reshape(-1)[0]), y_zp,
                          float(lo - y_zp), float(hi - y_zp))
    args = [ctx.buf(x), ctx.const(w.reshape(cout, -1).astype(np.int32)), ctx.const(bias),
            ctx.const(np.ascontiguousarray(mult, np.float32)), ctx.buf(out)]
    emit = emit_qdepthwise2d if nsp == 2 else emit_qdepthwise
    ctx.call(spec, emit, args, xs_[0] * cout, work=out.type.numel() * math.prod(w.shape[2:]))


@lowers("qlinear_conv")
def lower_qlinear_conv(node: Node, ctx: LowerCtx) -> None:
    x, out = node.inputs[0], node.output
    a = attrs_of(node)
    w = _const(node, 3)
    xs_, os_ = shape(x), shape(out)
    nsp = len(xs_) - 2
    strides, dil, pads = spatial_attrs({**a, "dilations": a.get("dilations", ())}, nsp)
    groups, cout = a["group"], w.shape[0]
    cg, og = xs_[1] // groups, cout // groups
    if cg == 1 and groups > 1:
        if np.any(_const(node, 5) != 0):
            raise UnsupportedOpError(f"node {node.label} ({node.op}): llvm int8 kernels need "
                                     "symmetric weights (w_zp = 0)")
        _lower_depthwise(node, ctx, w, strides, pads, dil)
        return
    k = cg * math.prod(w.shape[2:])
    kp = k + k % 2
    x_zp = int(_const(node, 2).reshape(-1)[0])
    # K tap-major (k = tap * cg + c), the order emit_im2col_nhwc writes
    w2 = np.ascontiguousarray(w.reshape(cout, cg, -1).transpose(0, 2, 1)).reshape(cout, k)
    bias_p, mult_p, y_zp, lo, hi, y_signed = _epilogue_consts(node, w2, groups, og, x_zp)
    p = math.prod(os_[2:])
    spec = QGemmSpec(groups, p, og, kp, y_signed, y_zp, lo, hi, y_pix_stride=1, y_chan_stride=p,
                     y_batch_stride=og * p)
    if _winograd_ok(xs_, w, groups, strides, dil):
        _lower_winograd(node, ctx, w, x_zp, bias_p, mult_p, spec, pads)
        return
    n = xs_[0]
    plane = math.prod(xs_[2:])
    xt = ctx.alloc(n * groups * plane * cg * 2)
    ctx.call(ToNhwcSpec(x.type.dtype == "i8", cg, plane), emit_to_nhwc, [ctx.buf(x), xt],
             n * groups * plane, work=n * groups * plane * cg)
    cols = ctx.alloc(n * groups * p * kp * 2)
    ctx.call(Im2ColSpec(x.type.dtype == "i8", groups, cg, tuple(xs_[2:]), tuple(os_[2:]),
                        tuple(w.shape[2:]), tuple(strides), tuple(pads[:nsp]), tuple(dil), x_zp,
                        kp),
             emit_im2col_nhwc, [xt, cols], n * groups * p, work=n * groups * p * kp)
    _gemm_call(ctx, spec, cols, w2, groups, og, kp, bias_p, mult_p, out, n * groups)


def _gemm_call(ctx: LowerCtx, spec: QGemmSpec, cols, w2: np.ndarray, groups: int, og: int,
               kp: int, bias_p: np.ndarray, mult_p: np.ndarray, out, blocks: int) -> None:
    args = [cols, ctx.const(_pack(w2, groups, og, kp)), ctx.const(bias_p), ctx.const(mult_p),
            ctx.buf(out)]
    items = blocks * (spec.o16 // NR) * -(-spec.p // MR)
    ctx.call(spec, emit_qgemm, args, items, work=blocks * spec.p * spec.o16 * kp)


@lowers("qlinear_gemm")
def lower_qlinear_gemm(node: Node, ctx: LowerCtx) -> None:
    """A [M, K] rows are the 'pixels' (widened by a 1x1 im2col), B' columns the channels."""
    x, out = node.inputs[0], node.output
    a = attrs_of(node)
    b_ = _const(node, 3)
    w2 = b_ if a["trans_b"] else np.ascontiguousarray(b_.T)  # [N, K]
    m, k = shape(x)
    nout = w2.shape[0]
    kp = k + k % 2
    x_zp = int(_const(node, 2).reshape(-1)[0])
    bias_p, mult_p, y_zp, lo, hi, y_signed = _epilogue_consts(node, w2, 1, nout, x_zp)
    cols = ctx.alloc(m * kp * 2)
    # rows of A are contiguous in K: widen [M, K] -> [M, Kp] with a trivial im2col (one block
    # of K "channels", 1x1 spatial, per row)
    ctx.call(Im2ColSpec(x.type.dtype == "i8", 1, k, (1,), (1,), (1,), (1,), (0,), (1,), x_zp,
                        kp),
             emit_im2col, [ctx.buf(x), cols], m, work=m * kp)
    spec = QGemmSpec(1, m, nout, kp, y_signed, y_zp, lo, hi, y_pix_stride=nout, y_chan_stride=1,
                     y_batch_stride=0)
    _gemm_call(ctx, spec, cols, w2, 1, nout, kp, bias_p, mult_p, out, 1)



# ---- pooling and adds: what a whole quantised model needs besides conv/gemm ---------------------
# (quantize_linear / dequantize_linear are lowered in elementwise.py)
BLOCK = 4096  # elements per work item of the elementwise kernels


@dataclass(frozen=True)
class IntMaxPoolSpec:
    signed: bool
    in_sp: tuple[int, ...]
    out_sp: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]


def emit_int_max_pool(module: ir.Module, name: str, s: IntMaxPoolSpec) -> None:
    """args = [x, y] int8/uint8; one item per (n, c) plane; padding never wins (the dtype's
    minimum, as the interpreter)."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, out = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    nsp = len(s.in_sp)
    in_plane, out_plane = math.prod(s.in_sp), math.prod(s.out_sp)
    in_st = [math.prod(s.in_sp[d + 1:]) for d in range(nsp)]
    info = np.iinfo(np.int8 if s.signed else np.uint8)
    with irb.loop(b, lo, hi, name="pl") as pl:
        src = irb.gep(b, x, irb.mul(b, pl, in_plane), I8T)
        dst = irb.gep(b, out, irb.mul(b, pl, out_plane), I8T)
        with irb.loop(b, 0, out_plane, name="o") as o:
            rem, base = o, []
            for d in reversed(range(nsp)):
                base.append(b.sub(irb.mul(b, b.srem(rem, i64(s.out_sp[d])), s.strides[d]),
                                  i64(s.pads[d])))
                rem = b.sdiv(rem, i64(s.out_sp[d]))
            base.reverse()
            acc: ir.Value = ir.Constant(I32, int(info.min))
            for taps in np.ndindex(*s.kernel):
                ok = ir.Constant(ir.IntType(1), 1)
                idx = i64(0)
                for d, t in enumerate(taps):
                    c = b.add(base[d], i64(t * s.dilations[d]))
                    ok = b.and_(ok, b.icmp_unsigned("<", c, i64(s.in_sp[d])))
                    idx = b.add(idx, irb.mul(b, c, in_st[d]))
                v = _ext(b, irb.load(b, src, b.select(ok, idx, i64(0)), I8T), I32, s.signed)
                v = b.select(ok, v, ir.Constant(I32, int(info.min)))
                acc = b.select(b.icmp_signed(">", v, acc), v, acc)
            irb.store(b, b.trunc(acc, I8T), dst, o)
    b.ret_void()


def lower_int_max_pool(node: Node, ctx: LowerCtx) -> None:
    """max_pool on int8/uint8 codes (called by the pool lowering for those dtypes)."""
    x, out = node.inputs[0], node.output
    a = attrs_of(node)
    if node.op != "max_pool" or a["ceil_mode"]:
        raise UnsupportedOpError(f"node {node.label} ({node.op}): llvm pools int8 only with "
                                 "max_pool without ceil_mode")
    xs, os_ = shape(x), shape(out)
    nsp = len(xs) - 2
    strides, dil, pads = spatial_attrs({**a, "dilations": a.get("dilations", ())}, nsp)
    s = IntMaxPoolSpec(x.type.dtype == "i8", tuple(xs[2:]), tuple(os_[2:]), tuple(a["kernel"]),
                       tuple(strides), tuple(pads[:nsp]), tuple(dil))
    ctx.call(s, emit_int_max_pool, [ctx.buf(x), ctx.buf(out)], xs[0] * xs[1],
             work=out.type.numel() * math.prod(s.kernel))


@dataclass(frozen=True)
class QAddSpec:
    n: int
    a_signed: bool
    b_signed: bool
    y_signed: bool
    a_zp: int
    b_zp: int
    y_zp: int
    fa: float
    fb: float
    lo: float
    hi: float


def emit_qadd(module: ir.Module, name: str, s: QAddSpec) -> None:
    """args = [a, b, y] of equal shapes; one item per BLOCK elements. As lwc/ops/qlinear.py:
    rint(f32(a - a_zp) * fa + f32(b - b_zp) * fb), clamped, + y_zp (float32 throughout)."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    pa, pb, py = (irb.arg_ptr(b, args, k) for k in range(3))
    rint = irb.intrinsic(module, "llvm.rint.f32", F32, [F32])
    fmin = irb.intrinsic(module, "llvm.minnum.f32", F32, [F32, F32])
    fmax = irb.intrinsic(module, "llvm.maxnum.f32", F32, [F32, F32])
    with irb.loop(b, lo, hi, name="blk") as blk:
        start = irb.mul(b, blk, BLOCK)
        stop = b.select(b.icmp_signed("<", i64(s.n), b.add(start, i64(BLOCK))), i64(s.n),
                        b.add(start, i64(BLOCK)))
        with irb.loop(b, start, stop, name="e") as e:
            terms = []
            for p, signed, zp, f in ((pa, s.a_signed, s.a_zp, s.fa),
                                     (pb, s.b_signed, s.b_zp, s.fb)):
                q = b.sub(_ext(b, irb.load(b, p, e, I8T), I32, signed), ir.Constant(I32, zp))
                terms.append(b.fmul(b.sitofp(q, F32), irb.f32(f)))
            v = b.call(rint, [b.fadd(terms[0], terms[1])])
            v = b.call(fmin, [b.call(fmax, [v, irb.f32(s.lo)]), irb.f32(s.hi)])
            irb.store(b, b.trunc(b.add(b.fptosi(v, I32), ir.Constant(I32, s.y_zp)), I8T), py, e)
    b.ret_void()


@lowers("qlinear_add")
def lower_qlinear_add(node: Node, ctx: LowerCtx) -> None:
    a_v, b_v, out = node.inputs[0], node.inputs[3], node.output
    if shape(a_v) != shape(out) or shape(b_v) != shape(out):
        raise UnsupportedOpError(f"node {node.label} ({node.op}): llvm adds int8 tensors of equal "
                                 f"shapes only, got {a_v.type} + {b_v.type}")
    at = attrs_of(node)
    a_s, b_s, y_s = (float(np.float32(_const(node, i).reshape(-1)[0])) for i in (1, 4, 6))
    a_z, b_z, y_z = (int(_const(node, i).reshape(-1)[0]) for i in (2, 5, 7))
    fa = float(np.float32(np.float32(a_s) / np.float32(y_s)))
    fb = float(np.float32(np.float32(b_s) / np.float32(y_s)))
    lo, hi = act_bounds(at["act"], at["clip_min"], at["clip_max"], y_s, y_z, out.type.dtype.numpy)
    n = out.type.numel()
    spec = QAddSpec(n, a_v.type.dtype == "i8", b_v.type.dtype == "i8", out.type.dtype == "i8",
                    a_z, b_z, y_z, fa, fb, float(lo - y_z), float(hi - y_z))
    ctx.call(spec, emit_qadd, [ctx.buf(a_v), ctx.buf(b_v), ctx.buf(out)], -(-n // BLOCK), work=n)
