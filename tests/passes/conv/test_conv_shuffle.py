"""Channel-shuffle recognition and elimination: ShuffleNet from the zoo and onnx's
light_shufflenet end with zero transpose nodes and unchanged outputs; shuffles next to dense
convs and channel-wise ops are absorbed into weights."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pass_helpers import f32, op_counts, rand

import lwc
import lwc.zoo
from lwc.ir import Graph, Value
from lwc.pass_manager import run_pipeline
from lwc.passes.conv.channelwise import shuffle_perm

PIPELINE = "channel-shuffle,eliminate-shuffle"


def _light_shufflenet() -> Graph:
    import onnx

    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        "light_shufflenet.onnx")
    return lwc.load(path)


def reseed(g: Graph, seed: int = 0) -> None:
    """Random weights in place of the model's ConstantOfShape fills: conv weights scaled by
    fan-in, batch-norm scale/var positive, so activations stay O(1) through 49 layers."""
    rng = np.random.default_rng(seed)
    for n in g.nodes:
        for i, v in enumerate(n.inputs):
            if v.data is None or v.data.dtype != np.float32 or v.data.size < 2:
                continue
            arr = rng.standard_normal(v.data.shape)
            if n.op in ("conv", "gemm") and i == 1:
                arr *= (v.data.size / v.data.shape[0]) ** -0.5
            elif n.op == "batch_norm" and i in (1, 4):
                arr = rng.uniform(0.5, 1.5, v.data.shape)
            else:
                arr *= 0.1
            g.set_constant(v, arr.astype(np.float32))


def _logits(g: Graph) -> Graph:
    """Drop a final softmax so the comparison sees unsaturated values."""
    last = g.outputs[0].producer
    if last is not None and last.op == "softmax":
        g.outputs = [last.inputs[0]]
        g.erase_node(last)
    return g


@pytest.mark.parametrize("model", ["zoo", "light"])
def test_shufflenet_ends_without_transposes(model: str) -> None:
    g = lwc.zoo.build("shufflenet") if model == "zoo" else _light_shufflenet()
    if model == "light":
        reseed(g)
        _logits(g)
    shuffles = op_counts(g)["transpose"]
    assert shuffles == 16
    x = lwc.random_inputs(g, seed=0)
    ref = lwc.interpret(g, x)
    ctx = run_pipeline(g, PIPELINE)
    counts = op_counts(g)
    assert counts.get("transpose", 0) == 0
    recognised = [r for r in ctx.records if r.pass_name == "channel-shuffle"]
    assert len(recognised) == shuffles
    removed = ctx.history[-1].stats["removed"]
    assert counts.get("channel_shuffle", 0) == shuffles - removed
    out = lwc.interpret(g, x)
    for k, v in ref.items():
        assert np.std(v) > 1e-3  # not a degenerate output
        np.testing.assert_allclose(out[k], v, rtol=1e-5, atol=1e-5 * np.max(np.abs(v)))


def test_zoo_shuffle_after_dense_conv_is_absorbed() -> None:
    """The first unit's 1x1 conv is ungrouped, so its shuffle goes into its output channels."""
    g = lwc.zoo.build("shufflenet", repeats=(1, 1, 1), resolution=64)
    ctx = run_pipeline(g, PIPELINE)
    (rec,) = [r for r in ctx.records if r.pass_name == "eliminate-shuffle"]
    assert rec.stats["direction"] == "hoist"
    assert rec.stats["absorbed_by"] == "stage2.0.compress.conv"


def _shuffle(g: Graph, x: Value, groups: int) -> Value:
    return g.add_node("channel_shuffle", [x], {"groups": groups}).output


def test_shuffle_perm_matches_op() -> None:
    x = np.arange(2 * 12 * 2, dtype=np.float32).reshape(2, 12, 2)
    g = Graph("s")
    v = g.add_input("x", f32(2, 12, 2))
    g.outputs = [_shuffle(g, v, 3)]
    y = lwc.interpret(g, {"x": x})[g.outputs[0].name]
    np.testing.assert_array_equal(y, x[:, shuffle_perm(12, 3)])


@st.composite
def shuffle_sandwiches(draw: st.DrawFn) -> Graph:
    """dense conv -> [grouped conv] -> channel-wise ops -> shuffle (op or exported idiom) ->
    channel-wise ops -> dense conv or gemm: always absorbable one way or the other."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    groups = draw(st.sampled_from([2, 3, 4]))
    c = groups * draw(st.integers(1, 3))
    g = Graph("sandwich")
    x = g.add_input("x", f32("N", 3, 6, 6))
    y = g.add_node("conv", [x, g.add_constant(rand(rng, c, 3, 1, 1), "w0")],
                   {"group": 1}).output
    if draw(st.booleans()):  # a grouped producer cannot absorb: sinking must do the work
        y = g.add_node("conv", [y, g.add_constant(rand(rng, c, c // groups, 1, 1), "wg")],
                       {"group": groups}).output

    def channelwise(v: Value) -> Value:
        kind = draw(st.sampled_from(["bn", "relu", "mul", "add", "dw", "pool", "none"]))
        if kind == "bn":
            ps = [np.abs(rand(rng, c)) + 0.5, rand(rng, c), rand(rng, c),
                  np.abs(rand(rng, c)) + 0.5]
            return g.add_node("batch_norm", [v, *(g.add_constant(p, "bn") for p in ps)]).output
        if kind == "relu":
            return g.add_node("relu", [v]).output
        if kind in ("mul", "add"):
            shape = draw(st.sampled_from([(c, 1, 1), (1, c, 1, 1), (1,)]))
            return g.add_node(kind, [v, g.add_constant(rand(rng, *shape), "k")]).output
        if kind == "dw":
            return g.add_node("conv", [v, g.add_constant(rand(rng, c, 1, 3, 3), "dw"),
                                       g.add_constant(rand(rng, c), "db")],
                              {"group": c, "pads": (1, 1, 1, 1), "act": "relu"}).output
        if kind == "pool":
            return g.add_node("max_pool", [v], {"kernel": (2, 2), "pads": (0, 0, 1, 1)}).output
        return v

    for _ in range(draw(st.integers(0, 2))):
        y = channelwise(y)
    if draw(st.booleans()):  # as PyTorch exports it (0 keeps the symbolic batch)
        y = g.add_node("reshape", [y], {"shape": (0, groups, c // groups, 6, 6)}).output
        y = g.add_node("transpose", [y], {"perm": (0, 2, 1, 3, 4)}).output
        y = g.add_node("reshape", [y], {"shape": (0, c, 6, 6)}).output
    else:
        y = _shuffle(g, y, groups)
    for _ in range(draw(st.integers(0, 2))):
        y = channelwise(y)
    if draw(st.booleans()):
        y = g.add_node("conv", [y, g.add_constant(rand(rng, 5, c, 3, 3), "w1"),
                                g.add_constant(rand(rng, 5), "b1")], {"pads": (1, 1, 1, 1)}).output
    else:
        y = g.add_node("flatten", [g.add_node("global_avg_pool", [y]).output]).output
        y = g.add_node("gemm", [y, g.add_constant(rand(rng, 4, c), "fc"),
                                g.add_constant(rand(rng, 4), "fcb")], {"trans_b": True}).output
    g.outputs = [y]
    g.verify()
    return g


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=shuffle_sandwiches())
def test_eliminate_shuffle_absorbs_and_keeps_outputs(g: Graph) -> None:
    x = lwc.random_inputs(g, seed=1, batch=2)
    ref = lwc.interpret(g, x)
    run_pipeline(g, PIPELINE)
    assert not {"channel_shuffle", "transpose"} & set(op_counts(g))
    out = lwc.interpret(g, x)
    for k, v in ref.items():
        np.testing.assert_allclose(out[k], v, rtol=1e-5, atol=1e-5 * max(1.0, np.max(np.abs(v))))


def test_shuffle_between_grouped_convs_is_kept() -> None:
    """A shuffle between two grouped convs is the point of ShuffleNet: nothing can absorb it."""
    rng = np.random.default_rng(0)
    g = Graph("kept")
    x = g.add_input("x", f32(1, 6, 4, 4))
    y = g.add_node("conv", [x, g.add_constant(rand(rng, 6, 3, 1, 1), "a")], {"group": 2}).output
    y = _shuffle(g, y, 2)
    g.outputs = [g.add_node("conv", [y, g.add_constant(rand(rng, 6, 3, 1, 1), "b")],
                            {"group": 2}).output]
    ctx = run_pipeline(g, "eliminate-shuffle")
    assert op_counts(g)["channel_shuffle"] == 1
    assert ctx.history[-1].stats == {"removed": 0, "kept": 1}
