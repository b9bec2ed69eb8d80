"""The analytical timing and energy model: SCALE-Sim's fold formula, monotonicity properties
(bandwidth, array size), bounds (utilisation, mapping), conservation (totals are sums, energy is
its breakdown), the token schedule checked independently from its trace, and the VPU claims of
issue 6 (scratchpad per tile, balance across cores, Myriad 2 slower than Myriad X)."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from accel_helpers import MODELS, shared_program, shared_qmodel
from hypothesis import given, settings
from hypothesis import strategies as st

from lwc.backends.accel import simulate
from lwc.backends.accel.config import load_accel
from lwc.backends.accel.isa import Dep, Instr, IsaError, make
from lwc.backends.accel.layout import buffer_plan
from lwc.backends.accel.lower import lower
from lwc.backends.accel.program import LayerInfo, Program
from lwc.backends.accel.report import LAYER_KEYS, SUM_KEYS, TOTAL_KEYS
from lwc.backends.accel.timing import (INITIAL_TOKENS, array_cycles, gemm_folds, time_program)

SYSTOLIC = ("tpu-v1", "edge-16x16", "eyeriss-like")
VPUS = ("myriad-x-like", "myriad-2-like")


def test_fold_cycles_match_a_measured_scalesim_layer() -> None:
    # SCALE-Sim 3.0.0, ResNet-18 l1_b1_c1 (M=56*56, N=64, K=3*3*64) on 32x32 ws reported
    # 116,279 Total Cycles = 18 * 2 * (64 + 32 + 3136 - 2) - 1 (docs/scalesim.md, measured)
    cycles, folds, used = array_cycles(3136, 576, 64, 32, 32, "ws")
    assert (cycles - 1, folds, used) == (116_279, 36, 576 * 64)
    # os: spatial M x N, time K: T + R + C - 2 per fold
    assert array_cycles(3136, 576, 64, 32, 32, "os")[:2] == (98 * 2 * (576 + 62), 196)
    # is: spatial K x M, time N
    assert array_cycles(3136, 576, 64, 32, 32, "is")[:2] == (18 * 98 * (64 + 96 - 2), 18 * 98)


dims = st.integers(1, 5000)


@given(m=dims, n=dims, k=dims, r=st.integers(1, 300), c=st.integers(1, 300),
       dr=st.integers(0, 300), dc=st.integers(0, 300), df=st.sampled_from(["ws", "os", "is"]))
def test_a_bigger_array_never_needs_more_folds(m, n, k, r, c, dr, dc, df) -> None:
    assert gemm_folds(m, n, k, r + dr, c + dc, df) <= gemm_folds(m, n, k, r, c, df)
    cyc, folds, used = array_cycles(m, k, n, r, c, df)
    assert used <= folds * r * c and m * n * k <= cyc * r * c  # never more than peak


@pytest.mark.parametrize("name, sizes", [("digits_lenet5", (4, 8, 16, 32, 64)),
                                         ("mobilenet_v2", (16, 32, 64))])
def test_layer_folds_shrink_with_array_size(name: str, sizes: tuple[int, ...]) -> None:
    prev = None
    for size in sizes:
        cfg = load_accel("edge-16x16").replace(**{"array.rows": size, "array.cols": size})
        prog = lower(shared_qmodel(name), cfg)
        folds = [x.folds for x in time_program(prog, cfg)[0]]
        if prev is not None:
            assert all(a <= b for a, b in zip(folds, prev)), size
        prev = folds
    assert sum(prev) > 0


@settings(max_examples=12)
@given(bw=st.floats(0.25, 64), more=st.floats(1.0, 16), latency=st.integers(0, 200))
def test_more_bandwidth_never_costs_cycles(bw: float, more: float, latency: int) -> None:
    base = load_accel("edge-16x16")
    prog = shared_program("squeezenet1_1", "edge-16x16")
    slow = time_program(prog, base.replace(**{"dram.bandwidth": bw, "dram.latency": latency}))[0]
    fast = time_program(prog, base.replace(**{"dram.bandwidth": bw * more,
                                              "dram.latency": latency}))[0]
    for a, b in zip(slow, fast):
        assert b.total_cycles <= a.total_cycles, a.name
        assert b.dram_reads == a.dram_reads  # traffic is a property of the program
    assert sum(x.total_cycles for x in fast) <= sum(x.total_cycles for x in slow)


def test_vpu_bandwidth_is_monotone_too() -> None:
    prog = shared_program("digits_lenet5", "myriad-x-like")
    cfg = load_accel("myriad-x-like")
    totals = [sum(x.total_cycles for x in time_program(prog, cfg.replace(
        **{"dram.bandwidth": bw}))[0]) for bw in (1, 4, 16, 64, 256)]
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1]


@pytest.mark.parametrize("accel", SYSTOLIC + VPUS)
@pytest.mark.parametrize("name", ["digits_lenet5", "squeezenet1_1", "mobilenet_v2"])
def test_report_bounds_and_totals(name: str, accel: str) -> None:
    rep = simulate(shared_program(name, accel), accel, functional=False)
    js = rep.to_json()
    assert js["mode"] == "timing" and not rep.outputs
    for layer in js["layers"]:
        assert set(LAYER_KEYS) <= set(layer)
        assert 0 <= layer["utilization"] <= 1 and 0 <= layer["mapping_efficiency"] <= 1
        assert 0 <= layer["compute_cycles"] <= layer["total_cycles"]
        assert layer["stall_cycles"] == layer["total_cycles"] - layer["compute_cycles"]
        assert layer["roofline_bound"] in ("compute", "memory")
    tot = js["total"]
    assert set(TOTAL_KEYS) <= set(tot)
    for k in SUM_KEYS:
        assert tot[k] == pytest.approx(sum(x[k] for x in js["layers"])), k
    assert tot["macs"] == sum(x.macs for x in shared_program(name, accel).layers)
    assert 0 < tot["utilization"] <= 1
    assert tot["seconds"] == pytest.approx(tot["total_cycles"] / (rep.clock_mhz * 1e6))
    assert tot["achieved_tops"] <= tot["peak_tops"]
    assert tot["roofline_bound"] == ("compute" if tot["arith_intensity"] >= tot["ridge_point"]
                                     else "memory")


def test_tpu_v1_reports_its_peak() -> None:
    rep = simulate(shared_program("digits_lenet5", "tpu-v1"), "tpu-v1", functional=False)
    assert round(rep.total()["peak_tops"], 2) == 91.75


def test_depthwise_is_reported_as_poorly_mapped() -> None:
    rep = simulate(shared_program("mobilenet_v2", "tpu-v1"), "tpu-v1", functional=False)
    dw = [x for x in rep.layers if x.kind == "depthwise"]
    dense = [x for x in rep.layers if x.kind == "conv"]
    assert len(dw) == 17
    for x in dw:
        assert "maps badly" in x.note and x.mapping_efficiency < 0.01
    assert max(x.mapping_efficiency for x in dw) < min(x.mapping_efficiency for x in dense)


def test_energy_is_its_breakdown_and_scales_with_per_access_energy() -> None:
    prog = shared_program("squeezenet1_1", "edge-16x16")
    cfg = load_accel("edge-16x16")
    a = time_program(prog, cfg)[0]
    b = time_program(prog, cfg.replace(**{"energy.dram": 2 * cfg.energy.dram}))[0]
    for x, y in zip(a, b):
        assert x.energy_pj == pytest.approx(sum(x.energy_breakdown.values()))
        assert x.energy_breakdown["dram"] == pytest.approx((x.dram_reads + x.dram_writes)
                                                           * cfg.energy.dram)
        assert y.energy_breakdown["dram"] == pytest.approx(2 * x.energy_breakdown["dram"])
        assert y.energy_breakdown["mac"] == x.energy_breakdown["mac"]


def test_schedule_respects_tokens_and_queue_order() -> None:
    """Re-derive the token protocol from the trace alone: the k-th pop on a channel starts no
    earlier than the end of the (k - initial)-th push; queues are in order; loads run ahead."""
    prog = shared_program("squeezenet1_1", "edge-16x16")
    rep = simulate(prog, "edge-16x16", functional=False, trace=True)
    assert len(rep.trace) == len(prog.instrs)
    pushes, pops = defaultdict(list), defaultdict(list)
    last_start: dict[tuple[int, str], int] = {}
    qi = {"load": 0, "compute": 1, "store": 2}
    for ins, row in zip(prog.instrs, rep.trace):
        assert row.start <= row.end
        key = (row.core, row.queue)
        assert row.start >= last_start.get(key, 0), "queues run in order"
        last_start[key] = row.start
        q = qi[row.queue]
        if ins.flags & Dep.PUSH_NEXT:
            pushes[(q, q + 1)].append(row.end)
        if ins.flags & Dep.PUSH_PREV:
            pushes[(q, q - 1)].append(row.end)
        if ins.flags & Dep.POP_PREV:
            pops[(q - 1, q)].append(row.start)
        if ins.flags & Dep.POP_NEXT:
            pops[(q + 1, q)].append(row.start)
    for ch, starts in pops.items():
        init = INITIAL_TOKENS if ch in ((1, 0), (2, 1)) else 0
        for k, s in enumerate(starts[init:]):
            assert s >= pushes[ch][k], (ch, k)
    # double buffering: some load starts before the matmul issued before it in program order ends
    ends = {i: r.end for i, r in enumerate(rep.trace)}
    mm_end = 0
    overlapped = 0
    for i, ins in enumerate(prog.instrs):
        if ins.op == "matmul":
            mm_end = ends[i]
        elif ins.op in ("load", "loadi") and rep.trace[i].start < mm_end:
            overlapped += 1
    assert overlapped > 100
    busy = sum(r.end - r.start for r in rep.trace)
    assert rep.total()["total_cycles"] < busy  # the three queues overlap


def test_a_pop_without_push_is_a_deadlock() -> None:
    instrs = [make("sync"), make("matmul", Dep.POP_PREV, acc=0, a=0, w=0, m=1, k=1, n=1,
                                 accumulate=0)]
    prog = Program("edge-16x16", instrs, [LayerInfo("l", "conv")], bytes(0), [], [])
    with pytest.raises(IsaError, match="deadlock"):
        time_program(prog, load_accel("edge-16x16"))
    bad = Program("edge-16x16", [Instr("sync", (), Dep.PUSH_PREV)], [LayerInfo("l", "conv")],
                  bytes(0), [], [])
    with pytest.raises(IsaError, match="no previous queue"):
        time_program(bad, load_accel("edge-16x16"))


def test_timing_does_not_depend_on_running_the_data() -> None:
    prog = shared_program("digits_lenet5", "eyeriss-like")
    a = simulate(prog, "eyeriss-like").to_json()["layers"]
    b = simulate(prog, "eyeriss-like", functional=False).to_json()["layers"]
    assert a == b


def busy_per_core(prog, accel: str) -> dict[int, list[int]]:
    """Compute-queue busy cycles per layer and core, re-derived from the timing trace."""
    rep = simulate(prog, accel, functional=False, trace=True)
    cores = load_accel(accel).vpu.cores
    busy: dict[int, list[int]] = defaultdict(lambda: [0] * cores)
    for row in rep.trace:
        if row.queue == "compute":
            busy[row.layer][row.core] += row.end - row.start
    return busy


@pytest.mark.parametrize("name", MODELS)
def test_vpu_tiles_fit_scratchpad_and_work_is_balanced(name: str) -> None:
    """Every layer: the busiest core is busy at most 10% longer than the mean, rounded up to a
    whole cycle (no split can beat that: a layer of 50 lane-cycles on 16 cores needs 4 on some
    core). LeNet's 10-way classifier only gets there by splitting K over the cores."""
    for accel in VPUS:
        cfg = load_accel(accel)
        plan = buffer_plan(cfg)
        prog = shared_program(name, accel)
        busy = busy_per_core(prog, accel)
        assert set(busy) == set(range(len(prog.layers)))  # every layer computes on some core
        for li, info in enumerate(prog.layers):
            assert 0 < info.max_tile_bytes <= plan.tile_budget <= cfg.vpu.slice_bytes, info.name
            assert len(info.core_work) == cfg.vpu.cores
            b = busy[li]
            assert max(b) / math.ceil(sum(b) / len(b)) <= 1.10, (accel, info.name, b)
            if info.gemm[1] and info.gemm[1] * info.gemm[0] < cfg.vpu.cores:  # too few outputs
                ops = {i.op for i in prog.instrs if i.layer == li}
                assert {"storeacc", "vsum"} <= ops, (accel, info.name)


@pytest.mark.parametrize("name", MODELS)
def test_myriad_2_is_slower_than_myriad_x_on_every_conv(name: str) -> None:
    x = simulate(shared_program(name, "myriad-x-like"), "myriad-x-like", functional=False)
    two = simulate(shared_program(name, "myriad-2-like"), "myriad-2-like", functional=False)
    convs = 0
    for a, b in zip(x.layers, two.layers):
        assert a.name == b.name
        if a.kind in ("conv", "depthwise", "gemm"):
            convs += 1
            assert b.total_cycles / two.clock_mhz > a.total_cycles / x.clock_mhz, a.name
    assert convs > 0
