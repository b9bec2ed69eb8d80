"""Per-layer core balance of the VPU presets: busy cycles per core from the timing trace.

    .venv/bin/python benchmarks/vpu_balance.py [MODEL ...]

Prints, per model and preset, the worst layer by max / ceil(mean) and by max / mean of the
compute-queue busy cycles (docs/accelerator.md, VPU balance).
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lwc.backends.accel import compile_accel, quantize_model, simulate
from lwc.model_io import load_model

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
MODELS = ("digits_lenet5", "squeezenet1_1", "resnet18", "mobilenet_v2")
VPUS = ("myriad-x-like", "myriad-2-like")


def layer_busy(prog, accel: str) -> dict[int, list[int]]:
    rep = simulate(prog, accel, functional=False, trace=True)
    cores = max(i.core for i in prog.instrs) + 1
    busy: dict[int, list[int]] = defaultdict(lambda: [0] * cores)
    for row in rep.trace:
        if row.queue == "compute":
            busy[row.layer][row.core] += row.end - row.start
    return busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    table = Table("model", "preset", "worst max/ceil(mean)", "layer", "worst max/mean", "layer",
                  "cycles (max / mean)")
    for name in args.models:
        import numpy as np

        g = load_model(str(SHARED / f"{name}.onnx"))
        with np.load(SHARED / f"{name}.io.npz", allow_pickle=False) as z:
            x = z["input"][:1].copy()
        qm = quantize_model(g, [{g.inputs[0].name: x}])
        for accel in VPUS:
            prog = compile_accel(qm, accel)
            rows = [(max(b) / math.ceil(sum(b) / len(b)), max(b) * len(b) / sum(b),
                     prog.layers[li].name, max(b), sum(b) / len(b))
                    for li, b in layer_busy(prog, accel).items()]
            c = max(rows)
            r = max(rows, key=lambda t: t[1])
            table.add_row(name, accel, f"{c[0]:.3f}", c[2], f"{r[1]:.3f}", r[2],
                          f"{r[3]} / {r[4]:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
