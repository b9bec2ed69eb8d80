"""Hypothesis strategy for chains of convs aimed at one rewrite (3x3 stride 1 for Winograd, 1x1
unpadded for conv1x1-to-gemm, anything for im2col), with random channels, groups, pads, bias,
fused activation and residual, so every generated graph exercises the rewrite."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from lwc.ir import DType, Graph, TensorType

Draw = Callable[[st.SearchStrategy], object]
ACTS = ("", "relu", "relu6", "leaky_relu", "hard_swish", "sigmoid", "clip")


@st.composite
def conv_chains(draw: Draw, kind: str = "any", max_convs: int = 3) -> Graph:
    """``kind``: "winograd" (3x3, stride 1, group 1), "pointwise" (1x1, stride 1, no pads) or
    "any" (kernel 1..3, stride 1..2, dilation 1..2, groups)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    g = Graph("chain")
    batch = draw(st.sampled_from([1, 2, "N"]))
    c = draw(st.integers(1, 6))
    h, w = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    x = g.add_input("x", TensorType(DType.F32, (batch, c, h, w)))
    cur = x
    for i in range(draw(st.integers(1, max_convs))):
        cin = int(cur.type.shape[1])
        group, k, stride, dil, pads = 1, (3, 3), (1, 1), (1, 1), [0, 0, 0, 0]
        if kind == "winograd":
            pads = [draw(st.integers(0, 2)) for _ in range(4)]
        elif kind == "pointwise":
            k = (1, 1)
            group = draw(st.sampled_from([d for d in range(1, cin + 1) if cin % d == 0]))
        else:
            k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
            stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            pads = [draw(st.integers(0, 2)) for _ in range(4)]
            group = draw(st.sampled_from([d for d in range(1, cin + 1) if cin % d == 0]))
        hh, ww = (int(d) for d in cur.type.shape[2:])
        if any(dil[j] * (k[j] - 1) + 1 > size + pads[j] + pads[2 + j]
               for j, size in enumerate((hh, ww))):
            break
        cout = group * draw(st.integers(1, 3))
        wt = (rng.standard_normal((cout, cin // group, *k)) * (cin // group * k[0] * k[1]) ** -0.5)
        ins = [cur, g.add_constant(wt.astype(np.float32), "w")]
        if draw(st.booleans()):
            ins.append(g.add_constant(rng.standard_normal(cout).astype(np.float32), "b"))
        attrs = {"group": group, "strides": stride, "dilations": dil, "pads": pads,
                 "act": draw(st.sampled_from(ACTS))}
        conv = g.add_node("conv", ins, attrs, name=f"conv{i}")
        if conv.output.type == cur.type and draw(st.booleans()):  # a fused residual
            g.nodes.remove(conv)
            conv.drop_inputs()
            g._names.discard(conv.output.name)
            conv = g.add_node("conv", [*ins, cur], {**attrs, "residual": True}, name=f"conv{i}")
        cur = conv.output
    assume(g.nodes)  # the first conv's window may not fit the input
    g.outputs = [cur]
    g.remove_unused_constants()
    g.verify()
    return g
