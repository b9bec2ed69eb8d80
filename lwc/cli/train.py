"""``lwc train`` / ``lwc finetune``: train a model's weights on an .npz dataset, with progress."""

from __future__ import annotations

import argparse

from lwc.cli.common import add_json_argument, add_model_argument, console, load, print_json


def _add(subparsers: argparse._SubParsersAction, name: str, lr: float, epochs: int,
         summary: str) -> None:
    p = subparsers.add_parser(name, help=summary, description=summary + " The dataset is an .npz "
                              "with x_train, y_train, x_test, y_test; x is reshaped to the model's "
                              "input when the per-sample sizes agree. Loss: softmax cross-entropy "
                              "on the first output.")
    add_model_argument(p)
    p.add_argument("--data", required=True, metavar="D.npz", help="training/test data")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="where to write the trained model (.onnx, .lwc)")
    p.add_argument("--epochs", type=int, default=epochs, help=f"passes over the data ({epochs})")
    p.add_argument("--lr", type=float, default=lr, help=f"learning rate ({lr})")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="seed of the mini-batch order")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_json_argument(p)
    p.set_defaults(func=run)


def register(subparsers: argparse._SubParsersAction) -> None:
    _add(subparsers, "train", 1e-3, 20, "Train MODEL's weights from their current values.")
    _add(subparsers, "finetune", 1e-4, 5,
         "Fine-tune a trained MODEL (a smaller default learning rate and fewer epochs).")


def run(args: argparse.Namespace) -> int:
    from lwc.model_io import save_model
    from lwc.train import Dataset, Trainer, accuracy, make_optimizer

    graph = load(args.model)
    data = Dataset.load(args.data).for_graph(graph)
    before = accuracy(graph, data.x_test, data.y_test)
    trainer = Trainer(graph, make_optimizer(args.optimizer, args.lr))
    history = trainer.fit(data, args.epochs, args.batch_size, seed=args.seed,
                          progress=not args.no_progress and not args.json)
    after = accuracy(graph, data.x_test, data.y_test)
    save_model(graph, args.output)
    result = {"accuracy_before": before, "accuracy": after, "loss": history,
              "output": args.output}
    if args.json:
        print_json(result)
    else:
        console().print(f"test accuracy {100 * before:.2f}% -> {100 * after:.2f}% after "
                        f"{args.epochs} epochs (final loss {history[-1]:.4f}); wrote {args.output}")
    return 0
