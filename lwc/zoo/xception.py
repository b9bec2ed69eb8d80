"""Xception (Chollet 2017): depthwise separable convs in residual blocks.

Its separable conv is depthwise 3x3 then pointwise 1x1 with *no* nonlinearity between them (the
paper found one hurts), and the residual connections are linear: the add has no activation after
it, the next block starts with its own ReLU.
"""

from __future__ import annotations

from lwc.ir.core import Graph, Value
from lwc.zoo.builder import NetBuilder, image_input


def separable(b: NetBuilder, x: Value, cout: int, name: str) -> Value:
    """Depthwise 3x3 -> pointwise 1x1 -> BN (no activation anywhere)."""
    cin = int(x.type.shape[1])
    y = b.conv(x, cin, 3, f"{name}.dw", group=cin)
    y = b.conv(y, cout, 1, f"{name}.pw")
    return b.bn(y, f"{name}.bn")


def _down_block(b: NetBuilder, x: Value, channels: tuple[int, int], name: str,
                relu_first: bool = True) -> Value:
    """[ReLU] sep -> ReLU -> sep -> 3x3/2 max pool, plus a strided 1x1 conv-BN shortcut."""
    y = b.relu(x, f"{name}.relu0") if relu_first else x
    y = separable(b, y, channels[0], f"{name}.sep1")
    y = separable(b, b.relu(y, f"{name}.relu1"), channels[1], f"{name}.sep2")
    y = b.max_pool(y, 3, 2, f"{name}.pool", pad=1)
    shortcut = b.conv_bn(x, channels[1], 1, f"{name}.shortcut", stride=2, act="")
    return b.add(y, shortcut, f"{name}.add")


def _middle_block(b: NetBuilder, x: Value, name: str) -> Value:
    """Three ReLU -> separable 728 units plus the identity."""
    y = x
    for i in range(3):
        y = separable(b, b.relu(y, f"{name}.relu{i}"), 728, f"{name}.sep{i}")
    return b.add(y, x, f"{name}.add")


def xception(batch: int | str = 1, seed: int = 0, *, resolution: int = 299,
             middle_blocks: int = 8, classes: int = 1000) -> Graph:
    """Xception: entry flow (two 3x3 convs, three strided separable blocks to 728 channels),
    ``middle_blocks`` residual blocks of three separable convs (8 in the paper), exit flow (a
    strided block to 1024, separable 1536 and 2048 with ReLU), global average pool, gemm.
    At 299 with 8 middle blocks: 8.36G MACs, 22,910,480 parameters (Keras's count; 22,801,424
    without BN) -- heavy for the numpy interpreter, so tests use ``resolution=71,
    middle_blocks=2``."""
    b = NetBuilder("xception", seed)
    x = image_input(b, batch, 3, resolution)
    x = b.conv_bn(x, 32, 3, "entry.conv1", stride=2, pad=0)
    x = b.conv_bn(x, 64, 3, "entry.conv2", pad=0)
    x = _down_block(b, x, (128, 128), "entry.block1", relu_first=False)
    x = _down_block(b, x, (256, 256), "entry.block2")
    x = _down_block(b, x, (728, 728), "entry.block3")
    for i in range(middle_blocks):
        x = _middle_block(b, x, f"middle.block{i + 1}")
    x = _down_block(b, x, (728, 1024), "exit.block1")
    x = b.relu(separable(b, x, 1536, "exit.sep1"), "exit.sep1.relu")
    x = b.relu(separable(b, x, 2048, "exit.sep2"), "exit.sep2.relu")
    return b.finish(b.classifier(x, classes))
