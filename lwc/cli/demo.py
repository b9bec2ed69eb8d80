"""``lwc demo [MODEL]``: the end-to-end demo (load, optimise, run, check, report) with timings."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from lwc.cli.common import add_json_argument, console, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    from lwc.demo import DEFAULT_MODEL, DEFAULT_PIPELINE

    p = subparsers.add_parser(
        "demo", help="run the end-to-end demo on a model (default zoo:mobilenet_v2)",
        description="Load MODEL, optimise it with a pass pipeline, run it with the interpreter, "
        "check the optimised graph against the original, quantise it to int8, compile it with "
        "LLVM, simulate it on the tpu-v1 accelerator, and print a per-layer report and the time "
        "of each stage. Stages whose components are missing are skipped with a note.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=DEFAULT_MODEL,
                   help=f"a .onnx or .lwc file, or zoo:<name> (default {DEFAULT_MODEL})")
    p.add_argument("--pipeline", default=DEFAULT_PIPELINE,
                   help=f"pass pipeline of the optimise stage (default {DEFAULT_PIPELINE})")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="layers shown in the report, by MACs (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (default 0)")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lwc.demo import DemoState, run_demo

    state = DemoState(args.model, pipeline=args.pipeline, seed=args.seed, top=args.top)
    results = run_demo(state, console=None if args.json else console())
    if args.json:
        print_json({"model": args.model, "stages": [asdict(r) for r in results]})
    return 0
