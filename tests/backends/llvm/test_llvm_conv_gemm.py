"""Conv / gemm / matmul against the interpreter on hypothesis-drawn shapes: odd sizes, strides,
pads, dilations, groups, depthwise, 1-D and 3-D, and tails that do not divide the vector width."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from llvm_helpers import check_graph, f32

import lwc

EXAMPLES = int(os.environ.get("LWC_HYP_EXAMPLES", 10))  # raise to search harder
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 10,
                    suppress_health_check=list(HealthCheck))


@st.composite
def conv_cases(draw: st.DrawFn) -> lwc.Graph:
    nsp = draw(st.sampled_from([2, 2, 2, 1, 3]))
    depthwise = nsp == 2 and draw(st.booleans())
    g = draw(st.sampled_from([1, 1, 2, 3]))
    cin = draw(st.integers(1, 5)) * g
    cout = cin if depthwise else draw(st.integers(1, 7)) * g
    g = cin if depthwise else g
    size = [draw(st.integers(3, 17 if nsp < 3 else 7)) for _ in range(nsp)]
    kernel = [draw(st.integers(1, 3)) for _ in range(nsp)]
    strides = [draw(st.integers(1, 3)) for _ in range(nsp)]
    dil = [draw(st.integers(1, 2)) for _ in range(nsp)]
    pads = [draw(st.integers(0, 2)) for _ in range(2 * nsp)]
    for i in range(nsp):  # keep the window inside the padded input
        span = dil[i] * (kernel[i] - 1) + 1
        size[i] = max(size[i], span - pads[i] - pads[nsp + i])
    act = draw(st.sampled_from(["", "relu", "relu6", "hard_swish", "leaky_relu", "clip",
                                "sigmoid"]))
    bias = draw(st.booleans())
    residual = not depthwise and draw(st.booleans())
    batch = draw(st.sampled_from([1, 1, 2]))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    gr = lwc.Graph("conv")
    x = gr.add_input("x", f32((batch, cin, *size)))
    w = gr.add_constant(rng.standard_normal((cout, cin // g, *kernel)).astype(np.float32), "w")
    ins = [x, w]
    if bias:
        ins.append(gr.add_constant(rng.standard_normal(cout).astype(np.float32), "b"))
    attrs = {"strides": strides, "pads": pads, "dilations": dil, "group": g, "act": act,
             "alpha": 0.1, "clip_min": -0.5, "clip_max": 0.7}
    if residual:
        from lwc.ops.conv import Conv
        out_t = Conv().infer([x.type, w.type], Conv().complete_attrs(attrs))[0]
        ins.append(gr.add_input("r", out_t))
        attrs["residual"] = True
    gr.outputs = [gr.add_node("conv", ins, attrs).output]
    return gr


@SETTINGS
@given(conv_cases())
def test_conv_matches_interpreter(g: lwc.Graph) -> None:
    check_graph(g)


def test_conv_batch_norm_relu_chain_is_fused_and_correct() -> None:
    rng = np.random.default_rng(3)
    g = lwc.Graph("cbr")
    x = g.add_input("x", f32((1, 5, 9, 11)))
    w = g.add_constant(rng.standard_normal((12, 5, 3, 3)).astype(np.float32), "w")
    y = g.add_node("conv", [x, w], {"pads": (1, 1, 1, 1)}).output
    params = [rng.random(12).astype(np.float32) + 0.5, rng.standard_normal(12).astype(np.float32),
              rng.standard_normal(12).astype(np.float32), rng.random(12).astype(np.float32) + 0.1]
    bn = g.add_node("batch_norm", [y, *[g.add_constant(p, "p") for p in params]]).output
    other = g.add_node("conv", [x, w], {"pads": (1, 1, 1, 1)}).output
    s = g.add_node("add", [bn, other]).output
    g.outputs = [g.add_node("relu", [s]).output]
    m = check_graph(g)
    ops = [n.op for n in m.graph.nodes]
    assert "batch_norm" not in ops and "relu" not in ops and "add" not in ops, ops


@st.composite
def gemm_cases(draw: st.DrawFn) -> lwc.Graph:
    m, k, n = draw(st.integers(1, 13)), draw(st.integers(1, 40)), draw(st.integers(1, 37))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    const_b = draw(st.booleans())
    c_shape = draw(st.sampled_from([None, (n,), (1, n), (m, 1), (m, n), ()]))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    g = lwc.Graph("gemm")
    a = g.add_input("a", f32((k, m) if ta else (m, k)))
    bs = (n, k) if tb else (k, n)
    b = g.add_constant(rng.standard_normal(bs).astype(np.float32), "b") if const_b else \
        g.add_input("b", f32(bs))
    ins = [a, b]
    if c_shape is not None:
        ins.append(g.add_constant(rng.standard_normal(c_shape).astype(np.float32), "c"))
    attrs = {"trans_a": ta, "trans_b": tb, "alpha": draw(st.sampled_from([1.0, 0.5])),
             "beta": draw(st.sampled_from([1.0, 2.0])),
             "act": draw(st.sampled_from(["", "relu", "leaky_relu"])), "alpha_act": 0.2}
    g.outputs = [g.add_node("gemm", ins, attrs).output]
    return g


@SETTINGS
@given(gemm_cases())
def test_gemm_matches_interpreter(g: lwc.Graph) -> None:
    check_graph(g)


@st.composite
def matmul_shapes(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Operand shapes of numpy matmul: 1-D operands, and batch dims that broadcast."""
    m, k, n = draw(st.integers(1, 21)), draw(st.integers(1, 37)), draw(st.integers(1, 27))
    batch = draw(st.lists(st.integers(1, 3), max_size=2))
    ba = [d if draw(st.booleans()) else 1 for d in batch]
    bb = [d if draw(st.booleans()) else 1 for d in batch][draw(st.integers(0, len(batch))):]
    sa = (k,) if draw(st.integers(0, 5)) == 0 else (*ba, m, k)
    sb = (k,) if draw(st.integers(0, 5)) == 0 else (*bb, k, n)
    return sa, sb


@SETTINGS
@given(matmul_shapes(), st.booleans())
def test_matmul_matches_interpreter(shapes: tuple, const_b: bool) -> None:
    sa, sb = shapes
    g = lwc.Graph("mm")
    a = g.add_input("a", f32(sa))
    b = (g.add_constant(np.random.default_rng(0).standard_normal(sb).astype(np.float32), "b")
         if const_b else g.add_input("b", f32(sb)))
    g.outputs = [g.add_node("matmul", [a, b]).output]
    check_graph(g)


def test_large_k_blocked_conv_with_residual_tails_and_batch() -> None:
    """K above the GEMM's k block (partial sums round-trip through C), M and N tails, a residual
    that may be overwritten in place, and a strided 3x3 (im2row) conv feeding it."""
    rng = np.random.default_rng(5)
    g = lwc.Graph("big")
    x = g.add_input("x", f32((2, 40, 9, 13)))
    w1 = g.add_constant(rng.standard_normal((44, 40, 3, 3)).astype(np.float32), "w1")
    y = g.add_node("conv", [x, w1], {"pads": (1, 1, 1, 1), "strides": (1, 1)}).output
    w2 = g.add_constant(rng.standard_normal((44, 44, 3, 3)).astype(np.float32), "w2")
    b2 = g.add_constant(rng.standard_normal(44).astype(np.float32), "b2")
    z = g.add_node("conv", [y, w2, b2, y], {"pads": (1, 1, 1, 1), "residual": True,
                                            "act": "relu"}).output
    w3 = g.add_constant(rng.standard_normal((37, 44, 1, 1)).astype(np.float32), "w3")
    g.outputs = [g.add_node("conv", [z, w3]).output]
    check_graph(g)


@SETTINGS
@given(st.data())
def test_conv_transpose_matches_interpreter(data: st.DataObject) -> None:
    nsp = data.draw(st.sampled_from([1, 2]))
    g_ = data.draw(st.sampled_from([1, 2]))
    cin, og = data.draw(st.integers(1, 3)) * g_, data.draw(st.integers(1, 3))
    kernel = [data.draw(st.integers(1, 3)) for _ in range(nsp)]
    strides = [data.draw(st.integers(1, 3)) for _ in range(nsp)]
    dil = [data.draw(st.integers(1, 2)) for _ in range(nsp)]
    pads = [data.draw(st.integers(0, k - 1)) for k in kernel] * 2
    opad = [data.draw(st.integers(0, max(0, min(s, d) - 1))) for s, d in zip(strides, dil)]
    size = [data.draw(st.integers(2, 7)) for _ in range(nsp)]
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    g = lwc.Graph("convt")
    x = g.add_input("x", f32((1, cin, *size)))
    w = g.add_constant(rng.standard_normal((cin, og, *kernel)).astype(np.float32), "w")
    b = g.add_constant(rng.standard_normal(og * g_).astype(np.float32), "b")
    attrs = {"strides": strides, "pads": pads, "dilations": dil, "group": g_, "output_padding": opad}
    try:
        g.outputs = [g.add_node("conv_transpose", [x, w, b], attrs).output]
    except (ValueError, lwc.LwcError):
        assume(False)  # pads that leave no output
    check_graph(g)


@pytest.mark.parametrize("min_items", [1, 5, 64])
def test_gemm_work_splits_agree(min_items: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every (row group, panel group) split of a k-blocked GEMM with row and column tails gives
    the interpreter's result: one item doing everything, a few, and one tile per item."""
    import lwc.backends.llvm.kernels.gemm as gemm

    monkeypatch.setattr(gemm, "MIN_ITEMS", min_items)
    rng = np.random.default_rng(min_items)
    g = lwc.Graph("split")
    a = g.add_input("a", f32((53, 700)))
    b = g.add_constant(rng.standard_normal((700, 101)).astype(np.float32), "b")
    c = g.add_constant(rng.standard_normal(101).astype(np.float32), "c")
    g.outputs = [g.add_node("gemm", [a, b, c], {"act": "relu"}).output]
    m = check_graph(g)
    spec = next(call.kernel.spec for call in m.program.calls
                if isinstance(call.kernel.spec, gemm.GemmSpec))
    assert spec.min_items == min_items and spec.kc < spec.K
    if min_items == 1:
        assert spec.items == 1
    if min_items == 64:
        assert spec.items == spec.mb * spec.nb
