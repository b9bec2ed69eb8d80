"""The LLVM xnor/popcount kernels are bit-exact against the interpreter: xnor_conv (binary and
ternary input, alpha or not, stride, zero padding, C not a multiple of 64, the unrolled and the
rolled word loops), xnor_gemm, binarize/ternarize/sign_threshold, and a lowered digits BNN."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lwc
from lwc.backends.llvm import compile as llvm_compile
from lwc.ir import DType, Graph, TensorType


def _run_both(g: Graph, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    g.verify()
    name = g.outputs[0].name
    return llvm_compile(g).run(feeds)[name], lwc.interpret(g, feeds)[name]


def _conv_graph(n: int, c: int, o: int, hw: tuple[int, int], k: int, attrs: dict, alpha: bool,
                rng: np.random.Generator) -> Graph:
    g = Graph("xc")
    x = g.add_input("x", TensorType(DType.F32, (n, c, *hw)))
    ins = [x, g.add_constant(rng.standard_normal((o, c, k, k)).astype(np.float32), "w")]
    if alpha:
        ins.append(g.add_constant(rng.random(o).astype(np.float32) + 0.1, "alpha"))
    g.outputs = [g.add_node("xnor_conv", ins, attrs, name="y").output]
    return g


@settings(max_examples=12)
@given(n=st.integers(1, 2), c=st.integers(1, 150), o=st.integers(1, 5), k=st.sampled_from([1, 2, 3]),
       stride=st.integers(1, 2), pad=st.integers(0, 2), ternary=st.booleans(),
       alpha=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_xnor_conv_bit_exact(n: int, c: int, o: int, k: int, stride: int, pad: int,
                             ternary: bool, alpha: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    attrs = {"strides": (stride, stride), "pads": (pad, pad, pad, pad)}
    if ternary:
        attrs |= {"input": "ternary", "threshold": 0.25}
    g = _conv_graph(n, c, o, (5, 6), k, attrs, alpha, rng)
    x = rng.standard_normal((n, c, 5, 6)).astype(np.float32)
    x[..., 0, 0] = 0.0  # sign(0) = +1 / ternary 0
    x[..., 1, 1] = 0.25  # exactly the threshold: 0
    got, want = _run_both(g, {"x": x})
    assert np.array_equal(got, want)


@pytest.mark.parametrize("c", [256, 1000, 2000])
@pytest.mark.parametrize("ternary", [False, True])
def test_xnor_conv_wide_word_paths(c: int, ternary: bool) -> None:
    """256 channels: <4 x i64> vectors with byte-wise counts; 1000 (16 words, 36 vectors per
    pixel): <4 x i64> counts; 2000 x 9 taps = 288 words: the rolled per-tap word loop."""
    rng = np.random.default_rng(c)
    attrs = {"pads": (1, 1, 1, 1)} | ({"input": "ternary", "threshold": 0.5} if ternary else {})
    g = _conv_graph(1, c, 3, (4, 3), 3, attrs, True, rng)
    got, want = _run_both(g, {"x": rng.standard_normal((1, c, 4, 3)).astype(np.float32)})
    assert np.array_equal(got, want)


@pytest.mark.parametrize("o", [4, 8, 24])
@pytest.mark.parametrize(("c", "stride", "pad"), [(256, 1, 1), (70, 2, 2), (5, 1, 0)])
def test_xnor_conv_lane_blocked_path(o: int, c: int, stride: int, pad: int) -> None:
    """Binary input with O a multiple of 4: the lane-blocked Harley-Seal kernel (one block or
    pairs of blocks; interior pixels from the parity forms, border pixels
    masked), against the interpreter."""
    rng = np.random.default_rng(o * 1000 + c)
    attrs = {"strides": (stride, stride), "pads": (pad, pad, pad, pad)}
    g = _conv_graph(1, c, o, (6, 7), 3, attrs, o != 8, rng)
    x = rng.standard_normal((1, c, 6, 7)).astype(np.float32)
    x[0, :, 2, 3] = 0.0  # sign(0) = +1
    got, want = _run_both(g, {"x": x})
    assert np.array_equal(got, want)


@pytest.mark.parametrize(("c", "width", "attrs"), [
    (256, 40, {"pads": (1, 1, 1, 1)}),  # 14-pixel chunks: 14 + 14 + 12
    (64, 130, {"pads": (2, 0, 1, 2), "strides": (1, 2), "dilations": (2, 1)}),  # 59 + 6
])
def test_xnor_conv_lane_blocked_rows_in_chunks(c: int, width: int, attrs: dict) -> None:
    """Rows wider than one stack buffer of x-side forms run in chunks (a tail chunk included),
    over two images."""
    from lwc.backends.llvm.kernels.xnor import XnorSpec
    from lwc.backends.llvm.kernels.xnor_blocked import chunk_pixels

    rng = np.random.default_rng(width)
    g = _conv_graph(2, c, 8, (3, width), 3, attrs, True, rng)
    g.verify()
    ow = g.outputs[0].type.shape[3]
    spec = XnorSpec(c, 3, width, 8, 3, ow, 3, 3, 1, 1, 1, 1, 1, 1, False, True)
    assert ow % chunk_pixels(spec) != 0 and ow > chunk_pixels(spec)
    x = rng.standard_normal((2, c, 3, width)).astype(np.float32)
    got, want = _run_both(g, {"x": x})
    assert np.array_equal(got, want)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 CPU names")
@pytest.mark.parametrize("mcpu", ["x86-64", None])
def test_xnor_conv_lane_blocked_generic_and_avx2_counts(mcpu: str | None) -> None:
    """The blocked kernel's two ways of counting: the generic byte-wise ctpop + SWAR sums (an
    explicit ``mcpu`` without feature string, as for a cross build) and, on an AVX2 host, the
    vpshufb weight tables + vpsadbw path; both against the interpreter, border and interior."""
    rng = np.random.default_rng(7)
    g = _conv_graph(1, 512, 8, (5, 5), 3, {"pads": (1, 1, 1, 1)}, True, rng)
    g.verify()
    x = rng.standard_normal((1, 512, 5, 5)).astype(np.float32)
    got = llvm_compile(g, mcpu=mcpu).run({"x": x})["y"]
    assert np.array_equal(got, lwc.interpret(g, {"x": x})["y"])


@settings(max_examples=8)
@given(k=st.integers(1, 300), o=st.integers(1, 6), ternary=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_xnor_gemm_bit_exact(k: int, o: int, ternary: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = Graph("xg")
    x = g.add_input("x", TensorType(DType.F32, (3, k)))
    w = g.add_constant(rng.standard_normal((o, k)).astype(np.float32), "w")
    a = g.add_constant(rng.random(o).astype(np.float32), "alpha")
    attrs = {"input": "ternary", "threshold": 0.7} if ternary else {}
    g.outputs = [g.add_node("xnor_gemm", [x, w, a], attrs, name="y").output]
    got, want = _run_both(g, {"x": rng.standard_normal((3, k)).astype(np.float32)})
    assert np.array_equal(got, want)


def test_quantisers_and_threshold_bit_exact() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    x[0, 0, 0, :4] = [0.0, -0.0, 0.5, -0.5]
    tau = np.array([0.0, 0.5, -0.5, np.inf], np.float32)
    direction = np.array([1, -1, 1, -1], np.float32)
    for op, extra, attrs in (("binarize", [], {}), ("ternarize", [], {"threshold": 0.5}),
                             ("sign_threshold", [tau, direction], {})):
        g = Graph(op)
        xin = g.add_input("x", TensorType(DType.F32, x.shape))
        ins = [xin] + [g.add_constant(a, f"c{i}") for i, a in enumerate(extra)]
        g.outputs = [g.add_node(op, ins, attrs, name="y").output]
        got, want = _run_both(g, {"x": x})
        assert np.array_equal(got, want), op


def test_lowered_digits_bnn_runs_bit_exact_binary_layers() -> None:
    """An (untrained) BNN digits CNN after lower-xnor and fold-bn-sign compiles; each binary
    node's kernel matches the interpreter exactly on the real test images."""
    from lwc.passes.compress.binarize import commit_binary, fold_bn_sign, lower_binary, prepare

    shared = Path(__file__).resolve().parents[3].parent / "shared"
    g = lwc.load(str(shared / "models" / "digits_lenet5.onnx"))
    commit_binary(g, prepare(g, "bnn"))
    lower_binary(g)
    fold_bn_sign(g)
    x = np.load(shared / "data" / "digits.npz")["x_test"][:64].reshape(64, 1, 8, 8)
    ops = {n.op for n in g.nodes}
    assert {"xnor_conv", "xnor_gemm", "sign_threshold"} <= ops
    feeds = {g.inputs[0].name: x.astype(np.float32)}
    checked = 0
    for node in [n for n in g.nodes if n.op in ("xnor_conv", "xnor_gemm", "sign_threshold")]:
        # the node alone, fed with the interpreter's value of its input on the real images
        prefix = g.copy()
        prefix.outputs = [prefix.value(node.inputs[0].name)]
        xin = lwc.interpret(prefix, feeds)[node.inputs[0].name]
        one = Graph("one")
        ins = [one.add_input("x", TensorType.of(xin))]
        ins += [one.add_constant(v.data, f"c{i}") for i, v in enumerate(node.inputs[1:])]
        one.outputs = [one.add_node(node.op, ins, node.attrs, name="y").output]
        got, want = _run_both(one, {"x": xin})
        assert np.array_equal(got, want), node.label
        checked += 1
    assert checked == 4
    model = llvm_compile(g, bindings={"N": 64})  # the whole network compiles; same classes
    pred = model.run(feeds)[g.outputs[0].name].argmax(1)
    assert (pred == lwc.interpret(g, feeds)[g.outputs[0].name].argmax(1)).mean() >= 0.98
