"""Graph -> Program: kernel calls with resolved buffer locations, the weights blob, the arena size,
and the driver module ``lwc_run_w(inputs, outputs, workspace, weights)`` that makes every call
in order (through ``lwc_parallel_for`` when a call is worth splitting). No Python runs between
kernels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb, memplan
from lwc.backends.llvm.irb import I32, I64, I8, KERNEL_TYPE, PTR, VOID, i64
from lwc.backends.llvm.plan import LOWERINGS, Buf, Call, KernelDef, LowerCtx
from lwc.backends.llvm.target import Target
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Graph, Value

PARALLEL_MIN_WORK = 16384
"""Calls doing fewer element-operations than this run on the calling thread only."""


@dataclass(frozen=True)
class Loc:
    """A resolved pointer: base ("in", "out", "ws", "w") with index (in/out) and byte offset."""

    base: str
    index: int
    offset: int


@dataclass
class Program:
    graph: Graph
    calls: list[Call]
    locs: list[list[Loc]]
    kernels: dict[str, KernelDef]
    """Unique kernels by symbol name."""
    weights: np.ndarray
    """The weights blob: uint8, 64-byte aligned."""
    arena_size: int
    sum_intermediates: int
    largest_intermediate: int
    stats: dict[str, int] = field(default_factory=dict)


def _import_kernels() -> None:
    from lwc.backends.llvm.kernels import (  # noqa: F401  (register lowerings)
        conv, elementwise, int8, matmul, pool, reduce, tensor)
    from lwc.backends.llvm.kernels import xnor  # noqa: F401  (binary/ternary kernels)


def lower_graph(graph: Graph, target: Target, inplace: bool = True) -> Program:
    _import_kernels()
    from lwc.backends.llvm.kernels.tensor import copy_value

    al = memplan.plan_aliases(graph, inplace=inplace)
    ctx = LowerCtx(target.vector_width, target.num_vector_regs, inplace_concat=al.inplace_concat,
                   features=frozenset(target.features.split(",")))
    for t, node in enumerate(graph.nodes):
        ctx.step, ctx.node = t, node
        if node.op in memplan.VIEW_OPS:
            continue
        if (fn := LOWERINGS.get(node.op)) is None:
            raise UnsupportedOpError(f"node {node.label}: op {node.op} has no llvm lowering")
        fn(node, ctx)
    ctx.step, ctx.node = len(graph.nodes), None
    for i in al.output_copies:
        v = graph.outputs[i]
        copy_value(ctx, ctx.buf(v), Buf("output", index=i), v.type.nbytes())
    layout = memplan.assign(graph, al, ctx.scratch)
    weights, const_off = _weights_blob(graph, al, ctx)
    locs = [[_resolve(b, al, layout, const_off) for b in c.args] for c in ctx.calls]
    kernels = {c.kernel.name(target.key): c.kernel for c in ctx.calls}
    return Program(graph, ctx.calls, locs, kernels, weights, layout.arena_size,
                   layout.sum_intermediates, layout.largest)


def _align(n: int) -> int:
    return (n + 63) // 64 * 64


def _weights_blob(graph: Graph, al: memplan.Aliases, ctx: LowerCtx
                  ) -> tuple[np.ndarray, dict[tuple[str, int], int]]:
    """Lay out used graph constants and derived arrays, 64-byte aligned, in one 64-byte aligned
    uint8 array (filled in place: models with 100M+ parameters must not be copied repeatedly)."""
    from lwc.backends.llvm.jit import aligned_empty

    used: dict[int, Value] = {}
    for c in ctx.calls:
        for b in c.args:
            if b.kind == "value" and b.value is not None:
                g = al.group[id(b.value)]
                if g.anchor and g.anchor[0] == "const":
                    root = next(v for v, _ in g.members.values() if v.data is not None)
                    used[id(root)] = root
    offs: dict[tuple[str, int], int] = {}
    items: list[tuple[tuple[str, int], np.ndarray]] = [(("v", k), np.asarray(v.data))
                                                       for k, v in used.items()]
    items += [(("c", i), a) for i, a in enumerate(ctx.consts)]
    pos = 0
    for key, arr in items:
        pos = _align(pos)
        offs[key] = pos
        pos += arr.nbytes
    blob = aligned_empty(pos + 64)
    blob[:] = 0
    for key, arr in items:
        o = offs[key]
        flat = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
        blob[o: o + flat.size] = flat
    return blob, offs


def _resolve(b: Buf, al: memplan.Aliases, layout: memplan.Layout,
             const_off: dict[tuple[str, int], int]) -> Loc:
    if b.kind == "const":
        return Loc("w", 0, const_off[("c", b.index)] + b.offset)
    if b.kind == "scratch":
        return Loc("ws", 0, layout.scratch_offset[(b.step, b.index)] + b.offset)
    if b.kind == "output":
        return Loc("out", b.index, b.offset)
    assert b.value is not None
    g = al.group[id(b.value)]
    off = al.offset[id(b.value)] + b.offset
    if g.anchor is None:
        return Loc("ws", 0, layout.group_offset[id(g)] + off)
    kind, idx = g.anchor
    if kind == "const":
        root = next(v for v, _ in g.members.values() if v.data is not None)
        return Loc("w", 0, const_off[("v", id(root))] + off)
    return Loc(kind, idx, off)


def emit_driver(prog: Program, target: Target, name: str = "lwc_run_w") -> ir.Module:
    from lwc.backends.llvm.codegen import new_module

    m = new_module("driver", target)
    fty = ir.FunctionType(I32, [PTR, PTR, PTR, PTR])
    fn = ir.Function(m, fty, name=name)
    ins, outs, ws, wb = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pfor = ir.Function(m, ir.FunctionType(VOID, [PTR, PTR, I64]), name="lwc_parallel_for")
    decls: dict[str, ir.Function] = {}
    for kname in prog.kernels:
        decls[kname] = ir.Function(m, KERNEL_TYPE, name=kname)
    arrays = [b.alloca(PTR, size=max(1, len(locs))) for locs in prog.locs]
    cache: dict[tuple[str, int], ir.Value] = {}

    def base(loc: Loc) -> ir.Value:
        key = (loc.base, loc.index)
        if key not in cache:
            if loc.base in ("in", "out"):
                arr = ins if loc.base == "in" else outs
                cache[key] = b.load(irb.gep(b, arr, loc.index, PTR), typ=PTR)
            else:
                cache[key] = ws if loc.base == "ws" else wb
        return cache[key]

    for call, locs, arr in zip(prog.calls, prog.locs, arrays):
        for k, loc in enumerate(locs):
            p = irb.gep(b, base(loc), loc.offset, I8)
            irb.store(b, p, arr, k)
        kfn = decls[call.kernel.name(target.key)]
        if call.items > 1 and call.work >= PARALLEL_MIN_WORK:
            b.call(pfor, [kfn, arr, i64(call.items)])
        else:
            b.call(kfn, [arr, i64(0), i64(call.items)])
    b.ret(ir.Constant(I32, 0))
    return m
