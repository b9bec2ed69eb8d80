"""ResNet (He et al. 2016) with basic blocks, as torchvision's resnet18/34."""

from __future__ import annotations

from lwc.ir.core import Graph, Value
from lwc.zoo.builder import NetBuilder, image_input


def _basic_block(b: NetBuilder, x: Value, cout: int, stride: int, name: str) -> Value:
    """3x3 conv-BN-ReLU, 3x3 conv-BN, plus the input (through a strided 1x1 conv-BN when the
    shape changes), then ReLU."""
    y = b.conv_bn(x, cout, 3, f"{name}.conv1", stride=stride)
    y = b.conv_bn(y, cout, 3, f"{name}.conv2", act="")
    shortcut = x
    if stride != 1 or int(x.type.shape[1]) != cout:
        shortcut = b.conv_bn(x, cout, 1, f"{name}.downsample", stride=stride, act="")
    return b.relu(b.add(y, shortcut, f"{name}.add"), f"{name}.relu")


def resnet18(batch: int | str = 1, seed: int = 0, *, layers: tuple[int, ...] = (2, 2, 2, 2),
             resolution: int = 224, classes: int = 1000) -> Graph:
    """ResNet-18: 7x7/2 stem, 3x3/2 max pool, four stages of basic blocks (64, 128, 256, 512
    channels), global average pool, gemm. 1.81G MACs, 11,679,912 conv/gemm parameters
    (torchvision: 11,689,512 with the BN scales and shifts). ``layers=(3, 4, 6, 3)`` gives
    ResNet-34's structure."""
    b = NetBuilder("resnet18", seed)
    x = image_input(b, batch, 3, resolution)
    x = b.conv_bn(x, 64, 7, "stem", stride=2)
    x = b.max_pool(x, 3, 2, "stem.pool", pad=1)
    for stage, n in enumerate(layers):
        cout = 64 * 2**stage
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            x = _basic_block(b, x, cout, stride, f"layer{stage + 1}.{i}")
    return b.finish(b.classifier(x, classes))
