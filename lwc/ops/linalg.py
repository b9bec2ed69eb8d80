"""Matrix products: ONNX Gemm (fully connected layers) and numpy-style batched matmul.

MACs at batch 1 are M*N*K per product (times the broadcast batch for matmul), the count the
MobileNet and ResNet papers use for their classifier layers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import Dim, TensorType, broadcast_shapes
from lwc.ops.conv import apply_activation
from lwc.ops.registry import Attr, Op, register_op


def _same(a: Dim, b: Dim) -> bool:
    return a == b or isinstance(a, str) or isinstance(b, str)


def _broadcasts_to(src: tuple[Dim, ...], dst: tuple[Dim, ...]) -> bool:
    """Unidirectional broadcasting (``src`` stretches to ``dst``), as ONNX Gemm's C."""
    if len(src) > len(dst):
        return False
    return all(s == 1 or _same(s, d) for s, d in zip(src[::-1], dst[::-1]))


def _gemm_operands(n: int, residual: bool) -> tuple[bool, bool]:
    """(has C, has residual) for a gemm with ``n`` operands."""
    return n > (3 if residual else 2), residual


@register_op
class Gemm(Op):
    """y = act(alpha * A' @ B' + beta * C [+ residual]) with A' = A^T if ``trans_a`` and B' = B^T
    if ``trans_b``; C (optional) broadcasts to [M, N].

    ``act``/``alpha_act``/``clip_min``/``clip_max`` are the fused epilogue shared with conv
    (``alpha`` is ONNX's scale of A @ B, so the leaky-ReLU slope is ``alpha_act``); with
    ``residual`` the last operand is added before ``act``."""

    name = "gemm"
    num_inputs = (2, 4)
    attrs = {
        "alpha": Attr("float", 1.0),
        "beta": Attr("float", 1.0),
        "trans_a": Attr("bool", False),
        "trans_b": Attr("bool", False),
        "act": Attr("str", ""),
        "alpha_act": Attr("float", 0.01, "slope of a fused leaky_relu"),
        "clip_min": Attr("float", 0.0),
        "clip_max": Attr("float", 6.0),
        "residual": Attr("bool", False, "last operand is added to the result before act"),
    }

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        a, b = ins[0], ins[1]
        if a.rank != 2 or b.rank != 2:
            raise ValueError(f"gemm operands {a} and {b} must both be rank 2")
        m, k = a.shape[::-1] if attrs["trans_a"] else a.shape
        k2, n = b.shape[::-1] if attrs["trans_b"] else b.shape
        if not _same(k, k2):
            raise ValueError(f"gemm inner dimensions differ: A' is [{m},{k}], B' is [{k2},{n}]")
        out = TensorType(a.dtype, (m, n))
        has_c, has_res = _gemm_operands(len(ins), attrs["residual"])
        if has_c and not _broadcasts_to(ins[2].shape, out.shape):
            raise ValueError(f"gemm C {ins[2]} does not broadcast to [{m},{n}]")
        if has_res and len(ins) < 3:
            raise ValueError("gemm with residual needs a residual operand")
        if has_res and not all(_same(p, q) for p, q in zip(ins[-1].shape, out.shape)):
            raise ValueError(f"residual {ins[-1]} does not match output {out}")
        return [out]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        a, b = xs[0], xs[1]
        has_c, has_res = _gemm_operands(len(xs), attrs["residual"])
        a = a.T if attrs["trans_a"] else a
        b = b.T if attrs["trans_b"] else b
        y = a @ b
        if attrs["alpha"] != 1.0:
            y = y * np.asarray(attrs["alpha"], dtype=y.dtype)
        if has_c:
            y = y + xs[2] * np.asarray(attrs["beta"], dtype=y.dtype)
        if has_res:
            y = y + xs[-1]
        y = apply_activation(y, attrs["act"], attrs["alpha_act"], attrs["clip_min"],
                             attrs["clip_max"])
        return [y.astype(xs[0].dtype, copy=False)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        a = ins[0].concrete_shape()
        k = a[0] if attrs["trans_a"] else a[1]
        return outs[0].numel() * k


def _matmul_shape(a: TensorType, b: TensorType) -> tuple[Dim, ...]:
    if a.rank == 0 or b.rank == 0:
        raise ValueError(f"matmul operands {a} and {b} must have rank >= 1")
    sa = (1, *a.shape) if a.rank == 1 else a.shape
    sb = (*b.shape, 1) if b.rank == 1 else b.shape
    if not _same(sa[-1], sb[-2]):
        raise ValueError(f"matmul inner dimensions differ: {a} @ {b}")
    batch = broadcast_shapes(sa[:-2], sb[:-2])
    out = (*batch, sa[-2], sb[-1])
    if a.rank == 1:
        out = out[:-2] + out[-1:]
    if b.rank == 1:
        out = out[:-1]
    return out


@register_op
class MatMul(Op):
    """numpy.matmul: batched over leading dims with broadcasting; 1-D operands are promoted."""

    name = "matmul"
    num_inputs = (2, 2)

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        a, b = ins
        if a.dtype != b.dtype:
            raise ValueError(f"matmul operand dtypes differ: {a} and {b}")
        return [TensorType(a.dtype, _matmul_shape(a, b))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [np.matmul(xs[0], xs[1]).astype(xs[0].dtype, copy=False)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        k = ins[0].concrete_shape()[-1]
        return outs[0].numel() * k
