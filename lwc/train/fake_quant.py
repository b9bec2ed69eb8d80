"""Quantisation-aware training (QAT) for int8: fake quantisation with straight-through estimators.

The forward pass sees what the int8 graph will compute, up to rounding order: weights through
``FakeQuantWeight`` (per-channel symmetric int8, a ``Trainer`` weight transform) and activations
through ``fake_quant`` nodes (per-tensor asymmetric, ranges fixed by calibration) inserted after
every activation that ``quantize-int8`` will quantise. Gradients pass straight through rounding
(STE); for activations only inside the representable range (the clipped STE of Jacob et al.
2018), for weights everywhere (the range follows max|W|, so nothing is clipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lwc.ir.core import Graph, Value
from lwc.ir.types import DType
from lwc.train.autodiff import VjpArgs, register_vjp

ACT_DTYPE = "i8"


@register_vjp("fake_quant")
def _fake_quant_vjp(a: VjpArgs) -> list[np.ndarray]:
    info = np.iinfo(DType(a.attrs["dtype"]).numpy)
    s, z = np.float32(a.attrs["scale"]), a.attrs["zero_point"]
    lo, hi = (info.min - z) * s, (info.max - z) * s
    x = a.xs[0]
    return [a.gy * ((x >= lo) & (x <= hi))]


@dataclass
class FakeQuantWeight:
    """Per-channel (``axis``) symmetric int8 quantise-dequantise of a weight, identity gradient."""

    axis: int = 0

    def effective(self, latent: np.ndarray) -> np.ndarray:
        from lwc.passes.compress.calibrate import quantize_weight  # noqa: PLC0415

        q, scale = quantize_weight(latent, self.axis)
        shape = [1] * latent.ndim
        shape[self.axis] = -1
        return (q.astype(np.float32) * scale.reshape(shape)).astype(latent.dtype)

    def grad(self, latent: np.ndarray, g: np.ndarray) -> np.ndarray:
        return g

    def project(self, latent: np.ndarray) -> None:
        pass


def insert_fake_quant(graph: Graph, ranges: Mapping[str, tuple[float, float]],
                      values: list[Value]) -> int:
    """Put a ``fake_quant`` (params from ``ranges``) after each of ``values``; returns the count."""
    from lwc.passes.compress.calibrate import activation_qparams  # noqa: PLC0415

    count = 0
    for v in values:
        scale, zp = activation_qparams(*ranges[v.name], DType(ACT_DTYPE).numpy)
        users = [u for u in v.uses]
        before = next((n for n in graph.nodes if any(u.node is n for u in users)), None)
        node = graph.add_node("fake_quant", [v], {"scale": float(scale), "zero_point": zp,
                                                  "dtype": ACT_DTYPE},
                              name=f"{v.name}.fq", before=before)
        for u in users:
            u.node.set_input(u.index, node.output)
        graph.outputs = [node.output if o is v else o for o in graph.outputs]
        count += 1
    return count


def remove_fake_quant(graph: Graph) -> int:
    """Take every ``fake_quant`` node out again (its readers read its input)."""
    nodes = graph.nodes_of("fake_quant")
    for n in nodes:
        graph.replace_all_uses(n.output, n.inputs[0])  # the input keeps its own name
        graph.erase_node(n)
    return len(nodes)
