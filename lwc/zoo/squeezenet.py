"""SqueezeNet 1.1 (Iandola et al. 2016; the v1.1 revision in torchvision): fire modules."""

from __future__ import annotations

from lwc.ir.core import Graph, Value
from lwc.zoo.builder import NetBuilder, image_input

FIRES = ((16, 64), (16, 64), "pool", (32, 128), (32, 128), "pool",
         (48, 192), (48, 192), (64, 256), (64, 256))
"""(squeeze channels, expand channels per branch) per fire module, with the pools between."""


def _fire(b: NetBuilder, x: Value, squeeze: int, expand: int, name: str) -> Value:
    """1x1 squeeze conv, then parallel 1x1 and 3x3 expand convs joined by concat (all ReLU)."""
    s = b.relu(b.conv(x, squeeze, 1, f"{name}.squeeze", bias=True), f"{name}.squeeze.relu")
    e1 = b.relu(b.conv(s, expand, 1, f"{name}.expand1x1", bias=True), f"{name}.expand1x1.relu")
    e3 = b.relu(b.conv(s, expand, 3, f"{name}.expand3x3", bias=True), f"{name}.expand3x3.relu")
    return b.concat([e1, e3], f"{name}.concat")


def squeezenet(batch: int | str = 1, seed: int = 0, *, resolution: int = 224,
               classes: int = 1000) -> Graph:
    """SqueezeNet 1.1: 3x3/2 stem, eight fire modules with 3x3/2 ceil-mode max pools, a 1x1
    classifier conv + ReLU, global average pool, flatten. No batch norm; convs carry biases.
    349M MACs (torchvision: 0.35G), 1,235,496 parameters."""
    b = NetBuilder("squeezenet", seed)
    x = image_input(b, batch, 3, resolution)
    x = b.relu(b.conv(x, 64, 3, "stem", stride=2, pad=0, bias=True), "stem.relu")
    x = b.max_pool(x, 3, 2, "pool0", ceil_mode=True)
    fire = 1
    for i, spec in enumerate(FIRES):
        if spec == "pool":
            x = b.max_pool(x, 3, 2, f"pool{i}", ceil_mode=True)
            continue
        squeeze, expand = spec
        fire += 1
        x = _fire(b, x, squeeze, expand, f"fire{fire}")
    x = b.relu(b.conv(x, classes, 1, "classifier", bias=True), "classifier.relu")
    x = b.global_avg_pool(x)
    return b.finish(b.op("flatten", [x], "flatten", out="output", axis=1))
