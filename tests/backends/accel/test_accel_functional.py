"""Bit-exactness: programs run on the functional simulator give exactly the int8 reference
semantics (``qmodel.run_reference``) on every shared model and preset, and on random small
models with ragged tiles on random small arrays; the int8 model itself tracks the float
interpreter within a stated error."""

from __future__ import annotations

import numpy as np
import pytest
from accel_helpers import (MODELS, random_qmodel, shared_graph, shared_input, shared_qmodel,
                           shared_reference)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lwc.backends.accel import compile_accel, simulate
from lwc.backends.accel.config import AccelConfig, ArrayConfig, BufferConfig, VpuConfig
from lwc.backends.accel.functional import run_functional
from lwc.backends.accel.layout import buffer_plan
from lwc.backends.accel.lower import LoweringError, lower
from lwc.backends.accel.qmodel import run_reference
from lwc.interp import interpret

PRESETS = ("tpu-v1", "edge-16x16", "myriad-x-like", "myriad-2-like")


@pytest.mark.parametrize("accel", PRESETS)
@pytest.mark.parametrize("name", MODELS)
def test_shared_model_bit_exact(name: str, accel: str) -> None:
    qm = shared_qmodel(name)
    prog = compile_accel(qm, accel)
    rep = simulate(prog, accel, inputs=shared_input(name))
    ref = shared_reference(name)
    assert rep.outputs and set(rep.outputs) == set(qm.outputs)
    for out, got in rep.outputs.items():
        assert got.dtype == np.int8 and got.shape == ref[out].shape
        np.testing.assert_array_equal(got, ref[out], err_msg=f"{name} on {accel}: {out}")
    if accel == "tpu-v1":  # the tiles really are ragged: some GEMM tile is narrower than 256
        assert any(i.op == "matmul" and i.field("n") < 256 for i in prog.instrs)


# relative L2 error of the dequantised int8 output vs the float interpreter (measured: lenet
# 0.009, squeezenet 0.014, resnet18 0.044, mobilenet_v2 0.24: per-tensor max calibration on one
# sample is coarse for MobileNetV2's depthwise layers)
FLOAT_ERROR_BOUND = {"digits_lenet5": 0.03, "squeezenet1_1": 0.05, "resnet18": 0.1,
                     "mobilenet_v2": 0.35}


@pytest.mark.parametrize("name", MODELS)
def test_int8_model_tracks_float_interpreter(name: str) -> None:
    g, qm = shared_graph(name), shared_qmodel(name)
    x = shared_input(name)
    ref = shared_reference(name)
    fl = next(iter(interpret(g, {g.inputs[0].name: x}).values()))
    deq = qm.dequantize(qm.outputs[0], ref[qm.outputs[0]]).reshape(fl.shape)
    err = np.linalg.norm(deq - fl) / np.linalg.norm(fl)
    assert err < FLOAT_ERROR_BOUND[name], err


def _systolic(rows: int, cols: int, df: str, act: int, wgt: int, acc: int, dw: str) -> AccelConfig:
    return AccelConfig(name="t", array=ArrayConfig(rows, cols, df),
                       buffers=BufferConfig(act, wgt, acc), depthwise=dw)


def _vpu(cores: int, lanes: int, block: int) -> AccelConfig:
    return AccelConfig(name="v", kind="vpu", depthwise="vector",
                       vpu=VpuConfig(cores=cores, lanes=lanes, scratchpad=cores * 40_000,
                                     mac_block=block))


accels = st.one_of(
    st.builds(_systolic, st.integers(1, 20), st.integers(1, 9), st.sampled_from(["ws", "os", "is"]),
              st.sampled_from([2048, 4096, 16384]), st.sampled_from([512, 1024, 8192]),
              st.sampled_from([1024, 4096, 16384]), st.sampled_from(["array", "vector"])),
    st.builds(_vpu, st.integers(1, 6), st.sampled_from([4, 16]), st.sampled_from([0, 64])))


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=accels, seed=st.integers(0, 2**16), c=st.integers(1, 9), h=st.integers(3, 13),
       w=st.integers(3, 13), o=st.integers(1, 20), k=st.sampled_from([1, 2, 3, 5]),
       stride=st.integers(1, 3), pad=st.integers(0, 2), dil=st.integers(1, 2),
       dw_k=st.sampled_from([1, 3, 5]))
def test_random_models_bit_exact(cfg, seed, c, h, w, o, k, stride, pad, dil, dw_k) -> None:
    if (k - 1) * dil + 1 > min(h, w) + 2 * pad:
        k, dil = 1, 1
    qm = random_qmodel(seed, c, h, w, o, k, stride, pad, dil, dw_k)
    try:
        prog = lower(qm, cfg)
    except LoweringError as e:  # only legitimate when one row of a tile cannot fit at all
        assert buffer_plan(cfg).in_half < 4 * 9 * 20, e
        return
    xq = np.random.default_rng(seed).integers(-128, 128, qm.tensors["x"].shape, dtype=np.int8)
    ref = run_reference(qm, xq)
    got = run_functional(prog, cfg, xq)
    for name in qm.outputs:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


def test_output_tiles_smaller_than_array_are_exact() -> None:
    """A 3-channel conv on a 16x16 array: every tile uses 3 of 16 columns."""
    qm = random_qmodel(7, 2, 9, 7, 3, 3, 1, 1, 1, 3)
    cfg = _systolic(16, 16, "ws", 4096, 1024, 4096, "array")
    prog = lower(qm, cfg)
    assert all(i.field("n") < 16 for i in prog.instrs if i.op == "matmul")
    xq = np.random.default_rng(1).integers(-128, 128, qm.tensors["x"].shape, dtype=np.int8)
    ref = run_reference(qm, xq)
    got = run_functional(prog, cfg, xq)
    for name in qm.outputs:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 1, 0, 0), (0, 0, 1, 1)])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_vpu_pool_split_into_pixel_boxes_is_exact(mode: str, pads: tuple[int, ...]) -> None:
    """A 1-channel pool with 3 output rows on 4 cores: no channel x row grid is balanced, so
    each core pools a run of output pixels (boxes with their own top/left padding)."""
    from lwc.backends.accel.qmodel import QModel, QPool, QTensor, out_hw

    oh, ow = out_hw(6, 7, 2, 2, (2, 2), pads, (1, 1))
    t = {"x": QTensor("x", (1, 1, 6, 7), 0.05), "y": QTensor("y", (1, 1, oh, ow), 0.05)}
    qm = QModel(t, [QPool("pool", "x", "y", mode, (2, 2), (2, 2), pads, 1 << 14, 16)], "x", ["y"])
    cfg = _vpu(4, 4, 0)
    prog = lower(qm, cfg)
    cfgs = [i for i in prog.instrs if i.op == "pcfg"]
    assert any(i.field("ow") < ow for i in cfgs) and len({i.core for i in cfgs}) == 4
    xq = np.random.default_rng(3).integers(-128, 128, (1, 1, 6, 7), dtype=np.int8)
    np.testing.assert_array_equal(run_functional(prog, cfg, xq)["y"], run_reference(qm, xq)["y"])


@pytest.mark.parametrize("cores, nout", [(4, 3), (6, 1), (5, 4)])
def test_vpu_gemm_split_over_k_is_exact(cores: int, nout: int) -> None:
    """A GEMM with fewer outputs than cores: each core sums a K slice into int32 partials, a
    barrier, then the owners of the outputs reduce, requantise and store them."""
    qm = random_qmodel(11, 3, 8, 8, 9, 3, 1, 1, 1, 3)
    fc = qm.layers[-1]
    rng = np.random.default_rng(cores)
    fc.w = rng.integers(-127, 128, (nout,) + fc.w.shape[1:]).astype(np.int8)
    fc.bias = rng.integers(-3000, 3000, nout).astype(np.int32)
    fc.mult = rng.integers(1 << 14, 1 << 15, nout).astype(np.int32)
    fc.shift = np.full(nout, 22, np.int32)  # outputs mostly inside int8, not clamped
    qm.tensors["fc"].shape = (1, nout, 1, 1)
    cfg = _vpu(cores, 4, 64)
    prog = lower(qm, cfg)
    last = len(qm.layers) - 1
    ops = [i.op for i in prog.instrs if i.layer == last]
    assert ops.count("storeacc") == cores and ops.count("vsum") == nout
    assert ops.count("sync") == 2 * cores  # layer start and the barrier before the reduction
    xq = np.random.default_rng(5).integers(-128, 128, qm.tensors["x"].shape, dtype=np.int8)
    got, ref = run_functional(prog, cfg, xq), run_reference(qm, xq)
    assert ((ref["fc"] > -128) & (ref["fc"] < 127)).mean() >= 0.5  # sums are not saturated
    for name in qm.outputs:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
