"""Compression recipes by name, as ``lwc compress --recipe NAME`` runs them.

A recipe takes a float graph and a dataset, modifies the graph, writes the output file and
returns a ``Report`` (per-layer rows, accuracy before/after, sizes). Recipes register themselves
here so the CLI lists exactly what exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lwc.ir.core import Graph
from lwc.train.data import Dataset


@dataclass
class Report:
    recipe: str
    accuracy_before: float
    accuracy_after: float
    float_bytes: int
    file_bytes: int
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.float_bytes / self.file_bytes if self.file_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


Recipe = Callable[[Graph, Dataset, Path, int | None], Report]
RECIPES: dict[str, Recipe] = {}


def recipe(name: str) -> Callable[[Recipe], Recipe]:
    def deco(fn: Recipe) -> Recipe:
        RECIPES[name] = fn
        return fn

    return deco


@recipe("deep-compression")
def _deep_compression(graph: Graph, data: Dataset, out: Path, epochs: int | None) -> Report:
    """Prune, share weights with k-means, Huffman-code; writes .lwcz (or ONNX, 1 byte per
    weight)."""
    from lwc.passes.compress.deep_compression import DCConfig, deep_compress

    if out.suffix not in (".lwcz", ".onnx"):
        raise bad_output(out, "deep-compression", ".lwcz or .onnx")
    cfg = DCConfig() if epochs is None else DCConfig(prune_epochs=epochs, share_epochs=epochs)
    r = deep_compress(graph, data, out, cfg)
    cols = ["layer", "params", "% kept", "bits/weight", "bits/index", "bytes", "ratio"]
    rows = [[x.name, x.params, round(100 * x.kept, 2), round(x.bits_per_weight, 2),
             round(x.bits_per_index, 2), x.bytes, round(x.ratio, 1)] for x in r.rows]
    return Report("deep-compression", r.accuracy_before, r.accuracy_after, r.float_bytes,
                  r.file_bytes, cols, rows,
                  ["bits/weight and bits/index are mean Huffman code lengths per stored entry "
                   "(fillers included); the total ratio uses the real .lwcz file size"
                   if out.suffix == ".lwcz" else
                   "ONNX stores each shared weight as Gather(float32 codebook, uint8 index): "
                   "8 bits/weight, no sparse indices; the ratio uses the real .onnx file size"])


def bad_output(out: Path, name: str, want: str) -> Exception:
    from lwc.errors import InputError

    return InputError(f"{out}: recipe {name} writes {want} files")


from lwc.passes.compress import recipe_int8  # noqa: E402,F401  (registers "int8")
from lwc.passes.compress import recipe_prune  # noqa: E402,F401  (registers "prune-channels")
from lwc.passes.compress import recipe_binary  # noqa: E402,F401  (registers "bnn", "xnor", "tbn")
