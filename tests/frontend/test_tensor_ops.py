"""IR-level checks of the tensor ops: symbolic inference, multi-output split, numpy semantics."""

from __future__ import annotations

import numpy as np
import pytest

import lwc
from lwc.errors import VerifyError
from lwc.ir import DType, Graph, TensorType
from lwc.ops import get_op


def infer(op: str, shapes: list[tuple[int | str, ...]], **attrs: object) -> list[tuple]:
    opdef = get_op(op)
    full = opdef.complete_attrs(attrs)
    return [t.shape for t in opdef.infer([TensorType(DType.F32, s) for s in shapes], full)]


def test_symbolic_batch_passes_through() -> None:
    assert infer("reshape", [("N", 2, 3, 4)], shape=(0, -1)) == [("N", 24)]
    assert infer("reshape", [("N", 2, 3)], shape=(0, 3, 2)) == [("N", 3, 2)]
    assert infer("flatten", [("N", 2, 3)]) == [("N", 6)]
    assert infer("transpose", [("N", 2, 3)], perm=(2, 0, 1)) == [(3, "N", 2)]
    assert infer("concat", [("N", 2), ("N", 3)], axis=1) == [("N", 5)]
    assert infer("slice", [("N", 10)], starts=(1,), ends=(-1,), axes=(1,)) == [("N", 8)]
    assert infer("slice", [("N", 10)], starts=(0,), ends=(2**62,), axes=(0,)) == [("N", 10)]
    assert infer("squeeze", [("N", 1, 3)], axes=(1,)) == [("N", 3)]
    assert infer("unsqueeze", [("N", 3)], axes=(0, -1)) == [(1, "N", 3, 1)]
    assert infer("pad", [("N", 3, 4)], pads=(0, 1, 1, 0, 1, 1)) == [("N", 5, 6)]
    assert infer("expand", [("N", 1, 4)], shape=(3, 1)) == [("N", 3, 4)]
    assert infer("tile", [("N", 2)], repeats=(1, 3)) == [("N", 6)]
    assert infer("split", [("N", 5)], axis=1, sizes=(2, 3)) == [("N", 2), ("N", 3)]


@pytest.mark.parametrize(("op", "shape", "attrs"), [
    ("reshape", ("N", 6), {"shape": (-1, 6)}),        # -1 would have to absorb N
    ("reshape", (2, 3), {"shape": (4, -1)}),
    ("slice", ("N", 4), {"starts": (1,), "ends": (3,), "axes": (0,)}),
    ("split", ("N", 4), {"axis": 0, "sizes": (1, 1)}),
    ("split", (5, 4), {"axis": 0, "sizes": (1, 1)}),
    ("pad", ("N", 4), {"pads": (1, 0, 0, 0)}),
    ("squeeze", (2, 3), {"axes": (0,)}),
    ("transpose", (2, 3), {"perm": (0, 0)}),
])
def test_impossible_shapes_raise(op: str, shape: tuple, attrs: dict) -> None:
    with pytest.raises(ValueError):
        infer(op, [shape], **attrs)


def test_split_is_multi_output_in_a_graph() -> None:
    g = Graph()
    x = g.add_input("x", TensorType(DType.F32, ("N", 5)))
    node = g.add_node("split", [x], {"axis": 1, "sizes": (2, 3)})
    a, b = node.outputs
    g.outputs = [g.add_node("relu", [a]).output, b]
    g.verify()
    arr = np.arange(15, dtype=np.float32).reshape(3, 5) - 7
    out = lwc.interpret(g, {"x": arr})
    np.testing.assert_array_equal(out[g.outputs[0].name], np.maximum(arr[:, :2], 0))
    np.testing.assert_array_equal(out[b.name], arr[:, 2:])
    with pytest.raises(VerifyError):
        g.add_node("split", [x], {"axis": 1})  # sizes is required


def test_numpy_semantics() -> None:
    x = np.arange(2 * 6 * 2 * 2, dtype=np.float32).reshape(2, 6, 2, 2)
    shuffle = get_op("channel_shuffle").compute([x], {"groups": 3})[0]
    want = x.reshape(2, 3, 2, 2, 2).transpose(0, 2, 1, 3, 4).reshape(x.shape)
    np.testing.assert_array_equal(shuffle, want)
    pad = get_op("pad").compute([x], {"pads": (0, 0, -1, 1, 0, -2, 0, 1), "mode": "constant",
                                      "value": 9.0})[0]
    # lo = (0, 0, -1, 1), hi = (0, -2, 0, 1): crop 2 channels at the end, 1 row at the start
    np.testing.assert_array_equal(pad, np.pad(x[:, :4, 1:, :], [(0, 0), (0, 0), (0, 0), (1, 1)],
                                               constant_values=9))
    idx = np.array([[-1, 0]], dtype=np.int64)
    np.testing.assert_array_equal(get_op("gather").compute([x, idx], {"axis": 1})[0],
                                  x[:, [[5, 0]]])
    rev = get_op("slice").compute([x], {"starts": (-1,), "ends": (-100,), "axes": (1,),
                                        "steps": (-2,)})[0]
    np.testing.assert_array_equal(rev, x[:, ::-2])
    cast = get_op("cast").compute([x - 10.5], {"to": "i32"})[0]
    assert cast.dtype == np.int32 and cast[0, 0, 0, 0] == -10
