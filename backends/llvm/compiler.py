"""``compile``: graph -> CompiledModel (prepare, lower, plan memory, generate code per kernel with
the on-disk cache, link the driver into an MCJIT engine)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import codegen
from lwc.backends.llvm.codegen import (CompileStats, compile_all, compile_cached, new_module,
                                       text_name)
from lwc.backends.llvm.fusion import prepare
from lwc.backends.llvm.jit import JitEngine, Runner, aligned_empty
from lwc.backends.llvm.lower import Program, emit_driver, lower_graph
from lwc.backends.llvm.plan import KernelDef
from lwc.backends.llvm.runtime import load_runtime, serial_runtime
from lwc.backends.llvm.target import Target, host_target
from lwc.errors import LwcError
from lwc.ir.core import Graph

log = logging.getLogger(__name__)


@dataclass
class Artifact:
    """Everything needed to run or to link a compiled model."""

    program: Program
    target: Target
    objects: dict[str, bytes]
    """Object code by module name: one per kernel, plus the driver."""
    stats: CompileStats
    seconds: float


def build(graph: Graph, opt_level: int = 3, mcpu: str | None = None,
          use_cache: bool = True, bindings: dict[str, int] | None = None) -> Artifact:
    t0 = time.perf_counter()
    target = host_target(mcpu)
    try:
        g = prepare(graph, opt_level, bindings)
        prog = lower_graph(g, target)
    except LwcError:
        raise
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise LwcError(f"graph @{graph.name}: llvm backend cannot compile it: {e}") from e
    stats = CompileStats()
    jobs = []
    for name, kdef in prog.kernels.items():
        def make(name: str = name, kdef: KernelDef = kdef) -> ir.Module:
            m = new_module(name, target)
            kdef.emit(m, name, kdef.spec)
            return m
        jobs.append((name, make))
    objects = compile_all(jobs, target, max(opt_level, 1), stats, use_cache)
    drv = emit_driver(prog, target)
    text = str(drv)
    dname = text_name("lwc_drv", text, target)
    objects[dname] = compile_cached(dname, lambda: drv, target, 1, stats, use_cache)
    dt = time.perf_counter() - t0
    log.info("compiled %s: %d kernels (%d cached), LLVM %.2fs, total %.2fs", graph.name,
             stats.kernels, stats.cache_hits, stats.llvm_seconds, dt)
    return Artifact(prog, target, objects, stats, dt)


class CompiledModel:
    """A model compiled for the CPU: ``run(inputs) -> outputs`` (by name) and ``save(path)``.

    One instance holds one workspace arena, so ``run`` must not be called concurrently on the same
    instance. ``threads`` sets the process-wide pool size (default: $LWC_NUM_THREADS or all cores).
    """

    def __init__(self, graph: Graph, art: Artifact, threads: int | None = None) -> None:
        self.source = graph
        self.artifact = art
        self.program = art.program
        self.graph = art.program.graph
        self.output_names = [v.name for v in graph.outputs]
        objs = list(art.objects.values())
        if load_runtime() is None:
            objs.append(codegen.optimise_and_emit(serial_runtime(art.target), art.target, 1))
        self.engine = JitEngine(objs, art.target)
        if threads is not None:
            self.engine.set_num_threads(threads)
        self.weights = art.program.weights  # aligned already; kernels only read it
        self.workspace = aligned_empty(max(64, art.program.arena_size))
        self._runner = Runner(self.engine, self.graph, self.weights, self.workspace)

    @property
    def arena_size(self) -> int:
        return self.program.arena_size

    @property
    def compile_seconds(self) -> float:
        return self.artifact.seconds

    def set_num_threads(self, n: int) -> None:
        self.engine.set_num_threads(n)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self._runner(inputs)
        vals = [outs[v.name] for v in self.graph.outputs]
        return dict(zip(self.output_names, vals))

    __call__ = run

    def save(self, path: str | Path) -> Path:
        """Write a shared library (plus ``.h`` header) loadable from C without Python."""
        from lwc.backends.llvm.aot import write_shared_library

        return write_shared_library(self.artifact, Path(path), self.source)

    def memory_report(self) -> dict[str, int]:
        p = self.program
        return {"arena_bytes": p.arena_size, "sum_intermediates_bytes": p.sum_intermediates,
                "largest_intermediate_bytes": p.largest_intermediate,
                "weights_bytes": len(p.weights)}


def compile(graph: Graph, opt_level: int = 3, threads: int | None = None, mcpu: str | None = None,
            use_cache: bool = True, bindings: dict[str, int] | None = None,
            **unknown: object) -> CompiledModel:
    """Compile ``graph`` for this CPU (or ``mcpu``) and load it in-process."""
    if unknown:
        raise LwcError(f"llvm backend: unknown option(s) {', '.join(sorted(unknown))}; known: "
                       "opt_level, threads, mcpu, use_cache, bindings")
    if opt_level not in (0, 1, 2, 3):
        raise LwcError(f"llvm backend: opt_level must be 0-3, got {opt_level!r}")
    art = build(graph, opt_level, mcpu, use_cache, bindings)
    return CompiledModel(graph, art, threads)
