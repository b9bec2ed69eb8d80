"""Broken models fail at compile time with one-line LwcErrors; bad run-time inputs are rejected
before any kernel runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llvm_helpers import f32

import lwc
from lwc.backends import compile as compile_any
from lwc.backends.llvm import compile as llvm_compile
from lwc.errors import InputError, LwcError
from lwc.ir.types import DType, TensorType


def test_wrong_input_shape_for_the_weights_fails_at_compile_time() -> None:
    g = lwc.Graph("broken")
    x = g.add_input("x", f32((1, 3, 8, 8)))
    w = g.add_constant(np.ones((4, 3, 3, 3), np.float32), "w")
    y = g.add_node("conv", [x, w]).output
    g.outputs = [y]
    x.type = f32((1, 5, 8, 8))  # the declared input no longer fits the conv's weights
    with pytest.raises(LwcError) as e:
        llvm_compile(g)
    msg = str(e.value)
    assert "\n" not in msg and "conv" in msg


def test_unsupported_dtype_fails_at_compile_time() -> None:
    g = lwc.Graph("f64")
    x = g.add_input("x", TensorType(DType.F64, (2, 3)))
    g.outputs = [g.add_node("sigmoid", [x]).output]
    with pytest.raises(LwcError, match="f64"):
        llvm_compile(g)


def test_unknown_target_and_bad_run_inputs() -> None:
    g = lwc.Graph("ok")
    x = g.add_input("x", f32((2, 3)))
    g.outputs = [g.add_node("relu", [x]).output]
    with pytest.raises(LwcError, match="unknown target"):
        compile_any(g, target="fpga")
    m = compile_any(g, target="llvm")
    with pytest.raises(InputError):
        m.run({"x": np.ones((3, 3), np.float32)})
    with pytest.raises(InputError):
        m.run({"x": np.ones((2, 3), np.float64)})
    with pytest.raises(InputError):
        m.run({})
    with pytest.raises(InputError, match="unknown input"):
        m.run({"x": np.ones((2, 3), np.float32), "y": np.ones(1)})
    with pytest.raises(InputError, match="dtype"):
        m.run({"x": np.ones((2, 3), ">f4")})  # same kind, other byte order
    # a non-contiguous input is accepted (copied), as the interpreter accepts it
    base = np.arange(-6.0, 6.0, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(m.run({"x": base[:, ::2]})[g.outputs[0].name],
                                  np.maximum(base[:, ::2], 0))


@pytest.fixture
def no_lowering_op() -> Iterator[str]:
    """A throwaway op the interpreter knows but the llvm backend has no lowering for."""
    from lwc.ops import registry

    @registry.register_op
    class Twice(registry.Op):
        name = "test_llvm_twice"

        def infer(self, ins: Any, attrs: Any) -> list[TensorType]:
            return [ins[0]]

        def compute(self, xs: Any, attrs: Any) -> list[np.ndarray]:
            return [2 * xs[0]]

    yield Twice.name
    registry._REGISTRY.pop(Twice.name, None)


def _one_op(op: str, dtype: DType = DType.F32) -> lwc.Graph:
    g = lwc.Graph("broken")
    x = g.add_input("x", TensorType(dtype, (2, 3)))
    g.outputs = [g.add_node(op, [x]).output]
    return g


def test_unsupported_op_fails_at_compile_time(no_lowering_op: str) -> None:
    with pytest.raises(LwcError, match=no_lowering_op) as e:
        lwc.compile(_one_op(no_lowering_op))
    assert "\n" not in str(e.value) and "no llvm lowering" in str(e.value)


def _broken_onnx(path: Path) -> None:
    """A conv whose declared input has 5 channels while its weights expect 3."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "broken", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 5, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("case", ["f64", "op", "shape"])
def test_cli_compile_of_a_broken_model_exits_2_with_one_line(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture, no_lowering_op: str) -> None:
    from lwc.cli import main

    if case == "shape":
        model = tmp_path / "broken.onnx"
        _broken_onnx(model)
    else:
        model = tmp_path / "broken.lwc"
        lwc.save(_one_op("sigmoid", DType.F64) if case == "f64" else _one_op(no_lowering_op),
                 str(model))
    out = tmp_path / "broken.so"
    assert main(["compile", str(model), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lwc: error:") and "\n" not in err, err
    assert {"f64": "f64", "op": no_lowering_op, "shape": "conv"}[case] in err.lower(), err
    assert not out.exists()
