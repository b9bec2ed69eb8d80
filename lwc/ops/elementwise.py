"""Elementwise ops: activations (one input) and broadcasting arithmetic (two inputs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from lwc.ir.types import DType, TensorType, broadcast_shapes
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


# ----- further unary functions (the cheap extras ONNX models use) ------------------------------


def _unary(op_name: str, func: Callable[[np.ndarray], np.ndarray], doc: str) -> type[Unary]:
    """Register a parameterless float function as a ``Unary`` op."""

    def fn(self: Unary, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        with np.errstate(all="ignore"):
            return func(x)

    cls = type(op_name.title().replace("_", ""), (Unary,), {"name": op_name, "fn": fn,
                                                           "__doc__": doc})
    return register_op(cls)


def _erf(x: np.ndarray) -> np.ndarray:
    import math

    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x, 0)


Neg = _unary("neg", np.negative, "-x.")
Abs = _unary("abs", np.abs, "|x|.")
Exp = _unary("exp", np.exp, "e**x.")
Log = _unary("log", np.log, "Natural logarithm.")
Sqrt = _unary("sqrt", np.sqrt, "Square root.")
Reciprocal = _unary("reciprocal", np.reciprocal, "1 / x.")
Erf = _unary("erf", _erf, "The error function (GELU's building block).")
Softplus = _unary("softplus", _softplus, "log(1 + e**x).")
Softsign = _unary("softsign", lambda x: x / (1 + np.abs(x)), "x / (1 + |x|).")
Floor = _unary("floor", np.floor, "Round down.")
Ceil = _unary("ceil", np.ceil, "Round up.")
Sign = _unary("sign", np.sign, "-1, 0 or 1.")


@register_op
class Elu(Unary):
    """x if x > 0 else alpha * (e**x - 1)."""

    name = "elu"
    attrs = {"alpha": Attr("float", 1.0)}

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.where(x > 0, x, np.float32(attrs["alpha"]) * np.expm1(x))


@register_op
class Selu(Unary):
    """gamma * (x if x > 0 else alpha * (e**x - 1)) (self-normalising nets)."""

    name = "selu"
    attrs = {"alpha": Attr("float", 1.67326319217681884765625),
             "gamma": Attr("float", 1.05070102214813232421875)}

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        a, g = np.float32(attrs["alpha"]), np.float32(attrs["gamma"])
        with np.errstate(over="ignore"):
            return g * np.where(x > 0, x, a * np.expm1(x))


# ----- further binary ops ----------------------------------------------------------------------


@register_op
class Pow(Binary):
    """a ** b (float)."""

    name = "pow"
    ufunc = staticmethod(np.power)

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return super().compute(xs, attrs)  # NaN for negative ** fractional, as in ONNX


@register_op
class Max(Binary):
    """Elementwise maximum of two operands."""

    name = "max"
    ufunc = staticmethod(np.maximum)


@register_op
class Min(Binary):
    """Elementwise minimum of two operands."""

    name = "min"
    ufunc = staticmethod(np.minimum)


@register_op
class PRelu(Binary):
    """x if x >= 0 else slope * x, with the slope broadcast against x (ONNX PRelu)."""

    name = "prelu"
    elementwise = False
    ufunc = staticmethod(lambda x, s: np.where(x >= 0, x, x * s))


class Compare(Binary):
    """A broadcasting predicate: operands of one dtype, a bool result."""

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        t = super().infer(ins, attrs)[0]
        return [TensorType(DType.BOOL, t.shape)]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [np.asarray(type(self).ufunc(*xs)).astype(bool)]


@register_op
class Equal(Compare):
    """a == b."""

    name = "equal"
    ufunc = staticmethod(np.equal)


@register_op
class Less(Compare):
    """a < b."""

    name = "less"
    ufunc = staticmethod(np.less)


@register_op
class Greater(Compare):
    """a > b."""

    name = "greater"
    ufunc = staticmethod(np.greater)


@register_op
class GreaterEqual(Compare):
    """a >= b (False where either is NaN)."""

    name = "greater_equal"
    ufunc = staticmethod(np.greater_equal)


@register_op
class LessEqual(Compare):
    """a <= b (False where either is NaN)."""

    name = "less_equal"
    ufunc = staticmethod(np.less_equal)


@register_op
class And(Compare):
    """Logical and of two bool tensors."""

    name = "and"
    ufunc = staticmethod(np.logical_and)


@register_op
class Or(Compare):
    """Logical or of two bool tensors."""

    name = "or"
    ufunc = staticmethod(np.logical_or)


@register_op
class Not(Unary):
    """Logical not of a bool tensor."""

    name = "not"

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        return np.logical_not(x)


@register_op
class Where(Op):
    """cond ? x : y with three-way broadcasting."""

    name = "where"
    num_inputs = (3, 3)
    elementwise = True

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        c, x, y = ins
        if c.dtype != DType.BOOL or x.dtype != y.dtype:
            raise ValueError(f"where needs a bool condition and equal branch dtypes: {c}, {x}, {y}")
        return [TensorType(x.dtype, broadcast_shapes(c.shape, x.shape, y.shape))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        return [np.where(*xs).astype(xs[1].dtype, copy=False)]


@register_op
class Shrink(Unary):
    """x - bias if x > lambd, x + bias if x < -lambd, else 0 (ONNX Shrink; soft/hard shrink)."""

    name = "shrink"
    attrs = {"lambd": Attr("float", 0.5), "bias": Attr("float", 0.0)}

    def fn(self, x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
        lam, b = attrs["lambd"], attrs["bias"]
        return np.where(x > lam, x - b, np.where(x < -lam, x + b, 0)).astype(x.dtype)
