"""Reading and writing ``.lwc`` files: the text plus a ``<stem>.npz`` sidecar for the weights.

Small constants are inlined in the text; the rest are stored in the sidecar under their value
names, which the text references as ``@name``. A graph with no large constants writes no sidecar.
Both files are written atomically (the sidecar first, so the text never names missing weights),
and the sidecar is read without unpickling.
"""

from __future__ import annotations

import os
from pathlib import Path

from lwc.errors import ModelFormatError
from lwc.fileio import atomic_write_text, load_arrays, save_npz
from lwc.ir.core import Graph
from lwc.ir.parser import parse_graph
from lwc.ir.printer import INLINE_LIMIT, print_graph, sidecar_arrays


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``model.lwc`` -> ``model.npz`` (same folder, same stem)."""
    return Path(path).with_suffix(".npz")


def save_text(graph: Graph, path: str | os.PathLike[str], *,
              inline_limit: int = INLINE_LIMIT) -> None:
    """Write ``path`` (the text) and, when the graph has large constants, ``<stem>.npz``."""
    npz = sidecar_path(path)
    if npz == Path(path):
        raise ModelFormatError(f"{path}: a .lwc text must not be named .npz (its weights go there)")
    arrays = sidecar_arrays(graph, inline_limit)
    if arrays:
        save_npz(npz, arrays)
    text = print_graph(graph, weights_file=npz.name if arrays else None, inline_limit=inline_limit)
    atomic_write_text(path, text)


def load_text(path: str | os.PathLike[str]) -> Graph:
    """Read ``path`` and its sidecar (if there is one); errors name ``path:line:col``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFormatError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelFormatError(f"{p}: cannot read as UTF-8 text ({e})") from None
    npz = sidecar_path(p)
    weights = load_arrays(npz) if npz.is_file() else None
    return parse_graph(text, filename=str(p), weights=weights)


__all__ = ["load_text", "save_text", "sidecar_path"]
