"""The public entry point ``lwc.compile``: graphs and model specs, run/save, options, and that
``import lwc`` does not load the backend."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llvm_helpers import assert_close

import lwc
import lwc.zoo as zoo
from lwc.errors import LwcError


def test_compile_a_graph_runs_like_the_interpreter() -> None:
    g = zoo.build("lenet5")
    m = lwc.compile(g, target="llvm", opt_level=3)
    x = lwc.random_inputs(g, seed=0)
    out, ref = m.run(x), lwc.interpret(g, x)
    assert list(out) == list(ref)
    for k in ref:
        assert_close(out[k], ref[k], k)


def test_compile_a_model_spec_with_options_and_save(tmp_path: Path) -> None:
    m = lwc.compile("zoo:mlp", opt_level=1, threads=1)
    g = zoo.build("mlp")
    x = lwc.random_inputs(g, seed=1)
    ref = lwc.interpret(g, x)
    for k, v in m.run(x).items():
        assert_close(v, ref[k], k)
    lib = m.save(tmp_path / "mlp.so")
    assert lib.exists() and lib.with_suffix(".h").exists()
    so = ctypes.CDLL(str(lib))  # loadable without the JIT
    assert hasattr(so, "lwc_run")


def test_bad_target_option_and_spec_are_lwc_errors() -> None:
    g = zoo.build("mlp")
    with pytest.raises(LwcError, match="unknown target"):
        lwc.compile(g, target="fpga")
    with pytest.raises(LwcError, match="unknown option"):
        lwc.compile(g, tile="4x8")
    with pytest.raises(LwcError, match="opt_level"):
        lwc.compile(g, opt_level=7)
    with pytest.raises(LwcError):
        lwc.compile("no_such_model.onnx")


def test_import_lwc_does_not_load_the_backend() -> None:
    code = ("import sys, lwc; g = lwc.load('zoo:mlp'); "
            "assert 'lwc.backends' not in sys.modules and 'llvmlite' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
