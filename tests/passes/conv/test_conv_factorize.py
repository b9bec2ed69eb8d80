"""Approximate factorisations: exact on weights built low-rank / separable, reported error equal to
the SVD theory (discarded sigma^2 over total, computed here independently), the depthwise-separable
MAC ratio 1/N + 1/K^2 exactly by ``lwc.cost.node_cost``, and ``max_error`` refusals."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conv_strategies import conv_chains
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pass_helpers import f32, op_counts, outputs

from lwc.cost import node_cost
from lwc.ir import Graph
from lwc.pass_manager import run_pipeline


def conv_graph(w: np.ndarray, *, pads: tuple[int, ...] = (1, 1, 1, 1), strides=(1, 1),
               bias: bool = True, act: str = "relu", size: int = 8) -> Graph:
    rng = np.random.default_rng(7)
    g = Graph("f")
    x = g.add_input("x", f32("N", w.shape[1], size, size))
    ins = [x, g.add_constant(w.astype(np.float32), "w")]
    if bias:
        ins.append(g.add_constant(rng.standard_normal(w.shape[0]).astype(np.float32), "b"))
    g.outputs = [g.add_node("conv", ins, {"pads": pads, "strides": strides, "act": act},
                            name="conv").output]
    g.verify()
    return g


def close(g: Graph, before: list[np.ndarray], tol: float = 1e-5) -> None:
    (a,), (b,) = before, outputs(g)
    np.testing.assert_allclose(b, a, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(a)))))


def the_record(ctx, pass_name: str) -> dict:
    (rec,) = [r for r in ctx.records if r.pass_name == pass_name]
    return rec.stats


# ----- factorize-depthwise ------------------------------------------------------------------------

def slice_rank_weights(rng: np.random.Generator, cout: int, cin: int, k: int, m: int) -> np.ndarray:
    """W with every input-channel slice W[:, c] (Cout x K^2) of rank m."""
    w = np.zeros((cout, cin, k * k))
    for c in range(cin):
        w[:, c] = rng.standard_normal((cout, m)) @ rng.standard_normal((m, k * k))
    return w.reshape(cout, cin, k, k)


@pytest.mark.parametrize("m", [1, 2])
def test_depthwise_exact_on_separable_weights(m: int) -> None:
    w = slice_rank_weights(np.random.default_rng(m), 6, 4, 3, m)
    g = conv_graph(w)
    before = outputs(g)
    ctx = run_pipeline(g, f"factorize-depthwise{{multiplier={m}}}")
    assert op_counts(g) == {"conv": 2}
    dw = g.nodes[0]
    assert dw.attrs["group"] == 4 and dw.output.type.shape[1] == 4 * m
    close(g, before)
    assert the_record(ctx, "factorize-depthwise")["error"] < 1e-12


def test_depthwise_full_is_exact_on_random_weights() -> None:
    w = np.random.default_rng(0).standard_normal((5, 3, 3, 3))
    g = conv_graph(w, strides=(2, 1), pads=(0, 1, 2, 1))
    before = outputs(g)
    ctx = run_pipeline(g, "factorize-depthwise{multiplier=full}")
    close(g, before)
    assert the_record(ctx, "factorize-depthwise")["multiplier"] == 5  # min(Cout, K^2)


@pytest.mark.parametrize("m", [1, 2, 4])
def test_depthwise_error_is_svd_theory(m: int) -> None:
    w = np.random.default_rng(10 + m).standard_normal((8, 5, 3, 3)).astype(np.float32)
    ctx = run_pipeline(conv_graph(w), f"factorize-depthwise{{multiplier={m}}}")
    stats = the_record(ctx, "factorize-depthwise")
    discarded = total = 0.0
    worst = 0.0
    for c in range(5):
        s = np.linalg.svd(w[:, c].reshape(8, 9).astype(np.float64), compute_uv=False)
        discarded += float(np.sum(s[m:] ** 2))
        total += float(np.sum(s ** 2))
        worst = max(worst, float(np.sum(s[m:] ** 2) / np.sum(s ** 2)))
    assert stats["error"] == pytest.approx(discarded / total, rel=1e-9)
    assert stats["max_slice_error"] == pytest.approx(worst, rel=1e-9)


def test_depthwise_reported_error_matches_reconstructed_weights() -> None:
    """Rebuild W from the two new convs' weights and measure the error directly."""
    w = np.random.default_rng(3).standard_normal((6, 4, 3, 3)).astype(np.float32)
    g = conv_graph(w)
    ctx = run_pipeline(g, "factorize-depthwise{multiplier=2}")
    dw, pw = (n.inputs[1].data.astype(np.float64) for n in g.nodes)
    dw = dw.reshape(4, 2, 9)
    pw = pw.reshape(6, 4, 2)
    w_hat = np.einsum("ocm,cmk->ock", pw, dw).reshape(w.shape)
    w64 = w.astype(np.float64)
    err = np.sum((w_hat - w64) ** 2) / np.sum(w64 ** 2)
    assert the_record(ctx, "factorize-depthwise")["error"] == pytest.approx(err, rel=1e-5)


@pytest.mark.parametrize(("cout", "cin", "k"), [(16, 8, 3), (32, 16, 5), (12, 4, 3)])
def test_depthwise_separable_mac_ratio_is_exact(cout: int, cin: int, k: int) -> None:
    w = np.random.default_rng(0).standard_normal((cout, cin, k, k))
    g = conv_graph(w, pads=(k // 2,) * 4)
    original = node_cost(g.nodes[0]).macs
    ctx = run_pipeline(g, "factorize-depthwise{multiplier=1}")
    new = sum(node_cost(n).macs for n in g.nodes)
    assert Fraction(new, original) == Fraction(1, cout) + Fraction(1, k * k)
    stats = the_record(ctx, "factorize-depthwise")
    assert (stats["macs_before"], stats["macs_after"]) == (original, new)


def test_max_error_refuses_and_records() -> None:
    w = np.random.default_rng(1).standard_normal((8, 4, 3, 3))
    g = conv_graph(w)
    ctx = run_pipeline(g, "factorize-depthwise{multiplier=1,max_error=0.05}")
    assert op_counts(g) == {"conv": 1}
    stats = the_record(ctx, "factorize-depthwise")
    assert stats["refused"] is True and stats["error"] > 0.05


# ----- factorize-spatial --------------------------------------------------------------------------

@pytest.mark.parametrize("rank", [1, 3])
def test_spatial_exact_on_separable_weights(rank: int) -> None:
    """W[o, c, i, j] = sum_r A[r, c, i] B[o, r, j] has rank <= R as a (Cin*K) x (K*Cout) matrix."""
    rng = np.random.default_rng(rank)
    a, b = rng.standard_normal((rank, 4, 3)), rng.standard_normal((6, rank, 3))
    w = np.einsum("rci,orj->ocij", a, b)
    g = conv_graph(w, strides=(2, 1), pads=(1, 0, 0, 2))
    before = outputs(g)
    ctx = run_pipeline(g, f"factorize-spatial{{rank={rank}}}")
    v, h = g.nodes
    assert v.inputs[1].type.shape[2:] == (3, 1) and h.inputs[1].type.shape[2:] == (1, 3)
    close(g, before)
    assert the_record(ctx, "factorize-spatial")["error"] < 1e-12


def test_spatial_full_exact_and_error_theory() -> None:
    w = np.random.default_rng(5).standard_normal((6, 4, 3, 3)).astype(np.float32)
    g = conv_graph(w)
    before = outputs(g)
    run_pipeline(g, "factorize-spatial{rank=full}")
    close(g, before)
    s = np.linalg.svd(w.transpose(1, 2, 3, 0).reshape(12, 18).astype(np.float64),
                      compute_uv=False)
    ctx = run_pipeline(conv_graph(w), "factorize-spatial{rank=4}")
    theory = float(np.sum(s[4:] ** 2) / np.sum(s ** 2))
    assert the_record(ctx, "factorize-spatial")["error"] == pytest.approx(theory, rel=1e-9)
    refused = run_pipeline(conv_graph(w), f"factorize-spatial{{rank=4,max_error={theory / 2}}}")
    assert the_record(refused, "factorize-spatial")["refused"]


# ----- low-rank -----------------------------------------------------------------------------------

def gemm_graph(b: np.ndarray, trans_b: bool) -> Graph:
    g = Graph("fc")
    k = b.shape[1] if trans_b else b.shape[0]
    n = b.shape[0] if trans_b else b.shape[1]
    x = g.add_input("x", f32("N", k))
    c = g.add_constant(np.linspace(-1, 1, n).astype(np.float32), "c")
    g.outputs = [g.add_node("gemm", [x, g.add_constant(b.astype(np.float32), "b"), c],
                            {"trans_b": trans_b, "alpha": 0.5, "act": "relu"}, name="fc").output]
    g.verify()
    return g


@pytest.mark.parametrize("trans_b", [False, True])
def test_low_rank_gemm_exact_on_low_rank_weights(trans_b: bool) -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 30))  # rank 3
    g = gemm_graph(w, trans_b)
    before = outputs(g)
    ctx = run_pipeline(g, "low-rank{energy=0.999999}")
    assert op_counts(g) == {"gemm": 2}
    stats = the_record(ctx, "low-rank")
    assert stats["rank"] == 3 and stats["error"] < 1e-12
    assert stats["macs_after"] == 3 * (40 + 30)  # per row: r * (K + N)
    close(g, before)


def test_low_rank_by_mac_ratio_and_error_theory() -> None:
    w = np.random.default_rng(4).standard_normal((24, 16, 1, 1)).astype(np.float32)
    g = conv_graph(w, pads=(0, 0, 0, 0))
    ctx = run_pipeline(g, "low-rank{mac_ratio=0.5}")
    stats = the_record(ctx, "low-rank")
    r = stats["rank"]
    assert r == int(0.5 * 24 * 16 // (24 + 16))
    assert stats["mac_ratio"] == pytest.approx(r * (24 + 16) / (24 * 16))
    s = np.linalg.svd(w.reshape(24, 16).astype(np.float64), compute_uv=False)
    assert stats["error"] == pytest.approx(float(np.sum(s[r:] ** 2) / np.sum(s ** 2)), rel=1e-9)


def test_low_rank_energy_picks_smallest_rank() -> None:
    u = np.linalg.qr(np.random.default_rng(0).standard_normal((20, 20)))[0]
    s = np.array([10.0, 5.0, 1.0] + [0.01] * 17)
    w = (u * s) @ u.T
    ctx = run_pipeline(gemm_graph(w, True), "low-rank{energy=0.99}")
    # 100 / 126.0017 < 0.99 <= 125 / 126.0017 -> rank 2
    assert the_record(ctx, "low-rank")["rank"] == 2


# ----- group-shuffle ------------------------------------------------------------------------------

def test_group_shuffle_exact_on_block_structured_weights() -> None:
    """Weights where output i reads only input group (i mod g) are exactly representable."""
    rng = np.random.default_rng(0)
    g_, cout, cin = 3, 9, 6
    w = rng.standard_normal((cout, cin))
    for i in range(cout):
        keep = np.zeros(cin, bool)
        keep[(i % g_) * 2:(i % g_) * 2 + 2] = True
        w[i, ~keep] = 0
    g = conv_graph(w.reshape(cout, cin, 1, 1), pads=(0, 0, 0, 0))
    before = outputs(g)
    ctx = run_pipeline(g, "group-shuffle{groups=3}")
    assert op_counts(g) == {"conv": 1, "channel_shuffle": 1}
    close(g, before)
    stats = the_record(ctx, "group-shuffle")
    assert stats["error"] < 1e-12
    assert Fraction(stats["macs_after"], stats["macs_before"]) == Fraction(1, 3)


def test_group_shuffle_error_is_dropped_energy() -> None:
    w = np.random.default_rng(1).standard_normal((8, 4, 1, 1)).astype(np.float32)
    ctx = run_pipeline(conv_graph(w, pads=(0, 0, 0, 0)), "group-shuffle{groups=2}")
    m = w.reshape(8, 4).astype(np.float64)
    kept = sum(float(np.sum(m[i, (i % 2) * 2:(i % 2) * 2 + 2] ** 2)) for i in range(8))
    assert the_record(ctx, "group-shuffle")["error"] == pytest.approx(1 - kept / np.sum(m ** 2))


@pytest.mark.parametrize("pipeline", ["factorize-depthwise{multiplier=full}",
                                      "factorize-spatial{rank=full}"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_full_factorisations_keep_outputs(data: st.DataObject, pipeline: str) -> None:
    """``full`` is exact on any conv the pass takes (strides, pads, dilations, act, residual)."""
    g = data.draw(conv_chains("any"))
    before = outputs(g)
    ctx = run_pipeline(g, pipeline)
    for rec in ctx.records:
        assert rec.stats["error"] < 1e-10
    close_all(g, before)


def close_all(g: Graph, before: list[np.ndarray]) -> None:
    for a, b in zip(before, outputs(g)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * max(1.0, float(np.max(np.abs(a)))))
