"""The textual IR: canonical printing, exact round trips (text, structure, weights, outputs), the
``.lwc`` + ``.npz`` files, and located one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from strategies import BUILDERS, assert_same_graph, available_ops, graphs

import lwc
from lwc.errors import LwcError, ModelFormatError, ParseError, VerifyError
from lwc.ir import DType, Graph, QuantParams, TensorType
from lwc.ir.parser import format_error, parse_graph
from lwc.ir.printer import print_graph, sidecar_arrays
from lwc.ir.textio import load_text, save_text

CONV_RELU = """\
# lwc textual IR; weights in conv_relu.npz
graph @conv_relu(%x: f32[N,3,8,8]) -> (f32[N,2,8,8], f32[N,2,8,8]) {
  %w = const(@w) : f32[4,3,3,3]
  %b = const(dense<[0.5, -1.0, 0.25, 3.0]>) : f32[4]
  %y = conv(%x, %w, %b) {pads=[1,1,1,1], act="relu"} : f32[N,4,8,8] loc("conv1")
  %a, %b2 = split(%y) {axis=1, sizes=[2,2]} : f32[N,2,8,8], f32[N,2,8,8]
  return %a, %b2
}
"""


def _weights() -> dict[str, np.ndarray]:
    return {"w": np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)}


def roundtrip(g: Graph) -> Graph:
    """print -> parse, checking that the text is a fixed point and the structure is unchanged."""
    text = print_graph(g)
    g2 = parse_graph(text, weights=sidecar_arrays(g))
    assert print_graph(g2) == text
    assert_same_graph(g2, g)
    return g2


def assert_same_outputs(a: Graph, b: Graph, batch: int = 2) -> None:
    inputs = lwc.random_inputs(a, seed=1, batch=batch)
    out_a, out_b = lwc.interpret(a, inputs), lwc.interpret(b, inputs)
    assert list(out_a) == list(out_b)
    for k in out_a:
        assert out_a[k].shape == out_b[k].shape
        assert out_a[k].dtype == out_b[k].dtype
        np.testing.assert_array_equal(out_a[k], out_b[k])


# ----- hand-written text ----------------------------------------------------------------------
def test_canonical_text_is_a_fixed_point() -> None:
    g = parse_graph(CONV_RELU, "conv_relu.lwc", weights=_weights())
    assert print_graph(g, weights_file="conv_relu.npz") == CONV_RELU


def test_parsed_graph_holds_what_the_text_says() -> None:
    g = parse_graph(CONV_RELU, weights=_weights())
    assert g.name == "conv_relu"
    assert [v.name for v in g.inputs] == ["x"]
    assert g.inputs[0].type == TensorType(DType.F32, ("N", 3, 8, 8))
    assert [v.name for v in g.outputs] == ["a", "b2"]
    conv, split = g.nodes
    assert (conv.op, conv.name, conv.attrs) == ("conv", "conv1", {"pads": (1, 1, 1, 1),
                                                                 "act": "relu"})
    assert split.attrs == {"axis": 1, "sizes": (2, 2)}
    assert split.name == ""
    np.testing.assert_array_equal(g.constants["b"].data, np.float32([0.5, -1.0, 0.25, 3.0]))
    np.testing.assert_array_equal(g.constants["w"].data, _weights()["w"])
    assert not g.constants["w"].data.flags.writeable


def test_parsed_graph_computes_like_the_api_built_one() -> None:
    w = _weights()["w"]
    ref = Graph("conv_relu")
    x = ref.add_input("x", TensorType(DType.F32, ("N", 3, 8, 8)))
    y = ref.add_node("conv", [x, ref.add_constant(w, "w"),
                               ref.add_constant(np.float32([0.5, -1.0, 0.25, 3.0]), "b")],
                     {"pads": [1, 1, 1, 1], "act": "relu"}, name="conv1", output_names=["y"])
    split = ref.add_node("split", [y.output], {"axis": 1, "sizes": [2, 2]},
                         output_names=["a", "b2"])
    ref.outputs = list(split.outputs)
    parsed = parse_graph(CONV_RELU, weights={"w": w})
    assert_same_graph(parsed, ref)
    assert_same_outputs(parsed, ref)


def test_comments_whitespace_and_nested_dense_are_accepted() -> None:
    text = """graph @g(%x: f32[2,2]) -> (f32[2,2]) {   # header
      # a comment line
      %k = const(dense<[[1.0, 2.0], [3.0, 4.5]]>) : f32[2,2]
      %y   =   add( %x ,%k )   : f32[2,2]
      return %y
    }"""
    g = parse_graph(text)
    np.testing.assert_array_equal(g.constants["k"].data, np.float32([[1, 2], [3, 4.5]]))
    roundtrip(g)


# ----- exactness ------------------------------------------------------------------------------
TRICKY = [0.1, 1 / 3, -0.0, 1e-45, 1.17549435e-38, 3.4028235e38, float("inf"), float("-inf"),
          2.0**-24, 65504.0, 1e-7, -123456.789]


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_float_constants_round_trip_bit_exactly(dtype: type) -> None:
    with np.errstate(over="ignore"):
        data = np.array([*TRICKY, float("nan")], dtype=dtype)
    g = Graph()
    x = g.add_input("x", TensorType.of(data))
    g.outputs = [g.add_node("add", [x, g.add_constant(data, "k")]).output]
    g2 = roundtrip(g)
    assert g2.constants["k"].data.tobytes() == data.tobytes()


@pytest.mark.parametrize(("dtype", "values"), [
    (np.int8, [-128, 127, 0, -1]), (np.uint8, [0, 255, 7]), (np.int32, [-(2**31), 2**31 - 1]),
    (np.int64, [-(2**63), 2**63 - 1, 5]), (np.int16, [-32768, 32767]), (np.bool_, [True, False]),
])
def test_int_and_bool_constants_round_trip_exactly(dtype: type, values: list[int]) -> None:
    data = np.array(values, dtype=dtype)
    g = Graph()
    k = g.add_constant(data, "k")
    g.outputs = [k]
    g2 = roundtrip(g)
    np.testing.assert_array_equal(g2.constants["k"].data, data)
    assert g2.constants["k"].data.dtype == data.dtype


def test_large_constants_go_to_the_sidecar_small_ones_inline() -> None:
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, (17,)))
    big = g.add_constant(np.arange(17, dtype=np.float32), "big")
    small = g.add_constant(np.arange(16, dtype=np.float32).reshape(4, 4), "small")
    g.outputs = [g.add_node("add", [x, big]).output, small]
    text = print_graph(g)
    assert "const(@big)" in text
    assert "const(dense<[0.0, 1.0," in text
    assert list(sidecar_arrays(g)) == ["big"]
    roundtrip(g)


def test_attribute_values_round_trip() -> None:
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, (1, 2, 5, 5)))
    a = g.add_node("clip", [x], {"min": float("-inf"), "max": 0.1}).output
    b = g.add_node("leaky_relu", [a], {"alpha": 1e-300}).output
    c = g.add_node("clip", [b], {"min": -2.5}).output
    g.outputs = [c]
    text = print_graph(g)
    assert "clip(%x) {max=0.1}" in text  # -inf is clip's default, so it is left out
    assert "{alpha=1e-300}" in text
    assert "clip(%leaky_relu) {min=-2.5}" in text
    roundtrip(g)


def test_quantised_types_round_trip() -> None:
    q_tensor = QuantParams(scale=(0.1,), zero_point=(-3,))
    q_channel = QuantParams(scale=(0.5, 1 / 3, 1e-9), zero_point=(0, 1, 2), axis=0, bits=4)
    g = Graph()
    x = g.add_input("x", TensorType(DType.I8, (2, 3), q_tensor))
    w = g.add_constant(np.array([[1], [2], [-3]], dtype=np.int8), "w")
    w.type = TensorType(DType.I8, (3, 1), q_channel)
    g.outputs = [x, w]
    text = print_graph(g)
    assert "!q(scale=[0.1], zero_point=[-3])" in text
    assert "axis=0, bits=4)" in text
    g2 = roundtrip(g)
    assert g2.inputs[0].type.quant == q_tensor
    assert g2.constants["w"].type.quant == q_channel


def test_odd_names_labels_and_symbols_are_quoted() -> None:
    g = Graph("main graph")
    x = g.add_input("x", TensorType(DType.F32, ("batch size", "inf", 4)))
    n = g.add_node("relu", [x], name='/features/0/Relu "quoted" \\ ünï\n')
    n.outputs[0].name = "a b"  # a name the graph would not make itself, still printable
    g._names.add("a b")
    g.outputs = [n.output, x]
    text = print_graph(g)
    assert '@"main graph"' in text
    assert '%"a b"' in text
    assert 'f32["batch size","inf",4]' in text
    g2 = roundtrip(g)
    assert g2.nodes[0].name == '/features/0/Relu "quoted" \\ ünï\n'
    assert [v.name for v in g2.outputs] == ["a b", "x"]


def test_printing_is_deterministic_and_leaves_defaults_out() -> None:
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, (1, 2, 4, 4)))
    w = g.add_constant(np.ones((2, 2, 1, 1), np.float32), "w")
    n = g.add_node("conv", [x, w], {"strides": [1, 1], "group": 1, "act": "", "pads": [0] * 4})
    n.attrs = {"act": "", "group": 1}  # defaults stored explicitly: still not printed
    g.outputs = [n.output]
    assert print_graph(g) == print_graph(g)
    assert "conv(%x, %w) : f32[1,2,4,4]" in print_graph(g)


# ----- files ----------------------------------------------------------------------------------
def test_save_and_load_text_with_sidecar(tmp_path: Path) -> None:
    g = parse_graph(CONV_RELU, weights=_weights())
    path = tmp_path / "conv_relu.lwc"
    save_text(g, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv_relu.lwc", "conv_relu.npz"]
    assert path.read_text() == CONV_RELU
    with np.load(tmp_path / "conv_relu.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["w"]
    g2 = load_text(path)
    assert_same_graph(g2, g)
    assert_same_outputs(g2, g)


def test_graph_without_large_constants_needs_no_sidecar(tmp_path: Path) -> None:
    g = Graph("tiny")
    x = g.add_input("x", TensorType(DType.F32, (3,)))
    g.outputs = [g.add_node("add", [x, g.add_constant(np.float32([1, 2, 3]), "k")]).output]
    save_text(g, tmp_path / "tiny.lwc")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.lwc"]
    assert_same_graph(load_text(tmp_path / "tiny.lwc"), g)


def test_weight_names_that_clash_with_numpy_keywords_survive(tmp_path: Path) -> None:
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, (20,)))
    y = g.add_node("add", [x, g.add_constant(np.arange(20, dtype=np.float32), "file")]).output
    z = g.add_node("mul", [y, g.add_constant(np.ones(20, np.float32), "allow_pickle")]).output
    g.outputs = [z]
    save_text(g, tmp_path / "m.lwc")
    assert_same_graph(load_text(tmp_path / "m.lwc"), g)


def test_missing_sidecar_names_the_weight(tmp_path: Path) -> None:
    (tmp_path / "m.lwc").write_text(CONV_RELU)
    with pytest.raises(ParseError, match=r"m\.lwc:3:14: error: weight @w is referenced but no"):
        load_text(tmp_path / "m.lwc")


def test_text_path_may_not_be_the_sidecar(tmp_path: Path) -> None:
    g = parse_graph(CONV_RELU, weights=_weights())
    with pytest.raises(ModelFormatError, match="must not be named .npz"):
        save_text(g, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_missing_file_is_a_model_format_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no such file"):
        load_text(tmp_path / "absent.lwc")


# ----- errors ---------------------------------------------------------------------------------
BAD_CASES = [
    # (replace this, with that, error class, expected "line:col: error: message" regex)
    ("%w = const(@w) :", "%w = const(@w)", ParseError, r"3:18: error: expected ':'"),
    ("conv(%x, %w, %b)", "conv(%x, %q, %b)", ParseError, r"5:17: error: use of undefined value %q"),
    ("%a, %b2 =", "%a, %y =", ParseError, r"6:7: error: value %y is defined twice"),
    ("= conv(", "= convolution(", ParseError, r"5:8: error: unknown op 'convolution'"),
    ('act="relu"', 'actv="relu"', ParseError, r"5:42: error: conv has no attribute actv"),
    ("pads=[1,1,1,1]", "pads=[1,1.5,1,1]", ParseError, r"5:26: error: conv.pads takes ints"),
    ("sizes=[2,2]", "sizes=[2,3]", VerifyError,
     r"6:3: error: node a \(split\): invalid operands .*do not add up"),
    ("f32[N,4,8,8] loc", "f32[N,4,8,9] loc", VerifyError,
     r"5:3: error: node conv1 \(conv\): result %y declared f32\[N,4,8,9\], "
     r"inferred f32\[N,4,8,8\]"),
    ("%b = const(dense<[0.5, -1.0, 0.25, 3.0]>)", "%b = const(dense<[0.5, -1.0, 0.25]>)",
     ParseError, r"4:14: error: dense<...> has 3 elements, f32\[4\] needs 4"),
    (": f32[4]\n", ": i8[4]\n", ParseError, r"4:14: error: dense<...> element 0.5 is not a i8"),
    (": f32[4]\n", ": f8[4]\n", ParseError, r"4:47: error: unknown dtype 'f8'"),
    ("return %a, %b2", "return %a", ParseError, r"7:3: error: return types .* differ"),
    ("return %a, %b2\n}", "return %a, %b2\n", ParseError,
     r"7:17: error: expected .*'}', got end of input"),
    ("%b = const(dense<[0.5, -1.0, 0.25, 3.0]>) : f32[4]",
     "%b = const(dense<[[0.5, -1.0], [0.25]]>) : f32[2,2]",
     ParseError, r"4:14: error: dense<...> has 3 elements"),
    ("%b = const(dense<[0.5, -1.0, 0.25, 3.0]>) : f32[4]",
     "%b = const(dense<[[0.5, -1.0], [0.25], [3.0]]>) : f32[4]",
     ParseError, r"4:14: error: nested dense<...> has a ragged shape, declared f32\[4\]"),
]


@pytest.mark.parametrize(("old", "new", "cls", "pattern"), BAD_CASES)
def test_errors_are_located_one_liners(old: str, new: str, cls: type, pattern: str) -> None:
    assert old in CONV_RELU
    with pytest.raises(cls) as info:
        parse_graph(CONV_RELU.replace(old, new, 1), "model.lwc", weights=_weights())
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("model.lwc:"), msg
    assert re.match(r"model\.lwc:" + pattern, msg), msg
    human = format_error(info.value)
    assert human.count("\n") == 2
    assert human.endswith("^")


@pytest.mark.parametrize(("weights", "pattern"), [
    ({}, r"3:14: error: weight @w is referenced but it is not in the weights"),
    ({"w": np.zeros((4, 3, 3, 2), np.float32)}, r"3:14: error: weight @w is float32\[4, 3, 3, 2\]"),
    ({"w": np.zeros((4, 3, 3, 3), np.float64)}, r"3:14: error: weight @w is float64"),
])
def test_weight_errors(weights: dict[str, np.ndarray], pattern: str) -> None:
    with pytest.raises(ParseError, match=r"^model\.lwc:" + pattern):
        parse_graph(CONV_RELU, "model.lwc", weights=weights)


def test_int_out_of_range_in_dense_is_an_error() -> None:
    text = "graph @g() -> (i8[1]) {\n  %k = const(dense<[128]>) : i8[1]\n  return %k\n}\n"
    with pytest.raises(ParseError, match=r"<string>:2:14: error: .*out of range for i8"):
        parse_graph(text)


def test_all_errors_are_lwc_errors() -> None:
    for old, new, _, _ in BAD_CASES:
        with pytest.raises(LwcError):
            parse_graph(CONV_RELU.replace(old, new, 1), weights=_weights())


# ----- property: every generated graph round trips ------------------------------------------
@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_generated_graphs_round_trip(g: Graph) -> None:
    g2 = roundtrip(g)
    assert_same_outputs(g2, g)


NEEDS = {"gemm": ["flatten"], "softmax": ["flatten", "gemm"]}


def test_strategy_covers_the_agreed_ops() -> None:
    assert available_ops() == list(BUILDERS)  # every op family the strategy knows has landed


@pytest.mark.parametrize("op", list(BUILDERS))
def test_each_op_is_generated_and_round_trips(op: str) -> None:
    def has_op(g: Graph) -> bool:
        return any(n.op in (op, "log_softmax" if op == "softmax" else op) for n in g.nodes)

    g = find(graphs(max_ops=3, ops=[*NEEDS.get(op, []), op]), has_op,
             settings=settings(database=None, max_examples=300, derandomize=True,
                               phases=[Phase.generate]))  # the first hit will do: no shrinking
    g2 = roundtrip(g)
    assert_same_outputs(g2, g)


# ----- the shared ONNX models through .lwc files ---------------------------------------------
MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
SHARED = ["digits_mlp", "digits_lenet5", "squeezenet1_1", "resnet18", "mobilenet_v2"]
RUN_OUTPUTS = {"digits_mlp", "digits_lenet5"}  # the big models: text fixed point only


@pytest.mark.parametrize("name", SHARED)
def test_shared_models_round_trip_through_files(name: str, tmp_path: Path) -> None:
    from lwc.frontend.onnx.importer import import_onnx

    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.fail(f"shared model {path} is missing")
    g = import_onnx(path)
    save_text(g, tmp_path / f"{name}.lwc")
    g2 = load_text(tmp_path / f"{name}.lwc")
    text = (tmp_path / f"{name}.lwc").read_text()
    assert print_graph(g2, weights_file=f"{name}.npz") == text
    assert_same_graph(g2, g)
    assert [v.name for v in g2.outputs] == [v.name for v in g.outputs]
    if name in RUN_OUTPUTS:
        x = np.load(MODELS / f"{name}.io.npz", allow_pickle=False)["input"]
        feed = {g.inputs[0].name: x}
        want, got = lwc.interpret(g, feed), lwc.interpret(g2, feed)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
