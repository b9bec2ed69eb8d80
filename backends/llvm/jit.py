"""In-process execution: kernel objects and the driver are loaded into one MCJIT engine; ``run``
calls ``lwc_run_w`` through ctypes, which releases the GIL for the whole model."""

from __future__ import annotations

import ctypes
from collections.abc import Mapping

import llvmlite.binding as llvm
import numpy as np

from lwc.backends.llvm.runtime import load_runtime
from lwc.backends.llvm.target import Target
from lwc.errors import InputError
from lwc.interp import check_inputs
from lwc.ir.core import Graph

RUN_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                            ctypes.c_void_p)


def aligned_empty(nbytes: int, align: int = 64) -> np.ndarray:
    raw = np.empty(nbytes + align, np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off: off + nbytes]


class JitEngine:
    """Owns the MCJIT engine (keep it alive while the function pointer is used)."""

    def __init__(self, objects: list[bytes], target: Target, entry: str = "lwc_run_w") -> None:
        rt = load_runtime()
        if rt is not None:
            for sym in ("lwc_parallel_for", "lwc_set_num_threads", "lwc_get_num_threads"):
                llvm.add_symbol(sym, ctypes.cast(getattr(rt, sym), ctypes.c_void_p).value)
        self.runtime = rt
        empty = llvm.parse_assembly(f'target triple = "{target.triple}"')
        self.engine = llvm.create_mcjit_compiler(empty, target.fresh_machine())
        for obj in objects:
            self.engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        self.engine.finalize_object()
        addr = self.engine.get_function_address(entry)
        if not addr:
            raise RuntimeError(f"JIT: symbol {entry} not found")
        self.fn = RUN_TYPE(addr)

    def set_num_threads(self, n: int) -> None:
        if self.runtime is not None:
            self.runtime.lwc_set_num_threads(int(n))


def run_compiled(engine: JitEngine, graph: Graph, weights: np.ndarray, workspace: np.ndarray,
                 inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check inputs against the compiled (static) shapes, run, return fresh output arrays."""
    check_inputs(graph, inputs)
    arrs = []
    for v in graph.inputs:
        a = np.asarray(inputs[v.name])
        if not a.flags.c_contiguous:
            a = a.copy(order="C")
        if tuple(a.shape) != v.type.concrete_shape():
            raise InputError(f"input {v.name}: shape {list(a.shape)} but the model was compiled "
                             f"for {list(v.type.concrete_shape())}")
        arrs.append(a)
    outs = [np.empty(v.type.concrete_shape(), v.type.dtype.numpy) for v in graph.outputs]
    in_ptrs = (ctypes.c_void_p * max(1, len(arrs)))(*[a.ctypes.data for a in arrs])
    out_ptrs = (ctypes.c_void_p * max(1, len(outs)))(*[o.ctypes.data for o in outs])
    engine.fn(ctypes.addressof(in_ptrs), ctypes.addressof(out_ptrs), workspace.ctypes.data,
              weights.ctypes.data)
    names: dict[str, np.ndarray] = {}
    for v, o in zip(graph.outputs, outs):
        names.setdefault(v.name, o)
    return names
