"""The nn ops at IR level: symbolic batch dims, shape errors, MAC counts and fused epilogues."""

from __future__ import annotations

import numpy as np
import pytest

import lwc
from lwc import DType, Graph, TensorType
from lwc.ops import get_op


def f32(*shape: int | str) -> TensorType:
    return TensorType(DType.F32, tuple(shape))


def const(g: Graph, *shape: int, seed: int = 0) -> lwc.Value:
    return g.add_constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


BATCHED = [
    ("conv", (3, 8, 8), lambda g: [const(g, 4, 3, 3, 3)], {"pads": (1, 1, 1, 1)}, (4, 8, 8)),
    ("conv_transpose", (3, 4, 4), lambda g: [const(g, 3, 2, 3, 3)], {"strides": (2, 2)},
     (2, 9, 9)),
    ("max_pool", (3, 7, 7), lambda g: [], {"kernel": (3, 3), "strides": (2, 2),
                                            "ceil_mode": True}, (3, 3, 3)),
    ("avg_pool", (3, 6), lambda g: [], {"kernel": (2,), "strides": (2,)}, (3, 3)),
    ("global_avg_pool", (3, 5, 5), lambda g: [], {}, (3, 1, 1)),
    ("global_max_pool", (3, 2, 5, 5), lambda g: [], {}, (3, 1, 1, 1)),
    ("batch_norm", (3, 5, 5), lambda g: [*(const(g, 3, seed=i) for i in range(3)),
                                         g.add_constant(np.ones(3, np.float32))], {}, (3, 5, 5)),
    ("lrn", (3, 5, 5), lambda g: [], {"size": 3}, (3, 5, 5)),
    ("gemm", (6,), lambda g: [const(g, 5, 6)], {"trans_b": True}, (5,)),
    ("matmul", (2, 6), lambda g: [const(g, 6, 4)], {}, (2, 4)),
    ("softmax", (10,), lambda g: [], {}, (10,)),
    ("log_softmax", (4, 10), lambda g: [], {"axis": 1}, (4, 10)),
    ("reduce_mean", (3, 5, 5), lambda g: [], {"axes": (2, 3)}, (3, 1, 1)),
    ("reduce_sum", (3, 5, 5), lambda g: [], {"axes": (-1,), "keepdims": False}, (3, 5)),
    ("reduce_max", (3, 5), lambda g: [], {"axes": (1,)}, (1, 5)),
]


@pytest.mark.parametrize(("op", "rest", "operands", "attrs", "out_rest"), BATCHED,
                         ids=[b[0] for b in BATCHED])
def test_symbolic_batch_passes_through(op: str, rest: tuple, operands, attrs: dict,
                                       out_rest: tuple) -> None:
    g = Graph()
    x = g.add_input("x", f32("N", *rest))
    y = g.add_node(op, [x, *operands(g)], attrs).output
    assert y.type.shape == ("N", *out_rest)
    g.outputs = [y]
    g.verify()
    for batch in (1, 3):
        out = lwc.interpret(g, lwc.random_inputs(g, batch=batch))[y.name]
        assert out.shape == (batch, *out_rest)


@pytest.mark.parametrize(("op", "types", "attrs", "message"), [
    ("conv", [f32(1, 4, 8, 8), f32(8, 3, 3, 3)], {}, "input channels per group"),
    ("conv", [f32(1, 4, 8, 8), f32(8, 2, 3, 3), f32(4)], {"group": 2}, "bias"),
    ("conv_transpose", [f32(1, 4, 8, 8), f32(3, 2, 3, 3)], {}, "input channels"),
    ("conv_transpose", [f32(1, 4, 2), f32(4, 1, 1)], {"pads": (2, 2)}, "no output"),
    ("max_pool", [f32(1, 2, 3, 3)], {"kernel": (5, 5)}, "larger than padded input"),
    ("max_pool", [f32(1, 2, 8)], {"kernel": (2, 2)}, "does not fit"),
    ("avg_pool", [f32(4, 4)], {"kernel": (2,)}, "rank >= 3"),
    ("global_avg_pool", [f32(4, 4)], {}, "rank >= 3"),
    ("batch_norm", [f32(1, 3, 4)] + [f32(4)] * 4, {}, "must be \\[3\\]"),
    ("gemm", [f32(2, 3), f32(4, 5)], {}, "inner dimensions"),
    ("gemm", [f32(2, 3), f32(3, 5), f32(3)], {}, "does not broadcast"),
    ("gemm", [f32(2, 3, 1), f32(3, 5)], {}, "rank 2"),
    ("matmul", [f32(2, 3), f32(4, 5)], {}, "inner dimensions"),
    ("matmul", [f32(2, 2, 3), f32(3, 3, 5)], {}, "do not broadcast"),
    ("softmax", [f32(2, 3)], {"axis": 2}, "out of range"),
    ("reduce_sum", [f32(2, 3)], {"axes": (0, -2)}, "repeat"),
    ("reduce_max", [f32(2, 3)], {"axes": (5,)}, "out of range"),
    ("quantize_linear", [f32(2, 3), f32(3), TensorType(DType.I32, (3,))], {}, "i8 or u8"),
    ("quantize_linear", [f32(2, 3), f32(4), TensorType(DType.I8, (4,))], {}, "per-axis"),
    ("dequantize_linear", [TensorType(DType.I8, (2, 3)), f32(3), TensorType(DType.U8, (3,))],
     {}, "dtype of input"),
])
def test_bad_shapes_are_named(op: str, types: list[TensorType], attrs: dict, message: str) -> None:
    opdef = get_op(op)
    with pytest.raises(ValueError, match=message):
        opdef.infer(types, opdef.complete_attrs(attrs))


def _macs(op: str, types: list[TensorType], attrs: dict) -> int:
    opdef = get_op(op)
    full = opdef.complete_attrs(attrs)
    return opdef.macs(types, opdef.infer(types, full), full)


def test_mac_counts() -> None:
    # ResNet stem: 112*112 outputs x 64 channels, each 3*7*7 MACs.
    assert _macs("conv", [f32("N", 3, 224, 224), f32(64, 3, 7, 7)],
                 {"strides": (2, 2), "pads": (3, 3, 3, 3)}) == 112 * 112 * 64 * 3 * 49
    # Depthwise 3x3 over 32x112x112: 9 MACs per output.
    assert _macs("conv", [f32(1, 32, 112, 112), f32(32, 1, 3, 3)],
                 {"group": 32, "pads": (1, 1, 1, 1)}) == 32 * 112 * 112 * 9
    assert _macs("gemm", [f32("N", 512), f32(1000, 512)], {"trans_b": True}) == 512 * 1000
    assert _macs("gemm", [f32(512, 7), f32(512, 3)], {"trans_a": True}) == 7 * 3 * 512
    assert _macs("matmul", [f32(4, 2, 3), f32(3, 5)], {}) == 4 * 2 * 5 * 3
    assert _macs("conv_transpose", [f32(1, 4, 5, 5), f32(4, 6, 3, 3)],
                 {"strides": (2, 2)}) == 4 * 25 * 6 * 9
    for op, attrs in [("max_pool", {"kernel": (2, 2)}), ("batch_norm", {}),
                      ("global_avg_pool", {})]:
        types = [f32(1, 3, 4, 4)] + ([f32(3)] * 4 if op == "batch_norm" else [])
        assert _macs(op, types, attrs) == 0


@pytest.mark.parametrize(("act", "extra"), [("relu", {}), ("leaky_relu", {"alpha_act": 0.2}),
                                            ("clip", {"clip_min": -0.5, "clip_max": 0.5}),
                                            ("hard_swish", {}), ("", {})])
@pytest.mark.parametrize("with_c", [True, False])
def test_gemm_fused_epilogue_equals_unfused(act: str, extra: dict, with_c: bool) -> None:
    """gemm{act, residual} == leaky_relu/clip/...(gemm + residual), the rewrite fusion performs."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    res = rng.standard_normal((3, 5)).astype(np.float32)

    def build(fused: bool) -> Graph:
        g = Graph()
        x, r = g.add_input("a", f32(3, 4)), g.add_input("r", f32(3, 5))
        ops = [x, const(g, 5, 4, seed=1)] + ([const(g, 5, seed=2)] if with_c else [])
        base = {"trans_b": True, "alpha": 0.5, "beta": 2.0}
        if fused:
            y = g.add_node("gemm", [*ops, r], {**base, "act": act, "residual": True, **extra})
            g.outputs = [y.output]
            return g
        y = g.add_node("add", [g.add_node("gemm", ops, base).output, r]).output
        unary = {"relu": ("relu", {}), "leaky_relu": ("leaky_relu", {"alpha": 0.2}),
                 "clip": ("clip", {"min": -0.5, "max": 0.5}), "hard_swish": ("hard_swish", {})}
        if act:
            y = g.add_node(unary[act][0], [y], unary[act][1]).output
        g.outputs = [y]
        return g

    fused, plain = build(True), build(False)
    fused.verify()
    feeds = {"a": a, "r": res}
    got = lwc.interpret(fused, feeds)[fused.outputs[0].name]
    want = lwc.interpret(plain, feeds)[plain.outputs[0].name]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_quantize_then_dequantize_is_within_half_a_step() -> None:
    g = Graph()
    x = g.add_input("x", f32(2, 3, 4))
    scale = g.add_constant(np.array([0.1, 0.2, 0.05], np.float32))
    zp = g.add_constant(np.array([-3, 0, 7], np.int8))
    q = g.add_node("quantize_linear", [x, scale, zp], {"axis": 1}).output
    assert q.type.dtype == DType.I8
    y = g.add_node("dequantize_linear", [q, scale, zp], {"axis": 1}).output
    g.outputs = [y]
    xv = np.random.default_rng(0).uniform(-1, 1, (2, 3, 4)).astype(np.float32)
    out = lwc.interpret(g, {"x": xv})[y.name]
    step = np.array([0.1, 0.2, 0.05], np.float32).reshape(1, 3, 1)
    assert np.all(np.abs(out - xv) <= step / 2 + 1e-6)
