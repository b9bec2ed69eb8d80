"""The register-blocked GEMM that conv, 1x1 conv, gemm and matmul share.

C[g] (M x N, row stride ldc) = act(alpha * A[g] @ B[g] + sum of addends). B is always packed in
panels ``[G][Nb][K][nr]`` (zero-padded columns: weights at compile time, activations by a pack
kernel), so the micro-kernel's inner loop is ``nv`` aligned vector loads, ``mr`` broadcasts and
``mr*nv`` FMAs into accumulators that stay in registers; the epilogue (bias, residual, activation)
runs on those registers before one store. A is either packed ``[Ga][Mb][K][mr]`` (constant weights,
zero-padded rows) or read with strides. Work items are (row group, panel group) blocks whose
sizes minimise the bytes moved (``GemmSpec.blocking``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import F32, I32, I64, PTR, VOID, i64
from lwc.backends.llvm.kernels.act import apply_act, fconst


MIN_ITEMS = int(os.environ.get("LWC_GEMM_MIN_ITEMS", 16))
"""Default work items a GEMM call is split into at least: 8 per thread on 2 cores."""


@dataclass(frozen=True)
class GemmSchedule:
    """Register tile (mr rows x nr columns, nr a multiple of the vector width) and k unroll."""

    mr: int
    nr: int
    ku: int = 2


@dataclass(frozen=True)
class Addend:
    """A tensor added in the epilogue: element (g, m, n) at g*gs + m*rs + n*cs (cs is 0 or 1)."""

    gs: int
    rs: int
    cs: int
    scale: float = 1.0


@dataclass(frozen=True)
class GemmSpec:
    G: int
    M: int
    N: int
    K: int
    sched: GemmSchedule
    vw: int
    a_packed: bool
    a_groups: int = 1
    """Packed A is indexed by g % a_groups (conv weights shared across the batch)."""
    a_strides: tuple[int, int, int] = (0, 0, 0)
    """(g, row, k) element strides of an unpacked A."""
    c_strides: tuple[int, int] = (0, 0)
    """(g, row) element strides of C; columns are contiguous."""
    addends: tuple[Addend, ...] = ()
    b_packed: bool = True
    b_strides: tuple[int, int] = (0, 0)
    """(g, k) element strides of an unpacked B (rows of contiguous columns, e.g. NCHW
    activations of a 1x1 conv); tail columns are read with masked loads."""
    alpha: float = 1.0
    act: str = ""
    act_alpha: float = 0.01
    lo: float = 0.0
    hi: float = 6.0
    min_items: int = -1
    """Split the call into at least this many work items (when there are that many tiles); -1:
    ``MIN_ITEMS``. A field, so that it is part of the kernel's cache key."""

    def __post_init__(self) -> None:
        if self.min_items < 0:
            object.__setattr__(self, "min_items", MIN_ITEMS)

    @property
    def mb(self) -> int:
        return -(-self.M // self.sched.mr)

    @property
    def nb(self) -> int:
        return -(-self.N // self.sched.nr)

    @property
    def kc(self) -> int:
        """K block: the B slice kc x nr should sit in L1 (16 KiB); one block if K is close."""
        kc = max(64, 16384 // (4 * self.sched.nr))
        if self.alpha != 1.0 or self.K <= kc * 5 // 4:
            return self.K
        return kc

    @property
    def blocking(self) -> tuple[int, int]:
        """(row blocks per item, column panels per item), chosen to move the fewest bytes.

        An item sweeps its k blocks; in each, for each of its column panels, it (packs and) holds
        the B slice (kc x nr) in L1 and runs its row blocks, whose A slices (rows x kc, at most
        ~128 KiB) stay in L2 across the item's panels. So A is read once per panel group and B
        once per row group: with large weights and few columns (late conv layers) A should be
        read once, with many columns B. At least 16 items (if there are that many tiles) keep
        2 threads balanced on a busy machine."""
        return _blocking(self.G, self.M, self.N, self.K, self.mb, self.nb, self.kc, self.sched.mr,
                         self.sched.nr, self.min_items)

    @property
    def group_rows(self) -> int:
        return self.blocking[0]

    @property
    def panels(self) -> int:
        return self.blocking[1]

    @property
    def ngroups(self) -> int:
        return -(-self.mb // self.group_rows)

    @property
    def njb(self) -> int:
        return -(-self.nb // self.panels)

    @property
    def items(self) -> int:
        return self.G * self.njb * self.ngroups


def _pow2_upto(n: int) -> set[int]:
    out, p = {n}, 1
    while p < n:
        out.add(p)
        p *= 2
    return out


@functools.cache
def _blocking(G: int, M: int, N: int, K: int, mb: int, nb: int, kc: int, mr: int, nr: int,
              min_items: int = 16) -> tuple[int, int]:
    a_bytes, b_bytes = 4 * M * K, 4 * K * nb * nr
    a_cost = a_bytes * (0.2 if a_bytes <= 256 * 1024 else 1.0)  # re-reads from L2 are cheap
    b_cost = b_bytes * (0.2 if b_bytes <= 256 * 1024 else 1.0)
    max_rows = max(1, min(mb, (128 * 1024) // (4 * kc * mr)))
    want = min(min_items, G * mb * nb)
    best: tuple[tuple[int, float, int], tuple[int, int]] | None = None
    for rows in _pow2_upto(max_rows) | {max_rows}:
        ngr = -(-mb // rows)
        for pan in _pow2_upto(nb) | {-(-nb // k) for k in (2, 3, 4, 8, 16)}:
            njb = -(-nb // pan)
            items = G * ngr * njb
            key = (0 if items >= want else want - items, njb * a_cost + ngr * b_cost, -items)
            if best is None or key < best[0]:
                best = (key, (rows, pan))
    assert best is not None
    return best[1]


def choose_schedule(M: int, N: int, K: int, vw: int, nregs: int) -> GemmSchedule:
    """Pick (mr, nr) that fits the register file and wastes the least work on padded tiles.

    ``LWC_GEMM_TILE=MRxNR`` forces a tile (for tuning experiments)."""
    if forced := os.environ.get("LWC_GEMM_TILE"):
        mr, nr = (int(v) for v in forced.lower().split("x"))
        return GemmSchedule(min(mr, max(1, M)), nr, 2)
    best: tuple[float, GemmSchedule] | None = None
    # two vectors per row measured best on znver3 (6x16: 3 loads per 12 FMAs, B reads stay short);
    # one vector only when the whole N fits in it
    for nv in ((1,) if N <= vw else (2,)):
        max_mr = (nregs - nv - 1) // nv
        for mr in range(1, max_mr + 1):
            if mr * nv < min(8, M * nv):   # too few accumulators to hide FMA latency
                continue
            nr = nv * vw
            padded = -(-M // mr) * mr * (-(-N // nr) * nr)
            # prefer bigger tiles (fewer loads per FMA) when waste is equal
            cost = padded * (1.0 + 0.5 / mr + 0.5 / nv)
            if best is None or cost < best[0]:
                best = (cost, GemmSchedule(mr, nr, 2))
    assert best is not None
    return best[1]


def pack_a(w: np.ndarray, mr: int) -> np.ndarray:
    """[Ga, M, K] -> [Ga, Mb, K, mr] with zero rows padding M to a multiple of mr."""
    ga, m, k = w.shape
    mb = -(-m // mr)
    p = np.zeros((ga, mb * mr, k), np.float32)
    p[:, :m] = w
    return np.ascontiguousarray(p.reshape(ga, mb, mr, k).transpose(0, 1, 3, 2))


def pack_b(b: np.ndarray, nr: int) -> np.ndarray:
    """[G, K, N] -> [G, Nb, K, nr] with zero columns padding N to a multiple of nr."""
    g, k, n = b.shape
    nb = -(-n // nr)
    p = np.zeros((g, k, nb * nr), np.float32)
    p[..., :n] = b
    return np.ascontiguousarray(p.reshape(g, k, nb, nr).transpose(0, 2, 1, 3))


def _masked_store(b: ir.IRBuilder, val: ir.Value, ptr: ir.Value, lanes: int, vw: int) -> None:
    vt = val.type
    mt = ir.VectorType(ir.IntType(1), vw)
    fn = irb.intrinsic(b.module, f"llvm.masked.store.v{vw}f32.p0", VOID, [vt, PTR, I32, mt])
    mask = ir.Constant(mt, [1 if i < lanes else 0 for i in range(vw)])
    b.call(fn, [val, ptr, ir.Constant(I32, 4), mask])


def _masked_load(b: ir.IRBuilder, ptr: ir.Value, lanes: int, vw: int) -> ir.Value:
    vt = irb.vec(vw)
    mt = ir.VectorType(ir.IntType(1), vw)
    fn = irb.intrinsic(b.module, f"llvm.masked.load.v{vw}f32.p0", vt, [PTR, I32, mt, vt])
    mask = ir.Constant(mt, [1 if i < lanes else 0 for i in range(vw)])
    return b.call(fn, [ptr, ir.Constant(I32, 4), mask, irb.const_vec(vw, 0.0)])


def _tile_fn(module: ir.Module, name: str, s: GemmSpec, rows: int, cols: int) -> ir.Function:
    """One tile variant: ``rows`` valid rows (<= mr) and ``cols`` valid columns (<= nr), over the
    k range [k0, k1). ``flags`` bit 0: first k block (start from the addends, or zero when the
    whole K is one block), bit 1: last k block (apply the activation); otherwise the partial sums
    round-trip through C."""
    mr, nr, vw = s.sched.mr, s.sched.nr, s.vw
    nv = nr // vw
    nadd = len(s.addends)
    fty = ir.FunctionType(VOID, [PTR] * (3 + nadd) + [I64] * 6)
    fn = ir.Function(module, fty, name=f"{name}.tile{rows}x{cols}")
    fn.linkage = "internal"
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    a, bp, c, *adds = fn.args[: 3 + nadd]
    g, ib, jb, k0, k1, flags = fn.args[3 + nadd:]
    vt = irb.vec(vw)
    fma = irb.intrinsic(module, f"llvm.fma.v{vw}f32", vt, [vt, vt, vt])
    K = s.K
    if s.a_packed:
        ga = b.srem(g, i64(s.a_groups)) if s.a_groups > 1 else i64(0)
        a_base = irb.gep(b, a, irb.mul(b, irb.add(b, irb.mul(b, ga, s.mb), ib), K * mr))
    else:
        gs, rs, ks = s.a_strides
        a_base = irb.gep(b, a, irb.add(b, irb.mul(b, g, gs), irb.mul(b, ib, mr * rs)))
    if s.b_packed:
        b_base = irb.gep(b, bp, irb.mul(b, irb.add(b, irb.mul(b, g, s.nb), jb), K * nr))
    else:
        b_base = bp  # the item's packed k-slice, addressed as if it started at k = 0
    b_rs = nr

    cg, cr = s.c_strides
    row0 = irb.mul(b, ib, mr)
    col0 = irb.mul(b, jb, nr)
    c_base = irb.gep(b, c, irb.add(b, irb.mul(b, g, cg), irb.mul(b, row0, cr), col0))
    add_bases = [irb.gep(b, p, irb.add(b, irb.mul(b, g, d.gs), irb.mul(b, row0, d.rs),
                                       irb.mul(b, col0, d.cs)))
                 for p, d in zip(adds, s.addends)]
    lanes_of = [min(vw, cols - v * vw) for v in range(nv)]

    def load_vec(ptr: ir.Value, lanes: int) -> ir.Value:
        if lanes == vw:
            return b.load(ptr, typ=vt, align=4)
        return _masked_load(b, ptr, lanes, vw)

    def addends_at(i: int, v: int, x: ir.Value) -> ir.Value:
        for p, d in zip(add_bases, s.addends):
            off = i * d.rs + v * vw * d.cs
            y = load_vec(irb.gep(b, p, off), lanes_of[v]) if d.cs else \
                irb.splat(b, irb.load(b, p, off), vw)
            if d.scale != 1.0:
                y = b.fmul(y, fconst(vt, d.scale))
            x = b.fadd(x, y)
        return x

    zero = irb.const_vec(vw, 0.0)
    blocked = s.kc < K
    first = b.icmp_unsigned("!=", b.and_(flags, i64(1)), i64(0))
    last = b.icmp_unsigned("!=", b.and_(flags, i64(2)), i64(0))
    if blocked:
        # first block starts from the addends (alpha is 1 here); later ones from C's partial sums
        pre = b.block
        init_first = b.append_basic_block("init.first")
        init_rest = b.append_basic_block("init.rest")
        init_done = b.append_basic_block("init.done")
        b.cbranch(first, init_first, init_rest)
        b.position_at_end(init_first)
        firsts = [addends_at(i, v, zero) if lanes_of[v] > 0 else zero
                  for i in range(rows) for v in range(nv)]
        b.branch(init_done)
        b.position_at_end(init_rest)
        rests = [load_vec(irb.gep(b, c_base, i * cr + v * vw), lanes_of[v]) if lanes_of[v] > 0
                 else zero for i in range(rows) for v in range(nv)]
        b.branch(init_done)
        b.position_at_end(init_done)
        accs: list[ir.Value] = []
        for f_, r_ in zip(firsts, rests):
            phi = b.phi(vt)
            phi.add_incoming(f_, init_first)
            phi.add_incoming(r_, init_rest)
            accs.append(phi)
        _ = pre
    else:
        accs = [zero] * (rows * nv)

    live = [v for v in range(nv) if lanes_of[v] > 0]  # a narrow tail tile skips empty vectors

    def step(k: ir.Value, accs: list[ir.Value]) -> list[ir.Value]:
        bk = irb.gep(b, b_base, irb.mul(b, k, b_rs))
        bvs = {v: b.load(irb.gep(b, bk, v * vw), typ=vt, align=4 * vw) for v in live}
        out = list(accs)
        for i in range(rows):
            if s.a_packed:
                ai = irb.load(b, a_base, irb.add(b, irb.mul(b, k, mr), i))
            else:
                ai = irb.load(b, a_base, irb.add(b, irb.mul(b, k, s.a_strides[2]), i * s.a_strides[1]))
            av = irb.splat(b, ai, vw)
            for v in live:
                out[i * nv + v] = b.call(fma, [av, bvs[v], out[i * nv + v]])
        return out

    ku = max(1, s.sched.ku)
    n = b.sub(k1, k0)
    kmain = b.add(k0, b.mul(b.sdiv(n, i64(ku)), i64(ku)))
    with irb.carried_loop(b, k0, kmain, accs, step=ku, name="k") as (k, carry):
        cur = carry.values
        for u in range(ku):
            cur = step(irb.add(b, k, u) if u else k, cur)
        carry.next = cur
    accs = carry.out
    if ku > 1:
        with irb.carried_loop(b, kmain, k1, accs, name="kt") as (k, carry):
            carry.next = step(k, carry.values)
        accs = carry.out

    def store(x: ir.Value, i: int, v: int) -> None:
        ptr = irb.gep(b, c_base, i * cr + v * vw)
        if lanes_of[v] == vw:
            b.store(x, ptr, align=4)
        else:
            _masked_store(b, x, ptr, lanes_of[v], vw)

    fin = b.append_basic_block("final")
    part = b.append_basic_block("partial")
    b.cbranch(last, fin, part)
    b.position_at_end(part)
    for i in range(rows):
        for v in range(nv):
            if lanes_of[v] > 0:
                store(accs[i * nv + v], i, v)
    b.ret_void()
    b.position_at_end(fin)
    for i in range(rows):
        for v in range(nv):
            if lanes_of[v] <= 0:
                continue
            x = accs[i * nv + v]
            if not blocked:
                if s.alpha != 1.0:
                    x = b.fmul(x, fconst(vt, s.alpha))
                x = addends_at(i, v, x)
            store(apply_act(b, x, s.act, s.act_alpha, s.lo, s.hi), i, v)
    b.ret_void()
    return fn


def _pack_slice(b: ir.IRBuilder, s: GemmSpec, src: ir.Value, buf: ir.Value, g: ir.Value,
                jb: ir.Value, k0: ir.Value, k1: ir.Value, last_j: ir.Value, col_tail: int) -> None:
    """buf[(k-k0)*nr + j] = B[g, k, jb*nr + j] for valid columns, zero beyond N."""
    nr = s.sched.nr
    gs, rs = s.b_strides
    base = irb.gep(b, src, irb.add(b, irb.mul(b, g, gs), irb.mul(b, jb, nr)))

    def rows(cnt: int) -> None:
        with irb.loop(b, k0, k1, name="pk") as k:
            srow = irb.gep(b, base, irb.mul(b, k, rs))
            drow = irb.gep(b, buf, irb.mul(b, b.sub(k, k0), nr))
            with irb.loop(b, 0, cnt, name="pj") as j:
                irb.store(b, irb.load(b, srow, j), drow, j)
            if cnt < nr:
                with irb.loop(b, cnt, nr, name="pz") as j:
                    irb.store(b, irb.f32(0.0), drow, j)

    if col_tail == nr:
        rows(nr)
        return
    with b.if_else(last_j) as (tail, full):
        with tail:
            rows(col_tail)
        with full:
            rows(nr)


def emit_gemm(module: ir.Module, name: str, s: GemmSpec) -> None:
    """Define kernel ``name``: args = [A, Bpacked, C, addends...]; items = (g, group of row
    blocks, group of column panels). An item sweeps its k blocks outermost; within one, each
    panel's B slice (kc x nr) stays in L1 while the group's A slices stream from L2."""
    mr, nr = s.sched.mr, s.sched.nr
    row_tail, col_tail = s.M - (s.mb - 1) * mr, s.N - (s.nb - 1) * nr
    variants = {(r, c): _tile_fn(module, name, s, r, c)
                for r in {mr, row_tail} for c in {nr, col_tail}}
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    ptrs = [irb.arg_ptr(b, args, k) for k in range(3 + len(s.addends))]
    slice_buf = None
    if not s.b_packed:  # B read in place: each (panel, k block) slice is packed onto the stack
        slice_buf = b.alloca(F32, size=s.kc * nr, name="bslice")
        slice_buf.align = 64
    gsz, ngr, pan, njb = s.group_rows, s.ngroups, s.panels, s.njb
    per_g = njb * ngr
    nk = -(-s.K // s.kc)
    with irb.loop(b, lo, hi, name="t") as t:
        # consecutive items share a row group (its A slices stay in L2) and move along the panels
        g = b.sdiv(t, i64(per_g))
        r = b.srem(t, i64(per_g))
        grp = b.sdiv(r, i64(njb))
        jq = b.srem(r, i64(njb))
        ib0 = irb.mul(b, grp, gsz)
        ib1 = b.select(b.icmp_signed("<", b.add(ib0, i64(gsz)), i64(s.mb)), b.add(ib0, i64(gsz)),
                       i64(s.mb))
        jb0 = irb.mul(b, jq, pan)
        jb1 = b.select(b.icmp_signed("<", b.add(jb0, i64(pan)), i64(s.nb)), b.add(jb0, i64(pan)),
                       i64(s.nb))
        with irb.loop(b, 0, nk, name="kb") as kb:
            k0 = irb.mul(b, kb, s.kc)
            k1 = b.select(b.icmp_signed("<", b.add(k0, i64(s.kc)), i64(s.K)),
                          b.add(k0, i64(s.kc)), i64(s.K))
            flags = b.or_(b.zext(b.icmp_signed("==", kb, i64(0)), I64),
                          b.shl(b.zext(b.icmp_signed("==", kb, i64(nk - 1)), I64), i64(1)))
            with irb.loop(b, jb0, jb1, name="jb") as jb:
                last_j = b.icmp_signed("==", jb, i64(s.nb - 1))
                tile_ptrs = list(ptrs)
                if slice_buf is not None:
                    _pack_slice(b, s, ptrs[1], slice_buf, g, jb, k0, k1, last_j, col_tail)
                    tile_ptrs[1] = b.gep(slice_buf, [b.sub(i64(0), irb.mul(b, k0, nr))],
                                         source_etype=F32)
                with irb.loop(b, ib0, ib1, name="ib") as ib:
                    last_i = b.icmp_signed("==", ib, i64(s.mb - 1))
                    call_args = [*tile_ptrs, g, ib, jb, k0, k1, flags]
                    end = b.append_basic_block("tile.end")
                    cases = [((mr, nr), b.not_(b.or_(last_i, last_j))),
                             ((row_tail, nr), b.and_(last_i, b.not_(last_j))),
                             ((mr, col_tail), b.and_(b.not_(last_i), last_j)),
                             ((row_tail, col_tail), b.and_(last_i, last_j))]
                    for key, cond in cases:
                        then = b.append_basic_block("tile.case")
                        nxt = b.append_basic_block("tile.next")
                        b.cbranch(cond, then, nxt)
                        b.position_at_end(then)
                        b.call(variants[key], call_args)
                        b.branch(end)
                        b.position_at_end(nxt)
                    b.branch(end)
                    b.position_at_end(end)
    b.ret_void()
