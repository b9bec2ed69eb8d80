"""The reference interpreter: runs a verified graph with each op's numpy kernel.

It is the oracle every pass and backend is checked against, so it favours clarity over speed.
Values are dropped after their last use (as in FX's Interpreter) to bound peak memory, and any
failure inside a kernel is re-raised naming the node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from lwc.errors import InputError, LwcError
from lwc.ir.core import Graph, Node, Value
from lwc.ir.types import TensorType
from lwc.ops.registry import get_op


def check_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Validate names, dtypes and shapes of run-time inputs; return the symbol bindings."""
    missing = [v.name for v in graph.inputs if v.name not in inputs]
    if missing:
        raise InputError(f"missing input(s) {', '.join(missing)}; graph @{graph.name} takes "
                         + ", ".join(f"{v.name}: {v.type}" for v in graph.inputs))
    extra = set(inputs) - {v.name for v in graph.inputs}
    if extra:
        raise InputError(f"unknown input(s) {', '.join(sorted(extra))}; graph @{graph.name} takes "
                         + ", ".join(v.name for v in graph.inputs))
    bindings: dict[str, int] = {}
    for v in graph.inputs:
        arr = np.asarray(inputs[v.name])
        if str(arr.dtype) != str(v.type.dtype.numpy):
            raise InputError(f"input {v.name}: dtype {arr.dtype} but the graph expects "
                             f"{v.type.dtype.numpy} ({v.type})")
        if arr.ndim != v.type.rank:
            raise InputError(f"input {v.name}: shape {list(arr.shape)} has rank {arr.ndim}, "
                             f"expected {v.type}")
        for d, s in zip(v.type.shape, arr.shape):
            if isinstance(d, str):
                if bindings.setdefault(d, s) != s:
                    raise InputError(f"input {v.name}: dimension {d}={s} conflicts with "
                                     f"{d}={bindings[d]} from another input")
            elif d != s:
                raise InputError(f"input {v.name}: shape {list(arr.shape)} but the graph "
                                 f"expects {v.type}")
    return bindings


NodeHook = Callable[[Node, list[np.ndarray]], None]


def interpret(
    graph: Graph,
    inputs: Mapping[str, np.ndarray],
    *,
    keep_all: bool = False,
    on_node: NodeHook | None = None,
) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``inputs`` (by input name); return outputs by name.

    With ``keep_all`` every intermediate value is returned too (for bisecting a backend).
    ``on_node`` sees each node with its results, e.g. to record activation ranges.
    """
    check_inputs(graph, inputs)
    env: dict[int, np.ndarray] = {id(v): np.asarray(inputs[v.name]) for v in graph.inputs}
    for v in graph.constants.values():
        env[id(v)] = v.data  # type: ignore[assignment]
    last_use = _last_uses(graph) if not keep_all else {}
    names: dict[int, str] = {}
    for step, node in enumerate(graph.nodes):
        op = get_op(node.op)
        args = [env[id(v)] for v in node.inputs]
        try:
            attrs = op.complete_attrs(node.attrs)
            results = op.compute(args, attrs)
        except LwcError:
            raise
        except Exception as e:  # a kernel bug or bad data: say where it happened
            shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in args)
            raise LwcError(f"while running node {node.label} ({node.op}) on {shapes}: "
                           f"{type(e).__name__}: {e}") from e
        for v, r in zip(node.outputs, results):
            env[id(v)] = _conform(r, v.type, node)
            names[id(v)] = v.name
        if on_node is not None:
            on_node(node, results)
        for v in node.inputs:
            if last_use.get(id(v)) == step and v.producer is not None and v not in graph.outputs:
                env.pop(id(v), None)
    out = {v.name: env[id(v)] for v in graph.outputs}
    if keep_all:
        for key, arr in env.items():
            if key in names:
                out.setdefault(names[key], arr)
    return out


def _conform(r: np.ndarray, t: TensorType, node: Node) -> np.ndarray:
    arr = np.asarray(r)
    if str(arr.dtype) != str(t.dtype.numpy) or arr.ndim != t.rank:
        raise LwcError(f"node {node.label} ({node.op}) produced {arr.dtype}{list(arr.shape)}, "
                       f"declared {t}")
    return arr


def _last_uses(graph: Graph) -> dict[int, int]:
    last: dict[int, int] = {}
    for step, node in enumerate(graph.nodes):
        for v in node.inputs:
            last[id(v)] = step
    return last


def random_inputs(graph: Graph, seed: int = 0, batch: int = 1) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input (symbols bound to ``batch``): normal floats, small ints."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for v in graph.inputs:
        shape = v.type.concrete_shape({s: batch for s in v.type.symbols})
        dt = v.type.dtype
        if dt.is_float:
            out[v.name] = rng.standard_normal(shape).astype(dt.numpy)
        elif dt.name == "BOOL":
            out[v.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            out[v.name] = rng.integers(0, 10, shape).astype(dt.numpy)
    return out


__all__ = ["check_inputs", "interpret", "random_inputs", "Value"]
