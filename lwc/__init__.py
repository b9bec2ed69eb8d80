"""lwc: a compiler for lightweight deep learning.

Public API::

    g = lwc.load("model.onnx")            # or a .lwc file, or "zoo:mobilenet_v2"
    out = lwc.interpret(g, {"input": x})  # reference numpy interpreter
    lwc.save(g, "model.lwc")              # .lwc (+ .npz weights) or .onnx
"""

from lwc.errors import LwcError
from lwc.interp import interpret, random_inputs
from lwc.ir import DType, Graph, Node, QuantParams, TensorType, Value, verify
from lwc.ops.registry import Attr, Op, register_op

__all__ = [
    "Attr", "DType", "Graph", "LwcError", "Node", "Op", "QuantParams", "TensorType", "Value",
    "interpret", "load", "random_inputs", "register_op", "save", "verify",
]


def load(path_or_name: str) -> Graph:
    """Load an ``.onnx`` or ``.lwc`` file, or build a zoo model named ``zoo:<name>``."""
    from lwc.model_io import load_model

    return load_model(path_or_name)


def save(graph: Graph, path: str) -> None:
    """Write ``.onnx`` or ``.lwc`` (+ ``.npz`` weight sidecar), atomically."""
    from lwc.model_io import save_model

    save_model(graph, path)
