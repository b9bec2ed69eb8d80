"""Binary-network ops export to standard ONNX that onnxruntime runs bit-exactly like the
interpreter, ties (x == 0, x == ±t, x == tau) and NaN included; float16 falls back to ai.lwc."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest

import lwc
from lwc.frontend.onnx.export import CUSTOM_DOMAIN, custom_ops, to_onnx
from lwc.frontend.onnx.importer import import_model
from lwc.ir.core import Graph
from lwc.ir.types import DType, TensorType
from tests.frontend.test_export import run_ort

RNG = np.random.default_rng(7)


def with_ties(shape: tuple[int, ...], ties: list[float]) -> np.ndarray:
    """Random values, about a third of them replaced by the given tie values (and one NaN)."""
    x = RNG.standard_normal(shape).astype(np.float32)
    pick = RNG.random(shape) < 0.35
    x[pick] = RNG.choice(np.asarray(ties, np.float32), int(pick.sum()))
    x.reshape(-1)[3] = np.nan
    return x


def graph_of(op: str, x: np.ndarray, consts: list[np.ndarray | None], attrs: dict[str, Any],
             dynamic: bool) -> tuple[Graph, dict[str, np.ndarray]]:
    """x is an input; each const is a constant, or a graph input when ``dynamic``."""
    g = Graph(f"one_{op}")
    dt = DType.from_numpy(x.dtype)
    feeds = {"x": x}
    vals = [g.add_input("x", TensorType(dt, x.shape))]
    for i, c in enumerate(consts):
        if c is None:
            continue
        if dynamic:
            vals.append(g.add_input(f"p{i}", TensorType(DType.from_numpy(c.dtype), c.shape)))
            feeds[f"p{i}"] = c
        else:
            vals.append(g.add_constant(c, f"p{i}"))
    g.outputs = [g.add_node(op, vals, attrs, name=op).output]
    g.verify()
    return g, feeds


def assert_exact(g: Graph, feeds: dict[str, np.ndarray]) -> onnx.ModelProto:
    model = to_onnx(g)
    onnx.checker.check_model(model, full_check=True)
    assert not custom_ops(model)
    want = lwc.interpret(g, feeds)[g.outputs[0].name]
    got = run_ort(model, feeds)[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    # and lwc reads its own export back to the same results
    back = import_model(model)
    np.testing.assert_array_equal(lwc.interpret(back, feeds)[back.outputs[0].name], want)
    return model


W = RNG.standard_normal((8, 6, 3, 3)).astype(np.float32)
W[0, 0, 0, 0] = 0.0  # sign(0) = +1
ALPHA = np.abs(RNG.standard_normal(8)).astype(np.float32) + 0.1

CASES = [
    ("binarize", with_ties((2, 6, 5, 5), [0.0, -0.0]), [], {}),
    ("ternarize", with_ties((2, 6, 5, 5), [0.5, -0.5, 0.0]), [], {"threshold": 0.5}),
    ("sign_threshold", with_ties((2, 6, 5, 5), [0.25, -1.0]),
     [np.array([0.25, -1.0, 0.25, 0.0, -1.0, 0.25], np.float32),
      np.array([1, -1, -1, 1, 1, 0], np.float32)], {}),
    ("xnor_conv", with_ties((2, 6, 7, 7), [0.0]), [W, ALPHA],
     {"pads": (1, 0, 2, 1), "strides": (1, 2)}),
    ("xnor_conv", with_ties((2, 6, 7, 7), [0.0, 0.5, -0.5]), [W, None],
     {"pads": (1, 1, 1, 1), "dilations": (2, 1), "input": "ternary", "threshold": 0.5}),
    ("xnor_gemm", with_ties((3, 70), [0.0]), [RNG.standard_normal((5, 70)).astype(np.float32),
                                               ALPHA[:5]], {}),
    ("xnor_gemm", with_ties((3, 70), [0.3, -0.3]),
     [RNG.standard_normal((5, 70)).astype(np.float32), None],
     {"input": "ternary", "threshold": 0.3}),
]


@pytest.mark.parametrize("dynamic", [False, True], ids=["const", "dynamic"])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_binary_op_exports_exactly(case: tuple, dynamic: bool) -> None:
    op, x, consts, attrs = case
    assert_exact(*graph_of(op, x, consts, attrs, dynamic))


def test_constant_weights_are_int8_signs_not_floats() -> None:
    g, feeds = graph_of("xnor_conv", with_ties((1, 6, 5, 5), [0.0]), [W, ALPHA], {}, False)
    model = assert_exact(g, feeds)
    inits = {t.name: t for t in model.graph.initializer}
    assert "p0" not in inits, "the float weights must not be exported"
    signs = [t for t in inits.values() if t.data_type == onnx.TensorProto.INT8]
    assert len(signs) == 1 and list(signs[0].dims) == list(W.shape)
    np.testing.assert_array_equal(onnx.numpy_helper.to_array(signs[0]), np.where(W >= 0, 1, -1))


def test_float16_falls_back_to_the_custom_domain() -> None:
    x = RNG.standard_normal((1, 6, 5, 5)).astype(np.float16)
    g, _ = graph_of("xnor_conv", x, [W.astype(np.float16), None], {}, False)
    model = to_onnx(g)
    assert custom_ops(model) == ["xnor_conv"]
    assert [n.domain for n in model.graph.node] == [CUSTOM_DOMAIN]
