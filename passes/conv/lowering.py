"""Conv as matmul: the shared back half of ``im2col`` and ``conv1x1-to-gemm``.

Given columns ``[N, C*K, P]`` (K = kernel taps, P = output positions), a conv with g groups is
``W[g, Cout/g, C/g*K] @ cols[N, g, C/g*K, P]`` -> ``[N, g, Cout/g, P]``, reshaped to
``[N, Cout, *out]``; bias, residual and activation follow as plain ops. Exact: the same sums in a
different order.
"""

from __future__ import annotations

import numpy as np

from lwc.ir.core import Node, Value
from lwc.rewrite import Rewriter
from lwc.passes.conv.common import ConvParts, const_of, cost_record, emit_epilogue


def lower_to_matmul(rw: Rewriter, p: ConvParts, cols: Value, first: list[Node]) -> None:
    """Replace conv ``p`` by matmul(s) over ``cols``; ``first`` = nodes already made for it
    (im2col / reshape), included in the cost record."""
    conv = p.node
    name = conv.label
    out_t = conv.output.type
    g = p.attrs["group"]
    cout = p.w.shape[0]
    rows = int(np.prod(p.w.shape[1:]))  # C/g * K
    npos = cols.type.shape[2]
    if g == 1:
        w = const_of(rw, p.w.reshape(cout, rows), p.w, f"{name}.w2d")
        y = rw.create("matmul", w, cols, name=f"{name}.matmul")
    else:
        grouped = rw.create("reshape", cols, attrs={"shape": (0, g, rows, npos)},
                            name=f"{name}.cols_g")
        first = [*first, grouped]
        w = const_of(rw, p.w.reshape(g, cout // g, rows), p.w, f"{name}.w3d")
        y = rw.create("matmul", w, grouped.output, name=f"{name}.matmul")
    made = [*first, y]
    out = rw.create("reshape", y.output, attrs={"shape": (0, cout, *out_t.shape[2:])},
                    name=f"{name}.reshape")
    made.append(out)
    v = out.output
    if p.bias is not None:
        b = p.bias.data
        if b is None:
            bias = rw.create("reshape", p.bias, attrs={"shape": (cout,) + (1,) * p.nsp},
                             name=f"{name}.bias_r").output
        else:
            bias = const_of(rw, np.asarray(b).reshape((cout,) + (1,) * p.nsp), np.asarray(b),
                            f"{name}.bias")
        add = rw.create("add", v, bias, name=f"{name}.bias_add")
        made.append(add)
        v = add.output
    v = emit_epilogue(rw, v, p.epilogue(), p.residual, name)
    rw.record(conv, **cost_record([conv], made), lowered_to="matmul")
    rw.replace(conv, v)
