"""An independent race detector over the timing schedule: every buffer access of every
instruction, and the rule that an instruction touching bytes another queue wrote (or read, if it
writes) starts only after that access ended. The functional simulator runs in program order, so
only this test can catch a token protocol that lets a load overwrite a tile still in use."""

from __future__ import annotations

import numpy as np
import pytest
from accel_helpers import shared_program

from lwc.backends.accel import simulate, timing
from lwc.backends.accel.config import load_accel
from lwc.backends.accel.isa import Buf, Instr
from lwc.backends.accel.layout import buffer_plan

ACT, WGT, ACC, PAR = "act", "wgt", "acc", "param"
QUEUE = {"load": 0, "compute": 1, "store": 2}


def accesses(ins: Instr, pc: dict[str, int]) -> tuple[list, list]:
    """(reads, writes) as (buffer, start, stop) element ranges."""
    f = ins.as_dict()
    op = ins.op
    if op == "load":
        buf = {Buf.ACT: ACT, Buf.WGT: WGT, Buf.PARAM: PAR, Buf.ACC: ACC}[Buf(f["buf"])]
        return [], [(buf, f["dst"], f["dst"] + f["rows"] * f["cols"])]
    if op == "loadi":
        return [], [(ACT, f["dst"], f["dst"] + f["rows"] * f["cols"])]
    if op == "store":
        return [(ACT, f["src"], f["src"] + f["rows"] * f["cols"])], []
    if op == "storeacc":
        return [(ACC, f["src"], f["src"] + f["rows"] * f["cols"])], []
    if op == "vsum":
        return ([(ACC, f["src"], f["src"] + f["n"] * f["parts"])],
                [(ACC, f["dst"], f["dst"] + f["n"])])
    if op == "matmul":
        m, k, n = f["m"], f["k"], f["n"]
        acc = (ACC, f["acc"], f["acc"] + m * n)
        reads = [(ACT, f["a"], f["a"] + m * k), (WGT, f["w"], f["w"] + k * n)]
        return reads + ([acc] if f["accumulate"] else []), [acc]
    if op == "vdw":
        m, c, kk = f["m"], f["c"], f["kk"]
        acc = (ACC, f["acc"], f["acc"] + m * c)
        reads = [(ACT, f["a"], f["a"] + m * c * kk), (WGT, f["w"], f["w"] + c * kk)]
        return reads + ([acc] if f["accumulate"] else []), [acc]
    if op == "vreq":
        m, n = f["m"], f["n"]
        return ([(ACC, f["acc"], f["acc"] + m * n), (PAR, f["param"], f["param"] + 3 * n)],
                [(ACT, f["dst"], f["dst"] + m * n)])
    if op == "vadd":
        n = f["n"]
        return ([(ACT, f["a"], f["a"] + n), (ACT, f["b"], f["b"] + n)],
                [(ACT, f["dst"], f["dst"] + n)])
    if op == "vrescale":
        return [(ACT, f["src"], f["src"] + f["n"])], [(ACT, f["dst"], f["dst"] + f["n"])]
    if op == "vpool":
        c = f["c"]
        return ([(ACT, f["src"], f["src"] + c * pc["h"] * pc["w"])],
                [(ACT, f["dst"], f["dst"] + c * pc["oh"] * pc["ow"])])
    return [], []


def races(prog, cfg) -> tuple[list[str], int]:
    """Race descriptions (empty: none) and how many accesses were checked."""
    plan = buffer_plan(cfg)
    sizes = {ACT: plan.act_bytes, WGT: plan.wgt_bytes, ACC: plan.acc_words,
             PAR: 2 * plan.param_half}
    rep = simulate(prog, cfg, functional=False, trace=True)
    cores = cfg.vpu.cores if cfg.vpu else 1
    # [core][buffer][queue] -> end time of the last write / read of each element
    w_end = [{b: np.zeros((3, s), np.int64) for b, s in sizes.items()} for _ in range(cores)]
    r_end = [{b: np.zeros((3, s), np.int64) for b, s in sizes.items()} for _ in range(cores)]
    pcs: list[dict[str, int]] = [{} for _ in range(cores)]
    found: list[str] = []
    checked = 0
    for ins, row in zip(prog.instrs, rep.trace):
        if ins.op == "pcfg":
            pcs[ins.core] = ins.as_dict()
        reads, writes = accesses(ins, pcs[ins.core])
        q = QUEUE[row.queue]
        others = [i for i in range(3) if i != q]
        for buf, lo, hi in reads + writes:
            assert 0 <= lo <= hi <= sizes[buf], (ins, buf)
        for kind, rng in [("RAW", reads), ("WAR/WAW", writes)]:
            for buf, lo, hi in rng:
                if hi <= lo:
                    continue
                last = w_end[ins.core][buf][others, lo:hi].max()
                if kind != "RAW":
                    last = max(last, r_end[ins.core][buf][others, lo:hi].max())
                if row.start < last:
                    found.append(f"{kind} race: {ins} starts at {row.start} < {last}")
                checked += 1
        for buf, lo, hi in reads:
            seg = r_end[ins.core][buf][q, lo:hi]
            np.maximum(seg, row.end, out=seg)
        for buf, lo, hi in writes:
            w_end[ins.core][buf][q, lo:hi] = row.end
    return found, checked


@pytest.mark.parametrize("name, accel", [("squeezenet1_1", "edge-16x16"),
                                         ("mobilenet_v2", "eyeriss-like"),
                                         ("squeezenet1_1", "myriad-x-like"),
                                         ("digits_lenet5", "myriad-2-like")])
def test_no_buffer_races_in_the_schedule(name: str, accel: str) -> None:
    found, checked = races(shared_program(name, accel), load_accel(accel))
    assert not found, found[:3]
    assert checked > 100


def test_the_detector_sees_a_third_token_overrun_two_buffer_halves(monkeypatch) -> None:
    monkeypatch.setattr(timing, "INITIAL_TOKENS", 3)
    found, _ = races(shared_program("squeezenet1_1", "edge-16x16"), load_accel("edge-16x16"))
    assert found


def dram_races(prog, cfg) -> tuple[list[str], int]:
    """Cross-core DRAM read-after-write races of a K-split GEMM: every load of partial sums
    (``load buf=ACC``) must start after each ``storeacc`` that wrote words it reads has ended."""
    rep = simulate(prog, cfg, functional=False, trace=True)
    written: list[tuple[set[int], int, Instr]] = []
    found: list[str] = []
    pairs = 0
    for ins, row in zip(prog.instrs, rep.trace):
        f = ins.as_dict()
        if ins.op not in ("storeacc", "load") or (ins.op == "load" and f["buf"] != Buf.ACC):
            continue
        words = {f["dram"] // 4 + r * f["rstride"] + c * f["cstride"]
                 for r in range(f["rows"]) for c in range(f["cols"])}
        if ins.op == "storeacc":
            written.append((words, row.end, ins))
            continue
        for w_words, end, w_ins in written:
            if words & w_words:
                pairs += w_ins.core != ins.core
                if row.start < end:
                    found.append(f"RAW race: {ins} starts at {row.start} < {end} ({w_ins})")
    return found, pairs


@pytest.mark.parametrize("accel", ["myriad-x-like", "myriad-2-like"])
def test_k_split_reduction_waits_for_every_core(accel: str) -> None:
    cfg = load_accel(accel)
    prog = shared_program("digits_lenet5", accel)
    found, pairs = dram_races(prog, cfg)
    assert not found, found[:3]
    assert pairs >= cfg.vpu.cores - 1  # partial sums really cross cores
    # without the barrier the reduction would read partial sums still being written
    li = max(i.layer for i in prog.instrs if i.op == "vsum")
    started: set[int] = set()  # cores whose layer-start sync was kept
    kept = []
    for ins in prog.instrs:
        if ins.op == "sync" and ins.layer == li:
            if ins.core in started:
                continue
            started.add(ins.core)
        kept.append(ins)
    bad = type(prog)(prog.accel, kept, prog.layers, prog.dram_init, prog.inputs, prog.outputs)
    assert dram_races(bad, cfg)[0]
