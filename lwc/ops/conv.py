"""Convolution (1-D, 2-D and 3-D, grouped, dilated, padded): the op most of a CNN's MACs live in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import Dim, TensorType
from lwc.ops.registry import Attr, Op, register_op

ACTIVATIONS = ("", "relu", "relu6", "hard_swish", "leaky_relu", "sigmoid", "clip")
"""Activations a producer op may carry in its ``act`` attribute once fusion has run."""


def conv_out_dim(size: Dim, k: int, stride: int, pad_lo: int, pad_hi: int, dilation: int,
                 ceil_mode: bool = False) -> Dim:
    """Output extent along one spatial axis; symbols pass through unchanged."""
    if isinstance(size, str):
        return size
    span = dilation * (k - 1) + 1
    num = size + pad_lo + pad_hi - span
    if num < 0:
        raise ValueError(f"window {span} larger than padded input {size + pad_lo + pad_hi}")
    out = (num + stride - 1) // stride + 1 if ceil_mode else num // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_lo:
        out -= 1  # the last window must start inside the input or its left padding
    return out


def spatial_attrs(attrs: Mapping[str, Any], nsp: int) -> tuple[tuple[int, ...], ...]:
    """(strides, dilations, pads) expanded to ``nsp`` spatial axes; pads are [lo..., hi...]."""
    strides = attrs["strides"] or (1,) * nsp
    dil = attrs.get("dilations") or (1,) * nsp
    pads = attrs["pads"] or (0,) * (2 * nsp)
    if len(strides) != nsp or len(dil) != nsp or len(pads) != 2 * nsp:
        raise ValueError(f"strides/dilations/pads do not fit {nsp} spatial axes")
    return tuple(strides), tuple(dil), tuple(pads)


def apply_activation(y: np.ndarray, act: str, alpha: float = 0.01,
                     lo: float = 0.0, hi: float = 6.0) -> np.ndarray:
    """The fused epilogue shared by conv, gemm and friends."""
    if act == "":
        return y
    if act == "relu":
        return np.maximum(y, 0)
    if act == "relu6":
        return np.clip(y, 0, 6)
    if act == "clip":
        return np.clip(y, lo, hi)
    if act == "leaky_relu":
        return np.where(y >= 0, y, y * np.float32(alpha)).astype(y.dtype)
    if act == "hard_swish":
        return y * np.clip(y / np.float32(6) + np.float32(0.5), 0, 1)
    if act == "sigmoid":
        return (1.0 / (1.0 + np.exp(-y))).astype(y.dtype)
    raise ValueError(f"unknown activation {act!r}; known: {', '.join(a for a in ACTIVATIONS if a)}")


def sliding_windows(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
                    dilations: Sequence[int]) -> np.ndarray:
    """View of shape (N, C, *out_spatial, *kernel) over an already padded input (no copy)."""
    nsp = len(kernel)
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    win = np.lib.stride_tricks.sliding_window_view(x, span, axis=tuple(range(2, 2 + nsp)))
    idx = (slice(None), slice(None))
    idx += tuple(slice(None, None, s) for s in strides)
    idx += tuple(slice(None, None, d) for d in dilations)
    return win[idx]


WINDOW_ATTRS: dict[str, Attr] = {
    "strides": Attr("ints", ()),
    "pads": Attr("ints", (), "[lo_0, lo_1, ..., hi_0, hi_1, ...] as in ONNX"),
    "dilations": Attr("ints", ()),
}
"""Sliding-window attributes shared by conv, conv_transpose, im2col and pooling."""

EPILOGUE_ATTRS: dict[str, Attr] = {
    "act": Attr("str", ""),
    "alpha": Attr("float", 0.01),
    "clip_min": Attr("float", 0.0),
    "clip_max": Attr("float", 6.0),
    "residual": Attr("bool", False, "last operand is added to the result before act"),
}
"""The fused epilogue (``apply_activation``) of conv-like ops."""


@register_op
class Conv(Op):
    """Convolution over NC<spatial> input with OI/g<kernel> weights, optional bias and fused
    epilogue (``act``, ``residual`` = a trailing operand added before the activation)."""

    name = "conv"
    num_inputs = (2, 4)
    attrs = {
        **WINDOW_ATTRS,
        "group": Attr("int", 1),
        **EPILOGUE_ATTRS,
    }

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, w = ins[0], ins[1]
        nsp = x.rank - 2
        if nsp < 1 or w.rank != x.rank:
            raise ValueError(f"input {x} and weight {w} must both be rank >= 3 and equal")
        g = attrs["group"]
        cin = x.shape[1]
        if isinstance(cin, int) and isinstance(w.shape[1], int) and w.shape[1] * g != cin:
            raise ValueError(f"weight {w} has {w.shape[1]} input channels per group, input {x} "
                             f"has {cin} (group={g})")
        if isinstance(w.shape[0], int) and w.shape[0] % g:
            raise ValueError(f"{w.shape[0]} output channels do not divide into {g} groups")
        nb = 3 if attrs["residual"] else 2
        if len(ins) > nb and (ins[2].rank != 1 or ins[2].shape[0] != w.shape[0]):
            raise ValueError(f"bias {ins[2]} must be [{w.shape[0]}]")
        strides, dil, pads = spatial_attrs(attrs, nsp)
        spatial = [conv_out_dim(x.shape[2 + i], int(w.shape[2 + i]), strides[i], pads[i],
                                pads[nsp + i], dil[i]) for i in range(nsp)]
        out = TensorType(x.dtype, (x.shape[0], w.shape[0], *spatial))
        if attrs["residual"] and ins[-1].shape != out.shape:
            raise ValueError(f"residual {ins[-1]} does not match output {out}")
        return [out]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, w = xs[0], xs[1]
        residual = xs[-1] if attrs["residual"] else None
        bias = xs[2] if len(xs) > (3 if attrs["residual"] else 2) else None
        y = conv_reference(x, w, bias, attrs)
        if residual is not None:
            y = y + residual
        act = apply_activation(y, attrs["act"], attrs["alpha"], attrs["clip_min"],
                               attrs["clip_max"])
        return [act.astype(x.dtype, copy=False)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        """Output elements * Cin/group * prod(kernel), the count the MobileNet papers use (bias,
        residual and activation are not multiply-accumulates)."""
        w = ins[1].concrete_shape()
        per_output = int(np.prod(w[1:]))  # Cin/g * prod(kernel)
        return outs[0].numel() * per_output


def conv_reference(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                   attrs: Mapping[str, Any]) -> np.ndarray:
    """Direct convolution: im2col + one batched GEMM over the groups (BLAS does the work), or for
    depthwise convs (one input channel per group) a loop over kernel taps of whole-tensor
    multiply-adds, which beats hundreds of tiny GEMMs. float32 in, float32 accumulation."""
    nsp = x.ndim - 2
    strides, dil, pads = spatial_attrs(attrs, nsp)
    g = attrs["group"]
    n, c = x.shape[:2]
    cout, kernel = w.shape[0], w.shape[2:]
    cg, og = c // g, cout // g
    pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[nsp + i]) for i in range(nsp)]
    xp = np.pad(x, pad_width) if any(pads) else x
    out_sp = tuple((xp.shape[2 + i] - dil[i] * (kernel[i] - 1) - 1) // strides[i] + 1
                   for i in range(nsp))
    if cg == 1 and g > 1:
        y = _depthwise(xp, w.reshape(g, og, *kernel), strides, dil, out_sp)
    else:
        y = _im2col_gemm(xp, w, g, strides, dil, out_sp)
    y = y.reshape(n, cout, *out_sp)
    if bias is not None:
        y = y + bias.reshape((1, cout) + (1,) * nsp)
    return y.astype(x.dtype, copy=False)


def _im2col_gemm(xp: np.ndarray, w: np.ndarray, g: int, strides: Sequence[int],
                 dil: Sequence[int], out_sp: Sequence[int]) -> np.ndarray:
    """(N, Cout, P) = per group W[og, cg*K] @ cols[cg*K, P]; a 1x1 stride-1 conv needs no copy."""
    n, c = xp.shape[:2]
    nsp = len(out_sp)
    kernel = w.shape[2:]
    cout = w.shape[0]
    ksize, p = int(np.prod(kernel)), int(np.prod(out_sp))
    if ksize == 1 and all(s == 1 for s in strides):
        cols = xp.reshape(n, g, c // g, p)
    else:
        win = sliding_windows(xp, kernel, strides, dil)  # N, C, *out, *k
        order = (0, 1, *range(2 + nsp, 2 + 2 * nsp), *range(2, 2 + nsp))
        cols = win.transpose(order).reshape(n, g, (c // g) * ksize, p)
    wm = w.reshape(g, cout // g, -1)
    return np.matmul(wm, cols)  # (N, g, og, P)


def _depthwise(xp: np.ndarray, w: np.ndarray, strides: Sequence[int], dil: Sequence[int],
               out_sp: Sequence[int]) -> np.ndarray:
    """Depthwise conv (w: [g, multiplier, *k]) as one multiply-add per kernel tap."""
    n, g = xp.shape[:2]
    og, kernel = w.shape[1], w.shape[2:]
    y = np.zeros((n, g, og, *out_sp), dtype=np.result_type(xp, w))
    for tap in np.ndindex(*kernel):
        sl = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                   for t, d, s, o in zip(tap, dil, strides, out_sp))
        patch = xp[(slice(None), slice(None), *sl)][:, :, None]
        y += patch * w[(slice(None), slice(None), *tap)].reshape(1, g, og, *([1] * len(out_sp)))
    return y
