"""Regenerate golden.csv: SCALE-Sim 3.0.0's per-layer COMPUTE_REPORT 'Total Cycles' for the conv and
GEMM layers of mobilenet_v2 and resnet18 on 8x8 and 32x32 arrays with ws, os and is.

    .venv/bin/python tests/data/scalesim/regen.py run [--jobs 2] [--scalesim-python PY] [--work DIR]
    .venv/bin/python tests/data/scalesim/regen.py collect [--work DIR]

``run`` builds the topologies from /work/shared/models/*.onnx with lwc's importer
(``graph_to_topology``: padding folded in as H = (OH-1)*S + R), keeps each distinct layer shape once
(a depthwise conv becomes one one-channel layer, which is exactly what SCALE-Sim's ``DP`` expansion
runs per channel), and runs every (layer, array, dataflow) as its own SCALE-Sim process through
``backends/accel/scalesim_runner.py --lean`` in the scalesim venv (default
/tmp/scalesim-venv/bin/python; create it with ``python3 -m venv /tmp/scalesim-venv &&
/tmp/scalesim-venv/bin/pip install scalesim "numpy<2.4"``). Jobs run cheapest first and each
result is appended to WORK/results.jsonl as it finishes, so a run can be stopped and resumed.
``collect`` writes golden.csv from the results. Configs use InterfaceBandwidth CALC and 8192 kB
SRAMs (SCALE-Sim's compute cycles do not depend on SRAM size in CALC mode; large SRAMs make it
~1.4x faster).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MODELS = REPO.parent / "shared" / "models"
RUNNER = REPO / "backends" / "accel" / "scalesim_runner.py"
ARRAYS = (8, 32)
DATAFLOWS = ("ws", "os", "is")
SRAM_KB = 8192
FIELDS = ["model", "kind", "layer", "ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels",
          "num_filters", "stride", "array", "dataflow", "total_cycles", "scalesim_cpu_s"]


def unique_layers() -> list[tuple[str, str, object]]:
    """(model, kind, TopoLayer) for every distinct conv shape and GEMM of the two models."""
    from lwc.backends.accel.scalesim_compat import TopoLayer, graph_to_topology
    from lwc.model_io import load_model

    out = []
    for model in ("mobilenet_v2", "resnet18"):
        topo = graph_to_topology(load_model(str(MODELS / f"{model}.onnx")))
        seen = set()
        for lyr in topo.convs:
            if "DP" in lyr.name:  # one channel of a depthwise conv, as SCALE-Sim expands it
                lyr = TopoLayer(lyr.name.replace("_DP", "_dw1ch"), lyr.ifmap_h, lyr.ifmap_w,
                                lyr.filt_h, lyr.filt_w, 1, lyr.num_filters, lyr.stride)
            key = (lyr.ifmap_h, lyr.ifmap_w, lyr.filt_h, lyr.filt_w, lyr.channels,
                   lyr.num_filters, lyr.stride)
            if key not in seen:
                seen.add(key)
                out.append((model, "conv", lyr))
        for name, m, n, k in topo.gemms:
            out.append((model, "gemm", TopoLayer(name, m, k, 1, k, 1, n, 1)))
    return out


def run(args: argparse.Namespace) -> int:
    from lwc.backends.accel.scalesim_compat import (ScaleSimConfig, compat_layer,
                                                    write_gemm_topology, write_topology)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = work / "results.jsonl"
    done = set()
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            done.add((r["model"], r["layer"], r["array"], r["dataflow"]))
    jobs = []
    for model, kind, lyr in unique_layers():
        for arr in ARRAYS:
            for df in DATAFLOWS:
                if (model, lyr.name, arr, df) in done:
                    continue
                est = compat_layer(lyr.name, *lyr.mnk, arr, arr, df).compute_cycles
                jobs.append((est, model, kind, lyr, arr, df))
    jobs.sort(key=lambda j: j[0])
    print(f"{len(jobs)} jobs, {sum(j[0] for j in jobs):,} simulated cycles", flush=True)

    def one(job):
        est, model, kind, lyr, arr, df = job
        tag = f"{model}.{lyr.name}.{arr}.{df}"
        d = work / tag
        d.mkdir(exist_ok=True)
        cfg = ScaleSimConfig(f"r{arr}{df}", arr, arr, df, SRAM_KB, SRAM_KB, SRAM_KB, 10)
        (d / "run.cfg").write_text(cfg.cfg_text())
        topo = d / "topo.csv"
        if kind == "gemm":
            write_gemm_topology([(lyr.name, lyr.mnk[0], lyr.num_filters, lyr.filt_w)], topo)
        else:
            write_topology([lyr], topo)
        cmd = [args.scalesim_python, str(RUNNER), str(d / "run.cfg"), str(topo), str(d / "out"),
               "--lean"] + (["--gemm"] if kind == "gemm" else [])
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(f"FAILED {tag}: {res.stderr[-500:]}", flush=True)
            return
        row = json.loads(res.stdout.strip().splitlines()[-1])["layers"][0]
        rec = {"model": model, "kind": kind, "layer": lyr.name, "ifmap_h": lyr.ifmap_h,
               "ifmap_w": lyr.ifmap_w, "filt_h": lyr.filt_h, "filt_w": lyr.filt_w,
               "channels": lyr.channels, "num_filters": lyr.num_filters, "stride": lyr.stride,
               "array": arr, "dataflow": df, "total_cycles": row["total_cycles"],
               "scalesim_cpu_s": round(row["cpu_s"], 2)}
        with open(results, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"{tag}: {row['total_cycles']} cycles (est {est}) {time.time() - t0:.1f}s",
              flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, jobs))
    return collect(args)


def collect(args: argparse.Namespace) -> int:
    rows = [json.loads(line) for line in (Path(args.work) / "results.jsonl").read_text()
            .splitlines()]
    rows.sort(key=lambda r: (r["model"], r["array"], r["dataflow"], r["kind"], r["layer"]))
    with open(HERE / "golden.csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {HERE / 'golden.csv'}: {len(rows)} rows")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("action", choices=("run", "collect"))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--scalesim-python", default="/tmp/scalesim-venv/bin/python")
    p.add_argument("--work", default="/tmp/scalesim-golden")
    args = p.parse_args(argv)
    return run(args) if args.action == "run" else collect(args)


if __name__ == "__main__":
    sys.exit(main())
