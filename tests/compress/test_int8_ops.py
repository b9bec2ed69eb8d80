"""int8 IR ops, calibration and the quantize-int8 pass.

The qlinear kernels are checked two ways: bit-exactly against the integer semantics of
lwc/ops/qlinear.py computed here independently (naive int64 loops, then the stated float32
requantisation), and within 1 LSB against float arithmetic on the dequantised operands.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwc.errors import InputError, PassError, VerifyError
from lwc.interp import interpret, random_inputs
from lwc.ir import DType, Graph, TensorType
from lwc.ops.registry import get_op
from lwc.pass_manager import PassManager
from lwc.passes.compress.calibrate import (TensorStats, activation_qparams, calibrate,
                                           collect_stats, entropy_threshold,
                                           percentile_threshold, quantize_weight, tensor_range)
from lwc.passes.compress.quantize import quantize_graph

I8 = np.int8


def naive_conv_acc(x: np.ndarray, xz: int, w: np.ndarray, wz: np.ndarray, bias: np.ndarray,
                   stride: int, pad: int, group: int) -> np.ndarray:
    """int64 accumulators by explicit loops over output channels and taps (2-D only)."""
    n, c, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    xp = np.full((n, c, h + 2 * pad, wd + 2 * pad), xz, np.int64)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    og = cout // group
    acc = np.zeros((n, cout, ho, wo), np.int64)
    for o in range(cout):
        g = o // og
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i:i + stride * ho:stride,
                           j:j + stride * wo:stride]
                wt = (w[o, :, i, j].astype(np.int64) - int(wz[o]))
                acc[:, o] += np.einsum("nchw,c->nhw", patch - xz, wt)
        acc[:, o] += bias[o]
    return acc


def spec_requant(acc: np.ndarray, m: np.ndarray, zp: int, lo: int, hi: int) -> np.ndarray:
    v = np.rint(acc.astype(np.float32) * m.astype(np.float32))
    return np.clip(v.astype(np.int64) + zp, lo, hi)


def _const_graph(op: str, x_type: TensorType, consts: list[np.ndarray], attrs: dict[str, Any],
                 x_slot: int = 0) -> Graph:
    g = Graph(op)
    x = g.add_input("x", x_type)
    vals = [g.add_constant(c, f"c{i}") for i, c in enumerate(consts)]
    vals.insert(x_slot, x)
    node = g.add_node(op, vals, attrs, name=op)
    g.outputs = [node.output]
    g.verify()
    return g


@st.composite
def qconv_cases(draw: st.DrawFn) -> dict[str, Any]:
    group = draw(st.sampled_from([1, 2, 3]))
    depthwise = draw(st.booleans())
    cg = 1 if depthwise else draw(st.integers(1, 3))
    c = cg * group
    cout = group * (draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 3)))
    k = draw(st.sampled_from([1, 2, 3]))
    pad = draw(st.integers(0, k - 1))
    h = draw(st.integers(k, 7))
    return {"n": draw(st.integers(1, 2)), "c": c, "cout": cout, "cg": cg, "k": k, "h": h,
            "w": draw(st.integers(k, 7)), "stride": draw(st.integers(1, 2)), "pad": pad,
            "group": group, "act": draw(st.sampled_from(["", "relu", "relu6", "clip"])),
            "xdt": draw(st.sampled_from([np.int8, np.uint8])), "seed": draw(st.integers(0, 99))}


@given(qconv_cases())
def test_qlinear_conv_is_bit_exact_to_its_integer_semantics(p: dict[str, Any]) -> None:
    rng = np.random.default_rng(p["seed"])
    info = np.iinfo(p["xdt"])
    x = rng.integers(info.min, info.max + 1, (p["n"], p["c"], p["h"], p["w"])).astype(p["xdt"])
    w = rng.integers(-127, 128, (p["cout"], p["cg"], p["k"], p["k"])).astype(I8)
    xs, xz = np.float32(rng.uniform(0.01, 0.1)), p["xdt"](rng.integers(info.min, info.max))
    ws = rng.uniform(0.001, 0.02, p["cout"]).astype(np.float32)
    wz = np.zeros(p["cout"], I8)
    ys, yz = np.float32(rng.uniform(0.05, 0.5)), I8(rng.integers(-20, 20))
    bias = rng.integers(-3000, 3000, p["cout"]).astype(np.int32)
    attrs = {"strides": (p["stride"],) * 2, "pads": (p["pad"],) * 4, "group": p["group"],
             "act": p["act"], "clip_min": -1.0, "clip_max": 2.0}
    consts = [np.asarray(xs), np.asarray(xz), w, ws, wz, np.asarray(ys), np.asarray(yz), bias]
    g = _const_graph("qlinear_conv", TensorType.of(x), consts, attrs)
    got = interpret(g, {"x": x})[g.outputs[0].name]

    acc = naive_conv_acc(x, int(xz), w, wz, bias, p["stride"], p["pad"], p["group"])
    m = ((xs * ws) / ys).astype(np.float32).reshape(1, -1, 1, 1)
    lo, hi = -128, 127
    q = lambda r: int(np.clip(int(yz) + int(np.rint(np.float32(r) / ys)), -128, 127))  # noqa: E731
    if p["act"] in ("relu", "relu6"):
        lo = int(yz)
    if p["act"] == "relu6":
        hi = q(6.0)
    if p["act"] == "clip":
        lo, hi = q(-1.0), q(2.0)
    want = spec_requant(acc, m, int(yz), lo, hi)
    np.testing.assert_array_equal(got.astype(np.int64), want)

    # and within 1 LSB of float arithmetic on the real values (activation applied in float)
    real = (acc.astype(np.float64) * (np.float64(xs) * ws.astype(np.float64)).reshape(1, -1, 1, 1))
    act = {"": real, "relu": np.maximum(real, 0), "relu6": np.clip(real, 0, 6),
           "clip": np.clip(real, -1, 2)}[p["act"]]
    fq = np.clip(np.rint(act / ys) + int(yz), -128, 127)
    assert np.abs(got.astype(np.int64) - fq).max() <= 1


@given(st.integers(1, 5), st.integers(1, 40), st.integers(1, 9), st.booleans(), st.booleans(),
       st.integers(0, 99))
def test_qlinear_gemm_is_bit_exact(m: int, k: int, n: int, trans_b: bool, per_channel: bool,
                                   seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k)).astype(I8)
    wt = rng.integers(-127, 128, (n, k)).astype(I8)  # [N, K]
    b = wt if trans_b else np.ascontiguousarray(wt.T)
    ws = rng.uniform(0.001, 0.02, n if per_channel else 1).astype(np.float32)
    wz = np.zeros(len(ws), I8)
    bias = rng.integers(-3000, 3000, n).astype(np.int32)
    consts = [np.asarray(np.float32(0.03)), np.asarray(I8(-5)), b, ws, wz,
              np.asarray(np.float32(0.2)), np.asarray(I8(3)), bias]
    g = _const_graph("qlinear_gemm", TensorType.of(a), consts, {"trans_b": trans_b})
    got = interpret(g, {"x": a})[g.outputs[0].name]
    acc = (a.astype(np.int64) + 5) @ wt.astype(np.int64).T + bias
    mult = np.broadcast_to((np.float32(0.03) * ws) / np.float32(0.2), (n,)).astype(np.float32)
    np.testing.assert_array_equal(got, spec_requant(acc, mult.reshape(1, -1), 3, -128, 127))


def test_qlinear_add_within_one_lsb_of_float() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (3, 4, 5)).astype(I8)
    b = rng.integers(-128, 128, (4, 1)).astype(I8)
    consts = [np.asarray(np.float32(0.05)), np.asarray(I8(7)), b, np.asarray(np.float32(0.02)),
              np.asarray(I8(-3)), np.asarray(np.float32(0.06)), np.asarray(I8(1))]
    g = _const_graph("qlinear_add", TensorType.of(a), consts, {"act": "relu"})
    got = interpret(g, {"x": a})[g.outputs[0].name]
    real = np.maximum((a.astype(np.float64) - 7) * 0.05 + (b.astype(np.float64) + 3) * 0.02, 0)
    want = np.clip(np.rint(real / 0.06) + 1, -128, 127)
    assert got.shape == (3, 4, 5)
    assert np.abs(got.astype(np.int64) - want).max() <= 1


def test_fake_quant_equals_quantize_then_dequantize() -> None:
    x = np.linspace(-3, 5, 101, dtype=np.float32)
    fq = get_op("fake_quant").compute([x], {"scale": 0.03, "zero_point": -20, "dtype": "i8"})[0]
    q = get_op("quantize_linear").compute([x, np.float32(0.03), I8(-20)], {"axis": 1})[0]
    dq = get_op("dequantize_linear").compute([q, np.float32(0.03), I8(-20)], {"axis": 1})[0]
    np.testing.assert_array_equal(fq, dq)


def test_qlinear_ops_reject_bad_operands() -> None:
    g = Graph("bad")
    x = g.add_input("x", TensorType(DType.F32, (1, 2, 4, 4)))  # float input: not quantised
    c = [g.add_constant(np.asarray(v), f"c{i}") for i, v in enumerate(
        [np.float32(1), I8(0), np.ones((2, 2, 1, 1), I8), np.ones(2, np.float32), np.zeros(2, I8),
         np.float32(1), I8(0)])]
    with pytest.raises((VerifyError, ValueError), match="must be i8 or u8"):
        g.add_node("qlinear_conv", [x, *c])


# ---- calibration ---------------------------------------------------------------------------------
def _stats(values: np.ndarray) -> TensorStats:
    s = TensorStats(float(values.min()), float(values.max()))
    s.hist += np.histogram(np.abs(values), bins=len(s.hist), range=(0, s.amax))[0]
    return s


def test_percentile_and_entropy_clip_outliers_but_keep_the_bulk() -> None:
    rng = np.random.default_rng(0)
    v = np.abs(rng.standard_normal(100_000)).astype(np.float32)
    v[:3] = 50.0  # three far outliers
    s = _stats(v)
    assert tensor_range(s, "minmax") == (s.lo, 50.0)
    t_p = percentile_threshold(s, 99.99)
    t_e = entropy_threshold(s, 255)
    bulk = float(np.sort(v)[-10])  # the 10th largest: below the outliers
    assert 3.0 < t_p < 10 and 2.0 < t_e < 10, (t_p, t_e)
    assert bulk > 3.0
    lo, hi = tensor_range(s, "percentile")
    assert lo == s.lo and hi == pytest.approx(t_p)


def test_entropy_keeps_a_uniform_range() -> None:
    """No outliers: clipping only loses information, so T stays near the maximum."""
    v = np.random.default_rng(1).uniform(0, 4, 200_000).astype(np.float32)
    assert entropy_threshold(_stats(v), 255) > 0.9 * 4


def test_activation_qparams_represent_zero_and_cover_the_range() -> None:
    for lo, hi, dt in [(0.0, 6.0, np.int8), (-1.5, 3.0, np.int8), (0.2, 1.0, np.uint8),
                       (-4.0, -1.0, np.uint8), (0.0, 0.0, np.int8)]:
        scale, zp = activation_qparams(lo, hi, np.dtype(dt))
        info = np.iinfo(dt)
        assert info.min <= zp <= info.max and scale > 0
        assert (info.min - zp) * scale <= min(lo, 0) + scale / 2
        assert (info.max - zp) * scale >= max(hi, 0) - scale / 2


@given(st.integers(1, 6), st.integers(1, 20), st.integers(0, 99))
def test_quantize_weight_per_channel_error_is_half_a_step(cout: int, k: int, seed: int) -> None:
    w = np.random.default_rng(seed).standard_normal((cout, k)).astype(np.float32)
    w[0] = 0.0  # an all-zero channel must not divide by zero
    q, scale = quantize_weight(w, axis=0)
    assert q.dtype == np.int8 and np.abs(q.astype(int)).max() <= 127
    err = np.abs(q * scale[:, None] - w)
    assert (err <= scale[:, None] / 2 + 1e-6).all()
    q1, s1 = quantize_weight(w.T, axis=1)
    np.testing.assert_array_equal(q1, q.T)


def test_calibrate_minmax_sees_every_activation() -> None:
    g = _cnn()
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    ranges = calibrate(g, [x[:4], x[4:]], "minmax")
    full = {**interpret(g, {"x": x}, keep_all=True), "x": x}
    for name, (lo, hi) in ranges.items():
        assert lo == pytest.approx(float(full[name].min()))
        assert hi == pytest.approx(float(full[name].max()))
    assert set(ranges) == {"x"} | {v.name for n in g.nodes for v in n.outputs}
    with pytest.raises(InputError, match="unknown calibration method"):
        calibrate(g, [x], "kl")
    with pytest.raises(InputError, match="empty calibration set"):
        collect_stats(g, [])


# ---- the pass ------------------------------------------------------------------------------------
def _cnn() -> Graph:
    """conv+relu -> depthwise conv+relu6 -> residual add -> max_pool -> flatten -> gemm
    -> matmul."""
    rng = np.random.default_rng(0)
    g = Graph("cnn")
    x = g.add_input("x", TensorType(DType.F32, ("N", 3, 8, 8)))

    def c(shape: tuple[int, ...], s: float = 0.3) -> Any:
        return g.add_constant((rng.standard_normal(shape) * s).astype(np.float32), "w")

    a = g.add_node("conv", [x, c((8, 3, 3, 3)), c((8,))], {"pads": (1, 1, 1, 1), "act": "relu"})
    b = g.add_node("conv", [a.output, c((8, 1, 3, 3)), c((8,))],
                   {"pads": (1, 1, 1, 1), "group": 8, "act": "relu6"})
    s = g.add_node("add", [a.output, b.output])
    p = g.add_node("max_pool", [s.output], {"kernel": (2, 2), "strides": (2, 2)})
    f = g.add_node("flatten", [p.output])
    fc = g.add_node("gemm", [f.output, c((16, 128), 0.1), c((16,))], {"trans_b": True,
                                                                      "act": "relu"})
    out = g.add_node("matmul", [fc.output, c((16, 5))], name="logits")
    g.outputs = [out.output]
    g.verify()
    return g


def test_quantize_pass_rewrites_a_cnn_and_stays_close_to_float() -> None:
    g = _cnn()
    feeds = random_inputs(g, seed=3, batch=16)
    ref = interpret(g, feeds)["logits"]
    q = g.copy()
    ctx_pm = PassManager("quantize-int8{samples=64}")
    ctx_pm.run(q)
    ops = [n.op for n in q.nodes]
    assert ops.count("qlinear_conv") == 2 and ops.count("qlinear_gemm") == 2
    assert "qlinear_add" in ops and "conv" not in ops and "gemm" not in ops
    assert ops.count("quantize_linear") == 1 and ops.count("dequantize_linear") == 1
    mp = q.nodes_of("max_pool")[0]
    assert mp.output.type.dtype == DType.I8  # runs on the int8 codes
    assert [v.name for v in q.outputs] == ["logits"]
    got = interpret(q, feeds)["logits"]
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert rel < 0.05, rel


def test_quantize_pass_keeps_unsupported_ops_float() -> None:
    g = Graph("mixed")
    x = g.add_input("x", TensorType(DType.F32, (2, 6)))
    w = g.add_constant(np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32), "w")
    a = g.add_node("gemm", [x, w])
    t = g.add_node("tanh", [a.output])
    g.outputs = [t.output]
    PassManager("quantize-int8{method=entropy,samples=32}").run(g)
    ops = [n.op for n in g.nodes]
    assert ops == ["quantize_linear", "qlinear_gemm", "dequantize_linear", "tanh"]


def test_quantize_pass_errors() -> None:
    with pytest.raises(PassError, match="method must be one of"):
        PassManager("quantize-int8{method=kl}").run(_cnn())
    g = _cnn()
    with pytest.raises(PassError, match="no calibrated range for %x"):
        quantize_graph(g, {})


def _resnet_block() -> Graph:
    """conv+relu -> conv -> add (residual) -> relu -> flatten -> gemm."""
    rng = np.random.default_rng(1)
    g = Graph("res")
    x = g.add_input("x", TensorType(DType.F32, ("N", 4, 6, 6)))

    def c(shape: tuple[int, ...], s: float = 0.3) -> Any:
        return g.add_constant((rng.standard_normal(shape) * s).astype(np.float32), "w")

    a = g.add_node("conv", [x, c((8, 4, 3, 3)), c((8,))], {"pads": (1, 1, 1, 1)})
    r = g.add_node("relu", [a.output])
    b = g.add_node("conv", [r.output, c((8, 8, 3, 3)), c((8,))], {"pads": (1, 1, 1, 1)})
    s = g.add_node("add", [b.output, r.output])
    t = g.add_node("relu", [s.output])
    f = g.add_node("flatten", [t.output])
    out = g.add_node("gemm", [f.output, c((5, 288), 0.05)], {"trans_b": True}, name="logits")
    g.outputs = [out.output]
    g.verify()
    return g


def test_fused_residual_becomes_qlinear_add_with_its_relu() -> None:
    g = _resnet_block()
    PassManager("fold-bn,fuse").run(g)
    assert any(n.attrs.get("residual") for n in g.nodes)  # fuse put the add into the conv
    feeds = random_inputs(g, seed=2, batch=8)
    ref = interpret(g, feeds)["logits"]
    PassManager("quantize-int8{samples=32}").run(g)
    ops = [n.op for n in g.nodes]
    assert ops.count("qlinear_conv") == 2 and "relu" not in ops and "add" not in ops
    (add,) = g.nodes_of("qlinear_add")
    assert add.attrs.get("act") == "relu"
    got = interpret(g, feeds)["logits"]
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.05


def test_calibration_data_errors_name_the_file(tmp_path: Any) -> None:
    from lwc.errors import LwcError
    from lwc.fileio import save_npz

    bad = tmp_path / "nox.npz"
    save_npz(bad, {"y": np.zeros(3)})
    with pytest.raises(LwcError, match="nox.npz: calibration data needs an x_train"):
        PassManager(f"quantize-int8{{data={bad}}}").run(_cnn())
    wrong = tmp_path / "shape.npz"
    save_npz(wrong, {"x_train": np.zeros((4, 7), np.float32)})
    with pytest.raises(LwcError, match=r"shape.npz: x_train rows have shape \[7\]"):
        PassManager(f"quantize-int8{{data={wrong}}}").run(_cnn())
    with pytest.raises(LwcError, match="missing.npz"):
        PassManager(f"quantize-int8{{data={tmp_path / 'missing.npz'}}}").run(_cnn())
