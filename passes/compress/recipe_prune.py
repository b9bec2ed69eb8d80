"""The ``prune-channels`` recipe for ``lwc compress``: structured L1 channel pruning, then
fine-tuning with ``lwc.train``, written as an ordinary smaller dense model (.onnx, .lwc or .lwcz).

Unlike magnitude pruning the result needs no sparse format: every layer is simply narrower, so
MACs fall with the parameters and any backend runs it as it is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from lwc.ir.core import Graph
from lwc.passes.compress.channel_prune import PruneResult, prune_channels
from lwc.passes.compress.recipes import Report, recipe
from lwc.train import Adam, Dataset, Trainer, accuracy

log = logging.getLogger("lwc.compress")

OUTPUTS = (".onnx", ".lwc", ".lwcz")


@dataclass
class PruneConfig:
    ratio: float = 0.5
    """Share of each coupled channel group removed (lowest filter L1 first)."""
    min_channels: int = 4
    epochs: int = 6
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    progress: bool | None = None
    """None: follow ``lwc.train.show_progress`` (the CLI turns it on)."""


@dataclass
class PruneOutcome:
    prune: PruneResult
    accuracy_before: float
    accuracy_pruned: float
    """Right after pruning, before fine-tuning."""
    accuracy_after: float
    float_bytes: int
    file_bytes: int


def float_param_bytes(graph: Graph) -> int:
    return 4 * sum(int(v.data.size) for v in graph.constants.values()
                   if v.data is not None and v.type.dtype.is_float)


def write_model(graph: Graph, out: Path) -> int:
    """Write ``out`` by suffix; returns the bytes written (text plus weight sidecar for .lwc)."""
    if out.suffix == ".lwcz":
        from lwc.passes.compress.container import write_lwcz

        return write_lwcz(out, graph, {})
    from lwc.ir.textio import sidecar_path
    from lwc.model_io import save_model

    save_model(graph, str(out))
    size = out.stat().st_size
    if out.suffix == ".lwc" and (npz := sidecar_path(out)).is_file():
        size += npz.stat().st_size
    return size


def prune_and_finetune(graph: Graph, data: Dataset, out: str | Path,
                       cfg: PruneConfig | None = None) -> PruneOutcome:
    """Prune ``graph`` in place, fine-tune it on ``data`` and write ``out``."""
    cfg = cfg or PruneConfig()
    out = Path(out)
    data = data.for_graph(graph)
    float_bytes = float_param_bytes(graph)
    before = accuracy(graph, data.x_test, data.y_test)
    result = prune_channels(graph, cfg.ratio, cfg.min_channels)
    graph.verify()
    pruned = accuracy(graph, data.x_test, data.y_test)
    log.info("pruned %d channel slices: MACs x%.3f, params x%.3f, accuracy %.2f%% -> %.2f%%",
             result.removed, result.mac_ratio, result.param_ratio, 100 * before, 100 * pruned)
    if cfg.epochs > 0:
        Trainer(graph, Adam(lr=cfg.lr)).fit(data, cfg.epochs, cfg.batch_size, seed=cfg.seed,
                                             progress=cfg.progress)
    after = accuracy(graph, data.x_test, data.y_test)
    size = write_model(graph, out)
    return PruneOutcome(result, before, pruned, after, float_bytes, size)


@recipe("prune-channels")
def _prune_channels(graph: Graph, data: Dataset, out: Path, epochs: int | None) -> Report:
    """Remove 50% of each channel group by filter L1 norm, fine-tune; writes .onnx/.lwc/.lwcz."""
    if out.suffix not in OUTPUTS:
        from lwc.errors import InputError

        raise InputError(f"{out}: recipe prune-channels writes {', '.join(OUTPUTS)} files")
    cfg = PruneConfig() if epochs is None else PruneConfig(epochs=epochs)
    r = prune_and_finetune(graph, data, out, cfg)
    p = r.prune
    cols = ["layer", "op", "channels", "kept", "MACs before", "MACs after", "params before",
            "params after"]
    rows = [[x.node, x.op, x.channels_before, x.channels_after, x.macs_before, x.macs_after,
             x.params_before, x.params_after] for x in p.layers]
    rows.append(["total", "", "", "", p.before.macs, p.after.macs, p.before.params,
                 p.after.params])
    notes = [f"MACs x{p.mac_ratio:.3f}, parameters x{p.param_ratio:.3f} "
             f"({p.removed} channel slices removed in {p.groups} groups, {p.frozen} frozen)",
             f"accuracy right after pruning, before {cfg.epochs} fine-tuning epochs: "
             f"{100 * r.accuracy_pruned:.2f}%"]
    return Report("prune-channels", r.accuracy_before, r.accuracy_after, r.float_bytes,
                  r.file_bytes, cols, rows, notes)
