"""Bad input never produces a traceback: one ``lwc: error:`` line, exit 2, no partial outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_process, small_onnx, unsupported_onnx

import lwc.cli.info


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_malformed_onnx(cli, tmp_path):
    bad = tmp_path / "noise.onnx"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_one_line_error(cli("info", bad), str(bad))


def test_truncated_onnx(cli, tmp_path):
    whole = small_onnx(tmp_path / "whole.onnx").read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(whole[: len(whole) // 2])
    assert cli("info", tmp_path / "whole.onnx").code == 0  # the intact file is fine
    assert_one_line_error(cli("run", cut), str(cut))


def test_unsupported_op_names_node_op_opset_and_alternatives(cli, tmp_path):
    line = assert_one_line_error(cli("show", unsupported_onnx(tmp_path / "nms.onnx")),
                                 "nms", "NonMaxSuppression", "13")
    assert "supported" in line and "Relu" in line and "Add" in line  # lists alternatives


def test_missing_model_file(cli, tmp_path):
    assert_one_line_error(cli("info", tmp_path / "absent.onnx"), "absent.onnx", "no such")


def test_unknown_model_suffix(cli, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\0")
    assert_one_line_error(cli("info", tmp_path / "model.pt"), "model.pt", ".onnx", "zoo:")


def test_unknown_zoo_name_lists_the_zoo(cli):
    assert_one_line_error(cli("info", "zoo:alexnet"), "zoo:alexnet", "zoo:mobilenet_v2",
                          "zoo:resnet18")


def test_wrong_input_shape_names_input_and_both_shapes(cli, tmp_path):
    x = tmp_path / "x.npz"
    np.savez(x, input=np.zeros((1, 32), np.float32))
    out = tmp_path / "y.npz"
    assert_one_line_error(cli("run", "zoo:mlp", "--input", x, "--output", out),
                          "x.npz", "input", "[1, 32]", "f32[N,64]")
    assert not out.exists()
    assert _listing(tmp_path) == ["x.npz"]  # no temp file left behind either


def test_wrong_input_dtype(cli, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 64), np.float64))
    assert_one_line_error(cli("run", "zoo:mlp", "--input", x), "input", "float64", "float32")


def test_wrong_input_name(cli, tmp_path):
    x = tmp_path / "x.npz"
    np.savez(x, image=np.zeros((1, 64), np.float32))
    assert_one_line_error(cli("run", "zoo:mlp", "-i", x), "missing input", "input", "f32[N,64]")


def test_missing_input_file(cli, tmp_path):
    assert_one_line_error(cli("run", "zoo:mlp", "--input", tmp_path / "nope.npz"), "nope.npz")


def test_input_file_not_numpy(cli, tmp_path):
    x = tmp_path / "x.npz"
    x.write_bytes(b"definitely not a zip archive")
    assert_one_line_error(cli("run", "zoo:mlp", "--input", x), "x.npz")


def test_pickled_input_is_refused(cli, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert_one_line_error(cli("run", "zoo:mlp", "--input", x), "x.npy")


def test_bad_output_suffixes(cli, tmp_path):
    assert_one_line_error(cli("convert", "zoo:mlp", "-o", tmp_path / "m.txt"), "m.txt", ".onnx",
                          ".lwc")
    assert_one_line_error(cli("run", "zoo:mlp", "-o", tmp_path / "y.csv"), "y.csv", ".npz")
    assert _listing(tmp_path) == []


def test_convert_write_failure_leaves_nothing_behind(cli, tmp_path):
    target = tmp_path / "taken.onnx"
    target.mkdir()  # a directory where the file should go: the final rename must fail
    assert_one_line_error(cli("convert", "zoo:mlp", "-o", target), "taken.onnx")
    assert target.is_dir() and _listing(target) == []
    assert _listing(tmp_path) == ["taken.onnx"]


def test_run_output_write_failure_leaves_nothing_behind(cli, tmp_path):
    target = tmp_path / "y.npz"
    target.mkdir()
    assert_one_line_error(cli("run", "zoo:mlp", "--output", target), "y.npz")
    assert _listing(tmp_path) == ["y.npz"] and _listing(target) == []


def test_argparse_errors_exit_2(cli):
    r = cli("info")  # MODEL missing
    assert r.code == 2 and "MODEL" in r.err and "Traceback" not in r.err
    assert cli("frobnicate").code == 2
    assert cli("run", "zoo:mlp", "--seed", "many").code == 2


def test_internal_error_is_one_line_with_hint_and_exit_1(cli, monkeypatch):
    def boom(args):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr(lwc.cli.info, "run", boom)
    r = cli("info", "zoo:mlp")
    assert r.code == 1
    assert r.err.strip().splitlines() == [
        "lwc: error: RuntimeError: kaboom second line "
        "(internal error; rerun with LWC_DEBUG=1 for a traceback)"]


def test_keyboard_interrupt_exits_130(cli, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(lwc.cli.info, "run", interrupted)
    r = cli("info", "zoo:mlp")
    assert r.code == 130 and "Traceback" not in r.err


@pytest.mark.parametrize("debug", [False, True])
def test_real_process_exit_code_and_debug_traceback(tmp_path, debug):
    bad = tmp_path / "noise.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    r = run_process("info", bad, env={"LWC_DEBUG": "1"} if debug else {"LWC_DEBUG": ""})
    assert r.code == 2
    assert r.err.strip().splitlines()[-1].startswith("lwc: error: ")
    assert ("Traceback" in r.err) == debug


def test_real_process_unknown_zoo_model():
    r = run_process("run", "zoo:nope")
    assert_one_line_error(r, "zoo:nope", "zoo:lenet5")
