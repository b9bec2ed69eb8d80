"""``lwc compile --target accel:...`` and ``lwc sim``: exit codes, --json keys, the table, the
trace file, --check, and one-line errors for bad accelerator files and bad combinations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from accel_helpers import assert_one_line_error, model_path, shared_input

from lwc.backends.accel.report import LAYER_KEYS, TOTAL_KEYS
from lwc.cli import main


class _R:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return _R(code, cap.out, cap.err)
    return run


@pytest.fixture
def lenet() -> str:
    return str(model_path("digits_lenet5"))


def test_compile_then_simulate_the_program(cli, lenet, tmp_path) -> None:
    out = tmp_path / "prog.lasm"
    r = cli("compile", lenet, "--target", "accel:edge-16x16", "-o", out, "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["accel"] == "edge-16x16" and info["instructions"] > 0
    assert out.is_file() and Path(str(out) + ".npz").is_file()
    assert out.read_text().startswith("; lwc accelerator program")
    r = cli("sim", out, "--accel", "edge-16x16", "--json")
    assert r.code == 0, r.err
    prog_rep = json.loads(r.out)
    r = cli("sim", lenet, "--accel", "edge-16x16", "--json")
    model_rep = json.loads(r.out)
    # same program, same seeded random input: same cycles layer by layer
    assert [x["total_cycles"] for x in prog_rep["layers"]] == \
        [x["total_cycles"] for x in model_rep["layers"]]


def test_sim_json_has_the_documented_keys(cli, lenet) -> None:
    r = cli("sim", lenet, "--accel", "tpu-v1", "--json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    assert len(rep["layers"]) == 6
    for layer in rep["layers"]:
        assert set(LAYER_KEYS) <= set(layer)
    assert set(TOTAL_KEYS) <= set(rep["total"])
    assert round(rep["total"]["peak_tops"], 2) == 91.75


def test_sim_table_trace_and_timing_only(cli, lenet, tmp_path) -> None:
    trace = tmp_path / "t.csv"
    r = cli("sim", lenet, "--accel", "eyeriss-like", "--timing-only", "--trace", trace)
    assert r.code == 0, r.err
    assert "eyeriss-like" in r.out and "total" in r.out and "TOPS" in r.out
    rows = trace.read_text().splitlines()
    assert rows[0] == "index,layer,core,queue,op,start,end" and len(rows) > 10
    last_end = max(int(x.split(",")[-1]) for x in rows[1:])
    r = cli("sim", lenet, "--accel", "eyeriss-like", "--timing-only", "--json")
    assert json.loads(r.out)["total"]["total_cycles"] == last_end


def test_sim_check_is_bit_exact(cli, lenet, tmp_path) -> None:
    x = tmp_path / "x.npy"
    np.save(x, shared_input("digits_lenet5"))
    r = cli("sim", lenet, "--accel", "myriad-x-like", "--check", "--input", x, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["check"] == {"bit_exact": True, "mismatches": []}


def test_bad_accel_file_is_one_error_line(cli, lenet, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[array]\nrows = 16\ncolums = 16\n")
    r = cli("sim", lenet, "--accel", bad)
    assert_one_line_error(r, "bad.toml", "colums")
    r = cli("compile", lenet, "--target", f"accel:{bad}", "-o", tmp_path / "p.lasm")
    assert_one_line_error(r, "bad.toml", "colums")
    r = cli("sim", lenet, "--accel", "tpu-v7")
    assert_one_line_error(r, "unknown accelerator 'tpu-v7'")


def test_usage_errors(cli, lenet, tmp_path) -> None:
    assert cli("sim", lenet).code == 2  # --accel is required (argparse)
    assert_one_line_error(cli("sim", "--accel", "tpu-v1"), "MODEL")
    assert_one_line_error(cli("sim", lenet, "--accel", "tpu-v1", "--gemm"), "--topology")
    assert_one_line_error(cli("sim", lenet, "--accel", "tpu-v1", "--check", "--timing-only"),
                          "--timing-only")
    assert_one_line_error(cli("compile", lenet, "--target", "accel:tpu-v1", "-o",
                              tmp_path / "p.so"), ".lasm")
    assert cli("compile", lenet, "--target", "fpga", "-o", tmp_path / "p.so").code == 2
    out = tmp_path / "p.lasm"
    assert cli("compile", lenet, "--target", "accel:tpu-v1", "-o", out).code == 0
    assert_one_line_error(cli("sim", out, "--accel", "edge-16x16"), "tpu-v1", "edge-16x16")
    (tmp_path / "junk.lasm").write_text("matmul a=1\n")
    assert_one_line_error(cli("sim", tmp_path / "junk.lasm", "--accel", "tpu-v1"), "junk.lasm:1")


def test_a_listing_without_its_sidecar_can_only_be_timed(cli, lenet, tmp_path) -> None:
    out = tmp_path / "p.lasm"
    assert cli("compile", lenet, "--target", "accel:edge-16x16", "-o", out).code == 0
    full = json.loads(cli("sim", out, "--accel", "edge-16x16", "--json").out)
    Path(str(out) + ".npz").unlink()
    assert_one_line_error(cli("sim", out, "--accel", "edge-16x16"), "sidecar", "--timing-only")
    r = cli("sim", out, "--accel", "edge-16x16", "--timing-only", "--json")
    assert r.code == 0, r.err
    bare = json.loads(r.out)
    # cycles come from the instructions alone; MAC counts of the layer table need the sidecar
    assert [x["total_cycles"] for x in bare["layers"]] == \
        [x["total_cycles"] for x in full["layers"]]


def test_sim_sweep_is_handed_to_its_own_parser(cli) -> None:
    r = cli("sim", "sweep", "--help")
    assert r.code == 0 and r.out.startswith("usage: lwc sim sweep")
