"""``lwc info MODEL``: a per-layer table of output shapes, parameters, MACs and bytes moved."""

from __future__ import annotations

import argparse

from lwc.cli.common import add_json_argument, add_model_argument, console, load, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info", help="per-layer op, output shape, parameters, MACs and bytes, with totals",
        description="Load MODEL and print one row per node (op, node name, output type, "
        "parameters, multiply-accumulates and bytes moved, at batch 1) and the totals.")
    add_model_argument(p)
    p.add_argument("--top", type=int, metavar="N", default=0,
                   help="show only the N layers with the most MACs (totals still cover all)")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lwc.report import layer_report, render_table

    graph = load(args.model)
    report = layer_report(graph)
    if args.json:
        print_json(report.to_json())
        return 0
    rows = report.top(args.top) if args.top > 0 else None
    title = f"{args.model}: graph @{graph.name}"
    console().print(render_table(report, rows, title=title))
    return 0
