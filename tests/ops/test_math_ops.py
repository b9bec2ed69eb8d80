"""Gemm, MatMul, Softmax, reductions and linear quantisation vs onnxruntime (via import)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lwc
from lwc.frontend.onnx.importer import import_model

from nn_oracle import EXAMPLES, compare, randn, run_ort, single_node_model

FAST = settings(max_examples=EXAMPLES, deadline=None)
seeds = st.integers(0, 2**16)


@FAST
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.booleans(), st.booleans(),
       st.sampled_from(["none", "scalar", "row", "col", "full", "vec"]),
       st.sampled_from([1.0, 0.5, -2.0]), st.sampled_from([1.0, 0.0, 3.0]), seeds)
def test_gemm_matches_onnxruntime(m: int, n: int, k: int, ta: bool, tb: bool, c_kind: str,
                                  alpha: float, beta: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = randn(rng, *((k, m) if ta else (m, k)))
    b = randn(rng, *((n, k) if tb else (k, n)))
    c_shape = {"none": None, "scalar": (), "row": (1, n), "col": (m, 1), "full": (m, n),
               "vec": (n,)}[c_kind]
    inits = {"b": b, "c": None if c_shape is None else randn(rng, *c_shape)}
    compare("Gemm", {"a": a}, inits, {"alpha": alpha, "beta": beta, "transA": int(ta),
                                      "transB": int(tb)}, opset=13)


def test_gemm_opset7_broadcasts_c() -> None:
    rng = np.random.default_rng(1)
    a, b, c = randn(rng, 3, 4), randn(rng, 4, 5), randn(rng, 5)
    compare("Gemm", {"a": a}, {"b": b, "c": c}, {}, opset=7)


@st.composite
def matmul_shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    batch = [draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2)))]
    ba = [d if draw(st.booleans()) else 1 for d in batch][draw(st.integers(0, len(batch))):]
    bb = [d if draw(st.booleans()) else 1 for d in batch][draw(st.integers(0, len(batch))):]
    sa = (k,) if draw(st.integers(0, 4)) == 0 else (*ba, m, k)
    sb = (k,) if draw(st.integers(0, 4)) == 0 else (*bb, k, n)
    return sa, sb


@FAST
@given(matmul_shapes(), seeds, st.booleans())
def test_matmul_matches_onnxruntime(shapes: tuple[tuple[int, ...], tuple[int, ...]], seed: int,
                                    const_b: bool) -> None:
    rng = np.random.default_rng(seed)
    a, b = randn(rng, *shapes[0]), randn(rng, *shapes[1])
    if const_b:
        compare("MatMul", {"a": a}, {"b": b})
    else:
        compare("MatMul", {"a": a, "b": b})


@FAST
@given(st.sampled_from(["Softmax", "LogSoftmax"]), st.integers(1, 4), st.sampled_from([11, 13]),
       st.data())
def test_softmax_matches_onnxruntime(op: str, rank: int, opset: int, data: st.DataObject) -> None:
    shape = [data.draw(st.integers(1, 4)) for _ in range(rank)]
    axis = data.draw(st.integers(-rank, rank - 1))
    x = randn(np.random.default_rng(data.draw(seeds)), *shape) * 3
    compare(op, {"x": x}, None, {"axis": axis}, opset=opset)


def test_softmax_old_opset_default_axis_is_one() -> None:
    """Before opset 13 softmax normalises everything after axis 1 jointly (the 2-D coercion)."""
    x = randn(np.random.default_rng(3), 2, 3, 4)
    out = compare("Softmax", {"x": x}, opset=11)
    np.testing.assert_allclose(out.got[0].reshape(2, -1).sum(axis=1), 1.0, rtol=1e-5)


@FAST
@given(st.sampled_from(["ReduceMean", "ReduceSum", "ReduceMax"]), st.integers(1, 4),
       st.sampled_from([11, 13, 18]), st.booleans(), st.booleans(), st.data())
def test_reduce_matches_onnxruntime(op: str, rank: int, opset: int, keepdims: bool,
                                    noop: bool, data: st.DataObject) -> None:
    shape = [data.draw(st.integers(1, 4)) for _ in range(rank)]
    axes = data.draw(st.lists(st.integers(-rank, rank - 1), max_size=rank,
                              unique_by=lambda a: a % rank))
    x = randn(np.random.default_rng(data.draw(seeds)), *shape)
    attrs: dict = {"keepdims": int(keepdims)}
    inits: dict = {}
    axes_as_input = opset >= (13 if op == "ReduceSum" else 18)
    if axes_as_input:
        inits["axes"] = np.array(axes, np.int64) if axes or data.draw(st.booleans()) else None
        attrs["noop_with_empty_axes"] = int(noop)
    elif axes:
        attrs["axes"] = axes
    compare(op, {"x": x}, inits, attrs, opset=opset)


@st.composite
def qparams(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray | None, int, np.ndarray]:
    rank = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 4)) for _ in range(rank)]
    axis = draw(st.integers(-rank, rank - 1))
    rng = np.random.default_rng(draw(seeds))
    per_axis = draw(st.booleans())
    n = shape[axis] if per_axis else 1
    scale = (rng.uniform(0.01, 0.5, n)).astype(np.float32)
    dtype = draw(st.sampled_from([np.int8, np.uint8, None]))
    lo = -20 if dtype is np.int8 else 0
    zp = None if dtype is None else rng.integers(lo, 20, n).astype(dtype)
    if not per_axis and draw(st.booleans()):
        scale, zp = scale.reshape(()), None if zp is None else zp.reshape(())
    x = (rng.standard_normal(shape) * 30).astype(np.float32)
    return scale, zp, axis, x


@FAST
@given(qparams())
def test_quantize_linear_matches_onnxruntime(q: tuple) -> None:
    scale, zp, axis, x = q
    compare("QuantizeLinear", {"x": x}, {"s": scale, "zp": zp}, {"axis": axis}, opset=13)


@FAST
@given(qparams())
def test_dequantize_linear_matches_onnxruntime(q: tuple) -> None:
    scale, zp, axis, x = q
    dt = np.uint8 if zp is None else zp.dtype
    xi = np.clip(np.rint(x), np.iinfo(dt).min, np.iinfo(dt).max).astype(dt)
    compare("DequantizeLinear", {"x": xi}, {"s": scale, "zp": zp}, {"axis": axis}, opset=13)


def test_quantize_rounds_half_to_even_and_saturates() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0], np.float32)
    out = compare("QuantizeLinear", {"x": x}, {"s": np.float32(1.0), "zp": np.int8(0)}, opset=13)
    assert out.got[0].tolist() == [0, 2, 2, 0, -2, 127, -128]


@pytest.mark.parametrize("opset", [10, 21])
def test_qdq_per_tensor_other_opsets(opset: int) -> None:
    x = randn(np.random.default_rng(0), 2, 3) * 10
    compare("QuantizeLinear", {"x": x}, {"s": np.float32(0.1), "zp": np.uint8(128)}, opset=opset)
    xi = np.arange(6, dtype=np.int8).reshape(2, 3)
    compare("DequantizeLinear", {"x": xi}, {"s": np.float32(0.1), "zp": np.int8(-3)}, opset=opset)


def test_reduce_noop_with_empty_axes_is_identity() -> None:
    x = randn(np.random.default_rng(0), 2, 3)
    out = compare("ReduceMean", {"x": x}, {"axes": None}, {"noop_with_empty_axes": 1}, opset=18)
    assert [n.op for n in out.graph.nodes] == ["identity"]
    np.testing.assert_array_equal(out.got[0], x)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_old_softmax_keeps_a_symbolic_batch(axis: int) -> None:
    x = randn(np.random.default_rng(1), 2, 3, 4)
    m = single_node_model("LogSoftmax", {"x": x}, {}, {"axis": axis}, 11)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    g = import_model(m)
    assert g.outputs[0].type.shape == ("N", 3, 4)
    got = lwc.interpret(g, {g.inputs[0].name: x})[g.outputs[0].name]
    np.testing.assert_allclose(got, run_ort(m, {"x": x})[0], rtol=1e-5, atol=1e-6)
