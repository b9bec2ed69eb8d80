"""The shared torchvision/digits models import and reproduce onnxruntime's stored outputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import lwc
from lwc.frontend.onnx.importer import import_onnx

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO.parent / "shared" / "models"
NAMES = ["digits_mlp", "digits_lenet5", "squeezenet1_1", "resnet18", "mobilenet_v2"]


@pytest.mark.parametrize("name", NAMES)
def test_shared_model_reproduces_stored_output(name: str) -> None:
    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.fail(f"shared model {path} is missing")
    io = np.load(MODELS / f"{name}.io.npz")
    g = import_onnx(path)
    assert [v.name for v in g.inputs] == ["input"] and [v.name for v in g.outputs] == ["output"]
    start = time.perf_counter()
    out = lwc.interpret(g, {"input": io["input"]})["output"]
    elapsed = time.perf_counter() - start
    want = io["output"]
    assert out.shape == want.shape
    err = float(np.max(np.abs(out - want)))
    assert err <= 1e-4 * max(1.0, float(np.max(np.abs(want)))), f"{name}: max abs error {err:.3g}"
    assert elapsed < 30, f"{name}: the interpreter took {elapsed:.1f} s"


def test_digits_models_keep_dynamic_batch() -> None:
    g = import_onnx(MODELS / "digits_lenet5.onnx")
    assert g.inputs[0].type.shape[0] == "N" and g.outputs[0].type.shape[0] == "N"
    x = np.load(MODELS / "digits_lenet5.io.npz")["input"]
    full = lwc.interpret(g, {"input": x})["output"]
    part = lwc.interpret(g, {"input": x[:3]})["output"]
    np.testing.assert_allclose(part, full[:3], rtol=1e-5, atol=1e-6)
