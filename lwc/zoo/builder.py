"""A small network builder: the layer vocabulary the zoo's architectures are written in.

Every layer is emitted unfused (conv, then batch_norm, then relu/clip) so that the zoo exercises
the fusion passes. Weights are drawn from one seeded generator in build order, so a model built
twice with the same seed is bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lwc.ir.core import Graph, Value
from lwc.ir.types import Dim, DType, TensorType


class NetBuilder:
    """Wraps a ``Graph`` with seeded weight initialisers and layer helpers.

    Conv and gemm weights are He-normal (std = sqrt(2 / fan_in)) so activations neither vanish
    nor explode through deep stacks; batch_norm statistics are randomised (gamma ~ U(0.5, 1.5),
    beta ~ N(0, 0.1), mean ~ N(0, 0.1), var ~ U(0.5, 1.5)) because the identity statistics of a
    fresh torch model make a folded BN indistinguishable from no BN at all.
    """

    def __init__(self, name: str, seed: int = 0) -> None:
        self.graph = Graph(name)
        self.rng = np.random.default_rng(seed)

    # ----- plumbing ---------------------------------------------------------------------------
    def input(self, shape: Sequence[Dim], name: str = "input") -> Value:
        return self.graph.add_input(name, TensorType(DType.F32, tuple(shape)))

    def const(self, data: np.ndarray, name: str) -> Value:
        return self.graph.add_constant(np.asarray(data, dtype=np.float32), name)

    def op(self, op: str, inputs: Sequence[Value], name: str, *, out: str | None = None,
           **attrs: object) -> Value:
        """Add one node; its result is named ``out`` if given, else after the node."""
        names = [out] if out else None
        return self.graph.add_node(op, inputs, attrs, name=name, output_names=names).output

    def finish(self, out: Value) -> Graph:
        """Make ``out`` the graph output and verify (the zoo's outputs are named ``output``)."""
        if out.name != "output":
            raise ValueError(f"zoo graph @{self.graph.name}: output is %{out.name}, not %output")
        self.graph.outputs = [out]
        self.graph.verify()
        return self.graph

    def he_normal(self, shape: Sequence[int], fan_in: int) -> np.ndarray:
        std = np.sqrt(2.0 / fan_in)
        return (self.rng.standard_normal(tuple(shape)) * std).astype(np.float32)

    # ----- layers -----------------------------------------------------------------------------
    def conv(self, x: Value, cout: int, k: int | tuple[int, int], name: str, *, stride: int = 1,
             pad: int | None = None, group: int = 1, bias: bool = False) -> Value:
        """2-D convolution; ``pad`` defaults to "same" for odd kernels (k // 2)."""
        kh, kw = (k, k) if isinstance(k, int) else k
        cin = int(x.type.shape[1])
        if cin % group or cout % group:
            raise ValueError(f"{name}: {cin}->{cout} channels do not divide into {group} groups")
        ph, pw = (kh // 2, kw // 2) if pad is None else (pad, pad)
        fan_in = cin // group * kh * kw
        w = self.const(self.he_normal((cout, cin // group, kh, kw), fan_in), f"{name}.weight")
        ins = [x, w]
        if bias:
            ins.append(self.const(self.rng.normal(0, 0.01, cout), f"{name}.bias"))
        return self.op("conv", ins, name, strides=(stride, stride), pads=(ph, pw, ph, pw),
                       group=group)

    def bn(self, x: Value, name: str) -> Value:
        c = int(x.type.shape[1])
        r = self.rng
        params = [r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c), r.normal(0, 0.1, c),
                  r.uniform(0.5, 1.5, c)]
        names = ("weight", "bias", "running_mean", "running_var")
        ins = [x] + [self.const(p, f"{name}.{n}") for p, n in zip(params, names)]
        return self.op("batch_norm", ins, name)

    def relu(self, x: Value, name: str) -> Value:
        return self.op("relu", [x], name)

    def relu6(self, x: Value, name: str) -> Value:
        return self.op("clip", [x], name, min=0.0, max=6.0)

    def act(self, x: Value, kind: str, name: str) -> Value:
        """Apply ``relu``, ``relu6`` or nothing (``""``)."""
        if kind == "relu":
            return self.relu(x, f"{name}.relu")
        if kind == "relu6":
            return self.relu6(x, f"{name}.relu6")
        if kind == "":
            return x
        raise ValueError(f"unknown activation {kind!r}")

    def conv_bn(self, x: Value, cout: int, k: int, name: str, *, stride: int = 1,
                pad: int | None = None, group: int = 1, act: str = "relu") -> Value:
        """conv (no bias) -> batch_norm -> activation: the unit of almost every modern CNN."""
        y = self.conv(x, cout, k, f"{name}.conv", stride=stride, pad=pad, group=group)
        y = self.bn(y, f"{name}.bn")
        return self.act(y, act, name)

    def max_pool(self, x: Value, k: int, stride: int, name: str, pad: int = 0,
                 ceil_mode: bool = False) -> Value:
        return self.op("max_pool", [x], name, kernel=(k, k), strides=(stride, stride),
                       pads=(pad,) * 4, ceil_mode=ceil_mode)

    def avg_pool(self, x: Value, k: int, stride: int, name: str, pad: int = 0) -> Value:
        return self.op("avg_pool", [x], name, kernel=(k, k), strides=(stride, stride),
                       pads=(pad,) * 4)

    def global_avg_pool(self, x: Value, name: str = "gap") -> Value:
        return self.op("global_avg_pool", [x], name)

    def flatten(self, x: Value, name: str = "flatten") -> Value:
        return self.op("flatten", [x], name, axis=1)

    def linear(self, x: Value, cout: int, name: str, out: str | None = None) -> Value:
        """A torch ``nn.Linear``: gemm with a [out, in] weight (trans_b) and a bias."""
        cin = int(x.type.shape[1])
        w = self.const(self.he_normal((cout, cin), cin), f"{name}.weight")
        b = self.const(self.rng.normal(0, 0.01, cout), f"{name}.bias")
        return self.op("gemm", [x, w, b], name, out=out, trans_b=True)

    def add(self, a: Value, b: Value, name: str) -> Value:
        return self.op("add", [a, b], name)

    def concat(self, xs: Sequence[Value], name: str, axis: int = 1) -> Value:
        return self.op("concat", list(xs), name, axis=axis)

    def classifier(self, x: Value, classes: int, name: str = "fc") -> Value:
        """global average pool -> flatten -> linear (result %output): the ImageNet models' head."""
        return self.linear(self.flatten(self.global_avg_pool(x)), classes, name, out="output")


def image_input(b: NetBuilder, batch: int | str, channels: int,
                size: int | tuple[int, int]) -> Value:
    """The NCHW float32 input ``input``."""
    h, w = (size, size) if isinstance(size, int) else size
    return b.input((batch, channels, h, w))
