"""Kernel cache, threads and the memory planner's aliasing decisions."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from llvm_helpers import assert_close, f32

import lwc
from lwc.backends.llvm import compile as llvm_compile
from lwc.backends.llvm import memplan


def _graph(seed: int = 0) -> lwc.Graph:
    rng = np.random.default_rng(seed)
    g = lwc.Graph("small")
    x = g.add_input("x", f32((1, 16, 20, 20)))
    w = g.add_constant(rng.standard_normal((24, 16, 3, 3)).astype(np.float32), "w")
    y = g.add_node("conv", [x, w], {"pads": (1, 1, 1, 1), "act": "relu"}).output
    w2 = g.add_constant(rng.standard_normal((24, 1, 3, 3)).astype(np.float32), "w2")
    z = g.add_node("conv", [y, w2], {"pads": (1, 1, 1, 1), "group": 24}).output
    g.outputs = [g.add_node("add", [z, y]).output]
    return g


def test_recompiling_an_unchanged_model_hits_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LWC_CACHE_DIR", str(tmp_path))
    first = llvm_compile(_graph())
    assert first.artifact.stats.cache_hits == 0
    second = llvm_compile(_graph())
    st = second.artifact.stats
    assert st.cache_hits == st.kernels and st.llvm_seconds == 0.0
    x = lwc.random_inputs(_graph(), seed=1)
    assert_close(second.run(x)["add"], first.run(x)["add"])
    assert any(tmp_path.rglob("*.o"))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree(threads: int) -> None:
    g = _graph(1)
    x = lwc.random_inputs(g, seed=2)
    m = llvm_compile(g, threads=threads)
    assert_close(m.run(x)["add"], lwc.interpret(g, x)["add"], f"{threads} threads")


def test_concurrent_runs_from_python_threads() -> None:
    g = _graph(2)
    models = [llvm_compile(g, threads=2) for _ in range(2)]
    xs = [lwc.random_inputs(g, seed=s) for s in range(2)]
    refs = [lwc.interpret(g, x)["add"] for x in xs]
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(20):
                assert_close(models[k].run(xs[k])["add"], refs[k])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]


def test_planner_aliases_views_in_place_ops_and_concat() -> None:
    g = lwc.Graph("alias")
    x = g.add_input("x", f32((1, 4, 5, 5)))
    a = g.add_node("relu", [x]).output                 # x is a graph input: not overwritten
    b = g.add_node("sigmoid", [a]).output              # a dies here: b reuses its storage
    c = g.add_node("reshape", [b], {"shape": (1, 4, 25)}).output  # a view
    d = g.add_node("tanh", [x]).output
    e = g.add_node("concat", [c, g.add_node("reshape", [d], {"shape": (1, 4, 25)}).output],
                   {"axis": 1}).output
    g.outputs = [g.add_node("neg", [e]).output]
    g.verify()
    al = memplan.plan_aliases(g)
    assert al.group[id(a)] is not al.group[id(x)]
    assert al.group[id(b)] is al.group[id(a)] is al.group[id(c)]
    cat = g.nodes_of("concat")[0]
    assert id(cat) in al.inplace_concat
    assert al.group[id(c)] is al.group[id(e)] and al.offset[id(d)] == 4 * 25 * 4
    m = llvm_compile(g)
    xin = lwc.random_inputs(g, seed=3)
    assert_close(m.run(xin)["neg"], lwc.interpret(g, xin)["neg"])
