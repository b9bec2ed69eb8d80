"""The pattern language, Match captures, the Rewriter's bookkeeping and the fixed-point driver."""

from __future__ import annotations

import numpy as np
import pytest
from pass_helpers import assert_same_outputs, f32, op_counts, outputs

from lwc.errors import PassError
from lwc.ir import Graph
from lwc.pass_manager import PassManager, get_pass
from lwc.rewrite import (
    Match,
    OpPattern,
    Rewriter,
    any_value,
    apply_rules,
    const,
    match,
    op,
    pattern_set,
)


def swish_graph() -> Graph:
    g = Graph("swish")
    x = g.add_input("x", f32("N", 4))
    y = g.add_input("y", f32("N", 4))
    s = g.add_node("sigmoid", [x]).output
    a = g.add_node("mul", [x, s], name="swish").output      # x * sigmoid(x): matches
    t = g.add_node("sigmoid", [y]).output
    b = g.add_node("mul", [x, t], name="not_swish").output  # x * sigmoid(y): must not match
    g.outputs = [g.add_node("add", [a, b]).output]
    g.verify()
    return g


def find(g: Graph, pattern: OpPattern) -> list[Match]:
    return [m for n in g.nodes if (m := match(pattern, n, g)) is not None]


def test_repeated_capture_binds_the_same_value() -> None:
    g = swish_graph()
    pat = op("mul", any_value("x"), op("sigmoid", any_value("x"), name="sig"), commutative=True)
    [m] = find(g, pat)
    assert m.root.name == "swish"
    assert m.value("x") is g.inputs[0] and m.node("sig").op == "sigmoid"
    assert "x" in m and "y" not in m


def test_commutative_tries_both_orders() -> None:
    g = Graph()
    x = g.add_input("x", f32(4))
    s = g.add_node("sigmoid", [x]).output
    g.outputs = [g.add_node("mul", [s, x]).output]  # sigmoid first
    pat = op("mul", any_value("x"), op("sigmoid", any_value("x")))
    assert find(g, pat) == []
    pat_c = op("mul", any_value("x"), op("sigmoid", any_value("x")), commutative=True)
    assert len(find(g, pat_c)) == 1


def test_attrs_predicates_single_use_optional_and_variadic() -> None:
    g = Graph()
    x = g.add_input("x", f32(1, 2, 4, 4))
    w = g.add_constant(np.ones((2, 2, 1, 1), np.float32), "w")
    c = g.add_node("conv", [x, w]).output
    r6 = g.add_node("clip", [c], {"min": 0.0, "max": 6.0}).output
    other = g.add_node("relu", [c]).output
    g.outputs = [r6, other]
    relu6 = op("clip", op("conv", any_value(), const("w"), const("b", optional=True)),
               attrs={"min": 0.0, "max": lambda v: v == 6.0})
    [m] = find(g, relu6)
    assert "b" not in m and m.get("b", 7) == 7 and m["w"].shape == (2, 2, 1, 1)
    assert find(g, op("clip", op("conv", single_use=True))) == []  # conv has two readers
    assert find(g, op("clip", attrs={"max": 5.0})) == []
    assert find(g, op("conv", any_value())) == []                  # two inputs, one pattern
    assert len(find(g, op("conv", any_value(), ...))) == 1         # ... accepts the rest
    assert len(find(g, op("conv", any_value(), const(where=lambda a: a.sum() == 4)))) == 1
    with pytest.raises(KeyError, match="not a constant"):
        _ = Match(g, m.root, {"v": x})["v"]


def test_rewriter_counts_changes_and_keeps_output_names() -> None:
    g = Graph()
    x = g.add_input("x", f32(3))
    n1 = g.add_node("neg", [x]).output
    out = g.add_node("neg", [n1], name="result").output
    g.outputs = [out]
    root = out.producer
    assert root is not None
    rw = Rewriter(g, root)
    rw.replace(root, rw.create("relu", x))  # not equivalent, just bookkeeping
    assert len(rw.created) == 1 and len(rw.erased) == 2 and rw.replaced == 1 and rw.changed
    assert [n.op for n in g.nodes] == ["relu"]
    assert g.outputs[0].name == "result"  # the graph output kept its name
    g.verify()


def test_replace_with_graph_input_keeps_an_identity_for_the_name() -> None:
    g = Graph()
    x = g.add_input("x", f32(3))
    out = g.add_node("relu", [x], name="y").output
    g.outputs = [out]
    root = out.producer
    assert root is not None
    Rewriter(g, root).replace(root, x)
    assert [n.op for n in g.nodes] == ["identity"] and g.outputs[0].name == "y"
    g.verify()


def test_replace_rejects_a_type_change() -> None:
    g = Graph()
    x = g.add_input("x", f32(2, 3))
    out = g.add_node("transpose", [x], {"perm": (1, 0)}).output
    g.outputs = [out]
    root = out.producer
    assert root is not None
    with pytest.raises(PassError, match=r"f32\[3,2\].*f32\[2,3\]"):
        Rewriter(g, root).replace(root, x)


def test_pattern_set_is_a_registered_pass_that_reaches_a_fixed_point() -> None:
    rules = pattern_set("test-double-neg", exact=True, doc="-(-x) is x.")

    @rules.rule(op("neg", op("neg", any_value("x"), single_use=True)))
    def double_neg(m: Match, rw: Rewriter) -> None:
        rw.replace(m.root, m.value("x"))

    g = Graph()
    x = g.add_input("x", f32(5))
    v = x
    for _ in range(6):
        v = g.add_node("neg", [v]).output
    g.outputs = [g.add_node("relu", [v]).output]
    before = outputs(g)
    cls = get_pass("test-double-neg")
    assert cls.exact and cls.summary() == "-(-x) is x."
    ctx = PassManager("test-double-neg").run(g)
    assert op_counts(g) == {"relu": 1}
    assert ctx.history[0].stats == {"double_neg": 3}
    assert_same_outputs(before, g)


def test_driver_refuses_rules_that_never_settle() -> None:
    rules = pattern_set("test-flip-flop")

    @rules.rule(op("relu", any_value("x")))
    def churn(m: Match, rw: Rewriter) -> None:
        rw.replace(m.root, rw.create("relu", m.value("x")))  # always "changes" something

    g = Graph()
    g.outputs = [g.add_node("relu", [g.add_input("x", f32(2))]).output]
    with pytest.raises(PassError, match="did not reach a fixed point in 3 sweeps"):
        apply_rules(g, rules.rules, max_iterations=3)


def test_declining_rule_changes_nothing() -> None:
    rules = pattern_set("test-decline")

    @rules.rule(op("relu", any_value("x")))
    def never(m: Match, rw: Rewriter) -> None:
        return

    g = Graph()
    g.outputs = [g.add_node("relu", [g.add_input("x", f32(2))]).output]
    assert rules.apply(g) == {"never": 0}


def test_rules_record_through_the_pass_context() -> None:
    rules = pattern_set("test-record-relu")

    @rules.rule(op("relu", op("relu", any_value("x"), name="inner")))
    def relu_relu(m: Match, rw: Rewriter) -> None:
        rw.record(m.root, removed=1)
        rw.replace(m.root, m.value("inner"))  # relu(relu(x)) = relu(x)

    g = Graph()
    inner = g.add_node("relu", [g.add_input("x", f32(3))]).output
    g.outputs = [g.add_node("relu", [inner], name="outer").output]
    before = outputs(g)
    ctx = PassManager("test-record-relu").run(g)
    assert [(r.pass_name, r.node, r.stats) for r in ctx.records] == [
        ("test-record-relu", "outer", {"removed": 1})]
    assert op_counts(g) == {"relu": 1} and g.outputs[0].name == "outer"
    assert_same_outputs(before, g)
