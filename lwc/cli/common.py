"""Helpers shared by the command modules: the MODEL argument, console output and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

MODEL_HELP = "a .onnx or .lwc file, or zoo:<name> (e.g. zoo:mobilenet_v2)"


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print machine-readable JSON on stdout instead of a table")


def console() -> Any:
    """A rich console on the current stdout; wide when not a terminal so tables never wrap."""
    from rich.console import Console

    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160,
                   highlight=False, soft_wrap=False)


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (no colour, no markup), one document per command."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def load(spec: str) -> Any:
    """Load a model spec (see ``lwc.model_io``)."""
    from lwc.model_io import load_model

    return load_model(spec)
