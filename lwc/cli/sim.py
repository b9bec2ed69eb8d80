"""``lwc sim MODEL|PROG.lasm --accel PRESET|FILE``: simulate a network on an accelerator and
print cycles, utilisation, memory traffic, energy and roofline position per layer.

Three modes share one report (``lwc.backends.accel.report.SimReport``, same ``--json`` keys):
a model (compiled here, run on data and timed), a compiled ``.lasm`` program, and SCALE-Sim
topology CSVs (``--topology``, handled by ``lwc.backends.accel.scalesim_compat``).
``lwc sim sweep ...`` is a separate command line, parsed and run by ``lwc.cli.sim_sweep``.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lwc.cli.common import add_json_argument, console, load, print_json
from lwc.errors import InputError, LwcError


class _SimParser(argparse.ArgumentParser):
    """The ``sim`` parser; ``lwc sim sweep ...`` is handed to ``lwc.cli.sim_sweep`` whole."""

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> Any:
        if args and args[0] == "sweep":
            try:
                mod = importlib.import_module("lwc.cli.sim_sweep")
            except ModuleNotFoundError as e:
                if e.name != "lwc.cli.sim_sweep":
                    raise
                raise LwcError("lwc sim sweep is not available in this build "
                               "(lwc.cli.sim_sweep is missing)") from None
            sub = argparse.ArgumentParser(prog="lwc sim").add_subparsers(dest="sim_command")
            mod.register(sub)
            return sub.choices["sweep"].parse_known_args(list(args[1:]), namespace)
        return super().parse_known_args(args, namespace)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sim", help="simulate a model on an accelerator: cycles, utilisation, traffic, energy",
        description="Simulate MODEL (compiled here: quantised to int8, lowered, run on data and "
        "timed) or a compiled PROG.lasm (from `lwc compile --target accel:...`) on the "
        "accelerator --accel (a preset: tpu-v1, edge-16x16, eyeriss-like, myriad-x-like, "
        "myriad-2-like; or a .toml/.json description) and print one row per layer. "
        "`lwc sim sweep ...` runs a design-space sweep (see its --help).")
    p.__class__ = _SimParser
    p.add_argument("model", metavar="MODEL|PROG.lasm", nargs="?",
                   help="a model (.onnx, .lwc, .lwcz, zoo:<name>) or a compiled .lasm program")
    p.add_argument("--accel", required=True, metavar="PRESET|FILE",
                   help="accelerator: a preset name or a .toml/.json description "
                   "(a SCALE-Sim .cfg with --topology)")
    p.add_argument("--timing-only", action="store_true",
                   help="time the program without running it on data (no outputs)")
    p.add_argument("-i", "--input", metavar="X.npz|X.npy",
                   help="float input to run (an .npz keyed by input name, or an .npy); also "
                   "used to calibrate the quantisation of a MODEL (default: seeded random)")
    p.add_argument("--calibration", choices=("max", "percentile", "entropy"), default="max",
                   help="activation range of a MODEL's int8 quantisation: max |x| (default), "
                   "the 99.99th percentile of |x|, or TensorRT's KL-entropy threshold")
    p.add_argument("--check", action="store_true",
                   help="compare the outputs bit for bit with the int8 reference semantics "
                   "(MODEL only); exit 1 on any difference")
    p.add_argument("--trace", metavar="FILE.csv",
                   help="write the per-instruction schedule (index, layer, core, queue, op, "
                   "start, end cycles) as CSV")
    p.add_argument("--topology", metavar="FILE.csv",
                   help="simulate a SCALE-Sim topology CSV instead of a model")
    p.add_argument("--gemm", action="store_true",
                   help="with --topology: the CSV is SCALE-Sim's GEMM format (name, M, N, K)")
    p.add_argument("--scalesim-compat", action="store_true",
                   help="with --topology: reproduce SCALE-Sim's own cycle counts")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.topology:
        return _run_topology(args)
    if not args.model:
        raise InputError("lwc sim: give a MODEL, a PROG.lasm or --topology FILE.csv")
    if args.gemm or args.scalesim_compat:
        raise InputError("lwc sim: --gemm and --scalesim-compat need --topology")
    if args.check and args.timing_only:
        raise InputError("lwc sim: --check needs a functional run, not --timing-only")
    from lwc.backends.accel import compile_accel, load_accel, quantize_model, simulate
    from lwc.backends.accel.program import Program

    cfg = load_accel(args.accel)
    check = None
    inputs = None
    t0 = time.perf_counter()
    if args.model.endswith(".lasm"):
        if args.check:
            raise InputError("lwc sim: --check needs a MODEL (a .lasm has no reference)")
        if args.calibration != "max":
            raise InputError("lwc sim: --calibration needs a MODEL (a .lasm is already "
                             "quantised)")
        target: Any = Program.load(args.model)
        if args.input:
            inputs = _read_float_input(args.input)
    else:
        graph = load(args.model)
        calib = None
        if args.input:
            from lwc.cli.run import read_inputs
            calib = [read_inputs(graph, args.input)]
            inputs = calib[0]
        qm = quantize_model(graph, calib, method=args.calibration)
        target = compile_accel(qm, cfg)
        check = qm
    compile_s = time.perf_counter() - t0
    rep = simulate(target, cfg, inputs=inputs, functional=not args.timing_only,
                   trace=bool(args.trace))
    rep.wall_seconds = {"load+compile": compile_s, **rep.wall_seconds}
    if args.trace:
        _write_trace(args.trace, rep.trace)
    mismatches: list[str] = []
    if args.check and check is not None and rep.outputs:
        mismatches = _check(check, target, cfg, inputs, rep.outputs)
    if args.json:
        out = rep.to_json()
        out["model"] = args.model
        if args.check:
            out["check"] = {"bit_exact": not mismatches, "mismatches": mismatches}
        print_json(out)
    else:
        print_report(rep, args.model)
        if args.check:
            console().print("check: " + ("bit-exact against the int8 reference" if not mismatches
                                         else "MISMATCH in " + ", ".join(mismatches)))
    return 1 if mismatches else 0


def _read_float_input(path: str) -> Any:
    from lwc.fileio import load_arrays

    if Path(path).suffix.lower() not in (".npz", ".npy"):
        raise InputError(f"{path}: inputs must be an .npz or an .npy")
    arrays = load_arrays(path)
    if len(arrays) != 1:
        arrays = {k: v for k, v in arrays.items() if k in ("input", "x")} or arrays
    if len(arrays) != 1:
        raise InputError(f"{path}: a program takes one input, the file holds "
                         f"{', '.join(arrays)}")
    return next(iter(arrays.values()))


def _check(qm: Any, prog: Any, cfg: Any, inputs: Any, outputs: dict) -> list[str]:
    import numpy as np

    from lwc.backends.accel import reference_outputs

    ref = reference_outputs(qm, prog, inputs)
    return [n for n, v in outputs.items() if not np.array_equal(v, ref[n])]


def _write_trace(path: str, rows: list) -> None:
    from lwc.fileio import atomic_write_text

    lines = ["index,layer,core,queue,op,start,end"]
    lines += [f"{r.index},{r.layer},{r.core},{r.queue},{r.op},{r.start},{r.end}" for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _run_topology(args: argparse.Namespace) -> int:
    if args.model:
        raise InputError("lwc sim: give either a MODEL or --topology, not both")
    try:
        from lwc.backends.accel.scalesim_compat import simulate_topology
    except ImportError:
        raise LwcError("lwc sim --topology is not available in this build "
                       "(lwc.backends.accel.scalesim_compat.simulate_topology is missing)") from None
    rep = simulate_topology(args.topology, args.accel, gemm=args.gemm, compat=args.scalesim_compat)
    if args.json:
        out = rep.to_json()
        out["topology"] = args.topology
        print_json(out)
    else:
        print_report(rep, args.topology)
    return 0


def _num(x: float) -> str:
    """Compact engineering notation for big counts."""
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suf}"
    return f"{x:.0f}"


def print_report(rep: Any, what: str) -> None:
    """The per-layer table and the totals, with rich."""
    from rich.table import Table

    con = console()
    t = Table(title=f"{what} on {rep.accel} ({rep.mode})", title_justify="left")
    for col in ("#", "layer", "kind", "unit", "cycles", "stall", "util %", "map %", "MACs",
                "DRAM rd", "DRAM wr", "buf rd", "buf wr", "energy uJ", "ops/B", "bound"):
        t.add_column(col, justify="left" if col in ("layer", "kind", "unit", "bound") else "right")
    for i, x in enumerate(rep.layers):
        name = x.name if len(x.name) <= 40 else "…" + x.name[-39:]
        t.add_row(str(i), name, x.kind, x.unit, _num(x.total_cycles), _num(x.stall_cycles),
                  f"{100 * x.utilization:.2f}", f"{100 * x.mapping_efficiency:.2f}", _num(x.macs),
                  _num(x.dram_reads), _num(x.dram_writes), _num(x.buffer_reads),
                  _num(x.buffer_writes), f"{x.energy_pj / 1e6:.2f}", f"{x.arith_intensity:.1f}",
                  x.roofline_bound)
    con.print(t)
    tot = rep.total()
    con.print(f"total {tot['total_cycles']:,} cycles ({tot['compute_cycles']:,} compute, "
              f"{tot['stall_cycles']:,} stall) = {tot['seconds'] * 1e3:.4f} ms at "
              f"{rep.clock_mhz:g} MHz")
    con.print(f"{tot['macs']:,} MACs: {tot['achieved_tops']:.3f} of {tot['peak_tops']:.2f} peak "
              f"TOPS (utilisation {100 * tot['utilization']:.2f}%, mapping efficiency "
              f"{100 * tot['mapping_efficiency']:.2f}%)")
    con.print(f"DRAM {tot['dram_reads'] / 2**20:.2f} MiB read, {tot['dram_writes'] / 2**20:.2f} MiB "
              f"written; {tot['arith_intensity']:.1f} ops/byte vs ridge point "
              f"{tot['ridge_point']:.1f} ({tot['roofline_bound']}-bound); energy "
              f"{tot['energy_pj'] / 1e6:.2f} uJ")
    notes = [(i, x.note) for i, x in enumerate(rep.layers) if x.note]
    for i, note in notes[:5]:
        con.print(f"layer {i}: {note}")
    if len(notes) > 5:
        con.print(f"... and {len(notes) - 5} more layer notes (see --json)")
    if rep.wall_seconds:
        con.print("wall time: " + ", ".join(f"{k} {v:.2f}s" for k, v in rep.wall_seconds.items()))
