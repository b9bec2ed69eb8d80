"""GoogLeNet (Szegedy et al. 2015): a stack of Inception modules of four parallel branches."""

from __future__ import annotations

from lwc.ir.core import Graph, Value
from lwc.zoo.builder import NetBuilder, image_input

MODULES = (
    ("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)), ("pool3", 3),
    ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)), ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)), ("pool4", 2),
    ("5a", (256, 160, 320, 32, 128, 128)), ("5b", (384, 192, 384, 48, 128, 128)),
)
"""Module name and (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), the paper's Table 1;
``poolN`` entries are the strided max pools between stages (kernel size given)."""


def inception_module(b: NetBuilder, x: Value, spec: tuple[int, ...], name: str) -> Value:
    """1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1, joined by a channel concat."""
    c1, r3, c3, r5, c5, pp = spec
    a = b.conv_bn(x, c1, 1, f"{name}.b1")
    m = b.conv_bn(b.conv_bn(x, r3, 1, f"{name}.b2.reduce"), c3, 3, f"{name}.b2")
    f = b.conv_bn(b.conv_bn(x, r5, 1, f"{name}.b3.reduce"), c5, 5, f"{name}.b3")
    p = b.conv_bn(b.max_pool(x, 3, 1, f"{name}.b4.pool", pad=1), pp, 1, f"{name}.b4")
    return b.concat([a, m, f, p], f"{name}.concat")


def inception(batch: int | str = 1, seed: int = 0, *, modules: int = 9, resolution: int = 224,
              classes: int = 1000) -> Graph:
    """GoogLeNet / Inception v1 with batch norm after every conv (as torchvision's, but with the
    paper's 5x5 branch and no LRN or auxiliary heads): 7x7/2 stem, 3x3/2 pool, 1x1 and 3x3 convs,
    3x3/2 pool, nine Inception modules with max pools between stages, global average pool, gemm.
    1.58G MACs at 224 (paper: 1.5G), 6,991,272 conv/gemm parameters. ``modules`` < 9 truncates
    the stack (for quick experiments)."""
    b = NetBuilder("inception", seed)
    x = image_input(b, batch, 3, resolution)
    x = b.conv_bn(x, 64, 7, "stem.conv1", stride=2)
    x = b.max_pool(x, 3, 2, "stem.pool1", ceil_mode=True)
    x = b.conv_bn(x, 64, 1, "stem.conv2")
    x = b.conv_bn(x, 192, 3, "stem.conv3")
    x = b.max_pool(x, 3, 2, "stem.pool2", ceil_mode=True)
    built = 0
    for name, spec in MODULES:
        if built == modules:
            break
        if isinstance(spec, int):
            x = b.max_pool(x, spec, 2, name, ceil_mode=True)
            continue
        x = inception_module(b, x, spec, f"inception{name}")
        built += 1
    return b.finish(b.classifier(x, classes))
