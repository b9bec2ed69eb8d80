"""NCHW -> NHWC conversion: conv_nhwc agrees with conv, and transposes cancel between convs."""

from __future__ import annotations

import numpy as np
import pytest
from pass_helpers import assert_same_outputs, f32, op_counts, outputs

import lwc
from lwc.errors import PassError
from lwc.ir import Graph
from lwc.pass_manager import PassManager


@pytest.mark.parametrize(("group", "residual", "act"), [(1, False, ""), (2, True, "relu6"),
                                                        (4, False, "leaky_relu")])
def test_conv_nhwc_matches_conv(group: int, residual: bool, act: str) -> None:
    rng = np.random.default_rng(group)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    w = rng.standard_normal((8, 4 // group, 3, 2)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    attrs = {"strides": (2, 1), "pads": (1, 0, 1, 1), "dilations": (1, 2), "group": group,
             "act": act, "residual": residual}
    g = Graph()
    xv = g.add_input("x", f32(2, 4, 7, 6))
    ins = [xv, g.add_constant(w), g.add_constant(b)]
    out_shape = g.add_node("conv", ins, {k: v for k, v in attrs.items() if k != "residual"})
    r = rng.standard_normal(out_shape.output.type.shape).astype(np.float32)
    y = g.add_node("conv", [*ins, g.add_constant(r)] if residual else ins, attrs).output
    g.outputs = [y]
    g.erase_node(out_shape)  # it was only there to tell the output shape
    want = lwc.interpret(g, {"x": x})[y.name]
    PassManager("convert-layout").run(g)
    assert op_counts(g) == {"transpose": 2, "conv_nhwc": 1}
    got = lwc.interpret(g, {"x": x})[g.outputs[0].name]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block", [2, 4])
def test_conv_nchwc_matches_conv(block: int) -> None:
    rng = np.random.default_rng(block)
    g = Graph()
    x = g.add_input("x", f32("N", 4, 6, 5))
    w1 = g.add_constant(rng.standard_normal((8, 4, 3, 3)).astype(np.float32))
    y = g.add_node("conv", [x, w1], {"pads": (1, 1, 1, 1), "act": "relu"}).output
    w2 = g.add_constant(rng.standard_normal((8, 1, 3, 3)).astype(np.float32))
    b2 = g.add_constant(rng.standard_normal(8).astype(np.float32))
    z = g.add_node("conv", [y, w2, b2, y], {"pads": (1, 1, 1, 1), "group": 8,
                                            "residual": True}).output
    w3 = g.add_constant(rng.standard_normal((6, 8, 1, 1)).astype(np.float32))  # 6 % 4 != 0
    g.outputs = [g.add_node("conv", [z, w3], {"strides": (2, 2)}, name="out").output]
    before = outputs(g)
    ctx = PassManager(f"convert-layout{{layout=NCHW{block}c}}").run(g)
    counts = op_counts(g)
    want = 3 if block == 2 else 2
    assert counts["conv_nchwc"] == want and counts.get("conv", 0) == 3 - want
    assert ctx.history[0].stats["converted"] == want
    assert counts["transpose"] == 2  # into the first conv, out of the last blocked one
    assert g.outputs[0].name == "out"
    assert_same_outputs(before, g)


def test_layout_option_is_checked() -> None:
    with pytest.raises(PassError, match="NHWC or NCHW<b>c"):
        PassManager("convert-layout{layout=NCWH}")


def test_mobilenet_keeps_channels_last_end_to_end() -> None:
    g = lwc.load("zoo:mobilenet_v1")
    before = outputs(g)
    ctx = PassManager("O3,convert-layout").run(g)
    counts = op_counts(g)
    assert "conv" not in counts and counts["conv_nhwc"] == 27
    assert counts["transpose"] == 1  # only the graph input is transposed
    assert ctx.history[-1].stats["converted"] == 27
    assert_same_outputs(before, g)
