"""``im2col``: unfold sliding windows into a column matrix, so a convolution becomes one GEMM.

Output ``[N, C * prod(kernel), prod(out_spatial)]``; row ``c * prod(kernel) + tap`` holds channel
``c`` at kernel tap ``tap`` (row-major over the kernel), which is the order of
``W.reshape(Cout, Cin * prod(kernel))``, so ``conv(x, W) == W2d @ im2col(x)`` (per group).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import TensorType
from lwc.ops.conv import WINDOW_ATTRS, conv_out_dim, sliding_windows, spatial_attrs
from lwc.ops.registry import Attr, Op, register_op


def _prod(xs: Sequence[Any]) -> Any:
    out: Any = 1
    for d in xs:
        if isinstance(d, str):
            return d
        out *= d
    return out


@register_op
class Im2Col(Op):
    """Unfold NC<spatial> input into [N, C*prod(kernel), prod(out_spatial)] columns (zero pads)."""

    name = "im2col"
    attrs = {
        "kernel": Attr("ints"),
        **WINDOW_ATTRS,
    }

    def out_spatial(self, x: TensorType, attrs: Mapping[str, Any]) -> list[Any]:
        kernel = attrs["kernel"]
        nsp = len(kernel)
        if x.rank != nsp + 2:
            raise ValueError(f"im2col input {x} does not fit a {nsp}-d kernel")
        strides, dil, pads = spatial_attrs(attrs, nsp)
        return [conv_out_dim(x.shape[2 + i], kernel[i], strides[i], pads[i], pads[nsp + i],
                             dil[i]) for i in range(nsp)]

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x = ins[0]
        sp = self.out_spatial(x, attrs)
        c = x.shape[1]
        rows = c * int(np.prod(attrs["kernel"])) if isinstance(c, int) else c
        return [TensorType(x.dtype, (x.shape[0], rows, _prod(sp)))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = xs[0]
        kernel = attrs["kernel"]
        nsp = len(kernel)
        strides, dil, pads = spatial_attrs(attrs, nsp)
        pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[nsp + i]) for i in range(nsp)]
        xp = np.pad(x, pad_width) if any(pads) else x
        win = sliding_windows(xp, kernel, strides, dil)  # N, C, *out, *k
        order = (0, 1, *range(2 + nsp, 2 + 2 * nsp), *range(2, 2 + nsp))
        n, c = x.shape[:2]
        cols = win.transpose(order).reshape(n, c * int(np.prod(kernel)), -1)
        return [np.ascontiguousarray(cols)]
