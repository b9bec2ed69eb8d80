"""The model zoo: standard architectures built directly as lwc graphs with seeded random weights.

No downloads and no ONNX: each model is written against the IR op set, unfused (conv, batch_norm
and activation nodes apart) so the passes have real work to do. Input ``input`` (NCHW float32,
batch 1 by default or a symbol such as ``"N"``), output ``output``.

    >>> g = build("mobilenet_v2", batch="N")
    >>> names()[:3]
    ['inception', 'lenet5', 'mlp']
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from lwc.errors import InputError
from lwc.ir.core import Graph

_MODELS: dict[str, str] = {
    "lenet5": "classic",
    "mlp": "classic",
    "mobilenet_v1": "mobilenet",
    "mobilenet_v2": "mobilenet",
    "resnet18": "resnet",
    "squeezenet": "squeezenet",
    "shufflenet": "shufflenet",
    "inception": "inception",
    "xception": "xception",
}
"""Model name -> module under ``lwc.zoo`` that defines a function of that name."""


def names() -> list[str]:
    """Every model the zoo can build, sorted."""
    return sorted(_MODELS)


def _builder(name: str) -> Callable[..., Graph]:
    if name not in _MODELS:
        raise InputError(f"zoo has no model {name!r}; known: {', '.join(names())}")
    module = importlib.import_module(f"lwc.zoo.{_MODELS[name]}")
    fn: Callable[..., Graph] = getattr(module, name)
    return fn


def options(name: str) -> dict[str, Any]:
    """The keyword options of a model with their defaults (besides ``batch`` and ``seed``)."""
    params = inspect.signature(_builder(name)).parameters
    return {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def describe(name: str) -> str:
    """The model's docstring summary (architecture, MAC and parameter figures) and its options."""
    doc = inspect.getdoc(_builder(name)) or ""
    opts = ", ".join(f"{k}={v!r}" for k, v in options(name).items())
    return f"{name}: {doc}\noptions: {opts}"


def build(name: str, *, batch: int | str = 1, seed: int = 0, calibrate: bool = False,
          **opts: Any) -> Graph:
    """Build zoo model ``name`` as a verified graph; ``batch`` may be a symbol such as ``"N"``.

    Batch-norm statistics are random by default (gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), mean ~
    N(0, 0.1), var ~ U(0.5, 1.5)); ``calibrate=True`` re-derives mean and var from the measured
    activations (one interpreter run) so deep residual models keep unit-scale outputs.
    """
    fn = _builder(name)
    known = options(name)
    if unknown := sorted(set(opts) - set(known)):
        raise InputError(f"zoo model {name} has no option {', '.join(unknown)}; options: "
                         f"{', '.join(known) or 'none'}")
    if isinstance(batch, bool) or not isinstance(batch, (int, str)) or batch == 0:
        raise InputError(f"zoo model {name}: batch must be a positive int or a symbol, "
                         f"got {batch!r}")
    try:
        graph = fn(batch, seed, **opts)
    except ValueError as e:
        raise InputError(f"zoo model {name}: {e}") from None
    if calibrate:
        from lwc.zoo.calibrate import calibrate_batch_norm

        calibrate_batch_norm(graph, seed)
    return graph


__all__ = ["build", "describe", "names", "options"]
