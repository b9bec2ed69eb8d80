"""Deep Compression acceptance on the real digits data (issue 5): size ratio from the real
.lwcz file, accuracy within 0.5 points of float, pruned weights exactly zero after fine-tuning,
and the written file loading back into a graph that computes the same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lwc.cli import main
from lwc.interp import interpret
from lwc.model_io import load_model
from lwc.passes.compress.deep_compression import DCConfig, deep_compress
from lwc.train import Dataset, accuracy

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DIGITS = SHARED / "data" / "digits.npz"
MAX_DROP = 0.005  # half a point of test accuracy

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("model", "min_ratio"), [("digits_mlp", 35.0), ("digits_lenet5", 30.0)])
def test_deep_compression_meets_the_paper_style_targets(tmp_path: Path, model: str,
                                                        min_ratio: float) -> None:
    graph = load_model(str(SHARED / "models" / f"{model}.onnx"))
    data = Dataset.load(DIGITS).for_graph(graph)
    out = tmp_path / f"{model}.lwcz"
    r = deep_compress(graph, data, out, DCConfig())

    assert r.file_bytes == out.stat().st_size
    assert r.float_bytes / out.stat().st_size >= min_ratio, r.ratio
    assert r.accuracy_after >= r.accuracy_before - MAX_DROP, (r.accuracy_before, r.accuracy_after)

    assert r.masks, "nothing was pruned"
    for name, mask in r.masks.items():
        w = np.asarray(graph.constants[name].data)
        assert not mask.all()
        assert np.all(w[~mask] == 0.0), f"{name}: pruned weights moved during fine-tuning"

    loaded = load_model(str(out))
    x = data.x_test[:64]
    want = interpret(graph, {graph.inputs[0].name: x})
    got = interpret(loaded, {loaded.inputs[0].name: x})
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert accuracy(loaded, data.x_test, data.y_test) == pytest.approx(r.accuracy_after)


def test_cli_compress_then_eval_the_lwcz(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, out = SHARED / "models" / "digits_mlp.onnx", tmp_path / "mlp.lwcz"
    code = main(["compress", str(model), "--recipe", "deep-compression", "--data", str(DIGITS),
                 "-o", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["file_bytes"] == out.stat().st_size
    assert report["ratio"] >= 35.0
    layers = {row[0]: row for row in report["rows"]}
    assert set(layers) == {f"net.{i}.{k}" for i in (0, 2, 4) for k in ("weight", "bias")}
    assert all(row[2] < 100 for name, row in layers.items() if name.endswith("weight"))

    assert main(["eval", str(out), "--data", str(DIGITS), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(report["accuracy_after"])
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["total"]["params"] == report["float_bytes"] // 4


def test_deep_compression_to_onnx_runs_in_onnxruntime(tmp_path: Path) -> None:
    """ONNX output: shared weights as Gather(codebook, uint8 index), so ~4x smaller than float32;
    lwc reads it back to the same weights exactly, onnxruntime predicts the same classes."""
    import onnx
    import onnxruntime as ort

    graph = load_model(str(SHARED / "models" / "digits_mlp.onnx"))
    data = Dataset.load(DIGITS).for_graph(graph)
    out = tmp_path / "mlp.onnx"
    r = deep_compress(graph, data, out, DCConfig(prune_epochs=1, share_epochs=1,
                                                 qualities=(0.6, 1.2)))
    assert r.file_bytes == out.stat().st_size and r.ratio > 3.5, r.ratio
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gather") == 6 and ops.count("Cast") == 6  # 3 weights + 3 biases
    assert all(t.data_type == onnx.TensorProto.UINT8 for t in model.graph.initializer
               if t.name.endswith(".index"))
    x = data.x_test
    want = interpret(graph, {graph.inputs[0].name: x})[graph.outputs[0].name]
    back = load_model(str(out))
    np.testing.assert_array_equal(interpret(back, {back.inputs[0].name: x})[back.outputs[0].name],
                                  want)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
