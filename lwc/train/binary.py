"""Gradients for binary and ternary networks: straight-through estimators with clipping.

``binarize`` and ``ternarize`` have zero derivative almost everywhere; BNN and XNOR-Net train
through them with the straight-through estimator ``d q(x) / dx = 1 where |x| <= 1`` (the
derivative of hard tanh), so activations that have saturated stop passing gradient. Weights are
binarised by the ``SignSTE`` weight transform of ``lwc.train.trainer`` instead (same estimator,
latent weights clipped to [-1, 1]). ``abs`` and ``reduce_mean`` are here because XNOR-Net's
activation scale K = box filter of mean_c |x| is trained through.
"""

from __future__ import annotations

import numpy as np

from lwc.train.autodiff import VjpArgs, register_vjp

Grads = list[np.ndarray | None]


def ste(x: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Straight-through estimator with clipping: gy where |x| <= 1, else 0."""
    return gy * (np.abs(x) <= 1)


@register_vjp("binarize")
@register_vjp("ternarize")
def _quantise(a: VjpArgs) -> Grads:
    return [ste(a.xs[0], a.gy)]


@register_vjp("abs")
def _abs(a: VjpArgs) -> Grads:
    return [a.gy * np.sign(a.xs[0]).astype(a.gy.dtype)]


@register_vjp("reduce_mean")
def _reduce_mean(a: VjpArgs) -> Grads:
    x = a.xs[0]
    axes = a.attrs["axes"] or tuple(range(x.ndim))
    axes = tuple(ax % x.ndim for ax in axes)
    g = a.gy
    if not a.attrs["keepdims"]:
        g = np.expand_dims(g, axes)
    n = int(np.prod([x.shape[ax] for ax in axes]))
    return [np.broadcast_to(g / n, x.shape).astype(x.dtype)]
