"""The demo: every stage runs (or says why it is skipped), the driver reports timings."""

from __future__ import annotations

import json

import pytest

from lwc.demo import STAGES, DemoState, Outcome, SkipStage, Stage, run_demo
from lwc.errors import LwcError


def test_default_demo_runs_every_stage(cli):
    r = cli("demo")
    assert r.code == 0, r.err
    for i, stage in enumerate(STAGES, 1):
        assert f"[{i}/{len(STAGES)}] {stage.name}" in r.out
    assert "zoo:mobilenet_v2" in r.out and "top 10 layers by MACs" in r.out
    assert "demo finished in" in r.out


def test_demo_json_lists_stages(cli):
    r = cli("demo", "zoo:lenet5", "--json", "--top", "3")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert [s["name"] for s in doc["stages"]] == [s.name for s in STAGES]
    status = {s["name"]: s["status"] for s in doc["stages"]}
    assert status["load"] == status["run"] == status["report"] == "ok"
    # the check stage runs exactly when the optimise stage did
    assert (status["check"] == "ok") == (status["optimise"] == "ok")


def test_demo_with_unknown_pipeline_skips_optimisation(cli):
    r = cli("demo", "zoo:mlp", "--json", "--pipeline", "no-such-pass")
    doc = json.loads(r.out)
    opt = next(s for s in doc["stages"] if s["name"] == "optimise")
    assert opt["status"] == "skipped" and "no-such-pass" in opt["summary"]


def test_driver_skips_and_stops():
    seen: list[str] = []

    def ok(s: DemoState) -> Outcome:
        seen.append("ok")
        return Outcome("fine")

    def skip(s: DemoState) -> Outcome:
        raise SkipStage("not built yet")

    def fail(s: DemoState) -> Outcome:
        raise LwcError("stage broke")

    res = run_demo(DemoState("zoo:mlp"), [Stage("a", ok), Stage("b", skip), Stage("c", ok)])
    assert [(r.name, r.status) for r in res] == [("a", "ok"), ("b", "skipped"), ("c", "ok")]
    assert res[1].summary == "skipped: not built yet" and seen == ["ok", "ok"]
    with pytest.raises(LwcError, match="stage broke"):
        run_demo(DemoState("zoo:mlp"), [Stage("a", ok), Stage("x", fail), Stage("c", ok)])
    assert seen == ["ok", "ok", "ok"]


def test_check_stage_catches_a_wrong_optimisation():
    from lwc.demo import check_stage, load_stage, run_stage

    def sabotage(s: DemoState) -> Outcome:
        g = s.need_graph()
        s.reference = g.copy()
        w = next(c for k, c in g.constants.items() if k.endswith(".weight"))
        g.set_constant(w, w.data * 1.01)  # a 1% weight error: far beyond the tolerance
        return Outcome("sabotaged")

    stages = [Stage("load", load_stage), Stage("optimise", sabotage), Stage("run", run_stage),
              Stage("check", check_stage)]
    with pytest.raises(LwcError, match="differs from the original on output"):
        run_demo(DemoState("zoo:mlp"), stages)
