"""``lwc compress MODEL --recipe NAME --data D.npz -o OUT``: compress with fine-tuning."""

from __future__ import annotations

import argparse
from pathlib import Path

from lwc.cli.common import add_json_argument, add_model_argument, console, load, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    from lwc.passes.compress.recipes import RECIPES

    p = subparsers.add_parser(
        "compress", help="compress a model (Deep Compression, int8, binary) with fine-tuning",
        description="Compress MODEL with a recipe, fine-tuning on --data, and print a per-layer "
        "table with the accuracy before and after and the size ratio from the real file size.")
    add_model_argument(p)
    p.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    p.add_argument("--data", required=True, metavar="D.npz",
                   help=".npz with x_train, y_train, x_test, y_test")
    p.add_argument("--finetune-epochs", type=int, metavar="N",
                   help="fine-tuning epochs per stage (default: the recipe's own)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.lwcz|OUT.onnx")
    p.add_argument("--no-progress", action="store_true", help="hide the fine-tuning progress bar")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from lwc.passes.compress.recipes import RECIPES
    from lwc.train import Dataset, show_progress

    graph = load(args.model)
    data = Dataset.load(args.data)
    with show_progress(not args.json and not args.no_progress):
        report = RECIPES[args.recipe](graph, data, Path(args.output), args.finetune_epochs)
    if args.json:
        print_json(report.to_json())
        return 0
    table = Table(title=f"{args.recipe}: {args.model} -> {args.output}")
    for c in report.columns:
        table.add_column(c, justify="left" if c == "layer" else "right")
    for row in report.rows:
        table.add_row(*(str(x) for x in row))
    out = console()
    out.print(table)
    out.print(f"accuracy {100 * report.accuracy_before:.2f}% -> {100 * report.accuracy_after:.2f}%"
              f"; float32 parameters {report.float_bytes} B -> file {report.file_bytes} B "
              f"({report.ratio:.1f}x)")
    for note in report.notes:
        out.print(f"note: {note}")
    return 0
