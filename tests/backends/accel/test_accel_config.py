"""Accelerator descriptions: every preset loads and has the documented headline numbers; broken
files fail with one line naming the file and the key."""

from __future__ import annotations

import json

import pytest

from lwc.backends.accel.config import (AccelConfigError, from_dict, load_accel, load_file,
                                       parse_size, preset_names)
from lwc.backends.accel.layout import buffer_plan
from lwc.errors import LwcError

PRESETS = ("edge-16x16", "eyeriss-like", "myriad-2-like", "myriad-x-like", "tpu-v1")


def test_presets_exist_and_load() -> None:
    assert set(PRESETS) <= set(preset_names())
    for name in PRESETS:
        cfg = load_accel(name)
        assert cfg.name == name
        assert cfg.peak_tops > 0


def test_tpu_v1_headline_numbers() -> None:
    cfg = load_accel("tpu-v1")
    assert (cfg.array.rows, cfg.array.cols, cfg.array.dataflow, cfg.array.mac) == \
        (256, 256, "ws", "int8")
    assert round(cfg.peak_tops, 2) == 91.75  # 256 * 256 * 2 * 700e6
    assert cfg.buffers.activations == 24 * 2**20 and cfg.buffers.accumulators == 4 * 2**20
    assert cfg.dram.bandwidth * cfg.clock_mhz * 1e6 == pytest.approx(34e9, rel=0.01)


def test_vpu_presets_are_vector_machines() -> None:
    x, two = load_accel("myriad-x-like"), load_accel("myriad-2-like")
    assert x.is_vpu and two.is_vpu
    assert (x.vpu.cores, two.vpu.cores) == (16, 12)
    assert x.vpu.scratchpad == 2_500_000 and x.vpu.mac_block > 0 and two.vpu.mac_block == 0
    for cfg in (x, two):  # the four regions of a core's scratchpad slice fit in the slice
        assert buffer_plan(cfg).footprint <= cfg.vpu.slice_bytes


def test_eyeriss_like_is_12x14() -> None:
    cfg = load_accel("eyeriss-like")
    assert (cfg.array.rows, cfg.array.cols) == (12, 14)


@pytest.mark.parametrize("text, fragments", [
    ('[array]\nrows = 8\ncolumns = 8\n', ["bad.toml", "columns", "[array]"]),
    ('[array]\ndataflow = "rs"\n', ["bad.toml", "array.dataflow", "'rs'"]),
    ('[array]\nrows = "eight"\n', ["bad.toml", "array.rows", "expected int"]),
    ('[buffers]\nweights = "12 parsecs"\n', ["bad.toml", "buffers.weights", "bad size"]),
    ('[buffers]\nweights = 16\n', ["bad.toml", "buffers.weights", ">= 256"]),
    ('[dram]\nbandwidth = 0\n', ["bad.toml", "dram.bandwidth", "> 0"]),
    ('kind = "vpu"\n', ["bad.toml", "[vpu] table"]),
    ('[vpu]\ncores = 4\n', ["bad.toml", "kind = \"vpu\""]),
    ('kind = "vpu"\n[vpu]\ncores = 64\nscratchpad = "64KiB"\n', ["bad.toml", "slice"]),
    ('clock = 5\n', ["bad.toml", "unknown key 'clock'"]),
    ('[array\nrows = 1\n', ["bad.toml", "cannot parse"]),
    ('[energy]\nmac = -1.0\n', ["bad.toml", "energy.mac"]),
    ('[vector]\nops = ["relu", "fft"]\n', ["bad.toml", "vector.ops", "fft"]),
])
def test_bad_descriptions_name_file_and_key(tmp_path, text: str, fragments: list[str]) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(AccelConfigError) as e:
        load_file(p)
    msg = str(e.value)
    assert isinstance(e.value, LwcError) and "\n" not in msg
    for f in fragments:
        assert f in msg, (f, msg)


def test_json_descriptions_and_size_units(tmp_path) -> None:
    p = tmp_path / "mine.json"
    p.write_text(json.dumps({"array": {"rows": 4, "cols": 8, "dataflow": "os"},
                             "buffers": {"activations": "1.5KiB", "weights": "2kB",
                                         "accumulators": 4096}}))
    cfg = load_accel(str(p))
    assert cfg.name == "mine" and (cfg.array.rows, cfg.array.cols) == (4, 8)
    assert (cfg.buffers.activations, cfg.buffers.weights) == (1536, 2000)
    assert parse_size("24MiB", "x") == 24 * 2**20 and parse_size("2.5MB", "x") == 2_500_000


def test_unknown_accelerator_lists_presets() -> None:
    with pytest.raises(AccelConfigError, match="tpu-v1") as e:
        load_accel("tpu-v9")
    assert "unknown accelerator 'tpu-v9'" in str(e.value)
    with pytest.raises(AccelConfigError, match="no such accelerator description"):
        load_accel("missing.toml")


def test_replace_revalidates() -> None:
    cfg = load_accel("edge-16x16")
    assert cfg.replace(**{"array.rows": 8}).array.rows == 8
    with pytest.raises(AccelConfigError, match="array.dataflow"):
        cfg.replace(**{"array.dataflow": "xs"})
    with pytest.raises(AccelConfigError):
        from_dict({"array": {"rows": 0}})
