"""Elementwise ops: activations (one input) and broadcasting arithmetic (two inputs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from lwc.ir.types import TensorType, broadcast_shapes
from lwc.ops.registry import Attr, Op, register_op


class Unary(Op):
    """An activation or other per-element function; the output type is the input type."""

    elementwise = True

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        return [ins[0]]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        return [np.asarray(self.fn(x, attrs)).astype(x.dtype, copy=False)]

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        raise NotImplementedError


class Binary(Op):
    """Arithmetic with numpy/ONNX multidirectional broadcasting."""

    num_inputs = (2, 2)
    elementwise = True
    ufunc: ClassVar[Callable[..., np.ndarray]]

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        a, b = ins
        if a.dtype != b.dtype:
            raise ValueError(f"operand dtypes differ: {a.dtype} and {b.dtype}")
        return [TensorType(a.dtype, broadcast_shapes(a.shape, b.shape))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        a, b = xs
        return [np.asarray(type(self).ufunc(a, b)).astype(a.dtype, copy=False)]


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)  # ONNX integer Div truncates toward zero
    return np.divide(a, b)


@register_op
class Add(Binary):
    """a + b."""

    name = "add"
    ufunc = staticmethod(np.add)


@register_op
class Sub(Binary):
    """a - b."""

    name = "sub"
    ufunc = staticmethod(np.subtract)


@register_op
class Mul(Binary):
    """a * b."""

    name = "mul"
    ufunc = staticmethod(np.multiply)


@register_op
class Div(Binary):
    """a / b (integers truncate toward zero, as in ONNX)."""

    name = "div"
    ufunc = staticmethod(_int_div)


@register_op
class Relu(Unary):
    """max(x, 0)."""

    name = "relu"

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        return np.maximum(x, 0)


@register_op
class Clip(Unary):
    """min(max(x, min), max); ReLU6 is clip{min=0, max=6}."""

    name = "clip"
    attrs = {"min": Attr("float", float("-inf")), "max": Attr("float", float("inf"))}

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        lo, hi = attrs["min"], attrs["max"]
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            lo, hi = max(lo, info.min), min(hi, info.max)
        return np.clip(x, np.asarray(lo).astype(x.dtype), np.asarray(hi).astype(x.dtype))


@register_op
class LeakyRelu(Unary):
    """x if x >= 0 else alpha * x."""

    name = "leaky_relu"
    attrs = {"alpha": Attr("float", 0.01)}

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        return np.where(x >= 0, x, x * np.float32(attrs["alpha"]))


@register_op
class Sigmoid(Unary):
    """1 / (1 + exp(-x))."""

    name = "sigmoid"

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-x))


@register_op
class HardSigmoid(Unary):
    """max(0, min(1, alpha * x + beta))."""

    name = "hard_sigmoid"
    attrs = {"alpha": Attr("float", 0.2), "beta": Attr("float", 0.5)}

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        a, b = np.float32(attrs["alpha"]), np.float32(attrs["beta"])
        return np.clip(a * x + b, 0, 1)


@register_op
class HardSwish(Unary):
    """x * relu6(x + 3) / 6 (MobileNet v3)."""

    name = "hard_swish"

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        return x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1)


@register_op
class Tanh(Unary):
    """tanh(x)."""

    name = "tanh"

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        return np.tanh(x)
