"""``prune-channels`` end to end: as a pass in ``lwc opt`` and as the ``lwc compress`` recipe that
fine-tunes the pruned digits LeNet-5 (real data: ../shared/data/digits.npz)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import lwc
from lwc.cli import main
from lwc.cost import graph_cost
from lwc.pass_manager import run_pipeline
from lwc.train import Dataset, accuracy

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
LENET = SHARED / "models" / "digits_lenet5.onnx"
DIGITS = SHARED / "data" / "digits.npz"


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_opt_prunes_mobilenet_v2_and_writes_an_equivalent_onnx(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "pruned.onnx"
    code, text, err = run(capsys, "opt", "zoo:mobilenet_v2", "-p", "prune-channels{ratio=0.3}",
                          "-o", out, "--json")
    assert code == 0, err
    data = json.loads(text)
    assert data["pipeline"] == ["prune-channels{ratio=0.3}"]
    assert data["passes"][0]["changed"] and data["passes"][0]["stats"]["removed"] > 0
    assert data["params_after"] < 0.7 * data["params_before"]
    assert data["macs_after"] < 0.7 * data["macs_before"]
    layers = [r for r in data["records"] if r["op"] == "conv"]
    dw = [r for r in layers if ".dw." in r["node"]]
    assert dw and all(r["channels_after"] < r["channels_before"] for r in dw)
    # the written file is the graph the pass makes in process (depthwise group counts included)
    want = lwc.load("zoo:mobilenet_v2")
    run_pipeline(want, "prune-channels{ratio=0.3}")
    got = lwc.load(str(out))
    assert got.parameter_count() == want.parameter_count() == data["params_after"]
    x = lwc.random_inputs(want)
    a, b = lwc.interpret(want, x), lwc.interpret(got, x)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-6)


def test_opt_rejects_bad_ratio_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "opt", "zoo:mlp", "-p", "prune-channels{ratio=1.5}")
    assert code == 2
    assert err.strip().splitlines() == ["lwc: error: prune-channels: ratio must be in [0, 1), "
                                        "got 1.5"]


def test_compress_recipe_prunes_and_finetunes_digits_lenet5(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    """Half of every channel group goes; fine-tuning wins back the accuracy to within 1.5 points
    (measured: 98.67% -> 59.33% after pruning -> 98.00% after 6 epochs)."""
    out = tmp_path / "lenet_pruned.lwcz"
    code, text, err = run(capsys, "compress", LENET, "--recipe", "prune-channels", "--data",
                          DIGITS, "-o", out, "--json")
    assert code == 0, err
    rep = json.loads(text)
    assert rep["accuracy_after"] >= rep["accuracy_before"] - 0.015
    assert rep["file_bytes"] == out.stat().st_size and rep["ratio"] > 3
    dense, small = graph_cost(lwc.load(str(LENET))), graph_cost(lwc.load(str(out)))
    assert small.macs < 0.3 * dense.macs and small.params < 0.3 * dense.params
    # the file holds the fine-tuned, smaller dense model
    g = lwc.load(str(out))
    g.verify()
    data = Dataset.load(DIGITS).for_graph(g)
    assert accuracy(g, data.x_test, data.y_test) == pytest.approx(rep["accuracy_after"], abs=1e-9)
    conv_out = [int(n.inputs[1].type.shape[0]) for n in g.nodes_of("conv")]
    assert conv_out == [10, 25]


@pytest.mark.parametrize("suffix", [".onnx", ".lwc"])
def test_recipe_writes_onnx_and_lwc(suffix: str, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    out = tmp_path / f"p{suffix}"
    code, text, err = run(capsys, "compress", LENET, "--recipe", "prune-channels", "--data",
                          DIGITS, "-o", out, "--finetune-epochs", "0", "--json")
    assert code == 0, err
    rep = json.loads(text)
    g = lwc.load(str(out))
    data = Dataset.load(DIGITS).for_graph(g)
    assert accuracy(g, data.x_test, data.y_test) == pytest.approx(rep["accuracy_after"], abs=1e-9)
    assert g.parameter_count() < 0.3 * lwc.load(str(LENET)).parameter_count()


def test_recipe_refuses_other_suffixes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "compress", "zoo:mlp", "--recipe", "prune-channels", "--data",
                       DIGITS, "-o", tmp_path / "x.txt")
    assert code == 2 and "prune-channels writes .onnx, .lwc, .lwcz" in err


def test_llvm_backend_runs_the_pruned_graph() -> None:
    """The pruned graph is an ordinary dense graph: depthwise convs with the new group counts,
    narrower 1x1 convs and gemm compile and agree with the interpreter."""
    from lwc.backends import compile as compile_graph
    from lwc.passes.compress.channel_prune import prune_channels
    from lwc.zoo import build

    g = build("mobilenet_v2", resolution=32, alpha=0.5, batch=2)
    r = prune_channels(g, ratio=0.5, min_channels=4)
    assert r.removed > 0 and any(n.attrs.get("group", 1) > 1 for n in g.nodes_of("conv"))
    x = lwc.random_inputs(g, seed=1)
    want, got = lwc.interpret(g, x), compile_graph(g, target="llvm").run(x)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4 * np.abs(want[k]).max())
