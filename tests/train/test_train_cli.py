"""``lwc train`` / ``finetune`` / ``eval`` on the real digits data, and their bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lwc.cli import main
from lwc.model_io import load_model
from lwc.train import Dataset, accuracy

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DIGITS = SHARED / "data" / "digits.npz"


def _json(capsys: pytest.CaptureFixture) -> dict:
    return json.loads(capsys.readouterr().out)


def test_train_from_scratch_then_finetune_and_eval(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    trained, tuned = tmp_path / "mlp.onnx", tmp_path / "mlp.lwc"
    # zoo:mlp starts from seeded random weights: near chance before training
    assert main(["train", "zoo:mlp", "--data", str(DIGITS), "-o", str(trained), "--epochs", "6",
                 "--json"]) == 0
    t = _json(capsys)
    assert t["accuracy_before"] < 0.3 and t["accuracy"] > 0.9, t
    assert len(t["loss"]) == 6 and t["loss"][-1] < t["loss"][0]

    assert main(["finetune", str(trained), "--data", str(DIGITS), "-o", str(tuned),
                 "--epochs", "1", "--optimizer", "sgd", "--json"]) == 0
    f = _json(capsys)
    assert f["accuracy_before"] == pytest.approx(t["accuracy"])

    assert main(["eval", str(tuned), "--data", str(DIGITS), "--json"]) == 0
    e = _json(capsys)
    g = load_model(str(tuned))
    data = Dataset.load(DIGITS).for_graph(g)
    assert e["accuracy"] == pytest.approx(f["accuracy"])
    assert e["accuracy"] == pytest.approx(accuracy(g, data.x_test, data.y_test))
    assert e["samples"] == len(data.y_test)


def test_eval_reshapes_images_for_the_cnn(capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", str(SHARED / "models" / "digits_lenet5.onnx"), "--data", str(DIGITS),
                 "--json"]) == 0
    assert _json(capsys)["accuracy"] > 0.95  # a trained model, fed [N,1,8,8] from [N,64]


def _bad_dataset(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"{kind}.npz"
    rng = np.random.default_rng(0)
    x, y = rng.random((10, 64), np.float32), np.arange(10) % 10
    arrays = {"missing": {"x_train": x, "y_train": y},
              "rows": {"x_train": x, "y_train": y[:5], "x_test": x, "y_test": y},
              "size": {"x_train": x[:, :60], "y_train": y, "x_test": x[:, :60], "y_test": y}}[kind]
    np.savez(p, **arrays)
    return p


@pytest.mark.parametrize(("kind", "fragment"), [("missing", "lacks x_test"),
                                                ("rows", "10 rows"),
                                                ("size", "[60]")])
def test_bad_datasets_fail_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                         kind: str, fragment: str) -> None:
    data = _bad_dataset(tmp_path, kind)
    out = tmp_path / "never.onnx"
    assert main(["train", "zoo:mlp", "--data", str(data), "-o", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lwc: error: ") and "\n" not in err and fragment in err, err
    assert not out.exists()


def test_pickled_dataset_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "evil.npz"
    np.savez(p, x_train=np.array([object()], dtype=object), y_train=np.zeros(1),
             x_test=np.zeros((1, 64)), y_test=np.zeros(1))
    assert main(["eval", "zoo:mlp", "--data", str(p)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(p) in err
