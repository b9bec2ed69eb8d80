"""int8 conv against lwc's own float32 conv of the same shape, side by side, one process.

    .venv/bin/python benchmarks/bench_int8.py                      # 256->256, 3x3, 14x14, batch 1
    .venv/bin/python benchmarks/bench_int8.py --channels 128 --size 28 --threads 2 --runs 30
    .venv/bin/python benchmarks/bench_int8.py --accuracy    # digits: lwc int8 vs ORT's quantizer
    .venv/bin/python benchmarks/bench_int8.py --model ../shared/models/mobilenet_v2.onnx

Both convs are compiled by the LLVM backend (the float one through lwc's tuned float GEMM, the
int8 one through backends/llvm/kernels/int8.py: a 3x3 stride-1 conv takes its integer Winograd
F(2x2, 3x3) path), timed alternately after a warm-up, and the int8 output is checked bit-exactly
against the interpreter first. Prints median and minimum latency, throughput in direct-conv
operations (2 * MACs of the plain convolution, whatever algorithm ran), the speed-ups (float /
int8 of the medians and of the minimums; the issue's target is >= 1.5) and the weight bytes (int8
+ float32 scales + int32 bias against float32 weights + bias).

``--accuracy`` instead prints test accuracies on the digits models: float, lwc int8 per
calibration method (interpreter), and onnxruntime's ``quantize_static`` (QDQ, per-channel, int8
activations and weights) with the same method and the same 256 calibration rows, run both with
exact int8 kernels (``session.qdqisint8allowed=1``) and with onnxruntime's default session.

``--model M`` times a whole model instead: float (fold-bn,fuse) against its int8 version
(quantize-int8 calibrated on 4 seeded random inputs: a timing, not an accuracy, figure), both
compiled by the LLVM backend at batch 1, after checking the int8 one bit-exactly against the
interpreter.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import lwc
from lwc.backends.llvm import compile as llvm_compile
from lwc.ir import DType, Graph, TensorType


def graphs(c: int, size: int, k: int, seed: int = 0) -> tuple[Graph, Graph]:
    """(float conv + relu, the same conv as qlinear_conv + relu with int8 activations)."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((c, c, k, k)) * 0.05).astype(np.float32)
    bias = (rng.standard_normal(c) * 0.1).astype(np.float32)
    pads = (k // 2,) * 4
    gf = Graph("conv_f32")
    x = gf.add_input("x", TensorType(DType.F32, (1, c, size, size)))
    n = gf.add_node("conv", [x, gf.add_constant(w, "w"), gf.add_constant(bias, "b")],
                    {"pads": pads, "act": "relu"})
    gf.outputs = [n.output]

    from lwc.passes.compress.calibrate import quantize_weight

    wq, ws = quantize_weight(w)
    xs, ys = np.float32(0.02), np.float32(0.05)
    gq = Graph("conv_i8")
    xq = gq.add_input("x", TensorType(DType.I8, (1, c, size, size)))
    consts = [np.asarray(xs), np.asarray(np.int8(-3)), wq, ws, np.zeros(c, np.int8),
              np.asarray(ys), np.asarray(np.int8(-128)),
              np.rint(bias / (xs * ws)).astype(np.int32)]
    vals = [gq.add_constant(a, f"c{i}") for i, a in enumerate(consts)]
    n = gq.add_node("qlinear_conv", [xq, *vals], {"pads": pads, "act": "relu"})
    gq.outputs = [n.output]
    return gf, gq


def accuracy_table() -> None:
    from pathlib import Path

    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    from lwc.model_io import load_model
    from lwc.pass_manager import PassManager
    from lwc.passes.compress.calibrate import METHODS, calibrate
    from lwc.passes.compress.quantize import quantize_graph
    from lwc.train import Dataset, accuracy

    shared = Path(__file__).resolve().parents[2] / "shared"
    ort_methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}

    class Rows(CalibrationDataReader):
        def __init__(self, x: np.ndarray) -> None:
            self.it = iter([{"input": x[i:i + 1]} for i in range(len(x))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    def ort_acc(path: str, x: np.ndarray, y: np.ndarray, exact: bool) -> float:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if exact:
            so.add_session_config_entry("session.qdqisint8allowed", "1")
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return float((s.run(None, {"input": x})[0].argmax(1) == y).mean())

    print("model          method      float    lwc int8   ORT q_static (exact)  (default session)")
    for model in ("digits_mlp", "digits_lenet5"):
        src = str(shared / "models" / f"{model}.onnx")
        g = load_model(src)
        PassManager("fold-bn,fuse").run(g)
        data = Dataset.load(shared / "data" / "digits.npz").for_graph(g)
        calib = data.x_train[np.random.default_rng(0).permutation(len(data.x_train))[:256]]
        before = accuracy(g, data.x_test, data.y_test)
        for method in METHODS:
            q = g.copy()
            quantize_graph(q, calibrate(g, [calib], method))
            ours = accuracy(q, data.x_test, data.y_test)
            out = f"/tmp/lwc_bench_{model}_{method}.onnx"
            quantize_static(src, out, Rows(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=ort_methods[method])
            ex, de = (ort_acc(out, data.x_test, data.y_test, e) for e in (True, False))
            print(f"{model:14s} {method:10s} {100 * before:6.2f}%  {100 * ours:6.2f}%     "
                  f"{100 * ex:6.2f}%              {100 * de:6.2f}%")


def time_model(path: str, threads: int, runs: int) -> None:
    from lwc.model_io import load_model
    from lwc.pass_manager import PassManager

    gf = load_model(path)
    PassManager("fold-bn,fuse").run(gf)
    gq = gf.copy()
    PassManager("quantize-int8{samples=4}").run(gq)
    name = gf.inputs[0].name
    shape = tuple(1 if isinstance(d, str) else d for d in gf.inputs[0].type.shape)
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    mf, mq = llvm_compile(gf, threads=threads), llvm_compile(gq, threads=threads)
    ref = lwc.interpret(gq, {name: x})[gq.outputs[0].name]
    assert np.array_equal(ref, mq.run({name: x})[gq.outputs[0].name]), "int8 model not bit-exact"
    times: dict[str, list[float]] = {"f32": [], "i8": []}
    for _ in range(2):
        mf.run({name: x})
        mq.run({name: x})
    for _ in range(runs):
        for key, m in (("f32", mf), ("i8", mq)):
            t = time.perf_counter()
            m.run({name: x})
            times[key].append(time.perf_counter() - t)
    tf, tq = statistics.median(times["f32"]), statistics.median(times["i8"])
    print(f"{path}: batch 1, {threads} thread(s), {runs} runs")
    print(f"  float32 {tf * 1e3:8.2f} ms, int8 {tq * 1e3:8.2f} ms, speed-up {tf / tq:.2f}x")


def weight_bytes(g: Graph) -> int:
    return sum(v.data.nbytes for v in g.constants.values() if v.data is not None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--size", type=int, default=14)
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--accuracy", action="store_true",
                    help="print the digits accuracy table instead of timing")
    ap.add_argument("--model", help="time a whole model, float vs int8, instead")
    args = ap.parse_args()
    if args.accuracy:
        accuracy_table()
        return
    if args.model:
        time_model(args.model, args.threads, args.runs)
        return

    gf, gq = graphs(args.channels, args.size, args.kernel)
    rng = np.random.default_rng(1)
    xf = rng.standard_normal((1, args.channels, args.size, args.size)).astype(np.float32)
    xq = rng.integers(-128, 128, xf.shape).astype(np.int8)
    mf, mq = llvm_compile(gf, threads=args.threads), llvm_compile(gq, threads=args.threads)
    ref = lwc.interpret(gq, {"x": xq})[gq.outputs[0].name]
    got = mq.run({"x": xq})[gq.outputs[0].name]
    assert np.array_equal(ref, got), "int8 kernel is not bit-exact with the interpreter"

    times: dict[str, list[float]] = {"f32": [], "i8": []}
    for _ in range(3):
        mf.run({"x": xf})
        mq.run({"x": xq})
    for _ in range(args.runs):
        for key, m, x in (("f32", mf, xf), ("i8", mq, xq)):
            t = time.perf_counter()
            m.run({"x": x})
            times[key].append(time.perf_counter() - t)
    tf, tq = statistics.median(times["f32"]), statistics.median(times["i8"])
    mf_, mq_ = min(times["f32"]), min(times["i8"])
    macs = args.channels ** 2 * args.kernel ** 2 * args.size ** 2
    print(f"conv {args.channels}->{args.channels}, {args.kernel}x{args.kernel}, "
          f"{args.size}x{args.size}, batch 1, {args.threads} thread(s), {args.runs} runs")
    for label, med, best in (("float32", tf, mf_), ("int8   ", tq, mq_)):
        print(f"  {label}: median {med * 1e3:8.3f} ms, min {best * 1e3:8.3f} ms  "
              f"({2 * macs / med / 1e9:6.1f} direct-conv GOP/s at the median)")
    print(f"  speed-up float32/int8: {tf / tq:.2f}x of medians, {mf_ / mq_:.2f}x of minimums  "
          "(target >= 1.5x)")
    bf, bq = weight_bytes(gf), weight_bytes(gq)
    print(f"  weights: float32 {bf} B, int8 {bq} B ({bf / bq:.2f}x smaller)")


if __name__ == "__main__":
    main()
