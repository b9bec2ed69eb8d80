"""The ``int8`` compression recipe: fold-bn,fuse -> calibrate -> [QAT] -> quantise -> write.

Residual epilogues are split back out after fusion (``unfuse_residual``) so that each residual
add becomes a ``qlinear_add`` with its own calibrated scale.

Calibration uses ``CALIB_SAMPLES`` seeded rows of the training split. The calibration method
(minmax, percentile, entropy) is chosen by top-1 accuracy on a held-out validation slice of the
training split (never the test split), ties broken by the int8 logits' error against float.
With ``--finetune-epochs N`` the float weights are then fine-tuned for N epochs with fake
quantisation (lwc/train/fake_quant.py) at the chosen activation ranges before quantising.
``.onnx`` output is QDQ ONNX that onnxruntime runs; ``.lwcz`` stores the int8 graph (int8
weights, int32 biases; zlib ``raw`` records).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lwc.ir.core import Graph
from lwc.ops.registry import get_op
from lwc.pass_manager import PassManager
from lwc.passes.compress.calibrate import METHODS, calibrate
from lwc.passes.compress.quantize import (LayerQuant, fusable_act, quantizable, quantize_graph,
                                          unfuse_residual)
from lwc.passes.compress.recipes import Report, bad_output, recipe
from lwc.train.data import Dataset

CALIB_SAMPLES = 256
VAL_FRACTION = 0.2
FINETUNE_LR = 1e-3


def float_param_bytes(graph: Graph) -> int:
    """float32 bytes of every float constant (the baseline the ratio is measured against)."""
    return sum(4 * v.data.size for v in graph.constants.values()
               if v.data is not None and v.type.dtype.is_float)


def _calibration_set(x: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    pick = np.random.default_rng(seed).permutation(len(x))[:CALIB_SAMPLES]
    return [x[pick]]


def _quantised_copy(graph: Graph, ranges: dict[str, tuple[float, float]]) -> Graph:
    g = graph.copy()
    quantize_graph(g, ranges)
    return g


def choose_method(graph: Graph, calib: list[np.ndarray], x_val: np.ndarray, y_val: np.ndarray
                  ) -> tuple[str, dict[str, tuple[float, float]], dict[str, float]]:
    """(best method, its ranges, validation accuracy per method): highest top-1 accuracy, then
    the smallest mean squared error of the int8 logits against the float logits (validation
    rows come from the training split, where accuracies are often tied)."""
    from lwc.train.trainer import predict

    ref = predict(graph, x_val)
    scores: dict[str, float] = {}
    keyed = []
    for method in METHODS:
        ranges = calibrate(graph, calib, method)
        logits = predict(_quantised_copy(graph, ranges), x_val)
        scores[method] = float((logits.argmax(axis=1) == y_val).mean())
        mse = float(np.mean((logits.astype(np.float64) - ref) ** 2))
        keyed.append(((-scores[method], mse), method, ranges))
    _, method, ranges = min(keyed, key=lambda k: k[0])
    return method, ranges, scores


def finetune_qat(graph: Graph, data: Dataset, ranges: dict[str, tuple[float, float]],
                 epochs: int) -> list[float]:
    """Quantisation-aware fine-tuning of ``graph``'s float weights in place."""
    from lwc.train.fake_quant import FakeQuantWeight, insert_fake_quant, remove_fake_quant
    from lwc.train.optim import SGD
    from lwc.train.trainer import Trainer

    transforms, acts, seen = {}, [], set()
    for node in graph.nodes:
        if not quantizable(node):
            continue
        if node.op != "add":
            trans_b = get_op("gemm").complete_attrs(node.attrs)["trans_b"] \
                if node.op == "gemm" else False
            axis = 0 if node.op == "conv" or trans_b else 1
            transforms[node.inputs[1].name] = FakeQuantWeight(axis)
        fused = fusable_act(node.output, graph) if node.op == "add" else None
        out = fused[0].output if fused else node.output
        for v in [*(node.inputs[:1] if node.op != "add" else node.inputs), out]:
            if id(v) not in seen:
                seen.add(id(v))
                acts.append(v)
    insert_fake_quant(graph, ranges, acts)
    trainer = Trainer(graph, SGD(lr=FINETUNE_LR, momentum=0.9), transforms)
    history = trainer.fit(data, epochs, batch_size=32, seed=0)
    remove_fake_quant(graph)
    return history


def _rows(rows: list[LayerQuant]) -> list[list[object]]:
    return [[r.name, r.op, r.params, round(100 * r.weight_error, 3), f"{r.in_scale:.4g}", r.in_zp,
             f"{r.out_scale:.4g}", r.out_zp] for r in rows]


@recipe("int8")
def int8_recipe(graph: Graph, data: Dataset, out: Path, epochs: int | None) -> Report:
    """Post-training int8 (best calibration method on validation data), optional QAT."""
    from lwc.train.trainer import accuracy

    if out.suffix not in (".onnx", ".lwcz"):
        raise bad_output(out, "int8", ".onnx or .lwcz")
    PassManager("fold-bn,fuse").run(graph)
    unfuse_residual(graph)
    ds = data.for_graph(graph)
    float_bytes = float_param_bytes(graph)
    before = accuracy(graph, ds.x_test, ds.y_test)
    train, (x_val, y_val) = ds.split_validation(VAL_FRACTION, seed=0)
    calib = _calibration_set(train.x_train)
    method, ranges, scores = choose_method(graph, calib, x_val, y_val)
    notes = [f"calibration: {CALIB_SAMPLES} training rows; method {method} chosen by validation "
             "accuracy (" + ", ".join(f"{m} {100 * a:.2f}%" for m, a in scores.items()) + ")"]
    if epochs:
        hist = finetune_qat(graph, train, ranges, epochs)
        notes.append(f"QAT: {epochs} epoch(s), SGD lr {FINETUNE_LR}, final loss {hist[-1]:.4f}")
    rows = quantize_graph(graph, ranges)
    after = accuracy(graph, ds.x_test, ds.y_test)
    if out.suffix == ".onnx":
        from lwc.frontend.onnx.export import export_onnx

        export_onnx(graph, out)
    else:
        from lwc.passes.compress.container import write_lwcz

        write_lwcz(out, graph, {})
    notes.append("weight error = ||W - dequant(quant(W))|| / ||W||; activations i8 per tensor, "
                 "weights i8 per channel (symmetric), biases i32")
    cols = ["layer", "op", "params", "w err %", "in scale", "in zp", "out scale", "out zp"]
    return Report("int8", before, after, float_bytes, out.stat().st_size, cols, _rows(rows),
                  notes)
