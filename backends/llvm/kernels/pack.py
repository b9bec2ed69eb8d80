"""Pack kernels: write the B operand of the GEMM as zero-padded ``[G][Nb][K][nr]`` panels.

``Im2colSpec`` gathers convolution windows (any number of spatial axes, strides, pads,
dilations) straight into panel order, so im2col and packing are one pass; per panel the output
coordinates of its ``nr`` columns are computed once and reused for every k. ``StridedPackSpec``
packs a plain matrix (matmul/gemm activations, transposed or not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import F32, I64, i64


@dataclass(frozen=True)
class Im2colSpec:
    G: int
    C: int
    """Input channels per group."""
    in_sp: tuple[int, ...]
    out_sp: tuple[int, ...]
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    """Leading pads only (one per spatial axis)."""
    dilations: tuple[int, ...]
    nr: int
    g_stride: int
    """Input elements between consecutive groups (C * prod(in_sp), batch folded into G)."""

    @property
    def K(self) -> int:
        return self.C * math.prod(self.kernel)

    @property
    def N(self) -> int:
        return math.prod(self.out_sp)

    @property
    def nb(self) -> int:
        return -(-self.N // self.nr)

    @property
    def pointwise(self) -> bool:
        return (all(k == 1 for k in self.kernel) and all(s == 1 for s in self.strides)
                and all(p == 0 for p in self.pads) and self.in_sp == self.out_sp)


def emit_im2col(module: ir.Module, name: str, s: Im2colSpec) -> None:
    """args = [x, Bpacked]; items = G * Nb panels."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, dst = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    nsp = len(s.in_sp)
    in_plane = math.prod(s.in_sp)
    nr, N, K = s.nr, s.N, s.K
    # per-panel tables: base input coordinate of each column along each axis (or a sentinel)
    tabs = [b.alloca(I64, size=nr, name=f"base{d}") for d in range(nsp)]
    with irb.loop(b, lo, hi, name="p") as p:
        g = b.sdiv(p, i64(s.nb))
        jb = b.srem(p, i64(s.nb))
        src = irb.gep(b, x, irb.mul(b, g, s.g_stride))
        panel = irb.gep(b, dst, irb.mul(b, p, K * nr))
        n0 = irb.mul(b, jb, nr)
        if s.pointwise:
            _pack_rows(b, src, panel, n0, K, nr, N, in_plane)
        else:
            _im2col_panel(b, s, src, panel, n0, tabs)
    b.ret_void()


def _im2col_panel(b: ir.IRBuilder, s: Im2colSpec, src: ir.Value, panel: ir.Value, n0: ir.Value,
                  tabs: list[ir.Value]) -> None:
    nsp = len(s.in_sp)
    in_plane = math.prod(s.in_sp)
    in_strides = [math.prod(s.in_sp[d + 1:]) for d in range(nsp)]
    ksz = math.prod(s.kernel)
    nr, N, K = s.nr, s.N, s.K
    with irb.loop(b, 0, nr, name="j") as j:
        n = b.add(n0, j)
        valid = b.icmp_signed("<", n, i64(N))
        rem = n
        for d in reversed(range(nsp)):
            od = b.srem(rem, i64(s.out_sp[d]))
            rem = b.sdiv(rem, i64(s.out_sp[d]))
            base = b.sub(irb.mul(b, od, s.strides[d]), i64(s.pads[d]))
            # a huge sentinel makes every tap of a padding column fail the bounds test
            base = b.select(valid, base, i64(-(1 << 40)))
            irb.store(b, base, tabs[d], j)
    with irb.loop(b, 0, K, name="k") as k:
        c = b.sdiv(k, i64(ksz))
        rem = b.srem(k, i64(ksz))
        offs = []
        for d in reversed(range(nsp)):
            kd = b.srem(rem, i64(s.kernel[d]))
            rem = b.sdiv(rem, i64(s.kernel[d]))
            offs.append(irb.mul(b, kd, s.dilations[d]))
        offs.reverse()
        chan = irb.gep(b, src, irb.mul(b, c, in_plane))
        row = irb.gep(b, panel, irb.mul(b, k, nr))
        with irb.loop(b, 0, nr, name="j2") as j:
            ok = ir.Constant(ir.IntType(1), 1)
            idx = i64(0)
            for d in range(nsp):
                bd = irb.load(b, tabs[d], j, I64)
                cd = b.add(bd, offs[d])
                ok = b.and_(ok, b.icmp_unsigned("<", cd, i64(s.in_sp[d])))
                idx = b.add(idx, irb.mul(b, cd, in_strides[d]))
            idx = b.select(ok, idx, i64(0))
            v = irb.load(b, chan, idx)
            irb.store(b, b.select(ok, v, irb.f32(0.0)), row, j)


def _pack_rows(b: ir.IRBuilder, src: ir.Value, panel: ir.Value, n0: ir.Value, rows: int, nr: int,
               N: int, row_stride: int) -> None:
    """panel[k][j] = src[k*row_stride + n0 + j] for n0 + j < N, else 0 (contiguous rows).

    Full panels and the one partial panel get separate loops with constant trip counts."""
    tail = N % nr
    full = b.icmp_signed("<=", b.add(n0, i64(nr)), i64(N))
    with b.if_else(full) as (then, other):
        with then:
            _copy_rows(b, src, panel, n0, rows, nr, nr, row_stride)
        with other:
            _copy_rows(b, src, panel, n0, rows, nr, tail, row_stride)


def _copy_rows(b: ir.IRBuilder, src: ir.Value, panel: ir.Value, n0: ir.Value, rows: int, nr: int,
               cnt: int, row_stride: int) -> None:
    with irb.loop(b, 0, rows, name="k") as k:
        srow = irb.gep(b, src, b.add(irb.mul(b, k, row_stride), n0))
        drow = irb.gep(b, panel, irb.mul(b, k, nr))
        with irb.loop(b, 0, cnt, name="j") as j:
            irb.store(b, irb.load(b, srow, j), drow, j)
        if cnt < nr:
            with irb.loop(b, cnt, nr, name="z") as j:
                irb.store(b, irb.f32(0.0), drow, j)


@dataclass(frozen=True)
class StridedPackSpec:
    """B[g][k][n] = src[g*gs + k*ks + n*ns] packed into panels of nr columns."""

    G: int
    K: int
    N: int
    nr: int
    gs: int
    ks: int
    ns: int

    @property
    def nb(self) -> int:
        return -(-self.N // self.nr)


def emit_strided_pack(module: ir.Module, name: str, s: StridedPackSpec) -> None:
    """args = [src, Bpacked]; items = G * Nb panels."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, dst = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    nr = s.nr
    with irb.loop(b, lo, hi, name="p") as p:
        g = b.sdiv(p, i64(s.nb))
        jb = b.srem(p, i64(s.nb))
        src = irb.gep(b, x, irb.mul(b, g, s.gs))
        panel = irb.gep(b, dst, irb.mul(b, p, s.K * nr))
        n0 = irb.mul(b, jb, nr)
        if s.ns == 1:
            _pack_rows(b, src, panel, n0, s.K, nr, s.N, s.ks)
        else:
            _pack_strided_panel(b, s, src, panel, n0)
    b.ret_void()


def _pack_strided_panel(b: ir.IRBuilder, s: StridedPackSpec, src: ir.Value, panel: ir.Value,
                        n0: ir.Value) -> None:
    nr = s.nr
    with irb.loop(b, 0, s.K, name="k") as k:
        row = irb.gep(b, panel, irb.mul(b, k, nr))
        with irb.loop(b, 0, nr, name="j") as j:
            n = b.add(n0, j)
            ok = b.icmp_signed("<", n, i64(s.N))
            idx = b.select(ok, b.add(irb.mul(b, k, s.ks), irb.mul(b, n, s.ns)), i64(0))
            v = irb.load(b, src, idx)
            irb.store(b, b.select(ok, v, irb.f32(0.0)), row, j)


__all__ = ["F32", "Im2colSpec", "StridedPackSpec", "emit_im2col", "emit_strided_pack"]


@dataclass(frozen=True)
class Im2rowSpec:
    """2-D im2col into GEMM panels (``nr`` > 0) or a dense [G][K][OH*OW] matrix (unpacked B).

    Each row k = (c, kh, kw) is the input plane shifted by the tap: per output row, a run of
    zeros, a (strided, for stride > 1) copy and a run of zeros, so stride-1 copies vectorise."""

    G: int
    C: int
    H: int
    W: int
    OH: int
    OW: int
    KH: int
    KW: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    nr: int = 0
    """0: dense rows [G][K][N]. Otherwise write GEMM panels [G][Nb][K][nr] (zero-padded
    columns): each row is built in a stack buffer, then copied out in nr-float pieces, so the
    GEMM reads B packed instead of packing a slice per work item."""

    @property
    def K(self) -> int:
        return self.C * self.KH * self.KW

    @property
    def N(self) -> int:
        return self.OH * self.OW

    @property
    def nb(self) -> int:
        return -(-self.N // self.nr) if self.nr else 0


def emit_im2row(module: ir.Module, name: str, s: Im2rowSpec) -> None:
    """args = [x, B]; items = G * K rows."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    x, dst = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    ksz = s.KH * s.KW
    rowbuf = None
    if s.nr:
        rowbuf = b.alloca(F32, size=s.nb * s.nr, name="rowbuf")
        rowbuf.align = 64
        with irb.loop(b, s.N, s.nb * s.nr, name="zt") as j:  # padding columns stay zero
            irb.store(b, irb.f32(0.0), rowbuf, j)
    with irb.loop(b, lo, hi, name="row") as row:
        g = b.sdiv(row, i64(s.K))
        k = b.srem(row, i64(s.K))
        c = b.sdiv(k, i64(ksz))
        kh = b.sdiv(b.srem(k, i64(ksz)), i64(s.KW))
        kw = b.srem(k, i64(s.KW))
        plane = irb.gep(b, x, b.add(irb.mul(b, g, s.C * s.H * s.W), irb.mul(b, c, s.H * s.W)))
        out = rowbuf if rowbuf is not None else irb.gep(b, dst, irb.mul(b, row, s.N))
        # columns whose input position is inside [0, W): ow in [lo_w, hi_w)
        off = b.sub(irb.mul(b, kw, s.dw), i64(s.pw))          # iw = ow*sw + off
        lo_w = b.sdiv(b.add(b.sub(i64(0), off), i64(s.sw - 1)), i64(s.sw))
        lo_w = b.select(b.icmp_signed("<", off, i64(0)), lo_w, i64(0))
        lo_w = b.select(b.icmp_signed(">", lo_w, i64(s.OW)), i64(s.OW), lo_w)
        lim = b.sub(i64(s.W), off)                            # need ow*sw < W - off
        hi_w = b.sdiv(b.add(lim, i64(s.sw - 1)), i64(s.sw))
        hi_w = b.select(b.icmp_signed("<", lim, i64(0)), i64(0), hi_w)
        hi_w = b.select(b.icmp_signed(">", hi_w, i64(s.OW)), i64(s.OW), hi_w)
        hi_w = b.select(b.icmp_signed("<", hi_w, lo_w), lo_w, hi_w)
        with irb.loop(b, 0, s.OH, name="oh") as oh:
            ih = b.add(irb.mul(b, oh, s.sh), b.sub(irb.mul(b, kh, s.dh), i64(s.ph)))
            orow = irb.gep(b, out, irb.mul(b, oh, s.OW))
            inside = b.icmp_unsigned("<", ih, i64(s.H))
            with b.if_else(inside) as (then, other):
                with then:
                    src = irb.gep(b, plane, b.add(irb.mul(b, ih, s.W), off))
                    with irb.loop(b, 0, lo_w, name="z0") as j:
                        irb.store(b, irb.f32(0.0), orow, j)
                    with irb.loop(b, lo_w, hi_w, name="cp") as j:
                        irb.store(b, irb.load(b, src, irb.mul(b, j, s.sw)), orow, j)
                    with irb.loop(b, hi_w, s.OW, name="z1") as j:
                        irb.store(b, irb.f32(0.0), orow, j)
                with other:
                    with irb.loop(b, 0, s.OW, name="z2") as j:
                        irb.store(b, irb.f32(0.0), orow, j)
        if rowbuf is not None:
            gbase = irb.gep(b, dst, b.add(irb.mul(b, g, s.nb * s.K * s.nr), irb.mul(b, k, s.nr)))
            with irb.loop(b, 0, s.nb, name="pb") as jb:
                d = irb.gep(b, gbase, irb.mul(b, jb, s.K * s.nr))
                sp = irb.gep(b, rowbuf, irb.mul(b, jb, s.nr))
                for j in range(s.nr):
                    irb.store(b, irb.load(b, sp, j), d, j)
    b.ret_void()
