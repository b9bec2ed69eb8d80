"""Standard-ONNX forms of the binary-network ops (``lwc/ops/binary.py``), exact in float32/64.

The quantised operands are ±1 (or 0 for a ternary input) floats, so a float ``Conv``/``Gemm`` of
them sums exact integers (below 2**24, checked by the ops) in any order, and the one ``Mul`` by
alpha is the reference's one rounding. onnxruntime therefore gives the interpreter's results
bit for bit. Constant weights are written as int8 ±1 and ``Cast`` to float when the model
loads: 4x smaller than float32 (ONNX has no 1-bit type; ``.lwcz`` stores 1 bit per weight).

- ``binarize`` -> ``Where(GreaterOrEqual(x, 0), 1, -1)`` (NaN -> -1, as the reference);
- ``ternarize`` -> ``Cast(Greater(x, t)) - Cast(Less(x, -t))``;
- ``sign_threshold`` -> ``Where((dir > 0 and x >= tau) or (dir <= 0 and x <= tau), 1, -1)``,
  tau and dir reshaped to broadcast on axis 1;
- ``xnor_conv`` / ``xnor_gemm`` -> the input as above, ``Conv`` / ``Gemm(transB=1)`` with the
  sign weights, then ``Mul`` by alpha (rounded to float32 first, as the reference does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from onnx import helper

from lwc.ir.core import Node
from lwc.ir.types import DType

if TYPE_CHECKING:
    from lwc.frontend.onnx.export import _Emitter

EXACT_DTYPES = (DType.F32, DType.F64)
"""Float types whose integer sums are exact up to the ops' 2**24 bound."""


def exportable(node: Node) -> bool:
    """Standard ONNX is exact for float32/64 inputs; float16 goes to the custom domain."""
    return node.inputs[0].type.dtype in EXACT_DTYPES


def _onnx_type(dtype: np.dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _scalar(em: _Emitter, value: float, dtype: np.dtype, hint: str) -> str:
    return em.const(np.asarray(value, dtype), hint)


def _sign(em: _Emitter, x: str, dtype: np.dtype, out: str, label: str) -> None:
    """+1 where x >= 0 else -1 (so sign(0) = +1 and NaN -> -1, unlike ONNX ``Sign``)."""
    ge = em.fresh(f"{out}.ge0")
    em.emit("GreaterOrEqual", [x, _scalar(em, 0, dtype, f"{out}.zero")], [ge], label)
    em.emit("Where", [ge, _scalar(em, 1, dtype, f"{out}.one"),
                      _scalar(em, -1, dtype, f"{out}.minus_one")], [out], label)


def _ternary(em: _Emitter, x: str, threshold: float, dtype: np.dtype, out: str,
             label: str) -> None:
    t = np.asarray(threshold, dtype)
    gt, lt = em.fresh(f"{out}.gt"), em.fresh(f"{out}.lt")
    em.emit("Greater", [x, em.const(t, f"{out}.t")], [gt], label)
    em.emit("Less", [x, em.const(-t, f"{out}.minus_t")], [lt], label)
    pos, neg = em.fresh(f"{out}.pos"), em.fresh(f"{out}.neg")
    em.emit("Cast", [gt], [pos], label, to=_onnx_type(dtype))
    em.emit("Cast", [lt], [neg], label, to=_onnx_type(dtype))
    em.emit("Sub", [pos, neg], [out], label)


def _quantised_input(em: _Emitter, node: Node, a: dict[str, Any], x: str) -> str:
    dtype = node.inputs[0].type.dtype.numpy
    out = em.fresh(f"{x}.{a['input']}")
    if a["input"] == "binary":
        _sign(em, x, dtype, out, node.label)
    else:
        _ternary(em, x, a["threshold"], dtype, out, node.label)
    return out


def _sign_weights(em: _Emitter, node: Node, w: str) -> str:
    """The weights as ±1 of the input's type: int8 constants cast on load, or computed."""
    dtype = node.inputs[0].type.dtype.numpy
    out = em.fresh(f"{w}.sign")
    data = node.inputs[1].data
    if data is None:
        _sign(em, w, dtype, out, node.label)
        return out
    signs = np.where(np.asarray(data) >= 0, 1, -1).astype(np.int8)
    em.emit("Cast", [em.const(signs, f"{w}.sign_i8")], [out], node.label, to=_onnx_type(dtype))
    return out


def _per_channel(em: _Emitter, node: Node, i: int, name: str, rank: int, dtype: np.dtype,
                 via_f32: bool = False) -> str:
    """Operand ``i`` (a vector over axis 1) reshaped to [1, C, 1, ...] in ``dtype``; with
    ``via_f32`` rounded to float32 first."""
    shape = [1, -1] + [1] * (rank - 2)
    data = node.inputs[i].data
    if data is not None:
        v = np.asarray(data)
        if via_f32:
            v = v.astype(np.float32)
        return em.const(v.astype(dtype).reshape(shape), f"{name}.bcast")
    out = em.fresh(f"{name}.bcast")
    src, current = name, np.dtype(node.inputs[i].type.dtype.numpy)
    for target in ([np.float32] if via_f32 else []) + [dtype]:
        if np.dtype(target) != current:
            cast = em.fresh(f"{name}.cast")
            em.emit("Cast", [src], [cast], node.label, to=_onnx_type(target))
            src, current = cast, np.dtype(target)
    em.emit("Reshape", [src, em.ints(shape, f"{name}.shape")], [out], node.label)
    return out


def _accumulator(em: _Emitter, ins: list[str], outs: list[str]) -> str:
    """Where Conv/Gemm writes: the output itself, or a temporary that alpha then scales."""
    return em.fresh(f"{outs[0]}.acc") if len(ins) > 2 else outs[0]


def _scale(em: _Emitter, node: Node, ins: list[str], acc: str, outs: list[str],
           rank: int) -> None:
    """alpha[o] * acc, alpha rounded to float32 first as the reference does. alpha comes first:
    onnxruntime folds a ``Conv -> Mul(acc, const)`` into the weights (ConvMulFusion), which
    rounds w * alpha and breaks exactness; with the constant as the first operand it does not
    (tests/frontend/test_export_binary.py would catch a change)."""
    if len(ins) > 2:
        alpha = _per_channel(em, node, 2, ins[2], rank, node.output.type.dtype.numpy,
                             via_f32=True)
        em.emit("Mul", [alpha, acc], outs, node.label)


def xnor_conv(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
              outs: list[str]) -> None:
    from lwc.frontend.onnx.export import _onnx_attr

    q, w = _quantised_input(em, node, a, ins[0]), _sign_weights(em, node, ins[1])
    acc = _accumulator(em, ins, outs)
    em.emit("Conv", [q, w], [acc], node.label,
            kernel_shape=list(node.inputs[1].type.shape[2:]), strides=_onnx_attr(a["strides"]),
            pads=_onnx_attr(a["pads"]), dilations=_onnx_attr(a["dilations"]))
    _scale(em, node, ins, acc, outs, 4)


def xnor_gemm(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
              outs: list[str]) -> None:
    q, w = _quantised_input(em, node, a, ins[0]), _sign_weights(em, node, ins[1])
    acc = _accumulator(em, ins, outs)
    em.emit("Gemm", [q, w], [acc], node.label, transB=1)
    _scale(em, node, ins, acc, outs, 2)


def binarize(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
             outs: list[str]) -> None:
    _sign(em, ins[0], node.inputs[0].type.dtype.numpy, outs[0], node.label)


def ternarize(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
              outs: list[str]) -> None:
    _ternary(em, ins[0], a["threshold"], node.inputs[0].type.dtype.numpy, outs[0], node.label)


def sign_threshold(em: _Emitter, node: Node, a: dict[str, Any], ins: list[str],
                   outs: list[str]) -> None:
    x = node.inputs[0]
    dtype, rank, out = x.type.dtype.numpy, x.type.rank, outs[0]
    tau = _per_channel(em, node, 1, ins[1], rank, dtype)
    ge, le, on = em.fresh(f"{out}.ge"), em.fresh(f"{out}.le"), em.fresh(f"{out}.on")
    em.emit("GreaterOrEqual", [ins[0], tau], [ge], node.label)
    em.emit("LessOrEqual", [ins[0], tau], [le], node.label)
    d = node.inputs[2].data
    if d is not None:
        up_mask = (np.asarray(d) > 0).reshape([1, -1] + [1] * (rank - 2))
        up, down = em.const(up_mask, f"{out}.up"), em.const(~up_mask, f"{out}.down")
    else:
        up, down = em.fresh(f"{out}.up"), em.fresh(f"{out}.down")
        em.emit("Greater", [_per_channel(em, node, 2, ins[2], rank, dtype),
                            _scalar(em, 0, dtype, f"{out}.zero")], [up], node.label)
        em.emit("Not", [up], [down], node.label)
    # onnxruntime has no Where on bool, so: (up and x >= tau) or (not up and x <= tau)
    ge_up, le_down = em.fresh(f"{out}.ge_up"), em.fresh(f"{out}.le_down")
    em.emit("And", [up, ge], [ge_up], node.label)
    em.emit("And", [down, le], [le_down], node.label)
    em.emit("Or", [ge_up, le_down], [on], node.label)
    em.emit("Where", [on, _scalar(em, 1, dtype, f"{out}.one"),
                      _scalar(em, -1, dtype, f"{out}.minus_one")], [out], node.label)


HANDLERS = {"xnor_conv": xnor_conv, "xnor_gemm": xnor_gemm, "binarize": binarize,
            "ternarize": ternarize, "sign_threshold": sign_threshold}
"""IR op -> exporter, applied when ``exportable(node)``."""
