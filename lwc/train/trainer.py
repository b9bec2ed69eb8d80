"""The training loop: mini-batch SGD/Adam on an IR graph's weights, with pluggable weight
transforms so that pruning masks, shared (k-means) weights and binarisation train in one loop.

A ``WeightTransform`` maps a latent parameter to the weight the forward pass uses and maps the
weight's gradient back to the latent parameter:

- ``Masked``: pruned positions stay exactly zero (gradient masked, latent re-masked each step);
- ``Shared``: the latent parameter is the codebook; gradient of centroid k = sum of its members';
- ``SignSTE``: BWN/XNOR weights alpha*sign(W) with the straight-through estimator and clipping.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from lwc.interp import interpret
from lwc.ir.core import Graph, Value
from lwc.train.autodiff import backward, forward, softmax_cross_entropy
from lwc.train.data import Dataset, batches
from lwc.train.optim import Optimizer

WEIGHT_SLOTS: dict[str, tuple[int, ...]] = {
    "conv": (1, 2), "gemm": (0, 1, 2), "matmul": (0, 1), "batch_norm": (1, 2),
    "conv_transpose": (1, 2),
}
"""Which operand slots of which ops hold trainable weights (when they are constants)."""

BN_MOMENTUM = 0.1


class WeightTransform(Protocol):
    def effective(self, latent: np.ndarray) -> np.ndarray: ...

    def grad(self, latent: np.ndarray, g: np.ndarray) -> np.ndarray: ...

    def project(self, latent: np.ndarray) -> None:
        """Restore the transform's invariant on the latent parameter after an update."""
        ...


@dataclass
class Masked:
    mask: np.ndarray

    def effective(self, latent: np.ndarray) -> np.ndarray:
        return latent * self.mask

    def grad(self, latent: np.ndarray, g: np.ndarray) -> np.ndarray:
        return g * self.mask

    def project(self, latent: np.ndarray) -> None:
        latent *= self.mask


@dataclass
class Shared:
    """Weight sharing (Deep Compression): weight[i] = codebook[index[i]] where ``mask`` is set."""

    index: np.ndarray
    mask: np.ndarray

    def effective(self, latent: np.ndarray) -> np.ndarray:
        return np.where(self.mask, latent[self.index], 0).astype(latent.dtype)

    def grad(self, latent: np.ndarray, g: np.ndarray) -> np.ndarray:
        m = self.mask.ravel()
        return np.bincount(self.index.ravel()[m], g.ravel()[m],
                           minlength=latent.size).astype(latent.dtype)

    def project(self, latent: np.ndarray) -> None:
        pass


@dataclass
class SignSTE:
    """alpha * sign(W) with alpha = mean|W| per output filter (XNOR-Net's closed form)."""

    scaled: bool = True

    def effective(self, latent: np.ndarray) -> np.ndarray:
        s = np.where(latent >= 0, 1.0, -1.0).astype(latent.dtype)
        if not self.scaled:
            return s
        alpha = np.abs(latent).reshape(latent.shape[0], -1).mean(axis=1)
        return s * alpha.reshape((-1,) + (1,) * (latent.ndim - 1)).astype(latent.dtype)

    def grad(self, latent: np.ndarray, g: np.ndarray) -> np.ndarray:
        return g * (np.abs(latent) <= 1)

    def project(self, latent: np.ndarray) -> None:
        np.clip(latent, -1, 1, out=latent)


@dataclass
class Param:
    value: Value
    latent: np.ndarray
    transform: WeightTransform | None = None

    def effective(self) -> np.ndarray:
        return self.latent if self.transform is None else self.transform.effective(self.latent)


def trainable_weights(graph: Graph) -> list[Value]:
    """Float constants in weight slots of conv/gemm/matmul/batch_norm, in graph order."""
    seen: dict[int, Value] = {}
    for node in graph.nodes:
        for i in WEIGHT_SLOTS.get(node.op, ()):
            if i < len(node.inputs) and (v := node.inputs[i]).is_constant and v.type.dtype.is_float:
                seen.setdefault(id(v), v)
    return list(seen.values())


@dataclass
class Trainer:
    """Trains ``graph`` in place (its constants are rewritten by ``commit``)."""

    graph: Graph
    optimizer: Optimizer
    transforms: Mapping[str, WeightTransform] = field(default_factory=dict)
    """Weight transforms by constant name."""
    latents: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Initial latent values for transformed weights whose latent differs from the weight
    (e.g. the codebook of a ``Shared`` weight)."""
    freeze: Iterable[str] = ()
    extra: Iterable[str] = ()
    """Names of further float constants to train (e.g. a bias applied by an ``add``)."""

    def __post_init__(self) -> None:
        frozen = set(self.freeze)
        self.params: dict[str, Param] = {}
        extra = [self.graph.constants[k] for k in self.extra]
        for v in trainable_weights(self.graph) + extra:
            if v.name in frozen:
                continue
            latent = np.array(self.latents.get(v.name, v.data), dtype=v.type.dtype.numpy)
            self.params[v.name] = Param(v, latent, self.transforms.get(v.name))

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        overrides = {id(p.value): p.effective() for p in self.params.values()}
        tape = forward(self.graph, {self.graph.inputs[0].name: x}, overrides, training=True)
        out = self.graph.outputs[0]
        loss, g = softmax_cross_entropy(tape[out], y)
        wrt = [p.value for p in self.params.values()]
        grads = backward(self.graph, tape, {id(out): g}, wrt)
        self._update_bn_statistics(tape)
        result = {}
        for k, p in self.params.items():
            gw = grads[id(p.value)]
            result[k] = gw if p.transform is None else p.transform.grad(p.latent, gw)
        return loss, result

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads = self.loss_and_grads(x, y)
        latents = {k: p.latent for k, p in self.params.items()}
        self.optimizer.step(latents, grads)
        for p in self.params.values():
            if p.transform is not None:
                p.transform.project(p.latent)
        return loss

    def fit(self, data: Dataset, epochs: int, batch_size: int = 32, seed: int = 0,
            progress: bool | None = None, on_epoch: Callable[[int, float], None] | None = None,
            blas_threads: int | None = 1) -> list[float]:
        """Train for ``epochs`` passes over the training split; returns the mean loss per epoch.

        ``progress`` None follows ``show_progress`` (off unless a caller such as the CLI turned
        it on), so recipes deep inside a pipeline show a bar without threading a flag through.

        Mini-batch GEMMs are small, and a multi-threaded BLAS spends more time waking threads
        than multiplying (7x slower on the digits MLP here), so BLAS runs on ``blas_threads``
        threads during training (``None`` leaves the library's setting alone)."""
        rng = np.random.default_rng(seed)
        history: list[float] = []
        n_batches = -(-len(data.x_train) // batch_size)
        limit = (threadpool_limits(blas_threads, user_api="blas") if blas_threads
                 else contextlib.nullcontext())
        enabled = _SHOW_PROGRESS.get() if progress is None else progress
        with limit, _progress(enabled, epochs * n_batches) as advance:
            for epoch in range(epochs):
                losses = []
                for xb, yb in batches(data.x_train, data.y_train, batch_size, rng):
                    losses.append(self.step(xb, yb))
                    advance(f"epoch {epoch + 1}/{epochs} loss {np.mean(losses):.4f}")
                history.append(float(np.mean(losses)))
                if on_epoch is not None:
                    on_epoch(epoch, history[-1])
        self.commit()
        return history

    def commit(self) -> None:
        """Write the effective weights back into the graph's constants."""
        for p in self.params.values():
            self.graph.set_constant(p.value, p.effective())

    def _update_bn_statistics(self, tape: object) -> None:
        saved = getattr(tape, "saved", {})
        for node in self.graph.nodes_of("batch_norm"):
            if (s := saved.get(id(node))) is None:
                continue
            mean_v, var_v = node.inputs[3], node.inputs[4]
            if not (mean_v.is_constant and var_v.is_constant):
                continue
            n = s["xhat"].size / s["xhat"].shape[1]
            unbiased = s["var"] * n / max(n - 1, 1)
            self.graph.set_constant(mean_v, (1 - BN_MOMENTUM) * mean_v.data + BN_MOMENTUM * s["mean"])
            self.graph.set_constant(var_v, (1 - BN_MOMENTUM) * var_v.data + BN_MOMENTUM * unbiased)


def predict(graph: Graph, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits of the graph's first output for every row of ``x`` (inference mode)."""
    name = graph.inputs[0].name
    outs = [interpret(graph, {name: x[i:i + batch_size]})[graph.outputs[0].name]
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)


def accuracy(graph: Graph, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1]."""
    return float((predict(graph, x).argmax(axis=1) == y).mean())


_SHOW_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("lwc_train_progress",
                                                                    default=False)


@contextlib.contextmanager
def show_progress(enabled: bool = True) -> Iterator[None]:
    """Show a progress bar for every ``Trainer.fit`` in this block that does not say otherwise."""
    token = _SHOW_PROGRESS.set(enabled)
    try:
        yield
    finally:
        _SHOW_PROGRESS.reset(token)


class _progress:
    """A rich progress bar when enabled, a no-op otherwise."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda _desc: None
        from rich.progress import Progress

        self._p = Progress(transient=True)
        self._p.__enter__()
        task = self._p.add_task("training", total=self.total)
        return lambda desc: self._p.update(task, advance=1, description=desc)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._p.__exit__(None, None, None)
