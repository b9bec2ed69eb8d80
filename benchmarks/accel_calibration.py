"""Accelerator int8 quantisation error per activation calibration method (max, percentile,
entropy) on the shared models: relative L2 error of the dequantised int8 output
(``qmodel.run_reference``) vs the float interpreter.

Calibration on ``--calib`` seeded random inputs (seeds 1..N), evaluation on a different one
(seed 1000); digits_lenet5 uses real rows instead (x_train[:N] to calibrate, x_test[0] to
evaluate). Run: ``.venv/bin/python benchmarks/accel_calibration.py [--calib 8] [MODEL ...]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lwc.backends.accel import quantize_model
from lwc.backends.accel.qmodel import run_reference
from lwc.interp import interpret, random_inputs
from lwc.model_io import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELS = ("mobilenet_v2", "resnet18", "squeezenet1_1", "digits_lenet5")
METHODS = ("max", "percentile", "entropy")
EVAL_SEED = 1000


def calib_and_eval(name: str, graph, n: int) -> tuple[list[dict], dict]:
    """(calibration feeds, evaluation feed) as described in the module docstring."""
    inp = graph.inputs[0].name
    if name == "digits_lenet5":
        with np.load(SHARED / "data" / "digits.npz", allow_pickle=False) as z:
            xtr, xte = z["x_train"], z["x_test"]
        shape = [1 if isinstance(d, str) else int(d) for d in graph.inputs[0].type.shape]
        row = lambda x: {inp: x.astype(np.float32).reshape(shape)}  # noqa: E731
        return [row(xtr[i]) for i in range(n)], row(xte[0])
    return ([random_inputs(graph, seed=s) for s in range(1, n + 1)],
            random_inputs(graph, seed=EVAL_SEED))


def quant_error(graph, calib: list[dict], feed: dict, method: str) -> float:
    """Relative L2 error of the int8 model's first output vs the float interpreter on ``feed``."""
    qm = quantize_model(graph, calib, method=method)
    x = next(iter(feed.values()))
    fl = next(iter(interpret(graph, feed).values()))
    q = run_reference(qm, qm.quantize_input(x))[qm.outputs[0]]
    deq = qm.dequantize(qm.outputs[0], q).reshape(fl.shape)
    return float(np.linalg.norm(deq - fl) / np.linalg.norm(fl))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--calib", type=int, default=8, help="calibration inputs (default 8)")
    args = ap.parse_args()
    print("| model | " + " | ".join(METHODS) + " |")
    print("|---|" + "---|" * len(METHODS))
    for name in args.models:
        g = load_model(str(SHARED / "models" / f"{name}.onnx"))
        calib, feed = calib_and_eval(name, g, args.calib)
        errs = []
        for m in METHODS:
            t0 = time.perf_counter()
            errs.append(quant_error(g, calib, feed, m))
            print(f"  {name} {m}: {errs[-1]:.4f} ({time.perf_counter() - t0:.1f}s)", flush=True)
        print(f"| {name} | " + " | ".join(f"{e:.4f}" for e in errs) + " |", flush=True)


if __name__ == "__main__":
    main()
