"""Post-training calibration: the real range [lo, hi] of every float activation of a graph.

The graph runs in the reference interpreter over a calibration set, and an ``on_node`` hook
records each float result. Three ways to turn what it saw into a range:

- ``minmax``: the smallest and largest value seen (every outlier is kept);
- ``percentile``: the ``percentile``-th percentile of |x| from a 2048-bin histogram, as
  onnxruntime's Percentile calibrator (range [-T, T] clipped to [min, max]);
- ``entropy``: TensorRT's KL-divergence search: the threshold T whose quantised histogram (255
  levels over [0, T] for a non-negative tensor, 128 per side otherwise) loses the least
  information against the reference histogram clipped at T, outliers folded into its last bin.

Activations then become per-tensor asymmetric (``activation_qparams``: int8 (or uint8) with a
zero point, the range widened to contain 0 so that zero padding and ReLU are exact); weights
per-channel symmetric int8 in [-127, 127] (``quantize_weight``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from lwc.errors import InputError
from lwc.interp import interpret
from lwc.ir.core import Graph, Node

METHODS = ("minmax", "percentile", "entropy")
BINS = 2048


@dataclass
class TensorStats:
    """What the calibration set produced for one value: extremes and a histogram of |x|."""

    lo: float = float("inf")
    hi: float = float("-inf")
    hist: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.float64))

    @property
    def amax(self) -> float:
        return max(abs(self.lo), abs(self.hi))


def _run(graph: Graph, batches: Sequence[np.ndarray],
         record: Callable[[str, np.ndarray], None]) -> None:
    name = graph.inputs[0].name

    def hook(node: Node, results: list[np.ndarray]) -> None:
        for v, r in zip(node.outputs, results):
            if v.type.dtype.is_float:
                record(v.name, r)

    for x in batches:
        record(name, x)
        interpret(graph, {name: x}, on_node=hook)


def collect_stats(graph: Graph, batches: Sequence[np.ndarray], *,
                  histogram: bool = True) -> dict[str, TensorStats]:
    """Min/max (one pass) and, with ``histogram``, a |x| histogram over [0, amax] (a second pass)
    of the graph input and every float node result, over ``batches`` of the (single) input."""
    if len(graph.inputs) != 1:
        raise InputError(f"graph @{graph.name}: calibration needs exactly one input, "
                         f"got {len(graph.inputs)}")
    if not batches:
        raise InputError(f"graph @{graph.name}: empty calibration set")
    stats: dict[str, TensorStats] = {}

    def extremes(name: str, r: np.ndarray) -> None:
        s = stats.setdefault(name, TensorStats())
        if r.size:
            s.lo, s.hi = min(s.lo, float(r.min())), max(s.hi, float(r.max()))

    def hist(name: str, r: np.ndarray) -> None:
        s = stats[name]
        if s.amax > 0:
            s.hist += np.histogram(np.abs(r), bins=BINS, range=(0.0, s.amax))[0]

    _run(graph, batches, extremes)
    if histogram:
        _run(graph, batches, hist)
    return stats


def percentile_threshold(s: TensorStats, percentile: float) -> float:
    """|x| below which ``percentile`` percent of the calibration values lie (bin upper edge)."""
    total = s.hist.sum()
    if total == 0 or s.amax == 0:
        return s.amax
    cdf = np.cumsum(s.hist) / total
    idx = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(idx + 1, BINS) * s.amax / BINS)


def entropy_threshold(s: TensorStats, levels: int, max_candidates: int = 160) -> float:
    """TensorRT's calibration: the T = edge[i] (i >= levels) minimising KL(P_i || Q_i); at most
    ``max_candidates`` evenly spaced i are tried (TensorRT tries every bin; 1/160 of the range
    is fine enough for 8 bits and keeps calibration fast)."""
    from scipy.stats import entropy as kl_divergence  # scipy.stats takes ~0.7 s to import

    hist = s.hist
    if hist.sum() == 0 or s.amax == 0:
        return s.amax
    best_i, best_kl = BINS, np.inf
    step = max(1, (BINS - levels) // max_candidates)
    for i in range(levels, BINS + 1, step):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()  # outliers clip to T
        nonzero = hist[:i] > 0
        level = (np.arange(i) * levels) // i  # which quantised level each bin merges into
        sums = np.bincount(level, weights=hist[:i], minlength=levels)
        counts = np.bincount(level, weights=nonzero, minlength=levels)
        q = np.where(nonzero, sums[level] / np.maximum(counts[level], 1), 0.0)
        q[(p > 0) & (q == 0)] = 1e-4 * max(q.max(), 1.0)  # smoothing: KL needs q > 0 where p > 0
        kl = float(kl_divergence(p, q))
        if kl < best_kl:
            best_i, best_kl = i, kl
    return float(best_i * s.amax / BINS)


def tensor_range(s: TensorStats, method: str, percentile: float = 99.99) -> tuple[float, float]:
    """The calibrated real range of one tensor by ``method`` (always inside [lo, hi])."""
    if method == "minmax":
        return s.lo, s.hi
    if method == "percentile":
        t = percentile_threshold(s, percentile)
    elif method == "entropy":
        t = entropy_threshold(s, 255 if s.lo >= 0 else 128)
    else:
        raise InputError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    return max(s.lo, -t), min(s.hi, t)


def calibrate(graph: Graph, batches: Iterable[np.ndarray], method: str = "minmax",
              percentile: float = 99.99) -> dict[str, tuple[float, float]]:
    """Calibrated range of every float activation (graph input and node results) by name."""
    if method not in METHODS:
        raise InputError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    if not 0 < percentile <= 100:
        raise InputError(f"percentile must be in (0, 100], got {percentile}")
    stats = collect_stats(graph, list(batches), histogram=method != "minmax")
    return {k: tensor_range(s, method, percentile) for k, s in stats.items()}


def activation_qparams(lo: float, hi: float, dtype: np.dtype = np.dtype(np.int8)
                       ) -> tuple[np.float32, int]:
    """Asymmetric (scale, zero point) mapping [min(lo, 0), max(hi, 0)] onto dtype's range."""
    info = np.iinfo(dtype)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = np.float32((hi - lo) / (info.max - info.min))
    if not scale > 0:
        return np.float32(1.0), int(np.clip(0, info.min, info.max))
    zp = int(np.clip(np.rint(info.min - lo / scale), info.min, info.max))
    return scale, zp


def quantize_weight(w: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric int8: (q in [-127, 127], float32 scale per channel along ``axis``)
    with scale = max|w| / 127 (1 for an all-zero channel)."""
    moved = np.moveaxis(np.asarray(w, np.float32), axis, 0)
    amax = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1) if moved.size else np.zeros(0)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = (-1,) + (1,) * (moved.ndim - 1)
    q = np.clip(np.rint(moved / scale.reshape(shape)), -127, 127).astype(np.int8)
    return np.moveaxis(q, 0, axis), scale
