"""ONNX op converters, versioned by opset (after TVM's ``_impl_v<N>``).

A converter turns one ONNX node into lwc IR through an ``ImportContext``::

    @converter("Relu")
    def relu(ctx: ImportContext, node: onnx.NodeProto, ins: list[Value | None]) -> list[Value]:
        return [ctx.emit("relu", [ins[0]], node=node)]

``since`` names the first opset whose semantics the function implements; the importer picks the
newest converter with ``since <= model opset``. Absent optional inputs arrive as ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import onnx

    from lwc.ir import Graph, Value


class ImportContext(Protocol):
    """What a converter may use; implemented by the importer."""

    graph: Graph
    opset: int
    """The model's opset for the default ONNX domain."""

    def attrs(self, node: onnx.NodeProto) -> dict[str, Any]:
        """The node's attributes as Python values (ints, floats, str, lists, numpy tensors)."""
        ...

    def const(self, value: Value | None) -> np.ndarray | None:
        """The payload if ``value`` is a compile-time constant (initializer, Constant, folded)."""
        ...

    def add_constant(self, data: np.ndarray, name: str = "const") -> Value: ...

    def emit(self, op: str, inputs: Sequence[Value], attrs: Mapping[str, Any] | None = None, *,
             node: onnx.NodeProto | None = None) -> Value:
        """Add an lwc node (single result); constant operands are folded at import time."""
        ...

    def emit_multi(self, op: str, inputs: Sequence[Value], attrs: Mapping[str, Any] | None = None,
                   *, node: onnx.NodeProto | None = None) -> list[Value]: ...

    def fail(self, node: onnx.NodeProto, message: str) -> Exception:
        """An UnsupportedOpError naming the node, op type and opset (raise it)."""
        ...


Converter = Callable[["ImportContext", "onnx.NodeProto", list["Value | None"]], list["Value"]]

_CONVERTERS: dict[str, list[tuple[int, Converter]]] = {}


def converter(op_type: str, since: int = 1) -> Callable[[Converter], Converter]:
    """Register ``fn`` as the converter of ``op_type`` from opset ``since`` on."""

    def deco(fn: Converter) -> Converter:
        versions = _CONVERTERS.setdefault(op_type, [])
        versions[:] = [(s, f) for s, f in versions if s != since]
        versions.append((since, fn))
        versions.sort(key=lambda sf: sf[0])
        return fn

    return deco


def find_converter(op_type: str, opset: int) -> Converter | None:
    _ensure_loaded()
    best = None
    for since, fn in _CONVERTERS.get(op_type, []):
        if since <= opset:
            best = fn
    return best


def supported_ops() -> list[str]:
    _ensure_loaded()
    return sorted(_CONVERTERS)


_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import lwc.frontend.onnx.ops  # noqa: F401
