"""Single-node ONNX models run by onnxruntime (the oracle) and by lwc (import + interpret)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

import lwc
from lwc.frontend.onnx.importer import import_model

EXAMPLES = int(os.environ.get("LWC_OPS_EXAMPLES", "30"))
"""Hypothesis examples per oracle test; raise it for a soak run (e.g. LWC_OPS_EXAMPLES=500)."""


@dataclass
class Outcome:
    expected: list[np.ndarray]
    got: list[np.ndarray]
    graph: lwc.Graph


def single_node_model(op_type: str, feeds: Mapping[str, np.ndarray],
                      inits: Mapping[str, np.ndarray | None], attrs: Mapping[str, Any],
                      opset: int, n_out: int = 1) -> onnx.ModelProto:
    """``feeds`` become graph inputs and ``inits`` initializers, in that order on the node;
    a None initializer is an absent optional input (empty name)."""
    names = list(feeds) + [k if v is not None else "" for k, v in inits.items()]
    while names and not names[-1]:
        names.pop()
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op_type, names, outs, **attrs)
    inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                            list(v.shape)) for k, v in feeds.items()]
    outputs = [helper.make_empty_tensor_value_info(o) for o in outs]
    g = helper.make_graph([node], "t", inputs, outputs,
                          [numpy_helper.from_array(np.asarray(v), k)
                           for k, v in inits.items() if v is not None])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def run_ort(m: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    ort.set_default_logger_severity(3)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return list(sess.run(None, dict(feeds)))


def compare(op_type: str, feeds: Mapping[str, np.ndarray],
            inits: Mapping[str, np.ndarray | None] | None = None,
            attrs: Mapping[str, Any] | None = None, opset: int = 17,
            rtol: float = 1e-4, atol: float = 1e-5) -> Outcome:
    """Run both and assert shape, then dtype, then values agree; also that the imported graph's
    declared (inferred) output shape is the shape the kernel produced."""
    m = single_node_model(op_type, feeds, inits or {}, attrs or {}, opset)
    expected = run_ort(m, feeds)
    g = import_model(m)
    got_map = lwc.interpret(g, dict(feeds))
    got = [got_map[v.name] for v in g.outputs]
    for e, r, v in zip(expected, got, g.outputs):
        assert r.shape == e.shape, f"shape {r.shape} != onnxruntime {e.shape}"
        assert tuple(v.type.shape) == r.shape, f"inferred {v.type}, computed {r.shape}"
        assert r.dtype == e.dtype, f"dtype {r.dtype} != onnxruntime {e.dtype}"
        if np.issubdtype(e.dtype, np.integer):
            np.testing.assert_array_equal(r, e)
        else:
            np.testing.assert_allclose(r, e, rtol=rtol, atol=atol)
    return Outcome(expected, got, g)


def randn(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)

