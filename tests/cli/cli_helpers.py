"""Helpers for CLI tests: run ``lwc`` in-process or as a real process; small ONNX files."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_process(*args: str, env: dict[str, str] | None = None) -> Result:
    """``lwc`` as a separate process (``python -m lwc.cli``), for real exit codes."""
    p = subprocess.run([sys.executable, "-m", "lwc.cli", *map(str, args)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, **(env or {})}, cwd=REPO)
    return Result(p.returncode, p.stdout, p.stderr)


def assert_one_line_error(r: Result, *fragments: str) -> str:
    """Exit 2, exactly one ``lwc: error:`` line on stderr holding every fragment, no traceback."""
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.err + r.out
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("lwc: error: "), lines[0]
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def small_onnx(path: Path, *, op: str = "Relu", width: int = 512) -> Path:
    """y = op(x * w + b) on f32[1,width], with real initializers so the file has some bulk."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(width).astype(np.float32), "b")
    nodes = [helper.make_node("Mul", ["x", "w"], ["xw"], name="scale"),
             helper.make_node("Add", ["xw", "b"], ["z"], name="shift"),
             helper.make_node(op, ["z"], ["y"], name="act")]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def unsupported_onnx(path: Path) -> Path:
    """A model whose second node is ``NonMaxSuppression`` (not in lwc's op set)."""
    i64 = TensorProto.INT64
    nodes = [helper.make_node("Relu", ["boxes"], ["b2"], name="pre"),
             helper.make_node("NonMaxSuppression", ["b2", "scores"], ["sel"], name="nms")]
    graph = helper.make_graph(
        nodes, "nms",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 8, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 8])],
        [helper.make_tensor_value_info("sel", i64, [None, 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path
