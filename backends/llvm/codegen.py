"""LLVM IR text -> optimised object code, one module per kernel, cached on disk.

A kernel's object is stored under its name, which already hashes (generator source, target,
spec); a model whose kernels are all cached compiles without running LLVM at all. Optimisation
uses llvmlite's new pass builder (the O3 pipeline includes the loop and SLP vectorisers).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir

from lwc.backends.llvm.target import Target


def cache_dir() -> Path:
    root = os.environ.get("LWC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lwc")
    return Path(root)


@dataclass
class CompileStats:
    kernels: int = 0
    cache_hits: int = 0
    llvm_seconds: float = 0.0
    per_kernel: dict[str, float] = field(default_factory=dict)


def new_module(name: str, target: Target) -> ir.Module:
    m = ir.Module(name=name)
    m.triple = target.triple
    m.data_layout = str(target.machine().target_data)
    return m


def optimise_and_emit(text: str, target: Target, opt: int) -> bytes:
    """Parse, verify, run the O``opt`` pipeline and emit an object file."""
    tm = target.machine(opt)
    mod = llvm.parse_assembly(text)
    mod.verify()
    if opt > 0:
        pto = llvm.create_pipeline_tuning_options(speed_level=opt)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pto.loop_unrolling = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    return tm.emit_object(mod)


def _cache_path(name: str) -> Path:
    return cache_dir() / "objects" / f"{name}.o"


def _store(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def compile_cached(name: str, build: Callable[[], ir.Module], target: Target, opt: int,
                   stats: CompileStats, use_cache: bool = True) -> bytes:
    """Object code for module ``name`` (built lazily by ``build``), from the cache if present."""
    path = _cache_path(f"{name}.O{opt}")
    stats.kernels += 1
    if use_cache and path.exists():
        stats.cache_hits += 1
        return path.read_bytes()
    t0 = time.perf_counter()
    obj = optimise_and_emit(str(build()), target, opt)
    dt = time.perf_counter() - t0
    stats.llvm_seconds += dt
    stats.per_kernel[name] = dt
    if use_cache:
        _store(path, obj)
    return obj


def text_name(prefix: str, text: str, target: Target) -> str:
    return f"{prefix}_{hashlib.sha1((target.key + text).encode()).hexdigest()[:20]}"


def _worker_compile(job: tuple[str, str, str, str, int]) -> bytes:
    text, triple, cpu, features, opt = job
    return optimise_and_emit(text, Target(triple, cpu, features), opt)


def compile_all(jobs: list[tuple[str, Callable[[], ir.Module]]], target: Target, opt: int,
                stats: CompileStats, use_cache: bool = True, workers: int | None = None
                ) -> dict[str, bytes]:
    """Object code for many modules: cache hits are read, misses are compiled in parallel
    (one process per core) when there are enough of them to pay for the process start."""
    out: dict[str, bytes] = {}
    misses: list[tuple[str, str]] = []
    for name, build in jobs:
        path = _cache_path(f"{name}.O{opt}")
        stats.kernels += 1
        if use_cache and path.exists():
            stats.cache_hits += 1
            out[name] = path.read_bytes()
        else:
            misses.append((name, str(build())))
    if not misses:
        return out
    t0 = time.perf_counter()
    n = workers if workers is not None else min(os.cpu_count() or 1, len(misses))
    if n > 1 and len(misses) >= 6:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(n, mp_context=mp.get_context("fork")) as ex:
            objs = list(ex.map(_worker_compile, [(t, target.triple, target.cpu, target.features, opt)
                                                 for _, t in misses], chunksize=1))
    else:
        objs = [optimise_and_emit(t, target, opt) for _, t in misses]
    stats.llvm_seconds += time.perf_counter() - t0
    for (name, _), obj in zip(misses, objs):
        out[name] = obj
        if use_cache:
            _store(_cache_path(f"{name}.O{opt}"), obj)
    return out
