"""``lwc convert MODEL -o OUT``: translate between ONNX, textual IR and zoo builds."""

from __future__ import annotations

import argparse

from lwc.cli.common import add_model_argument, load


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert", help="write a model as .onnx or .lwc",
        description="Load MODEL and write it to OUT; the format follows OUT's suffix: .onnx, or "
        ".lwc (textual IR with a .npz weight sidecar next to it). Outputs are written atomically.")
    add_model_argument(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="destination path ending in .onnx or .lwc")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lwc.errors import ModelFormatError
    from lwc.model_io import save_model

    if not args.output.lower().endswith((".onnx", ".lwc")):  # fail before the (slow) load
        raise ModelFormatError(f"{args.output}: cannot write this format "
                               "(expected a .onnx or .lwc path)")
    graph = load(args.model)
    save_model(graph, args.output)
    print(f"wrote {args.output} ({graph.summary()})")
    return 0
