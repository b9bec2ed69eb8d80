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
