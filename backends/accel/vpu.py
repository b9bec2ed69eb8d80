"""VPU lowering: a Movidius-style processor is vector-parallel, not systolic.

Each layer is split into one contiguous piece per vector core, along whichever axis balances the
work best (output pixels or output channels for GEMMs; channels or output rows for depthwise;
elements for adds; channels for pooling). Each core then tiles its piece into its own slice of the
scratchpad, so a tile can never exceed the slice (``LayerInfo.max_tile_bytes`` records the largest
footprint; the functional simulator bounds-checks every access). Dense convolutions use the cores'
vector MACs plus an even share of the optional MAC block (Myriad X's neural compute engine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lwc.backends.accel.config import AccelConfig
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


def lower_layer_vpu(emitters: list[_Emitter], cfg: AccelConfig, lyr, tinfo: dict[str, TensorInfo],
                    info: LayerInfo, w_addr: int, p_addr: int) -> None:
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
        grids = []
        for pr in ([1] if lyr.mode == "gavg" else range(1, cores + 1)):
            if cores % pr == 0:
                grids.append([(cr, rr) for cr in split_range(range(c), cores // pr)
                              for rr in split_range(range(oh), pr)])
        # no replication either way: best balance, then fewer row parts (less halo)
        plan = min(grids, key=lambda g: imbalance([len(a) * len(b) for a, b in g]))
        for e, (cr, rr) in zip(emitters, plan):
            if len(cr) and len(rr):
                emit_pool(e, lyr, x, y, cr, rr)
        info.core_work = [len(a) * len(b) * ow for a, b in plan]
        info.split_units = c if lyr.mode == "gavg" else max(c, oh)
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
