"""Magnitude pruning and k-means weight sharing, the first two stages of Deep Compression.

Pruning zeroes every weight below ``quality * std(W)`` of its layer (Han et al. 2015). Weight
sharing clusters a layer's surviving weights into ``2**bits - 1`` centroids with 1-D k-means
initialised linearly over [min, max] (the paper found linear initialisation best because it
keeps the rare large weights); codebook entry 0 is reserved for the exact zero of pruned weights.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2

from lwc.ir.core import Graph, Value

LAYER_OPS = {"conv": "conv", "gemm": "fc", "matmul": "fc"}


@dataclass(frozen=True)
class Layer:
    """A weight-bearing node: its weight and bias constants and its kind (conv or fc)."""

    node_label: str
    kind: str
    weight: Value
    bias: Value | None


def weight_layers(graph: Graph) -> list[Layer]:
    """Conv and fully-connected layers whose weight is a float constant, in graph order."""
    layers = []
    for node in graph.nodes:
        if node.op not in LAYER_OPS or len(node.inputs) < 2:
            continue
        w = node.inputs[1]
        if not (w.is_constant and w.type.dtype.is_float):
            continue
        has_bias = node.op != "matmul" and len(node.inputs) > 2 and node.inputs[2].is_constant
        layers.append(Layer(node.label, LAYER_OPS[node.op], w, node.inputs[2] if has_bias else None))
    return layers


def magnitude_mask(w: np.ndarray, quality: float, keep: np.ndarray | None = None,
                   std: float | None = None) -> np.ndarray:
    """Keep |w| >= quality * std; positions already pruned (``keep`` False) stay pruned.
    ``std`` defaults to the std of ``w``; iterative pruning passes the dense layer's std so the
    threshold grows with ``quality`` alone."""
    alive = np.ones(w.shape, bool) if keep is None else keep.astype(bool)
    std = float(w.std()) if std is None else std
    return alive & (np.abs(w) >= quality * std)


def linear_init(values: np.ndarray, k: int) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return np.linspace(lo, hi, k) if k > 1 else np.array([(lo + hi) / 2])


def kmeans_share(w: np.ndarray, bits: int, mask: np.ndarray | None = None,
                 iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """(codebook, index): codebook[0] = 0 for pruned weights, then up to 2**bits - 1 centroids;
    ``index`` has w's shape. The fit is deterministic (linear init, no random restarts)."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    mask = np.ones(w.shape, bool) if mask is None else mask.astype(bool)
    vals = w[mask].astype(np.float64)
    index = np.zeros(w.shape, dtype=np.int64)
    if vals.size == 0:
        return np.zeros(1, np.float32), index
    k = min((1 << bits) - 1, len(np.unique(vals)))
    with warnings.catch_warnings():  # empty clusters are expected and dropped below
        warnings.simplefilter("ignore", UserWarning)
        centroids, labels = kmeans2(vals[:, None], linear_init(vals, k)[:, None],
                                    iter=iterations, minit="matrix", missing="warn")
    # drop empty clusters so every codebook entry is used, then renumber from 1
    used = np.unique(labels)
    remap = np.zeros(k, dtype=np.int64)
    remap[used] = np.arange(1, len(used) + 1)
    codebook = np.concatenate([[0.0], centroids[used, 0]]).astype(np.float32)
    index[mask] = remap[labels]
    return codebook, index


def kmeans_ratio(n: int, bits: int) -> float:
    """Deep Compression's compression rate of sharing alone: n*32 / (n*log2(k) + 32*k)."""
    k = 1 << bits
    return n * 32 / (n * bits + 32 * k)
