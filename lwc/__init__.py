"""lwc: a compiler for lightweight deep learning.

Public API::

    g = lwc.load("model.onnx")            # or a .lwc file, or "zoo:mobilenet_v2"
    out = lwc.interpret(g, {"input": x})  # reference numpy interpreter
    lwc.save(g, "model.lwc")              # .lwc (+ .npz weights) or .onnx
    m = lwc.compile(g, target="llvm")     # CompiledModel: m.run({"input": x}), m.save("m.so")
"""

from pathlib import Path as _Path

# frontend/, passes/ and backends/ sit beside lwc/ in the source tree (pyproject maps them to
# lwc.frontend etc.), but setuptools' editable finder only maps top-level names: make the
# subpackages importable from a source checkout too.
if not (_Path(__file__).parent / "frontend").exists():
    __path__.append(str(_Path(__file__).resolve().parent.parent))  # noqa: F821

from lwc.errors import LwcError  # noqa: E402
from lwc.interp import interpret, random_inputs
from lwc.ir import DType, Graph, Node, QuantParams, TensorType, Value, verify
from lwc.ops.registry import Attr, Op, register_op
from lwc.pass_manager import (Pass, PassContext, PassManager, PassResult, function_pass,
                              register_pass)
from lwc.rewrite import Match, Rewriter, pattern_set

__all__ = [
    "Attr", "DType", "Graph", "LwcError", "Match", "Node", "Op", "Pass", "PassContext",
    "PassManager", "PassResult", "QuantParams", "Rewriter", "TensorType", "Value",
    "compile", "function_pass", "interpret", "load", "pattern_set", "random_inputs", "register_op",
    "register_pass", "save", "verify",
]


def load(path_or_name: str) -> Graph:
    """Load an ``.onnx`` or ``.lwc`` file, or build a zoo model named ``zoo:<name>``."""
    from lwc.model_io import load_model

    return load_model(path_or_name)


def save(graph: Graph, path: str) -> None:
    """Write ``.onnx`` or ``.lwc`` (+ ``.npz`` weight sidecar), atomically."""
    from lwc.model_io import save_model

    save_model(graph, path)


def compile(model: Graph | str, target: str = "llvm", opt_level: int = 3, **options: object):
    """Compile ``model`` (a Graph, or a spec ``load`` accepts) for ``target``.

    Returns the backend's compiled model (for ``llvm``: ``CompiledModel`` with ``run(inputs)``
    and ``save(path)``). ``options`` go to the backend (llvm: ``threads``, ``mcpu``,
    ``use_cache``, ``bindings``). The backend is imported here, not at ``import lwc``."""
    from lwc.backends import compile as backend_compile

    graph = model if isinstance(model, Graph) else load(str(model))
    return backend_compile(graph, target=target, opt_level=opt_level, **options)
