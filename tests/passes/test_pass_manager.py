"""PassManager, pipeline text, typed options, registry errors and instruments."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import ClassVar

import pytest
from pass_helpers import conv_bn_relu, op_counts

from lwc.analysis import liveness, use_counts
from lwc.errors import PassError
from lwc.instruments import NodeCounts, Parity, PrintIR, Timing
from lwc.ir import Graph
from lwc.pass_manager import (
    Pass,
    PassContext,
    PassManager,
    PassResult,
    function_pass,
    get_pass,
    register_pass,
    registered_passes,
)
from lwc.pipeline import format_pass, parse_pipeline, split_top


@register_pass
@dataclass(frozen=True)
class _Options(Pass):
    """A test pass with one option of each supported kind."""

    name: ClassVar[str] = "test-options"
    exact: ClassVar[bool] = True
    n: int = 1
    ratio: float = 0.5
    flag: bool = False
    mode: str = "a"
    multiplier: int | str = 1
    limit: float | None = None
    ops: tuple[str, ...] = ("conv",)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        return PassResult(changed=False)


@function_pass("test-break", exact=True)
def _break(graph: Graph, ctx: PassContext) -> bool:
    """Corrupt the graph on purpose so the Verify instrument has something to catch."""
    node = graph.nodes[0]
    node._inputs.append(node.inputs[0])  # an operand without a use-list entry
    return True


@function_pass("test-scale-output", exact=True)
def _scale(graph: Graph, ctx: PassContext, *, factor: float = 2.0) -> bool:
    """Multiply the output by ``factor``; claims exactness falsely, so Parity must object."""
    c = graph.add_constant(__import__("numpy").float32(factor).reshape(()), "k")
    out = graph.outputs[0]
    graph.outputs = [graph.add_node("mul", [out, c]).output]
    return True


def test_pipeline_text_with_options_is_typed() -> None:
    [p] = parse_pipeline("test-options{n=3,ratio=0.25,flag=true,mode=b,multiplier=full,"
                         "limit=0.1,ops=[conv,gemm]}")
    assert isinstance(p, _Options)
    assert (p.n, p.ratio, p.flag, p.mode, p.multiplier, p.limit, p.ops) == (
        3, 0.25, True, "b", "full", 0.1, ("conv", "gemm"))
    [q] = parse_pipeline("test-options{multiplier=2,limit=none}")
    assert q.multiplier == 2 and q.limit is None
    assert format_pass(p) == ("test-options{n=3,ratio=0.25,flag=True,mode=b,multiplier=full,"
                              "limit=0.1,ops=[conv,gemm]}")
    assert parse_pipeline(format_pass(p)) == [p]


@pytest.mark.parametrize(("text", "words"), [
    ("test-options{n=x}", ["test-options", "n=", "int"]),
    ("test-options{ratio=fast}", ["ratio", "float"]),
    ("test-options{flag=maybe}", ["flag", "bool"]),
    ("test-options{nope=1}", ["test-options", "nope", "n: int", "ratio: float"]),
    ("test-options{n}", ["key=value"]),
    ("fold-bnn", ["fold-bnn", "fold-bn", "registered passes", "dce"]),
    ("dce{", ["unclosed"]),
    ("O3{x=1}", ["O3", "no options"]),
])
def test_pipeline_errors_name_the_pass_and_alternatives(text: str, words: list[str]) -> None:
    with pytest.raises(PassError) as e:
        parse_pipeline(text)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_named_pipelines_expand_and_lists_mix() -> None:
    names = [p.name for p in parse_pipeline("canonicalize,fold-bn")]
    assert names[-1] == "fold-bn" and "dce" in names and "cse" in names
    mixed = parse_pipeline([_Options(n=2), "dce"])
    assert [p.name for p in mixed] == ["test-options", "dce"] and mixed[0].n == 2
    assert split_top("a{x=[1,2]},b") == ["a{x=[1,2]}", "b"]


def test_registry_lists_builtins_with_tags_and_docs() -> None:
    reg = registered_passes()
    for name in ("const-fold", "dce", "cse", "remove-identity", "simplify-reshape", "fold-bn",
                 "fuse"):
        assert name in reg and reg[name].exact, name
        assert reg[name].summary(), name
    assert get_pass("test-break").summary().startswith("Corrupt the graph")


def test_verify_after_each_pass_names_pass_and_history() -> None:
    g = conv_bn_relu()
    with pytest.raises(PassError, match=r"pass test-break left an invalid graph \(after dce\)"):
        PassManager("dce,test-break").run(g)
    g2 = conv_bn_relu()
    PassManager("test-break", verify=False).run(g2)  # switched off: no error


def test_timing_print_ir_and_node_counts() -> None:
    g = conv_bn_relu()
    timing, counts, buf = Timing(), NodeCounts(), io.StringIO()
    ctx = PassManager("fold-bn,fuse,dce",
                      instruments=[timing, counts, PrintIR(after=["fuse"], stream=buf)]).run(g)
    assert [r.name for r in ctx.history] == ["fold-bn", "fuse", "dce"]
    assert [r.changed for r in ctx.history] == [True, True, False]
    assert all(r.seconds >= 0 for r in ctx.history) and timing.total() > 0
    assert "fold-bn" in timing.report() and "total" in timing.report()
    text = buf.getvalue()
    assert text.count("IR after fuse") == 1 and "IR after fold-bn" not in text
    assert "conv" in text and "batch_norm" not in text
    assert counts.before_counts == {"batch_norm": 1, "conv": 1, "relu": 1}
    assert counts.after_counts == {"conv": 1}


def test_print_ir_after_all() -> None:
    buf = io.StringIO()
    PassManager("remove-identity,dce", instruments=[PrintIR(all=True, stream=buf)]).run(
        conv_bn_relu())
    assert buf.getvalue().count("IR after") == 2


def test_parity_instrument_catches_a_wrong_exact_pass() -> None:
    PassManager("fold-bn,fuse", instruments=[Parity()]).run(conv_bn_relu())  # fine
    with pytest.raises(PassError, match="exact pass test-scale-output"):
        PassManager("test-scale-output", instruments=[Parity()]).run(conv_bn_relu())


def test_analyses_are_cached_until_a_pass_changes_the_graph() -> None:
    g = conv_bn_relu()
    ctx = PassContext()
    first = ctx.analysis(use_counts, g)
    assert ctx.analysis(use_counts, g) is first and ctx.analyses.computed == 1
    PassManager("dce").run(g, ctx)  # nothing to remove: cache kept
    assert ctx.analysis(use_counts, g) is first
    PassManager("fold-bn").run(g, ctx)
    again = ctx.analysis(use_counts, g)
    assert again is not first and ctx.analyses.computed == 2
    assert liveness(g).peak_bytes > 0


def test_failing_pass_is_wrapped_with_history() -> None:
    @function_pass("test-raise")
    def boom(graph: Graph, ctx: PassContext) -> bool:
        """Always fails."""
        raise RuntimeError("kaput")

    with pytest.raises(PassError, match=r"pass test-raise failed \(after dce\): RuntimeError"):
        PassManager("dce,test-raise").run(conv_bn_relu())


def test_max_rounds_repeats_until_no_change() -> None:
    g = conv_bn_relu()
    ctx = PassManager("fold-bn,fuse,dce", max_rounds=5).run(g)
    assert len(ctx.history) == 6  # one round that changes, one that confirms
    assert op_counts(g) == {"conv": 1}


def test_record_reaches_the_context() -> None:
    @function_pass("test-record")
    def rec(graph: Graph, ctx: PassContext) -> bool:
        """Record one figure per conv."""
        for n in graph.nodes_of("conv"):
            ctx.record(n, macs_before=1, macs_after=2)
        return False

    ctx = PassManager("test-record").run(conv_bn_relu())
    [r] = ctx.records
    assert (r.pass_name, r.node, r.op, r.stats) == ("test-record", "conv1", "conv",
                                                    {"macs_before": 1, "macs_after": 2})


def test_a_pass_may_declare_preserved_analyses() -> None:
    @function_pass("test-rename-graph")
    def rename_graph(graph: Graph, ctx: PassContext) -> PassResult:
        """Change only the graph's name: use counts stay valid, liveness is dropped anyway."""
        graph.name = graph.name + "_renamed"
        return PassResult(changed=True, preserves=(use_counts,))

    g = conv_bn_relu()
    ctx = PassContext()
    counts, live = ctx.analysis(use_counts, g), ctx.analysis(liveness, g)
    PassManager("test-rename-graph").run(g, ctx)
    assert ctx.analysis(use_counts, g) is counts
    assert ctx.analysis(liveness, g) is not live
