"""Every VJP against central finite differences, in float64 on small random cases."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from lwc.ir import DType, Graph, TensorType
from lwc.train import backward, forward

RNG = np.random.default_rng(0)


def _graph(op: str, shapes: list[tuple[int, ...]], attrs: dict, n_const: int = 0,
           data: list[np.ndarray] | None = None) -> Graph:
    """One node; the first ``len(shapes) - n_const`` operands are inputs, the rest constants."""
    g = Graph(op)
    vals = []
    arrays = data or [RNG.standard_normal(s) for s in shapes]
    for i, (s, a) in enumerate(zip(shapes, arrays)):
        if i < len(shapes) - n_const:
            vals.append(g.add_input(f"x{i}", TensorType(DType.F64, s)))
        else:
            vals.append(g.add_constant(a.astype(np.float64), f"c{i}"))
    node = g.add_node(op, vals, attrs)
    g.outputs = [node.outputs[0]]
    g.verify()
    g._test_arrays = arrays  # type: ignore[attr-defined]
    return g


def gradcheck(g: Graph, training: bool = False, eps: float = 1e-6, samples: int = 12,
              tol: float = 1e-5) -> None:
    arrays = g._test_arrays  # type: ignore[attr-defined]
    inputs = {v.name: arrays[i].astype(np.float64) for i, v in enumerate(g.inputs)}
    out = g.outputs[0]
    probe = RNG.standard_normal(forward(g, inputs, training=training)[out].shape)

    def loss(ins: dict, overrides: dict) -> float:
        return float((forward(g, ins, overrides, training=training)[out] * probe).sum())

    wrt = list(g.inputs) + list(g.constants.values())
    tape = forward(g, inputs, training=training)
    grads = backward(g, tape, {id(out): probe}, wrt)
    for v in wrt:
        base = inputs[v.name] if v in g.inputs else np.array(v.data)
        flat = base.ravel()
        for j in RNG.choice(flat.size, size=min(samples, flat.size), replace=False):
            def at(delta: float, v=v, j=j) -> float:
                arr = flat.copy()
                arr[j] += delta
                arr = arr.reshape(base.shape)
                if v in g.inputs:
                    return loss({**inputs, v.name: arr}, {})
                return loss(inputs, {id(v): arr})
            numeric = (at(eps) - at(-eps)) / (2 * eps)
            analytic = grads[id(v)].ravel()[j]
            assert abs(numeric - analytic) <= tol * max(1.0, abs(numeric)), (
                f"{g.name}: d/d{v.name}[{j}] numeric {numeric} vs analytic {analytic}")


CASES: list[tuple[str, Callable[[], Graph]]] = [
    ("relu", lambda: _graph("relu", [(3, 4)], {})),
    ("sigmoid", lambda: _graph("sigmoid", [(3, 4)], {})),
    ("tanh", lambda: _graph("tanh", [(3, 4)], {})),
    ("leaky_relu", lambda: _graph("leaky_relu", [(3, 4)], {"alpha": 0.1})),
    ("hard_swish", lambda: _graph("hard_swish", [(3, 4)], {})),
    ("clip", lambda: _graph("clip", [(3, 4)], {"min": -0.5, "max": 0.5})),
    ("add_bcast", lambda: _graph("add", [(2, 3, 4), (3, 1)], {})),
    ("sub_bcast", lambda: _graph("sub", [(2, 3, 4), (4,)], {})),
    ("mul_bcast", lambda: _graph("mul", [(2, 3, 4), (1, 3, 1)], {})),
    ("div", lambda: _graph("div", [(2, 3), (2, 3)], {},
                           data=[RNG.standard_normal((2, 3)), RNG.uniform(1, 2, (2, 3))])),
    ("conv", lambda: _graph("conv", [(2, 3, 6, 5), (4, 3, 3, 3), (4,)],
                            {"pads": [1, 0, 2, 1], "strides": [2, 1]}, n_const=2)),
    ("conv_grouped_dilated", lambda: _graph("conv", [(1, 4, 7, 7), (6, 2, 3, 2)],
                                            {"group": 2, "dilations": [2, 1]}, n_const=1)),
    ("conv_depthwise_relu6", lambda: _graph("conv", [(1, 3, 5, 5), (3, 1, 3, 3), (3,)],
                                            {"group": 3, "pads": [1, 1, 1, 1], "act": "relu6"},
                                            n_const=2)),
    ("conv_residual_hswish", lambda: _graph("conv", [(1, 2, 4, 4), (2, 2, 1, 1), (2,),
                                                     (1, 2, 4, 4)],
                                            {"act": "hard_swish", "residual": True}, n_const=2)),
    ("conv1d", lambda: _graph("conv", [(2, 2, 9), (3, 2, 3)], {"strides": [2]}, n_const=1)),
]

OPTIONAL_CASES: list[tuple[str, Callable[[], Graph]]] = [
    ("gemm", lambda: _graph("gemm", [(3, 5), (4, 5), (4,)], {"trans_b": True}, n_const=2)),
    ("gemm_relu_alpha", lambda: _graph("gemm", [(5, 3), (5, 4), (1, 4)],
                                       {"trans_a": True, "alpha": 0.5, "beta": 2.0,
                                        "act": "relu"}, n_const=2)),
    ("matmul_batched", lambda: _graph("matmul", [(2, 3, 4), (4, 5)], {})),
    ("max_pool", lambda: _graph("max_pool", [(1, 2, 5, 5)],
                                {"kernel": [2, 2], "strides": [2, 2], "ceil_mode": True})),
    ("avg_pool_pad", lambda: _graph("avg_pool", [(1, 2, 5, 5)],
                                    {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})),
    ("avg_pool_incl_pad", lambda: _graph("avg_pool", [(1, 2, 5, 5)],
                                         {"kernel": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                          "count_include_pad": True})),
    ("global_avg_pool", lambda: _graph("global_avg_pool", [(2, 3, 4, 4)], {})),
    ("softmax", lambda: _graph("softmax", [(3, 5)], {"axis": 1})),
    ("concat", lambda: _graph("concat", [(1, 2, 3), (1, 4, 3)], {"axis": 1})),
    ("transpose", lambda: _graph("transpose", [(2, 3, 4)], {"perm": [2, 0, 1]})),
    ("flatten", lambda: _graph("flatten", [(2, 3, 4)], {"axis": 1})),
    ("batch_norm", lambda: _graph("batch_norm", [(2, 3, 4, 4), (3,), (3,), (3,), (3,)], {},
                                  n_const=4, data=[RNG.standard_normal((2, 3, 4, 4)),
                                                   RNG.standard_normal(3), RNG.standard_normal(3),
                                                   RNG.standard_normal(3), RNG.uniform(0.5, 2, 3)])),
]


@pytest.mark.parametrize("name,build", CASES, ids=[c[0] for c in CASES])
def test_vjp_matches_finite_differences(name: str, build: Callable[[], Graph]) -> None:
    gradcheck(build())


@pytest.mark.parametrize("name,build", OPTIONAL_CASES, ids=[c[0] for c in OPTIONAL_CASES])
def test_vjp_matches_finite_differences_more_ops(name: str, build: Callable[[], Graph]) -> None:
    gradcheck(build())


def test_batch_norm_training_mode_gradient() -> None:
    g = _graph("batch_norm", [(4, 3, 2, 2), (3,), (3,), (3,), (3,)], {}, n_const=4,
               data=[RNG.standard_normal((4, 3, 2, 2)), RNG.standard_normal(3),
                     RNG.standard_normal(3), np.zeros(3), np.ones(3)])
    gradcheck(g, training=True, tol=1e-4)
