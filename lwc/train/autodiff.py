"""Reverse-mode automatic differentiation over the IR, for training and fine-tuning.

The forward pass runs each node's reference kernel and keeps every value (a tape); the backward
pass walks the nodes in reverse and applies each op's vector-Jacobian product. VJPs live in
``lwc.train.vjps`` and are registered per op name with ``register_vjp``, the same way ops are
registered, so an extension op becomes trainable by registering its VJP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lwc.errors import LwcError
from lwc.interp import check_inputs
from lwc.ir.core import Graph, Node, Value
from lwc.ops.registry import get_op


@dataclass
class VjpArgs:
    """What a VJP sees: forward inputs/outputs, output gradients, completed attributes."""

    node: Node
    xs: list[np.ndarray]
    ys: list[np.ndarray]
    gys: list[np.ndarray | None]
    attrs: dict[str, Any]
    saved: dict[str, Any] = field(default_factory=dict)
    """Anything the training-mode forward stored (batch statistics of batch_norm)."""

    @property
    def gy(self) -> np.ndarray:
        g = self.gys[0]
        assert g is not None
        return g


Vjp = Callable[[VjpArgs], Sequence[np.ndarray | None]]
TrainForward = Callable[[Sequence[np.ndarray], Mapping[str, Any], dict[str, Any]], list[np.ndarray]]

_VJPS: dict[str, Vjp] = {}
_TRAIN_FORWARDS: dict[str, TrainForward] = {}


def register_vjp(op: str) -> Callable[[Vjp], Vjp]:
    def deco(fn: Vjp) -> Vjp:
        _VJPS[op] = fn
        return fn

    return deco


def register_train_forward(op: str) -> Callable[[TrainForward], TrainForward]:
    """A forward that differs in training (batch_norm uses batch statistics)."""

    def deco(fn: TrainForward) -> TrainForward:
        _TRAIN_FORWARDS[op] = fn
        return fn

    return deco


def differentiable_ops() -> list[str]:
    _load()
    return sorted(_VJPS)


@dataclass
class Tape:
    """Values of one forward pass (keyed by ``id(Value)``) plus per-node saved state."""

    values: dict[int, np.ndarray]
    saved: dict[int, dict[str, Any]]

    def __getitem__(self, v: Value) -> np.ndarray:
        return self.values[id(v)]


def forward(graph: Graph, inputs: Mapping[str, np.ndarray],
            overrides: Mapping[int, np.ndarray] | None = None, *, training: bool = True) -> Tape:
    """Run the graph keeping every value. ``overrides`` replaces constants (by ``id(Value)``) with
    the effective weights of the current training step (masked, shared or binarised)."""
    _load()
    check_inputs(graph, inputs)
    env: dict[int, np.ndarray] = {id(v): np.asarray(inputs[v.name]) for v in graph.inputs}
    for v in graph.constants.values():
        env[id(v)] = v.data  # type: ignore[assignment]
    env.update(overrides or {})
    saved: dict[int, dict[str, Any]] = {}
    for node in graph.nodes:
        op = get_op(node.op)
        attrs = op.complete_attrs(node.attrs)
        args = [env[id(v)] for v in node.inputs]
        if training and node.op in _TRAIN_FORWARDS:
            saved[id(node)] = {}
            outs = _TRAIN_FORWARDS[node.op](args, attrs, saved[id(node)])
        else:
            outs = op.compute(args, attrs)
        for v, r in zip(node.outputs, outs):
            env[id(v)] = np.asarray(r)
    return Tape(env, saved)


def backward(graph: Graph, tape: Tape, seeds: Mapping[int, np.ndarray],
             wrt: Sequence[Value]) -> dict[int, np.ndarray]:
    """Gradients of a scalar loss w.r.t. ``wrt`` given ``seeds`` (d loss / d value by id)."""
    _load()
    grads: dict[int, np.ndarray] = dict(seeds)
    needed = _needs_grad(graph, wrt)
    for node in reversed(graph.nodes):
        gys = [grads.get(id(v)) for v in node.outputs]
        if all(g is None for g in gys) or not any(id(v) in needed for v in node.inputs):
            continue
        if (vjp := _VJPS.get(node.op)) is None:
            raise LwcError(f"node {node.label} ({node.op}): no gradient is defined for op "
                           f"{node.op}; differentiable ops: {', '.join(differentiable_ops())}")
        op = get_op(node.op)
        args = VjpArgs(node, [tape[v] for v in node.inputs], [tape[v] for v in node.outputs],
                       [g if g is not None else np.zeros_like(tape[v]) for g, v in
                        zip(gys, node.outputs)], op.complete_attrs(node.attrs),
                       tape.saved.get(id(node), {}))
        gxs = vjp(args)
        for v, gx in zip(node.inputs, gxs):
            if gx is None or id(v) not in needed:
                continue
            gx = np.asarray(gx, dtype=tape[v].dtype).reshape(tape[v].shape)
            grads[id(v)] = grads[id(v)] + gx if id(v) in grads else gx
    return {id(v): grads.get(id(v), np.zeros_like(tape[v])) for v in wrt}


def _needs_grad(graph: Graph, wrt: Sequence[Value]) -> set[int]:
    """Values from which a gradient path reaches something in ``wrt`` (so others are skipped)."""
    needed = {id(v) for v in wrt}
    for node in graph.nodes:
        if any(id(v) in needed for v in node.inputs):
            needed.update(id(v) for v in node.outputs)
    # a value needs its gradient if it is in wrt or lies downstream of one
    return needed


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy over the batch and its gradient w.r.t. the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = float(-np.log(p[np.arange(n), labels] + 1e-12).mean())
    g = p
    g[np.arange(n), labels] -= 1.0
    return loss, (g / n).astype(logits.dtype)


_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import lwc.train.vjps  # noqa: F401
        import lwc.train.binary  # noqa: F401  (STE gradients of binary/ternary nets)
