"""Per-kernel time of a model compiled by the LLVM backend: which calls dominate the latency.

    .venv/bin/python benchmarks/profile_llvm.py resnet18 --threads 1 --top 15

Each kernel call of the compiled program is timed on its own (through the runtime's
``lwc_parallel_for`` when the driver would split it), on the buffers a real run leaves behind,
and the table lists the slowest calls with their node, op, shape and GFLOP/s.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="shared model name (mobilenet_v2, resnet18, ...) or zoo name")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by the calling thread's CPU time (with --threads 1: ignores the "
                    "time other processes on a busy machine take from it)")
    args = ap.parse_args(argv)

    from bench_llvm import load_model

    from lwc.backends.llvm import compile as llvm_compile
    from lwc.backends.llvm.lower import PARALLEL_MIN_WORK
    from lwc.backends.llvm.runtime import load_runtime

    g, _, inputs = load_model(args.model)
    m = llvm_compile(g, threads=args.threads)
    m.run(inputs)
    prog, target = m.program, m.artifact.target
    ins = [np.ascontiguousarray(inputs[v.name]) for v in prog.graph.inputs]
    outs = [np.empty(v.type.concrete_shape(), v.type.dtype.numpy) for v in prog.graph.outputs]
    bases = {"ws": m.workspace.ctypes.data, "w": m.weights.ctypes.data}
    rt = load_runtime()
    kfn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
    rows, keep = [], []
    total = 0.0
    for call, locs in zip(prog.calls, prog.locs):
        ptrs = []
        for loc in locs:
            if loc.base == "in":
                base = ins[loc.index].ctypes.data
            elif loc.base == "out":
                base = outs[loc.index].ctypes.data
            else:
                base = bases[loc.base]
            ptrs.append(base + loc.offset)
        arr = (ctypes.c_void_p * max(1, len(ptrs)))(*ptrs)
        keep.append(arr)
        addr = m.engine.engine.get_function_address(call.kernel.name(target.key))
        par = call.items > 1 and call.work >= PARALLEL_MIN_WORK and rt is not None
        if par:
            def fn(addr=addr, arr=arr, n=call.items) -> None:
                rt.lwc_parallel_for(ctypes.c_void_p(addr), ctypes.c_void_p(ctypes.addressof(arr)),
                                    ctypes.c_int64(n))
        else:
            f = kfn(addr)

            def fn(f=f, arr=arr, n=call.items) -> None:
                f(ctypes.addressof(arr), 0, n)
        fn()
        ts = []
        clock = time.thread_time if args.cpu_time else time.perf_counter
        for _ in range(args.reps):
            t0 = clock()
            fn()
            ts.append(clock() - t0)
        ms = float(np.median(ts)) * 1e3
        total += ms
        node = call.node
        spec = call.kernel.spec
        what = type(spec).__name__
        rows.append((ms, node.label if node else "-", node.op if node else "-", what,
                     call.items, par, call.work, str(node.output.type) if node else ""))
    from lwc.analysis import total_macs

    print(f"{args.model}: {len(rows)} calls, sum of medians {total:.2f} ms, "
          f"{2 * total_macs(g) / total / 1e6:.1f} GFLOP/s overall, threads {args.threads}")
    print(f"{'ms':>8} {'%':>5}  {'node':<28}{'kernel':<16}{'items':>7} par {'GFLOP/s':>8}  out")
    for ms, label, op, what, items, par, work, out in sorted(rows, reverse=True)[: args.top]:
        # a GEMM call's work is its multiply-adds
        gf = f"{2 * work / ms / 1e6:8.1f}" if what == "GemmSpec" else f"{'':8}"
        print(f"{ms:8.3f} {100 * ms / total:5.1f}  {label[:27]:<28}{what[:15]:<16}{items:7d} "
              f"{'y' if par else 'n':>3} {gf}  {out[:40]}")
    by_kind: dict[str, float] = {}
    for ms, _, _, what, *_ in rows:
        by_kind[what] = by_kind.get(what, 0.0) + ms
    print("by kernel kind: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                          sorted(by_kind.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
