"""Binary/ternary ops: exact semantics against independent references (loops, packed bits),
alpha's closed form, BN+sign folding on integers and floats, bit-packed storage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwc.interp import interpret
from lwc.ir import DType, Graph, TensorType
from lwc.ops.binary import packed_dot
from lwc.ops.registry import get_op
from lwc.passes.compress.binarize import (
    commit_binary,
    fold_bn_sign,
    lower_binary,
    prepare,
    sign_thresholds,
)
from lwc.passes.compress.container import decode, encode_binary, read_lwcz, write_lwcz


def _one(op: str, arrays: list[np.ndarray], attrs: dict | None = None) -> np.ndarray:
    g = Graph("t")
    x = g.add_input("x", TensorType.of(arrays[0]))
    ins = [x] + [g.add_constant(a, f"c{i}") for i, a in enumerate(arrays[1:])]
    g.outputs = [g.add_node(op, ins, attrs or {}).output]
    g.verify()
    return interpret(g, {"x": arrays[0]})[g.outputs[0].name]


def _naive_conv(q: np.ndarray, s: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Loop reference: zero padding, so padded taps add nothing."""
    n, c, h, w = q.shape
    o, _, kh, kw = s.shape
    qp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), np.int64)
    qp[:, :, pad:pad + h, pad:pad + w] = q
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    y = np.zeros((n, o, ho, wo), np.int64)
    for i in range(ho):
        for j in range(wo):
            patch = qp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, s.astype(np.int64))
    return y


def test_binarize_and_ternarize_edges() -> None:
    x = np.array([[-2.0, -0.5, -0.0, 0.0, 0.5, 0.7, np.nan]], np.float32)
    assert _one("binarize", [x]).tolist()[0][:6] == [-1, -1, 1, 1, 1, 1]  # sign(0) = +1
    assert _one("binarize", [x])[0, 6] == -1  # NaN >= 0 is false
    t = _one("ternarize", [x], {"threshold": 0.5})
    assert t.tolist()[0][:6] == [-1, 0, 0, 0, 0, 1]  # |x| == threshold is 0


@given(st.integers(1, 200), st.integers(0, 2**31 - 1))
def test_packed_dot_is_the_integer_dot(k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = np.where(rng.random(k) < 0.5, 1, -1)
    xb = np.where(rng.random((3, k)) < 0.5, 1, -1)
    xt = rng.integers(-1, 2, (3, k))
    assert np.array_equal(packed_dot(xb, w), xb @ w)  # K - 2 popcount(a xor w)
    assert np.array_equal(packed_dot(xt, w), xt @ w)  # popcount(m) - 2 popcount(m & (s^w))


@given(c=st.integers(1, 70), k=st.sampled_from([1, 2, 3]), stride=st.integers(1, 2),
       pad=st.integers(0, 2), ternary=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_xnor_conv_is_exact_with_zero_padding(c: int, k: int, stride: int, pad: int,
                                              ternary: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, 5, 6)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0  # sign(0) = +1 inside the data
    w = rng.standard_normal((3, c, k, k)).astype(np.float32)
    attrs = {"strides": (stride, stride), "pads": (pad,) * 4}
    if ternary:
        attrs |= {"input": "ternary", "threshold": 0.4}
        q = (x > 0.4).astype(np.int64) - (x < -0.4)
    else:
        q = np.where(x >= 0, 1, -1)
    s = np.where(w >= 0, 1, -1)
    want = _naive_conv(q, s, stride, pad)
    got = _one("xnor_conv", [x, w], attrs)
    assert got.dtype == np.float32
    assert np.array_equal(got, want)
    alpha = np.abs(rng.standard_normal(3)).astype(np.float32)
    scaled = _one("xnor_conv", [x, w, alpha], attrs)
    assert np.array_equal(scaled, (want.astype(np.float32) * alpha.reshape(1, -1, 1, 1)))


@given(st.integers(1, 300), st.booleans(), st.integers(0, 2**31 - 1))
def test_xnor_gemm_is_exact(k: int, ternary: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, k)).astype(np.float32)
    w = rng.standard_normal((5, k)).astype(np.float32)
    attrs = {"input": "ternary", "threshold": 0.3} if ternary else {}
    q = ((x > 0.3).astype(np.int64) - (x < -0.3)) if ternary else np.where(x >= 0, 1, -1)
    want = packed_dot(q[:, None, :], np.where(w >= 0, 1, -1)[None])
    assert np.array_equal(_one("xnor_gemm", [x, w], attrs), want)


def test_alpha_is_the_least_squares_scale() -> None:
    """XNOR-Net's alpha = mean|W| per filter minimises ||W - alpha sign(W)||^2."""
    from lwc.train import SignSTE

    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    eff = SignSTE().effective(w)
    for o in range(4):
        alpha = np.abs(eff[o]).max()
        scan = np.linspace(0, 2 * alpha, 1001)
        errs = [np.sum((w[o] - a * np.where(w[o] >= 0, 1, -1)) ** 2) for a in scan]
        assert abs(scan[int(np.argmin(errs))] - alpha) <= scan[1]
        assert np.allclose(np.abs(eff[o]), np.abs(w[o]).mean())


def _bn_graph(c: int, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
              var: np.ndarray) -> Graph:
    g = Graph("bn")
    x = g.add_input("x", TensorType(DType.F32, ("N", c)))
    consts = [g.add_constant(a.astype(np.float32), n) for a, n in
              zip((gamma, beta, mean, var), ("g", "b", "m", "v"))]
    bn = g.add_node("batch_norm", [x, *consts], name="bn")
    w = g.add_constant(np.ones((2, c), np.float32), "w")
    g.outputs = [g.add_node("xnor_gemm", [bn.output, w], name="out").output]
    return g


@given(st.integers(0, 2**31 - 1))
def test_bn_sign_threshold_is_exact_for_floats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = 6
    gamma = rng.standard_normal(c)
    gamma[0], gamma[1] = 0.0, -abs(gamma[1])  # constant and decreasing channels
    beta, mean = rng.standard_normal(c), rng.standard_normal(c) * 3
    var = rng.random(c) + 0.1
    g = _bn_graph(c, gamma, beta, mean, var)
    bn = g.nodes[0]
    tau, sign = sign_thresholds(bn)
    assert sign[1] == -1 and np.all(np.isinf(tau[:1]))
    # random points plus the float neighbours of every threshold
    x = rng.standard_normal((200, c)).astype(np.float32) * 5
    fin = np.where(np.isfinite(tau), tau, 0).astype(np.float32)
    near = np.stack([fin, np.nextafter(fin, np.float32(np.inf)),
                     np.nextafter(fin, np.float32(-np.inf))]).astype(np.float32)
    x = np.concatenate([x, near])
    ref = get_op("batch_norm").compute([x, *[v.data for v in bn.inputs[1:]]], {"epsilon": 1e-5})
    want = np.where(ref[0] >= 0, 1.0, -1.0)
    got = np.where(np.where(sign > 0, x >= tau, x <= tau), 1.0, -1.0)
    assert np.array_equal(got, want)
    before = interpret(g, {"x": x})["out"]
    assert fold_bn_sign(g) == 1
    assert [n.op for n in g.nodes] == ["sign_threshold", "xnor_gemm"]
    assert np.array_equal(interpret(g, {"x": x})["out"], before)


def test_bn_sign_threshold_on_integer_accumulators_is_an_integer() -> None:
    """BNN inference: BN after an unscaled xnor layer folds to an integer popcount threshold,
    exact on every reachable integer."""
    rng = np.random.default_rng(3)
    g = Graph("bnn")
    x = g.add_input("x", TensorType(DType.F32, ("N", 37)))
    w1 = g.add_constant(np.where(rng.random((8, 37)) < .5, 1, -1).astype(np.float32), "w1")
    h = g.add_node("xnor_gemm", [x, w1], name="h").output
    r = g.add_node("relu", [h], name="r").output
    params = [rng.standard_normal(8), rng.standard_normal(8) * 2, rng.standard_normal(8) * 5,
              rng.random(8) * 9 + 0.5]
    params[0][2] = -params[0][2] if params[0][2] > 0 else params[0][2]
    consts = [g.add_constant(p.astype(np.float32), n) for p, n in zip(params, "gbmv")]
    bn = g.add_node("batch_norm", [r, *consts], name="bn").output
    w2 = g.add_constant(np.where(rng.random((4, 8)) < .5, 1, -1).astype(np.float32), "w2")
    g.outputs = [g.add_node("xnor_gemm", [bn, w2], name="out").output]
    xs = rng.standard_normal((500, 37)).astype(np.float32)
    before = interpret(g, {"x": xs})["out"]
    assert fold_bn_sign(g) == 1
    st_node = g.nodes_of("sign_threshold")[0]
    tau = st_node.inputs[1].data
    assert np.array_equal(tau, np.round(tau)) and np.all(np.abs(tau) <= 38)
    assert np.array_equal(interpret(g, {"x": xs})["out"], before)


def test_not_folded_when_a_reader_needs_the_real_value() -> None:
    g = _bn_graph(3, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3))
    bn = g.nodes[0]
    g.outputs.append(g.add_node("relu", [bn.output], name="r").output)
    assert fold_bn_sign(g) == 0


def _small_cnn(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("cnn")
    x = g.add_input("x", TensorType(DType.F32, ("N", 3, 6, 6)))
    c1 = g.add_node("conv", [x, g.add_constant(rng.standard_normal((8, 3, 3, 3)).astype(
        np.float32), "w1")], {"pads": (1, 1, 1, 1)}, name="c1").output
    c2 = g.add_node("conv", [c1, g.add_constant(rng.standard_normal((5, 8, 3, 3)).astype(
        np.float32), "w2"), g.add_constant(rng.standard_normal(5).astype(np.float32), "b2")],
        {"pads": (1, 1, 1, 1), "strides": (2, 2)}, name="c2").output
    f = g.add_node("flatten", [c2], name="f").output
    w3 = rng.standard_normal((4, 45)).astype(np.float32)
    g.outputs = [g.add_node("gemm", [f, g.add_constant(w3, "w3")], {"trans_b": True},
                            name="out").output]
    g.verify()
    return g


def test_xnor_layer_scales_by_alpha_and_k() -> None:
    """The XNOR-Net form of c2 equals (sign(x) * sign(W)) * alpha * K + b with
    K = box_filter(mean_c |x|), computed independently here (1e-5 relative)."""
    g = _small_cnn()
    w2, b2 = g.constants["w2"].data.copy(), g.constants["b2"].data.copy()
    prep = prepare(g, "xnor")
    assert prep.layers == ["c2"]
    commit_binary(g, prep)
    xs = np.random.default_rng(5).standard_normal((3, 3, 6, 6)).astype(np.float32)
    # run the prefix up to c2's input with a graph that outputs it
    c1 = g.nodes_of("conv")[0].output
    pre = g.copy()
    pre.outputs = [pre.value(c1.name)]
    a = interpret(pre, {"x": xs})[c1.name].astype(np.float64) / np.sqrt(1 + 1e-5)
    alpha = np.abs(w2).reshape(5, -1).mean(1)
    dots = _naive_conv(np.where(a >= 0, 1, -1), np.where(w2 >= 0, 1, -1), 2, 1)
    mean_abs = np.pad(np.abs(a).mean(1), [(0, 0), (1, 1), (1, 1)])
    kmap = np.stack([[mean_abs[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].mean((1, 2))
                      for j in range(3)] for i in range(3)]).transpose(2, 0, 1)
    want = dots * alpha.reshape(1, -1, 1, 1) * kmap[:, None] + b2.reshape(1, -1, 1, 1)
    mid = g.copy()
    biased = [n for n in mid.nodes if n.label == "c2.biased"][0]
    mid.outputs = [biased.output]
    got = interpret(mid, {"x": xs})[biased.output.name]
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5)
    # lowering keeps the function: conv -> xnor_conv with the same values up to rounding
    before = interpret(g, {"x": xs})["out"]
    assert lower_binary(g) == 1
    assert "xnor_conv" in [n.op for n in g.nodes] and "binarize" not in [n.op for n in g.nodes]
    assert np.allclose(interpret(g, {"x": xs})["out"], before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme", ["bnn", "tbn"])
def test_prepare_keeps_first_and_last_layers_real(scheme: str) -> None:
    g = _small_cnn()
    prep = prepare(g, scheme)
    assert prep.layers == ["c2"]
    commit_binary(g, prep)
    assert np.all(np.abs(g.constants["w2"].data) == np.abs(g.constants["w2"].data).max(
        axis=(1, 2, 3), keepdims=True))
    assert len(np.unique(g.constants["w1"].data)) > 2  # first layer untouched
    xs = np.random.default_rng(2).standard_normal((2, 3, 6, 6)).astype(np.float32)
    before = interpret(g, {"x": xs})["out"]
    assert lower_binary(g) == 1
    after = interpret(g, {"x": xs})["out"]
    if scheme == "bnn":  # alpha is 1: integer sums, bit-identical
        assert np.array_equal(after, before)
    else:
        assert np.allclose(after, before, rtol=1e-5, atol=1e-5)


def test_binary_record_is_one_bit_per_weight(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    signs = np.where(rng.random((50, 20, 3, 3)) < 0.5, 1.0, -1.0).astype(np.float32)
    alpha = rng.random(50).astype(np.float32)
    rec = encode_binary("w", signs, None)
    assert rec.nbytes == -(-signs.size // 8)
    assert np.array_equal(decode(rec.meta, rec.blobs), signs)
    rec2 = encode_binary("w", signs, alpha)
    assert rec2.nbytes <= signs.size / 8 + 4 * 50 + 1
    assert np.array_equal(decode(rec2.meta, rec2.blobs), signs * alpha.reshape(-1, 1, 1, 1))
    # an xnor graph round-trips through .lwcz with identical outputs
    g = _small_cnn()
    prep = prepare(g, "xnor")
    commit_binary(g, prep)
    lower_binary(g)
    xn = g.nodes_of("xnor_conv")[0]
    out = tmp_path / "m.lwcz"
    write_lwcz(out, g, {xn.inputs[1].name: encode_binary(xn.inputs[1].name,
                                                         xn.inputs[1].data, None)})
    back = read_lwcz(out)
    xs = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    assert np.array_equal(interpret(back, {"x": xs})["out"], interpret(g, {"x": xs})["out"])


def test_binary_graph_exports_to_standard_onnx() -> None:
    import onnx
    import onnxruntime as ort

    from lwc.frontend.onnx.export import custom_ops, to_onnx

    g = _small_cnn()
    prep = prepare(g, "bnn")
    commit_binary(g, prep)
    lower_binary(g)
    fold_bn_sign(g)
    assert g.nodes_of("sign_threshold") and g.nodes_of("xnor_conv")
    model = to_onnx(g)
    onnx.checker.check_model(model)
    assert custom_ops(model) == []
    from lwc import random_inputs

    x = random_inputs(g, seed=3)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = interpret(g, x)[g.outputs[0].name]
    got = sess.run(None, x)[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


def test_ste_and_k_gradients() -> None:
    """binarize/ternarize pass gradients straight through where |x| <= 1 (clipped STE); abs and
    reduce_mean (XNOR-Net's K) match central finite differences."""
    from lwc.train.autodiff import backward, forward

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 4, 2)) * 1.5).astype(np.float64)
    x[np.abs(np.abs(x) - 1) < 1e-3] += 0.01  # keep away from the clipping edge
    gy = rng.standard_normal((3, 4, 2))
    for op, attrs in (("binarize", {}), ("ternarize", {"threshold": 0.3})):
        g = Graph(op)
        xin = g.add_input("x", TensorType(DType.F64, x.shape))
        g.outputs = [g.add_node(op, [xin], attrs).output]
        tape = forward(g, {"x": x})
        gx = backward(g, tape, {id(g.outputs[0]): gy}, [xin])[id(xin)]
        assert np.array_equal(gx, gy * (np.abs(x) <= 1))
    g = Graph("k")
    xin = g.add_input("x", TensorType(DType.F64, x.shape))
    a = g.add_node("abs", [xin]).output
    m = g.add_node("reduce_mean", [a], {"axes": (1,), "keepdims": False}).output
    g.outputs = [m]
    gm = rng.standard_normal((3, 2))
    tape = forward(g, {"x": x})
    gx = backward(g, tape, {id(m): gm}, [xin])[id(xin)]
    eps = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        hi = interpret(g, {"x": x + d})[m.name]
        lo = interpret(g, {"x": x - d})[m.name]
        num[idx] = np.sum((hi - lo) * gm) / (2 * eps)
    assert np.allclose(gx, num, atol=1e-6)
