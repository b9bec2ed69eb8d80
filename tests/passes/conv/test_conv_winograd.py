"""Winograd F(2x2,3x3) and F(4x4,3x3): the transform matrices compute 1-d correlation exactly
(float64), the pass records a per-layer error that matches an independent measurement and stays
within 1e-4 relative in float32, and MACs fall by (m+2)^2 / (9 m^2)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from pass_helpers import f32, op_counts, outputs, rand

from lwc.ir import Graph
from lwc.ops.conv import conv_reference
from lwc.ops.winograd import MATRICES, winograd_compute
from lwc.pass_manager import run_pipeline


@pytest.mark.parametrize("m", [2, 4])
def test_matrices_compute_correlation(m: int) -> None:
    """A^T [(G g) * (B^T d)] = valid correlation of d (m+2 taps) with g (3 taps)."""
    bt, gm, at = MATRICES[m]
    rng = np.random.default_rng(m)
    for _ in range(5):
        d, g = rng.standard_normal(m + 2), rng.standard_normal(3)
        want = np.array([d[i:i + 3] @ g for i in range(m)])
        np.testing.assert_allclose(at @ ((gm @ g) * (bt @ d)), want, rtol=1e-12, atol=1e-12)


def vgg_like(c: int = 16, size: int = 16) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("vgg")
    y = g.add_input("x", f32(1, c, size, size))
    for i in range(3):
        w = rand(rng, c, c, 3, 3) * np.float32((9 * c) ** -0.5)
        y = g.add_node("conv", [y, g.add_constant(w, "w"), g.add_constant(rand(rng, c), "b")],
                       {"pads": (1, 1, 1, 1), "act": "relu" if i < 2 else ""},
                       name=f"conv{i}").output
    g.outputs = [y]
    g.verify()
    return g


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_records_error_and_macs(m: int) -> None:
    g = vgg_like()
    before = outputs(g)
    convs = [(n.label, n.inputs[1].data) for n in g.nodes]
    ctx = run_pipeline(g, f"winograd{{tile={m}}}")
    assert op_counts(g) == {"winograd_conv": 3}
    assert len(ctx.records) == 3
    for rec, (label, w) in zip(ctx.records, convs):
        s = rec.stats
        assert rec.node == label and 0 < s["error"] < 1e-4
        assert Fraction(s["macs_after"], s["macs_before"]) == Fraction((m + 2) ** 2, 9 * m * m)
        assert s["params_after"] == (m + 2) ** 2 * 16 * 16 + 16
    # the whole net agrees with the direct convs within 1e-4 relative in float32
    (a,), (b,) = before, outputs(g)
    assert np.max(np.abs(a - b)) / np.max(np.abs(a)) < 1e-4


def test_recorded_error_matches_independent_measurement() -> None:
    """Re-run the rewritten layer alone on the pass's input (seed 0) and compare to float64."""
    g = vgg_like(c=8, size=10)
    w = g.nodes[0].inputs[1].data
    ctx = run_pipeline(g, "winograd{tile=4}")
    node = g.nodes[0]
    x = np.random.default_rng(0).standard_normal((1, 8, 10, 10)).astype(np.float32)
    y = winograd_compute(x, node.inputs[1].data, 4, (1, 1, 1, 1))  # the kernel, no epilogue
    ref = conv_reference(x.astype(np.float64), w.astype(np.float64), None,
                         {"strides": (), "pads": (1, 1, 1, 1), "dilations": (), "group": 1})
    err = np.max(np.abs(y - ref)) / np.max(np.abs(ref))
    assert ctx.records[0].stats["error"] == pytest.approx(err, rel=1e-6)


def test_f4_error_exceeds_f2_error() -> None:
    """Larger tiles use points +-2 whose powers amplify rounding: F(4,3) is measurably worse."""
    e = {m: max(r.stats["error"] for r in run_pipeline(vgg_like(), f"winograd{{tile={m}}}").records)
         for m in (2, 4)}
    assert e[4] > e[2]


def test_max_error_keeps_the_direct_conv() -> None:
    g = vgg_like()
    ctx = run_pipeline(g, "winograd{tile=4,max_error=1e-9}")
    assert op_counts(g) == {"conv": 3}
    assert all(r.stats["refused"] for r in ctx.records)


def test_strided_and_grouped_convs_are_skipped() -> None:
    rng = np.random.default_rng(0)
    g = Graph("skip")
    x = g.add_input("x", f32(1, 4, 8, 8))
    a = g.add_node("conv", [x, g.add_constant(rand(rng, 4, 4, 3, 3), "a")],
                   {"strides": (2, 2)}).output
    b = g.add_node("conv", [x, g.add_constant(rand(rng, 4, 2, 3, 3), "b")], {"group": 2}).output
    c = g.add_node("conv", [x, g.add_constant(rand(rng, 4, 4, 3, 3), "c")],
                   {"dilations": (2, 2)}).output
    g.outputs = [a, b, c]
    assert not run_pipeline(g, "winograd").history[0].changed
