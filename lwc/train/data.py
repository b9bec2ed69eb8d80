"""Datasets for training and evaluation: ``.npz`` files with x_train, y_train, x_test, y_test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwc.errors import InputError
from lwc.fileio import load_arrays
from lwc.ir.core import Graph

KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @staticmethod
    def load(path: str | Path) -> Dataset:
        arrays = load_arrays(path)
        missing = [k for k in KEYS if k not in arrays]
        if missing:
            raise InputError(f"{path}: dataset lacks {', '.join(missing)} (needs {', '.join(KEYS)})")
        for split in ("train", "test"):
            x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if len(x) != len(y) or y.ndim != 1:
                raise InputError(f"{path}: x_{split} has {len(x)} rows but y_{split} has shape "
                                 f"{list(y.shape)}")
        return Dataset(*(arrays[k] for k in KEYS))

    def split_validation(self, fraction: float, seed: int = 0
                         ) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
        """Hold out a seeded ``fraction`` of the training split for validation."""
        order = np.random.default_rng(seed).permutation(len(self.x_train))
        n_val = int(round(fraction * len(order)))
        val, train = order[:n_val], order[n_val:]
        return (Dataset(self.x_train[train], self.y_train[train], self.x_test, self.y_test),
                (self.x_train[val], self.y_train[val]))

    def for_graph(self, graph: Graph) -> Dataset:
        """Reshape x to the graph's single input shape when the per-sample sizes agree
        (the digits MLP takes [N,64], the CNN [N,1,8,8])."""
        if len(graph.inputs) != 1:
            raise InputError(f"graph @{graph.name} has {len(graph.inputs)} inputs; training "
                             "needs exactly one")
        t = graph.inputs[0].type
        sample = t.concrete_shape()[1:]
        size = int(np.prod(sample))
        out = []
        for x in (self.x_train, self.x_test):
            if int(np.prod(x.shape[1:])) != size:
                raise InputError(f"dataset samples have shape {list(x.shape[1:])}, the model's "
                                 f"input {graph.inputs[0].name} takes {t}")
            out.append(x.reshape(len(x), *sample).astype(t.dtype.numpy, copy=False))
        return Dataset(out[0], self.y_train.astype(np.int64), out[1], self.y_test.astype(np.int64))


def batches(x: np.ndarray, y: np.ndarray, batch_size: int,
            rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled mini-batches, seeded through ``rng``; the last partial batch is kept."""
    order = rng.permutation(len(x))
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]
