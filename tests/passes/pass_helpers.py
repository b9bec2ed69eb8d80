"""Small hand-built graphs and a parity check shared by the pass tests."""

from __future__ import annotations

import numpy as np

import lwc
from lwc.ir import DType, Graph, TensorType


def f32(*shape: int | str) -> TensorType:
    return TensorType(DType.F32, tuple(shape))


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def conv_bn_relu(seed: int = 0, cin: int = 3, cout: int = 4, act: str = "relu") -> Graph:
    """x -> conv(3x3, pad 1, bias) -> batch_norm -> act -> output."""
    rng = np.random.default_rng(seed)
    g = Graph("cbr")
    x = g.add_input("x", f32("N", cin, 6, 6))
    w = g.add_constant(rand(rng, cout, cin, 3, 3), "w")
    b = g.add_constant(rand(rng, cout), "b")
    c = g.add_node("conv", [x, w, b], {"pads": (1, 1, 1, 1)}, name="conv1")
    bn = [g.add_constant(v, n) for v, n in (
        (rng.uniform(0.5, 2, cout).astype(np.float32), "gamma"), (rand(rng, cout), "beta"),
        (rand(rng, cout), "mean"), (rng.uniform(0.5, 2, cout).astype(np.float32), "var"))]
    y = g.add_node("batch_norm", [c.output, *bn], name="bn1").output
    if act == "relu":
        y = g.add_node("relu", [y], name="relu1").output
    elif act == "relu6":
        y = g.add_node("clip", [y], {"min": 0.0, "max": 6.0}, name="relu6").output
    g.outputs = [y]
    g.verify()
    return g


def outputs(g: Graph, seed: int = 0) -> list[np.ndarray]:
    return list(lwc.interpret(g, lwc.random_inputs(g, seed=seed, batch=2)).values())


def assert_same_outputs(before: list[np.ndarray], g: Graph, seed: int = 0,
                        rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """Shape, then dtype, then values (relative to the output's scale)."""
    after = outputs(g, seed)
    assert len(before) == len(after)
    for a, b in zip(before, after):
        assert a.shape == b.shape
        assert a.dtype == b.dtype
        scale = max(float(np.max(np.abs(a))), 1.0) if a.size else 1.0
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol * scale)


def op_counts(g: Graph) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in g.nodes:
        out[n.op] = out.get(n.op, 0) + 1
    return out
