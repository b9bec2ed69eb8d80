"""The verifier: the invariants every pass may rely on and every pass must keep."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lwc.errors import LwcError, VerifyError
from lwc.ir.types import TensorType

if TYPE_CHECKING:
    from lwc.ir.core import Graph, Node


def _compatible(declared: TensorType, inferred: TensorType) -> bool:
    """Declared and inferred types agree; a symbol on either side matches any size."""
    if declared.dtype != inferred.dtype or declared.rank != inferred.rank:
        return False
    return all(a == b or isinstance(a, str) or isinstance(b, str)
               for a, b in zip(declared.shape, inferred.shape))


def verify(graph: Graph) -> None:
    """Raise ``VerifyError`` naming the node, op and types at the first broken invariant:
    unique names, defined-before-use (dominance in a flat DAG), use lists that match operands,
    arity, attributes and inferred types equal to declared ones, constants whose payload fits."""
    where = f"graph @{graph.name}"
    defined: set[int] = set()
    names: set[str] = set()

    def define(v: object, name: str) -> None:
        if name in names:
            raise VerifyError(f"{where}: value %{name} is defined twice")
        names.add(name)
        defined.add(id(v))

    for v in graph.inputs:
        if v.producer is not None or v.data is not None:
            raise VerifyError(f"{where}: input %{v.name} has a producer or a payload")
        define(v, v.name)
    for key, v in graph.constants.items():
        if v.data is None or key != v.name:
            raise VerifyError(f"{where}: constant %{key} has no payload or a mismatched name")
        if not v.type.matches(v.data) or not v.type.is_static:
            raise VerifyError(f"{where}: constant %{v.name}: payload {v.data.dtype}{list(v.data.shape)}"
                              f" does not match its type {v.type}")
        define(v, v.name)

    for node in graph.nodes:
        try:
            _verify_node(node, where, defined)
        except VerifyError as e:
            e.node = node  # type: ignore[attr-defined]  # lets the parser point at the line
            raise
        for v in node.outputs:
            define(v, v.name)

    in_graph = {id(n) for n in graph.nodes}
    for v in graph.values():
        for u in v.uses:
            if id(u.node) not in in_graph or u.node.inputs[u.index] is not v:
                raise VerifyError(f"{where}: %{v.name} has a dangling use by node "
                                  f"{u.node.label} ({u.node.op})")
    if not graph.outputs:
        raise VerifyError(f"{where}: graph has no outputs")
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerifyError(f"{where}: output %{v.name} is not defined in the graph")


def _verify_node(node: Node, where: str, defined: set[int]) -> None:
    """Operands defined earlier with matching use lists, arity, attributes, declared types."""
    from lwc.ops.registry import get_op

    at = f"{where}: node {node.label} ({node.op})"
    for i, v in enumerate(node.inputs):
        if id(v) not in defined:
            raise VerifyError(f"{at}: operand {i} %{v.name} is used before it is defined "
                              "or is not in the graph")
        if not any(u.node is node and u.index == i for u in v.uses):
            raise VerifyError(f"{at}: use list of %{v.name} misses operand {i}")
    try:
        op = get_op(node.op)
        op.check_arity(len(node.inputs), at)
        attrs = op.complete_attrs(node.attrs, at)
        in_types = [v.type for v in node.inputs]
        op.verify(in_types, attrs)
        inferred = op.infer(in_types, attrs)
    except LwcError as e:
        raise VerifyError(str(e) if str(e).startswith(where) else f"{at}: {e}") from None
    except (ValueError, IndexError, KeyError, TypeError) as e:
        ins = ", ".join(str(v.type) for v in node.inputs)
        raise VerifyError(f"{at}: invalid operands ({ins}): {e}") from None
    if len(inferred) != len(node.outputs):
        raise VerifyError(f"{at}: declares {len(node.outputs)} results, op gives {len(inferred)}")
    for v, t in zip(node.outputs, inferred, strict=True):
        if v.producer is not node:
            raise VerifyError(f"{at}: result %{v.name} does not point back to its node")
        if not _compatible(v.type, t):
            raise VerifyError(f"{at}: result %{v.name} declared {v.type}, inferred {t}")
