"""``lwc passes``: every registered pass (built-in and plugin) with options, tag and summary."""

from __future__ import annotations

import argparse
from typing import Any

from lwc.cli.common import add_json_argument, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "passes", help="list the registered passes and named pipelines",
        description="List every pass usable in a pipeline (built-ins and plugins from the "
        "lwc.passes entry-point group): name, exact/approximate, options with types and defaults, "
        "and a one-line description; then the named pipelines (O0..O3, canonicalize).")
    add_json_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lwc.pass_manager import registered_passes
    from lwc.pipeline import PIPELINES, describe_options

    rows: list[dict[str, Any]] = []
    for name, cls in registered_passes().items():
        opts = [{"name": o, "type": t, "default": d if isinstance(d, (int, float, str, bool,
                                                                       type(None))) else str(d)}
                for o, t, d in describe_options(cls)]
        rows.append({"name": name, "exact": cls.exact, "options": opts, "doc": cls.summary(),
                     "module": cls.__module__})
    if args.json:
        print_json({"passes": rows, "pipelines": PIPELINES})
        return 0
    width = max([len(r["name"]) for r in rows] + [4])
    for r in rows:
        tag = "exact" if r["exact"] else "approx"
        print(f"{r['name']:<{width}}  [{tag:<6}]  {r['doc']}")
        for o in r["options"]:
            print(f"{'':<{width}}    {o['name']}: {o['type']} = {o['default']}")
    print("\nnamed pipelines:")
    for name, text in PIPELINES.items():
        print(f"  {name:<14} {text or '(nothing)'}")
    return 0
