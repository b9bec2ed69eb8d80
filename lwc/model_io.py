"""Model loading and saving by name: ``.onnx`` files, ``.lwc`` text IR, and ``zoo:<name>`` builds.

This is the one place that maps a user-supplied model spec to a reader or writer, so the CLI,
the Python API (``lwc.load``/``lwc.save``) and the demo all accept the same forms. Readers and
writers are imported lazily: ``import lwc`` stays fast and the IR core never depends on a frontend.
"""

from __future__ import annotations

from pathlib import Path

from lwc.errors import ModelFormatError
from lwc.ir.core import Graph

ZOO_PREFIX = "zoo:"
ACCEPTED = "a .onnx, .lwc or .lwcz file, or zoo:<name>"


def load_model(spec: str) -> Graph:
    """Read ``spec`` (``model.onnx``, ``model.lwc`` or ``zoo:<name>``) into a graph."""
    spec = str(spec)
    if spec.startswith(ZOO_PREFIX):
        return _build_zoo(spec[len(ZOO_PREFIX):])
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in (".onnx", ".lwc", ".lwcz"):
        raise ModelFormatError(f"{spec}: unrecognised model (expected {ACCEPTED})")
    if not path.is_file():
        raise ModelFormatError(f"{spec}: no such model file (expected {ACCEPTED})")
    if suffix == ".onnx":
        from lwc.frontend.onnx.importer import import_onnx

        return import_onnx(path)
    if suffix == ".lwcz":
        from lwc.passes.compress.container import read_lwcz

        return read_lwcz(path)
    from lwc.ir.textio import load_text

    return load_text(path)


def save_model(graph: Graph, path: str) -> None:
    """Write ``graph`` as ``.onnx`` or ``.lwc`` (+ ``.npz`` weights); writers are atomic."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        from lwc.frontend.onnx.export import export_onnx

        export_onnx(graph, path)
    elif suffix == ".lwc":
        from lwc.ir.textio import save_text

        save_text(graph, path)
    else:
        raise ModelFormatError(f"{path}: cannot write this format (expected a .onnx or .lwc path)")


def _build_zoo(name: str) -> Graph:
    from lwc import zoo

    known = list(zoo.names())
    if name not in known:
        raise ModelFormatError(f"zoo:{name}: unknown zoo model; available: "
                               + ", ".join(f"zoo:{n}" for n in known))
    return zoo.build(name, batch="N")  # a symbolic batch, like an ONNX export with dynamic axes


__all__ = ["ACCEPTED", "ZOO_PREFIX", "load_model", "save_model"]
