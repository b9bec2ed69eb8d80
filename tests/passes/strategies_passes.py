"""Hypothesis strategy for graphs full of what the canonical passes rewrite: conv (groups,
strides, pads, dilations) -> batch_norm -> bias add -> residual add -> activation chains, with
identities, dropouts, transpose pairs, reshape chains, duplicate nodes and dead branches mixed in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st

from lwc.ir import DType, Graph, TensorType, Value

Draw = Callable[[st.SearchStrategy], object]

ACTS = ("relu", "relu6", "clip", "leaky_relu", "hard_swish", "sigmoid")


class _Builder:
    def __init__(self, draw: Draw, seed: int) -> None:
        self.draw = draw
        self.rng = np.random.default_rng(seed)
        self.g = Graph("passes")

    def w(self, *shape: int, scale: float = 1.0, positive: bool = False) -> Value:
        arr = self.rng.standard_normal(shape) * scale
        arr = np.abs(arr) + 0.5 if positive else arr
        return self.g.add_constant(arr.astype(np.float32), "k")

    def pick(self, pool: list[Value]) -> Value:
        return self.draw(st.sampled_from(pool))  # type: ignore[return-value]

    def node(self, op: str, ins: list[Value], attrs: dict | None = None) -> Value:
        return self.g.add_node(op, ins, attrs or {}).output

    # ----- pieces ---------------------------------------------------------------------------
    def conv(self, x: Value) -> Value | None:
        d = self.draw
        cin, h, wd = (int(s) for s in x.type.shape[1:])
        group = d(st.sampled_from([g for g in range(1, cin + 1) if cin % g == 0]))
        cout = group * d(st.integers(1, 3))
        k = [d(st.integers(1, 3)), d(st.integers(1, 3))]
        strides = [d(st.integers(1, 2)), d(st.integers(1, 2))]
        dil = [d(st.integers(1, 2)), d(st.integers(1, 2))]
        pads = [d(st.integers(0, 2)) for _ in range(4)]
        for i, size in enumerate((h, wd)):
            if dil[i] * (k[i] - 1) + 1 > size + pads[i] + pads[2 + i]:
                return None
        fan_in = (cin // group) * k[0] * k[1]
        ins = [x, self.w(cout, cin // group, *k, scale=fan_in ** -0.5)]
        if d(st.booleans()):
            ins.append(self.w(cout))
        return self.node("conv", ins, {"strides": strides, "pads": pads, "dilations": dil,
                                       "group": group})

    def batch_norm(self, x: Value) -> Value:
        c = int(x.type.shape[1])
        return self.node("batch_norm", [x, self.w(c, positive=True), self.w(c), self.w(c),
                                        self.w(c, positive=True)])

    def bias_add(self, x: Value) -> Value:
        c = int(x.type.shape[1])
        shape = self.draw(st.sampled_from([(c, 1, 1), (1, c, 1, 1), (1,), ()]))
        k = self.w(*shape)
        if self.draw(st.booleans()):  # a constant subexpression for const-fold
            k = self.node("mul", [k, self.w(*shape)])
        return self.node("add", [x, k] if self.draw(st.booleans()) else [k, x])

    def act(self, x: Value) -> Value:
        a = self.draw(st.sampled_from(ACTS))
        if a == "relu6":
            return self.node("clip", [x], {"min": 0.0, "max": 6.0})
        if a == "clip":
            return self.node("clip", [x], {"min": -1.0, "max": 1.5})
        if a == "leaky_relu":
            return self.node("leaky_relu", [x], {"alpha": 0.1})
        return self.node(a, [x])

    def noise(self, x: Value) -> Value:
        """Ops the cleanup passes remove or simplify, returning a value of x's type."""
        kind = self.draw(st.sampled_from(["identity", "dropout", "transpose2", "reshape2",
                                          "flatten_reshape", "dup", "dead"]))
        n, c, h, w = x.type.shape
        if kind in ("identity", "dropout"):
            return self.node(kind, [x])
        if kind == "transpose2":
            t = self.node("transpose", [x], {"perm": (0, 2, 3, 1)})
            return self.node("transpose", [t], {"perm": (0, 3, 1, 2)})
        if kind == "reshape2":
            r = self.node("reshape", [x], {"shape": (0, int(c) * int(h), int(w))})
            r = self.node("reshape", [r], {"shape": (0, int(c), int(h) * int(w))})
            return self.node("reshape", [r], {"shape": (0, int(c), int(h), int(w))})
        if kind == "flatten_reshape":
            f = self.node("flatten", [x])
            return self.node("reshape", [f], {"shape": (-1, int(c), int(h), int(w))}) \
                if isinstance(n, int) else x
        if kind == "dup":
            a, b = self.node("relu", [x]), self.node("relu", [x])
            return self.node("add", [a, b])
        self.node("sigmoid", [x])  # dead: nothing reads it
        return x


@st.composite
def pass_graphs(draw: Draw, max_blocks: int = 4) -> Graph:
    """A verified graph of 1..max_blocks conv blocks with the noise the passes clean up."""
    b = _Builder(draw, draw(st.integers(0, 2**32 - 1)))
    batch = draw(st.sampled_from([1, 2, "N"]))
    x = b.g.add_input("x", TensorType(DType.F32, (batch, draw(st.integers(1, 6)),
                                                  draw(st.integers(3, 8)),
                                                  draw(st.integers(3, 8)))))
    pool, cur = [x], x
    for _ in range(draw(st.integers(1, max_blocks))):
        y = b.conv(cur)
        if y is None:
            continue
        if draw(st.booleans()):
            y = b.batch_norm(y)
        if draw(st.booleans()):
            y = b.bias_add(y)
        same = [v for v in pool if v.type == y.type]
        if same and draw(st.booleans()):
            r = b.pick(same)
            y = b.node("add", [y, r] if draw(st.booleans()) else [r, y])
        if draw(st.booleans()):
            y = b.act(y)
        if draw(st.booleans()):
            y = b.noise(y)
        pool.append(y)
        cur = y
    outs = [cur]
    if len(pool) > 2 and draw(st.booleans()):
        extra = b.pick(pool[1:-1])
        if all(extra is not o for o in outs):
            outs.append(extra)  # an intermediate that is also an output: fusion must keep it
    b.g.outputs = outs
    b.g.remove_unused_constants()
    b.g.verify()
    return b.g
