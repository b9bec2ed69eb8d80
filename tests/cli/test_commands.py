"""show / info / run / convert on zoo models, checked against onnxruntime and the graph itself."""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
import onnxruntime as ort
import pytest
from cli_helpers import REPO

import lwc
from lwc.cli import COMMANDS, build_parser


def _ort(path, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_help(cli):
    top = cli("--help")
    assert top.code == 0
    for name in COMMANDS:
        assert name in top.out
        r = cli(name, "--help")
        assert r.code == 0 and r.out.startswith("usage: lwc " + name), name


def test_docs_cover_every_command_and_flag():
    text = (REPO / "docs" / "cli.md").read_text()
    for name, sub in _subparsers().items():
        assert f"## lwc {name}" in text, f"docs/cli.md lacks a section for lwc {name}"
        section = text.split(f"## lwc {name}", 1)[1].split("\n## ", 1)[0]
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    documented = f"`{flag}" in section or f" {flag}" in section
                    assert documented, f"docs/cli.md: lwc {name} does not document {flag}"


def test_show_prints_every_node(cli):
    r = cli("show", "zoo:lenet5")
    assert r.code == 0
    g = lwc.load("zoo:lenet5")
    assert r.out.count(" = ") >= len(g.nodes)
    for n in g.nodes:
        assert f"%{n.outputs[0].name} = {n.op}(" in r.out


def test_info_json_matches_the_graph(cli):
    r = cli("info", "zoo:mlp", "--json")
    assert r.code == 0
    doc = json.loads(r.out)
    g = lwc.load("zoo:mlp")
    assert [row["op"] for row in doc["layers"]] == [n.op for n in g.nodes]
    gemms = [row for row in doc["layers"] if row["op"] == "gemm"]
    # y = x W^T + b: one MAC per weight element at batch 1, params = weights + biases
    weights = [c.data for k, c in g.constants.items() if k.endswith(".weight")]
    assert [row["macs"] for row in gemms] == [w.size for w in weights]
    assert [row["params"] for row in gemms] == [w.size + w.shape[0] for w in weights]
    assert gemms[0]["shape"] == "f32[N,300]"
    assert doc["total"]["macs"] == sum(w.size for w in weights)
    assert doc["total"]["params"] == sum(int(c.data.size) for c in g.constants.values())
    assert doc["total"]["bytes"] == sum(row["bytes"] for row in doc["layers"])


def test_info_table_and_top(cli):
    full = cli("info", "zoo:mlp")
    assert full.code == 0 and "total" in full.out and "fc0.relu" in full.out
    top = cli("info", "zoo:mlp", "--top", "1")
    assert "fc1 " in top.out and "fc0 " not in top.out and "5 nodes" in top.out


@pytest.mark.parametrize("model", ["zoo:mlp", "zoo:lenet5"])
def test_run_and_convert_agree_with_onnxruntime(cli, tmp_path, model):
    g = lwc.load(model)
    x = np.random.default_rng(1).standard_normal(g.inputs[0].type.concrete_shape()).astype("f4")
    np.save(tmp_path / "x.npy", x)
    onnx_path = tmp_path / "m.onnx"
    assert cli("convert", model, "-o", onnx_path).code == 0
    want = _ort(onnx_path, {g.inputs[0].name: x})
    r = cli("run", model, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npz")
    assert r.code == 0 and "output" in r.out
    with np.load(tmp_path / "y.npz") as y:
        assert set(y.files) == set(want)
        for k in want:
            np.testing.assert_allclose(y[k], want[k], rtol=1e-4, atol=1e-5)


def test_run_json_is_seeded(cli):
    a = json.loads(cli("run", "zoo:mlp", "--json", "--seed", "5").out)
    b = json.loads(cli("run", "zoo:mlp", "--json", "--seed", "5").out)
    c = json.loads(cli("run", "zoo:mlp", "--json", "--seed", "6").out)
    assert a["outputs"] == b["outputs"] != c["outputs"]
    assert a["outputs"]["output"]["shape"] == [1, 10]
    assert a["inputs"]["input"] == {"dtype": "float32", "shape": [1, 64]}
    assert a["backend"] == "interp"


def test_run_accepts_io_npz_with_output_keys(cli, tmp_path):
    g = lwc.load("zoo:mlp")
    x = lwc.random_inputs(g, seed=2)["input"]
    want = lwc.interpret(g, {"input": x})["output"]
    np.savez(tmp_path / "m.io.npz", input=x, output=np.zeros_like(want))
    assert cli("run", "zoo:mlp", "-i", tmp_path / "m.io.npz", "-o", tmp_path / "y.npz").code == 0
    with np.load(tmp_path / "y.npz") as y:
        np.testing.assert_array_equal(y["output"], want)


def test_convert_onnx_roundtrip_through_the_importer(cli, tmp_path):
    assert cli("convert", "zoo:mlp", "-o", tmp_path / "m.onnx").code == 0
    assert cli("convert", tmp_path / "m.onnx", "-o", tmp_path / "again.onnx").code == 0
    x = {"input": np.random.default_rng(4).standard_normal((1, 64)).astype("f4")}
    want = lwc.interpret(lwc.load("zoo:mlp"), x)["output"]
    got = lwc.interpret(lwc.load(str(tmp_path / "again.onnx")), x)["output"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_convert_to_text_ir_and_back(cli, tmp_path):
    out = tmp_path / "m.lwc"
    assert cli("convert", "zoo:lenet5", "-o", out).code == 0
    assert out.is_file()
    shown = cli("show", out)
    assert shown.code == 0 and "graph @lenet5" in shown.out
    g = lwc.load("zoo:lenet5")
    x = lwc.random_inputs(g, seed=7)
    np.testing.assert_array_equal(lwc.interpret(lwc.load(str(out)), x)["output"],
                                  lwc.interpret(g, x)["output"])


def test_api_save_and_load(tmp_path):
    g = lwc.load("zoo:mlp")
    lwc.save(g, str(tmp_path / "m.onnx"))
    h = lwc.load(str(tmp_path / "m.onnx"))
    assert [v.name for v in h.inputs] == ["input"] and [v.name for v in h.outputs] == ["output"]
    with pytest.raises(lwc.LwcError, match=r"m\.bin"):
        lwc.save(g, str(tmp_path / "m.bin"))


def test_run_json_survives_nan_outputs(cli, tmp_path):
    g = lwc.Graph("roots")
    x = g.add_input("x", lwc.TensorType(lwc.DType.F32, (1, 4)))
    g.outputs = [g.add_node("sqrt", [x]).output]
    lwc.save(g, str(tmp_path / "roots.lwc"))
    np.save(tmp_path / "x.npy", np.array([[4.0, -1.0, 9.0, -4.0]], np.float32))
    r = cli("run", tmp_path / "roots.lwc", "-i", tmp_path / "x.npy", "--json")
    assert r.code == 0, r.err
    def no_constants(name):
        raise AssertionError(f"non-standard JSON literal {name}")

    out = json.loads(r.out, parse_constant=no_constants)["outputs"]["sqrt"]
    assert (out["min"], out["max"], out["nonfinite"]) == (2.0, 3.0, 2)
    assert "2 NaN/inf" in cli("run", tmp_path / "roots.lwc", "-i", tmp_path / "x.npy").out


def test_report_table_shows_names_verbatim():
    from rich.console import Console

    from lwc.report import layer_report, render_table

    g = lwc.Graph("odd")
    x = g.add_input("x", lwc.TensorType(lwc.DType.F32, (1, 4)))
    g.outputs = [g.add_node("relu", [x], name="[bold]layer[/bold]").output]
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(render_table(layer_report(g), title="[red]t"))
    text = console.export_text()
    assert "[bold]layer[/bold]" in text and "[red]t" in text
