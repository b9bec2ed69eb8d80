"""ONNX export: onnxruntime must compute what the reference interpreter computes, op by op and for
every zoo model; the model must pass the ONNX checker; symbolic batches must stay symbolic."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import lwc
from lwc import zoo
from lwc.errors import UnsupportedOpError
from lwc.frontend.onnx.export import CUSTOM_DOMAIN, custom_ops, export_onnx, to_onnx
from lwc.ir.core import Graph, Value
from lwc.ir.types import DType, TensorType
from lwc.ops import registry
from lwc.ops.registry import Op, register_op

DOC = Path(__file__).resolve().parents[2] / "docs" / "onnx-custom-domain.md"


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_agrees(graph: Graph, feeds: dict[str, np.ndarray], opset: int = 17) -> onnx.ModelProto:
    """Export, check, run in onnxruntime and compare every output with the interpreter."""
    model = to_onnx(graph, opset)
    onnx.checker.check_model(model, full_check=True)
    ref = lwc.interpret(graph, feeds)
    got = run_ort(model, feeds)
    assert [o.name for o in model.graph.output] == [v.name for v in graph.outputs]
    for v, g in zip(graph.outputs, got):
        r = ref[v.name]
        assert g.shape == r.shape, v.name
        assert g.dtype == r.dtype, v.name
        if r.dtype.kind in "biu":
            np.testing.assert_array_equal(g, r, err_msg=v.name)
        else:
            tol = 1e-4 * max(1.0, float(np.abs(r).max()))
            assert float(np.abs(g.astype(np.float64) - r).max()) <= tol, v.name
    return model


def rand(shape: Sequence[int], seed: int = 0, dtype: str = "float32") -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 5, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def one_op_graph(op: str, inputs: Sequence[np.ndarray | tuple[Sequence[int], str]],
                 attrs: dict[str, Any] | None = None) -> tuple[Graph, dict[str, np.ndarray]]:
    """A graph of a single ``op`` node: arrays become constants, (shape, dtype) become inputs."""
    g = Graph(f"one_{op}")
    feeds: dict[str, np.ndarray] = {}
    vals: list[Value] = []
    for i, spec in enumerate(inputs):
        if isinstance(spec, np.ndarray):
            vals.append(g.add_constant(spec, f"c{i}"))
            continue
        shape, dtype = spec
        v = g.add_input(f"x{i}", TensorType(DType.from_numpy(np.dtype(dtype)), tuple(shape)))
        feeds[v.name] = rand(shape, seed=i, dtype=dtype)
        vals.append(v)
    node = g.add_node(op, vals, attrs or {}, name=op)
    g.outputs = list(node.outputs)
    g.verify()
    return g, feeds


F = "float32"
X4 = ((2, 6, 5, 5), F)
CASES: list[tuple[str, list[Any], dict[str, Any]]] = [
    *[(op, [X4], {}) for op in ("relu", "sigmoid", "tanh", "neg", "abs", "exp", "erf", "softplus",
                                "softsign", "floor", "ceil", "sign", "identity", "dropout",
                                "hard_swish", "global_avg_pool", "global_max_pool")],
    ("sqrt", [np.abs(rand((3, 4))) + 0.1], {}),
    ("log", [np.abs(rand((3, 4))) + 0.1], {}),
    ("reciprocal", [np.abs(rand((3, 4))) + 0.5], {}),
    *[(op, [X4, ((6, 1, 1), F)], {}) for op in ("add", "sub", "mul", "max", "min", "prelu")],
    ("div", [X4, np.abs(rand((6, 1, 1))) + 0.5], {}),
    ("pow", [np.abs(rand((3, 4))) + 0.5, ((4,), F)], {}),
    *[(op, [((3, 4), F), ((3, 4), F)], {}) for op in ("equal", "less", "greater",
                                                         "greater_equal", "less_equal")],
    *[(op, [((3, 4), "bool"), ((3, 4), "bool")], {}) for op in ("and", "or")],
    ("not", [((3, 4), "bool")], {}),
    ("where", [((3, 4), "bool"), ((3, 4), F), ((4,), F)], {}),
    ("clip", [X4], {"min": 0.0, "max": 6.0}),
    ("clip", [X4], {"max": 0.5}),
    ("clip", [X4], {"min": -0.25}),
    ("clip", [((3, 4), "int32")], {"min": 1.0, "max": 3.0}),
    ("leaky_relu", [X4], {"alpha": 0.2}),
    ("hard_sigmoid", [X4], {"alpha": 0.3, "beta": 0.4}),
    ("elu", [X4], {"alpha": 0.7}),
    ("selu", [X4], {}),
    ("shrink", [X4], {"lambd": 0.3, "bias": 0.1}),
    ("softmax", [((3, 7), F)], {"axis": 1}),
    ("log_softmax", [((3, 7), F)], {"axis": 0}),
    ("batch_norm", [X4, np.abs(rand((6,))) + 0.5, rand((6,), 1), rand((6,), 2),
                    np.abs(rand((6,), 3)) + 0.5], {"epsilon": 1e-3}),
    ("lrn", [X4], {"size": 3}),
    ("max_pool", [X4], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    ("max_pool", [X4], {"kernel": (2, 2), "strides": (2, 2), "ceil_mode": True}),
    ("max_pool", [X4], {"kernel": (2, 2), "dilations": (2, 2)}),
    ("avg_pool", [X4], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    ("avg_pool", [X4], {"kernel": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1),
                        "count_include_pad": True}),
    ("avg_pool", [X4], {"kernel": (2, 2), "strides": (2, 2), "ceil_mode": True}),
    ("conv", [X4, rand((4, 6, 3, 3)), rand((4,))], {"pads": (1, 0, 1, 2), "strides": (1, 2)}),
    ("conv", [X4, rand((6, 2, 3, 3))], {"group": 3, "dilations": (2, 2)}),
    ("conv_transpose", [X4, rand((6, 2, 3, 3)), rand((4,))],
     {"strides": (2, 2), "pads": (1, 1, 1, 1), "output_padding": (1, 1), "group": 2}),
    ("gemm", [((3, 5), F), rand((4, 5)), rand((4,))], {"trans_b": True, "alpha": 0.5,
                                                      "beta": 2.0}),
    ("gemm", [((5, 3), F), ((5, 4), F)], {"trans_a": True}),
    ("matmul", [((2, 3, 5), F), ((5, 4), F)], {}),
    ("reduce_mean", [X4], {"axes": (2, 3)}),
    ("reduce_mean", [X4], {}),
    ("reduce_sum", [X4], {"axes": (1,), "keepdims": False}),
    ("reduce_max", [X4], {"axes": (-1,)}),
    ("reshape", [X4], {"shape": (0, 3, -1)}),
    ("flatten", [X4], {"axis": 2}),
    ("transpose", [X4], {"perm": (0, 2, 3, 1)}),
    ("transpose", [((2, 3, 4), F)], {}),
    ("concat", [X4, ((2, 2, 5, 5), F)], {"axis": 1}),
    ("split", [X4], {"axis": 1, "sizes": (1, 2, 3)}),
    ("slice", [X4], {"starts": (1, 4), "ends": (5, 0), "axes": (1, 3), "steps": (2, -1)}),
    ("slice", [X4], {"starts": (0,), "ends": (3,)}),
    ("squeeze", [((2, 1, 3, 1), F)], {"axes": (1,)}),
    ("squeeze", [((2, 1, 3, 1), F)], {}),
    ("unsqueeze", [((2, 3), F)], {"axes": (0, 3)}),
    ("pad", [X4], {"pads": (0, 0, 1, 2, 0, 0, 2, 1), "value": 1.5}),
    ("pad", [X4], {"pads": (0, 0, 1, 2, 0, 0, 2, 1), "mode": "reflect"}),
    ("pad", [X4], {"pads": (0, 0, 1, 1, 0, 0, 1, 1), "mode": "edge"}),
    ("pad", [X4], {"pads": (0, 0, -1, 1, 0, 0, 1, -2)}),
    ("gather", [X4, np.array([2, 0, -1], dtype=np.int64)], {"axis": 1}),
    ("cast", [X4], {"to": "i32"}),
    ("cast", [((3, 4), "int32")], {"to": "f32"}),
    ("expand", [((3, 1), F)], {"shape": (2, 3, 4)}),
    ("tile", [((2, 3), F)], {"repeats": (2, 1)}),
    ("channel_shuffle", [X4], {"groups": 3}),
    ("depth_to_space", [((1, 8, 2, 3), F)], {"blocksize": 2}),
    ("quantize_linear", [X4, np.linspace(0.01, 0.2, 6, dtype=np.float32),
                         np.arange(-3, 3, dtype=np.int8)], {"axis": 1}),
    ("quantize_linear", [X4, np.array(0.02, np.float32), np.array(128, np.uint8)], {}),
    ("dequantize_linear", [((2, 6, 5, 5), "int8"), np.linspace(0.01, 0.2, 6, dtype=np.float32),
                           np.arange(-3, 3, dtype=np.int8)], {"axis": 1}),
    ("dequantize_linear", [((3, 4), "uint8"), np.array(0.5, np.float32),
                           np.array(2, np.uint8)], {}),
    ("depth_to_space", [((1, 8, 2, 3), F)], {"blocksize": 2, "mode": "CRD"}),
    # scales chosen so that no requantised value is an exact tie (x.5), where QDQ's two float
    # roundings and the fused single rounding may legitimately differ by 1
    *[(op, [((2, 4, 5, 5), "int8"), np.array(0.0371, np.float32), np.array(-1, np.int8),
            rand((6, 2, 3, 3), 3, "int8") - 2, np.array([0.113, 0.217, 0.0931] * 2, np.float32),
            np.zeros(6, np.int8), np.array(0.0137, np.float32), np.array(3, np.int8),
            np.arange(-3, 3, dtype=np.int32) * 7], attrs)
      for op, attrs in [("qlinear_conv", {"pads": (1, 1, 1, 1), "group": 2, "act": "relu"}),
                        ("qlinear_conv", {"strides": (2, 2), "act": "clip", "clip_min": -1.0,
                                          "clip_max": 2.0, "group": 2})]],
    ("qlinear_gemm", [((3, 8), "int8"), np.array(0.0371, np.float32), np.array(-1, np.int8),
                      rand((5, 8), 4, "int8") - 2, np.linspace(0.11, 0.31, 5).astype(np.float32),
                      np.zeros(5, np.int8), np.array(0.0237, np.float32), np.array(3, np.int8),
                      np.arange(5, dtype=np.int32)], {"trans_b": True, "act": "relu6"}),
    ("qlinear_add", [((2, 3, 4), "int8"), np.array(0.0371, np.float32), np.array(1, np.int8),
                     rand((3, 4), 5, "int8"), np.array(0.0533, np.float32), np.array(-2, np.int8),
                     np.array(0.0317, np.float32), np.array(0, np.int8)], {}),
    ("fake_quant", [X4], {"scale": 0.05, "zero_point": 3, "dtype": "i8"}),
]


def _case_id(case: tuple[str, list[Any], dict[str, Any]]) -> str:
    op, _, attrs = case
    return op + ("-" + "-".join(f"{k}" for k in attrs) if attrs else "")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_single_op_matches_onnxruntime(case: tuple[str, list[Any], dict[str, Any]]) -> None:
    op, inputs, attrs = case
    g, feeds = one_op_graph(op, inputs, attrs)
    model = assert_agrees(g, feeds)
    assert not custom_ops(model)


@pytest.mark.parametrize("opset", [13, 18, 21])
def test_opset_dependent_forms(opset: int) -> None:
    """Reduce axes move from attribute to input at 18; HardSwish exists only from 14."""
    for op, attrs in (("reduce_mean", {"axes": (1,)}), ("reduce_max", {"axes": (2, 3)}),
                      ("reduce_sum", {"axes": (0,)}), ("hard_swish", {})):
        g, feeds = one_op_graph(op, [X4], attrs)
        assert_agrees(g, feeds, opset=opset)


def test_every_registered_op_has_an_export() -> None:
    """A new op must get an ONNX mapping or a documented ai.lwc form; this catches both misses."""
    from lwc.frontend.onnx import export

    mapped = set(export.SIMPLE) | set(export.RENAMED_ATTRS) | set(export.SHAPE_INPUTS)
    mapped |= set(export.HANDLERS)
    binary = set(export.export_binary.HANDLERS)  # exact cases: tests/frontend/test_export_binary.py
    documented = set(re.findall(r"^### `([a-z_0-9]+)`", DOC.read_text(), flags=re.M))
    missing = set(registry.registered_ops()) - mapped - documented
    assert not missing, f"ops with neither an ONNX mapping nor a documented custom form: {missing}"
    tested = {c[0] for c in CASES}
    assert mapped - tested == set(), "every mapping needs a single-op case"
    from tests.frontend.test_export_binary import CASES as BINARY_CASES

    assert binary == {c[0] for c in BINARY_CASES}, "every binary export needs an exact case"


ACTS: list[dict[str, Any]] = [
    {}, {"act": "relu"}, {"act": "relu6"}, {"act": "clip", "clip_min": -0.5, "clip_max": 0.5},
    {"act": "leaky_relu"}, {"act": "hard_swish"}, {"act": "sigmoid"},
]


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.get("act", "none"))
def test_fused_conv_and_gemm_export_exactly(act: dict[str, Any], residual: bool) -> None:
    g = Graph("fused")
    x = g.add_input("x", TensorType(DType.F32, ("N", 4, 6, 6)))
    w, b = g.add_constant(rand((4, 4, 3, 3), 1), "w"), g.add_constant(rand((4,), 2), "b")
    conv_ins = [x, w, b] + ([x] if residual else [])
    conv_attrs = {**act, "pads": (1, 1, 1, 1), "residual": residual}
    if act.get("act") == "leaky_relu":
        conv_attrs["alpha"] = 0.3
    y = g.add_node("conv", conv_ins, conv_attrs, name="conv").output
    flat = g.add_node("flatten", [y], {"axis": 1}, name="flat").output
    gw, gb = g.add_constant(rand((144, 144), 3) * 0.1, "gw"), g.add_constant(rand((144,), 4), "gb")
    gemm_attrs = {**act, "trans_b": True, "residual": residual}
    if act.get("act") == "leaky_relu":
        gemm_attrs["alpha_act"] = 0.05
    gemm_ins = [flat, gw, gb] + ([flat] if residual else [])
    z = g.add_node("gemm", gemm_ins, gemm_attrs, name="gemm").output
    g.outputs = [z]
    g.verify()
    assert_agrees(g, {"x": rand((3, 4, 6, 6), 5)})


def test_channel_shuffle_with_symbolic_dims() -> None:
    """Batch and spatial symbols: 0 copies the batch, -1 or Shape() recovers the rest."""
    for shape in (("N", 6, 4, 5), ("N", 6, "H", 5), ("N", 6, "H", "W")):
        g = Graph("shuffle")
        x = g.add_input("x", TensorType(DType.F32, shape))
        g.outputs = [g.add_node("channel_shuffle", [x], {"groups": 2}, name="cs").output]
        assert_agrees(g, {"x": rand((3, 6, 4, 5))})


def test_symbolic_batch_becomes_dim_param() -> None:
    g = zoo.build("lenet5", batch="N")
    model = to_onnx(g)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [1, 32, 32]
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"


def test_rejects_unsupported_opset() -> None:
    with pytest.raises(UnsupportedOpError, match="opset 11"):
        to_onnx(zoo.build("mlp"), opset=11)


@pytest.fixture
def custom_op() -> Iterator[str]:
    """A throwaway op with no ONNX form, removed from the registry afterwards."""
    name = "test_export_scaled_swish"

    @register_op
    class ScaledSwish(Op):
        """x * sigmoid(beta * x)."""

        name = "test_export_scaled_swish"
        attrs = {"beta": registry.Attr("float", 1.0), "tag": registry.Attr("ints", ())}

        def infer(self, ins: Any, attrs: Any) -> list[TensorType]:
            return [ins[0]]

        def compute(self, xs: Any, attrs: Any) -> list[np.ndarray]:
            return [xs[0] / (1 + np.exp(-attrs["beta"] * xs[0]))]

    yield name
    registry._REGISTRY.pop(name, None)


def test_custom_domain(custom_op: str, caplog: pytest.LogCaptureFixture) -> None:
    g, _ = one_op_graph(custom_op, [X4], {"beta": 1.5, "tag": (1, 2)})
    model = to_onnx(g)
    onnx.checker.check_model(model)
    node = model.graph.node[0]
    assert (node.domain, node.op_type) == (CUSTOM_DOMAIN, custom_op)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"beta": pytest.approx(1.5), "tag": [1, 2]}
    assert {(o.domain, o.version) for o in model.opset_import} >= {(CUSTOM_DOMAIN, 1)}
    assert custom_ops(model) == [custom_op]
    assert {p.key: p.value for p in model.metadata_props}["lwc.custom_ops"] == custom_op
    assert "onnxruntime cannot run" in caplog.text
    with pytest.raises(UnsupportedOpError, match=custom_op):
        to_onnx(g, allow_custom=False)


def test_export_onnx_writes_atomically(tmp_path: Path) -> None:
    g = zoo.build("mlp")
    path = tmp_path / "sub" / "mlp.onnx"
    export_onnx(g, path)
    model = onnx.load(str(path))
    x = lwc.random_inputs(g)
    np.testing.assert_allclose(run_ort(model, x)[0], lwc.interpret(g, x)["output"], rtol=1e-5,
                               atol=1e-5)
    bad = tmp_path / "bad.onnx"
    with pytest.raises(UnsupportedOpError):
        export_onnx(g, bad, opset=5)
    assert not bad.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


SMALL = {"xception": {"resolution": 71, "middle_blocks": 2}}


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_matches_onnxruntime_at_batch_2(name: str) -> None:
    """Each zoo model with a symbolic batch: checker, dim_param, and ORT == interpreter at N=2."""
    g = zoo.build(name, batch="N", **SMALL.get(name, {}))
    model = assert_agrees(g, lwc.random_inputs(g, seed=1, batch=2))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert not custom_ops(model)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_export_import_round_trip(name: str) -> None:
    """zoo -> ONNX -> lwc importer -> interpreter gives the original graph's outputs (at low
    resolution: the full-size models are already checked against onnxruntime above)."""
    from lwc.frontend.onnx.importer import import_model

    opts = {} if name in ("lenet5", "mlp") else SMALL.get(name, {"resolution": 64})
    g = zoo.build(name, batch="N", **opts)
    back = import_model(to_onnx(g))
    back.verify()
    x = lwc.random_inputs(g, seed=2, batch=2)
    ref, got = lwc.interpret(g, x)["output"], lwc.interpret(back, x)["output"]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
