"""Optimisers over named parameter arrays (updated in place)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SGD:
    """SGD with (optionally Nesterov-free, classical) momentum and L2 weight decay."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    _velocity: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        for k, p in params.items():
            g = grads[k] + self.weight_decay * p if self.weight_decay else grads[k]
            v = self._velocity.get(k)
            v = g if v is None else self.momentum * v + g
            self._velocity[k] = v
            p -= self.lr * v


@dataclass
class Adam:
    """Adam (Kingma & Ba) with bias correction."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    _m: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _v: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _t: int = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self._t += 1
        c1 = 1 - self.beta1 ** self._t
        c2 = 1 - self.beta2 ** self._t
        for k, p in params.items():
            g = grads[k] + self.weight_decay * p if self.weight_decay else grads[k]
            m = self._m.get(k, np.zeros_like(p))
            v = self._v.get(k, np.zeros_like(p))
            m = self.beta1 * m + (1 - self.beta1) * g
            v = self.beta2 * v + (1 - self.beta2) * g * g
            self._m[k], self._v[k] = m, v
            p -= (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(p.dtype)


Optimizer = SGD | Adam


def make_optimizer(name: str, lr: float) -> Optimizer:
    if name == "sgd":
        return SGD(lr=lr)
    if name == "adam":
        return Adam(lr=lr)
    raise ValueError(f"unknown optimiser {name!r}; choose sgd or adam")
