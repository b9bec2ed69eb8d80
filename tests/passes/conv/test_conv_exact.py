"""Exact conv rewrites (im2col, conv1x1-to-gemm, winograd, channel-shuffle, eliminate-shuffle) on
hypothesis-generated conv/bn/act/residual graphs: interpreter outputs agree within 1e-5 relative
(1e-4 for Winograd F(4,3), whose transforms amplify float32 rounding)."""

from __future__ import annotations

import numpy as np
import pytest
from conv_strategies import conv_chains
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pass_helpers import assert_same_outputs, f32, op_counts, outputs, rand
from strategies_passes import pass_graphs

import lwc
from lwc.cost import graph_cost
from lwc.ir import Graph
from lwc.pass_manager import run_pipeline

PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

EXACT = [("im2col{depthwise=true}", 1e-5), ("conv1x1-to-gemm", 1e-5), ("winograd{tile=2}", 1e-5),
         ("winograd{tile=4}", 1e-4)]


@pytest.mark.parametrize("prefix", ["", "fold-bn,fuse,"])
@pytest.mark.parametrize(("pipeline", "tol"), EXACT)
@PROPERTY
@given(g=pass_graphs(max_blocks=3))
def test_exact_rewrite_keeps_outputs(g: Graph, pipeline: str, tol: float, prefix: str) -> None:
    """With the fused prefix, the rewrites meet conv epilogues (act, residual) too."""
    before = outputs(g)
    run_pipeline(g, prefix + pipeline)
    assert_same_outputs(before, g, rtol=tol, atol=tol)


KIND = {"im2col{depthwise=true}": "any", "conv1x1-to-gemm": "pointwise",
        "winograd{tile=2}": "winograd", "winograd{tile=4}": "winograd"}


@pytest.mark.parametrize(("pipeline", "tol"), EXACT)
@PROPERTY
@given(data=st.data())
def test_exact_rewrite_on_targeted_convs(data: st.DataObject, pipeline: str, tol: float) -> None:
    """Graphs made of convs the rewrite applies to (with bias, act and residual): it must fire
    on the first conv and keep the outputs."""
    g = data.draw(conv_chains(KIND[pipeline]))
    before = outputs(g)
    ctx = run_pipeline(g, pipeline)
    assert ctx.history[-1].changed
    assert_same_outputs(before, g, rtol=tol, atol=tol)


def _conv_graph(k: int, stride: int, group: int, act: str = "relu6") -> Graph:
    rng = np.random.default_rng(k * 10 + stride + group)
    g = Graph("c")
    x = g.add_input("x", f32("N", 4, 9, 7))
    y = g.add_node("conv", [x, g.add_constant(rand(rng, 6, 4 // group, k, k), "w"),
                            g.add_constant(rand(rng, 6), "b")],
                   {"pads": (1, 0, 1, 2) if k > 1 else (), "strides": (stride, stride),
                    "group": group, "act": act}, name="conv").output
    g.outputs = [y]
    g.verify()
    return g


@pytest.mark.parametrize("group", [1, 2])
def test_im2col_lowers_every_conv_with_equal_macs(group: int) -> None:
    g = _conv_graph(3, 2, group)
    before, macs = outputs(g), graph_cost(g).macs
    ctx = run_pipeline(g, "im2col")
    assert "conv" not in op_counts(g) and op_counts(g)["im2col"] == 1
    assert_same_outputs(before, g)
    (rec,) = ctx.records
    assert rec.stats["macs_before"] == rec.stats["macs_after"] == macs


def test_conv1x1_to_gemm_only_touches_pointwise_convs() -> None:
    g = _conv_graph(1, 1, 2)
    before = outputs(g)
    run_pipeline(g, "conv1x1-to-gemm")
    assert op_counts(g).get("conv", 0) == 0 and op_counts(g)["matmul"] == 1
    assert "im2col" not in op_counts(g) and "transpose" not in op_counts(g)
    assert_same_outputs(before, g)
    g3 = _conv_graph(3, 1, 1)
    assert not run_pipeline(g3, "conv1x1-to-gemm").history[0].changed
    strided = _conv_graph(1, 2, 1)
    assert not run_pipeline(strided, "conv1x1-to-gemm").history[0].changed


def test_lowered_graph_round_trips_through_text() -> None:
    """The new ops print and parse like any other (``im2col`` has declared attributes)."""
    from lwc.ir.parser import parse_graph
    from lwc.ir.printer import print_graph

    g = _conv_graph(3, 2, 1)
    g.outputs = [g.add_node("conv", [g.outputs[0], g.add_constant(
        rand(np.random.default_rng(1), 2, 6, 3, 3), "w2")], {"pads": (1, 1, 1, 1)}).output]
    run_pipeline(g, "winograd,im2col")
    assert {"im2col", "winograd_conv"} <= set(op_counts(g))
    g2 = parse_graph(print_graph(g, inline_limit=10**9))
    np.testing.assert_array_equal(outputs(g2)[0], outputs(g)[0])


def test_conv_rewrites_are_listed() -> None:
    names = set(lwc.pass_manager.registered_passes())
    assert {"im2col", "conv1x1-to-gemm", "winograd", "channel-shuffle", "eliminate-shuffle",
            "factorize-depthwise", "factorize-spatial", "low-rank", "group-shuffle",
            "label-blocks"} <= names
