"""``winograd_conv``: a stride-1 3x3 convolution by Winograd's minimal filtering F(m x m, 3 x 3).

Lavin & Gray (2016): per m x m output tile, Y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A with
an (m+2) x (m+2) input tile d. The weight transform U = G g G^T is precomputed (operand 1, shape
[a, a, Cout, Cin], a = m + 2), so the kernel is: input transform, a^2 batched GEMMs over channels,
output transform. F(2,3) uses points {0, 1, -1, inf}; F(4,3) adds {2, -2}, which amplifies
float32 rounding (the pass measures it per layer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import TensorType
from lwc.ops.conv import EPILOGUE_ATTRS, apply_activation, conv_out_dim
from lwc.ops.registry import Attr, Op, register_op

# (B^T, G, A^T) per output tile size m, from Lavin & Gray, "Fast Algorithms for Convolutional
# Neural Networks" (CVPR 2016), section 4.1/4.2.
MATRICES: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                  [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
        np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                  [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                  [0, 1, -1, 8, -8, 1]], np.float64)),
}


def winograd_weights(w: np.ndarray, tile: int) -> np.ndarray:
    """U[a, b, o, c] = (G w[o, c] G^T)[a, b] for OIHW 3x3 weights, computed in float64."""
    _, g, _ = MATRICES[tile]
    u = np.einsum("ak,ockl,bl->aboc", g, w.astype(np.float64), g)
    return u.astype(w.dtype)


def _tiles(sizes: tuple[int, int], tile: int) -> tuple[int, int]:
    return (-(-sizes[0] // tile), -(-sizes[1] // tile))


def winograd_compute(x: np.ndarray, u: np.ndarray, tile: int,
                     pads: Sequence[int]) -> np.ndarray:
    """The conv result [N, Cout, Ho, Wo] (no bias), in x's dtype throughout."""
    bt, _, at = (m.astype(x.dtype) for m in MATRICES[tile])
    a = tile + 2
    n, cin, h, w = x.shape
    cout = u.shape[2]
    ho, wo = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
    th, tw = _tiles((ho, wo), tile)
    # pad so the last tile is whole: th * m + 2 rows (extra rows only feed cropped outputs)
    xp = np.pad(x, [(0, 0), (0, 0), (pads[0], th * tile + 2 - h - pads[0]),
                    (pads[1], tw * tile + 2 - w - pads[1])])
    d = np.lib.stride_tricks.sliding_window_view(xp, (a, a), axis=(2, 3))[:, :, ::tile, ::tile]
    v = np.einsum("ax,ncijxy,by->abcnij", bt, d, bt, optimize=True)
    v = v.reshape(a, a, cin, n * th * tw)
    m = np.matmul(u, v)  # [a, a, Cout, P]: the a^2 GEMMs
    y = np.einsum("ra,abop,sb->oprs", at, m, at, optimize=True)  # [Cout, P, m, m]
    y = y.reshape(cout, n, th, tw, tile, tile).transpose(1, 0, 2, 4, 3, 5)
    y = y.reshape(n, cout, th * tile, tw * tile)[:, :, :ho, :wo]
    return np.ascontiguousarray(y, dtype=x.dtype)


@register_op
class WinogradConv(Op):
    """Stride-1, undilated 3x3 conv (group 1) with pre-transformed weights [a, a, Cout, Cin],
    optional bias and the conv epilogue (``act``, ``residual``); ``tile`` is m (2 or 4)."""

    name = "winograd_conv"
    num_inputs = (2, 4)
    attrs = {
        "tile": Attr("int", 2, "output tile m of F(m x m, 3 x 3): 2 or 4"),
        "pads": Attr("ints", (0, 0, 0, 0), "[top, left, bottom, right] as in ONNX"),
        **EPILOGUE_ATTRS,
    }

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, u = ins[0], ins[1]
        tile, pads = attrs["tile"], attrs["pads"]
        if tile not in MATRICES:
            raise ValueError(f"winograd tile must be one of {sorted(MATRICES)}, got {tile}")
        if x.rank != 4 or u.rank != 4 or len(pads) != 4:
            raise ValueError(f"winograd_conv needs NCHW input and 4 pads, got {x} and {pads}")
        a = tile + 2
        cin = x.shape[1]
        if tuple(u.shape[:2]) != (a, a) or (isinstance(cin, int) and u.shape[3] != cin):
            raise ValueError(f"weights {u} do not fit F({tile},3) on input {x}")
        cout = u.shape[2]
        nb = 3 if attrs["residual"] else 2
        if len(ins) > nb and (ins[2].rank != 1 or ins[2].shape[0] != cout):
            raise ValueError(f"bias {ins[2]} must be [{cout}]")
        sp = [conv_out_dim(x.shape[2 + i], 3, 1, pads[i], pads[2 + i], 1) for i in range(2)]
        out = TensorType(x.dtype, (x.shape[0], cout, *sp))
        if attrs["residual"] and ins[-1].shape != out.shape:
            raise ValueError(f"residual {ins[-1]} does not match output {out}")
        return [out]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, u = xs[0], xs[1]
        y = winograd_compute(x, u, attrs["tile"], attrs["pads"])
        has_bias = len(xs) > (3 if attrs["residual"] else 2)
        if has_bias:
            y = y + xs[2].reshape(1, -1, 1, 1)
        if attrs["residual"]:
            y = y + xs[-1]
        y = apply_activation(y, attrs["act"], attrs["alpha"], attrs["clip_min"], attrs["clip_max"])
        return [y.astype(x.dtype, copy=False)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        """Multiplies of the elementwise (GEMM) stage: a^2 * Cout * Cin per tile; the transforms
        are mostly additions and are not counted (the convention of Lavin & Gray)."""
        n, cout, ho, wo = outs[0].concrete_shape()
        a = attrs["tile"] + 2
        th, tw = _tiles((ho, wo), attrs["tile"])
        cin = ins[1].concrete_shape()[3]
        return n * th * tw * a * a * cout * cin
