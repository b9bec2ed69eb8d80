"""``lwc compile``, ``lwc bench`` and ``lwc run --backend llvm`` end to end (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lwc
from lwc.cli import main


def test_compile_writes_library_and_header(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "lenet.so"
    assert main(["compile", "zoo:lenet5", "--target", "llvm", "-O", "3", "-o", str(out),
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert out.exists() and Path(info["header"]).exists()
    header = Path(info["header"]).read_text()
    assert f"#define LWC_WORKSPACE_SIZE {max(64, info['arena_bytes'])}" in header
    assert "int lwc_run(" in header and info["kernels"] >= 1


def test_bench_reports_statistics(capsys: pytest.CaptureFixture) -> None:
    for backend in ("llvm", "interp", "onnxruntime"):
        assert main(["bench", "zoo:mlp", "--backend", backend, "--threads", "1", "--runs", "3",
                     "--warmup", "0", "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        assert r["backend"] == backend and r["runs"] == 3
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"]


def test_run_with_llvm_backend_matches_interpreter(tmp_path: Path) -> None:
    g = lwc.zoo.build("lenet5") if hasattr(lwc, "zoo") else __import__("lwc.zoo").zoo.build("lenet5")
    x = lwc.random_inputs(g, seed=0)
    np.savez(tmp_path / "in.npz", **x)
    for backend in ("llvm", "interp"):
        assert main(["run", "zoo:lenet5", "--backend", backend, "-i", str(tmp_path / "in.npz"),
                     "-o", str(tmp_path / f"{backend}.npz")]) == 0
    a, b = np.load(tmp_path / "llvm.npz"), np.load(tmp_path / "interp.npz")
    for k in b.files:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_compile_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compile", "zoo:nope", "-o", str(tmp_path / "x.so")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lwc: error:") and "\n" not in err
