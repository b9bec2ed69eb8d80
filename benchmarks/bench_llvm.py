"""lwc's LLVM backend against onnxruntime (ORT_ENABLE_ALL), side by side, batch 1.

    .venv/bin/python benchmarks/bench_llvm.py                  # the three shared models, 1 and 2 threads
    .venv/bin/python benchmarks/bench_llvm.py --tvm --tvm-python /path/to/tvm-venv/bin/python
    .venv/bin/python benchmarks/bench_llvm.py --models resnet18 --threads 2 --runs 50 --json out.json

Each model is timed after a warm-up, for every thread count, with lwc and onnxruntime runs
interleaved in short blocks (see ``interleaved``) so that load from other processes on a shared
machine hits both alike. The table prints median latency, the ratio lwc/ORT (below 1 means lwc is faster), and
the GFLOP/s lwc reaches (2 x MACs / median) against the machine's estimated FP32 peak.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "models"
MODELS = ("mobilenet_v2", "resnet18", "squeezenet1_1")


def peak_gflops_per_core() -> float:
    """FP32 peak per core: 2 FMA pipes x lanes x 2 flops x clock (max MHz from /proc/cpuinfo)."""
    from lwc.backends.llvm.target import host_target

    mhz = 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                mhz = max(mhz, float(line.split(":")[1]))
    except OSError:
        pass
    return 2 * host_target().vector_width * 2 * mhz / 1e3


def load_model(name: str) -> tuple[object, str, dict[str, np.ndarray]]:
    import lwc
    from lwc.frontend.onnx.importer import import_onnx

    path = SHARED / f"{name}.onnx"
    if path.exists():
        g = import_onnx(str(path))
        io = np.load(SHARED / f"{name}.io.npz")
        return g, str(path), {g.inputs[0].name: io[io.files[0]]}
    import lwc.zoo as zoo

    g = zoo.build(name.replace("1_1", ""))
    return g, f"zoo:{name}", lwc.random_inputs(g, seed=0)


def tvm_time(path: str, inputs: dict[str, np.ndarray], threads: int, runs: int, warmup: float,
             python: str) -> dict[str, float] | None:
    """TVM 0.27 untuned, timed by ``tvm_time.py`` under ``python`` (an interpreter with TVM)."""
    import subprocess
    import tempfile

    from lwc.backends.llvm.target import host_target

    if not path.endswith(".onnx"):
        return None
    with tempfile.TemporaryDirectory() as d:
        npz = Path(d) / "inputs.npz"
        np.savez(npz, **inputs)
        cmd = [python, str(Path(__file__).with_name("tvm_time.py")), path, str(npz),
               "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup),
               "--mcpu", host_target().cpu]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        print(f"TVM failed on {path}: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def interleaved(fns: dict[str, Callable[[], object]], runs: int, warmup: float,
                block: int = 4) -> dict[str, dict[str, float]]:
    """Warm each callable up, then time them in alternating blocks of ``block`` runs until each
    has ``runs`` timed runs. The first run of every block is untimed: another runtime's pool
    threads may still be spinning from the previous block (onnxruntime's spin for a while after
    a run) and would otherwise always slow down whoever runs next."""
    for fn in fns.values():
        t_end = time.perf_counter() + warmup
        fn()
        while time.perf_counter() < t_end:
            fn()
    ts: dict[str, list[float]] = {k: [] for k in fns}
    while min(len(v) for v in ts.values()) < runs:
        for k, fn in fns.items():
            fn()
            for _ in range(min(block, runs - len(ts[k]))):
                t0 = time.perf_counter()
                fn()
                ts[k].append((time.perf_counter() - t0) * 1e3)
    return {k: {"median_ms": float(np.median(v)), "min_ms": float(min(v)),
                "max_ms": float(max(v)), "runs": len(v)} for k, v in ts.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--tvm", action="store_true", help="also time TVM 0.27 untuned")
    ap.add_argument("--tvm-python", default=sys.executable,
                    help="interpreter that has TVM installed (default: this one)")
    ap.add_argument("--json", metavar="OUT", help="also write the rows as JSON")
    args = ap.parse_args(argv)

    from lwc.analysis import total_macs
    from lwc.backends.llvm import compile as llvm_compile
    from lwc.cli.bench import runner

    peak = peak_gflops_per_core()
    rows = []
    print(f"{'model':<14}{'thr':>4}{'lwc ms':>10}{'ORT ms':>10}{'lwc/ORT':>9}"
          f"{'TVM ms':>10}{'lwc GFLOP/s':>13}{'% peak':>8}{'compile s':>11}")
    for name in args.models:
        g, path, inputs = load_model(name)
        flops = 2 * total_macs(g)
        model = llvm_compile(g)
        for t in args.threads:
            model.set_num_threads(t)
            both = interleaved({"lwc": lambda: model.run(inputs),
                                "ort": runner(g, path, "onnxruntime", t, inputs, {})},
                               args.runs, args.warmup)
            lw, ort = both["lwc"], both["ort"]
            tv = None
            if args.tvm:
                tv = tvm_time(path, inputs, t, max(5, args.runs // 3), args.warmup,
                              args.tvm_python)
            gfs = flops / lw["median_ms"] / 1e6
            row = {"model": name, "threads": t, "lwc": lw, "onnxruntime": ort, "tvm": tv,
                   "ratio_lwc_over_ort": lw["median_ms"] / ort["median_ms"], "gflops": gfs,
                   "peak_gflops": peak * t, "compile_seconds": model.compile_seconds,
                   "arena_bytes": model.arena_size}
            rows.append(row)
            tvs = f"{tv['median_ms']:10.2f}" if tv else f"{'-':>10}"
            print(f"{name:<14}{t:>4}{lw['median_ms']:10.2f}{ort['median_ms']:10.2f}"
                  f"{row['ratio_lwc_over_ort']:9.2f}{tvs}{gfs:13.1f}"
                  f"{100 * gfs / (peak * t) if peak else 0:7.0f}%{model.compile_seconds:11.2f}",
                  flush=True)
    print(f"peak estimate: {peak:.0f} GFLOP/s per core (FMA x2, {peak and 'from cpu MHz'})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
