"""The IR core: use-def chains under editing, the verifier's invariants (each broken on purpose),
the networkx view, toposort and copy."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from strategies import assert_same_graph, graphs

import lwc
from lwc.errors import VerifyError
from lwc.ir import DType, Graph, Node, TensorType, Value

F4 = TensorType(DType.F32, (1, 2, 4, 4))


def diamond() -> tuple[Graph, dict[str, Value]]:
    """x -> relu -> a;  a -> sigmoid -> b;  a -> tanh -> c;  add(b, c) -> y."""
    g = Graph("diamond")
    x = g.add_input("x", F4)
    a = g.add_node("relu", [x], output_names=["a"]).output
    b = g.add_node("sigmoid", [a], output_names=["b"]).output
    c = g.add_node("tanh", [a], output_names=["c"]).output
    y = g.add_node("add", [b, c], name="join", output_names=["y"]).output
    g.outputs = [y]
    g.verify()
    return g, {"x": x, "a": a, "b": b, "c": c, "y": y}


def uses(v: Value) -> list[tuple[str, int]]:
    return sorted((u.node.label, u.index) for u in v.uses)


# ----- use-def chains -------------------------------------------------------------------------
def test_use_lists_follow_construction() -> None:
    g, v = diamond()
    assert uses(v["a"]) == [("b", 0), ("c", 0)]
    assert [n.op for n in v["a"].users] == ["sigmoid", "tanh"]
    assert v["y"].producer is g.nodes[-1]
    assert v["x"].producer is None
    sq = g.add_node("mul", [v["y"], v["y"]])
    assert uses(v["y"]) == [(sq.label, 0), (sq.label, 1)]
    assert v["y"].num_users == 1  # one node, two operand slots


def test_set_input_moves_exactly_one_use() -> None:
    g, v = diamond()
    join = v["y"].producer
    assert join is not None
    join.set_input(1, v["a"])
    assert join.inputs == (v["b"], v["a"])
    assert uses(v["c"]) == []
    assert uses(v["a"]) == [("b", 0), ("c", 0), ("join", 1)]
    g.verify()


def test_replace_all_uses_rewires_users_and_outputs() -> None:
    g, v = diamond()
    g.outputs = [v["y"], v["a"]]
    g.replace_all_uses(v["a"], v["x"])
    assert uses(v["a"]) == []
    assert uses(v["x"]) == [("a", 0), ("b", 0), ("c", 0)]
    assert g.outputs[1] is v["x"]
    g.verify()


def test_erase_node_drops_its_uses_and_frees_its_names() -> None:
    g, v = diamond()
    with pytest.raises(VerifyError, match=r"cannot erase a \(relu\): %a is still used"):
        g.erase_node(v["a"].producer)  # type: ignore[arg-type]
    tanh = v["c"].producer
    assert tanh is not None
    v["y"].producer.set_input(1, v["b"])  # type: ignore[union-attr]
    g.erase_node(tanh)
    assert tanh not in g.nodes
    assert uses(v["a"]) == [("b", 0)]
    assert g.fresh_name("c") == "c"  # the erased result's name is free again
    g.verify()


def test_names_stay_unique_and_constants_read_only() -> None:
    g = Graph()
    x = g.add_input("x", F4)
    k1 = g.add_constant(np.ones(2, np.float32), "w")
    k2 = g.add_constant(np.ones(2, np.float32), "w")
    assert len({x.name, k1.name, k2.name}) == 3
    assert not k1.data.flags.writeable  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="read-only"):
        k1.data[0] = 3  # type: ignore[index]


# ----- the verifier: each invariant broken on purpose ----------------------------------------
def _broken(kind: str) -> tuple[Graph, str]:
    """A graph with one invariant broken; the node label and op its error must name."""
    g, v = diamond()
    if kind == "dangling use":
        Node("neg", [v["a"]], [Value("stray", F4)], name="stray")  # never added to the graph
        return g, r"%a has a dangling use by node stray \(neg\)"
    if kind == "use before def":
        g.nodes[1], g.nodes[0] = g.nodes[0], g.nodes[1]
        return g, r"node b \(sigmoid\): operand 0 %a is used before it is defined"
    if kind == "not in graph":
        outsider = Value("outsider", F4)
        v["b"].producer.set_input(0, outsider)  # type: ignore[union-attr]
        return g, r"node b \(sigmoid\): operand 0 %outsider is used before it is defined"
    if kind == "wrong declared type":
        v["c"].type = TensorType(DType.F32, (1, 2, 4, 5))
        return g, r"node c \(tanh\): result %c declared f32\[1,2,4,5\], inferred f32\[1,2,4,4\]"
    if kind == "wrong declared dtype":
        v["y"].type = TensorType(DType.F16, (1, 2, 4, 4))
        return g, r"node join \(add\): result %y declared f16"
    if kind == "unknown attribute":
        v["a"].producer.attrs["slope"] = 0.5  # type: ignore[union-attr]
        return g, r"node a \(relu\): relu has no attribute slope"
    if kind == "bad attribute value":
        n = g.add_node("leaky_relu", [v["y"]], name="lr")
        n.attrs["alpha"] = "steep"
        g.outputs = [n.output]
        return g, r"node lr \(leaky_relu\).*'steep' is not of kind float"
    if kind == "arity":
        v["y"].producer.drop_inputs()  # type: ignore[union-attr]
        v["y"].producer.set_inputs([v["b"]])  # type: ignore[union-attr]
        return g, r"node join \(add\).*add takes 2 inputs, got 1"
    if kind == "use list":
        v["b"].uses.clear()
        return g, r"node join \(add\): use list of %b misses operand 0"
    if kind == "unknown op":
        v["a"].producer.op = "frobnicate"  # type: ignore[union-attr]
        return g, r"node a \(frobnicate\).*unknown op 'frobnicate'"
    if kind == "bad operand types":
        k = g.add_constant(np.ones((3,), np.float32), "k")
        v["y"].producer.set_input(1, k)  # type: ignore[union-attr]
        return g, r"node join \(add\): invalid operands .*do not broadcast"
    if kind == "constant payload":
        k = g.add_constant(np.ones((3,), np.float32), "k")
        k.type = TensorType(DType.F32, (4,))
        return g, r"constant %k: payload float32\[3\] does not match its type f32\[4\]"
    if kind == "undefined output":
        g.outputs = [Value("ghost", F4)]
        return g, r"output %ghost is not defined"
    if kind == "no outputs":
        g.outputs = []
        return g, "graph has no outputs"
    if kind == "duplicate name":
        v["c"].name = "b"
        return g, r"value %b is defined twice"
    raise AssertionError(kind)


BROKEN = ["dangling use", "use before def", "not in graph", "wrong declared type",
          "wrong declared dtype", "unknown attribute", "bad attribute value", "arity", "use list",
          "unknown op", "bad operand types", "constant payload", "undefined output",
          "no outputs", "duplicate name"]


@pytest.mark.parametrize("kind", BROKEN)
def test_verifier_catches(kind: str) -> None:
    g, pattern = _broken(kind)
    with pytest.raises(VerifyError, match=r"^graph @diamond: .*" + pattern) as info:
        g.verify()
    assert "\n" not in str(info.value)


def test_verifier_errors_carry_the_node() -> None:
    g, v = diamond()
    v["c"].type = TensorType(DType.F32, (9,))
    with pytest.raises(VerifyError) as info:
        g.verify()
    assert getattr(info.value, "node", None) is v["c"].producer


def test_symbolic_declared_dims_match_any_size() -> None:
    g, v = diamond()
    v["c"].type = TensorType(DType.F32, ("N", 2, 4, 4))
    g.verify()


# ----- networkx view, toposort, copy ----------------------------------------------------------
def test_networkx_view() -> None:
    g, _ = diamond()
    view = g.to_networkx()
    assert isinstance(view, nx.MultiDiGraph)
    assert set(view.nodes) == set(g.nodes)
    assert nx.is_directed_acyclic_graph(view)
    edges = sorted((a.label, b.label, d["value"], d["index"]) for a, b, d in view.edges(data=True))
    assert edges == [("a", "b", "a", 0), ("a", "c", "a", 0), ("b", "join", "b", 0),
                     ("c", "join", "c", 1)]
    assert view.nodes[g.nodes[0]]["op"] == "relu"


def test_toposort_repairs_any_order_and_keeps_a_valid_one() -> None:
    g, _ = diamond()
    order = list(g.nodes)
    g.toposort()
    assert g.nodes == order  # already topological: unchanged
    g.nodes = order[::-1]  # join, c, b, a
    g.toposort()
    assert [n.label for n in g.nodes] == ["a", "c", "b", "join"]  # c stays before b
    g.verify()


def test_toposort_keeps_independent_nodes_in_place() -> None:
    g = Graph()
    x = g.add_input("x", F4)
    a = g.add_node("relu", [x])
    b = g.add_node("sigmoid", [a.output])
    c = g.add_node("tanh", [x])  # independent of a and b, listed after them
    g.outputs = [b.output, c.output]
    g.toposort()
    assert g.nodes == [a, b, c]


def test_toposort_reports_a_cycle() -> None:
    g, v = diamond()
    v["a"].producer.set_input(0, v["y"])  # type: ignore[union-attr]
    with pytest.raises(VerifyError, match="cycle"):
        g.toposort()


def test_copy_is_independent_and_equal() -> None:
    g, v = diamond()
    g.add_constant(np.arange(3, dtype=np.float32), "unused")
    g2 = g.copy()
    assert_same_graph(g2, g)
    assert all(a is not b for a, b in zip(g2.values(), g.values(), strict=True))
    assert g2.constants["unused"].data is g.constants["unused"].data  # read-only: shared
    inputs = lwc.random_inputs(g, seed=3)
    np.testing.assert_array_equal(lwc.interpret(g2, inputs)["y"], lwc.interpret(g, inputs)["y"])
    g2.nodes[-1].set_input(1, g2.value("b"))
    g2.erase_node(g2.nodes[2])
    g2.verify()
    assert uses(v["c"]) == [("join", 1)]  # the original is untouched
    g.verify()


@settings(max_examples=25)
@given(graphs())
def test_generated_graphs_copy_and_toposort(g: Graph) -> None:
    g2 = g.copy()
    g2.nodes.reverse()
    g2.toposort()
    g2.verify()
    nodes = [(n.op, [v.name for v in n.outputs]) for n in g2.nodes]
    assert sorted(nodes) == sorted((n.op, [v.name for v in n.outputs]) for n in g.nodes)
    assert nx.is_directed_acyclic_graph(g.to_networkx())
