"""``lwc run MODEL``: execute a model on given or seeded random inputs and summarise its outputs."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lwc.cli.common import add_json_argument, add_model_argument, console, load, print_json
from lwc.errors import InputError
from lwc.ir.core import Graph

Runner = Callable[[Graph, Mapping[str, np.ndarray]], dict[str, np.ndarray]]


def _interp(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from lwc.interp import interpret

    return interpret(graph, inputs)


def _llvm(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from lwc.backends.llvm import compile as llvm_compile
    from lwc.interp import check_inputs

    return llvm_compile(graph, bindings=check_inputs(graph, inputs)).run(dict(inputs))


BACKENDS: dict[str, Runner] = {"interp": _interp, "llvm": _llvm}
"""Execution backends by name; a compiled backend adds one entry (graph, inputs) -> outputs."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run", help="run a model and summarise (or save) its outputs",
        description="Run MODEL on inputs read from --input, or on seeded random inputs, and print "
        "each output's type and min/mean/max. Arrays are keyed by graph input/output names.")
    add_model_argument(p)
    p.add_argument("-i", "--input", metavar="X.npz|X.npy",
                   help="inputs: an .npz keyed by input name (keys naming graph outputs are "
                   "ignored, so a .io.npz can be passed), or an .npy for a single-input graph")
    p.add_argument("-o", "--output", metavar="Y.npz",
                   help="write every output to this .npz, keyed by output name (atomically)")
    p.add_argument("--backend", choices=sorted(BACKENDS), default="interp",
                   help="how to execute the graph (default: interp, the reference interpreter)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.add_argument("--batch", type=int, default=1,
                   help="size bound to symbolic dims of random inputs (default 1)")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lwc.fileio import save_npz
    from lwc.interp import check_inputs, random_inputs

    if args.output and Path(args.output).suffix.lower() != ".npz":
        raise InputError(f"{args.output}: --output must be an .npz file")
    graph = load(args.model)
    if args.input:
        inputs = read_inputs(graph, args.input)
        try:
            check_inputs(graph, inputs)
        except InputError as e:
            raise InputError(f"{args.input}: {e}") from None
    else:
        inputs = random_inputs(graph, seed=args.seed, batch=args.batch)
    t0 = time.perf_counter()
    outputs = BACKENDS[args.backend](graph, inputs)
    seconds = time.perf_counter() - t0
    if args.output:
        save_npz(args.output, outputs)
    summary = {"model": args.model, "backend": args.backend, "seconds": seconds,
               "inputs": {k: _describe(v, stats=False) for k, v in inputs.items()},
               "outputs": {k: _describe(v) for k, v in outputs.items()}}
    if args.json:
        print_json(summary)
    else:
        _print_table(summary, args.output)
    return 0


def read_inputs(graph: Graph, path: str) -> dict[str, np.ndarray]:
    """Arrays from ``path`` keyed by graph input name; keys naming graph outputs are dropped."""
    from lwc.fileio import load_arrays

    suffix = Path(path).suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise InputError(f"{path}: inputs must be an .npz (keyed by input name) or an .npy")
    arrays = load_arrays(path)
    names = [v.name for v in graph.inputs]
    if suffix == ".npy":
        if len(names) != 1:
            raise InputError(f"{path}: an .npy holds one array but graph @{graph.name} takes "
                             f"{len(names)} inputs ({', '.join(names)}); use an .npz keyed by name")
        return {names[0]: next(iter(arrays.values()))}
    outputs = {v.name for v in graph.outputs} - set(names)
    return {k: v for k, v in arrays.items() if k not in outputs}


def _describe(a: np.ndarray, stats: bool = True) -> dict[str, Any]:
    """dtype, shape and (finite) min/mean/max; ``nonfinite`` counts NaN/inf elements if any."""
    d: dict[str, Any] = {"dtype": str(a.dtype), "shape": list(a.shape)}
    if not stats or not a.size:
        return d
    f = a.astype(np.float64)
    finite = np.isfinite(f)
    if finite.any():
        d.update(min=float(f[finite].min()), mean=float(f[finite].mean()),
                 max=float(f[finite].max()))
    if not finite.all():
        d["nonfinite"] = int(f.size - finite.sum())
    if a.ndim == 2 and a.shape[1] > 1:
        d["argmax"] = [int(i) for i in np.argmax(a, axis=1)[:8]]
    return d


def _print_table(summary: dict[str, Any], saved: str | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    title = f"{summary['model']} ({summary['backend']}, {summary['seconds'] * 1e3:.1f} ms)"
    t = Table(title=escape(title), header_style="bold")
    for col in ("output", "dtype", "shape", "min", "mean", "max", "argmax"):
        t.add_column(col, justify="right" if col in ("min", "mean", "max") else "left")
    for name, d in summary["outputs"].items():
        cells = [f"{d[k]:.6g}" if k in d else "" for k in ("min", "mean", "max")]
        argmax = str(d["argmax"]) if "argmax" in d else ""
        if "nonfinite" in d:
            argmax += f" ({d['nonfinite']} NaN/inf)"
        t.add_row(escape(name), d["dtype"], str(d["shape"]), *cells, escape(argmax))
    out = console()
    out.print(t)
    if saved:
        out.print(f"wrote {escape(saved)}")
