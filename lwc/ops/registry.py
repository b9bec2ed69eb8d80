"""The op registry: every op, built-in or from an extension, is an ``Op`` subclass registered here.

An op declares its attributes (with defaults), how many inputs it takes, how output types follow from
input types (``infer``), a numpy reference kernel (``compute``) that the interpreter runs, and cost
figures (``macs``; parameters and bytes moved have generic definitions an op may override).
Extension writers use exactly this API::

    @register_op
    class Swish(Op):
        '''x * sigmoid(x): the activation of EfficientNet.'''
        name = "swish"
        def infer(self, ins, attrs): return [ins[0]]
        def compute(self, xs, attrs): return [xs[0] / (1 + np.exp(-xs[0]))]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lwc.errors import UnsupportedOpError, VerifyError
from lwc.ir.types import TensorType

REQUIRED = object()
"""Marks an attribute that has no default."""

ATTR_KINDS = ("int", "float", "str", "ints", "floats", "bool")


@dataclass(frozen=True)
class Attr:
    """An attribute declaration: its kind and its default (``REQUIRED`` if it has none)."""

    kind: str
    default: Any = REQUIRED
    doc: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ATTR_KINDS:
            raise ValueError(f"attribute kind must be one of {ATTR_KINDS}, got {self.kind!r}")

    def coerce(self, value: Any, where: str) -> Any:
        """Normalise to the canonical Python form (ints tuple, float, ...) or raise."""
        try:
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                return int(value)
            if self.kind == "bool":
                return bool(value)
            if self.kind == "float":
                return float(value)
            if self.kind == "str":
                if not isinstance(value, str):
                    raise ValueError
                return value
            if self.kind == "ints":
                return tuple(int(v) for v in value)
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise VerifyError(f"{where}: attribute value {value!r} is not of kind {self.kind}") from None


@dataclass(frozen=True)
class Cost:
    """Per-node cost figures for reports and cost models (batch symbols bound to 1)."""

    macs: int
    params: int
    bytes: int


class Op:
    """Base class of an op definition. Subclasses set ``name``/``attrs`` and override the hooks."""

    name: ClassVar[str] = ""
    attrs: ClassVar[dict[str, Attr]] = {}
    num_inputs: ClassVar[tuple[int, int | None]] = (1, 1)
    """(min, max) operand count; max None means variadic."""
    num_outputs: ClassVar[int] = 1
    elementwise: ClassVar[bool] = False
    """True for ops that apply one scalar function per element (fusion and layout passes use it)."""

    # ---- hooks ---------------------------------------------------------------------------
    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        raise NotImplementedError(f"op {self.name} does not define type inference")

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        raise NotImplementedError(f"op {self.name} has no reference kernel")

    def macs(
        self, ins: Sequence[TensorType], outs: Sequence[TensorType], attrs: Mapping[str, Any]
    ) -> int:
        """Multiply-accumulates for one run at batch 1 (a MAC = one multiply plus one add)."""
        return 0

    def verify(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> None:
        """Extra checks beyond arity and inference (raise ValueError with a message)."""

    # ---- generic machinery ---------------------------------------------------------------
    def complete_attrs(self, attrs: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """Attributes with defaults filled in and values coerced; unknown names are errors."""
        where = where or self.name
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise VerifyError(f"{where}: {self.name} has no attribute {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for key, spec in self.attrs.items():
            if key in attrs and attrs[key] is not None:
                out[key] = spec.coerce(attrs[key], f"{where}.{key}")
            elif spec.default is REQUIRED:
                raise VerifyError(f"{where}: {self.name} needs attribute {key}")
            else:
                out[key] = spec.default
        return out

    def strip_defaults(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Only the attributes that differ from their defaults, in declaration order."""
        out: dict[str, Any] = {}
        for key, spec in self.attrs.items():
            if key in attrs and (spec.default is REQUIRED or attrs[key] != spec.default):
                out[key] = attrs[key]
        return out

    def check_arity(self, n: int, where: str) -> None:
        lo, hi = self.num_inputs
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if lo == hi else f"{lo}..{'' if hi is None else hi}"
            raise VerifyError(f"{where}: {self.name} takes {want} inputs, got {n}")

    def cost(
        self,
        ins: Sequence[TensorType],
        outs: Sequence[TensorType],
        attrs: Mapping[str, Any],
        const_inputs: Sequence[bool],
    ) -> Cost:
        """MACs from ``macs``; parameters = elements of constant operands; bytes = all operands read
        plus all results written (a lower bound on traffic that ignores caching)."""
        params = sum(t.numel() for t, c in zip(ins, const_inputs) if c)
        moved = sum(t.nbytes() for t in ins) + sum(t.nbytes() for t in outs)
        return Cost(self.macs(ins, outs, attrs), params, moved)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


_REGISTRY: dict[str, Op] = {}


def register_op(cls: type[Op]) -> type[Op]:
    """Class decorator that registers an op; re-registering a name replaces the old definition."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} must set a name")
    for spec in cls.attrs.values():
        if not isinstance(spec, Attr):
            raise TypeError(f"{cls.__name__}.attrs values must be Attr instances")
    _REGISTRY[cls.name] = cls()
    return cls


def get_op(name: str) -> Op:
    _ensure_builtin_ops()
    if (op := _REGISTRY.get(name)) is None:
        raise UnsupportedOpError(f"unknown op {name!r}; registered ops: {', '.join(sorted(_REGISTRY))}")
    return op


def registered_ops() -> dict[str, Op]:
    _ensure_builtin_ops()
    return dict(_REGISTRY)


_loaded = False


def _ensure_builtin_ops() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import lwc.ops  # noqa: F401  (registers the built-in families)
