"""Lowering: an int8 ``QModel`` -> an accelerator ``Program``.

conv and gemm become GEMM tiles (M = output pixels, K = C/g * kh * kw, N = output channels per
group). The im2col matrix is never written to DRAM: ``loadi`` asks the address generator for a
tile of it. Tiles are sized so each fits half of its buffer (double buffering); the dependency
tokens let the load of the next tile run under the current multiply. Depthwise convs run on the
vector unit (``vdw``) or on the array (``depthwise = "array"``) as block-diagonal GEMMs of as many
channels as one fold holds (one GEMM per channel when only one fits), which maps badly and is
reported. Pooling, residual adds and concat run on the vector unit.
On a VPU every layer is split evenly over the cores first (see ``vpu.py``).
"""

from __future__ import annotations

import numpy as np

from lwc.backends.accel.config import AccelConfig
from lwc.backends.accel.isa import Buf, Dep, Instr, make, pack2
from lwc.backends.accel.layout import BufferPlan, DramImage, buffer_plan
from lwc.backends.accel.program import LayerInfo, Program, TensorInfo
from lwc.backends.accel.qmodel import QAdd, QConcat, QConv, QModel, QPool
from lwc.errors import LwcError


class LoweringError(LwcError):
    """A layer that cannot be tiled onto the accelerator's buffers."""


class _Emitter:
    """Emits one core's instructions with the double-buffer token protocol."""

    def __init__(self, plan: BufferPlan, layer: int, core: int) -> None:
        self.plan = plan
        self.layer = layer
        self.core = core
        self.out: list[Instr] = []
        self.step = 0
        self.tile = 0
        self.max_tile = 0

    def emit(self, op: str, flags: Dep = Dep.NONE, **f: int) -> None:
        self.out.append(make(op, flags, self.layer, self.core, **f))

    def in_buf(self) -> int:
        return self.plan.in_base[self.step % 2]

    def note(self, nbytes: int) -> None:
        """Record a tile's footprint; exceeding one half of the buffers is a lowering bug."""
        if nbytes > self.plan.tile_budget:
            raise LoweringError(f"layer {self.layer} core {self.core}: a {nbytes}-byte tile "
                                f"exceeds the {self.plan.tile_budget}-byte per-tile budget")
        self.max_tile = max(self.max_tile, nbytes)

    def load_group(self, loads: list[tuple[str, dict[str, int]]]) -> None:
        """One step's loads: the first pops a free-buffer token, the last announces the data."""
        for i, (op, f) in enumerate(loads):
            self.emit(op, _flags(pop_next=i == 0, push_next=i == len(loads) - 1), **f)


_DEPS = [Dep(i) for i in range(16)]
assert (Dep.POP_PREV, Dep.POP_NEXT, Dep.PUSH_PREV, Dep.PUSH_NEXT) == (1, 2, 4, 8)
"""Every flag combination, built once (IntFlag arithmetic is slow in a hot loop)."""


def _flags(pop_prev: bool = False, pop_next: bool = False, push_prev: bool = False,
           push_next: bool = False) -> Dep:
    return _DEPS[pop_prev + 2 * pop_next + 4 * push_prev + 8 * push_next]


def gemm_tiles(plan: BufferPlan, cfg: AccelConfig, m: int, k: int, n: int) -> tuple[int, int, int]:
    """(tm, tk, tn): N in array-column multiples, K in array-row multiples, M what fits."""
    unit_n = cfg.array.cols if cfg.vpu is None else 32
    unit_k = cfg.array.rows if cfg.vpu is None else 1
    tn = min(n, unit_n, plan.param_half // 3)
    tk = min(k, max(unit_k, (plan.wgt_half // tn) // unit_k * unit_k))
    if tk * tn > plan.wgt_half:
        tk = max(1, plan.wgt_half // tn)
    tm = min(m, plan.acc_half // tn, plan.in_half // tk, plan.out_half // tn)
    if tm < 1 or tk < 1:
        raise LoweringError(f"buffers too small for a {m}x{k}x{n} GEMM tile "
                            f"(in half {plan.in_half} B, acc half {plan.acc_half} words)")
    return tm, tk, tn


def emit_conv(e: _Emitter, cfg: AccelConfig, lyr: QConv, x: TensorInfo, y: TensorInfo,
              w_addr: int, p_addr: int, groups: range, n_rng: range, m_rng: range) -> int:
    """GEMM tiles of groups x n_rng (channels within a group) x m_rng (output pixels).

    When K fits one tile, the loop order keeps the cheaper operand in the buffers: output
    channels outer (each weight tile is loaded once and stays while the pixel tiles stream) or
    pixels outer (each input tile stays while the weight tiles stream). A buffer half that
    already holds the tile a step needs is not loaded again."""
    o, cg, kh, kw = lyr.w.shape
    og = o // lyr.group
    _, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    k = cg * kh * kw
    tm, tk, tn = gemm_tiles(e.plan, cfg, len(m_rng), k, len(n_rng))
    macs = 0
    e.emit("agcfg", h=h, w=w, c=cg, kh=kh, kw=kw, stride=pack2(*lyr.strides),
           pad=pack2(lyr.pads[0], lyr.pads[1]), dil=pack2(*lyr.dilations), ow=ow)
    ksteps = list(range(0, k, tk))
    n_tiles = [(n0, min(tn, n_rng.stop - n0)) for n0 in range(n_rng.start, n_rng.stop, tn)]
    m_tiles = [(m0, min(tm, m_rng.stop - m0)) for m0 in range(m_rng.start, m_rng.stop, tm)]
    x_bytes = cg * h * w  # one pass over a group's input
    pixels_outer = len(ksteps) == 1 and \
        x_bytes + len(m_tiles) * k * len(n_rng) < len(n_tiles) * x_bytes + k * len(n_rng)
    order = ([(mt, nt) for mt in m_tiles for nt in n_tiles] if pixels_outer
             else [(mt, nt) for nt in n_tiles for mt in m_tiles])
    held: dict[tuple[str, int], tuple[int, ...]] = {}
    """(region, half) -> the tile it holds, valid within this call only."""

    def fresh(region: str, half: int, key: tuple[int, ...]) -> bool:
        if held.get((region, half)) == key:
            return False
        held[(region, half)] = key
        return True

    for g in groups:
        xg = x.addr + g * cg * h * w
        for (m0, mm), (n0, nn) in order:
            ch0 = g * og + n0
            t = e.tile % 2
            acc = t * e.plan.acc_half
            par = t * e.plan.param_half
            for si, k0 in enumerate(ksteps):
                kk = min(tk, k - k0)
                half = e.step % 2
                a, wb = e.in_buf(), half * e.plan.wgt_half
                loads = []
                if si == 0 and fresh("param", t, (ch0, nn)):
                    loads.append(("load", dict(buf=Buf.PARAM, dst=par, dram=p_addr + ch0 * 4,
                                               rows=3, cols=nn, rstride=o, cstride=1)))
                if fresh("act", half, (g, m0, mm, k0, kk)):
                    loads.append(("loadi", dict(dst=a, dram=xg, m0=m0, rows=mm, k0=k0,
                                                cols=kk)))
                if fresh("wgt", half, (g, k0, kk, n0, nn)) or not loads:
                    held[("wgt", half)] = (g, k0, kk, n0, nn)
                    loads.append(("load", dict(buf=Buf.WGT, dst=wb,
                                               dram=w_addr + (g * k + k0) * og + n0,
                                               rows=kk, cols=nn, rstride=og, cstride=1)))
                e.load_group(loads)
                last = si == len(ksteps) - 1
                e.emit("matmul", _flags(pop_prev=True, pop_next=si == 0, push_prev=not last),
                       acc=acc, a=a, w=wb, m=mm, k=kk, n=nn, accumulate=int(si > 0))
                e.note(mm * kk + kk * nn + 4 * mm * nn + mm * nn)
                e.step += 1
                macs += mm * kk * nn
            dst = e.plan.out_base[t]
            e.emit("vreq", _flags(push_prev=True, push_next=True), dst=dst, acc=acc, param=par,
                   m=mm, n=nn, lo=lyr.lo, hi=lyr.hi)
            e.emit("store", _flags(pop_prev=True, push_prev=True),
                   dram=y.addr + ch0 * oh * ow + m0, src=dst, rows=mm, cols=nn, rstride=1,
                   cstride=oh * ow)
            e.tile += 1
    return macs


def emit_gemm_partial(e: _Emitter, lyr: QConv, x: TensorInfo, ow: int, w_addr: int,
                      k_rng: range, m: int, n: int, tk: int, dst: int) -> int:
    """One core's share of a K-split GEMM (one group): the int32 partial sums of all m x n
    outputs over the reduction slice ``k_rng``, stored to DRAM at ``dst`` (row-major m x n)."""
    _, cg, kh, kw = lyr.w.shape
    _, _, h, w = x.shape
    e.emit("agcfg", h=h, w=w, c=cg, kh=kh, kw=kw, stride=pack2(*lyr.strides),
           pad=pack2(lyr.pads[0], lyr.pads[1]), dil=pack2(*lyr.dilations), ow=ow)
    acc = (e.tile % 2) * e.plan.acc_half
    ksteps = list(range(k_rng.start, k_rng.stop, tk))
    for si, k0 in enumerate(ksteps):
        kk = min(tk, k_rng.stop - k0)
        a, wb = e.in_buf(), (e.step % 2) * e.plan.wgt_half
        e.load_group([("loadi", dict(dst=a, dram=x.addr, m0=0, rows=m, k0=k0, cols=kk)),
                      ("load", dict(buf=Buf.WGT, dst=wb, dram=w_addr + k0 * n, rows=kk, cols=n,
                                    rstride=n, cstride=1))])
        last = si == len(ksteps) - 1
        e.emit("matmul", _flags(pop_prev=True, pop_next=si == 0, push_prev=True, push_next=last),
               acc=acc, a=a, w=wb, m=m, k=kk, n=n, accumulate=int(si > 0))
        e.note(m * kk + kk * n + 4 * m * n)
        e.step += 1
    e.emit("storeacc", _flags(pop_prev=True, push_prev=True), dram=dst, src=acc, rows=m,
           cols=n, rstride=n, cstride=1)
    e.tile += 1
    return m * len(k_rng) * n


def emit_gemm_reduce(e: _Emitter, lyr: QConv, y: TensorInfo, p_addr: int, partials: int,
                     parts: int, m: int, n: int, n_rng: range) -> None:
    """Sum the ``parts`` partial-sum blocks (m x n int32 each, at ``partials``) for output
    channels ``n_rng``, then bias, requantise, clamp and store them: the second step of a
    K-split GEMM, after every core's partial sums have reached DRAM."""
    nn = len(n_rng)
    t = e.tile % 2
    acc, par, out = t * e.plan.acc_half, t * e.plan.param_half, e.plan.out_base[t]
    o = lyr.w.shape[0]
    # part p, row i, channel c sits at word (p*m + i)*n + c: one strided transfer for all parts
    e.load_group([("load", dict(buf=Buf.PARAM, dst=par, dram=p_addr + n_rng.start * 4, rows=3,
                                cols=nn, rstride=o, cstride=1)),
                  ("load", dict(buf=Buf.ACC, dst=acc, dram=partials + 4 * n_rng.start,
                                rows=parts * m, cols=nn, rstride=n, cstride=1))])
    e.emit("vsum", _flags(pop_prev=True, pop_next=True), dst=acc, src=acc, n=m * nn, parts=parts)
    e.emit("vreq", _flags(push_prev=True, push_next=True), dst=out, acc=acc, param=par, m=m,
           n=nn, lo=lyr.lo, hi=lyr.hi)
    e.emit("store", _flags(pop_prev=True, push_prev=True), dram=y.addr + n_rng.start * m,
           src=out, rows=m, cols=nn, rstride=1, cstride=m)
    e.note(4 * parts * m * nn + 12 * nn + m * nn)
    e.step += 1
    e.tile += 1


def emit_dw_vector(e: _Emitter, lyr: QConv, x: TensorInfo, y: TensorInfo, w_addr: int,
                   p_addr: int, c_rng: range, m_rng: range) -> int:
    """Depthwise conv on the vector unit: channel chunks x pixel tiles."""
    o, _, kh, kw = lyr.w.shape
    _, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    kk = kh * kw
    p = e.plan
    tc = max(1, min(len(c_rng), 64, p.param_half // 3, p.wgt_half // kk))
    tm = min(len(m_rng), p.in_half // (tc * kk), p.acc_half // tc, p.out_half // tc)
    if tm < 1:
        tc = 1
        tm = min(len(m_rng), p.in_half // kk, p.acc_half, p.out_half)
    if tm < 1:
        raise LoweringError(f"layer {lyr.name}: buffers too small for one depthwise row")
    e.emit("agcfg", h=h, w=w, c=tc, kh=kh, kw=kw, stride=pack2(*lyr.strides),
           pad=pack2(lyr.pads[0], lyr.pads[1]), dil=pack2(*lyr.dilations), ow=ow)
    macs = 0
    for c0 in range(c_rng.start, c_rng.stop, tc):
        cc = min(tc, c_rng.stop - c0)
        for m0 in range(m_rng.start, m_rng.stop, tm):
            mm = min(tm, m_rng.stop - m0)
            t = e.tile % 2
            a, wb = e.in_buf(), (e.step % 2) * p.wgt_half
            par, acc = t * p.param_half, t * p.acc_half
            e.load_group([
                ("load", dict(buf=Buf.PARAM, dst=par, dram=p_addr + c0 * 4, rows=3, cols=cc,
                              rstride=o, cstride=1)),
                ("loadi", dict(dst=a, dram=x.addr + c0 * h * w, m0=m0, rows=mm, k0=0, cols=cc * kk)),
                ("load", dict(buf=Buf.WGT, dst=wb, dram=w_addr + c0 * kk, rows=1, cols=cc * kk,
                              rstride=0, cstride=1))])
            e.emit("vdw", _flags(pop_prev=True, pop_next=True), acc=acc, a=a, w=wb, m=mm, c=cc,
                   kk=kk, accumulate=0)
            dst = p.out_base[t]
            e.emit("vreq", _flags(push_prev=True, push_next=True), dst=dst, acc=acc, param=par,
                   m=mm, n=cc, lo=lyr.lo, hi=lyr.hi)
            e.emit("store", _flags(pop_prev=True, push_prev=True), dram=y.addr + c0 * oh * ow + m0,
                   src=dst, rows=mm, cols=cc, rstride=1, cstride=oh * ow)
            e.note(mm * cc * kk + cc * kk + 4 * mm * cc + mm * cc)
            e.step += 1
            e.tile += 1
            macs += mm * cc * kk
    # the agcfg channel count is the chunk size; a ragged last chunk reads fewer columns only
    return macs


def dw_block(cfg: AccelConfig, plan: BufferPlan, kk: int) -> int:
    """Channels per block-diagonal depthwise GEMM on the array: as many as fit one fold
    (K = channels * taps on the rows for ws/is; N = channels on the columns for os)."""
    a = cfg.array
    cc = a.cols if a.dataflow == "os" else min(a.rows // kk, a.cols)
    while cc > 1 and (cc * kk * cc > plan.wgt_half or 3 * cc > plan.param_half):
        cc -= 1
    return max(cc, 1)


def dw_block_weights(w: np.ndarray, cc: int) -> np.ndarray:
    """Block-diagonal [cc*kk, cc] weight matrices of consecutive channel chunks, concatenated."""
    o, kk = w.shape[0], w.shape[2] * w.shape[3]
    parts = []
    for c0 in range(0, o, cc):
        n = min(cc, o - c0)
        blk = np.zeros((n * kk, n), np.int8)
        blk[np.arange(n)[:, None] * kk + np.arange(kk)[None, :], np.arange(n)[:, None]] = \
            w[c0:c0 + n, 0].reshape(n, kk)
        parts.append(blk.ravel())
    return np.concatenate(parts)


def emit_dw_array(e: _Emitter, lyr: QConv, x: TensorInfo, y: TensorInfo, w_addr: int,
                  p_addr: int, cc: int, m_rng: range) -> int:
    """Depthwise conv on the array: chunks of ``cc`` channels as one block-diagonal GEMM
    (m x cc*kk x cc), so one fold serves ``cc`` channels instead of one. Only 1/cc of the
    multiplies are useful; the report says so."""
    o, _, kh, kw = lyr.w.shape
    _, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    kk = kh * kw
    p = e.plan
    tm = min(len(m_rng), p.acc_half // cc, p.in_half // (cc * kk), p.out_half // cc)
    if tm < 1:
        raise LoweringError(f"layer {lyr.name}: buffers too small for a {cc}-channel depthwise "
                            f"tile")
    e.emit("agcfg", h=h, w=w, c=cc, kh=kh, kw=kw, stride=pack2(*lyr.strides),
           pad=pack2(lyr.pads[0], lyr.pads[1]), dil=pack2(*lyr.dilations), ow=ow)
    macs = off = 0
    for c0 in range(0, o, cc):
        n = min(cc, o - c0)
        k = n * kk
        for m0 in range(m_rng.start, m_rng.stop, tm):
            mm = min(tm, m_rng.stop - m0)
            t = e.tile % 2
            a, wb = e.in_buf(), (e.step % 2) * p.wgt_half
            par, acc = t * p.param_half, t * p.acc_half
            e.load_group([
                ("load", dict(buf=Buf.PARAM, dst=par, dram=p_addr + c0 * 4, rows=3, cols=n,
                              rstride=o, cstride=1)),
                ("loadi", dict(dst=a, dram=x.addr + c0 * h * w, m0=m0, rows=mm, k0=0, cols=k)),
                ("load", dict(buf=Buf.WGT, dst=wb, dram=w_addr + off, rows=k, cols=n, rstride=n,
                              cstride=1))])
            e.emit("matmul", _flags(pop_prev=True, pop_next=True), acc=acc, a=a, w=wb, m=mm, k=k,
                   n=n, accumulate=0)
            dst = p.out_base[t]
            e.emit("vreq", _flags(push_prev=True, push_next=True), dst=dst, acc=acc, param=par,
                   m=mm, n=n, lo=lyr.lo, hi=lyr.hi)
            e.emit("store", _flags(pop_prev=True, push_prev=True), dram=y.addr + c0 * oh * ow + m0,
                   src=dst, rows=mm, cols=n, rstride=1, cstride=oh * ow)
            e.note(mm * k + k * n + 4 * mm * n + mm * n)
            e.step += 1
            e.tile += 1
            macs += mm * k * n
        off += k * n
    return macs


def _elementwise(e: _Emitter, srcs: list[int], dst_dram: int, rng: range, chunk: int,
                 op: str, fields: dict[str, int]) -> None:
    for e0 in range(rng.start, rng.stop, chunk):
        nn = min(chunk, rng.stop - e0)
        a = e.in_buf()
        e.load_group([("load", dict(buf=Buf.ACT, dst=a + i * chunk, dram=s + e0, rows=1, cols=nn,
                                    rstride=0, cstride=1)) for i, s in enumerate(srcs)])
        t = e.tile % 2
        dst = e.plan.out_base[t]
        ops = {"a": a, "b": a + chunk} if op == "vadd" else {"src": a}
        e.emit(op, _flags(pop_prev=True, pop_next=True, push_prev=True, push_next=True),
               dst=dst, n=nn, **ops, **fields)
        e.emit("store", _flags(pop_prev=True, push_prev=True), dram=dst_dram + e0, src=dst, rows=1,
               cols=nn, rstride=0, cstride=1)
        e.note(len(srcs) * nn + nn)
        e.step += 1
        e.tile += 1


def emit_add(e: _Emitter, lyr: QAdd, a: TensorInfo, b: TensorInfo, y: TensorInfo,
             rng: range) -> None:
    chunk = min(len(rng), e.plan.in_half // 2, e.plan.out_half)
    _elementwise(e, [a.addr, b.addr], y.addr, rng, chunk, "vadd",
                 dict(ma=lyr.ma, mb=lyr.mb, shift=lyr.shift, lo=lyr.lo, hi=lyr.hi))


def emit_concat_part(e: _Emitter, src: TensorInfo, dst_addr: int, mult: int, shift: int,
                     rng: range) -> None:
    chunk = min(len(rng), e.plan.in_half, e.plan.out_half)
    _elementwise(e, [src.addr], dst_addr, rng, chunk, "vrescale",
                 dict(mult=mult, shift=shift, lo=-128, hi=127))


def emit_pool(e: _Emitter, lyr: QPool, x: TensorInfo, y: TensorInfo, c_rng: range,
              r_rng: range | None = None, x_rng: range | None = None) -> None:
    """Pool channels ``c_rng``, output rows ``r_rng`` and output columns ``x_rng`` (default
    all): each tile loads the input window those outputs need, re-expressed as a smaller pool
    with its own top and left padding."""
    _, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    mode = {"max": 0, "avg": 1, "gavg": 2}[lyr.mode]
    kh, kw = lyr.kernel
    (sh, sw), pt, pl = lyr.strides, lyr.pads[0], lyr.pads[1]
    r_rng = range(oh) if r_rng is None else r_rng
    x_rng = range(ow) if x_rng is None else x_rng
    r0, orows = r_rng.start, len(r_rng)
    x0, ocols = x_rng.start, len(x_rng)
    if mode == 2:
        if orows != oh or ocols != ow:
            raise LoweringError(f"layer {lyr.name}: a global pool cannot be split by rows or "
                                f"columns")
        ys, ye, top, xs, xe, left = 0, h, 0, 0, w, 0
    else:  # local output row i reads local input rows i*sh - top + (0..kh-1); columns alike
        ys = max(0, r0 * sh - pt)
        ye = min(h, (r_rng.stop - 1) * sh - pt + kh)
        top = max(pt - r0 * sh, 0)
        xs = max(0, x0 * sw - pl)
        xe = min(w, (x_rng.stop - 1) * sw - pl + kw)
        left = max(pl - x0 * sw, 0)
    hh, ww = ye - ys, xe - xs
    tc = min(len(c_rng), e.plan.in_half // (hh * ww), e.plan.out_half // (orows * ocols))
    if tc < 1:
        raise LoweringError(f"layer {lyr.name}: {hh}x{ww} inputs of one {h}x{w} channel do not "
                            f"fit the input buffer half ({e.plan.in_half} B)")
    e.emit("pcfg", h=hh, w=ww, kh=kh, kw=kw, stride=pack2(*lyr.strides),
           pad=pack2(top, left), oh=orows, ow=ocols, mode=mode)
    for c0 in range(c_rng.start, c_rng.stop, tc):
        cc = min(tc, c_rng.stop - c0)
        a = e.in_buf()
        src = x.addr + c0 * h * w + ys * w + xs
        if ww == w:  # whole rows: one 2-D transfer for all channels
            loads = [("load", dict(buf=Buf.ACT, dst=a, dram=src, rows=cc, cols=hh * w,
                                   rstride=h * w, cstride=1))]
        else:  # a column window: one (rows x columns) transfer per channel
            loads = [("load", dict(buf=Buf.ACT, dst=a + i * hh * ww, dram=src + i * h * w,
                                   rows=hh, cols=ww, rstride=w, cstride=1)) for i in range(cc)]
        e.load_group(loads)
        dst = e.plan.out_base[e.tile % 2]
        e.emit("vpool", _flags(pop_prev=True, pop_next=True, push_prev=True, push_next=True),
               dst=dst, src=a, c=cc, mult=lyr.mult, shift=lyr.shift)
        out = y.addr + c0 * oh * ow + r0 * ow + x0
        if ocols == ow:
            stores = [dict(dram=out, src=dst, rows=cc, cols=orows * ow, rstride=oh * ow,
                           cstride=1)]
        else:
            stores = [dict(dram=out + i * oh * ow, src=dst + i * orows * ocols, rows=orows,
                           cols=ocols, rstride=ow, cstride=1) for i in range(cc)]
        for i, f in enumerate(stores):  # the first waits for the data, the last frees the half
            e.emit("store", _flags(pop_prev=i == 0, push_prev=i == len(stores) - 1), **f)
        e.note(cc * (hh * ww + orows * ocols))
        e.step += 1
        e.tile += 1


def lower(qm: QModel, cfg: AccelConfig) -> Program:
    """Compile the int8 model for ``cfg``; returns the program with its DRAM image."""
    from lwc.backends.accel.vpu import lower_layer_vpu

    plan = buffer_plan(cfg)
    dram = DramImage()
    tinfo: dict[str, TensorInfo] = {}
    base_addr: dict[str, int] = {}
    for t in qm.tensors.values():
        if not t.storage:
            base_addr[t.name] = dram.alloc(t.numel)
    for t in qm.tensors.values():
        tinfo[t.name] = TensorInfo(t.name, base_addr[t.base], t.shape, t.scale)
    cores = cfg.vpu.cores if cfg.vpu is not None else 1
    emitters = [_Emitter(plan, 0, c) for c in range(cores)]
    instrs: list[Instr] = []
    layers: list[LayerInfo] = []
    for li, lyr in enumerate(qm.layers):
        for em in emitters:
            em.layer, em.out, em.max_tile = li, [], 0
            em.emit("sync")
        info = LayerInfo(name=lyr.name, kind=lyr.kind)
        w_addr = p_addr = 0
        cc = 1
        if isinstance(lyr, QConv):
            o, cg, kh, kw = lyr.w.shape
            og = o // lyr.group
            if lyr.is_depthwise and cfg.vpu is None and cfg.depthwise == "array":
                cc = dw_block(cfg, plan, kh * kw)
            if cc > 1:
                wmat = dw_block_weights(lyr.w, cc)
            else:
                wmat = np.concatenate([lyr.w[g * og:(g + 1) * og].reshape(og, -1).T.ravel()
                                       for g in range(lyr.group)])
            w_addr = dram.alloc(wmat.size, wmat.astype(np.int8))
            params = np.stack([lyr.bias, lyr.mult, lyr.shift]).astype(np.int32)
            p_addr = dram.alloc(params.nbytes, params)
            x, y = tinfo[lyr.x], tinfo[lyr.y]
            m = y.shape[2] * y.shape[3]
            info.gemm, info.groups = (m, og, cg * kh * kw), lyr.group
            info.macs = m * o * cg * kh * kw
        if cfg.vpu is not None:
            lower_layer_vpu(emitters, cfg, lyr, tinfo, info, w_addr, p_addr, dram)
        elif isinstance(lyr, QConv):
            e = emitters[0]
            if lyr.is_depthwise and cfg.depthwise == "vector":
                info.unit = "vector"
                emit_dw_vector(e, lyr, x, y, w_addr, p_addr, range(o), range(m))
            elif cc > 1:
                info.dw_block = cc
                emit_dw_array(e, lyr, x, y, w_addr, p_addr, cc, range(m))
            else:
                emit_conv(e, cfg, lyr, x, y, w_addr, p_addr, range(lyr.group), range(og), range(m))
        elif isinstance(lyr, QAdd):
            info.unit = "vector"
            emit_add(emitters[0], lyr, tinfo[lyr.a], tinfo[lyr.b], tinfo[lyr.y],
                     range(tinfo[lyr.y].nbytes))
        elif isinstance(lyr, QPool):
            info.unit = "vector"
            emit_pool(emitters[0], lyr, tinfo[lyr.x], tinfo[lyr.y], range(tinfo[lyr.x].shape[1]))
        elif isinstance(lyr, QConcat):
            info.unit = "vector"
            off = 0
            for name, mu, sh in zip(lyr.xs, lyr.mults, lyr.shifts):
                src = tinfo[name]
                emit_concat_part(emitters[0], src, tinfo[lyr.y].addr + off, mu, sh,
                                 range(src.nbytes))
                off += src.nbytes
        info.max_tile_bytes = max(em.max_tile for em in emitters)
        instrs.extend(_interleave([em.out for em in emitters]))
        layers.append(info)
    ins = [tinfo[qm.input]]
    outs = [tinfo[n] for n in qm.outputs]
    return Program(cfg.name, instrs, layers, dram.image(), ins, outs)


def _interleave(streams: list[list[Instr]]) -> list[Instr]:
    """Merge per-core streams round-robin (each core's order is kept), phase by phase: a
    ``sync`` inside a layer is a barrier, so every core's instructions before it come first
    (program order is the functional simulator's schedule)."""
    if len(streams) == 1:
        return streams[0]
    phases = [_phases(s) for s in streams]
    out: list[Instr] = []
    for ph in range(max(len(p) for p in phases)):
        parts = [p[ph] for p in phases if ph < len(p)]
        for i in range(max(len(s) for s in parts)):
            for s in parts:
                if i < len(s):
                    out.append(s[i])
    return out


def _phases(stream: list[Instr]) -> list[list[Instr]]:
    """A core's stream cut before every ``sync`` but the first."""
    out: list[list[Instr]] = [[]]
    for i, ins in enumerate(stream):
        if ins.op == "sync" and i > 0:
            out.append([])
        out[-1].append(ins)
    return out
