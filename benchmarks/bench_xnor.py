"""Bit-packed xnor/popcount conv against lwc's own float32 conv of the same shape, side by side.

    .venv/bin/python benchmarks/bench_xnor.py                       # 256 -> 256, 3x3, 14x14, pad 1
    .venv/bin/python benchmarks/bench_xnor.py --channels 512 --size 7 --threads 1 2
    .venv/bin/python benchmarks/bench_xnor.py --accuracy --epochs 10   # also train BNN/XNOR/TBN

Both convolutions are compiled by the LLVM backend (``conv`` -> im2row + register-blocked
float GEMM; ``xnor_conv`` -> sign packing + xor/popcount on 64-bit words) and timed in one
process after a warm-up, for each thread count, twice: each model ``--runs`` times in a row (warm
caches) and run by run interleaved (each starts with the other's data in the caches); the table prints median and minimum
milliseconds, the speed ratios float/xnor of the medians and of the minima (the issue's
target is >= 8x; on a loaded machine the minima are the fairer figure) and the weight bytes each
kernel reads (float32 vs 1 bit per weight, plus the float32 alpha per filter). The xnor output
is checked bit-exact against the interpreter first.

``--accuracy`` trains the digits CNN (``../shared/models/digits_lenet5.onnx``) in each binary
scheme with lwc (the same budget for all) and prints the test accuracy of the lowered graphs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def conv_graph(op: str, c: int, size: int, k: int, alpha: bool) -> object:
    from lwc.ir import DType, Graph, TensorType

    rng = np.random.default_rng(0)
    g = Graph(op)
    x = g.add_input("x", TensorType(DType.F32, (1, c, size, size)))
    w = g.add_constant(rng.standard_normal((c, c, k, k)).astype(np.float32), "w")
    ins = [x, w]
    if op == "xnor_conv" and alpha:
        ins.append(g.add_constant(np.abs(rng.standard_normal(c)).astype(np.float32), "alpha"))
    p = k // 2
    g.outputs = [g.add_node(op, ins, {"pads": (p, p, p, p)}, name="y").output]
    g.verify()
    return g


def time_models(models: list, feeds: dict, runs: int, interleaved: bool
                ) -> list[tuple[float, float]]:
    """(median, min) ms per model. ``interleaved``: the models' runs alternate, so both see the
    same machine state but each starts with caches the other one filled (the xnor weights come
    from L3); otherwise each model runs ``runs`` times in a row (warm caches, the usual way
    kernels are benchmarked)."""
    for m in models:
        for _ in range(3):
            m.run(feeds)
    ts: list[list[float]] = [[] for _ in models]

    def once(m: object, acc: list[float]) -> None:
        t = time.perf_counter()
        m.run(feeds)  # type: ignore[attr-defined]
        acc.append(time.perf_counter() - t)

    if interleaved:
        for _ in range(runs):
            for m, acc in zip(models, ts):
                once(m, acc)
    else:
        for m, acc in zip(models, ts):
            for _ in range(runs):
                once(m, acc)
    return [(statistics.median(t) * 1e3, min(t) * 1e3) for t in ts]


def speed(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    import lwc.backends as backends
    from lwc.interp import interpret

    c, size, k = args.channels, args.size, args.kernel
    feeds = {"x": np.random.default_rng(1).standard_normal((1, c, size, size)).astype(np.float32)}
    fg = conv_graph("conv", c, size, k, False)
    xg = conv_graph("xnor_conv", c, size, k, True)
    fm = backends.compile(fg, target="llvm")
    xm = backends.compile(xg, target="llvm")
    want = interpret(xg, feeds)["y"]
    got = xm.run(feeds)["y"]
    exact = bool(np.array_equal(want, got))
    float_bytes = c * c * k * k * 4
    bit_bytes = c * k * k * (-(-c // 64)) * 8
    alpha_bytes = 4 * c
    table = Table(title=f"conv {c}->{c}, {k}x{k}, {size}x{size}, pad {k // 2}, batch 1")
    for col in ("threads", "runs", "float32 ms (median/min)", "xnor ms (median/min)",
                "speedup (medians/mins)"):
        table.add_column(col, justify="right")
    for th in args.threads:
        fm.set_num_threads(th)
        xm.set_num_threads(th)
        for interleaved in (False, True):
            (fmed, fmin), (xmed, xmin) = time_models([fm, xm], feeds, args.runs, interleaved)
            table.add_row(str(th), "interleaved" if interleaved else "in a row",
                          f"{fmed:.3f} / {fmin:.3f}", f"{xmed:.3f} / {xmin:.3f}",
                          f"{fmed / xmed:.1f}x / {fmin / xmin:.1f}x")
    out = Console()
    out.print(table)
    out.print(f"xnor output bit-exact vs interpreter: {exact}")
    out.print(f"weights: float32 {float_bytes} B; packed {bit_bytes} B "
              f"({float_bytes / bit_bytes:.1f}x smaller), with alpha {bit_bytes + alpha_bytes} B "
              f"({float_bytes / (bit_bytes + alpha_bytes):.1f}x)")
    if not exact:
        raise SystemExit("xnor kernel disagrees with the interpreter")


def accuracy(args: argparse.Namespace) -> None:
    from lwc.model_io import load_model
    from lwc.passes.compress.binarize import fold_bn_sign, lower_binary, prepare
    from lwc.train import Adam, Dataset, Trainer
    from lwc.train.trainer import predict

    path = SHARED / "models" / "digits_lenet5.onnx"
    for scheme in ("float", "bnn", "xnor", "tbn"):
        g = load_model(str(path))
        data = Dataset.load(SHARED / "data" / "digits.npz").for_graph(g)
        t = time.perf_counter()
        if scheme != "float":
            prep = prepare(g, scheme, threshold=args.threshold)
            Trainer(g, Adam(lr=args.lr), prep.transforms, extra=prep.extra).fit(
                data, args.epochs, 32, seed=args.seed, progress=False)
            lower_binary(g)
            fold_bn_sign(g)
        acc = float((predict(g, data.x_test).argmax(1) == data.y_test).mean())
        print(f"{scheme:5s} test accuracy {100 * acc:.2f}%  ({args.epochs if scheme != 'float' else 0}"
              f" epochs, {time.perf_counter() - t:.1f} s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--size", type=int, default=14)
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--accuracy", action="store_true", help="also train the digits CNN variants")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=0.5, help="TBN ternarisation threshold")
    args = p.parse_args()
    speed(args)
    if args.accuracy:
        accuracy(args)


if __name__ == "__main__":
    main()
