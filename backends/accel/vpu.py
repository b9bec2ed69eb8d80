"""VPU lowering: a Movidius-style processor is vector-parallel, not systolic.

Each layer is split into one contiguous piece per vector core, along whichever axis balances the
work best (output pixels or output channels for GEMMs; channels or output rows for depthwise;
elements for adds; channels x rows for pooling). With fewer output units than cores a GEMM is
split over its reduction K instead (int32 partial sums, a barrier, a reduction on the owners of
the outputs) and a pool over its output pixels. Each core then tiles its piece into its own
slice of the scratchpad, so a tile can never exceed the slice (``LayerInfo.max_tile_bytes``
records the largest footprint; the functional simulator bounds-checks every access). Dense
convolutions use the cores' vector MACs plus an even share of the optional MAC block (Myriad X's
neural compute engine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lwc.backends.accel.config import AccelConfig
from lwc.backends.accel.layout import DramImage
from lwc.backends.accel.program import LayerInfo, TensorInfo
from lwc.backends.accel.qmodel import QAdd, QConcat, QConv, QPool

if TYPE_CHECKING:
    from lwc.backends.accel.lower import _Emitter


def split_range(r: range, parts: int, align: int = 1) -> list[range]:
    """``parts`` contiguous pieces of ``r`` whose sizes differ by at most one ``align`` unit."""
    units = -(-len(r) // align)
    out: list[range] = []
    start = 0
    for i in range(parts):
        cnt = units // parts + (1 if i < units % parts else 0)
        lo = r.start + start * align
        hi = min(r.stop, r.start + (start + cnt) * align)
        out.append(range(lo, max(lo, hi)))
        start += cnt
    return out


def flat_rects(r: range, shape: tuple[int, ...]) -> list[tuple[range, ...]]:
    """The positions ``r`` of a row-major array of ``shape`` as a few boxes (one range per
    axis): a partial leading slice, whole slices, a partial trailing slice, recursively."""
    if not len(r):
        return []
    if len(shape) == 1:
        return [(r,)]
    inner = 1
    for d in shape[1:]:
        inner *= d
    whole = tuple(range(d) for d in shape[1:])
    c0, a = divmod(r.start, inner)
    c1, b = divmod(r.stop, inner)
    if c0 == c1:
        return [(range(c0, c0 + 1),) + t for t in flat_rects(range(a, b), shape[1:])]
    out = []
    if a:
        out += [(range(c0, c0 + 1),) + t for t in flat_rects(range(a, inner), shape[1:])]
        c0 += 1
    if c1 > c0:
        out.append((range(c0, c1),) + whole)
    if b:
        out += [(range(c1, c1 + 1),) + t for t in flat_rects(range(0, b), shape[1:])]
    return out


def imbalance(work: list[int]) -> float:
    """max / mean of the per-core work (1.0 = perfect)."""
    total = sum(work)
    return max(work) * len(work) / total if total else 1.0


def _best(options: list[list[tuple[range, range]]], weight) -> list[tuple[range, range]]:
    return min(options, key=lambda opt: imbalance([weight(a, b) for a, b in opt]))


BALANCE = 1.10
"""Largest max/mean work ratio a split may have before balance beats DRAM traffic."""


def _grid_split(n_rng: range, m_rng: range, cores: int, weight_bytes: int,
                input_bytes: int) -> list[tuple[range, range]]:
    """Split a GEMM over a (pixel parts x channel parts) grid of cores. Splitting pixels
    replicates the weights in every part, splitting channels replicates the input, so among the
    grids balanced within ``BALANCE`` take the least DRAM traffic (else the best balanced)."""
    options = []
    for pm in range(1, cores + 1):
        if cores % pm:
            continue
        pn = cores // pm
        grid = [(nr, mr) for nr in split_range(n_rng, pn) for mr in split_range(m_rng, pm)]
        work = [len(a) * len(b) for a, b in grid]
        traffic = pm * weight_bytes + pn * input_bytes
        options.append((imbalance(work), traffic, grid))
    ok = [o for o in options if o[0] <= BALANCE]
    if ok:
        return min(ok, key=lambda o: (o[1], o[0]))[2]
    return min(options, key=lambda o: (o[0], o[1]))[2]


def _k_split(emitters: list[_Emitter], cfg: AccelConfig, lyr: QConv, x: TensorInfo,
             y: TensorInfo, info: LayerInfo, w_addr: int, p_addr: int, dram: DramImage, m: int,
             k: int) -> bool:
    """Too few output units for the cores (LeNet's 10-way classifier on 16 cores): split the
    reduction K instead. Every core computes int32 partial sums of all m x n outputs over its K
    slice and stores them to a DRAM scratch block; after a barrier (``sync``) the cores that own
    output channels sum the blocks for their channels (``vsum``), requantise and store. Only for
    one group and when all m x n partial sums fit one accumulator tile; False if not taken."""
    from lwc.backends.accel.lower import emit_gemm_partial, emit_gemm_reduce, gemm_tiles

    cores = len(emitters)
    n = lyr.w.shape[0]
    plan = emitters[0].plan
    if lyr.group != 1 or k < 2 * cores or cores * m * n > plan.acc_half or \
            3 * n > plan.param_half:
        return False
    tm, tk, tn = gemm_tiles(plan, cfg, m, -(-k // cores), n)
    if (tm, tn) != (m, n):
        return False
    partials = dram.alloc(4 * cores * m * n)
    ow = y.shape[3]
    k_parts = split_range(range(k), cores)
    for j, (e, kr) in enumerate(zip(emitters, k_parts)):
        emit_gemm_partial(e, lyr, x, ow, w_addr, kr, m, n, tk, partials + 4 * j * m * n)
    n_parts = split_range(range(n), cores)
    for e, nr in zip(emitters, n_parts):
        e.emit("sync")
        if len(nr):
            emit_gemm_reduce(e, lyr, y, p_addr, partials, cores, m, n, nr)
    info.core_work = [m * len(kr) * n + m * len(nr) * (cores - 1)
                      for kr, nr in zip(k_parts, n_parts)]
    info.split_units = k
    return True


def lower_layer_vpu(emitters: list[_Emitter], cfg: AccelConfig, lyr, tinfo: dict[str, TensorInfo],
                    info: LayerInfo, w_addr: int, p_addr: int, dram: DramImage) -> None:
    from lwc.backends.accel.lower import (emit_add, emit_concat_part, emit_conv, emit_dw_vector,
                                          emit_pool)
    cores = len(emitters)
    info.unit = "vpu"
    if isinstance(lyr, QConv):
        x, y = tinfo[lyr.x], tinfo[lyr.y]
        o, cg, kh, kw = lyr.w.shape
        m = y.shape[2] * y.shape[3]
        ow = y.shape[3]
        if lyr.is_depthwise:
            by_c = [(c, range(m)) for c in split_range(range(o), cores)]
            by_rows = [(range(o), mr) for mr in split_range(range(m), cores, align=ow)]
            plan = _best([by_c, by_rows], lambda a, b: len(a) * len(b))
            for e, (cr, mr) in zip(emitters, plan):
                if len(cr) and len(mr):
                    emit_dw_vector(e, lyr, x, y, w_addr, p_addr, cr, mr)
            info.core_work = [len(a) * len(b) * kh * kw for a, b in plan]
            info.split_units = max(o, m // ow)
            return
        og = o // lyr.group
        plan = _grid_split(range(og), range(m), cores, weight_bytes=lyr.w.size,
                           input_bytes=x.nbytes)
        k = cg * kh * kw
        if imbalance([len(a) * len(b) for a, b in plan]) > BALANCE and \
                _k_split(emitters, cfg, lyr, x, tinfo[lyr.y], info, w_addr, p_addr, dram, m, k):
            return
        for e, (nr, mr) in zip(emitters, plan):
            if len(nr) and len(mr):
                emit_conv(e, cfg, lyr, x, y, w_addr, p_addr, range(lyr.group), nr, mr)
        info.core_work = [len(a) * len(b) * lyr.group * cg * kh * kw for a, b in plan]
        info.split_units = max(og, m)
    elif isinstance(lyr, QAdd):
        y = tinfo[lyr.y]
        parts = split_range(range(y.nbytes), cores)
        for e, r in zip(emitters, parts):
            if len(r):
                emit_add(e, lyr, tinfo[lyr.a], tinfo[lyr.b], y, r)
        info.core_work = [len(r) for r in parts]
        info.split_units = y.nbytes
    elif isinstance(lyr, QPool):
        x, y = tinfo[lyr.x], tinfo[lyr.y]
        c, oh, ow = x.shape[1], y.shape[2], y.shape[3]
        win = x.shape[2] * x.shape[3] if lyr.mode == "gavg" else lyr.kernel[0] * lyr.kernel[1]
        grids = []
        for pr in ([1] if lyr.mode == "gavg" else range(1, cores + 1)):
            if cores % pr == 0:
                grids.append([[(cr, rr, range(ow))] for cr in split_range(range(c), cores // pr)
                              for rr in split_range(range(oh), pr)])

        def outputs(part: list[tuple[range, range, range]]) -> int:
            return sum(len(a) * len(b) * len(d) for a, b, d in part)

        def makespan(g: list[list[tuple[range, range, range]]]) -> int:
            """Busiest core's vector cycles, one ``vpool`` per box (lanes are whole cycles)."""
            return max(sum(-(-len(a) * len(b) * len(d) * win // cfg.vpu.lanes)
                           for a, b, d in part) for part in g)

        # no replication either way: best balance, then fewer row parts (less halo)
        plan = min(grids, key=lambda g: imbalance([outputs(p) for p in g]))
        if imbalance([outputs(p) for p in plan]) > BALANCE and lyr.mode != "gavg":
            # too few channel x row units: split the output pixels themselves, each core a
            # contiguous run of (channel, row, column) positions cut into boxes; kept only when
            # the extra boxes' whole-cycle rounding does not make the busiest core slower
            fine = [flat_rects(r, (c, oh, ow)) for r in split_range(range(c * oh * ow), cores)]
            if makespan(fine) <= makespan(plan):
                plan = fine
        for e, part in zip(emitters, plan):
            for cr, rr, xr in part:
                if len(cr) and len(rr) and len(xr):
                    emit_pool(e, lyr, x, y, cr, rr, xr)
        info.core_work = [outputs(p) * win for p in plan]
        info.split_units = c if lyr.mode == "gavg" else c * oh * ow
    elif isinstance(lyr, QConcat):
        work = [0] * cores
        off = 0
        for name, mu, sh in zip(lyr.xs, lyr.mults, lyr.shifts):
            src = tinfo[name]
            for i, (e, r) in enumerate(zip(emitters, split_range(range(src.nbytes), cores))):
                if len(r):
                    emit_concat_part(e, src, tinfo[lyr.y].addr + off, mu, sh, r)
                work[i] += len(r)
            off += src.nbytes
        info.core_work = work
        info.split_units = min(tinfo[n].nbytes for n in lyr.xs)
