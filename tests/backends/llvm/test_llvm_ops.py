"""Every other op family against the interpreter: elementwise (broadcasting, odd sizes), pools,
reductions, softmax, lrn, batch_norm, quantize/dequantize, data movement."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llvm_helpers import check_graph, f32, single_op

import lwc
from lwc.ir.types import DType, TensorType

EXAMPLES = int(os.environ.get("LWC_HYP_EXAMPLES", 8))  # raise to search harder
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 10,
                    suppress_health_check=list(HealthCheck))
shapes = st.lists(st.integers(1, 19), min_size=1, max_size=4).map(tuple)

UNARY = [("relu", {}), ("clip", {"min": -0.3, "max": 0.4}), ("leaky_relu", {"alpha": 0.2}),
         ("sigmoid", {}), ("hard_sigmoid", {}), ("hard_swish", {}), ("tanh", {}), ("neg", {}),
         ("abs", {}), ("exp", {}), ("erf", {}), ("elu", {"alpha": 0.7}), ("selu", {}),
         ("softplus", {}), ("softsign", {}), ("floor", {}), ("ceil", {}), ("sign", {}),
         ("reciprocal", {}), ("shrink", {"lambd": 0.3, "bias": 0.1})]


@pytest.mark.parametrize("op,attrs", UNARY, ids=[u[0] for u in UNARY])
def test_unary(op: str, attrs: dict) -> None:
    check_graph(single_op(op, [(3, 7, 19)], attrs))


def test_log_sqrt_on_positive_inputs() -> None:
    for op in ("log", "sqrt"):
        g = single_op(op, [(5, 33)])
        check_graph(g, {"x0": np.random.default_rng(0).random((5, 33)).astype(np.float32) + 0.1})


@SETTINGS
@given(shapes, st.data(), st.sampled_from(["add", "sub", "mul", "div", "max", "min", "pow",
                                           "prelu", "equal", "less", "greater",
                                           "greater_equal", "less_equal"]))
def test_binary_broadcast(shape: tuple, data: st.DataObject, op: str) -> None:
    # the second operand drops leading axes and sets some axes to 1
    k = data.draw(st.integers(0, len(shape)))
    other = tuple(1 if data.draw(st.booleans()) else d for d in shape[k:])
    if data.draw(st.booleans()):
        shape, other = other or (1,), shape
    g = single_op(op, [shape, other])
    inputs = lwc.random_inputs(g, seed=2)
    if op in ("pow", "div"):
        inputs["x0"] = np.abs(inputs["x0"]) + 0.5
        inputs["x1"] = np.abs(inputs["x1"]) + 0.5
    check_graph(g, inputs)


def test_int_and_bool_ops() -> None:
    g = lwc.Graph("ints")
    a = g.add_input("a", TensorType(DType.I32, (4, 9)))
    b = g.add_input("b", TensorType(DType.I32, (9,)))
    s = g.add_node("add", [a, b]).output
    d = g.add_node("div", [s, b]).output
    lt = g.add_node("less", [a, b]).output
    nt = g.add_node("not", [lt]).output
    x = g.add_node("cast", [d], {"to": "f32"}).output
    y = g.add_node("cast", [a], {"to": "f32"}).output
    w = g.add_node("where", [nt, x, y]).output
    g.outputs = [w, g.add_node("cast", [w], {"to": "i8"}).output, nt]
    rng = np.random.default_rng(0)
    check_graph(g, {"a": rng.integers(-50, 50, (4, 9)).astype(np.int32),
                    "b": rng.integers(1, 9, (9,)).astype(np.int32)})


def test_batch_norm_unfused_and_quant_round_trip() -> None:
    rng = np.random.default_rng(1)
    g = lwc.Graph("bnq")
    x = g.add_input("x", f32((2, 5, 3, 7)))
    ps = [rng.random(5).astype(np.float32) + 0.5, rng.standard_normal(5).astype(np.float32),
          rng.standard_normal(5).astype(np.float32), rng.random(5).astype(np.float32) + 0.1]
    y = g.add_node("batch_norm", [x, *[g.add_constant(p, "p") for p in ps]]).output
    s = g.add_constant((rng.random(5).astype(np.float32) + 0.5) / 50, "s")
    z = g.add_constant(rng.integers(-5, 5, 5).astype(np.int8), "z")
    q = g.add_node("quantize_linear", [y, s, z], {"axis": 1}).output
    g.outputs = [y, q, g.add_node("dequantize_linear", [q, s, z], {"axis": 1}).output]
    check_graph(g)


@SETTINGS
@given(st.integers(1, 2), st.integers(1, 3), st.data())
def test_pools(nsp: int, kmax: int, data: st.DataObject) -> None:
    size = tuple(data.draw(st.integers(4, 13)) for _ in range(nsp))
    kernel = tuple(data.draw(st.integers(1, kmax)) for _ in range(nsp))
    strides = tuple(data.draw(st.integers(1, 3)) for _ in range(nsp))
    pads = tuple(data.draw(st.integers(0, k - 1)) if k > 1 else 0 for k in kernel) * 2
    op = data.draw(st.sampled_from(["max_pool", "avg_pool"]))
    attrs = {"kernel": kernel, "strides": strides, "pads": pads,
             "ceil_mode": data.draw(st.booleans())}
    if op == "avg_pool":
        attrs["count_include_pad"] = data.draw(st.booleans())
    check_graph(single_op(op, [(1, 3, *size)], attrs))


@pytest.mark.parametrize("op", ["global_avg_pool", "global_max_pool"])
def test_global_pools(op: str) -> None:
    check_graph(single_op(op, [(2, 5, 7, 9)]))


@SETTINGS
@given(shapes, st.data(), st.sampled_from(["reduce_mean", "reduce_sum", "reduce_max"]))
def test_reductions(shape: tuple, data: st.DataObject, op: str) -> None:
    axes = tuple(sorted(set(data.draw(st.lists(st.integers(0, len(shape) - 1), max_size=3)))))
    check_graph(single_op(op, [shape], {"axes": axes, "keepdims": data.draw(st.booleans())}))


@pytest.mark.parametrize("op,shape,axes", [("reduce_max", (13, 2), ()),
                                           ("reduce_max", (3, 29), (1,)),
                                           ("softmax", (2, 31), (1,))])
def test_max_chains_compile_without_cache(op: str, shape: tuple, axes: tuple) -> None:
    """Regression: a running max written as select(acc > v, acc, v) made LLVM's vectoriser walk
    the fully unrolled chain exponentially (reduce_max over 26 elements compiled for minutes)."""
    attrs = {"axes": axes} if op.startswith("reduce") else {"axis": axes[0]}
    check_graph(single_op(op, [shape], attrs), use_cache=False)


@SETTINGS
@given(shapes, st.data(), st.sampled_from(["softmax", "log_softmax"]))
def test_softmax(shape: tuple, data: st.DataObject, op: str) -> None:
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check_graph(single_op(op, [shape], {"axis": axis}))


def test_lrn() -> None:
    check_graph(single_op("lrn", [(1, 7, 5, 6)], {"size": 3, "alpha": 1e-2}))


MOVES = [
    ("transpose", [(2, 3, 5, 7)], {"perm": (0, 2, 3, 1)}),
    ("slice", [(5, 9, 11)], {"starts": (1, -8, 10), "ends": (4, 9, 0), "axes": (0, 1, 2),
                             "steps": (1, 3, -2)}),
    ("split", [(2, 11, 3)], {"axis": 1, "sizes": (4, 2, 5)}),
    ("expand", [(3, 1, 5)], {"shape": (2, 3, 4, 5)}),
    ("tile", [(2, 3)], {"repeats": (3, 2)}),
    ("pad", [(2, 3, 4)], {"pads": (0, 1, 2, 1, 0, 3), "value": 1.5}),
    ("pad", [(2, 3, 4)], {"pads": (0, 1, 2, 1, 0, 3), "mode": "reflect"}),
    ("channel_shuffle", [(1, 6, 3, 3)], {"groups": 2}),
    ("depth_to_space", [(1, 8, 2, 3)], {"blocksize": 2}),
    ("reshape", [(2, 3, 4)], {"shape": (4, -1)}),
    ("flatten", [(2, 3, 4)], {"axis": 2}),
    ("squeeze", [(2, 1, 4)], {"axes": (1,)}),
    ("unsqueeze", [(2, 4)], {"axes": (0, 3)}),
    ("identity", [(3, 3)], {}),
]


@pytest.mark.parametrize("op,shapes_,attrs", MOVES, ids=[f"{m[0]}{i}" for i, m in enumerate(MOVES)])
def test_data_movement(op: str, shapes_: list, attrs: dict) -> None:
    check_graph(single_op(op, shapes_, attrs))


def test_concat_in_place_and_copied() -> None:
    g = lwc.Graph("cat")
    x = g.add_input("x", f32((1, 3, 4, 5)))
    a = g.add_node("relu", [x]).output
    b = g.add_node("sigmoid", [x]).output
    c = g.add_node("concat", [a, b, x], {"axis": 1}).output  # x is a graph input: copied
    d = g.add_node("concat", [g.add_node("tanh", [c]).output, g.add_node("neg", [c]).output],
                   {"axis": 1}).output
    g2 = g.add_node("concat", [x, x], {"axis": 3}).output
    g.outputs = [d, g2]
    check_graph(g)


@SETTINGS
@given(st.lists(st.integers(1, 9), min_size=1, max_size=4), st.data())
def test_concat_drawn_shapes(shape: list, data: st.DataObject) -> None:
    """2-5 operands differing along a drawn axis; each is a graph input (copied) or a producer's
    result (placed in the output by the memory planner)."""
    axis = data.draw(st.integers(0, len(shape) - 1))
    sizes = data.draw(st.lists(st.integers(1, 9), min_size=2, max_size=5))
    g = lwc.Graph("cat")
    ins = []
    for i, n in enumerate(sizes):
        v = g.add_input(f"x{i}", f32(tuple(n if d == axis else s for d, s in enumerate(shape))))
        ins.append(g.add_node("relu", [v]).output if data.draw(st.booleans()) else v)
    neg = data.draw(st.booleans())
    c = g.add_node("concat", ins, {"axis": axis - len(shape) if neg else axis}).output
    g.outputs = [g.add_node("tanh", [c]).output, c]
    check_graph(g)


def test_gather_runtime_and_constant_indices() -> None:
    g = lwc.Graph("gather")
    x = g.add_input("x", f32((4, 6, 3)))
    i = g.add_input("i", TensorType(DType.I64, (2, 3)))
    y = g.add_node("gather", [x, i], {"axis": 1}).output
    c = g.add_constant(np.array([3, -1, 0], np.int64), "c")
    g.outputs = [y, g.add_node("gather", [x, c], {"axis": 0}).output]
    check_graph(g, {"x": np.random.default_rng(0).standard_normal((4, 6, 3)).astype(np.float32),
                    "i": np.array([[0, 5, -2], [1, 1, 3]], np.int64)})


def test_random_graphs_from_shared_strategy() -> None:
    from strategies import graphs

    @settings(max_examples=6, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(graphs())
    def run(g: lwc.Graph) -> None:
        check_graph(g, lwc.random_inputs(g, seed=1, batch=2), bindings={"N": 2})

    run()
