"""ONNX backend-suite conformance: every in-scope case imports and matches its stored outputs.

Scope rules live in ``conformance_cases.py``. A JSON report (case -> status / reason) is written
to pytest's base temp dir as ``onnx_conformance.json``.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conformance_cases import (
    ILL_CONDITIONED,
    LIGHT_RTOL,
    OUT_OF_SCOPE,
    Case,
    discover,
    light_inputs,
    max_scaled_error,
    read_tensor,
    scope,
)

import lwc
from lwc.errors import UnsupportedOpError
from lwc.frontend.onnx.importer import import_onnx
from lwc.frontend.onnx.registry import supported_ops

CASES = discover()
SUPPORTED = set(supported_ops())
SCOPES = {c.id: scope(c, SUPPORTED) for c in CASES}
IN_SCOPE = [c for c in CASES if SCOPES[c.id] is None]
ILL = [c for c in CASES if c.name in ILL_CONDITIONED]
OUT = [c for c in CASES if SCOPES[c.id] is not None and c not in ILL]

MIN_IN_SCOPE_FRACTION = 0.8
"""At least this share of all cases must be in scope (raised as op coverage grows)."""


def _params(cases: list[Case]) -> list[object]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.suite == "light" else [])
            for c in cases]


@pytest.mark.parametrize("case", _params(IN_SCOPE))
def test_in_scope_case_matches(case: Case) -> None:
    g = import_onnx(case.model)
    g.verify()
    for in_files, out_files in case.datasets:
        if case.suite == "light":
            arrays = light_inputs(onnx.load(str(case.model)))
            tol = LIGHT_RTOL
        else:
            arrays = [read_tensor(p) for p in in_files]
            tol = 1e-4
        assert len(arrays) == len(g.inputs)
        got = lwc.interpret(g, {v.name: a for v, a in zip(g.inputs, arrays)})
        wants = [read_tensor(p) for p in out_files]
        assert len(wants) == len(g.outputs)
        for v, want in zip(g.outputs, wants):
            err = max_scaled_error(got[v.name], want)
            assert err <= tol, f"{case.id} output {v.name}: scaled error {err:.3g} > {tol}"


@pytest.mark.parametrize("case", _params(OUT))
def test_out_of_scope_case_is_refused(case: Case) -> None:
    """Out of scope must mean "refused with a clear error", never "imported wrongly"."""
    with pytest.raises(UnsupportedOpError, match=r"node|element type|domain|opset"):
        import_onnx(case.model)


@pytest.mark.parametrize("case", _params(ILL))
def test_ill_conditioned_case_matches_onnxruntime_before_softmax(case: Case) -> None:
    """Compare the last Softmax's input (the logits) with onnxruntime, relative 1e-5."""
    from onnx_builders import run_ort

    m = onnx.load(str(case.model))
    soft = [n for n in m.graph.node if n.op_type == "Softmax"][-1]
    arrays = light_inputs(m)
    g = import_onnx(case.model)
    got = lwc.interpret(g, {v.name: a for v, a in zip(g.inputs, arrays)}, keep_all=True)
    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(soft.input[0]))
    inits = {t.name for t in m.graph.initializer}
    feeds = dict(zip([i.name for i in m.graph.input if i.name not in inits], arrays))
    want = run_ort(m, feeds)[-1]
    err = float(np.max(np.abs(got[soft.input[0]] - want)) / np.max(np.abs(want)))
    assert err <= 1e-5, f"{case.id}: logits differ from onnxruntime by {err:.3g} (relative)"


def test_scope_report(tmp_path_factory: pytest.TempPathFactory) -> None:
    report = {c.id: SCOPES[c.id] or "in scope" for c in CASES}
    path = tmp_path_factory.getbasetemp() / "onnx_conformance.json"
    path.write_text(json.dumps(report, indent=1, sort_keys=True))
    assert set(OUT_OF_SCOPE) <= {c.name for c in CASES}, "stale names in OUT_OF_SCOPE"
    share = len(IN_SCOPE) / len(CASES)
    assert share >= MIN_IN_SCOPE_FRACTION, (
        f"only {len(IN_SCOPE)}/{len(CASES)} cases in scope; see {path}")


def test_max_scaled_error_detects_mismatch() -> None:
    want = np.array([1.0, np.nan, 100.0], dtype=np.float32)
    assert max_scaled_error(want.copy(), want) == 0.0
    assert max_scaled_error(want + np.float32(1.0), want) == pytest.approx(0.01)
    assert max_scaled_error(np.array([1.0, 2.0, 100.0], np.float32), want) == float("inf")
    assert max_scaled_error(want[:2], want) == float("inf")
