"""The ``lwc`` command line. Each sub-command lives in its own module ``lwc.cli.<name>`` that
defines ``register(subparsers)``; that function adds its parser and sets ``func=run`` where
``run(args) -> int`` returns the exit code. Any ``LwcError`` becomes one line on stderr and exit 2.

Adding a command is one line: append its module name to ``COMMANDS``. Command modules import
heavy dependencies inside ``run`` so that ``lwc --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from lwc.errors import LwcError

COMMANDS = ["show", "info", "run", "convert", "demo", "opt", "passes", "compile", "bench", "train",
            "eval", "compress", "sim"]
"""Sub-command modules under ``lwc.cli``, in the order ``lwc --help`` lists them."""

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
INTERNAL_HINT = "(internal error; rerun with LWC_DEBUG=1 for a traceback)"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command in ``COMMANDS`` registered."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("lwc")
    except PackageNotFoundError:
        ver = "unknown"
    parser = argparse.ArgumentParser(
        prog="lwc", description="lwc: a compiler for lightweight deep learning. MODEL is a .onnx, "
        ".lwc or .lwcz file, or zoo:<name> for a built-in model.",
        epilog="Errors print one line and exit with 2; set LWC_DEBUG=1 for tracebacks.")
    parser.add_argument("--version", action="version", version=f"lwc {ver}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"lwc.cli.{name}").register(sub)
    return parser


def one_line(message: object) -> str:
    """Collapse a message onto a single line (errors must never span several)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command and return its exit code."""
    debug = bool(os.environ.get("LWC_DEBUG"))
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:
        print("lwc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `lwc show m.onnx | head`: the reader left, nothing more to say
        with contextlib.suppress(OSError, ValueError):  # so the exit-time flush fails quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except LwcError as e:
        _report(f"lwc: error: {one_line(e)}", debug)
        return EXIT_USAGE
    except OSError as e:  # an unwritable output, a full disk: the environment, not a bug
        where = f"{e.filename}: " if e.filename else ""
        _report(f"lwc: error: {where}{one_line(e.strerror or e)}", debug)
        return EXIT_USAGE
    except Exception as e:
        _report(f"lwc: error: {type(e).__name__}: {one_line(e)} {INTERNAL_HINT}", debug)
        return EXIT_INTERNAL


def _dispatch(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors (argparse exits 2)
        if e.code is None:
            return EXIT_OK
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    return int(args.func(args) or EXIT_OK)


def _report(line: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(line, file=sys.stderr)


__all__ = ["COMMANDS", "build_parser", "main"]
