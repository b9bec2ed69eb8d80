"""Every exact graph pass keeps interpreter outputs (1e-5 relative) on generated graphs, is
idempotent, and does its job on hand-built cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from pass_helpers import assert_same_outputs, conv_bn_relu, f32, op_counts, outputs
from strategies import graphs
from strategies_passes import pass_graphs

from lwc.ir import Graph
from lwc.pass_manager import PassManager

EXACT = ["const-fold", "dce", "cse", "remove-identity", "simplify-reshape", "fold-bn", "fuse",
         "convert-layout", "convert-layout{layout=NCHW2c}"]
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check_pass(g: Graph, pipeline: str) -> None:
    before = outputs(g, seed=1)
    names = [v.name for v in g.outputs]
    first = PassManager(pipeline).run(g)
    assert_same_outputs(before, g, seed=1)
    assert [v.name for v in g.outputs] == names  # output names are the model's interface
    counts = op_counts(g)
    second = PassManager(pipeline).run(g)  # idempotent: a second run finds nothing to do
    assert not any(r.changed for r in second.history), (pipeline, second.history)
    assert op_counts(g) == counts
    assert first.history  # ran


@pytest.mark.parametrize("name", EXACT)
@PROPERTY
@given(g=pass_graphs())
def test_exact_pass_on_pass_graphs(name: str, g: Graph) -> None:
    _check_pass(g, name)


@pytest.mark.parametrize("name", EXACT)
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(g=graphs())
def test_exact_pass_on_registry_graphs(name: str, g: Graph) -> None:
    _check_pass(g, name)


@PROPERTY
@given(g=pass_graphs())
def test_o3_on_pass_graphs_folds_every_bn_and_fuses_every_activation(g: Graph) -> None:
    before = outputs(g, seed=2)
    PassManager("O3").run(g)
    assert_same_outputs(before, g, seed=2)
    assert "batch_norm" not in op_counts(g)  # every BN directly follows a single-use conv
    for n in g.nodes:
        if n.op in ("relu", "clip", "leaky_relu", "hard_swish", "sigmoid"):
            p = n.inputs[0].producer
            assert p is None or p.op != "conv" or p.attrs.get("act") or \
                len(p.outputs[0].uses) > 1 or p.outputs[0] in g.outputs, n
    for n in g.nodes:
        assert n.op not in ("identity", "dropout") or n.outputs[0] in g.outputs


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(g=graphs(max_ops=8))
def test_o3_on_registry_graphs(g: Graph) -> None:
    before = outputs(g, seed=3)
    PassManager("O3").run(g)
    assert_same_outputs(before, g, seed=3)


# ----- hand-built cases -------------------------------------------------------------------------

@pytest.mark.parametrize("act", ["relu", "relu6", ""])
def test_fold_bn_then_fuse_leaves_one_conv(act: str) -> None:
    g = conv_bn_relu(act=act)
    before = outputs(g)
    PassManager("fold-bn,fuse").run(g)
    assert op_counts(g) == {"conv": 1}
    assert g.nodes[0].attrs.get("act", "") == act
    assert g.outputs[0].name == g.nodes[0].outputs[0].name
    assert_same_outputs(before, g)


def test_fold_bn_refuses_a_conv_read_elsewhere() -> None:
    g = conv_bn_relu()
    conv = g.nodes_of("conv")[0]
    g.outputs = [*g.outputs, conv.output]
    PassManager("fold-bn").run(g)
    assert op_counts(g)["batch_norm"] == 1


def test_fold_bn_into_gemm_and_conv_transpose() -> None:
    rng = np.random.default_rng(0)
    g = Graph()
    x = g.add_input("x", f32("N", 6))
    w = g.add_constant(rng.standard_normal((4, 6)).astype(np.float32), "w")
    y = g.add_node("gemm", [x, w], {"trans_b": True, "alpha": 0.5}).output
    bn = [g.add_constant(a.astype(np.float32), "p") for a in
          (rng.uniform(0.5, 2, 4), rng.standard_normal(4), rng.standard_normal(4),
           rng.uniform(0.5, 2, 4))]
    y1 = g.add_node("batch_norm", [y, *bn]).output
    z = g.add_input("z", f32(1, 4, 3, 3))
    wt = g.add_constant(rng.standard_normal((4, 3, 2, 2)).astype(np.float32), "wt")
    t = g.add_node("conv_transpose", [z, wt], {"strides": (2, 2), "group": 2}).output
    bn2 = [g.add_constant(a.astype(np.float32), "q") for a in
           (rng.uniform(0.5, 2, 6), rng.standard_normal(6), rng.standard_normal(6),
            rng.uniform(0.5, 2, 6))]
    y2 = g.add_node("batch_norm", [t, *bn2]).output
    g.outputs = [y1, y2]
    g.verify()
    before = outputs(g)
    PassManager("fold-bn").run(g)
    assert op_counts(g) == {"gemm": 1, "conv_transpose": 1}
    assert_same_outputs(before, g)


def test_fuse_residual_then_activation_resnet_style() -> None:
    rng = np.random.default_rng(1)
    g = Graph()
    x = g.add_input("x", f32(1, 4, 5, 5))
    w = g.add_constant((rng.standard_normal((4, 4, 3, 3)) * 0.2).astype(np.float32), "w")
    c = g.add_node("conv", [x, w], {"pads": (1, 1, 1, 1)}).output
    k = g.add_constant(rng.standard_normal((4, 1, 1)).astype(np.float32), "bias")
    b = g.add_node("add", [k, c]).output           # bias add, constant first
    s = g.add_node("add", [x, b]).output           # residual add, residual first
    g.outputs = [g.add_node("relu", [s], name="out").output]
    before = outputs(g)
    PassManager("fuse").run(g)
    [conv] = g.nodes
    assert conv.op == "conv" and conv.attrs["residual"] and conv.attrs["act"] == "relu"
    assert conv.inputs[-1] is x and conv.inputs[2].data is not None
    assert_same_outputs(before, g)


def test_fuse_gemm_bias_act_and_matmul() -> None:
    rng = np.random.default_rng(2)
    g = Graph()
    x = g.add_input("x", f32("N", 5))
    w = g.add_constant(rng.standard_normal((5, 3)).astype(np.float32), "w")
    m = g.add_node("matmul", [x, w]).output
    b = g.add_node("add", [m, g.add_constant(rng.standard_normal(3).astype(np.float32))]).output
    g.outputs = [g.add_node("leaky_relu", [b], {"alpha": 0.2}).output]
    before = outputs(g)
    PassManager("fuse").run(g)
    [gemm] = g.nodes
    assert gemm.op == "gemm" and gemm.attrs["act"] == "leaky_relu" and len(gemm.inputs) == 3
    assert gemm.attrs["alpha_act"] == pytest.approx(0.2)
    assert_same_outputs(before, g)


def test_canonicalize_cleans_identity_transposes_reshapes_duplicates() -> None:
    g = Graph()
    x = g.add_input("x", f32("N", 2, 3, 4))
    i = g.add_node("dropout", [g.add_node("identity", [x]).output]).output
    t = g.add_node("transpose", [i], {"perm": (0, 2, 3, 1)}).output
    t = g.add_node("transpose", [t], {"perm": (0, 3, 1, 2)}).output
    r = g.add_node("reshape", [t], {"shape": (0, 6, 4)}).output
    r = g.add_node("reshape", [r], {"shape": (0, 24)}).output
    a, b = g.add_node("relu", [r]).output, g.add_node("relu", [r]).output
    g.add_node("sigmoid", [a])  # dead
    two = g.add_node("add", [g.add_constant(np.ones(2, np.float32)),
                             g.add_constant(np.ones(2, np.float32))]).output
    g.outputs = [g.add_node("add", [a, b], name="y").output, two]
    before = outputs(g)
    PassManager("canonicalize").run(g)
    assert op_counts(g) == {"reshape": 1, "relu": 1, "add": 1}
    assert g.nodes[0].attrs["shape"] == (0, 24)
    assert [v.name for v in g.outputs][0] == "y" and g.outputs[1].data is not None
    assert_same_outputs(before, g)


def test_remove_identity_keeps_an_input_passthrough_output() -> None:
    g = Graph()
    x = g.add_input("x", f32(3))
    g.outputs = [g.add_node("identity", [x], name="y").output]
    ctx = PassManager("remove-identity").run(g)
    assert op_counts(g) == {"identity": 1} and not ctx.history[0].changed


def test_const_fold_multi_output_keeps_output_names() -> None:
    g = Graph()
    x = g.add_input("x", f32(2))
    c = g.add_constant(np.arange(4, dtype=np.float32), "c")
    parts = g.add_node("split", [c], {"axis": 0, "sizes": (2, 2)}, output_names=["lo", "hi"])
    y = g.add_node("add", [x, parts.outputs[1]], name="y").output
    g.outputs = [parts.outputs[0], y]
    before = outputs(g)
    PassManager("const-fold").run(g)
    assert op_counts(g) == {"add": 1}
    assert [v.name for v in g.outputs] == ["lo", "y"] and g.outputs[0].data is not None
    assert_same_outputs(before, g)
