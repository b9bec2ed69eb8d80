"""``lwc opt`` and ``lwc passes`` end to end (in-process through ``lwc.cli.main``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lwc
from lwc.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_opt_prints_counts_and_writes_an_equivalent_model(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    code, text, err = run(capsys, "opt", "zoo:mobilenet_v1", "-O3", "-o", out, "--time-passes")
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert rows["batch_norm"][1] == "0" and int(rows["batch_norm"][0]) > 0
    assert int(rows["nodes"][1]) < int(rows["nodes"][0])
    assert "fold-bn" in text and "total" in text  # the timing table
    g0, g1 = lwc.load("zoo:mobilenet_v1"), lwc.load(str(out))
    x = lwc.random_inputs(g0)
    want, got = lwc.interpret(g0, x), lwc.interpret(g1, x)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5 * np.abs(want[k]).max())


def test_opt_json_reports_pipeline_passes_and_counts(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(capsys, "opt", "zoo:lenet5", "-p", "fold-bn,fuse,cse{constants=false}",
                        "--json", "--print-ir-after", "fuse")
    assert code == 0
    data = json.loads(text)
    assert data["pipeline"] == ["fold-bn", "fuse", "cse{constants=False}"]
    assert [p["name"] for p in data["passes"]] == ["fold-bn", "fuse", "cse"]
    assert data["nodes_after"] < data["nodes_before"]
    assert data["ops_after"].get("relu", 0) == 0
    assert data["passes"][1]["stats"].get("activation", 0) >= 1
    fused = [r for r in data["records"] if r["pass"] == "fuse"]
    assert fused and all(r["op"] in ("conv", "gemm") and r["fused"] for r in fused)


def test_opt_print_ir_after_all(capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(capsys, "opt", "zoo:mlp", "-p", "fuse,dce", "--print-ir-after-all")
    assert code == 0 and text.count("IR after") == 2


@pytest.mark.parametrize(("args", "fragments"), [
    (["-p", "fold-bnn"], ["unknown pass 'fold-bnn'", "fold-bn"]),
    (["-p", "cse{x=1}"], ["cse", "no option 'x'", "constants: bool"]),
    (["-p", "const-fold{max_elements=lots}"], ["const-fold", "max_elements", "int"]),
    (["-o", "out.txt"], ["out.txt", ".onnx"]),
])
def test_opt_errors_are_one_line(capsys: pytest.CaptureFixture[str], args: list[str],
                                 fragments: list[str]) -> None:
    code, _, err = run(capsys, "opt", "zoo:mlp", *args)
    assert code == 2 and len(err.strip().splitlines()) == 1
    for f in fragments:
        assert f in err


def test_passes_lists_every_pass_with_tag_options_and_doc(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(capsys, "passes")
    assert code == 0
    for name in ("const-fold", "dce", "cse", "remove-identity", "simplify-reshape", "fold-bn",
                 "fuse"):
        assert any(line.startswith(name + " ") and "[exact" in line for line in text.splitlines())
    assert "max_elements: int = 4194304" in text and "O3" in text
    code, text, _ = run(capsys, "passes", "--json")
    data = json.loads(text)
    fold = next(p for p in data["passes"] if p["name"] == "fold-bn")
    assert fold["exact"] is True and fold["doc"].startswith("Fold inference BatchNorm")
    assert "O3" in data["pipelines"]
