"""ShuffleNet v1 (Zhang et al. 2018): grouped 1x1 convs made to mix through a channel shuffle.

The shuffle is written as PyTorch models export it -- reshape to (N, g, C/g, H, W), transpose
groups and channels, reshape back -- not as the ``channel_shuffle`` op, so that pattern passes have
the idiom to find.
"""

from __future__ import annotations

from lwc.ir.core import Graph, Value
from lwc.zoo.builder import NetBuilder, image_input

STAGE_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                  4: (272, 544, 1088), 8: (384, 768, 1536)}
"""Output channels of stages 2-4 per group count (the paper's Table 1, scale 1x)."""


def shuffle(b: NetBuilder, x: Value, groups: int, name: str) -> Value:
    """Reshape-transpose-reshape channel shuffle over NCHW (0 keeps a symbolic batch)."""
    _, c, h, w = x.type.shape
    c, h, w = int(c), int(h), int(w)
    y = b.op("reshape", [x], f"{name}.reshape1", shape=(0, groups, c // groups, h, w))
    y = b.op("transpose", [y], f"{name}.transpose", perm=(0, 2, 1, 3, 4))
    return b.op("reshape", [y], f"{name}.reshape2", shape=(0, c, h, w))


def _unit(b: NetBuilder, x: Value, cout: int, stride: int, groups: int, first_groups: int,
          name: str) -> Value:
    """Grouped 1x1 -> BN -> ReLU -> shuffle -> depthwise 3x3 (stride) -> BN -> grouped 1x1 -> BN,
    then add the input (stride 1) or concat a 3x3/2 average pool of it (stride 2), then ReLU."""
    cin = int(x.type.shape[1])
    mid = cout // 4
    branch_out = cout - cin if stride == 2 else cout
    y = b.conv_bn(x, mid, 1, f"{name}.compress", group=first_groups)
    if groups > 1:
        y = shuffle(b, y, groups, f"{name}.shuffle")
    y = b.conv_bn(y, mid, 3, f"{name}.dw", stride=stride, group=mid, act="")
    y = b.conv_bn(y, branch_out, 1, f"{name}.expand", group=groups, act="")
    if stride == 1:
        y = b.add(x, y, f"{name}.add")
    else:
        pooled = b.op("avg_pool", [x], f"{name}.shortcut", kernel=(3, 3), strides=(2, 2),
                      pads=(1, 1, 1, 1), count_include_pad=True)
        y = b.concat([pooled, y], f"{name}.concat")
    return b.relu(y, f"{name}.relu")


def shufflenet(batch: int | str = 1, seed: int = 0, *, groups: int = 3,
               repeats: tuple[int, int, int] = (4, 8, 4), resolution: int = 224,
               classes: int = 1000) -> Graph:
    """ShuffleNet v1 1x: 3x3/2 stem to 24 channels, 3x3/2 max pool, three stages of shuffle units
    (the first of each strided, concatenating an average-pooled shortcut), global average pool,
    gemm. g=3: 137.5M MACs (paper: 140M), 1,841,248 conv/gemm parameters. The first unit's 1x1
    conv is ungrouped (its input has only 24 channels), as in the paper."""
    if groups not in STAGE_CHANNELS:
        raise ValueError(f"shufflenet: groups must be one of {sorted(STAGE_CHANNELS)}")
    b = NetBuilder("shufflenet", seed)
    x = image_input(b, batch, 3, resolution)
    x = b.conv_bn(x, 24, 3, "stem", stride=2)
    x = b.max_pool(x, 3, 2, "stem.pool", pad=1)
    for stage, (cout, n) in enumerate(zip(STAGE_CHANNELS[groups], repeats), start=2):
        for i in range(n):
            first_groups = 1 if stage == 2 and i == 0 else groups
            x = _unit(b, x, cout, 2 if i == 0 else 1, groups, first_groups, f"stage{stage}.{i}")
    return b.finish(b.classifier(x, classes))
