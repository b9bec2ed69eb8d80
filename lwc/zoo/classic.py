"""The small classics: LeNet-5 and the digits MLP (fast enough for every unit test)."""

from __future__ import annotations

from lwc.ir.core import Graph
from lwc.zoo.builder import NetBuilder, image_input


def lenet5(batch: int | str = 1, seed: int = 0, *, size: int = 32, classes: int = 10) -> Graph:
    """LeNet-5 (LeCun et al. 1998) on 1x32x32: C1 conv5x5x6, S2 pool, C3 conv5x5x16, S4 pool,
    C5 conv5x5x120, F6 fc84, fc10 -- 61,706 parameters, ~416k MACs at 32x32.

    Modernised as most re-implementations are: ReLU instead of scaled tanh, 2x2 max pooling
    instead of trainable subsampling, and a full C3 connection table. ``size=28`` pads C1 by 2 so
    MNIST's 28x28 digits give the same layer shapes.
    """
    if size not in (28, 32):
        raise ValueError(f"lenet5: size must be 28 or 32, got {size}")
    b = NetBuilder("lenet5", seed)
    x = image_input(b, batch, 1, size)
    x = b.relu(b.conv(x, 6, 5, "c1", pad=(32 - size) // 2, bias=True), "c1.relu")
    x = b.max_pool(x, 2, 2, "s2")
    x = b.relu(b.conv(x, 16, 5, "c3", pad=0, bias=True), "c3.relu")
    x = b.max_pool(x, 2, 2, "s4")
    x = b.relu(b.conv(x, 120, 5, "c5", pad=0, bias=True), "c5.relu")
    x = b.flatten(x)
    x = b.relu(b.linear(x, 84, "f6"), "f6.relu")
    return b.finish(b.linear(x, classes, "f7", out="output"))


def mlp(batch: int | str = 1, seed: int = 0, *, features: int = 64,
        hidden: tuple[int, ...] = (300, 100), classes: int = 10) -> Graph:
    """The 64-300-100-10 ReLU perceptron on flattened 8x8 digits (the shared digits_mlp model's
    structure): gemm + relu per hidden layer, 50,610 parameters."""
    b = NetBuilder("mlp", seed)
    x = b.input((batch, features))
    for i, h in enumerate(hidden):
        x = b.relu(b.linear(x, h, f"fc{i}"), f"fc{i}.relu")
    return b.finish(b.linear(x, classes, f"fc{len(hidden)}", out="output"))
