"""lwc's --scalesim-compat cycles against SCALE-Sim 3.0.0's own COMPUTE_REPORT 'Total Cycles'.

tests/data/scalesim/golden.csv holds what the real SCALE-Sim printed for the conv and GEMM layers of
mobilenet_v2 and resnet18 on 8x8 and 32x32 arrays with ws, os and is (regenerate with
tests/data/scalesim/regen.py; the layers and the command are in its docstring and README.md)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwc.backends.accel.scalesim_compat import (ScaleSimConfig, TopoLayer, compat_layer,
                                                graph_to_topology, read_topology,
                                                simulate_topology, write_gemm_topology,
                                                write_topology)
from lwc.backends.accel.timing import array_cycles
from lwc.model_io import load_model

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "scalesim"
MODELS = REPO.parent / "shared" / "models"
def _golden() -> list[dict[str, str]]:
    with open(DATA / "golden.csv", newline="") as f:
        return list(csv.DictReader(f))


def _layer(row: dict[str, str]) -> TopoLayer:
    return TopoLayer(row["layer"], *(int(row[k]) for k in (
        "ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filters", "stride")))


def _groups() -> dict[tuple[str, int, str], list[dict[str, str]]]:
    groups: dict[tuple[str, int, str], list[dict[str, str]]] = defaultdict(list)
    for row in _golden():
        groups[(row["model"], int(row["array"]), row["dataflow"])].append(row)
    return groups


@pytest.mark.parametrize("group", sorted(_groups()), ids=lambda g: f"{g[0]}-{g[1]}x{g[1]}-{g[2]}")
def test_compat_cycles_equal_scalesim(tmp_path: Path, group: tuple[str, int, str]) -> None:
    """Through the user-facing path: topology CSV + .cfg files -> simulate_topology(compat)."""
    model, arr, df = group
    rows = _groups()[group]
    cfg = tmp_path / "run.cfg"
    cfg.write_text(ScaleSimConfig("golden", arr, arr, df, 256, 256, 128, 10).cfg_text())
    convs = [r for r in rows if r["kind"] == "conv"]
    gemms = [r for r in rows if r["kind"] == "gemm"]
    got: dict[str, int] = {}
    if convs:
        write_topology([_layer(r) for r in convs], tmp_path / "conv.csv")
        rep = simulate_topology(tmp_path / "conv.csv", cfg, gemm=False, compat=True)
        got.update({x.name: x.total_cycles for x in rep.layers})
    if gemms:
        write_gemm_topology([(r["layer"], int(r["ifmap_h"]), int(r["num_filters"]),
                              int(r["filt_w"])) for r in gemms], tmp_path / "gemm.csv")
        rep = simulate_topology(tmp_path / "gemm.csv", cfg, gemm=True, compat=True)
        got.update({x.name: x.total_cycles for x in rep.layers})
    want = {r["layer"]: int(r["total_cycles"]) for r in rows}
    assert got == want


def test_golden_covers_every_layer_of_both_models() -> None:
    """Every distinct conv/GEMM layer of both models, on both arrays, with all three dataflows,
    is in golden.csv (252 SCALE-Sim runs, the longest 2.6M cycles)."""
    have = {(r["model"], int(r["array"]), r["dataflow"], _layer(r).mnk,
             (r["ifmap_h"], r["filt_h"], r["stride"])) for r in _golden()}
    missing, covered = [], 0
    for model in ("mobilenet_v2", "resnet18"):
        topo = graph_to_topology(load_model(str(MODELS / f"{model}.onnx")))
        layers = [TopoLayer(x.name, x.ifmap_h, x.ifmap_w, x.filt_h, x.filt_w,
                            1 if "DP" in x.name else x.channels, x.num_filters, x.stride)
                  for x in topo.convs]
        layers += [TopoLayer(n, m, k, 1, k, 1, nn, 1) for n, m, nn, k in topo.gemms]
        for x in layers:
            for arr in (8, 32):
                for df in ("ws", "os", "is"):
                    key = (model, arr, df, x.mnk, (str(x.ifmap_h), str(x.filt_h), str(x.stride)))
                    if key in have:
                        covered += 1
                    else:
                        missing.append(key)
    assert not missing
    assert covered >= 252


def test_depthwise_dp_rows_expand_like_scalesim(tmp_path: Path) -> None:
    """A ``DP`` row becomes C one-channel layers, each with the golden one-channel cycles."""
    dw = next(r for r in _golden() if r["layer"].endswith("_dw1ch"))
    lyr = _layer(dw)
    topo = tmp_path / "dw.csv"
    write_topology([TopoLayer("blockDP", lyr.ifmap_h, lyr.ifmap_w, lyr.filt_h, lyr.filt_w, 24,
                              1, lyr.stride)], topo)
    arr = int(dw["array"])
    cfg = tmp_path / "a.cfg"
    cfg.write_text(ScaleSimConfig("dw", arr, arr, dw["dataflow"], 64, 64, 32, 10).cfg_text())
    rep = simulate_topology(topo, cfg, compat=True)
    assert [x.name for x in rep.layers] == [f"blockDPChannel_{i}" for i in range(24)]
    assert {x.total_cycles for x in rep.layers} == {int(dw["total_cycles"])}
    assert len(read_topology(topo)) == 24


@pytest.mark.parametrize("model", ["mobilenet_v2", "resnet18"])
def test_graph_topology_keeps_shapes_and_macs(model: str) -> None:
    """SCALE-Sim's rounded-up output size of the emitted (padded) ifmap equals the IR's, and the
    layers' MACs (depthwise expanded per channel) equal the IR's conv and GEMM MACs."""
    from lwc.cost import node_cost

    g = load_model(str(MODELS / f"{model}.onnx"))
    topo = graph_to_topology(g)
    convs = [n for n in g.nodes if n.op == "conv"]
    assert len(topo.convs) == len(convs)
    for lyr, node in zip(topo.convs, convs):
        _, _, oh, ow = node.outputs[0].type.concrete_shape()
        assert (lyr.ofmap_h, lyr.ofmap_w) == (oh, ow)
    ir_macs = sum(node_cost(n).macs for n in g.nodes if n.op in ("conv", "gemm"))
    def one_channel(x: TopoLayer) -> TopoLayer:  # what SCALE-Sim runs per channel of a DP row
        return TopoLayer(x.name, x.ifmap_h, x.ifmap_w, x.filt_h, x.filt_w, 1, x.num_filters,
                         x.stride)

    topo_macs = sum(one_channel(x).macs * x.channels if "DP" in x.name else x.macs
                    for x in topo.convs)
    topo_macs += sum(m * n * k for _, m, n, k in topo.gemms)
    assert topo_macs == ir_macs


@given(m=st.integers(1, 300), n=st.integers(1, 300), k=st.integers(1, 300),
       rows=st.integers(1, 40), cols=st.integers(1, 40), df=st.sampled_from(["ws", "os", "is"]))
def test_compat_is_the_timing_models_fold_cost_minus_one(m: int, n: int, k: int, rows: int,
                                                         cols: int, df: str) -> None:
    """Two independent implementations (this module and timing.py's per-fold cost) agree."""
    assert compat_layer("x", m, n, k, rows, cols, df).compute_cycles == \
        array_cycles(m, k, n, rows, cols, df)[0] - 1
