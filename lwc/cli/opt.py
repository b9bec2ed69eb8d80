"""``lwc opt MODEL -p PIPELINE -o OUT``: run a pass pipeline and report what it changed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lwc.cli.common import add_json_argument, add_model_argument, load, print_json

DEFAULT_LEVEL = "2"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "opt", help="optimise a model with a pass pipeline",
        description="Run a pass pipeline on MODEL, print node counts per op before and after, and "
        "optionally write the result. The pipeline is -p TEXT (e.g. 'canonicalize,fold-bn,fuse', "
        "options in braces: 'cse{constants=false}') and/or a standard level -O0..-O3 (run first); "
        f"with neither, -O{DEFAULT_LEVEL}. `lwc passes` lists the passes.")
    add_model_argument(p)
    p.add_argument("-p", "--pipeline", metavar="PIPELINE", help="comma-separated passes")
    p.add_argument("-O", dest="level", choices=["0", "1", "2", "3"], metavar="N",
                   help="standard pipeline O0..O3 (write -O3)")
    p.add_argument("-o", "--output", metavar="OUT", help="write the result (.onnx or .lwc)")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after each pass")
    p.add_argument("--print-ir-after", action="append", default=[], metavar="NAME",
                   help="print the IR after every run of pass NAME (repeatable)")
    p.add_argument("--print-ir-before", action="append", default=[], metavar="NAME",
                   help="print the IR before every run of pass NAME (repeatable)")
    p.add_argument("--no-verify", action="store_true", help="skip graph.verify() after each pass")
    p.add_argument("--time-passes", action="store_true", help="print wall time per pass")
    p.add_argument("--check-parity", action="store_true",
                   help="run the interpreter around every exact pass and fail on any difference")
    add_json_argument(p)
    p.set_defaults(func=run)


def pipeline_text(args: argparse.Namespace) -> str:
    parts = []
    if args.level is not None or not args.pipeline:
        parts.append(f"O{args.level if args.level is not None else DEFAULT_LEVEL}")
    if args.pipeline:
        parts.append(args.pipeline)
    return ",".join(parts)


def run(args: argparse.Namespace) -> int:
    from lwc.analysis import total_macs
    from lwc.errors import ModelFormatError
    from lwc.instruments import NodeCounts, Parity, PrintIR, Timing
    from lwc.pass_manager import PassManager

    if args.output and not args.output.lower().endswith((".onnx", ".lwc")):
        raise ModelFormatError(f"{args.output}: cannot write this format (expected .onnx or .lwc)")
    text = pipeline_text(args)
    timing, counts = Timing(), NodeCounts()
    instruments: list[Any] = [counts, timing]
    if args.print_ir_after_all or args.print_ir_after or args.print_ir_before:
        stream = sys.stderr if args.json else sys.stdout
        instruments.append(PrintIR(after=args.print_ir_after, before=args.print_ir_before,
                                   all=args.print_ir_after_all, stream=stream))
    if args.check_parity:
        instruments.append(Parity())
    pm = PassManager(text, instruments=instruments, verify=not args.no_verify)  # parse before load
    graph = load(args.model)
    macs_before, params_before = total_macs(graph), graph.parameter_count()
    ctx = pm.run(graph)
    if args.output:
        from lwc.model_io import save_model

        save_model(graph, args.output)
    summary = {
        "model": args.model, "pipeline": [str(p) for p in pm.passes],
        "nodes_before": sum(counts.before_counts.values()),
        "nodes_after": sum(counts.after_counts.values()),
        "ops_before": counts.before_counts, "ops_after": counts.after_counts,
        "macs_before": macs_before, "macs_after": total_macs(graph),
        "params_before": params_before, "params_after": graph.parameter_count(),
        "passes": [{"name": r.name, "options": _plain(r.options), "changed": r.changed,
                    "seconds": r.seconds, "stats": r.stats} for r in ctx.history],
        "records": [{"pass": r.pass_name, "node": r.node, "op": r.op, **_plain(r.stats)}
                    for r in ctx.records],
        "output": args.output,
    }
    if args.json:
        print_json(summary)
        return 0
    _print_table(summary)
    if args.time_passes:
        print(timing.report())
    if args.output:
        print(f"wrote {args.output}")
    return 0


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe copies of option and record values (numpy scalars, tuples)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if hasattr(v, "item") and callable(v.item):
            v = v.item()
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = v if isinstance(v, (int, float, str, bool, list, type(None))) else str(v)
    return out


def _print_table(s: dict[str, Any]) -> None:
    ops = sorted(set(s["ops_before"]) | set(s["ops_after"]))
    rows = [(o, s["ops_before"].get(o, 0), s["ops_after"].get(o, 0)) for o in ops]
    rows += [(k, s[f"{k.lower()}_before"], s[f"{k.lower()}_after"])
             for k in ("nodes", "MACs", "params")]
    width = max(len(r[0]) for r in rows)
    num = max([len(str(v)) for r in rows for v in r[1:]] + [6])
    print(f"pipeline: {','.join(s['pipeline']) or '(empty)'}")
    print(f"{'op':<{width}}  {'before':>{num}}  {'after':>{num}}")
    for name, before, after in rows:
        print(f"{name:<{width}}  {before:>{num}}  {after:>{num}}")
