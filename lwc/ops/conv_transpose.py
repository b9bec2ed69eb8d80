"""Transposed convolution (the gradient of conv; decoders and upsampling heads), ONNX semantics.

Weights are [Cin, Cout/group, k...]. Per spatial axis the output extent is
``stride * (in - 1) + output_padding + dilation * (k - 1) + 1 - pad_lo - pad_hi``. The reference
kernel rewrites it as a stride-1 conv of the zero-stuffed input with flipped, transposed weights,
so it shares conv's tested kernel. MACs at batch 1: input elements * Cout/group * prod(kernel)
(every input element meets every kernel tap once, the same count as the conv it is the gradient of).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lwc.ir.types import Dim, TensorType
from lwc.ops.conv import WINDOW_ATTRS, conv_reference, spatial_attrs
from lwc.ops.registry import Attr, Op, register_op


def conv_transpose_out_dim(size: Dim, k: int, stride: int, pad_lo: int, pad_hi: int,
                           dilation: int, output_padding: int) -> Dim:
    """Output extent along one spatial axis; symbols pass through."""
    if isinstance(size, str):
        return size
    out = stride * (size - 1) + output_padding + dilation * (k - 1) + 1 - pad_lo - pad_hi
    if out < 1:
        raise ValueError(f"pads {pad_lo}+{pad_hi} leave no output from input extent {size}")
    return out


def _output_padding(attrs: Mapping[str, Any], nsp: int) -> tuple[int, ...]:
    op = attrs["output_padding"] or (0,) * nsp
    if len(op) != nsp:
        raise ValueError(f"output_padding {list(op)} does not fit {nsp} spatial axes")
    return tuple(op)


@register_op
class ConvTranspose(Op):
    """Transposed convolution over NC<spatial> input; inputs (x, w[Cin, Cout/g, k...], [bias])."""

    name = "conv_transpose"
    num_inputs = (2, 3)
    attrs = {
        **WINDOW_ATTRS,
        "group": Attr("int", 1),
        "output_padding": Attr("ints", ()),
    }

    def infer(self, ins: Sequence[TensorType], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, w = ins[0], ins[1]
        nsp = x.rank - 2
        if nsp < 1 or w.rank != x.rank:
            raise ValueError(f"input {x} and weight {w} must both be rank >= 3 and equal")
        g = attrs["group"]
        if isinstance(x.shape[1], int) and isinstance(w.shape[0], int) and x.shape[1] != w.shape[0]:
            raise ValueError(f"weight {w} expects {w.shape[0]} input channels, input {x} has "
                             f"{x.shape[1]}")
        if isinstance(w.shape[0], int) and w.shape[0] % g:
            raise ValueError(f"{w.shape[0]} input channels do not divide into {g} groups")
        cout = w.shape[1] * g if isinstance(w.shape[1], int) else w.shape[1]
        if len(ins) > 2 and (ins[2].rank != 1 or ins[2].shape[0] != cout):
            raise ValueError(f"bias {ins[2]} must be [{cout}]")
        strides, dil, pads = spatial_attrs(attrs, nsp)
        opad = _output_padding(attrs, nsp)
        spatial = [conv_transpose_out_dim(x.shape[2 + i], int(w.shape[2 + i]), strides[i], pads[i],
                                          pads[nsp + i], dil[i], opad[i]) for i in range(nsp)]
        return [TensorType(x.dtype, (x.shape[0], cout, *spatial))]

    def compute(self, xs: Sequence[np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x, w = xs[0], xs[1]
        bias = xs[2] if len(xs) > 2 else None
        return [conv_transpose_reference(x, w, bias, attrs)]

    def macs(self, ins: Sequence[TensorType], outs: Sequence[TensorType],
             attrs: Mapping[str, Any]) -> int:
        w = ins[1].concrete_shape()
        return ins[0].numel() * int(np.prod(w[1:]))


def conv_transpose_reference(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                             attrs: Mapping[str, Any]) -> np.ndarray:
    """Zero-stuff the input by the stride, pad it by ``dilation*(k-1) - pad`` (cropping where that
    is negative) and run a stride-1 conv with each group's weights transposed and flipped."""
    nsp = x.ndim - 2
    strides, dil, pads = spatial_attrs(attrs, nsp)
    opad = _output_padding(attrs, nsp)
    g = attrs["group"]
    n, cin = x.shape[:2]
    stuffed = np.zeros((n, cin, *[(s - 1) * st + 1 for s, st in zip(x.shape[2:], strides)]),
                       dtype=x.dtype)
    stuffed[(slice(None), slice(None), *[slice(None, None, st) for st in strides])] = x
    crop, widths = [slice(None), slice(None)], [(0, 0), (0, 0)]
    for i in range(nsp):
        full = dil[i] * (w.shape[2 + i] - 1)
        lo, hi = full - pads[i], full - pads[nsp + i] + opad[i]
        widths.append((max(lo, 0), max(hi, 0)))
        padded_len = stuffed.shape[2 + i] + max(lo, 0) + max(hi, 0)
        crop.append(slice(max(-lo, 0), padded_len - max(-hi, 0)))  # negative pads crop
    xp = np.pad(stuffed, widths)[tuple(crop)]
    cg, og = cin // g, w.shape[1]
    wt = w.reshape(g, cg, og, *w.shape[2:]).swapaxes(1, 2).reshape(g * og, cg, *w.shape[2:])
    wt = np.flip(wt, axis=tuple(range(2, 2 + nsp)))
    conv_attrs = {"strides": (), "pads": (), "dilations": dil, "group": g}
    return conv_reference(xp, np.ascontiguousarray(wt), bias, conv_attrs)
