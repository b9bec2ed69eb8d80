"""Design-space sweeps: time one model on many accelerator variants in parallel; the Pareto set.

A sweep point overrides a base description (a preset such as ``edge-16x16``) with an array shape, a
dataflow and a buffer size, then runs the timing-only simulator (``simulate(...,
functional=False)``) on the model quantised once up front, so every point sees the same int8
model. Points run in a process pool (``local``) or as Ray tasks (``ray``: a local instance, or the
cluster named by ``RAY_ADDRESS``); both return the same rows in the same order, since each point is
a pure function of (model, config). ``write_outputs`` writes the CSV, JSON and (``sweep_plots``)
the PNG plots.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lwc.backends.accel.config import DATAFLOWS, AccelConfig, AccelConfigError, parse_size

EXECUTORS = ("local", "ray")
OBJECTIVES = ("cycles", "energy_pj", "pes", "buffer_bytes")
"""Minimised by the Pareto set: latency, energy, and the two area drivers (PE count, SRAM)."""
CSV_FIELDS = ("config", "rows", "cols", "pes", "dataflow", "buffer_bytes", "cycles",
              "stall_cycles", "seconds", "energy_pj", "utilization", "mapping_efficiency",
              "dram_bytes", "achieved_tops", "peak_tops", "pareto")


@dataclass(frozen=True)
class SweepPoint:
    rows: int
    cols: int
    dataflow: str
    buffer_bytes: int

    @property
    def name(self) -> str:
        base = f"{self.rows}x{self.cols}-{self.dataflow}"
        return f"{base}-{_size_label(self.buffer_bytes)}" if self.buffer_bytes else base


def _size_label(n: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B"


def parse_arrays(text: str) -> list[tuple[int, int]]:
    """``"8x8,16x16,32x8"`` -> [(8, 8), (16, 16), (32, 8)] (rows x cols)."""
    out = []
    for item in _items(text, "--array"):
        parts = item.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
            raise AccelConfigError(f"--array: {item!r} is not ROWSxCOLS (e.g. 16x16)")
        out.append((int(parts[0]), int(parts[1])))
    return out


def parse_dataflows(text: str) -> list[str]:
    out = _items(text, "--dataflow")
    bad = [d for d in out if d not in DATAFLOWS]
    if bad:
        raise AccelConfigError(f"--dataflow: unknown {', '.join(bad)}; use {', '.join(DATAFLOWS)}")
    return out


def parse_buffers(text: str) -> list[int]:
    return [parse_size(item, "--buffer") for item in _items(text, "--buffer")]


def _items(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise AccelConfigError(f"{flag}: empty list")
    if len(set(items)) != len(items):
        raise AccelConfigError(f"{flag}: repeated entries in {text!r}")
    return items


def make_points(arrays: Sequence[tuple[int, int]], dataflows: Sequence[str],
                buffers: Sequence[int | None]) -> list[SweepPoint]:
    """The cross product in a fixed order (buffer, dataflow, array); ``None`` keeps the base's
    buffer size (reported as its activation buffer)."""
    return [SweepPoint(r, c, df, b or 0) for b in buffers for df in dataflows for r, c in arrays]


def point_config(base: AccelConfig, pt: SweepPoint) -> AccelConfig:
    """``base`` with the point's array and dataflow; a buffer size sets the activation and weight
    buffers to it and the accumulators to half of it (SCALE-Sim's ofmap/ifmap ratio)."""
    if base.is_vpu:
        raise AccelConfigError(f"{base.name}: sweeps vary a systolic array; the base is a VPU")
    changes: dict[str, Any] = {"name": pt.name, "array.rows": pt.rows, "array.cols": pt.cols,
                               "array.dataflow": pt.dataflow}
    if pt.buffer_bytes:
        changes.update({"buffers.activations": pt.buffer_bytes, "buffers.weights": pt.buffer_bytes,
                        "buffers.accumulators": max(256, pt.buffer_bytes // 2)})
    return base.replace(**changes)


def evaluate(qmodel: Any, acc: AccelConfig) -> dict[str, Any]:
    """One sweep row: totals plus the per-layer numbers the heat map and roofline need."""
    from lwc.backends.accel import simulate

    rep = simulate(qmodel, acc, functional=False)
    tot = rep.total()
    layers = [{"name": lyr.name, "kind": lyr.kind, "macs": lyr.macs,
               "total_cycles": lyr.total_cycles, "utilization": lyr.utilization,
               "arith_intensity": lyr.arith_intensity}
              for lyr in rep.layers]
    return {"config": acc.name, "rows": acc.array.rows, "cols": acc.array.cols,
            "pes": acc.array.rows * acc.array.cols, "dataflow": acc.array.dataflow,
            "buffer_bytes": acc.buffers.activations, "cycles": tot["total_cycles"],
            "stall_cycles": tot["stall_cycles"], "seconds": tot["seconds"],
            "energy_pj": tot["energy_pj"], "utilization": tot["utilization"],
            "mapping_efficiency": tot["mapping_efficiency"],
            "dram_bytes": tot["dram_reads"] + tot["dram_writes"],
            "achieved_tops": tot["achieved_tops"], "peak_tops": tot["peak_tops"],
            "clock_mhz": acc.clock_mhz, "dram_bandwidth": acc.dram.bandwidth, "layers": layers}


_WORKER_MODEL: Any = None


def _init_worker(qmodel: Any) -> None:
    global _WORKER_MODEL
    _WORKER_MODEL = qmodel


def _run_in_worker(acc: AccelConfig) -> dict[str, Any]:
    return evaluate(_WORKER_MODEL, acc)


def run_sweep(qmodel: Any, configs: Sequence[AccelConfig], jobs: int = 1,
              executor: str = "local",
              progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate every config; rows come back in ``configs`` order whatever the executor."""
    if executor not in EXECUTORS:
        raise AccelConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got "
                               f"{executor!r}")
    if jobs < 1:
        raise AccelConfigError(f"--jobs must be >= 1, got {jobs}")
    results: list[dict[str, Any] | None] = [None] * len(configs)

    def done(i: int, row: dict[str, Any]) -> None:
        results[i] = row
        if progress:
            progress(row)

    if executor == "ray":
        _run_ray(qmodel, configs, jobs, done)
    elif jobs == 1 or len(configs) == 1:
        for i, acc in enumerate(configs):
            done(i, evaluate(qmodel, acc))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=min(jobs, len(configs)), initializer=_init_worker,
                                 initargs=(qmodel,)) as pool:
            futs = {pool.submit(_run_in_worker, acc): i for i, acc in enumerate(configs)}
            for fut in as_completed(futs):
                done(futs[fut], fut.result())
    return [r for r in results if r is not None]


def _run_ray(qmodel: Any, configs: Sequence[AccelConfig], jobs: int,
             done: Callable[[int, dict[str, Any]], None]) -> None:
    try:
        import ray
    except ImportError:
        raise AccelConfigError("--executor ray needs Ray: pip install 'lwc[ray]'") from None
    started = False
    if not ray.is_initialized():
        # RAY_ADDRESS (if set) joins a cluster; otherwise a local instance with `jobs` CPUs.
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        started = True
    try:
        remote = ray.remote(evaluate)
        model_ref = ray.put(qmodel)
        pending = {remote.remote(model_ref, acc): i for i, acc in enumerate(configs)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()


def pareto(rows: Sequence[dict[str, Any]], objectives: Sequence[str] = OBJECTIVES) -> list[int]:
    """Indices of rows no other row dominates (<= in every objective, < in one)."""
    keep = []
    for i, a in enumerate(rows):
        dominated = any(all(b[k] <= a[k] for k in objectives) and
                        any(b[k] < a[k] for k in objectives)
                        for j, b in enumerate(rows) if j != i)
        if not dominated:
            keep.append(i)
    return keep


def summary_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without per-layer data, with the ``pareto`` flag: the CSV / table view."""
    front = set(pareto(rows))
    return [{**{k: r[k] for k in CSV_FIELDS if k != "pareto"}, "pareto": i in front}
            for i, r in enumerate(rows)]


def write_outputs(rows: Sequence[dict[str, Any]], outdir: str | Path,
                  meta: dict[str, Any]) -> dict[str, Path]:
    """sweep.csv (one row per config), sweep.json (with per-layer rows) and the plots."""
    from lwc.fileio import atomic_write_bytes

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    summ = summary_rows(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(summ)
    paths = {"csv": out / "sweep.csv", "json": out / "sweep.json"}
    atomic_write_bytes(paths["csv"], buf.getvalue().encode())
    doc = {**meta, "objectives": list(OBJECTIVES),
           "configs": [{**r, "pareto": s["pareto"]} for r, s in zip(rows, summ)]}
    atomic_write_bytes(paths["json"], (json.dumps(doc, indent=1) + "\n").encode())
    from lwc.backends.accel.sweep_plots import write_plots

    paths.update(write_plots(rows, out, title=str(meta.get("model", ""))))
    return paths
