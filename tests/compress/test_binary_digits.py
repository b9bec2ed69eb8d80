"""Binary networks acceptance on the real digits data (issue 5): BNN and XNOR-Net versions of
the digits CNN trained with lwc reach >= 90% test accuracy, TBN is at most half a point below
XNOR-Net, BN+sign threshold folding gives identical outputs on the whole test set, and the
bit-packed .lwcz reads back to a graph with identical outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lwc.cli import main
from lwc.model_io import load_model
from lwc.passes.compress.binarize import fold_bn_sign, lower_binary, prepare
from lwc.passes.compress.recipe_binary import BinaryConfig, binary_compress
from lwc.train import Adam, Dataset, Trainer
from lwc.train.trainer import predict

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DIGITS = SHARED / "data" / "digits.npz"
LENET = SHARED / "models" / "digits_lenet5.onnx"
EPOCHS = 5

pytestmark = pytest.mark.slow


def _acc(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(1) == y).mean())


@pytest.fixture(scope="module")
def trained() -> dict[str, float]:
    """Each scheme trained once (same seed and budget); accuracies of the lowered graphs."""
    out: dict[str, float] = {}
    for scheme in ("bnn", "xnor", "tbn"):
        g = load_model(str(LENET))
        data = Dataset.load(DIGITS).for_graph(g)
        prep = prepare(g, scheme)
        Trainer(g, Adam(lr=1e-3), prep.transforms, extra=prep.extra).fit(
            data, EPOCHS, 32, seed=0, progress=False)
        assert lower_binary(g) == 2
        before = predict(g, data.x_test)
        folded = fold_bn_sign(g)
        after = predict(g, data.x_test)
        # the fold is exact: identical logits on every test sample
        assert np.array_equal(after, before), scheme
        if scheme == "bnn":
            assert folded == 2
            assert not g.nodes_of("batch_norm")
            # the threshold before the second binary layer compares integer popcounts
            taus = [n.inputs[1].data for n in g.nodes_of("sign_threshold")]
            assert any(np.array_equal(t, np.round(t)) for t in taus)
        out[scheme] = _acc(after, data.y_test)
    return out


def test_bnn_and_xnor_reach_90_percent(trained: dict[str, float]) -> None:
    assert trained["bnn"] >= 0.90, trained
    assert trained["xnor"] >= 0.90, trained


def test_tbn_within_half_a_point_of_xnor(trained: dict[str, float]) -> None:
    assert trained["tbn"] >= trained["xnor"] - 0.005, trained


def test_recipe_writes_bit_packed_lwcz(tmp_path: Path) -> None:
    g = load_model(str(LENET))
    out = tmp_path / "bnn.lwcz"
    r = binary_compress(g, Dataset.load(DIGITS), out, "bnn", BinaryConfig(epochs=2))
    assert r.file_bytes == out.stat().st_size
    binary_rows = [row for row in r.rows if row[1] == "binary"]
    assert len(binary_rows) == 2
    for row in binary_rows:  # no alpha in BNN: exactly ceil(n/8) bytes
        assert row[4] == -(-row[2] // 8)
    # the real first/last layers and BN thresholds cost more than the binary ones
    assert r.float_bytes / r.file_bytes > 10
    back = load_model(str(out))
    assert {n.op for n in back.nodes} >= {"xnor_conv", "xnor_gemm", "sign_threshold"}


def test_cli_compress_xnor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.lwcz"
    rc = main(["compress", str(LENET), "--recipe", "xnor", "--data", str(DIGITS),
               "--finetune-epochs", "1", "-o", str(out), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["recipe"] == "xnor" and report["file_bytes"] == out.stat().st_size
    assert [row[1] for row in report["rows"]].count("binary") == 2
    rc = main(["eval", str(out), "--data", str(DIGITS), "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == report["accuracy_after"]


@pytest.mark.parametrize("scheme", ["bnn", "tbn"])
def test_recipe_writes_onnx_that_onnxruntime_runs_exactly(tmp_path: Path, scheme: str) -> None:
    """BNN (sign_threshold, no alpha) and TBN (ternary input, alpha) as standard ONNX: onnxruntime
    gives the lowered graph's predictions on the whole test split. The binary ops are bit-exact
    (tests/frontend/test_export_binary.py); the real first and last layers differ by float
    summation order only."""
    import onnx
    import onnxruntime as ort

    g = load_model(str(LENET))
    data = Dataset.load(DIGITS)
    out = tmp_path / f"{scheme}.onnx"
    r = binary_compress(g, data, out, scheme, BinaryConfig(epochs=1))
    assert r.file_bytes == out.stat().st_size
    model = onnx.load(str(out))
    assert {n.domain for n in model.graph.node} == {""}
    assert [row[1] for row in r.rows].count(
        ("ternary x binary" if scheme == "tbn" else "binary") + " (int8 signs)") == 2
    x = data.for_graph(g).x_test
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    want = predict(g, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    assert r.accuracy_after == _acc(got, data.y_test)


def test_cli_rejects_other_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["compress", str(LENET), "--recipe", "tbn", "--data", str(DIGITS),
               "-o", str(tmp_path / "x.lwc")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "lwc: error:" in err and ".lwcz or .onnx" in err
