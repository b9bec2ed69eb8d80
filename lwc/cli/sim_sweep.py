"""``lwc sim sweep MODEL --array 8x8,...,256x256 --dataflow ws,os,is --buffer SIZES -o OUTDIR``:
time MODEL on every combination in parallel, write CSV/JSON/PNG and print the Pareto set.

``lwc sim`` (lwc/cli/sim.py) hands ``sweep ...`` to this module through ``register(subparsers)``
(adds the ``sweep`` parser with ``func=run``); ``main(argv)`` runs it stand-alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from lwc.cli.common import MODEL_HELP, add_json_argument, console, load, print_json

DEFAULT_ARRAYS = "8x8,16x16,32x32,64x64,128x128,256x256"
DEFAULT_DATAFLOWS = "ws,os,is"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--base", default="edge-16x16",
                   help="accelerator preset or .toml/.json description each point overrides "
                   "(default: edge-16x16)")
    p.add_argument("--array", default=DEFAULT_ARRAYS,
                   help=f"comma-separated ROWSxCOLS list (default: {DEFAULT_ARRAYS})")
    p.add_argument("--dataflow", default=DEFAULT_DATAFLOWS,
                   help="comma-separated dataflows from ws, os, is (default: all three)")
    p.add_argument("--buffer", default=None,
                   help="comma-separated buffer sizes (e.g. 64KiB,256KiB): activation and weight "
                   "buffers get the size, accumulators half (default: the base's buffers)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="configurations run at once (default: all cores)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a process pool (default); ray: Ray tasks on a local instance or "
                   "the cluster in RAY_ADDRESS (needs the 'ray' extra)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="directory for sweep.csv, sweep.json and the PNG plots")
    add_json_argument(p)


DESCRIPTION = ("Design-space sweep: time MODEL (timing-only simulation of the int8 program) on "
               "every array x dataflow x buffer combination derived from --base, in parallel; "
               "write sweep.csv, sweep.json and PNG plots to OUTDIR and print the Pareto set "
               "(cycles, energy, PE count, buffer size).")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sweep", help="design-space sweep over array, dataflow and buffers",
                              description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lwc sim sweep", description=DESCRIPTION)
    add_arguments(p)
    return p


def main(argv: Sequence[str]) -> int:
    """Entry point for ``lwc sim sweep ARGS`` (``argv`` excludes ``sweep``)."""
    return run(build_parser().parse_args(list(argv)))


def run(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from lwc.backends.accel import AccelConfigError, load_accel, quantize_model
    from lwc.backends.accel.sweep import (make_points, parse_arrays, parse_buffers,
                                          parse_dataflows, point_config, run_sweep, summary_rows,
                                          write_outputs)

    if args.jobs < 1:
        raise AccelConfigError(f"--jobs must be >= 1, got {args.jobs}")
    base = load_accel(args.base)
    points = make_points(parse_arrays(args.array), parse_dataflows(args.dataflow),
                         parse_buffers(args.buffer) if args.buffer else [None])
    configs = [point_config(base, pt) for pt in points]
    t0 = time.perf_counter()
    qmodel = quantize_model(load(args.model))
    t_quant = time.perf_counter() - t0
    with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), transient=True,
                  console=_stderr_console()) as bar:
        task = bar.add_task("", total=len(configs))

        def tick(row: dict[str, Any]) -> None:
            bar.update(task, advance=1, description=row["config"])

        rows = run_sweep(qmodel, configs, jobs=args.jobs, executor=args.executor, progress=tick)
    wall = time.perf_counter() - t0
    meta = {"model": args.model, "base": base.name, "executor": args.executor, "jobs": args.jobs,
            "wall_seconds": round(wall, 3), "quantize_seconds": round(t_quant, 3)}
    paths = write_outputs(rows, args.output, meta)
    summ = summary_rows(rows)
    front = [s for s in summ if s["pareto"]]
    if args.json:
        print_json({**meta, "configs": summ, "pareto": [s["config"] for s in front],
                    "files": {k: str(v) for k, v in paths.items()}})
        return 0
    con = console()
    table = Table(title=f"Pareto set of {len(rows)} configurations (cycles, energy, PEs, buffer)")
    for col in ("config", "PEs", "buffer", "cycles", "energy (uJ)", "util %", "ms @ clock"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for s in sorted(front, key=lambda s: s["cycles"]):
        table.add_row(s["config"], str(s["pes"]), f"{s['buffer_bytes'] // 1024} KiB",
                      f"{s['cycles']:,}", f"{s['energy_pj'] / 1e6:,.1f}",
                      f"{100 * s['utilization']:.2f}", f"{1e3 * s['seconds']:.3f}")
    con.print(table)
    con.print(f"{len(rows)} configurations in {wall:.1f} s ({args.executor}, {args.jobs} jobs); "
              f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(file=sys.stderr)
