"""Shared checks for the LLVM backend tests: compile a graph, run it, compare with the interpreter."""

from __future__ import annotations

import numpy as np

import lwc
from lwc.backends.llvm import compile as llvm_compile
from lwc.ir.types import DType, TensorType

RTOL = 1e-4


def assert_close(out: np.ndarray, ref: np.ndarray, what: str = "") -> None:
    """Shape, dtype, then values within 1e-4 relative to the reference's magnitude."""
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != {ref.shape}"
    assert out.dtype == ref.dtype, f"{what}: dtype {out.dtype} != {ref.dtype}"
    if ref.dtype.kind in "biu":
        np.testing.assert_array_equal(out, ref, err_msg=what)
        return
    scale = float(np.nanmax(np.abs(ref))) if ref.size and np.isfinite(ref).any() else 1.0
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=RTOL * max(scale, 1e-3), err_msg=what,
                               equal_nan=True)


def check_graph(g: lwc.Graph, inputs: dict[str, np.ndarray] | None = None, **kw: object):
    """Compile ``g`` with the LLVM backend and compare every output with the interpreter."""
    g.verify()
    inputs = inputs if inputs is not None else lwc.random_inputs(g, seed=1)
    ref = lwc.interpret(g, inputs)
    model = llvm_compile(g, **kw)
    out = model.run(inputs)
    assert set(out) == set(ref)
    for k in ref:
        assert_close(out[k], ref[k], k)
    return model


def f32(shape: tuple[int, ...]) -> TensorType:
    return TensorType(DType.F32, tuple(shape))


def single_op(op: str, in_shapes: list[tuple[int, ...]], attrs: dict | None = None,
              consts: dict[int, np.ndarray] | None = None, seed: int = 0) -> lwc.Graph:
    """A graph of one node whose operands are inputs, except those given in ``consts``."""
    g = lwc.Graph(op)
    rng = np.random.default_rng(seed)
    ins = []
    for i, s in enumerate(in_shapes):
        if consts and i in consts:
            ins.append(g.add_constant(consts[i], f"c{i}"))
        else:
            ins.append(g.add_input(f"x{i}", f32(s)))
    node = g.add_node(op, ins, attrs or {})
    g.outputs = list(node.outputs)
    _ = rng
    return g
