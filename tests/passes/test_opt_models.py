"""-O3 on the shared ONNX models and the zoo: outputs match the original through the interpreter
and, exported, through onnxruntime; the fused MobileNet v2 has no BN and no standalone activation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from lwc.frontend.onnx.export import export_onnx

import lwc
from lwc.instruments import NodeCounts
from lwc.pass_manager import PassManager
from lwc.zoo import names as zoo_names

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
SHARED = ["digits_mlp", "digits_lenet5", "squeezenet1_1", "resnet18", "mobilenet_v2"]
SLOW = {"squeezenet1_1", "resnet18", "mobilenet_v2", "zoo:xception", "zoo:shufflenet",
        "zoo:inception", "zoo:mobilenet_v2"}
ACTIVATIONS = {"relu", "clip", "leaky_relu", "hard_swish", "sigmoid", "hard_sigmoid"}


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape and got.dtype == want.dtype
    return float(np.max(np.abs(got - want))) / max(float(np.max(np.abs(want))), 1e-30)


def _check_o3(spec: str, tmp_path: Path, inputs: dict[str, np.ndarray] | None = None) -> lwc.Graph:
    g = lwc.load(spec)
    inputs = inputs or lwc.random_inputs(g, seed=0)
    ref = lwc.interpret(g, inputs)
    counts = NodeCounts()
    PassManager("O3", instruments=[counts]).run(g)
    print(f"{spec}: {sum(counts.before_counts.values())} -> {sum(counts.after_counts.values())} "
          f"nodes {counts.after_counts}")
    assert sum(counts.after_counts.values()) < sum(counts.before_counts.values())
    got = lwc.interpret(g, inputs)
    assert list(got) == list(ref)  # output names kept
    for k in ref:
        assert _rel_err(got[k], ref[k]) <= 1e-5, k
    path = tmp_path / "o3.onnx"
    export_onnx(g, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, inputs)
    for name, arr in zip([o.name for o in sess.get_outputs()], outs):
        assert _rel_err(arr, ref[name]) <= 1e-5, name
    return g


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [])
                                  for n in SHARED])
def test_o3_shared_model(name: str, tmp_path: Path) -> None:
    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.fail(f"shared model {path} is missing")
    io = np.load(MODELS / f"{name}.io.npz")
    g = _check_o3(str(path), tmp_path, {"input": io["input"]})
    if name == "mobilenet_v2":
        ops = {n.op for n in g.nodes}
        assert "batch_norm" not in ops and not ops & ACTIVATIONS, ops
        assert len(g.nodes_of("conv")) == 52
        assert sum(1 for n in g.nodes_of("conv") if n.attrs.get("residual")) == 10


@pytest.mark.parametrize("spec", [
    pytest.param(f"zoo:{n}", marks=[pytest.mark.slow] if f"zoo:{n}" in SLOW else [])
    for n in zoo_names()])
def test_o3_zoo_model(spec: str, tmp_path: Path) -> None:
    g = _check_o3(spec, tmp_path)
    assert "batch_norm" not in {n.op for n in g.nodes}
