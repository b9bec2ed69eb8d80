"""Time one ONNX model with TVM 0.27 untuned (Relax ONNX frontend + ``tvm.compile`` for llvm).

Standalone so it can run under another interpreter that has TVM installed:
    python benchmarks/tvm_time.py MODEL.onnx INPUTS.npz --threads 1 --runs 10
prints one JSON object: median_ms, min_ms, max_ms, runs, build_seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs", help=".npz with the input arrays (first array = first input)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--mcpu", default=None)
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    model = onnx.load(args.model)
    data = np.load(args.inputs)
    names = [i.name for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}]
    arrays = [data[k] for k in data.files][: len(names)]
    t0 = time.perf_counter()
    mod = from_onnx(model, shape_dict={n: a.shape for n, a in zip(names, arrays)})
    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = relax.transform.LegalizeOps()(mod)
    tgt = {"kind": "llvm", "num-cores": args.threads}
    if args.mcpu:
        tgt["mcpu"] = args.mcpu
    ex = tvm.compile(mod, tvm.target.Target(tgt))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    build = time.perf_counter() - t0
    dev_args = [tvm.runtime.tensor(a) for a in arrays]
    end = time.perf_counter() + args.warmup
    vm["main"](*dev_args)
    while time.perf_counter() < end:
        vm["main"](*dev_args)
    ts = []
    for _ in range(args.runs):
        t = time.perf_counter()
        vm["main"](*dev_args)
        ts.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"median_ms": float(np.median(ts)), "min_ms": min(ts), "max_ms": max(ts),
                      "runs": args.runs, "build_seconds": build}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
