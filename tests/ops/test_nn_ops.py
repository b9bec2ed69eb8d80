"""Convolution, transposed convolution, pooling and normalisation vs onnxruntime.

Each case is a single-node ONNX model imported by lwc's frontend and run by the reference
interpreter; onnxruntime is the oracle. Sizes are small so the file runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lwc
from lwc.errors import UnsupportedOpError
from lwc.frontend.onnx.importer import import_model

from nn_oracle import EXAMPLES, compare, randn, run_ort, single_node_model

FAST = settings(max_examples=EXAMPLES, deadline=None)


@st.composite
def conv_cases(draw: st.DrawFn) -> tuple[dict, dict, dict]:
    nsp = draw(st.sampled_from([1, 2, 2, 3]))
    g = draw(st.integers(1, 3))
    cin, cout = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(nsp)]
    strides = [draw(st.integers(1, 3)) for _ in range(nsp)]
    dil = [draw(st.integers(1, 2)) for _ in range(nsp)]
    auto = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto.startswith("SAME"):
        dil = [1] * nsp  # onnxruntime refuses dilation with SAME_* padding
    pads = [draw(st.integers(0, 2)) for _ in range(2 * nsp)] if auto == "NOTSET" else [0] * 2 * nsp
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    top = 4 if nsp == 3 else 7
    sizes = [draw(st.integers(max(1, s - pads[i] - pads[nsp + i]), max(s, 1) + top))
             for i, s in enumerate(span)]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    feeds = {"x": randn(rng, draw(st.integers(1, 2)), cin, *sizes)}
    inits = {"w": randn(rng, cout, cin // g, *kernel)}
    if draw(st.booleans()):
        inits["b"] = randn(rng, cout)
    attrs: dict = {"strides": strides, "dilations": dil, "group": g}
    if auto == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto
    if draw(st.booleans()):
        attrs["kernel_shape"] = kernel
    return feeds, inits, attrs


@FAST
@given(conv_cases())
def test_conv_matches_onnxruntime(case: tuple[dict, dict, dict]) -> None:
    feeds, inits, attrs = case
    compare("Conv", feeds, inits, attrs)


@st.composite
def conv_transpose_cases(draw: st.DrawFn) -> tuple[dict, dict, dict]:
    nsp = draw(st.sampled_from([1, 2, 2, 3]))
    g = draw(st.integers(1, 2))
    cin, opg = g * draw(st.integers(1, 3)), draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 3)) for _ in range(nsp)]
    strides = [draw(st.integers(1, 3)) for _ in range(nsp)]
    dil = [draw(st.integers(1, 2)) for _ in range(nsp)]
    sizes = [draw(st.integers(1, 3 if nsp == 3 else 5)) for _ in range(nsp)]
    opad = [draw(st.integers(0, s - 1)) for s in strides]
    full = [st_ * (n - 1) + op + d * (k - 1) + 1
            for st_, n, op, d, k in zip(strides, sizes, opad, dil, kernel)]
    attrs: dict = {"strides": strides, "dilations": dil, "group": g, "output_padding": opad}
    mode = draw(st.sampled_from(["pads", "pads", "output_shape", "SAME_UPPER", "SAME_LOWER"]))
    if mode == "pads":
        lo = [draw(st.integers(0, min(2, f - 1))) for f in full]
        hi = [draw(st.integers(0, min(2, f - 1 - p))) for f, p in zip(full, lo)]
        attrs["pads"] = lo + hi
    elif mode == "output_shape":
        attrs["output_shape"] = [f - draw(st.integers(0, min(3, f - 1))) for f in full]
    else:
        attrs["auto_pad"] = mode
        attrs.pop("output_padding")
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    feeds = {"x": randn(rng, draw(st.integers(1, 2)), cin, *sizes)}
    inits = {"w": randn(rng, cin, opg, *kernel)}
    if draw(st.booleans()):
        inits["b"] = randn(rng, opg * g)
    return feeds, inits, attrs


@FAST
@given(conv_transpose_cases())
def test_conv_transpose_matches_onnxruntime(case: tuple[dict, dict, dict]) -> None:
    feeds, inits, attrs = case
    compare("ConvTranspose", feeds, inits, attrs)


@st.composite
def pool_cases(draw: st.DrawFn, dilated: bool) -> tuple[dict, dict]:
    nsp = draw(st.sampled_from([1, 2, 2, 3]))
    kernel = [draw(st.integers(1, 3)) for _ in range(nsp)]
    strides = [draw(st.integers(1, 3)) for _ in range(nsp)]
    dil = [draw(st.integers(1, 2)) if dilated else 1 for _ in range(nsp)]
    pads = [draw(st.integers(0, k - 1)) for k in kernel * 2]
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    sizes = [draw(st.integers(max(1, s - pads[i] - pads[nsp + i]), s + (3 if nsp == 3 else 6)))
             for i, s in enumerate(span)]
    attrs: dict = {"kernel_shape": kernel, "strides": strides, "pads": pads,
                   "ceil_mode": int(draw(st.booleans()))}
    if dilated:
        attrs["dilations"] = dil
    if draw(st.integers(0, 5)) == 0:  # sometimes auto_pad instead of explicit pads
        del attrs["pads"]
        valid = all(n >= s for n, s in zip(sizes, span))
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER"] + ["VALID"] * valid))
        attrs["ceil_mode"] = 0
        if attrs["auto_pad"] != "VALID":
            # onnxruntime errors where SAME would pad negatively (stride > kernel) and ignores
            # dilation when it computes SAME pads
            attrs["strides"] = [min(s, k) for s, k in zip(strides, kernel)]
            attrs.pop("dilations", None)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return {"x": randn(rng, draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes)}, attrs


@FAST
@given(pool_cases(dilated=True))
def test_max_pool_matches_onnxruntime(case: tuple[dict, dict]) -> None:
    feeds, attrs = case
    compare("MaxPool", feeds, None, attrs)


@FAST
@given(pool_cases(dilated=False), st.booleans())
def test_avg_pool_matches_onnxruntime(case: tuple[dict, dict], include_pad: bool) -> None:
    feeds, attrs = case
    compare("AveragePool", feeds, None, {**attrs, "count_include_pad": int(include_pad)})


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 6), (2, 2, 2, 3, 4)])
def test_global_pools_match_onnxruntime(op: str, shape: tuple[int, ...]) -> None:
    compare(op, {"x": randn(np.random.default_rng(0), *shape)})


def test_max_pool_indices_output_is_refused() -> None:
    m = single_node_model("MaxPool", {"x": np.zeros((1, 1, 4, 4), np.float32)}, {},
                          {"kernel_shape": [2, 2]}, 17, n_out=2)
    with pytest.raises(UnsupportedOpError, match="output 'y1'"):
        import_model(m)


@FAST
@given(st.sampled_from([1, 3, 5, 7]), st.integers(1, 6), st.floats(1e-4, 1.0), st.floats(0.25, 1.0),
       st.floats(0.5, 2.0), st.integers(0, 2**16))
def test_lrn_matches_onnxruntime(size: int, c: int, alpha: float, beta: float, bias: float,
                                 seed: int) -> None:
    x = randn(np.random.default_rng(seed), 2, c, 3, 4)
    compare("LRN", {"x": x}, None, {"size": size, "alpha": alpha, "beta": beta, "bias": bias})


@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_size_follows_the_onnx_formula(size: int) -> None:
    """onnxruntime only takes odd sizes; check even ones against the spec's formula, looped."""
    x = randn(np.random.default_rng(size), 1, 5, 2, 3)
    g = lwc.Graph()
    xin = g.add_input("x", lwc.TensorType.of(x))
    g.outputs = [g.add_node("lrn", [xin], {"size": size, "alpha": 0.3, "bias": 2.0}).output]
    got = lwc.interpret(g, {"x": x})[g.outputs[0].name]
    want = np.empty_like(x)
    for c in range(5):
        lo, hi = max(0, c - (size - 1) // 2), min(4, c + -(-(size - 1) // 2))
        sq = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        want[:, c] = x[:, c] / (2.0 + 0.3 / size * sq) ** 0.75
    np.testing.assert_allclose(got, want, rtol=1e-5)


@FAST
@given(st.integers(0, 3), st.integers(1, 5), st.sampled_from([9, 15]), st.integers(0, 2**16))
def test_batch_norm_matches_onnxruntime(extra_rank: int, c: int, opset: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = randn(rng, 2, c, *([3] * extra_rank))
    inits = {"s": randn(rng, c), "b": randn(rng, c), "m": randn(rng, c),
             "v": np.abs(randn(rng, c)) + 0.1}
    compare("BatchNormalization", {"x": x}, inits, {"epsilon": 1e-3}, opset=opset)


def test_batch_norm_training_mode_is_refused() -> None:
    c = 2
    inits = {k: np.ones(c, np.float32) for k in "sbmv"}
    m = single_node_model("BatchNormalization", {"x": np.ones((1, c, 2), np.float32)}, inits,
                          {"training_mode": 1}, 15)
    with pytest.raises(UnsupportedOpError, match="training_mode"):
        import_model(m)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_integer_max_pool_matches_onnxruntime(dtype: type) -> None:
    x = np.random.default_rng(0).integers(0, 100, (1, 2, 5, 5)).astype(dtype)
    compare("MaxPool", {"x": x}, None, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                        "strides": [2, 2]})


def test_conv_with_symbolic_batch_imports_and_runs() -> None:
    """A model whose batch is a dim_param keeps it symbolic and runs at several batch sizes."""
    rng = np.random.default_rng(0)
    w = randn(rng, 4, 3, 3, 3)
    m = single_node_model("Conv", {"x": randn(rng, 1, 3, 6, 6)}, {"w": w},
                          {"pads": [1, 1, 1, 1], "strides": [2, 2]}, 17)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    g = import_model(m)
    assert g.outputs[0].type.shape == ("batch", 4, 3, 3)
    for n in (1, 3):
        x = randn(rng, n, 3, 6, 6)
        got = lwc.interpret(g, {g.inputs[0].name: x})[g.outputs[0].name]
        np.testing.assert_allclose(got, run_ort(m, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_batch_norm_spatial_zero_is_refused_before_opset7() -> None:
    inits = {k: np.ones(2, np.float32) for k in "sbmv"}
    m = single_node_model("BatchNormalization", {"x": np.ones((1, 2, 3), np.float32)}, inits,
                          {"spatial": 0}, 6)
    with pytest.raises(UnsupportedOpError, match="spatial=0"):
        import_model(m)
