"""Tensor types: frozen, hashable values that describe what flows along an edge of the graph.

A shape holds ints for static dimensions and strings for symbolic ones (a dynamic batch `N`).
Quantisation parameters ride on the type, so an int8 tensor says how to read its integers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Union

import numpy as np

Dim = Union[int, str]
"""A dimension: an int when known, a symbol such as ``"N"`` when only known at run time."""


class DType(StrEnum):
    """Element types, spelled as in the textual IR."""

    F64 = "f64"
    F32 = "f32"
    F16 = "f16"
    I64 = "i64"
    I32 = "i32"
    I16 = "i16"
    I8 = "i8"
    U8 = "u8"
    BOOL = "bool"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_TO_NUMPY[self])

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self in (DType.F64, DType.F32, DType.F16)

    @property
    def is_int(self) -> bool:
        return self in (DType.I64, DType.I32, DType.I16, DType.I8, DType.U8)

    @staticmethod
    def from_numpy(dt: np.dtype | type) -> DType:
        key = np.dtype(dt).str[1:]
        if key not in _FROM_NUMPY:
            raise ValueError(f"numpy dtype {np.dtype(dt)} has no lwc equivalent")
        return _FROM_NUMPY[key]


_TO_NUMPY = {
    DType.F64: "float64",
    DType.F32: "float32",
    DType.F16: "float16",
    DType.I64: "int64",
    DType.I32: "int32",
    DType.I16: "int16",
    DType.I8: "int8",
    DType.U8: "uint8",
    DType.BOOL: "bool",
}
_FROM_NUMPY = {np.dtype(v).str[1:]: k for k, v in _TO_NUMPY.items()}


@dataclass(frozen=True)
class QuantParams:
    """How the integers of a quantised tensor map to reals: ``real = scale * (q - zero_point)``.

    Per-tensor when ``axis`` is None (scale and zero_point hold one entry), per-channel along
    ``axis`` otherwise. ``bits`` allows sub-byte storage (4, 2, 1) inside a wider dtype.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...] = (0,)
    axis: int | None = None
    bits: int = 8

    def __post_init__(self) -> None:
        if len(self.scale) == 0:
            raise ValueError("quantisation needs at least one scale")
        if len(self.zero_point) not in (1, len(self.scale)):
            raise ValueError("zero_point must have one entry or one per scale")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("per-tensor quantisation takes exactly one scale")
        if not 1 <= self.bits <= 32:
            raise ValueError(f"bits must be in 1..32, got {self.bits}")

    def scale_array(self) -> np.ndarray:
        return np.asarray(self.scale, dtype=np.float32)

    def zero_point_array(self) -> np.ndarray:
        return np.asarray(self.zero_point, dtype=np.int64)


@dataclass(frozen=True)
class TensorType:
    """Element type, shape (ints or symbols) and optional quantisation of one SSA value."""

    dtype: DType
    shape: tuple[Dim, ...]
    quant: QuantParams | None = field(default=None)

    def __post_init__(self) -> None:
        for d in self.shape:
            if isinstance(d, bool) or not isinstance(d, (int, str)):
                raise ValueError(f"dimension {d!r} must be an int or a symbol name")
            if isinstance(d, int) and d < 0:
                raise ValueError(f"dimension {d} is negative")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(d for d in self.shape if isinstance(d, str))

    def numel(self, bindings: Mapping[str, int] | None = None) -> int:
        """Element count; symbolic dims are taken from ``bindings`` (default 1, i.e. batch 1)."""
        n = 1
        for d in self.concrete_shape(bindings):
            n *= d
        return n

    def nbytes(self, bindings: Mapping[str, int] | None = None) -> int:
        return self.numel(bindings) * self.dtype.itemsize

    def concrete_shape(self, bindings: Mapping[str, int] | None = None) -> tuple[int, ...]:
        bindings = bindings or {}
        return tuple(d if isinstance(d, int) else int(bindings.get(d, 1)) for d in self.shape)

    def with_shape(self, shape: Iterable[Dim]) -> TensorType:
        return TensorType(self.dtype, tuple(shape), self.quant)

    def with_dtype(self, dtype: DType, quant: QuantParams | None = None) -> TensorType:
        return TensorType(dtype, self.shape, quant)

    def matches(self, arr: np.ndarray) -> bool:
        """Whether a concrete array could be a value of this type (symbols match any size)."""
        if DType.from_numpy(arr.dtype) != self.dtype or arr.ndim != self.rank:
            return False
        return all(isinstance(d, str) or d == s for d, s in zip(self.shape, arr.shape))

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"

    @staticmethod
    def of(arr: np.ndarray) -> TensorType:
        return TensorType(DType.from_numpy(arr.dtype), tuple(int(s) for s in arr.shape))


def broadcast_shapes(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """Numpy/ONNX multidirectional broadcasting over shapes that may hold symbols."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        picked: Dim = 1
        for d in dims:
            if d == 1:
                continue
            if picked == 1:
                picked = d
            elif picked != d:
                if isinstance(picked, str) or isinstance(d, str):
                    picked = picked if isinstance(picked, int) else d
                    continue
                raise ValueError(f"shapes {' and '.join(map(str, shapes))} do not broadcast")
        out.append(picked)
    return tuple(out)
