"""Normalisation: inference-form batch norm and AlexNet's local response normalisation.

Both do no multiply-accumulates in the MobileNet papers' sense (batch norm folds into the conv
before it), so ``macs`` is 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import TensorType
from lwc.ops.registry import Attr, Op, register_op


def _check_channel_vector(x: TensorType, p: TensorType, what: str) -> None:
    c = x.shape[1]
    if p.rank != 1 or (isinstance(c, int) and isinstance(p.shape[0], int) and p.shape[0] != c):
        raise ValueError(f"{what} {p} must be [{c}] to match input {x}")


@register_op
class BatchNorm(Op):
    """y = (x - mean) / sqrt(var + epsilon) * scale + bias, per channel (axis 1); inputs are
    (x, scale, bias, mean, var) as in ONNX BatchNormalization."""

    name = "batch_norm"
    num_inputs = (5, 5)
    attrs = {"epsilon": Attr("float", 1e-5)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x = ins[0]
        if x.rank < 2:
            raise ValueError(f"batch_norm input {x} must have rank >= 2 (N, C, ...)")
        for p, what in zip(ins[1:], ("scale", "bias", "mean", "var")):
            _check_channel_vector(x, p, what)
        return [x]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, scale, bias, mean, var = xs
        shape = (1, -1) + (1,) * (x.ndim - 2)
        inv = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + attrs["epsilon"])
        a = inv.astype(x.dtype).reshape(shape)
        b = (bias - mean * inv).astype(x.dtype).reshape(shape)
        return [(x * a + b).astype(x.dtype, copy=False)]


@register_op
class Lrn(Op):
    """Local response normalisation across channels (ONNX LRN):
    y = x / (bias + alpha / size * sum of x^2 over channels c - floor((size-1)/2) ..
    c + ceil((size-1)/2)) ** beta."""

    name = "lrn"
    attrs = {
        "size": Attr("int"),
        "alpha": Attr("float", 1e-4),
        "beta": Attr("float", 0.75),
        "bias": Attr("float", 1.0),
    }

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        if ins[0].rank < 2:
            raise ValueError(f"lrn input {ins[0]} must have rank >= 2 (N, C, ...)")
        if attrs["size"] < 1:
            raise ValueError(f"lrn size {attrs['size']} must be positive")
        return [ins[0]]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        size = attrs["size"]
        lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
        sq = np.square(x.astype(np.float64))
        # Window sums along channels via a prefix sum over the zero-padded channel axis.
        padded = np.pad(sq, [(0, 0), (lo + 1, hi)] + [(0, 0)] * (x.ndim - 2))
        csum = np.cumsum(padded, axis=1)
        c = x.shape[1]
        window = csum[:, size:size + c] - csum[:, 0:c]
        den = (attrs["bias"] + attrs["alpha"] / size * window) ** attrs["beta"]
        return [(x / den).astype(x.dtype)]
