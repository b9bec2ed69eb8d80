"""``lwc eval MODEL --data D.npz``: top-1 accuracy on the test split."""

from __future__ import annotations

import argparse

from lwc.cli.common import add_json_argument, add_model_argument, console, load, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("eval", help="top-1 accuracy of MODEL on a dataset's test split",
                              description="Run MODEL (reference interpreter) on x_test of an .npz "
                              "dataset and print the top-1 accuracy against y_test.")
    add_model_argument(p)
    p.add_argument("--data", required=True, metavar="D.npz",
                   help=".npz with x_test and y_test (x reshaped to the model's input)")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lwc.train import Dataset, accuracy

    graph = load(args.model)
    data = Dataset.load(args.data).for_graph(graph)
    acc = accuracy(graph, data.x_test, data.y_test)
    if args.json:
        print_json({"accuracy": acc, "samples": int(len(data.y_test))})
    else:
        console().print(f"top-1 accuracy {100 * acc:.2f}% on {len(data.y_test)} test samples")
    return 0
