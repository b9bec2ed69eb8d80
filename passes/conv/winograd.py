"""``winograd{tile=2|4}``: stride-1 3x3 convs as ``winograd_conv`` with pre-transformed weights.

F(m x m, 3 x 3) needs (m+2)^2 multiplies per m x m output tile and channel pair instead of 9 m^2:
2.25x fewer for m=2, 4x fewer for m=4 (counted by ``winograd_conv``'s ``macs``). Exact in real
arithmetic; in float32 the transforms add rounding, which the pass measures per layer on a seeded
random input against a float64 direct conv and records next to the float32 direct conv's own
error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwc.ir.core import Graph
from lwc.ops.conv import conv_reference
from lwc.ops.winograd import MATRICES, winograd_compute, winograd_weights
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.rewrite import Rewriter
from lwc.passes.conv.common import ConvParts, const_of, convs, cost_record, spatial_kind


def eligible(p: ConvParts) -> bool:
    """3x3, stride 1, undilated, ungrouped 2-d conv with concrete spatial input dims."""
    return (spatial_kind(p) and p.kernel == (3, 3) and p.strides() == (1, 1)
            and p.dilations() == (1, 1) and p.attrs["group"] == 1
            and all(isinstance(d, int) for d in p.x.type.shape[2:]))


def measure_error(p: ConvParts, u: np.ndarray, tile: int, seed: int) -> tuple[float, float]:
    """(winograd error, direct float32 error): max |y - y64| / max |y64| on one random input."""
    rng = np.random.default_rng(seed)
    shape = (1, *(int(d) for d in p.x.type.shape[1:]))
    x = rng.standard_normal(shape).astype(p.w.dtype)
    attrs = {"strides": (), "pads": p.pads(), "dilations": (), "group": 1}
    ref = conv_reference(x.astype(np.float64), p.w.astype(np.float64), None, attrs)
    scale = float(np.max(np.abs(ref))) or 1.0
    wino = winograd_compute(x, u, tile, p.pads())
    direct = conv_reference(x, p.w, None, attrs)
    return (float(np.max(np.abs(wino - ref))) / scale,
            float(np.max(np.abs(direct - ref))) / scale)


@register_pass
@dataclass(frozen=True)
class Winograd(Pass):
    """Rewrite stride-1 3x3 convs as Winograd F(tile x tile, 3x3) (exact up to float rounding).

    ``tile`` is 2 or 4; a layer whose measured relative error exceeds ``max_error`` is kept as
    a direct conv. Each rewritten layer records MACs/params before/after and ``error``.
    """

    name: ClassVar[str] = "winograd"
    exact: ClassVar[bool] = True
    tile: int = 2
    max_error: float = 1e-3

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if self.tile not in MATRICES:
            from lwc.errors import PassError
            raise PassError(f"pass winograd: tile must be one of {sorted(MATRICES)}, "
                            f"got {self.tile}")
        done = refused = 0
        for p in convs(graph):
            if not eligible(p):
                continue
            conv = p.node
            u = winograd_weights(p.w, self.tile)
            err, direct_err = measure_error(p, u, self.tile, ctx.seed)
            if err > self.max_error:
                ctx.record(conv, refused=True, error=err, max_error=self.max_error)
                refused += 1
                continue
            rw = Rewriter(graph, conv, ctx)
            attrs = {**p.epilogue(), "tile": self.tile, "pads": p.pads(),
                     "residual": p.attrs["residual"]}
            new = rw.create("winograd_conv", p.x, const_of(rw, u, p.w, f"{conv.label}.wino"),
                            *p.tail(), attrs=attrs, name=conv.name)
            stats = cost_record([conv], [new])
            rw.replace(conv, new)
            rw.record(new, **stats, tile=self.tile, error=err, direct_error=direct_err)
            done += 1
        if done:
            graph.remove_unused_constants()
        return PassResult(changed=bool(done), stats={"rewritten": done, "refused": refused})
