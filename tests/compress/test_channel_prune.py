"""Structured channel pruning: removing channels whose activation is identically zero must leave
the interpreter's outputs unchanged, which holds only if every producer, consumer, residual add,
depthwise conv, concat and flatten -> gemm was sliced consistently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lwc
from lwc.errors import PassError
from lwc.ir import Graph
from lwc.ops.registry import get_op
from lwc.pass_manager import run_pipeline
from lwc.passes.compress.channel_groups import ChannelGroups, analyse
from lwc.passes.compress.channel_prune import prune_channels, scores
from lwc.zoo import build

RATIO = 0.25


def _zero(graph: Graph, v: lwc.ir.Value, index: int, channels: np.ndarray, axis: int) -> None:
    c = v.producer.inputs[index] if v.producer is not None else None
    if c is None or c.data is None:
        return
    arr = np.array(c.data)
    sl = [slice(None)] * arr.ndim
    sl[axis] = channels
    arr[tuple(sl)] = 0
    graph.set_constant(c, arr)


def kill(groups: ChannelGroups, comps: np.ndarray) -> None:
    """Make the channels of ``comps`` identically zero: zero, for every value they touch, the
    parameters of that value's producing node which create those channels (conv, conv_transpose,
    gemm and matmul filters and biases, batch-norm gamma/beta, per-channel additive constants)."""
    graph = groups.graph
    dead = np.zeros(groups.count, bool)
    dead[comps] = True
    for v in list(groups.base):
        ch = np.flatnonzero(dead[groups.components(v)])
        n = v.producer
        if not ch.size or n is None:
            continue
        if n.op == "conv":
            _zero(graph, v, 1, ch, 0)
            has_res = bool(n.attrs.get("residual"))
            if len(n.inputs) > (3 if has_res else 2):
                _zero(graph, v, 2, ch, 0)
        elif n.op == "conv_transpose":  # weight [Cin, Cout, k...]
            _zero(graph, v, 1, ch, 1)
            if len(n.inputs) > 2:
                _zero(graph, v, 2, ch, 0)
        elif n.op == "matmul":
            _zero(graph, v, 1, ch, 1)
        elif n.op == "gemm":
            trans_b = get_op("gemm").complete_attrs(n.attrs)["trans_b"]
            _zero(graph, v, 1, ch, 0 if trans_b else 1)
            if len(n.inputs) > 2 and n.inputs[2].type.shape[-1] == v.type.shape[1]:
                _zero(graph, v, 2, ch, n.inputs[2].type.rank - 1)
        elif n.op == "batch_norm":
            _zero(graph, v, 1, ch, 0)
            _zero(graph, v, 2, ch, 0)
        elif n.op in ("add", "sub"):
            for i, x in enumerate(n.inputs):
                axis = 1 - (v.type.rank - x.type.rank)
                if x.is_constant and 0 <= axis < x.type.rank and x.type.shape[axis] > 1:
                    _zero(graph, v, i, ch, axis)


def prunable_by_group(groups: ChannelGroups) -> list[list[int]]:
    """Components grouped by the set of values they touch; only groups the pass may prune."""
    _, produced = scores(groups)
    members: dict[int, set[int]] = {}
    for i, v in enumerate(groups.base):
        for c in np.unique(groups.components(v)):
            members.setdefault(int(c), set()).add(i)
    sig: dict[frozenset[int], list[int]] = {}
    for c, vals in members.items():
        sig.setdefault(frozenset(vals), []).append(c)
    return [comps for comps in sig.values()
            if all(produced[c] and not groups.frozen[c] for c in comps)]


def zero_random_channels(graph: Graph, seed: int = 0, ratio: float = RATIO
                         ) -> dict[str, np.ndarray]:
    """Make ``ratio`` of every prunable group's channels identically zero; returns the zeroed
    channel indices by value name."""
    rng = np.random.default_rng(seed)
    groups = analyse(graph)
    picked: list[int] = []
    for comps in prunable_by_group(groups):
        k = int(np.floor(ratio * len(comps) + 1e-9))
        picked += [int(c) for c in rng.choice(comps, size=k, replace=False)] if k else []
    kill(groups, np.asarray(picked, dtype=np.int64))
    dead = np.zeros(groups.count, bool)
    dead[picked] = True
    out = {v.name: np.flatnonzero(dead[groups.components(v)]) for v in groups.base}
    return {k: v for k, v in out.items() if v.size}


def mask_channels(graph: Graph, channels: dict[str, np.ndarray]) -> None:
    """Multiply every listed value by a 0/1 mask right where it is made: the reference meaning
    of "these channels are removed", independent of the pass's slicing."""
    for name, ch in channels.items():
        v = graph.value(name)
        uses = list(v.uses)
        mask = np.ones((1, int(v.type.shape[1])) + (1,) * (v.type.rank - 2), np.float32)
        mask[0, ch] = 0
        m = graph.add_node("mul", [v, graph.add_constant(mask, "mask")])
        for u in uses:
            u.node.set_input(u.index, m.output)
    graph.toposort()
    graph.verify()


def max_rel_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for k in a:
        assert a[k].shape == b[k].shape
        scale = max(float(np.abs(a[k]).max()), 1.0)
        worst = max(worst, float(np.abs(a[k] - b[k]).max()) / scale)
    return worst


ZOO = [("resnet18", {"resolution": 32}), ("mobilenet_v2", {"resolution": 32, "alpha": 0.5}),
       ("inception", {"resolution": 64, "modules": 3}), ("squeezenet", {"resolution": 64}),
       ("lenet5", {}), ("mlp", {})]


SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DIGITS_LENET5 = SHARED / "models" / "digits_lenet5.onnx"
"""Its flatten maps each of 50 channels to 2x2 = 4 features of the first gemm."""


FUSED = [("resnet18", {"resolution": 32}), ("mobilenet_v2", {"resolution": 32, "alpha": 0.5})]
"""After fold-bn and fuse: convs with bias, fused activation and a fused residual operand."""


@pytest.mark.parametrize(("name", "opts", "pipeline"),
                         [(n, o, "") for n, o in ZOO] + [("digits_lenet5", {}, "")]
                         + [(n, o, "fold-bn,fuse") for n, o in FUSED],
                         ids=[n for n, _ in ZOO] + ["digits_lenet5"]
                         + [f"{n}-fused" for n, _ in FUSED])
def test_removing_zero_channels_keeps_outputs(name: str, opts: dict, pipeline: str) -> None:
    if name == "digits_lenet5":
        dense = lwc.load(str(DIGITS_LENET5))
    else:
        dense = build(name, batch=2, seed=1, **opts)
    if pipeline:
        run_pipeline(dense, pipeline)
        assert any(n.attrs.get("residual") for n in dense.nodes_of("conv"))
    x = lwc.random_inputs(dense, seed=3)
    zeroed = dense.copy()
    dead = zero_random_channels(zeroed)
    pruned = zeroed.copy()
    r = prune_channels(pruned, ratio=RATIO, min_channels=1)
    pruned.verify()
    assert dead and r.removed > 0
    for value, ch in dead.items():  # exactly the zeroed channels went
        assert pruned.value(value).type.shape[1] == zeroed.value(value).type.shape[1] - len(ch)
    assert max_rel_diff(lwc.interpret(zeroed, x), lwc.interpret(pruned, x)) <= 1e-5
    assert r.after.params < r.before.params and r.after.macs < r.before.macs
    assert r.after.params == pruned.parameter_count()
    # control: the same pruning of the model without zeroed channels does change its outputs
    control = dense.copy()
    prune_channels(control, ratio=RATIO, min_channels=1)
    assert max_rel_diff(lwc.interpret(dense, x), lwc.interpret(control, x)) > 1e-3


ACTS = ("", "relu", "sigmoid", "leaky_relu", "hard_swish")


@st.composite
def prunable_graphs(draw: st.DrawFn) -> Graph:
    """NCHW input -> 1..4 blocks (conv+bn+act, residual conv+add, depthwise conv (multiplier 1 or
    2), two-branch
    concat, per-channel or scalar constant add/mul, pool) -> flatten or global pool -> gemm."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = Graph("prunable")

    def w(*shape: int, positive: bool = False) -> lwc.ir.Value:
        a = rng.standard_normal(shape).astype(np.float32)
        return g.add_constant(np.abs(a) + 0.5 if positive else a, "k")

    def conv(x: lwc.ir.Value, cout: int, k: int, group: int = 1) -> lwc.ir.Value:
        cin = int(x.type.shape[1])
        ins = [x, w(cout, cin // group, k, k)] + ([w(cout)] if draw(st.booleans()) else [])
        act = draw(st.sampled_from(ACTS))
        y = g.add_node("conv", ins, {"pads": (k // 2,) * 4, "group": group, "act": act}).output
        if draw(st.booleans()):
            c = cout
            y = g.add_node("batch_norm", [y, w(c, positive=True), w(c), w(c),
                                          w(c, positive=True)]).output
        return y

    x = g.add_input("x", lwc.ir.TensorType(lwc.ir.DType.F32, (draw(st.sampled_from([1, "N"])),
                                                             draw(st.integers(1, 3)), 4, 4)))
    cur = conv(x, draw(st.integers(2, 8)), 3)
    for _ in range(draw(st.integers(1, 4))):
        c = int(cur.type.shape[1])
        kind = draw(st.sampled_from(["conv", "residual", "depthwise", "concat", "const", "pool",
                                     "split", "convT", "layout"]))
        if kind == "conv":
            cur = conv(cur, draw(st.integers(2, 8)), draw(st.sampled_from([1, 3])))
        elif kind == "residual":
            cur = g.add_node("add", [conv(cur, c, 3), cur]).output
        elif kind == "depthwise":  # channel multiplier 1 or 2
            cur = conv(cur, c * draw(st.integers(1, 2)), 3, group=c)
        elif kind == "concat":
            a, b = conv(cur, draw(st.integers(2, 6)), 1), conv(cur, draw(st.integers(2, 6)), 3)
            cur = g.add_node("concat", [a, b], {"axis": 1}).output
        elif kind == "const":
            shape = draw(st.sampled_from([(c, 1, 1), (1, c, 1, 1), ()]))
            cur = g.add_node(draw(st.sampled_from(["add", "mul"])), [cur, w(*shape)]).output
        elif kind == "split" and c >= 2:  # split, one half through a conv, concat back
            a, b = g.add_node("split", [cur], {"axis": 1, "sizes": (1, c - 1)}).outputs
            cur = g.add_node("concat", [conv(b, draw(st.integers(2, 6)), 1), a],
                             {"axis": 1}).output
        elif kind == "convT":
            cout = draw(st.integers(2, 6))
            ins = [cur, w(c, cout, 2, 2)] + ([w(cout)] if draw(st.booleans()) else [])
            cur = g.add_node("conv_transpose", ins, {"pads": (1, 1, 0, 0)}).output
        elif kind == "layout":  # ops that keep the channel axis in place
            cur = g.add_node("transpose", [cur], {"perm": (0, 1, 3, 2)}).output
            cur = g.add_node("pad", [cur], {"pads": (0, 0, 1, 0, 0, 0, 0, 1)}).output
        else:
            cur = g.add_node("max_pool", [cur], {"kernel": (2, 2), "strides": (1, 1)}).output
    head = draw(st.sampled_from(["flatten", "pool", "squeeze"]))
    if head != "flatten":
        cur = g.add_node("global_avg_pool", [cur]).output
    if head == "squeeze":
        cur = g.add_node("squeeze", [cur], {"axes": (2, 3)}).output
    else:
        cur = g.add_node("flatten", [cur]).output
    f = int(cur.type.shape[1])
    if draw(st.booleans()):
        y = g.add_node("gemm", [cur, w(5, f)], {"trans_b": True}).output
    else:
        y = g.add_node("matmul", [cur, w(f, 5)]).output
    g.outputs = [y]
    g.verify()
    return g


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(g=prunable_graphs())
def test_random_graph_pruning_matches_masked_reference(g: Graph) -> None:
    """Zero-filter channels are chosen; the pruned graph computes what the graph computes with
    those channels multiplied by zero wherever they are made (any activation, any broadcast)."""
    dead = zero_random_channels(g, seed=1, ratio=0.5)
    assume(dead)
    ref = g.copy()
    mask_channels(ref, dead)
    pruned = g.copy()
    prune_channels(pruned, ratio=0.5, min_channels=1)
    pruned.verify()
    for name, ch in dead.items():  # exactly the zeroed channels went
        v = pruned.value(name)
        assert v.type.shape[1] == g.value(name).type.shape[1] - len(ch)
    x = lwc.random_inputs(g, seed=2, batch=2)
    assert max_rel_diff(lwc.interpret(ref, x), lwc.interpret(pruned, x)) <= 1e-5


def _two_convs(norms: list[float], gammas: list[float] | None = None) -> Graph:
    """x -> conv A (filters with the given L1 norms) [-> bn] -> relu -> conv B -> output."""
    rng = np.random.default_rng(0)
    g = Graph("two")
    x = g.add_input("x", lwc.ir.TensorType(lwc.ir.DType.F32, (1, 2, 5, 5)))
    wa = rng.standard_normal((len(norms), 2, 3, 3)).astype(np.float32)
    wa *= (np.asarray(norms) / np.abs(wa).reshape(len(norms), -1).sum(1))[:, None, None, None]
    y = g.add_node("conv", [x, g.add_constant(wa, "a.w")], {"pads": (1, 1, 1, 1)},
                   name="a").output
    if gammas is not None:
        c = len(norms)
        bn = [np.asarray(gammas, np.float32), np.zeros(c, np.float32), np.zeros(c, np.float32),
              np.ones(c, np.float32)]
        y = g.add_node("batch_norm", [y, *(g.add_constant(p, "bn") for p in bn)]).output
    y = g.add_node("relu", [y]).output
    wb = rng.standard_normal((3, len(norms), 1, 1)).astype(np.float32)
    g.outputs = [g.add_node("conv", [y, g.add_constant(wb, "b.w")], name="b").output]
    g.verify()
    return g


def test_lowest_l1_filters_go_and_consumers_lose_the_same_inputs() -> None:
    norms = [5.0, 1.0, 7.0, 2.0, 9.0, 0.5, 3.0, 4.0]
    g = _two_convs(norms)
    wa, wb = g.constants["a.w"].data.copy(), g.constants["b.w"].data.copy()
    r = prune_channels(g, ratio=0.5, min_channels=1)
    keep = [0, 2, 4, 7]  # norms 5, 7, 9, 4: the four largest, in their original order
    np.testing.assert_array_equal(g.constants["a.w"].data, wa[keep])
    np.testing.assert_array_equal(g.constants["b.w"].data, wb[:, keep])
    assert [(x.node, x.channels_before, x.channels_after) for x in r.layers] == [
        ("a", 8, 4), ("b", 3, 3)]
    assert r.after.macs == sum(x.macs_after for x in r.layers)


def test_batch_norm_scale_enters_the_score() -> None:
    """Equal filter norms: the channels with the smallest |gamma| / sqrt(var + eps) go."""
    g = _two_convs([1.0] * 4, gammas=[0.1, 2.0, -3.0, 0.2])
    prune_channels(g, ratio=0.5, min_channels=1)
    np.testing.assert_allclose(g.nodes_of("batch_norm")[0].inputs[1].data, [2.0, -3.0])


def test_min_channels_and_ratio_zero() -> None:
    g = _two_convs([float(i + 1) for i in range(8)])
    assert prune_channels(g.copy(), ratio=0.0).removed == 0
    r = prune_channels(g, ratio=0.9, min_channels=6)
    assert r.removed == 2 and g.constants["a.w"].data.shape[0] == 6


def test_unsupported_structures_are_frozen() -> None:
    """A non-depthwise grouped conv and a channel shuffle mix channels: nothing around them goes,
    and the analysis says why."""
    g = _two_convs([float(i + 1) for i in range(8)])
    b = g.nodes_of("conv")[1]
    shuffled = g.add_node("channel_shuffle", [b.inputs[0]], {"groups": 2}, before=b)
    b.set_input(0, shuffled.output)
    groups = analyse(g)
    assert groups.frozen_by["channel_shuffle"] == "channel_shuffle"
    assert prune_channels(g, ratio=0.5, min_channels=1).removed == 0
    g2 = _two_convs([float(i + 1) for i in range(8)])
    b2 = g2.nodes_of("conv")[1]
    w = g2.add_constant(np.ones((4, 4, 1, 1), np.float32), "grouped")
    b2.set_input(1, w)
    b2.attrs["group"] = 2
    from lwc.analysis import reinfer_types

    reinfer_types(g2)
    g2.verify()
    assert "group=2" in analyse(g2).frozen_by["b"]
    assert prune_channels(g2, ratio=0.5, min_channels=1).removed == 0


def test_shufflenet_is_left_alone_and_zoo_models_shrink() -> None:
    g = build("shufflenet", resolution=32)
    assert prune_channels(g, ratio=0.5).removed == 0
    r = prune_channels(build("xception", resolution=71, middle_blocks=1), ratio=0.5)
    assert r.mac_ratio < 0.5 and r.param_ratio < 0.5


@pytest.mark.parametrize(("ratio", "min_channels"), [(1.0, 8), (-0.1, 8), (0.5, 0)])
def test_bad_options_raise_pass_error(ratio: float, min_channels: int) -> None:
    with pytest.raises(PassError, match="prune-channels"):
        run_pipeline(build("mlp"), f"prune-channels{{ratio={ratio},min_channels={min_channels}}}")
