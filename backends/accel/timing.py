"""Analytical timing and energy: one closed-form cost per instruction, then a token-driven
three-queue schedule. Nothing steps cycle by cycle, so a whole network times in well under a second.

Per instruction (``cost``):

- ``matmul`` on a systolic array of R x C PEs: the tile's GEMM (m x k x n) is cut into folds
  exactly as SCALE-Sim does. Spatial rows / columns / temporal extent are (K, N, M) for ws,
  (M, N, K) for os and (K, M, N) for is; Fr = ceil(Sr/R), Fc = ceil(Sc/C); each fold costs
  ``2R + C + T - 2`` cycles (ws, is: stationary load, fill, stream, drain) or ``T + R + C - 2``
  (os), partial folds pay the full fill and drain, folds run in sequence.
- ``matmul`` on a VPU core: vector MACs, ``lanes + mac_block / cores`` per cycle (not systolic).
- vector ops (``vdw``, ``vreq``, ``vadd``, ``vrescale``, ``vpool``, ``vsum``): elements / lanes
  (``vsum``: the additions, n x (parts - 1)).
- DMA (``load``, ``loadi``, ``store``): ``latency + bytes / bandwidth``; requests pipeline, so
  the queue is busy only for the transfer part. On a VPU the cores share the DRAM bandwidth evenly.
  ``loadi`` reads from DRAM the band of input rows its im2col tile covers (the address generator
  expands it on chip), never the im2col matrix itself.

Schedule (``time_program``): each core has in-order load, compute and store queues. An instruction
starts when its queue is free and every token it pops has been pushed (tokens are pushed when the
pushing instruction ends); the lowering starts each channel with two tokens (double buffering).
``sync`` starts once every earlier instruction of every core has finished (a layer start, or
the barrier between the partial sums and the reduction of a K-split GEMM), and a layer can
never finish before its DRAM traffic could cross the shared DRAM interface at full bandwidth.
Every start time is a max of sums of non-negative durations in a fixed order, so faster DRAM or
compute never makes any layer slower.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from lwc.backends.accel.config import AccelConfig
from lwc.backends.accel.isa import SPECS, Buf, Dep, Instr, IsaError, Queue, unpack2
from lwc.backends.accel.program import Program
from lwc.backends.accel.report import LayerReport

INITIAL_TOKENS = 2
"""Free-buffer tokens each backward channel starts with (two halves: double buffering)."""
REGISTER_ACCESSES_PER_MAC = 2
"""Register-file/pipeline-register accesses per MAC: the forwarded operand and the partial sum."""


def fold_shape(m: int, k: int, n: int, dataflow: str) -> tuple[int, int, int]:
    """(spatial rows, spatial cols, temporal extent) of an m x k x n GEMM under ``dataflow``."""
    if dataflow == "ws":
        return k, n, m
    if dataflow == "os":
        return m, n, k
    return k, m, n


def array_cycles(m: int, k: int, n: int, rows: int, cols: int, dataflow: str
                 ) -> tuple[int, int, int]:
    """(cycles, folds, used PE-folds) of one GEMM on a rows x cols array; SCALE-Sim's per-fold
    cost without its final -1."""
    sr, sc, t = fold_shape(m, k, n, dataflow)
    folds = -(-sr // rows) * -(-sc // cols)
    per_fold = t + rows + cols - 2 if dataflow == "os" else 2 * rows + cols + t - 2
    return folds * per_fold, folds, sr * sc


def gemm_folds(m: int, n: int, k: int, rows: int, cols: int, dataflow: str, groups: int = 1) -> int:
    """Array folds of a layer's whole GEMM (per group, times groups), independent of tiling."""
    sr, sc, _ = fold_shape(m, k, n, dataflow)
    return groups * -(-sr // rows) * -(-sc // cols)


@dataclass
class Cost:
    """What one instruction costs: cycles, memory traffic in bytes, arithmetic."""

    cycles: int = 0
    busy: int = 0
    """Cycles its queue is occupied (DMA: the transfer; latency overlaps the next request)."""
    dram_r: int = 0
    dram_w: int = 0
    buf_r: int = 0
    buf_w: int = 0
    macs: int = 0
    vec: int = 0
    """Vector-unit element operations (bias/requant/add/pool), not MACs."""
    folds: int = 0
    pe_used: int = 0
    pe_total: int = 0


@dataclass
class TraceRow:
    index: int
    layer: int
    core: int
    queue: str
    op: str
    start: int
    end: int


@dataclass
class _CoreState:
    free: list[int] = field(default_factory=lambda: [0, 0, 0])
    ag: dict[str, int] = field(default_factory=dict)
    pc: dict[str, int] = field(default_factory=dict)
    # channels: (from, to) -> push times
    tok: dict[tuple[int, int], deque] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for ch in ((0, 1), (2, 1), (1, 2)):
            self.tok[ch] = deque()
        self.tok[(1, 0)] = deque([0] * INITIAL_TOKENS)
        self.tok[(2, 1)] = deque([0] * INITIAL_TOKENS)


class TimingModel:
    """Closed-form instruction costs for one accelerator description."""

    def __init__(self, cfg: AccelConfig) -> None:
        self.cfg = cfg
        a = cfg.array
        self.rows, self.cols, self.df = a.rows, a.cols, a.dataflow
        self.cores = cfg.vpu.cores if cfg.vpu is not None else 1
        self.bw = cfg.dram.bandwidth / self.cores
        self.latency = cfg.dram.latency
        self.lanes = cfg.vpu.lanes if cfg.vpu is not None else cfg.vector.lanes
        self.vpu_macs = (cfg.vpu.lanes + cfg.vpu.mac_block / cfg.vpu.cores
                         if cfg.vpu is not None else 0.0)

    def dma(self, nbytes: int) -> tuple[int, int]:
        xfer = math.ceil(nbytes / self.bw)
        return self.latency + xfer, xfer

    def vector(self, elems: int) -> int:
        return -(-elems // self.lanes)

    def cost(self, ins: Instr, st: _CoreState) -> Cost:
        op, f = ins.op, ins.args
        if op == "load":
            buf, _, _, rows, cols, _, _ = f
            nbytes = rows * cols * (4 if buf in (Buf.PARAM, Buf.ACC) else 1)
            cyc, busy = self.dma(nbytes)
            return Cost(cyc, busy, dram_r=nbytes, buf_w=nbytes)
        if op == "loadi":
            _, _, m0, rows, k0, cols = f
            band = self._im2col_band(st.ag, m0, rows, k0, cols, ins)
            cyc, busy = self.dma(band)
            return Cost(cyc, busy, dram_r=band, buf_w=rows * cols)
        if op == "store":
            nbytes = f[2] * f[3]
            cyc, busy = self.dma(nbytes)
            return Cost(cyc, busy, dram_w=nbytes, buf_r=nbytes)
        if op == "storeacc":
            nbytes = 4 * f[2] * f[3]
            cyc, busy = self.dma(nbytes)
            return Cost(cyc, busy, dram_w=nbytes, buf_r=nbytes)
        if op == "vsum":
            n, parts = f[2], f[3]
            adds = n * max(parts - 1, 1)
            cyc = self.vector(adds)
            return Cost(cyc, cyc, buf_r=4 * n * parts, buf_w=4 * n, vec=adds)
        if op == "matmul":
            _, _, _, m, k, n, accumulate = f
            macs = m * k * n
            if self.cfg.vpu is not None:
                cyc = math.ceil(macs / self.vpu_macs)
                return Cost(cyc, cyc, buf_r=m * k + k * n * -(-m // 8),
                            buf_w=4 * m * n, macs=macs)
            cyc, folds, used = array_cycles(m, k, n, self.rows, self.cols, self.df)
            sr, sc, _ = fold_shape(m, k, n, self.df)
            fr, fc = -(-sr // self.rows), -(-sc // self.cols)
            if self.df == "ws":
                act, wgt, accw = m * k * fc, k * n, m * n * fr
            elif self.df == "os":
                act, wgt, accw = m * k * fc, k * n * fr, m * n
            else:
                act, wgt, accw = k * m, n * k * fc, m * n * fr
            accr = accw - m * n + accumulate * m * n
            return Cost(cyc, cyc, buf_r=act + wgt + 4 * accr, buf_w=4 * accw, macs=macs,
                        folds=folds, pe_used=used, pe_total=folds * self.rows * self.cols)
        if op == "vdw":
            _, _, _, m, c, kk, accumulate = f
            macs = m * c * kk
            cyc = self.vector(macs)
            return Cost(cyc, cyc, buf_r=macs + c * kk + 4 * m * c * accumulate,
                        buf_w=4 * m * c, macs=macs)
        if op == "vreq":
            m, n = f[3], f[4]
            cyc = self.vector(m * n)
            return Cost(cyc, cyc, buf_r=4 * m * n + 12 * n, buf_w=m * n, vec=m * n)
        if op in ("vadd", "vrescale"):
            n = f[3] if op == "vadd" else f[2]
            cyc = self.vector(n)
            return Cost(cyc, cyc, buf_r=n * (2 if op == "vadd" else 1), buf_w=n, vec=n)
        if op == "vpool":
            c = f[2]
            p = st.pc
            if not p:
                raise IsaError(f"vpool @{ins.layer}:{ins.core} before any pcfg")
            ins_elems = c * p["h"] * p["w"]
            outs = c * p["oh"] * p["ow"]
            work = ins_elems if p["mode"] == 2 else outs * p["kh"] * p["kw"]
            cyc = self.vector(work)
            return Cost(cyc, cyc, buf_r=ins_elems, buf_w=outs, vec=work)
        if op == "agcfg":
            st.ag = ins.as_dict()
        elif op == "pcfg":
            st.pc = ins.as_dict()
        return Cost()

    @staticmethod
    def _im2col_band(ag: dict[str, int], m0: int, rows: int, k0: int, cols: int,
                     ins: Instr) -> int:
        """Bytes of input the address generator fetches for an im2col tile: the rows of the
        input that the tile's output pixels and kernel taps touch, for its channels."""
        if not ag:
            raise IsaError(f"loadi @{ins.layer}:{ins.core} before any agcfg")
        if rows <= 0 or cols <= 0:
            return 0
        h, w, kh, kw, ow = ag["h"], ag["w"], ag["kh"], ag["kw"], ag["ow"]
        sh, _ = unpack2(ag["stride"])
        pt, _ = unpack2(ag["pad"])
        dh, _ = unpack2(ag["dil"])
        kk = kh * kw
        nch = (k0 + cols - 1) // kk - k0 // kk + 1
        oy0, oy1 = m0 // ow, (m0 + rows - 1) // ow
        iy0 = max(0, oy0 * sh - pt)
        iy1 = min(h - 1, oy1 * sh - pt + (kh - 1) * dh)
        band = nch * max(0, iy1 - iy0 + 1) * w
        return min(band, rows * cols)


_CHANNEL = ((int(Dep.POP_PREV), -1), (int(Dep.POP_NEXT), +1))
_PUSH_PREV, _PUSH_NEXT = int(Dep.PUSH_PREV), int(Dep.PUSH_NEXT)
_QUEUE = {s.mnemonic: int(s.queue) for s in SPECS}


def time_program(prog: Program, cfg: AccelConfig, trace: bool = False
                 ) -> tuple[list[LayerReport], list[TraceRow]]:
    """Schedule every instruction; returns one report row per layer (and the trace if asked)."""
    tm = TimingModel(cfg)
    nl = max(len(prog.layers), max((i.layer for i in prog.instrs), default=-1) + 1)
    cores = [_CoreState() for _ in range(tm.cores)]
    rows: list[TraceRow] = []
    # per-layer accumulators
    end = [0] * nl
    busy = [[0] * tm.cores for _ in range(nl)]
    acc = [Cost() for _ in range(nl)]
    cur_layer, layer_start = -1, 0
    bw_total = cfg.dram.bandwidth

    def close(li: int) -> int:
        """Finish layer ``li``: it cannot end before its DRAM traffic fits through DRAM."""
        c = acc[li]
        floor = layer_start + math.ceil((c.dram_r + c.dram_w) / bw_total)
        end[li] = max(end[li], floor, layer_start)
        return end[li]

    for idx, ins in enumerate(prog.instrs):
        li = ins.layer
        if li < 0 or li >= nl or ins.core >= tm.cores:
            raise IsaError(f"instruction {idx} ({ins.op}): layer {li} / core {ins.core} out of "
                           f"range for {nl} layers and {tm.cores} cores")
        if li != cur_layer:
            if li < cur_layer:
                raise IsaError(f"instruction {idx} ({ins.op}): layer {li} after layer {cur_layer};"
                               f" layers must be contiguous")
            if cur_layer >= 0:
                layer_start = close(cur_layer)
            for j in range(cur_layer + 1, li):  # layers without instructions
                end[j] = layer_start
            cur_layer = li
        st = cores[ins.core]
        q = _QUEUE[ins.op]
        c = tm.cost(ins, st)
        start = st.free[q]
        if ins.op == "sync":  # everything earlier, of every core, has finished
            start = max(start, layer_start, end[li])
        fl = int(ins.flags)
        for flag, d in _CHANNEL:
            if fl & flag:
                chan = st.tok.get((q + d, q))
                if chan is None:
                    raise IsaError(f"instruction {idx} ({ins.op} @{li}:{ins.core}): "
                                   f"{queue_name(q)} queue has no {'previous' if d < 0 else 'next'}"
                                   f" queue to pop from")
                if not chan:
                    raise IsaError(f"instruction {idx} ({ins.op} @{li}:{ins.core}): pops a token "
                                   f"nobody pushed earlier (deadlock)")
                start = max(start, chan.popleft())
        stop = start + c.cycles
        st.free[q] = start + c.busy
        if fl & _PUSH_PREV:
            if q == 0:
                raise IsaError(f"instruction {idx} ({ins.op}): the load queue has no previous "
                               f"queue to push to")
            st.tok[(q, q - 1)].append(stop)
        if fl & _PUSH_NEXT:
            if q == 2:
                raise IsaError(f"instruction {idx} ({ins.op}): the store queue has no next "
                               f"queue to push to")
            st.tok[(q, q + 1)].append(stop)
        end[li] = max(end[li], stop)
        if q == Queue.COMPUTE:
            busy[li][ins.core] += c.cycles
        a = acc[li]
        a.dram_r += c.dram_r
        a.dram_w += c.dram_w
        a.buf_r += c.buf_r
        a.buf_w += c.buf_w
        a.macs += c.macs
        a.vec += c.vec
        a.folds += c.folds
        a.pe_used += c.pe_used
        a.pe_total += c.pe_total
        if trace:
            rows.append(TraceRow(idx, li, ins.core, queue_name(q), ins.op, start, stop))
    if cur_layer >= 0:
        layer_start = close(cur_layer)
    for j in range(cur_layer + 1, nl):
        end[j] = layer_start
    return _reports(prog, cfg, tm, end, busy, acc), rows


def queue_name(q: int) -> str:
    return Queue(q).name.lower()


def _reports(prog: Program, cfg: AccelConfig, tm: TimingModel, end: list[int],
             busy: list[list[int]], acc: list[Cost]) -> list[LayerReport]:
    e = cfg.energy
    peak = cfg.peak_macs_per_cycle
    ridge = 2 * peak / cfg.dram.bandwidth
    out: list[LayerReport] = []
    prev = 0
    for li, c in enumerate(acc):
        info = prog.layers[li] if li < len(prog.layers) else None
        total = end[li] - prev
        prev = end[li]
        compute = min(max(busy[li]), total)
        unit = info.unit if info else "array"
        if cfg.vpu is not None:
            s = sum(busy[li])
            mapping = s / (tm.cores * max(busy[li])) if s else 0.0
        elif c.pe_total:
            mapping = c.pe_used / c.pe_total
        else:
            mapping = c.vec / (compute * tm.lanes) if compute and c.vec else 0.0
            mapping = min(mapping, 1.0)
        kind = info.kind if info else "?"
        useful = info.macs if info and info.macs else c.macs
        if c.macs and useful < c.macs:  # block-diagonal depthwise: zeros are not useful work
            mapping *= useful / c.macs
        folds = 0
        if info and cfg.vpu is None and unit == "array" and info.gemm[0]:
            m, n, k = info.gemm
            if info.dw_block > 1:  # block-diagonal: ceil(groups / b) GEMMs of m x b*k x b
                b, g = info.dw_block, info.groups
                folds = (g // b) * gemm_folds(m, b, b * k, tm.rows, tm.cols, tm.df)
                if g % b:
                    folds += gemm_folds(m, g % b, (g % b) * k, tm.rows, tm.cols, tm.df)
            else:
                folds = gemm_folds(m, n, k, tm.rows, tm.cols, tm.df, info.groups)
        note = ""
        if kind == "depthwise":
            if unit == "array":
                how = (f"block-diagonal GEMMs of {info.dw_block} channels" if info and
                       info.dw_block > 1 else "one GEMM per channel")
                note = (f"depthwise on the array as {how}: {100 * mapping:.2f}% of PEs do "
                        f"useful work (maps badly)")
            else:
                note = f"depthwise on the {unit}"
        energy = {"mac": c.macs * e.mac,
                  "register": REGISTER_ACCESSES_PER_MAC * c.macs * e.register,
                  "buffer": (c.buf_r + c.buf_w) * e.buffer,
                  "dram": (c.dram_r + c.dram_w) * e.dram,
                  "vector": c.vec * e.vector}
        out.append(LayerReport(
            name=info.name if info else f"layer{li}", kind=kind, compute_cycles=compute,
            stall_cycles=total - compute, total_cycles=total, macs=useful,
            peak_macs_per_cycle=peak, mapping_efficiency=mapping, buffer_reads=c.buf_r,
            buffer_writes=c.buf_w, dram_reads=c.dram_r, dram_writes=c.dram_w,
            energy_pj=sum(energy.values()), ridge_point=ridge, unit=unit, folds=folds,
            passes=c.folds,
            note=note, energy_breakdown=energy))
    return out
