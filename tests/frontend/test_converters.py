"""Tensor and elementwise converters, per opset version, checked against onnxruntime."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx_builders import const, model, run_ort, vinfo

import lwc
from lwc.frontend.onnx.importer import import_model

F, I64 = TensorProto.FLOAT, TensorProto.INT64
rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)


@dataclass
class C:
    """One single-purpose model: nodes, its data input X (+ extra inputs), output count, opset."""

    id: str
    nodes: list[onnx.NodeProto]
    opset: int = 17
    n_out: int = 1
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    x: np.ndarray = field(default_factory=lambda: X)
    expect: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
    """numpy oracle for models onnxruntime cannot run (legacy opsets)."""


def n(op: str, ins: Sequence[str], outs: Sequence[str] = ("y",), **kw: object) -> onnx.NodeProto:
    return helper.make_node(op, list(ins), list(outs), **kw)


def i64(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


CASES = [
    C("reshape_zero_minus1", [const("s", i64(0, 3, -1)), n("Reshape", ["x", "s"])]),
    C("reshape_v5_like_opset6", [const("s", i64(6, 20)), n("Reshape", ["x", "s"])], opset=6),
    C("transpose_perm", [n("Transpose", ["x"], perm=[0, 2, 3, 1])]),
    C("transpose_default", [n("Transpose", ["x"])]),
    C("flatten_axis2", [n("Flatten", ["x"], axis=2)]),
    C("flatten_axis0", [n("Flatten", ["x"], axis=0)]),
    C("concat_neg_axis", [n("Relu", ["x"], ["r"]), n("Concat", ["x", "r"], axis=-1)]),
    C("split_attr_v11", [n("Split", ["x"], ["a", "b"], axis=1, split=[1, 2])], opset=11, n_out=2),
    C("split_input_v13", [const("s", i64(3, 2)), n("Split", ["x", "s"], ["a", "b"], axis=3)],
      opset=13, n_out=2),
    C("split_equal_v13", [n("Split", ["x"], ["a", "b"], axis=2)], opset=13, n_out=2),
    C("split_num_outputs_v18", [n("Split", ["x"], ["a", "b"], axis=3, num_outputs=2)], opset=18,
      n_out=2),
    C("slice_attrs_v9", [n("Slice", ["x"], axes=[1, 3], starts=[1, -3], ends=[1000, -1])], opset=9),
    C("slice_inputs_neg_steps", [const("st", i64(-1, 4)), const("en", i64(-1000, 0)),
                                 const("ax", i64(2, 3)), const("sp", i64(-1, -2)),
                                 n("Slice", ["x", "st", "en", "ax", "sp"])]),
    C("slice_clamped", [const("st", i64(-100)), const("en", i64(2**62)),
                        n("Slice", ["x", "st", "en"])]),
    C("squeeze_unsqueeze_v11", [n("Unsqueeze", ["x"], ["u"], axes=[0, 5]),
                                n("Squeeze", ["u"], axes=[0])], opset=11),
    C("squeeze_unsqueeze_v13", [const("a", i64(-1, 1)), n("Unsqueeze", ["x", "a"], ["u"]),
                                n("Squeeze", ["u"])], opset=13),
    C("pad_attrs_v2", [n("Pad", ["x"], pads=[0, 0, 1, 2, 0, 0, 2, 1], value=1.5)], opset=9),
    C("pad_reflect_v11", [const("p", i64(0, 0, 1, 2, 0, 0, 2, 1)),
                          n("Pad", ["x", "p"], mode="reflect")], opset=11),
    C("pad_edge_axes_v18", [const("p", i64(1, 2, 3, 0)), const("a", i64(2, -1)),
                            n("Pad", ["x", "p", "", "a"], mode="edge")], opset=18),
    C("pad_value_input_v13", [const("p", i64(0, 1, 0, 0, 0, 1, 0, 0)),
                              const("v", np.array(-2.0, np.float32)), n("Pad", ["x", "p", "v"])],
      opset=13),
    C("dropout_v7", [n("Dropout", ["x"], ratio=0.3)], opset=7),
    C("dropout_v13_ratio", [const("r", np.array(0.5, np.float32)), n("Dropout", ["x", "r"])],
      opset=13),
    C("identity", [n("Identity", ["x"])]),
    C("gather_const_idx", [const("i", i64(2, 0, -1)), n("Gather", ["x", "i"], axis=3)]),
    C("gather_runtime_idx", [n("Gather", ["x", "idx"], axis=2)], extra={"idx": i64(3, -4, 1)}),
    C("cast_to_int_and_back", [n("Mul", ["x", "k"], ["m"]), n("Cast", ["m"], ["c"], to=I64),
                               n("Cast", ["c"], to=F)],
      extra={"k": np.array(10.0, np.float32)}),
    C("expand", [const("s", i64(3, 2, 1, 4, 5)), n("Expand", ["x", "s"])]),
    C("tile", [const("r", i64(1, 2, 1, 3)), n("Tile", ["x", "r"])]),
    C("shape_slice_v15", [n("Shape", ["x"], ["s"], start=1, end=-1), const("one", i64(-1)),
                          n("Concat", ["one", "s"], ["s2"], axis=0), n("Reshape", ["x", "s2"])],
      opset=15),
    C("size_and_constant_of_shape", [n("Size", ["x"], ["sz"]), const("a", i64(0)),
                                     const("shp", np.array(X.shape, dtype=np.int64)),
                                     n("Unsqueeze", ["sz", "a"], ["s1"]),
                                     n("ConstantOfShape", ["s1"], ["z"]),
                                     n("Reshape", ["z", "shp"], ["zr"]), n("Sub", ["x", "zr"])],
      opset=13),
    C("depth_to_space_crd", [n("DepthToSpace", ["x"], blocksize=2, mode="CRD")],
      x=rng.standard_normal((1, 8, 2, 3)).astype(np.float32)),
    C("clip_v6_attrs", [n("Clip", ["x"], min=-0.5, max=0.7)], opset=6),
    C("clip_v11_inputs", [const("lo", np.array(-0.2, np.float32)), n("Clip", ["x", "lo"])],
      opset=11),
    C("activations", [n("LeakyRelu", ["x"], ["a"], alpha=0.2), n("HardSigmoid", ["a"], ["b"]),
                      n("HardSwish", ["x"], ["c"]), n("Elu", ["c"], ["d"], alpha=0.5),
                      n("Add", ["b", "d"], ["e"]), n("Softplus", ["e"], ["f"]),
                      n("Erf", ["f"], ["g"]), n("Shrink", ["g"], ["h"], lambd=0.3, bias=0.1),
                      n("Tanh", ["h"])]),
    C("math", [n("Abs", ["x"], ["a"]), n("Sqrt", ["a"], ["b"]), n("Exp", ["x"], ["c"]),
               n("Log", ["c"], ["d"]), n("Reciprocal", ["c"], ["e"]), n("Pow", ["b", "e"], ["f"]),
               n("Max", ["f", "d", "x"], ["g"]), n("Min", ["g", "b"], ["h"]),
               n("Sum", ["h", "a", "b"], ["i"]), n("Mean", ["i", "x"], ["j"]),
               n("Floor", ["j"], ["k"]), n("Ceil", ["j"], ["l"]), n("Sub", ["k", "l"], ["m"]),
               n("Sign", ["x"], ["o"]), n("Div", ["m", "c"], ["p"]), n("Mul", ["p", "o"])]),
    C("compare_where", [n("Greater", ["x", "z"], ["g"]), n("Less", ["x", "z"], ["l"]),
                        n("Or", ["g", "l"], ["o"]), n("Not", ["o"], ["e"]),
                        n("Equal", ["x", "x"], ["q"]), n("And", ["q", "g"], ["a"]),
                        n("Where", ["a", "x", "z"])], extra={"z": np.float32(0.1) * X[0, 0]}),
    C("int_arithmetic", [n("Cast", ["x"], ["xi"], to=I64), n("Div", ["xi", "k"], ["d"]),
                         n("Add", ["d", "xi"], ["s"]), n("Cast", ["s"], to=F)],
      extra={"k": i64(3)}, x=(X * 10).round()),
    C("legacy_broadcast_v6", [n("Mul", ["x", "b"], broadcast=1, axis=1)], opset=6,
      extra={"b": rng.standard_normal(3).astype(np.float32)},
      expect=lambda f: f["x"] * f["b"].reshape(1, 3, 1, 1)),
    C("prelu_channel_slope", [n("PRelu", ["x", "s"])],
      extra={"s": rng.standard_normal((3, 1, 1)).astype(np.float32)}),
]


def _build(c: C) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    feeds = {"x": c.x, **c.extra}
    inputs = [vinfo(k, v.shape, helper.np_dtype_to_tensor_dtype(v.dtype)) for k, v in feeds.items()]
    outs = ["a", "b"][: c.n_out] if c.n_out > 1 else ["y"]
    return model(c.nodes, inputs, [vinfo(o, None) for o in outs], opset=c.opset), feeds


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_converter_matches_onnxruntime(case: C) -> None:
    m, feeds = _build(case)
    want = [case.expect(feeds)] if case.expect else run_ort(m, feeds)
    g = import_model(m)
    got = lwc.interpret(g, feeds)
    assert [v.name for v in g.outputs] == [o.name for o in m.graph.output]
    for v, w in zip(g.outputs, want):
        assert got[v.name].shape == w.shape and got[v.name].dtype == w.dtype
        np.testing.assert_allclose(got[v.name], w, rtol=1e-5, atol=1e-6, equal_nan=True)
