"""LLVM int8 conv/gemm kernels: bit-exact with the interpreter's integer semantics
(lwc/ops/qlinear.py) on hypothesis-drawn shapes: odd channel counts and K that do not fill the
6 x 16 register tile or the k pairs, groups, depthwise, strides, pads, dilations, 1-D and 3-D,
i8 and u8 activations, every fused clamp, and large accumulators."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llvm_helpers import check_graph

from lwc.backends.llvm import compile as llvm_compile
from lwc.errors import UnsupportedOpError
from lwc.ir import DType, Graph, TensorType

EXAMPLES = int(os.environ.get("LWC_HYP_EXAMPLES", 10))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 10,
                    suppress_health_check=list(HealthCheck))
ACTS = ["", "relu", "relu6", "clip"]


def _qgraph(op: str, x_shape: tuple[int, ...], xdt: type, w: np.ndarray, n_out: int,
            attrs: dict[str, Any], ydt: type, seed: int, bias: bool = True) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(op)
    x = g.add_input("x", TensorType(DType.from_numpy(np.dtype(xdt)), x_shape))
    xinfo, yinfo = np.iinfo(xdt), np.iinfo(ydt)
    consts = [np.asarray(np.float32(rng.uniform(0.01, 0.05))),
              np.asarray(xdt(rng.integers(xinfo.min, xinfo.max + 1))), w,
              rng.uniform(0.001, 0.02, n_out).astype(np.float32), np.zeros(n_out, np.int8),
              np.asarray(np.float32(rng.uniform(0.02, 0.3))),
              np.asarray(ydt(rng.integers(yinfo.min, yinfo.max + 1)))]
    if bias:
        consts.append(rng.integers(-20000, 20000, n_out).astype(np.int32))
    node = g.add_node(op, [x, *(g.add_constant(c, f"c{i}") for i, c in enumerate(consts))],
                      attrs, name=op)
    g.outputs = [node.output]
    return g


def _feeds(g: Graph, seed: int) -> dict[str, np.ndarray]:
    t = g.inputs[0].type
    info = np.iinfo(t.dtype.numpy)
    x = np.random.default_rng(seed).integers(info.min, info.max + 1, t.concrete_shape())
    return {"x": x.astype(t.dtype.numpy)}


@st.composite
def qconv_cases(draw: st.DrawFn) -> tuple[Graph, int]:
    nsp = draw(st.sampled_from([2, 2, 2, 1, 3]))
    depthwise = nsp == 2 and draw(st.booleans())
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = draw(st.integers(1, 5)) * groups
    cout = cin if depthwise else draw(st.integers(1, 21)) * groups
    groups = cin if depthwise else groups
    kernel = [draw(st.integers(1, 3)) for _ in range(nsp)]
    dil = [draw(st.integers(1, 2)) for _ in range(nsp)]
    size = [draw(st.integers(d * (k - 1) + 1, 11 if nsp < 3 else 5))
            for k, d in zip(kernel, dil)]
    pads = [draw(st.integers(0, k - 1)) for k in kernel] * 2
    attrs = {"strides": tuple(draw(st.integers(1, 2)) for _ in range(nsp)), "pads": tuple(pads),
             "dilations": tuple(dil), "group": groups, "act": draw(st.sampled_from(ACTS)),
             "clip_min": -0.5, "clip_max": 1.5}
    seed = draw(st.integers(0, 1000))
    w = np.random.default_rng(seed).integers(-127, 128, (cout, cin // groups, *kernel))
    xdt = draw(st.sampled_from([np.int8, np.uint8]))
    ydt = draw(st.sampled_from([np.int8, np.uint8]))
    g = _qgraph("qlinear_conv", (draw(st.integers(1, 2)), cin, *size), xdt, w.astype(np.int8),
                cout, attrs, ydt, seed, bias=draw(st.booleans()))
    return g, seed


@SETTINGS
@given(qconv_cases())
def test_int8_conv_is_bit_exact(case: tuple[Graph, int]) -> None:
    g, seed = case
    check_graph(g, _feeds(g, seed))


@SETTINGS
@given(st.integers(1, 13), st.integers(1, 70), st.integers(1, 40), st.booleans(),
       st.sampled_from(ACTS), st.integers(0, 1000))
def test_int8_gemm_is_bit_exact(m: int, k: int, n: int, trans_b: bool, act: str,
                                seed: int) -> None:
    w = np.random.default_rng(seed).integers(-127, 128, (n, k) if trans_b else (k, n))
    g = _qgraph("qlinear_gemm", (m, k), np.int8, w.astype(np.int8), n,
                {"trans_b": trans_b, "act": act, "clip_min": -1.0, "clip_max": 0.5}, np.int8, seed)
    check_graph(g, _feeds(g, seed))


def test_int8_conv_with_a_large_reduction_and_saturating_outputs() -> None:
    """K = 2304 (256 channels x 3x3): accumulators far beyond int16, outputs clamped at both
    ends."""
    rng = np.random.default_rng(7)
    w = rng.integers(-127, 128, (20, 256, 3, 3)).astype(np.int8)
    g = _qgraph("qlinear_conv", (1, 256, 5, 5), np.int8, w, 20, {"pads": (1, 1, 1, 1)},
                np.int8, seed=7)
    out = check_graph(g, _feeds(g, 7)).run(_feeds(g, 7))[g.outputs[0].name]
    assert (out == -128).any() and (out == 127).any()


@SETTINGS
@given(st.integers(1, 2), st.sampled_from([16, 32]), st.integers(1, 40), st.integers(1, 9),
       st.integers(1, 9), st.tuples(*[st.integers(0, 3)] * 4), st.sampled_from(ACTS),
       st.sampled_from([np.int8, np.uint8]), st.sampled_from([np.int8, np.uint8]), st.booleans(),
       st.sampled_from([1, 2]), st.integers(0, 1000))
def test_int8_winograd_conv_is_bit_exact(n: int, cin: int, cout: int, h: int, w_: int,
                                         pads: tuple[int, ...], act: str, xdt: type, ydt: type,
                                         bias: bool, threads: int, seed: int) -> None:
    """3x3 stride-1 convs with whole 16-channel vectors take the integer Winograd F(2x2, 3x3)
    path: odd output sizes (partial tiles), asymmetric pads, channel counts off the 8/16 lanes,
    work split over threads."""
    from lwc.backends.llvm.kernels.int8 import _winograd_ok

    if h + pads[0] + pads[2] < 3 or w_ + pads[1] + pads[3] < 3:
        h, w_ = 3, 3
    w = np.random.default_rng(seed).integers(-127, 128, (cout, cin, 3, 3)).astype(np.int8)
    assert _winograd_ok((n, cin, h, w_), w, 1, (1, 1), (1, 1))
    g = _qgraph("qlinear_conv", (n, cin, h, w_), xdt, w, cout,
                {"pads": pads, "act": act, "clip_min": -0.5, "clip_max": 1.5}, ydt, seed,
                bias=bias)
    check_graph(g, _feeds(g, seed), threads=threads)


def test_winograd_is_refused_where_its_scaled_sums_could_overflow_int32() -> None:
    from lwc.backends.llvm.kernels.int8 import _winograd_ok

    ok, big = (np.full((2, c, 3, 3), 127, np.int8) for c in (1840, 1872))
    assert _winograd_ok((1, 1840, 4, 4), ok, 1, (1, 1), (1, 1))
    assert not _winograd_ok((1, 1872, 4, 4), big, 1, (1, 1), (1, 1))


def test_int8_kernels_refuse_asymmetric_weights() -> None:
    g = _qgraph("qlinear_gemm", (2, 4), np.int8, np.ones((3, 4), np.int8), 3, {"trans_b": True},
                np.int8, seed=0)
    zp = g.nodes[0].inputs[5]
    g.set_constant(zp, np.ones(3, np.int8))
    with pytest.raises(UnsupportedOpError, match="symmetric weights"):
        llvm_compile(g)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_quantize_dequantize_round_half_even_and_saturate(dtype: type) -> None:
    g = Graph("qdq")
    x = g.add_input("x", TensorType(DType.F32, (5, 999)))
    s, z = g.add_constant(np.asarray(np.float32(0.5)), "s"), g.add_constant(np.asarray(dtype(3)),
                                                                           "z")
    q = g.add_node("quantize_linear", [x, s, z])
    d = g.add_node("dequantize_linear", [q.output, s, z])
    g.outputs = [q.output, d.output]
    xs = np.random.default_rng(0).uniform(-200, 200, (5, 999)).astype(np.float32)
    xs[0, :8] = [0.25, 0.75, -0.25, 1.25, 2.75, 1e9, -1e9, 63.25]  # ties at x / s = k + 0.5
    check_graph(g, {"x": xs})


@pytest.mark.parametrize("model", ["digits_mlp", "digits_lenet5"])
def test_whole_int8_digits_models_run_bit_exactly(model: str) -> None:
    """quantize_linear -> qlinear conv/gemm -> int8 max_pool/flatten -> dequantize_linear,
    compiled natively."""
    from pathlib import Path

    from lwc.model_io import load_model
    from lwc.pass_manager import PassManager
    from lwc.train import Dataset

    shared = Path(__file__).resolve().parents[3].parent / "shared"
    data = shared / "data" / "digits.npz"
    g = load_model(str(shared / "models" / f"{model}.onnx"))
    PassManager(f"fold-bn,fuse,quantize-int8{{data={data},samples=128}}").run(g)
    assert {n.op for n in g.nodes} >= {"quantize_linear", "dequantize_linear", "qlinear_gemm"}
    x = Dataset.load(data).for_graph(g).x_test[:100]
    check_graph(g, {"input": x}, bindings={"N": len(x)})


@SETTINGS
@given(st.sampled_from([(7,), (3, 5, 4), (2, 4100)]), st.sampled_from(ACTS),
       st.sampled_from([np.int8, np.uint8]), st.integers(0, 1000))
def test_int8_add_is_bit_exact(shp: tuple[int, ...], act: str, dt: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    g = Graph("qadd")
    a = g.add_input("x", TensorType(DType.from_numpy(np.dtype(dt)), shp))
    bq = g.add_input("y", TensorType(DType.I8, shp))
    info = np.iinfo(dt)
    cs = [np.asarray(np.float32(rng.uniform(0.01, 0.1))), np.asarray(dt(rng.integers(0, 100))),
          np.asarray(np.float32(rng.uniform(0.01, 0.1))), np.asarray(np.int8(rng.integers(-9, 9))),
          np.asarray(np.float32(rng.uniform(0.02, 0.2))), np.asarray(np.int8(rng.integers(-9, 9)))]
    c = [g.add_constant(v, f"c{i}") for i, v in enumerate(cs)]
    node = g.add_node("qlinear_add", [a, c[0], c[1], bq, c[2], c[3], c[4], c[5]],
                      {"act": act, "clip_min": -0.5, "clip_max": 1.0})
    g.outputs = [node.output]
    feeds = {"x": rng.integers(info.min, info.max + 1, shp).astype(dt),
             "y": rng.integers(-128, 128, shp).astype(np.int8)}
    check_graph(g, feeds)
