"""The ``bnn``, ``xnor`` and ``tbn`` compression recipes: binarise -> fine-tune -> lower -> fold
-> bit-pack.

1. ``binarize.prepare``: the hidden conv/gemm layers (not the first or last) get BatchNorm +
   binarize (BNN, XNOR-Net) or ternarize (TBN) before them and sign weights (with alpha per
   filter for XNOR/TBN; XNOR also scales by K);
2. fine-tuning with ``lwc.train`` (Adam, straight-through estimator with clipping for weights
   and activations), starting from the float model's weights;
3. ``lower_binary`` (xnor_conv/xnor_gemm) and ``fold_bn_sign`` (BNN's BatchNorm + sign as an
   integer threshold);
4. an ``.lwcz`` whose xnor weights are ``binary`` records (1 bit per weight, BMXNet-style) and
   whose alphas (one float32 per filter) and real layers are zlib ``raw`` records, or standard
   ONNX (``.onnx``: sign weights as int8, see ``frontend/onnx/export_binary.py``) that
   onnxruntime runs. The reported accuracy after is that of the graph read back from the file,
   which is checked to give identical outputs on the whole test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lwc.errors import LwcError
from lwc.ir.core import Graph
from lwc.passes.compress.binarize import fold_bn_sign, lower_binary, prepare
from lwc.passes.compress.container import Encoded, encode_binary, encode_raw, read_lwcz, write_lwcz
from lwc.passes.compress.recipes import Report, bad_output, recipe
from lwc.train import Adam, Dataset, Trainer
from lwc.train.trainer import predict


@dataclass
class BinaryConfig:
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 32
    seed: int = 0
    threshold: float = 0.5
    """TBN's ternarisation threshold (on BatchNorm-normalised inputs)."""
    progress: bool = False


def _float_bytes(graph: Graph) -> int:
    return sum(4 * v.data.size for v in graph.constants.values()
               if v.data is not None and v.type.dtype.is_float)


def encode_binary_layers(graph: Graph, onnx: bool = False) -> tuple[dict[str, Encoded],
                                                                    list[list]]:
    """Bit-pack every xnor weight; the per-layer table of every weight layer. With ``onnx`` the
    table counts the bytes the ONNX export stores instead (int8 signs, float32 real layers) and
    no records are encoded."""
    records: dict[str, Encoded] = {}
    rows: list[list] = []
    for node in graph.nodes:
        consts = [v for v in node.inputs[1:] if v.is_constant and v.data is not None]
        if node.op in ("xnor_conv", "xnor_gemm"):
            w = node.inputs[1]
            if onnx:
                nbytes = w.data.size
            else:
                records[w.name] = encode_binary(w.name, np.asarray(w.data), None)
                nbytes = records[w.name].nbytes
            if len(node.inputs) > 2:
                alpha = node.inputs[2]
                nbytes += 4 * alpha.data.size if onnx else encode_raw(alpha.name,
                                                                      alpha.data).nbytes
            kind = "ternary x binary" if node.attrs.get("input") == "ternary" else "binary"
            kind += " (int8 signs)" if onnx else ""
        elif node.op in ("conv", "gemm") and node.inputs[1].is_constant:
            w = node.inputs[1]
            nbytes = sum(v.data.nbytes if onnx else encode_raw(v.name, v.data).nbytes
                         for v in consts)
            kind = "real (float32)" if onnx else "real (zlib)"
        else:
            continue
        n = int(w.data.size)
        rows.append([node.label, kind, n, round(8 * nbytes / n, 3), nbytes,
                     round(4 * n / nbytes, 1)])
    return records, rows


def write_binary(graph: Graph, out: Path) -> tuple[int, list[list], Graph]:
    """Write ``out`` (.lwcz bit-packed, or standard ONNX); its size, table and read-back graph."""
    if out.suffix == ".onnx":
        from lwc.frontend.onnx.export import export_onnx
        from lwc.frontend.onnx.importer import import_onnx

        export_onnx(graph, out, allow_custom=False)
        return out.stat().st_size, encode_binary_layers(graph, onnx=True)[1], import_onnx(out)
    records, rows = encode_binary_layers(graph)
    size = write_lwcz(out, graph, records)
    return size, rows, read_lwcz(out)


def binary_compress(graph: Graph, data: Dataset, out: Path, scheme: str,
                    cfg: BinaryConfig | None = None) -> Report:
    """Run the recipe for ``scheme`` on ``graph`` (modified in place) and write ``out``."""
    cfg = cfg or BinaryConfig()
    if out.suffix not in (".lwcz", ".onnx"):
        raise bad_output(out, scheme, ".lwcz or .onnx")
    data = data.for_graph(graph)
    float_bytes = _float_bytes(graph)
    before = float((predict(graph, data.x_test).argmax(1) == data.y_test).mean())
    prep = prepare(graph, scheme, threshold=cfg.threshold)
    if not prep.layers:
        raise LwcError(f"graph @{graph.name}: no hidden conv/gemm layer to binarise (the first "
                       "and last weight layers stay real)")
    trainer = Trainer(graph, Adam(lr=cfg.lr), prep.transforms, extra=prep.extra)
    trainer.fit(data, cfg.epochs, cfg.batch_size, seed=cfg.seed, progress=cfg.progress)
    lowered = lower_binary(graph)
    folded = fold_bn_sign(graph)
    graph.verify()
    size, rows, back = write_binary(graph, out)
    logits = predict(graph, data.x_test)
    reloaded = predict(back, data.x_test)
    if not np.array_equal(logits, reloaded):
        raise LwcError(f"{out}: the graph read back gives different outputs (internal error)")
    after = float((reloaded.argmax(1) == data.y_test).mean())
    cols = ["layer", "storage", "params", "bits/weight", "bytes", "ratio"]
    notes = [f"{lowered} layers binarised ({', '.join(prep.layers)}), {folded} BatchNorm+sign "
             f"folded into thresholds; {cfg.epochs} fine-tuning epochs",
             ("binary bytes = 1 byte (int8 sign) per weight plus the float32 alpha per filter "
              "(ONNX has no 1-bit type; .lwcz stores 1 bit)" if out.suffix == ".onnx" else
              "binary bytes = 1 bit per weight plus the zlib'd float32 alpha per filter")
             + f"; the total ratio uses the real {out.suffix} file size (BatchNorm, biases and "
             "real layers included)",
             "the file reads back to a graph with identical outputs on the whole test split"]
    return Report(scheme, before, after, float_bytes, size, cols, rows, notes)


def _make(scheme: str, doc: str):  # noqa: ANN202
    def run(graph: Graph, data: Dataset, out: Path, epochs: int | None) -> Report:
        cfg = BinaryConfig() if epochs is None else BinaryConfig(epochs=epochs)
        return binary_compress(graph, data, out, scheme, cfg)

    run.__doc__ = doc
    run.__name__ = f"_{scheme}"
    return recipe(scheme)(run)


_make("bnn", "BNN: sign weights and activations, BatchNorm+sign folded to thresholds.")
_make("xnor", "XNOR-Net: alpha*sign weights, sign activations scaled by K.")
_make("tbn", "TBN: ternary activations by threshold, alpha*sign weights.")
