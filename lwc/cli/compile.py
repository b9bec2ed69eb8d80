"""``lwc compile MODEL --target llvm -o model.so``: an ahead-of-time shared library + C header."""

from __future__ import annotations

import argparse
from pathlib import Path

from lwc.cli.common import add_json_argument, add_model_argument, console, load, print_json
from lwc.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile", help="compile a model to a shared library with a C header",
        description="Compile MODEL for the CPU with LLVM and write OUT.so plus OUT.h (the C API: "
        "lwc_run(inputs, outputs, workspace), LWC_WORKSPACE_SIZE). Compiled kernels are cached "
        "on disk ($LWC_CACHE_DIR, default ~/.cache/lwc).")
    add_model_argument(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.so", help="library to write")
    p.add_argument("--target", type=_target, default="llvm", metavar="llvm|accel:ACCEL",
                   help="code generator: llvm (default), or accel:<preset or .toml/.json> to "
                   "write an accelerator program OUT.lasm plus its OUT.lasm.npz data sidecar")
    p.add_argument("-O", dest="opt", type=int, choices=[0, 1, 2, 3], default=3,
                   help="optimisation level (default 3; 0 skips epilogue fusion)")
    p.add_argument("--mcpu", default=None, help="LLVM CPU name (default: this machine)")
    p.add_argument("--batch", type=int, default=1, help="size bound to symbolic dims (default 1)")
    p.add_argument("--no-cache", action="store_true", help="ignore the on-disk kernel cache")
    add_json_argument(p)
    p.set_defaults(func=run)


def _target(value: str) -> str:
    if value == "llvm" or (value.startswith("accel:") and len(value) > len("accel:")):
        return value
    raise argparse.ArgumentTypeError(f"unknown target {value!r} (use llvm or accel:<accel>)")


def _compile_accel(args: argparse.Namespace) -> int:
    """``--target accel:...``: quantise, lower and write the listing + data sidecar."""
    from lwc.backends.accel import compile_accel

    if not args.output.endswith(".lasm"):
        raise InputError(f"{args.output}: an accelerator program is written as a .lasm listing")
    prog = compile_accel(load(args.model), args.target.split(":", 1)[1])
    prog.save(args.output)
    info = {"model": args.model, "program": args.output, "data": args.output + ".npz",
            "accel": prog.accel, "instructions": len(prog.instrs), "layers": len(prog.layers),
            "dram_bytes": int(prog.dram_init.size)}
    if args.json:
        print_json(info)
    else:
        console().print(f"wrote {info['program']} ({info['instructions']} instructions, "
                        f"{info['layers']} layers for {info['accel']}) and {info['data']} "
                        f"({info['dram_bytes'] / 2**20:.2f} MiB DRAM image)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.target.startswith("accel:"):
        return _compile_accel(args)
    from lwc.backends.llvm import build
    from lwc.backends.llvm.aot import write_shared_library

    graph = load(args.model)
    bindings = {s: args.batch for v in graph.inputs for s in v.type.symbols}
    art = build(graph, args.opt, args.mcpu, use_cache=not args.no_cache, bindings=bindings)
    lib = write_shared_library(art, Path(args.output), graph)
    p = art.program
    info = {"model": args.model, "library": str(lib), "header": str(lib.with_suffix(".h")),
            "target": {"triple": art.target.triple, "cpu": art.target.cpu},
            "compile_seconds": round(art.seconds, 3), "kernels": art.stats.kernels,
            "cache_hits": art.stats.cache_hits, "arena_bytes": p.arena_size,
            "sum_intermediates_bytes": p.sum_intermediates,
            "largest_intermediate_bytes": p.largest_intermediate, "weights_bytes": len(p.weights)}
    if args.json:
        print_json(info)
        return 0
    con = console()
    con.print(f"wrote {info['library']} and {info['header']} ({art.target.cpu})")
    con.print(f"compile {info['compile_seconds']:.2f}s, {info['kernels']} kernels "
              f"({info['cache_hits']} from cache)")
    con.print(f"arena {p.arena_size / 2**20:.2f} MiB (intermediates sum "
              f"{p.sum_intermediates / 2**20:.2f} MiB, largest "
              f"{p.largest_intermediate / 2**20:.2f} MiB), weights {len(p.weights) / 2**20:.2f} MiB")
    return 0
