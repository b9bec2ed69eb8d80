"""``lwc show MODEL``: print the model as textual IR."""

from __future__ import annotations

import argparse
import sys

from lwc.cli.common import add_model_argument, load


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "show", help="print a model as textual IR",
        description="Load MODEL and print it in lwc's textual IR (large weights are referenced "
        "by @name, small ones inlined).")
    add_model_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lwc.ir.printer import print_graph

    text = print_graph(load(args.model))
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
