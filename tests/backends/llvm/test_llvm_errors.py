"""Broken models fail at compile time with one-line LwcErrors; bad run-time inputs are rejected
before any kernel runs."""

from __future__ import annotations

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
