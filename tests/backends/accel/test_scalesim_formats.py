"""SCALE-Sim topology/.cfg readers, their errors, and lwc's own array model in topology mode."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwc.backends.accel.config import AccelConfigError
from lwc.backends.accel.report import LAYER_KEYS, TOTAL_KEYS
from lwc.backends.accel.scalesim_compat import (ScaleSimConfig, TopologyError, TopoLayer,
                                                compat_layer, graph_to_topology,
                                                own_layer_cycles, read_cfg,
                                                read_topology, simulate_topology,
                                                spatio_temporal, write_topology)
from lwc.errors import LwcError

CONV = ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
        "Num Filter, Strides,\n")


def _cfg(tmp_path: Path, **kw: object) -> Path:
    args = {"run_name": "t", "rows": 8, "cols": 8, "dataflow": "ws", "ifmap_kb": 64,
            "filter_kb": 64, "ofmap_kb": 32, "bandwidth": 10.0, **kw}
    p = tmp_path / "t.cfg"
    p.write_text(ScaleSimConfig(**args).cfg_text())  # type: ignore[arg-type]
    return p


def test_conv_rows_with_and_without_trailing_comma(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(CONV + "c1, 58, 58, 3, 3, 64, 64, 1,\n\nc2,30,30,3,3,8,16,2\n")
    a, b = read_topology(p)
    assert a == TopoLayer("c1", 58, 58, 3, 3, 64, 64, 1)
    # SCALE-Sim rounds up: ceil((30 - 3 + 2) / 2) = 15 where PyTorch gives (30 - 3) // 2 + 1 = 14
    assert (b.ofmap_h, b.ofmap_w) == (15, 15)
    assert a.mnk == (56 * 56, 64, 9 * 64)


def test_gemm_rows_map_like_scalesim(tmp_path: Path) -> None:
    p = tmp_path / "g.csv"
    p.write_text("Layer Name, M, N, K,\nfc, 3, 1000, 512,\n")
    (lyr,) = read_topology(p)  # header detected as GEMM
    assert lyr.mnk == (3, 1000, 512)
    assert (lyr.ifmap_h, lyr.ifmap_w, lyr.filt_h, lyr.filt_w, lyr.channels) == (3, 512, 1, 512, 1)
    assert read_topology(p, gemm=True) == [lyr]
    with pytest.raises(TopologyError, match=r"g.csv:1: the header is a GEMM topology's"):
        read_topology(p, gemm=False)


@pytest.mark.parametrize("row, needle", [
    ("c1, 58, x, 3, 3, 64, 64, 1,", ":2: expected 'name, H, W, R, S, C, N, stride,'"),
    ("c1, 58, 58, 3, 3, 64,", ":2: expected"),
    ("c1, 2, 58, 3, 3, 64, 64, 1,", ":2: layer c1: sizes must be >= 1 and the filter 3x3"),
    ("c1, 58, 58, 3, 3, 0, 64, 1,", ":2: layer c1"),
])
def test_bad_conv_rows_name_file_and_line(tmp_path: Path, row: str, needle: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(CONV + row + "\n")
    with pytest.raises(TopologyError) as e:
        read_topology(p)
    msg = str(e.value)
    assert str(p) in msg and needle in msg and "\n" not in msg


def test_bad_gemm_and_missing_files(tmp_path: Path) -> None:
    p = tmp_path / "g.csv"
    p.write_text("Layer Name, M, N, K,\nfc, 0, 10, 10,\n")
    with pytest.raises(TopologyError, match=r"g.csv:2: layer fc: M, N, K must be >= 1"):
        read_topology(p)
    with pytest.raises(TopologyError, match="no such topology file"):
        read_topology(tmp_path / "nope.csv")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(TopologyError, match="empty topology"):
        read_topology(tmp_path / "e.csv")
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TopologyError, match="not a text file"):
        read_topology(tmp_path / "b.csv")


def test_cfg_round_trip(tmp_path: Path) -> None:
    cfg = ScaleSimConfig("rt", 12, 14, "is", 128, 64, 32, 20.0)
    p = tmp_path / "rt.cfg"
    p.write_text(cfg.cfg_text())
    assert read_cfg(p) == cfg


@pytest.mark.parametrize("old, new, needle", [
    ("Dataflow : ws", "Dataflow : xs", r"t.cfg:\d+: Dataflow must be ws, os or is, got 'xs'"),
    ("ArrayHeight:    8", "ArrayHeight:    eight", r"t.cfg:\d+: ArrayHeight = 'eight' is not"),
    ("ArrayWidth:     8", "ArrayWidth:     0", r"t.cfg:\d+: ArrayWidth = 0 must be >= 1"),
    ("ArrayHeight:    8\n", "", r"t.cfg: \[architecture_presets\] lacks ArrayHeight"),
    ("[general]", "general]", r"t.cfg: cannot parse"),
    ("Bandwidth : 10", "Bandwidth : fast", r"t.cfg:\d+: Bandwidth = 'fast' is not a number"),
])
def test_bad_cfg_one_line_errors(tmp_path: Path, old: str, new: str, needle: str) -> None:
    p = _cfg(tmp_path)
    p.write_text(p.read_text().replace(old, new))
    with pytest.raises(AccelConfigError, match=needle) as e:
        read_cfg(p)
    assert "\n" not in str(e.value)


def test_compat_refuses_user_bandwidth_mode(tmp_path: Path) -> None:
    p = _cfg(tmp_path, bandwidth_mode="USER")
    t = tmp_path / "t.csv"
    write_topology([TopoLayer("a", 8, 8, 3, 3, 4, 4, 1)], t)
    with pytest.raises(AccelConfigError, match="CALC only"):
        simulate_topology(t, p, compat=True)
    assert simulate_topology(t, p, compat=False).layers[0].total_cycles > 0


@pytest.mark.parametrize("compat", [True, False])
def test_report_has_the_same_keys_in_every_mode(tmp_path: Path, compat: bool) -> None:
    t = tmp_path / "t.csv"
    layers = [TopoLayer("a", 16, 16, 3, 3, 8, 20, 1), TopoLayer("b", 9, 9, 1, 1, 20, 7, 2)]
    write_topology(layers, t)
    rep = simulate_topology(t, _cfg(tmp_path), compat=compat)
    doc = rep.to_json()
    assert [x["name"] for x in doc["layers"]] == ["a", "b"]
    for x in doc["layers"]:
        assert set(LAYER_KEYS) <= set(x)
        assert x["total_cycles"] == x["compute_cycles"] + x["stall_cycles"]
    assert set(TOTAL_KEYS) <= set(doc["total"])
    assert doc["total"]["macs"] == sum(lyr.macs for lyr in layers)
    assert doc["mode"] == ("scalesim-compat" if compat else "topology")


def test_lwc_preset_as_accelerator(tmp_path: Path) -> None:
    t = tmp_path / "t.csv"
    write_topology([TopoLayer("a", 16, 16, 3, 3, 8, 20, 1)], t)
    rep = simulate_topology(t, "edge-16x16", compat=True)
    assert rep.layers[0].total_cycles == compat_layer("a", 196, 20, 72, 16, 16, "ws").compute_cycles
    with pytest.raises(LwcError, match="VPU"):
        simulate_topology(t, "myriad-x-like")


shapes = dict(m=st.integers(1, 400), n=st.integers(1, 400), k=st.integers(1, 400),
              rows=st.integers(1, 48), cols=st.integers(1, 48),
              df=st.sampled_from(["ws", "os", "is"]))


@given(**shapes)
def test_own_model_bounds(m: int, n: int, k: int, rows: int, cols: int, df: str) -> None:
    """lwc's model never beats the peak rate and never costs more than SCALE-Sim's (it only
    removes the -1's opposite, ragged-fold padding and unhidden stationary loads)."""
    own, eff = own_layer_cycles(m, n, k, rows, cols, df)
    assert own >= math.ceil(m * n * k / (rows * cols))
    assert own <= compat_layer("x", m, n, k, rows, cols, df).compute_cycles + 1
    assert 0 < eff <= 1
    assert eff == pytest.approx(compat_layer("x", m, n, k, rows, cols, df).mapping_efficiency)


@given(fr=st.integers(1, 6), fc=st.integers(1, 6), t=st.integers(1, 300), rows=st.integers(1, 32),
       cols=st.integers(1, 32), df=st.sampled_from(["ws", "os", "is"]))
def test_own_model_full_folds_differ_by_the_documented_terms(fr: int, fc: int, t: int, rows: int,
                                                             cols: int, df: str) -> None:
    """With full folds, the difference to SCALE-Sim is exactly: no -1, and (ws/is) the stationary
    loads of all folds but the first hidden behind the previous fold (when that fold is long
    enough: T + C - 2 >= 0 always holds, so the load of R rows hides if T + R + C - 2 >= R)."""
    sr, sc = fr * rows, fc * cols
    m, n, k = {"os": (sr, sc, t), "ws": (t, sc, sr), "is": (sc, t, sr)}[df]
    assert spatio_temporal(m, n, k, df) == (sr, sc, t)
    scalesim = compat_layer("x", m, n, k, rows, cols, df).compute_cycles
    own, _ = own_layer_cycles(m, n, k, rows, cols, df)
    hidden = 0 if df == "os" else (fr * fc - 1) * rows
    assert own == scalesim + 1 - hidden


def test_own_mode_stalls_when_dram_is_slow(tmp_path: Path) -> None:
    t = tmp_path / "t.csv"
    write_topology([TopoLayer("big", 64, 64, 1, 1, 256, 256, 1)], t)
    fast = simulate_topology(t, _cfg(tmp_path, bandwidth=1000.0)).layers[0]
    slow = simulate_topology(t, _cfg(tmp_path, bandwidth=1.0)).layers[0]
    assert fast.stall_cycles == 0 and slow.stall_cycles > 0
    assert slow.compute_cycles == fast.compute_cycles
    assert slow.total_cycles >= slow.dram_reads + slow.dram_writes


def test_lwc_sim_topology_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from lwc.cli import main

    t = tmp_path / "t.csv"
    write_topology([TopoLayer("a", 16, 16, 3, 3, 8, 20, 1)], t)
    cfg = _cfg(tmp_path, dataflow="os")
    assert main(["sim", "--topology", str(t), "--accel", str(cfg), "--scalesim-compat",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["layers"][0]["total_cycles"] == compat_layer("a", 196, 20, 72, 8, 8,
                                                            "os").compute_cycles
    cfg.write_text(cfg.read_text().replace("Dataflow : os", "Dataflow : zz"))
    assert main(["sim", "--topology", str(t), "--accel", str(cfg), "--scalesim-compat"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lwc: error: ") and "t.cfg:" in err and err.count("\n") == 1


@pytest.mark.parametrize("df, refetch", [("ws", 8), ("os", 8), ("is", 1)])
def test_own_mode_refetches_the_streamed_ifmap_only_when_it_does_not_fit(
        tmp_path: Path, df: str, refetch: int) -> None:
    """1x1 conv, 32x32x64 -> 64 on 8x8: ifmap 65,536 words, weights 4,096; N = 64 is 8 column
    folds for ws and os, which stream the ifmap once per column fold; is keeps it stationary."""
    t = tmp_path / "t.csv"
    write_topology([TopoLayer("pw", 32, 32, 1, 1, 64, 64, 1)], t)
    big = simulate_topology(t, _cfg(tmp_path, dataflow=df, ifmap_kb=256)).layers[0]
    small = simulate_topology(t, _cfg(tmp_path, dataflow=df, ifmap_kb=64)).layers[0]
    assert big.dram_reads == 65536 + 4096
    assert small.dram_reads == refetch * 65536 + 4096
    assert big.dram_writes == small.dram_writes == 32 * 32 * 64


def _conv_graph(n: int, cin: int, cout: int, hw: tuple[int, int], k: tuple[int, int],
                attrs: dict[str, object]) -> Any:
    from lwc.ir import DType, Graph, TensorType

    g = Graph("one_conv")
    x = g.add_input("x", TensorType(DType.F32, (n, cin, *hw)))
    grp = int(attrs.get("group", 1))  # type: ignore[call-overload]
    w = g.add_constant(np.zeros((cout, cin // grp, *k), np.float32), "w")
    g.outputs = [g.add_node("conv", [x, w], attrs, name="c,DP/1").output]
    g.verify()
    return g


@given(cin=st.integers(1, 6), cout=st.integers(1, 6), h=st.integers(3, 20), w=st.integers(3, 20),
       k=st.integers(1, 3), s=st.integers(1, 3), pads=st.lists(st.integers(0, 2), min_size=4,
                                                                max_size=4),
       dw=st.booleans())
def test_graph_to_topology_preserves_output_size_and_macs(cin: int, cout: int, h: int, w: int,
                                                          k: int, s: int, pads: list[int],
                                                          dw: bool) -> None:
    from lwc.cost import node_cost

    cout = cin if dw else cout
    attrs = {"strides": (s, s), "pads": tuple(pads), "group": cin if dw else 1}
    g = _conv_graph(1, cin, cout, (h, w), (k, k), attrs)
    (lyr,) = graph_to_topology(g).convs
    _, _, oh, ow = g.nodes[0].outputs[0].type.concrete_shape()
    assert (lyr.ofmap_h, lyr.ofmap_w) == (oh, ow)  # SCALE-Sim's ceil rule on the folded size
    is_dw = dw and cin > 1  # one channel, group 1: an ordinary conv
    assert "," not in lyr.name and lyr.name.count("DP") == (1 if is_dw else 0)
    per_layer = [lyr] if not is_dw else [TopoLayer(lyr.name, lyr.ifmap_h, lyr.ifmap_w, k, k, 1, 1, s)
                                      ] * cin
    assert sum(x.macs for x in per_layer) == node_cost(g.nodes[0]).macs


@pytest.mark.parametrize("n, cin, cout, attrs, needle", [
    (2, 4, 4, {}, "no batch"),
    (1, 4, 6, {"group": 2}, "grouped conv"),
    (1, 4, 4, {"dilations": (2, 2)}, "no dilation"),
    (1, 4, 4, {"strides": (1, 2)}, "one stride"),
])
def test_graph_to_topology_refuses_what_scalesim_cannot_express(n: int, cin: int, cout: int,
                                                                attrs: dict[str, object],
                                                                needle: str) -> None:
    g = _conv_graph(n, cin, cout, (9, 9), (3, 3), attrs)
    with pytest.raises(LwcError, match=needle) as e:
        graph_to_topology(g)
    assert "c,DP/1" in str(e.value)
