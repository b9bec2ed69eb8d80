"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018, torchvision's structure)."""

from __future__ import annotations

from lwc.ir.core import Graph, Value
from lwc.zoo.builder import NetBuilder, image_input

V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
             (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
"""(pointwise output channels, depthwise stride) of v1's 13 depthwise-separable layers."""

V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
"""(expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2."""


def mobilenet_v1(batch: int | str = 1, seed: int = 0, *, alpha: float = 1.0,
                 resolution: int = 224, classes: int = 1000) -> Graph:
    """MobileNet v1: a 3x3 stem then 13 depthwise 3x3 + pointwise 1x1 layers (each conv -> BN ->
    ReLU), global average pool and a 1000-way gemm. 1.0-224: 569M MACs, 4.2M parameters
    (the paper's rule, ``lwc.cost.graph_cost(g, PAPER_OPS)``: MACs of conv and gemm; parameters =
    conv/gemm weights and biases, batch norm excluded -- 568.7M and 4,210,088 here; with BN's four
    vectors per channel the total is 4,253,864, Keras's figure).

    ``alpha`` is the width multiplier (channels ``int(c * alpha)``, as Keras), ``resolution`` the
    input side (the paper's 224, 192, 160, 128).
    """
    b = NetBuilder("mobilenet_v1", seed)
    x = image_input(b, batch, 3, resolution)
    x = b.conv_bn(x, int(32 * alpha), 3, "stem", stride=2)
    for i, (c, s) in enumerate(V1_LAYERS, start=1):
        cin = int(x.type.shape[1])
        x = b.conv_bn(x, cin, 3, f"block{i}.dw", stride=s, group=cin)
        x = b.conv_bn(x, int(c * alpha), 1, f"block{i}.pw")
    return b.finish(b.classifier(x, classes))


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10% (torchvision)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _inverted_residual(b: NetBuilder, x: Value, cout: int, stride: int, t: int, name: str) -> Value:
    """Expand 1x1 (skipped when t == 1) -> depthwise 3x3 -> linear projection 1x1, plus the
    input when the shapes allow: the v2 block whose bottleneck carries no nonlinearity."""
    cin = int(x.type.shape[1])
    hidden = cin * t
    y = x if t == 1 else b.conv_bn(x, hidden, 1, f"{name}.expand", act="relu6")
    y = b.conv_bn(y, hidden, 3, f"{name}.dw", stride=stride, group=hidden, act="relu6")
    y = b.conv_bn(y, cout, 1, f"{name}.project", act="")
    if stride == 1 and cin == cout:
        y = b.add(x, y, f"{name}.add")
    return y


def mobilenet_v2(batch: int | str = 1, seed: int = 0, *, alpha: float = 1.0,
                 resolution: int = 224, classes: int = 1000) -> Graph:
    """MobileNet v2 as torchvision builds it: a 3x3 stem, 17 inverted residual blocks (ReLU6 =
    clip{min=0, max=6}; the first block has no expand conv), a 1x1 conv to 1280 channels, global
    average pool and a gemm. 1.0-224: 300.8M MACs; conv/gemm weights and biases 3,470,760, plus
    34,112 BN scales and shifts = torchvision's 3,504,872 (3,538,984 with the BN statistics)."""
    b = NetBuilder("mobilenet_v2", seed)
    x = image_input(b, batch, 3, resolution)
    x = b.conv_bn(x, make_divisible(32 * alpha), 3, "stem", stride=2, act="relu6")
    block = 0
    for t, c, n, s in V2_SETTINGS:
        for i in range(n):
            block += 1
            x = _inverted_residual(b, x, make_divisible(c * alpha), s if i == 0 else 1, t,
                                   f"block{block}")
    x = b.conv_bn(x, make_divisible(1280 * max(1.0, alpha)), 1, "head", act="relu6")
    return b.finish(b.classifier(x, classes))
