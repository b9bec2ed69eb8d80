"""Reductions: softmax over one axis (opset-13 semantics) and mean/sum/max over a set of axes.

No multiply-accumulates (``macs`` 0): these are cheap next to the convolutions around them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import TensorType
from lwc.ops.registry import Attr, Op, register_op


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` in [-rank, rank) mapped to [0, rank), else a ValueError."""
    if not -rank <= axis < rank:
        raise ValueError(f"{what} {axis} out of range for rank {rank}")
    return axis % rank


class _Softmax(Op):
    attrs = {"axis": Attr("int", -1)}

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x = ins[0]
        if not x.dtype.is_float:
            raise ValueError(f"{self.name} needs a float input, got {x}")
        norm_axis(attrs["axis"], max(x.rank, 1))
        return [x]

    @staticmethod
    def _shifted(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """(x - max, log of the sum of exp) along ``axis``, the numerically stable form."""
        z = x - x.max(axis=axis, keepdims=True)
        return z, np.log(np.exp(z).sum(axis=axis, keepdims=True))


@register_op
class Softmax(_Softmax):
    """exp(x) / sum(exp(x)) along one axis."""

    name = "softmax"

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        e = np.exp(x - x.max(axis=attrs["axis"], keepdims=True))
        return [(e / e.sum(axis=attrs["axis"], keepdims=True)).astype(x.dtype, copy=False)]


@register_op
class LogSoftmax(_Softmax):
    """x - log(sum(exp(x))) along one axis."""

    name = "log_softmax"

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        z, lse = self._shifted(xs[0], attrs["axis"])
        return [(z - lse).astype(xs[0].dtype, copy=False)]


class _Reduce(Op):
    """Reduce over ``axes`` (empty = every axis), keeping them as size 1 if ``keepdims``."""

    attrs = {"axes": Attr("ints", ()), "keepdims": Attr("bool", True)}

    def axes(self, rank: int, attrs: Mapping[str, Any]) -> tuple[int, ...]:
        axes = attrs["axes"] or tuple(range(rank))
        norm = tuple(sorted(norm_axis(a, rank, f"{self.name} axis") for a in axes))
        if len(set(norm)) != len(norm):
            raise ValueError(f"{self.name} axes {list(axes)} repeat an axis")
        return norm

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x = ins[0]
        axes = self.axes(x.rank, attrs)
        if attrs["keepdims"]:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return [x.with_shape(shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        axes = self.axes(x.ndim, attrs)
        y = self.reduce(x, axes, attrs["keepdims"])
        return [np.asarray(y).astype(x.dtype, copy=False)]

    def reduce(self, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        raise NotImplementedError


@register_op
class ReduceMean(_Reduce):
    """Mean over ``axes`` (accumulated in float64 for float inputs)."""

    name = "reduce_mean"

    def reduce(self, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        if np.issubdtype(x.dtype, np.integer):
            return np.sum(x, axis=axes, keepdims=keepdims) // max(1, _count(x, axes))
        return np.mean(x, axis=axes, keepdims=keepdims, dtype=np.float64)


@register_op
class ReduceSum(_Reduce):
    """Sum over ``axes``."""

    name = "reduce_sum"

    def reduce(self, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return np.sum(x, axis=axes, keepdims=keepdims)


@register_op
class ReduceMax(_Reduce):
    """Maximum over ``axes``."""

    name = "reduce_max"

    def reduce(self, x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
        return np.max(x, axis=axes, keepdims=keepdims)


def _count(x: np.ndarray, axes: tuple[int, ...]) -> int:
    return int(np.prod([x.shape[a] for a in axes]))
