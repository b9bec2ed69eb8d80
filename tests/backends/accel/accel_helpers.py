"""Shared pieces of the accelerator tests: the shared models quantised once per session, and a
generator of small random int8 models (every layer kind, ragged shapes) built directly as QModels."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from lwc.backends.accel import quantize_model
from lwc.backends.accel.qmodel import (QAdd, QConcat, QConv, QModel, QPool, QTensor, out_hw,
                                       run_reference)
from lwc.model_io import load_model

REPO = Path(__file__).resolve().parents[3]
SHARED = REPO.parent / "shared"
MODELS = ("digits_lenet5", "squeezenet1_1", "resnet18", "mobilenet_v2")


def model_path(name: str) -> Path:
    p = SHARED / "models" / f"{name}.onnx"
    assert p.is_file(), f"shared model {p} is missing (tests read ../shared)"
    return p


@functools.lru_cache(maxsize=None)
def shared_input(name: str) -> np.ndarray:
    """The first sample of the model's stored input (batch 1)."""
    with np.load(SHARED / "models" / f"{name}.io.npz", allow_pickle=False) as z:
        return z["input"][:1].copy()


@functools.lru_cache(maxsize=None)
def shared_graph(name: str):
    return load_model(str(model_path(name)))


@functools.lru_cache(maxsize=None)
def shared_qmodel(name: str) -> QModel:
    """Quantised with the stored input as the calibration set."""
    g = shared_graph(name)
    return quantize_model(g, [{g.inputs[0].name: shared_input(name)}])


@functools.lru_cache(maxsize=None)
def shared_reference(name: str) -> dict[str, np.ndarray]:
    qm = shared_qmodel(name)
    return run_reference(qm, qm.quantize_input(shared_input(name)))


def _params(rng: np.random.Generator, o: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bias = rng.integers(-3000, 3000, o).astype(np.int32)
    mult = rng.integers(1 << 14, 1 << 15, o).astype(np.int32)
    shift = rng.integers(12, 20, o).astype(np.int32)
    return bias, mult, shift


def random_qmodel(seed: int, c: int, h: int, w: int, o: int, k: int, stride: int, pad: int,
                  dil: int, dw_k: int) -> QModel:
    """x -> conv -> depthwise conv (same size) -> add(conv, dw) -> max/avg pool -> concat with
    an avg pool -> global avg pool -> gemm. Every intermediate is also an output."""
    rng = np.random.default_rng(seed)
    t: dict[str, QTensor] = {}
    layers: list = []

    def tensor(name: str, shape: tuple[int, int, int, int]) -> str:
        t[name] = QTensor(name, shape, float(rng.uniform(0.01, 0.1)))
        return name

    tensor("x", (1, c, h, w))
    pads = (pad, pad, pad, pad)
    oh, ow = out_hw(h, w, k, k, (stride, stride), pads, (dil, dil))
    tensor("c1", (1, o, oh, ow))
    wt = rng.integers(-127, 128, (o, c, k, k)).astype(np.int8)
    layers.append(QConv("conv", "x", "c1", wt, *_params(rng, o), (stride, stride), pads,
                        (dil, dil), 1, 0, 127))
    tensor("dw", (1, o, oh, ow))
    p = dw_k // 2
    wd = rng.integers(-127, 128, (o, 1, dw_k, dw_k)).astype(np.int8)
    layers.append(QConv("dwconv", "c1", "dw", wd, *_params(rng, o), (1, 1), (p, p, p, p), (1, 1),
                        o, -128, 127, "depthwise"))
    tensor("sum", (1, o, oh, ow))
    layers.append(QAdd("add", "c1", "dw", "sum", int(rng.integers(1 << 13, 1 << 15)),
                       int(rng.integers(1 << 13, 1 << 15)), 15, -128, 127))
    ph, pw = out_hw(oh, ow, 2, 2, (2, 2), (0, 0, 1, 1), (1, 1))
    tensor("mp", (1, o, ph, pw))
    layers.append(QPool("maxpool", "sum", "mp", "max", (2, 2), (2, 2), (0, 0, 1, 1)))
    tensor("ap", (1, o, ph, pw))
    layers.append(QPool("avgpool", "sum", "ap", "avg", (2, 2), (2, 2), (0, 0, 1, 1),
                        int(rng.integers(1 << 14, 1 << 15)), 17))
    tensor("cat", (1, 2 * o, ph, pw))
    layers.append(QConcat("concat", ["mp", "ap"], "cat",
                          [int(rng.integers(1 << 14, 1 << 15)) for _ in range(2)], [15, 16]))
    tensor("gap", (1, 2 * o, 1, 1))
    layers.append(QPool("gap", "cat", "gap", "gavg", (ph, pw), mult=int(rng.integers(1 << 14,
                                                                                    1 << 15)),
                        shift=int(14 + np.ceil(np.log2(ph * pw)))))
    nout = int(rng.integers(1, 12))
    tensor("fc", (1, nout, 1, 1))
    wf = rng.integers(-127, 128, (nout, 2 * o, 1, 1)).astype(np.int8)
    layers.append(QConv("fc", "gap", "fc", wf, *_params(rng, nout), kind="gemm"))
    return QModel(t, layers, "x", [n for n in t if n != "x"])


@functools.lru_cache(maxsize=None)
def shared_program(name: str, accel: str):
    """The shared model compiled for a preset (cached: several timing tests reuse it)."""
    from lwc.backends.accel import compile_accel

    return compile_accel(shared_qmodel(name), accel)


def assert_one_line_error(r, *fragments: str) -> str:
    """Exit 2 and exactly one ``lwc: error:`` line on stderr holding every fragment."""
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.err + r.out
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lwc: error: "), r.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]
