"""The Deep Compression recipe (Han, Mao, Dally, ICLR 2016): prune → retrain → share → retrain →
encode, ending in an ``.lwcz`` file whose real size gives the compression ratio, or in standard
ONNX (``.onnx``) with each shared weight as ``Gather(codebook, uint8 index)``: onnxruntime runs
it, at 1 byte per weight instead of the paper's Huffman-coded bits.

Each stage is a small function so that a user can run them separately; ``deep_compress`` chains
them with fine-tuning through ``lwc.train``.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lwc.ir.core import Graph
from lwc.passes.compress.container import Encoded, encode_dc, write_lwcz
from lwc.passes.compress.sharing import Layer, kmeans_share, magnitude_mask, weight_layers
from lwc.train import Adam, Dataset, Masked, Shared, Trainer, accuracy

log = logging.getLogger("lwc.compress")

GAP_BITS = {"conv": 8, "fc": 5}
"""Relative-index widths from the paper: 8 bits for conv layers, 5 for fully-connected."""


@dataclass
class DCConfig:
    qualities: Sequence[float] = (0.6, 1.2, 1.8, 2.4, 2.7)
    """Pruning threshold = quality * std per stage for fc layers; later stages prune more."""
    conv_scale: float = 0.5
    """Conv layers use quality * conv_scale: they hold few weights and are more sensitive."""
    min_prune_params: int = 1000
    """Layers with fewer weights than this are not pruned (only shared)."""
    bits: dict[str, int] = field(default_factory=lambda: {"conv": 5, "fc": 5})
    bias_bits: int = 4
    prune_epochs: int = 8
    share_epochs: int = 8
    lr: float = 1e-3
    share_lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    progress: bool | None = None
    """None: follow ``lwc.train.show_progress`` (the CLI turns it on)."""
    max_drop: float | None = None
    """If set, the largest validation-accuracy loss a pruning stage may cause before it is
    undone (a held-out split of x_train; off by default because the digits validation split is
    only ~200 samples, where one sample is half a point)."""
    val_fraction: float = 0.15
    """Share of the training split held out to guard pruning (never the test split)."""


@dataclass
class LayerRow:
    """One row of the paper-style per-layer table."""

    name: str
    params: int
    kept: float
    bits_per_weight: float
    """Mean Huffman-coded bits per stored codebook index."""
    bits_per_index: float
    """Mean Huffman-coded bits per relative index (gap)."""
    bytes: int
    ratio: float


@dataclass
class DCResult:
    graph: Graph
    rows: list[LayerRow]
    accuracy_before: float
    accuracy_after: float
    float_bytes: int
    file_bytes: int
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    """Pruning masks by weight name (True = kept)."""

    @property
    def ratio(self) -> float:
        return self.float_bytes / self.file_bytes


def prune_and_retrain(graph: Graph, data: Dataset, cfg: DCConfig,
                      val: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Iterative magnitude pruning with retraining; returns the masks by weight name.

    With a validation split ``val``, a stage whose validation accuracy falls more than
    ``cfg.max_drop`` below the dense model's is undone and pruning stops there."""
    masks: dict[str, np.ndarray] = {}
    dense_std = {layer.weight.name: float(np.std(layer.weight.data))
                 for layer in weight_layers(graph)}
    base = accuracy(graph, *val) if val is not None else 0.0
    for stage, q in enumerate(cfg.qualities):
        snapshot = {k: v.data for k, v in graph.constants.items()}
        previous = dict(masks)
        for layer in weight_layers(graph):
            w, name = np.asarray(layer.weight.data), layer.weight.name
            if w.size < cfg.min_prune_params:
                continue
            quality = q * (cfg.conv_scale if layer.kind == "conv" else 1.0)
            masks[name] = magnitude_mask(w, quality, masks.get(name), dense_std[name])
        trainer = Trainer(graph, Adam(lr=cfg.lr),
                          transforms={k: Masked(m.astype(np.float32)) for k, m in masks.items()})
        trainer.commit()  # apply the new masks before training
        trainer.fit(data, cfg.prune_epochs, cfg.batch_size, seed=cfg.seed + stage,
                    progress=cfg.progress)
        kept = sum(int(m.sum()) for m in masks.values()) / sum(m.size for m in masks.values())
        val_acc = accuracy(graph, *val) if val is not None else float("nan")
        log.info("prune stage %d (quality %.2f): %.1f%% of weights kept, validation accuracy "
                 "%.2f%%", stage, q, 100 * kept, 100 * val_acc)
        if val is not None and cfg.max_drop is not None and stage > 0 \
                and val_acc < base - cfg.max_drop:
            for k, arr in snapshot.items():
                graph.set_constant(graph.constants[k], arr)
            log.info("stage %d lost more than %.2f points: undone, pruning stops", stage,
                     100 * cfg.max_drop)
            return previous
    return masks


def share_and_retrain(graph: Graph, data: Dataset, cfg: DCConfig,
                      masks: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """k-means sharing of every weight and bias, then centroid fine-tuning (summed gradients)."""
    codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for layer in weight_layers(graph):
        for v, bits in _shared_tensors(layer, cfg):
            w = np.asarray(v.data)
            mask = masks.get(v.name, np.ones(w.shape, bool))
            codes[v.name] = kmeans_share(w, bits, mask)
    transforms = {k: Shared(idx, idx > 0) for k, (_cb, idx) in codes.items()}
    latents = {k: cb for k, (cb, _idx) in codes.items()}
    trainer = Trainer(graph, Adam(lr=cfg.share_lr), transforms=transforms, latents=latents)
    trainer.fit(data, cfg.share_epochs, cfg.batch_size, seed=cfg.seed + 100, progress=cfg.progress)
    for k, p in trainer.params.items():
        if k in codes:
            # centroids are rounded to float16 so the codebook is stored in half the bytes;
            # the zero entry stays exactly zero
            cb = p.latent.astype(np.float16).astype(np.float32)
            cb[0] = 0.0
            codes[k] = (cb, codes[k][1])
    return codes


def _shared_tensors(layer: Layer, cfg: DCConfig) -> list[tuple]:
    out = [(layer.weight, cfg.bits[layer.kind])]
    if layer.bias is not None:
        out.append((layer.bias, cfg.bias_bits))
    return out


def encode_layers(graph: Graph, codes: dict[str, tuple[np.ndarray, np.ndarray]]
                  ) -> tuple[dict[str, Encoded], list[LayerRow]]:
    records: dict[str, Encoded] = {}
    rows: list[LayerRow] = []
    kinds = {v.name: layer.kind for layer in weight_layers(graph)
             for v in (layer.weight, layer.bias) if v is not None}
    for name, (codebook, index) in codes.items():
        gap_bits = GAP_BITS[kinds[name]] if np.any(index == 0) else 0  # dense: no gaps
        rec = encode_dc(name, codebook, index, gap_bits)
        records[name] = rec
        n = index.size
        # payload blobs plus this record's Huffman tables, compressed on their own as in the
        # header (the header compresses them together, so the file is a little smaller)
        stored = rec.nbytes + len(zlib.compress(json.dumps(rec.meta).encode(), 9))
        rows.append(LayerRow(name, n, float((index > 0).mean()),
                             rec.meta["idx"]["nbits"] / max(rec.meta["entries"], 1),
                             rec.meta["gap"]["nbits"] / max(rec.meta["entries"], 1)
                             if gap_bits else 0.0,
                             stored, n * 4 / stored))
    return records, rows


def deep_compress(graph: Graph, data: Dataset, out: str | Path,
                  cfg: DCConfig | None = None) -> DCResult:
    """Run the whole recipe on ``graph`` (modified in place) and write ``out`` (.lwcz)."""
    cfg = cfg or DCConfig()
    data = data.for_graph(graph)
    float_bytes = 4 * sum(int(v.data.size) for v in graph.constants.values()
                          if v.data is not None and v.type.dtype.is_float)
    before = accuracy(graph, data.x_test, data.y_test)
    if cfg.max_drop is None:
        train, val = data, None
    else:
        train, val = data.split_validation(cfg.val_fraction, cfg.seed)
    masks = prune_and_retrain(graph, train, cfg, val)
    codes = share_and_retrain(graph, train, cfg, masks)
    for name, (cb, idx) in codes.items():
        graph.set_constant(graph.constants[name], cb[idx].reshape(idx.shape))
    after = accuracy(graph, data.x_test, data.y_test)
    if Path(out).suffix == ".onnx":
        from lwc.frontend.onnx.export import export_onnx

        export_onnx(codebook_graph(graph, codes), out, allow_custom=False)
        rows = codebook_rows(codes)
        size = Path(out).stat().st_size
    else:
        records, rows = encode_layers(graph, codes)
        size = write_lwcz(out, graph, records)
    return DCResult(graph, rows, before, after, float_bytes, size, masks)


def codebook_graph(graph: Graph, codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> Graph:
    """A copy of ``graph`` in which each shared weight is ``gather(codebook, cast(index))`` with
    an unsigned 8/16-bit index constant: how ONNX, which has no codebook type, can store it.
    The gathered values are the weights exactly."""
    g = graph.copy()
    for name, (cb, idx) in codes.items():
        v = g.constants[name]
        itype = np.uint8 if len(cb) <= 256 else np.uint16
        book = g.add_constant(np.asarray(cb, v.type.dtype.numpy), f"{name}.codebook")
        index = g.add_constant(np.asarray(idx, itype).reshape(v.type.concrete_shape()),
                               f"{name}.index")
        wide = g.add_node("cast", [index], {"to": "i32"}, name=f"{name}.widen").output
        w = g.add_node("gather", [book, wide], {"axis": 0}, name=f"{name}.decode").output
        g.replace_all_uses(v, w)
    g.toposort()
    g.remove_unused_constants()
    g.verify()
    return g


def codebook_rows(codes: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[LayerRow]:
    """The per-layer table for the ONNX form: index bytes plus the float32 codebook."""
    rows = []
    for name, (cb, idx) in codes.items():
        width = 1 if len(cb) <= 256 else 2
        stored = idx.size * width + 4 * len(cb)
        rows.append(LayerRow(name, int(idx.size), float((idx > 0).mean()), 8.0 * width, 0.0,
                             stored, idx.size * 4 / stored))
    return rows
