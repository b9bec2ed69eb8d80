"""Design-space sweeps: config derivation, Pareto set, executors (serial, process pool, Ray) and the
``lwc sim sweep`` outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwc.backends.accel import load_accel, quantize_model, simulate
from lwc.backends.accel.config import AccelConfigError
from lwc.backends.accel.sweep import (CSV_FIELDS, make_points, parse_arrays, parse_buffers,
                                      parse_dataflows, pareto, point_config, run_sweep,
                                      summary_rows)
from lwc.model_io import load_model

MODEL = Path(__file__).resolve().parents[3].parent / "shared" / "models" / "digits_lenet5.onnx"


@pytest.fixture(scope="module")
def qmodel() -> Any:
    return quantize_model(load_model(str(MODEL)))


@pytest.fixture(scope="module")
def configs() -> Any:
    base = load_accel("edge-16x16")
    pts = make_points(parse_arrays("4x4,8x16"), parse_dataflows("ws,os"), parse_buffers("4KiB"))
    return [point_config(base, p) for p in pts]


def test_parsing_and_errors() -> None:
    assert parse_arrays("8x8, 16x32") == [(8, 8), (16, 32)]
    assert parse_buffers("64KiB,1MiB,512") == [65536, 1 << 20, 512]
    for bad, fn in (("8by8", parse_arrays), ("0x8", parse_arrays), ("ws,xs", parse_dataflows),
                    ("ws,ws", parse_dataflows), ("", parse_arrays), ("lots", parse_buffers)):
        with pytest.raises(AccelConfigError):
            fn(bad)


def test_point_config_overrides_only_the_swept_fields() -> None:
    base = load_accel("edge-16x16")
    (pt,) = make_points([(32, 8)], ["is"], [1 << 20])
    acc = point_config(base, pt)
    assert (acc.array.rows, acc.array.cols, acc.array.dataflow) == (32, 8, "is")
    assert (acc.buffers.activations, acc.buffers.weights, acc.buffers.accumulators) == \
        (1 << 20, 1 << 20, 1 << 19)
    assert (acc.clock_mhz, acc.dram, acc.energy) == (base.clock_mhz, base.dram, base.energy)
    assert acc.name == "32x8-is-1MiB"
    keep = point_config(base, make_points([(4, 4)], ["ws"], [None])[0])
    assert keep.buffers == base.buffers and keep.name == "4x4-ws"
    with pytest.raises(AccelConfigError, match="VPU"):
        point_config(load_accel("myriad-x-like"), pt)


@given(st.lists(st.tuples(*[st.integers(0, 5)] * 4), min_size=1, max_size=25))
def test_pareto_is_exactly_the_non_dominated_set(pts: list[tuple[int, int, int, int]]) -> None:
    rows = [dict(zip(("cycles", "energy_pj", "pes", "buffer_bytes"), p)) for p in pts]
    a = np.array(pts)
    le = (a[:, None, :] <= a[None, :, :]).all(-1)  # le[j, i]: j <= i everywhere
    lt = (a[:, None, :] < a[None, :, :]).any(-1)
    dominated = (le & lt).any(0)
    assert pareto(rows) == [i for i in range(len(pts)) if not dominated[i]]


def test_pool_and_serial_agree_with_direct_simulation(qmodel: Any, configs: Any) -> None:
    serial = run_sweep(qmodel, configs, jobs=1)
    pool = run_sweep(qmodel, configs, jobs=2)
    assert pool == serial
    assert [r["config"] for r in serial] == [c.name for c in configs]
    for row, acc in zip(serial, configs):
        tot = simulate(qmodel, acc, functional=False).total()
        assert (row["cycles"], row["energy_pj"]) == (tot["total_cycles"], tot["energy_pj"])
    # a bigger array is never slower on this model's GEMMs with the same dataflow and buffers
    by = {r["config"]: r for r in serial}
    assert by["8x16-ws-4KiB"]["cycles"] <= by["4x4-ws-4KiB"]["cycles"]


def test_ray_executor_gives_the_local_table(qmodel: Any, configs: Any) -> None:
    pytest.importorskip("ray")
    seen: list[str] = []
    ray_rows = run_sweep(qmodel, configs, jobs=2, executor="ray",
                         progress=lambda r: seen.append(r["config"]))
    assert summary_rows(ray_rows) == summary_rows(run_sweep(qmodel, configs, jobs=1))
    assert sorted(seen) == sorted(c.name for c in configs)


def test_cli_writes_csv_json_plots_and_pareto(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from lwc.cli import main

    out = tmp_path / "sweep"
    assert main(["sim", "sweep", str(MODEL), "--array", "4x4,8x8", "--dataflow", "ws,is",
                 "--buffer", "8KiB", "--jobs", "2", "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["config"] for r in rows] == [c["config"] for c in doc["configs"]]
    assert len(rows) == 4 and list(rows[0]) == list(CSV_FIELDS)
    assert [r["config"] for r in rows if r["pareto"] == "True"] == doc["pareto"]
    full = json.loads((out / "sweep.json").read_text())
    assert len(full["configs"]) == 4 and full["configs"][0]["layers"]
    for name in ("cycles_energy", "utilization_heatmap", "roofline"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_arguments_are_lwc_errors(tmp_path: Path) -> None:
    from lwc.cli.sim_sweep import main

    with pytest.raises(AccelConfigError, match="--array"):
        main([str(MODEL), "--array", "8", "-o", str(tmp_path)])
    with pytest.raises(AccelConfigError, match="--jobs"):
        main([str(MODEL), "--array", "8x8", "--dataflow", "ws", "--jobs", "0", "-o",
              str(tmp_path)])
