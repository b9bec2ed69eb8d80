"""Block recognisers: all 17 inverted residuals of torchvision's mobilenet_v2 export (the first
without an expand conv, 10 with a residual), before and after fold-bn/fuse; MobileNet v1 and
Xception separable pairs (never across a standalone nonlinearity); GoogLeNet's Inception modules;
and the ``label-blocks`` records in ``lwc opt --json``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pass_helpers import f32, rand

import lwc
import lwc.zoo
from lwc.ir import Graph
from lwc.pass_manager import run_pipeline
from lwc.passes.conv.blocks import find_blocks

MOBILENET_V2 = Path(__file__).resolve().parents[4] / "shared" / "models" / "mobilenet_v2.onnx"


def kinds(g: Graph) -> Counter:
    return Counter(b.kind for b in find_blocks(g))


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("source", ["onnx", "zoo"])
def test_mobilenet_v2_has_17_inverted_residuals(source: str, fused: bool) -> None:
    g = lwc.load(str(MOBILENET_V2)) if source == "onnx" else lwc.zoo.build("mobilenet_v2")
    if fused:
        run_pipeline(g, "O3")
    blocks = [b for b in find_blocks(g) if b.kind == "inverted_residual"]
    assert len(blocks) == 17
    assert [b.info["expand"] for b in blocks] == [False] + [True] * 16
    assert sum(b.info["residual"] for b in blocks) == 10
    first = blocks[0]
    assert first.nodes[0].op == "conv" and first.nodes[0].attrs["group"] > 1  # starts at the dw
    # blocks chain: each one's output feeds the next one's input
    for a, b in zip(blocks, blocks[1:]):
        assert b.input is a.output


def test_mobilenet_v1_pairs_only_once_the_activation_is_fused() -> None:
    g = lwc.zoo.build("mobilenet_v1")
    assert kinds(g)["depthwise_separable"] == 0  # dw -> bn -> relu -> pw: a standalone ReLU
    run_pipeline(g, "O3")
    pairs = [b for b in find_blocks(g) if b.kind == "depthwise_separable"]
    assert len(pairs) == 13 and all(b.info["act"] == "relu" for b in pairs)
    assert kinds(g)["inverted_residual"] == 0  # the pointwise conv is followed by a ReLU


def test_xception_separable_convs() -> None:
    """Xception's separable convs have no nonlinearity between depthwise and pointwise."""
    g = lwc.zoo.build("xception", resolution=71)
    pairs = [b for b in find_blocks(g) if b.kind == "depthwise_separable"]
    assert len(pairs) == 34 and all(b.info["act"] == "" for b in pairs)


def test_inception_modules() -> None:
    g = lwc.zoo.build("inception", resolution=64)
    mods = [b for b in find_blocks(g) if b.kind == "inception"]
    assert len(mods) == 9 and all(b.info["branches"] == 4 for b in mods)
    assert all(sum(n.op == "conv" for n in b.nodes) == 6 for b in mods)


def test_no_blocks_in_plain_networks() -> None:
    assert not find_blocks(lwc.zoo.build("resnet18", resolution=32))


def _dw_pw(middle: str) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("dwpw")
    x = g.add_input("x", f32(1, 4, 6, 6))
    y = g.add_node("conv", [x, g.add_constant(rand(rng, 4, 1, 3, 3), "dw")],
                   {"group": 4, "pads": (1, 1, 1, 1)}).output
    y = g.add_node(middle, [y]).output
    g.outputs = [g.add_node("conv", [y, g.add_constant(rand(rng, 8, 4, 1, 1), "pw")]).output]
    return g


def test_separable_pair_stops_at_standalone_activation() -> None:
    """dw -> relu -> linear pw is an inverted residual without expand, not a fusable pair."""
    assert kinds(_dw_pw("relu")) == Counter({"inverted_residual": 1})
    assert kinds(_dw_pw("identity")) == Counter({"depthwise_separable": 1})


def test_label_blocks_records_in_opt_json(tmp_path: Path) -> None:
    from lwc.cli import main

    g = lwc.zoo.build("mobilenet_v2", resolution=64)
    path = tmp_path / "m.lwc"
    lwc.save(g, str(path))
    out = tmp_path / "out.json"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["opt", str(path), "-O0", "-p", "label-blocks", "--json"])
    assert code == 0
    out.write_text(buf.getvalue())
    records = json.loads(out.read_text())["records"]
    blocks = [r for r in records if r["pass"] == "label-blocks"]
    assert Counter(r["block"] for r in blocks)["inverted_residual"] == 17
