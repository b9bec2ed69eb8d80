"""Functional simulator: executes a program on real data, instruction by instruction.

Memories are numpy arrays: a byte-addressed DRAM image and, per core, the activation, weight,
accumulator and parameter buffers sized from the description. Every buffer access is bounds
checked, so a tiling bug fails loudly instead of reading a neighbour's data. Program order is a
valid sequential schedule (the lowering guarantees it), so tokens need no modelling here.
"""

from __future__ import annotations

import numpy as np

from lwc.backends.accel.config import AccelConfig
from lwc.backends.accel.isa import Buf, Instr, IsaError, unpack2
from lwc.backends.accel.layout import buffer_plan
from lwc.backends.accel.program import Program
from lwc.backends.accel.qmodel import exact_matmul, requant, rshift_round


class _Core:
    def __init__(self, cfg: AccelConfig) -> None:
        plan = buffer_plan(cfg)
        self.act = np.zeros(plan.act_bytes, np.int8)
        self.wgt = np.zeros(plan.wgt_bytes, np.int8)
        self.acc = np.zeros(plan.acc_words, np.int64)
        self.param = np.zeros(2 * plan.param_half, np.int64)
        self.ag: dict[str, int] = {}
        self.pc: dict[str, int] = {}


def _span(buf: np.ndarray, start: int, count: int, what: str, ins: Instr) -> slice:
    if start < 0 or count < 0 or start + count > buf.size:
        raise IsaError(f"{ins.op} @{ins.layer}:{ins.core}: {what} access [{start}, {start + count})"
                       f" outside its {buf.size}-element buffer")
    return slice(start, start + count)


def _exact_matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """int8 GEMM through BLAS: float32 is exact while every partial sum stays below 2**24
    (k * 128 * 128 <= 2**24, i.e. k <= 1024), float64 beyond (exact below 2**53)."""
    if a.shape[1] <= 1024:
        return (a.astype(np.float32) @ w.astype(np.float32)).astype(np.int64)
    return exact_matmul(a, w)


def _im2col_pattern(g: dict[str, int], m0: int, rows: int, k0: int, cols: int
                    ) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Relative DRAM offsets of an im2col tile, its in-bounds mask (None: no padding touched)
    and the tensor span they assume; cached per geometry, reused across channels/groups."""
    (sh, sw), (pt, pl), (dh, dw) = unpack2(g["stride"]), unpack2(g["pad"]), unpack2(g["dil"])
    h, w, kk = g["h"], g["w"], g["kh"] * g["kw"]
    m = np.arange(m0, m0 + rows)
    k = np.arange(k0, k0 + cols)
    oy, ox = m // g["ow"], m % g["ow"]
    ch, rem = k // kk, k % kk
    ki, kj = rem // g["kw"], rem % g["kw"]
    iy = oy[:, None] * sh - pt + ki[None, :] * dh
    ix = ox[:, None] * sw - pl + kj[None, :] * dw
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rel = ch[None, :] * h * w + np.clip(iy, 0, h - 1) * w + np.clip(ix, 0, w - 1)
    span = int(rel.max()) + 1 if rel.size else 0
    mask = None if ok.all() else ok.ravel().astype(np.int8)
    return rel.ravel(), mask, span


class FunctionalSim:
    def __init__(self, prog: Program, cfg: AccelConfig) -> None:
        self.prog = prog
        self.dram = prog.dram_init.copy()
        self.d8 = self.dram.view(np.int8)
        self.d32 = self.dram.view(np.int32)
        ncores = cfg.vpu.cores if cfg.vpu is not None else 1
        self.cores = [_Core(cfg) for _ in range(ncores)]
        self._im2col_cache: dict[tuple, tuple[np.ndarray, np.ndarray | None, int]] = {}

    def write_input(self, xq: np.ndarray) -> None:
        t = self.prog.inputs[0]
        flat = np.ascontiguousarray(xq, np.int8).ravel()
        if flat.size != t.nbytes:
            raise IsaError(f"input {t.name}: {flat.size} elements, program expects {t.shape}")
        self.d8[t.addr:t.addr + t.nbytes] = flat

    def read(self, name: str) -> np.ndarray:
        for t in self.prog.outputs + self.prog.inputs:
            if t.name == name:
                return self.d8[t.addr:t.addr + t.nbytes].reshape(t.shape).copy()
        raise KeyError(name)

    def _dram_view(self, base: int, rows: int, cols: int, rs: int, cs: int,
                   ins: Instr) -> np.ndarray:
        """A (rows, cols) strided view of DRAM (bounds checked; strides are non-negative)."""
        if rows <= 0 or cols <= 0:
            return self.d8[0:0].reshape(0, 0) if rows <= 0 else self.d8[0:0].reshape(rows, 0)
        last = base + (rows - 1) * rs + (cols - 1) * cs
        if base < 0 or rs < 0 or cs < 0 or last >= self.d8.size:
            raise IsaError(f"{ins.op} @{ins.layer}:{ins.core}: DRAM access [{base}, {last}] "
                           f"(strides {rs}, {cs}) outside the {self.d8.size}-byte image")
        return np.lib.stride_tricks.as_strided(self.d8[base:], shape=(rows, cols),
                                               strides=(rs, cs))

    def run(self) -> None:
        # thousands of small GEMMs: one BLAS thread each is several times faster than a
        # thread team that has to be woken for every call (16x on a busy 2-core machine)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            for ins in self.prog.instrs:
                getattr(self, "_" + ins.op)(ins, self.cores[ins.core])

    # ----- instruction semantics -----------------------------------------------------------
    def _nop(self, ins: Instr, c: _Core) -> None:
        pass

    _sync = _nop

    def _agcfg(self, ins: Instr, c: _Core) -> None:
        c.ag = ins.as_dict()

    def _pcfg(self, ins: Instr, c: _Core) -> None:
        c.pc = ins.as_dict()

    def _load(self, ins: Instr, c: _Core) -> None:
        buf, dst, dram, rows, cols, rs, cs = ins.args
        if buf in (Buf.PARAM, Buf.ACC):
            mem, what = (c.param, "param") if buf == Buf.PARAM else (c.acc, "acc")
            mem[_span(mem, dst, rows * cols, what, ins)] = \
                self._words(dram, rows, cols, rs, cs, ins).ravel()
            return
        mem = c.act if buf == Buf.ACT else c.wgt
        sl = _span(mem, dst, rows * cols, Buf(buf).name.lower(), ins)
        mem[sl] = self._dram_view(dram, rows, cols, rs, cs, ins).ravel()

    def _words(self, dram: int, rows: int, cols: int, rs: int, cs: int,
               ins: Instr) -> np.ndarray:
        """A (rows, cols) strided view of DRAM as int32 words (strides in words)."""
        if dram % 4:
            raise IsaError(f"{ins.op} @{ins.layer}:{ins.core}: int32 address {dram} is not "
                           f"4-aligned")
        if dram < 0 or rs < 0 or cs < 0 or \
                (rows and cols and dram // 4 + (rows - 1) * rs + (cols - 1) * cs >= self.d32.size):
            raise IsaError(f"{ins.op} @{ins.layer}:{ins.core}: int32 access outside DRAM")
        return np.lib.stride_tricks.as_strided(self.d32[dram // 4:], shape=(rows, cols),
                                               strides=(4 * rs, 4 * cs))

    def _storeacc(self, ins: Instr, c: _Core) -> None:
        dram, src, rows, cols, rs, cs = ins.args
        vals = c.acc[_span(c.acc, src, rows * cols, "acc", ins)]
        if rows * cols == 0:
            return
        if rows > 1 and cols > 1 and (rs == 0 or cs == 0):
            raise IsaError(f"storeacc @{ins.layer}:{ins.core}: zero stride would overwrite itself")
        if vals.min() < -2**31 or vals.max() >= 2**31:
            raise IsaError(f"storeacc @{ins.layer}:{ins.core}: a partial sum overflows int32")
        self._words(dram, rows, cols, rs, cs, ins)[...] = vals.reshape(rows, cols)

    def _vsum(self, ins: Instr, c: _Core) -> None:
        dst, src, n, parts = ins.args
        v = c.acc[_span(c.acc, src, n * parts, "acc", ins)].reshape(parts, n).sum(axis=0)
        c.acc[_span(c.acc, dst, n, "acc", ins)] = v

    def _loadi(self, ins: Instr, c: _Core) -> None:
        dst, dram, m0, rows, k0, cols = ins.args
        g = c.ag
        if not g:
            raise IsaError(f"loadi @{ins.layer}:{ins.core} before any agcfg")
        key = (tuple(g.values()), m0, rows, k0, cols)
        pat = self._im2col_cache.get(key)
        if pat is None:
            pat = self._im2col_cache[key] = _im2col_pattern(g, m0, rows, k0, cols)
        rel, ok, span = pat
        if dram < 0 or dram + span > self.d8.size:
            raise IsaError(f"loadi @{ins.layer}:{ins.core}: input tensor [{dram}, {dram + span})"
                           f" outside the {self.d8.size}-byte image")
        vals = self.d8[dram + rel]
        if ok is not None:
            vals *= ok
        c.act[_span(c.act, dst, rows * cols, "act", ins)] = vals

    def _store(self, ins: Instr, c: _Core) -> None:
        dram, src, rows, cols, rs, cs = ins.args
        vals = c.act[_span(c.act, src, rows * cols, "act", ins)]
        if rows * cols == 0:
            return
        if rows > 1 and cols > 1 and (rs == 0 or cs == 0):
            raise IsaError(f"store @{ins.layer}:{ins.core}: zero stride would overwrite itself")
        self._dram_view(dram, rows, cols, rs, cs, ins)[...] = vals.reshape(rows, cols)

    def _matmul(self, ins: Instr, c: _Core) -> None:
        acc, a, w, m, k, n, accumulate = ins.args
        A = c.act[_span(c.act, a, m * k, "act", ins)].reshape(m, k)
        W = c.wgt[_span(c.wgt, w, k * n, "wgt", ins)].reshape(k, n)
        sl = _span(c.acc, acc, m * n, "acc", ins)
        prod = _exact_matmul(A, W).ravel()
        c.acc[sl] = c.acc[sl] + prod if accumulate else prod

    def _vdw(self, ins: Instr, c: _Core) -> None:
        acc, a, w, m, ch, kk, accumulate = ins.args
        A = c.act[_span(c.act, a, m * ch * kk, "act", ins)].reshape(m, ch, kk).astype(np.int64)
        W = c.wgt[_span(c.wgt, w, ch * kk, "wgt", ins)].reshape(ch, kk).astype(np.int64)
        sl = _span(c.acc, acc, m * ch, "acc", ins)
        prod = (A * W[None]).sum(axis=2).ravel()
        c.acc[sl] = c.acc[sl] + prod if accumulate else prod

    def _vreq(self, ins: Instr, c: _Core) -> None:
        dst, acc, par, m, n, lo, hi = ins.args
        p = c.param[_span(c.param, par, 3 * n, "param", ins)]
        accv = c.acc[_span(c.acc, acc, m * n, "acc", ins)].reshape(m, n) + p[:n]
        c.act[_span(c.act, dst, m * n, "act", ins)] = requant(accv, p[n:2 * n], p[2 * n:],
                                                              lo, hi).ravel()

    def _vadd(self, ins: Instr, c: _Core) -> None:
        dst, a, b, n, ma, mb, shift, lo, hi = ins.args
        av = c.act[_span(c.act, a, n, "act", ins)].astype(np.int64)
        bv = c.act[_span(c.act, b, n, "act", ins)].astype(np.int64)
        c.act[_span(c.act, dst, n, "act", ins)] = np.clip(
            rshift_round(av * ma + bv * mb, shift), lo, hi).astype(np.int8)

    def _vrescale(self, ins: Instr, c: _Core) -> None:
        dst, src, n, mult, shift, lo, hi = ins.args
        v = c.act[_span(c.act, src, n, "act", ins)]
        c.act[_span(c.act, dst, n, "act", ins)] = requant(v.astype(np.int64), mult, shift, lo, hi)

    def _vpool(self, ins: Instr, c: _Core) -> None:
        dst, src, ch, mult, shift = ins.args
        p = c.pc
        h, w, oh, ow = p["h"], p["w"], p["oh"], p["ow"]
        x = c.act[_span(c.act, src, ch * h * w, "act", ins)].reshape(ch, h, w)
        out = c.act[_span(c.act, dst, ch * oh * ow, "act", ins)]
        if p["mode"] == 2:
            s = x.astype(np.int64).reshape(ch, -1).sum(axis=1)
            out[:] = requant(s, mult, shift, -128, 127)
            return
        (sh, sw), (pt, pl) = unpack2(p["stride"]), unpack2(p["pad"])
        kh, kw = p["kh"], p["kw"]
        iy = np.arange(oh)[:, None] * sh - pt + np.arange(kh)[None, :]  # oh, kh
        ix = np.arange(ow)[:, None] * sw - pl + np.arange(kw)[None, :]  # ow, kw
        ok = ((iy >= 0) & (iy < h))[:, None, :, None] & ((ix >= 0) & (ix < w))[None, :, None, :]
        win = x[:, np.clip(iy, 0, h - 1)[:, None, :, None], np.clip(ix, 0, w - 1)[None, :, None, :]]
        if p["mode"] == 0:
            out[:] = np.where(ok[None], win, -128).max(axis=(3, 4)).astype(np.int8).ravel()
        else:
            s = np.where(ok[None], win.astype(np.int64), 0).sum(axis=(3, 4))
            out[:] = requant(s, mult, shift, -128, 127).ravel()


def run_functional(prog: Program, cfg: AccelConfig, xq: np.ndarray) -> dict[str, np.ndarray]:
    """Run the program on an int8 input; returns the int8 outputs by tensor name."""
    sim = FunctionalSim(prog, cfg)
    sim.write_input(xq)
    sim.run()
    return {t.name: sim.read(t.name) for t in prog.outputs}
