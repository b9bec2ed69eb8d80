"""``lwc bench MODEL --backend llvm|interp|onnxruntime``: latency (median, min, max of N runs)."""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lwc.cli.common import add_json_argument, add_model_argument, console, load, print_json
from lwc.errors import LwcError

BACKENDS = ("llvm", "interp", "onnxruntime")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="measure a model's latency on a backend",
        description="Time MODEL on seeded random inputs: warm up, then report the median, min and "
        "max latency of --runs runs.")
    add_model_argument(p)
    p.add_argument("--backend", choices=BACKENDS, default="llvm", help="default: llvm")
    p.add_argument("--threads", type=int, default=None,
                   help="threads (llvm and onnxruntime; default: all cores)")
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (default 1)")
    p.add_argument("--batch", type=int, default=1, help="size bound to symbolic dims (default 1)")
    add_json_argument(p)
    p.set_defaults(func=run)


def time_runs(fn: Callable[[], Any], runs: int = 20, warmup: float = 1.0) -> dict[str, float]:
    """Latency statistics in milliseconds, after ``warmup`` seconds of untimed runs."""
    if runs < 1:
        raise LwcError(f"--runs must be at least 1, got {runs}")
    t_end = time.perf_counter() + warmup
    fn()
    while time.perf_counter() < t_end:
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(ts)), "min_ms": float(min(ts)), "max_ms": float(max(ts)),
            "runs": runs}


def runner(graph: Any, model: str, backend: str, threads: int | None,
           inputs: dict[str, np.ndarray], bindings: dict[str, int]) -> Callable[[], Any]:
    """A zero-argument callable that runs the model once on ``inputs``."""
    if backend == "llvm":
        from lwc.backends.llvm import compile as llvm_compile

        m = llvm_compile(graph, threads=threads, bindings=bindings)
        return lambda: m.run(inputs)
    if backend == "interp":
        from lwc.interp import interpret

        return lambda: interpret(graph, inputs)
    try:
        import onnxruntime as ort
    except ImportError:
        raise LwcError("onnxruntime is not installed") from None
    path = model
    if not model.lower().endswith(".onnx"):
        import lwc

        path = str(Path(tempfile.mkdtemp(prefix="lwc-bench-")) / "model.onnx")
        lwc.save(graph, path)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    feed = {n: inputs[n] for n in names}
    return lambda: sess.run(None, feed)


def run(args: argparse.Namespace) -> int:
    from lwc.interp import random_inputs

    graph = load(args.model)
    inputs = random_inputs(graph, seed=0, batch=args.batch)
    bindings = {s: args.batch for v in graph.inputs for s in v.type.symbols}
    fn = runner(graph, args.model, args.backend, args.threads, inputs, bindings)
    stats = time_runs(fn, args.runs, args.warmup)
    out = {"model": args.model, "backend": args.backend, "threads": args.threads, **stats}
    if args.json:
        print_json(out)
    else:
        console().print(f"{args.model} on {args.backend} (threads={args.threads or 'all'}): "
                        f"median {stats['median_ms']:.3f} ms, min {stats['min_ms']:.3f} ms, "
                        f"max {stats['max_ms']:.3f} ms over {stats['runs']} runs")
    return 0
