"""``quantize-int8{method=minmax|percentile|entropy}``: post-training int8 quantisation.

Run after ``fold-bn,fuse`` (so BatchNorm lives in the weights and ReLU/ReLU6/clip in the producer's
``act``). Every conv, gemm and 2-D matmul with constant weights becomes a ``qlinear_conv`` /
``qlinear_gemm`` (per-channel symmetric int8 weights, int32 bias at scale x_scale * w_scale,
per-tensor asymmetric int8 activations with a zero point), every add of two activations a
``qlinear_add``. Ops that commute with a monotone affine map (max_pool, flatten, reshape,
squeeze, unsqueeze, transpose, identity, dropout) run on the int8 codes directly. Anything else
stays float: ``dequantize_linear`` / ``quantize_linear`` are inserted at each boundary, and graph
outputs are dequantised, so the graph keeps its float interface. Semantics of the new ops:
lwc/ops/qlinear.py.

Activation ranges come from ``calibrate`` over the calibration set (``data=`` an .npz whose
``x_train`` rows are used, first ``samples`` of a seeded permutation; without data, seeded normal
inputs, which only suits tests). ``quantize_graph`` is the same rewrite for callers that already
have ranges (the int8 recipe after quantisation-aware training).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lwc.errors import InputError, PassError
from lwc.fileio import load_arrays
from lwc.interp import random_inputs
from lwc.ir.core import Graph, Node, Value
from lwc.ops.qlinear import QACTS
from lwc.ops.registry import get_op
from lwc.pass_manager import Pass, PassContext, PassResult, register_pass
from lwc.passes.compress.calibrate import (METHODS, activation_qparams, calibrate,
                                           quantize_weight)
from lwc.rewrite import Rewriter

log = logging.getLogger(__name__)

PASS_THROUGH = ("max_pool", "flatten", "reshape", "squeeze", "unsqueeze", "transpose",
                "identity", "dropout")
"""Ops that give the same result on int8 codes as on their real values (order- and
value-preserving), so quantised tensors flow through them without requantisation."""

ACT_DTYPE = np.dtype(np.int8)
"""Activations are int8 with a zero point, as onnxruntime's QDQ default: its exact s8 x s8 kernels
then run the export (its u8 x s8 path saturates int16 pair sums on CPUs without VNNI)."""


@dataclass
class QValue:
    """A quantised stand-in for a float value: the int8 value and its scale/zero-point constants."""

    q: Value
    scale: Value
    zp: Value

    @property
    def params(self) -> tuple[float, int]:
        return float(self.scale.data), int(self.zp.data)  # type: ignore[arg-type]


@dataclass
class LayerQuant:
    """One quantised layer, for the recipe's per-layer table."""

    name: str
    op: str
    params: int
    in_scale: float
    in_zp: int
    out_scale: float
    out_zp: int
    weight_error: float
    """||W - dequant(quant(W))|| / ||W|| (0 for ops without weights)."""


def _attrs(node: Node) -> dict[str, Any]:
    return get_op(node.op).complete_attrs(node.attrs, node.label)


def _is_activation(v: Value) -> bool:
    return not v.is_constant and v.type.dtype.is_float


def quantizable(node: Node) -> bool:
    """Whether ``quantize_graph`` turns ``node`` into a qlinear op."""
    ins = node.inputs
    if node.op == "conv":
        a = _attrs(node)
        return (_is_activation(ins[0]) and ins[1].is_constant and not a["residual"]
                and a["act"] in QACTS and all(v.is_constant for v in ins[2:]))
    if node.op == "gemm":
        a = _attrs(node)
        c = ins[2].data if len(ins) > 2 else None
        n = ins[1].type.shape[0 if a["trans_b"] else 1]
        return (_is_activation(ins[0]) and ins[1].is_constant and not a["trans_a"]
                and not a["residual"] and a["alpha"] == 1.0 and a["act"] in QACTS
                and (len(ins) == 2 or (c is not None and c.size in (1, n))))
    if node.op == "matmul":
        return (_is_activation(ins[0]) and ins[0].type.rank == 2 and ins[1].is_constant
                and ins[1].type.rank == 2)
    if node.op == "add":
        return all(_is_activation(v) for v in ins) and ins[0].type.dtype == ins[1].type.dtype
    return False


def unfuse_residual(graph: Graph) -> int:
    """conv/gemm{residual, act}(x, w, b, r) -> act(add(conv(x, w, b), r)) as separate nodes, so
    that calibration sees the conv result and the sum (each gets its own int8 scale) and the add
    becomes a ``qlinear_add`` with the activation fused. Only epilogues quantised ops can fuse
    (relu, relu6, clip) are split; returns how many."""
    count = 0
    for node in list(graph.nodes):
        if node.op not in ("conv", "gemm"):
            continue
        a = _attrs(node)
        if not a["residual"] or a["act"] not in QACTS:
            continue
        rw = Rewriter(graph, node)
        attrs = {k: v for k, v in node.attrs.items()
                 if k not in ("residual", "act", "clip_min", "clip_max")}
        core = rw.create(node.op, *node.inputs[:-1], attrs=attrs, name=node.name)
        out = rw.create("add", core.output, node.inputs[-1], name=f"{node.label}.residual")
        if a["act"] == "relu":
            out = rw.create("relu", out.output, name=f"{node.label}.act")
        elif a["act"]:
            lo, hi = (0.0, 6.0) if a["act"] == "relu6" else (a["clip_min"], a["clip_max"])
            out = rw.create("clip", out.output, attrs={"min": lo, "max": hi},
                            name=f"{node.label}.act")
        rw.replace(node, out)
        count += 1
    return count


def fusable_act(v: Value, graph: Graph) -> tuple[Node, dict[str, Any]] | None:
    """The sole reader of ``v`` when it is relu or clip, as qlinear ``act`` attributes."""
    users = v.users
    if len(users) != 1 or len(v.uses) != 1 or v in graph.outputs:
        return None
    u = users[0]
    if u.op == "relu":
        return u, {"act": "relu"}
    if u.op == "clip":
        a = _attrs(u)
        if not (np.isfinite(a["min"]) and np.isfinite(a["max"])):
            return None
        return u, {"act": "clip", "clip_min": a["min"], "clip_max": a["max"]}
    return None


class _Quantizer:
    def __init__(self, graph: Graph, ranges: dict[str, tuple[float, float]]) -> None:
        self.g, self.ranges = graph, ranges
        self.qv: dict[int, QValue] = {}
        self.rows: list[LayerQuant] = []
        self.done: set[int] = set()
        """ids of nodes already replaced (an activation fused into the add before it)."""

    def params_of(self, v: Value) -> tuple[Value, Value]:
        if v.name not in self.ranges:
            raise PassError(f"pass quantize-int8: no calibrated range for %{v.name} ({v.type}); "
                            "calibrate the graph this pass runs on")
        scale, zp = activation_qparams(*self.ranges[v.name], ACT_DTYPE)
        return (self.g.add_constant(np.asarray(scale, np.float32), f"{v.name}.scale"),
                self.g.add_constant(np.asarray(zp, ACT_DTYPE), f"{v.name}.zp"))

    def quantized(self, v: Value, rw: Rewriter) -> QValue:
        """The int8 form of activation ``v``: known already, or a new quantize_linear."""
        if id(v) not in self.qv:
            s, z = self.params_of(v)
            q = rw.create("quantize_linear", v, s, z, name=f"{v.name}.quant").output
            self.qv[id(v)] = QValue(q, s, z)
        return self.qv[id(v)]

    def finish(self, node: Node, rw: Rewriter, qout: QValue) -> None:
        """Replace ``node`` by a dequantised ``qout`` (later quantised readers skip the pair)."""
        deq = rw.create("dequantize_linear", qout.q, qout.scale, qout.zp,
                        name=f"{node.label}.dequant")
        rw.replace(node, deq)
        self.qv[id(deq.output)] = qout

    def run(self) -> None:
        for node in list(self.g.nodes):
            if id(node) in self.done:
                continue
            rw = Rewriter(self.g, node)
            if node.op in PASS_THROUGH and id(node.inputs[0]) in self.qv:
                src = self.qv[id(node.inputs[0])]
                new = rw.create(node.op, src.q, *node.inputs[1:], attrs=node.attrs,
                                name=node.name)
                self.finish(node, rw, QValue(new.output, src.scale, src.zp))
            elif quantizable(node):
                getattr(self, f"_{node.op}")(node, rw)

    def _out(self, node: Node) -> tuple[Value, Value]:
        return self.params_of(node.output)

    def _row(self, node: Node, x: QValue, out: tuple[Value, Value], w: np.ndarray | None,
             wq: np.ndarray | None, ws: np.ndarray | None, axis: int = 0) -> None:
        err = 0.0
        if w is not None and wq is not None and ws is not None:
            shape = [1] * w.ndim
            shape[axis] = -1
            deq = wq.astype(np.float32) * ws.reshape(shape)
            err = float(np.linalg.norm(deq - w) / max(np.linalg.norm(w), 1e-30))
        xs, xz = x.params
        self.rows.append(LayerQuant(node.label, node.op, 0 if w is None else int(w.size),
                                    xs, xz, float(out[0].data), int(out[1].data), err))

    def _bias(self, b: np.ndarray | None, x: QValue, ws: np.ndarray, n: int, name: str
              ) -> list[Value]:
        if b is None:
            return []
        bf = np.broadcast_to(np.asarray(b, np.float64).reshape(-1), (n,))
        bscale = np.float64(np.float32(x.params[0]) * ws.astype(np.float32))
        bq = np.clip(np.rint(bf / bscale), -(2**31), 2**31 - 1).astype(np.int32)
        return [self.g.add_constant(bq, f"{name}.bias_q")]

    def _weights(self, w: np.ndarray, axis: int, name: str) -> tuple[np.ndarray, np.ndarray,
                                                                      Value, Value, Value]:
        wq, ws = quantize_weight(w, axis)
        return (wq, ws, self.g.add_constant(wq, f"{name}.w_q"),
                self.g.add_constant(ws, f"{name}.w_scale"),
                self.g.add_constant(np.zeros(len(ws), np.int8), f"{name}.w_zp"))

    def _conv(self, node: Node, rw: Rewriter) -> None:
        a = _attrs(node)
        x = self.quantized(node.inputs[0], rw)
        w = node.inputs[1].data
        assert w is not None
        wq, ws, wv, wsv, wzv = self._weights(w, 0, node.label)
        bias = self._bias(node.inputs[2].data if len(node.inputs) > 2 else None, x, ws,
                          w.shape[0], node.label)
        ys, yz = self._out(node)
        attrs = {k: a[k] for k in ("strides", "pads", "dilations", "group", "act", "clip_min",
                                   "clip_max")}
        new = rw.create("qlinear_conv", x.q, x.scale, x.zp, wv, wsv, wzv, ys, yz, *bias,
                        attrs=attrs, name=node.name)
        self._row(node, x, (ys, yz), w, wq, ws)
        self.finish(node, rw, QValue(new.output, ys, yz))

    def _gemm(self, node: Node, rw: Rewriter) -> None:
        a = _attrs(node)
        x = self.quantized(node.inputs[0], rw)
        w = node.inputs[1].data
        assert w is not None
        axis = 0 if a["trans_b"] else 1
        n = w.shape[axis]
        wq, ws, wv, wsv, wzv = self._weights(w, axis, node.label)
        c = node.inputs[2].data if len(node.inputs) > 2 else None
        bias = self._bias(None if c is None else c * np.float64(a["beta"]), x, ws, n, node.label)
        ys, yz = self._out(node)
        new = rw.create("qlinear_gemm", x.q, x.scale, x.zp, wv, wsv, wzv, ys, yz, *bias,
                        attrs={"trans_b": a["trans_b"], "act": a["act"],
                               "clip_min": a["clip_min"], "clip_max": a["clip_max"]},
                        name=node.name)
        self._row(node, x, (ys, yz), w, wq, ws, axis)
        self.finish(node, rw, QValue(new.output, ys, yz))

    def _matmul(self, node: Node, rw: Rewriter) -> None:
        x = self.quantized(node.inputs[0], rw)
        w = node.inputs[1].data
        assert w is not None
        wq, ws, wv, wsv, wzv = self._weights(w, 1, node.label)
        ys, yz = self._out(node)
        new = rw.create("qlinear_gemm", x.q, x.scale, x.zp, wv, wsv, wzv, ys, yz,
                        name=node.name)
        self._row(node, x, (ys, yz), w, wq, ws, 1)
        self.finish(node, rw, QValue(new.output, ys, yz))

    def _add(self, node: Node, rw: Rewriter) -> None:
        """qlinear_add; a sole relu/clip reader is fused (its output range is the add's)."""
        qa, qb = (self.quantized(v, rw) for v in node.inputs)
        fused = fusable_act(node.output, self.g)
        last = fused[0] if fused else node
        ys, yz = self.params_of(last.output)
        new = rw.create("qlinear_add", qa.q, qa.scale, qa.zp, qb.q, qb.scale, qb.zp, ys, yz,
                        attrs=fused[1] if fused else None, name=node.name)
        self._row(node, qa, (ys, yz), None, None, None)
        if fused:
            rw2 = Rewriter(self.g, fused[0])
            self.finish(fused[0], rw2, QValue(new.output, ys, yz))
            self.done.add(id(fused[0]))
        else:
            self.finish(node, rw, QValue(new.output, ys, yz))


def quantize_graph(graph: Graph, ranges: dict[str, tuple[float, float]]) -> list[LayerQuant]:
    """Rewrite ``graph`` in place to int8 with the calibrated ``ranges`` (by value name);
    returns one row per quantised layer."""
    from lwc.passes.graph.dce import DeadCodeElimination

    q = _Quantizer(graph, ranges)
    q.run()
    DeadCodeElimination().run(graph, PassContext())
    graph.verify()
    return q.rows


def calibration_batches(graph: Graph, data: str, samples: int, seed: int,
                        batch: int = 256) -> list[np.ndarray]:
    """``samples`` rows of ``x_train`` from ``data`` (seeded pick), reshaped to the graph input."""
    t = graph.inputs[0].type
    if not data:
        x = random_inputs(graph, seed=seed, batch=samples)[graph.inputs[0].name]
    else:
        arrays = load_arrays(data)
        if "x_train" not in arrays:
            raise InputError(f"{data}: calibration data needs an x_train array")
        xt = arrays["x_train"]
        pick = np.random.default_rng(seed).permutation(len(xt))[:samples]
        sample = t.concrete_shape()[1:]
        if int(np.prod(xt.shape[1:])) != int(np.prod(sample)):
            raise InputError(f"{data}: x_train rows have shape {list(xt.shape[1:])}, the model "
                             f"input {graph.inputs[0].name} takes {t}")
        x = xt[pick].reshape(len(pick), *sample).astype(t.dtype.numpy)
    return [x[i:i + batch] for i in range(0, len(x), batch)]


@register_pass
@dataclass(frozen=True)
class QuantizeInt8(Pass):
    """Post-training int8: calibrate activations, then qlinear conv/gemm/add ops.

    Approximate: the error is the rounding of weights (reported per layer as ``weight_error``)
    and of activations to 8 bits. Run after fold-bn,fuse.
    """

    name: ClassVar[str] = "quantize-int8"
    exact: ClassVar[bool] = False
    method: str = "minmax"
    data: str = ""
    samples: int = 256
    percentile: float = 99.99
    seed: int = 0

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        if self.method not in METHODS:
            raise PassError(f"pass {self.name}: method must be one of {', '.join(METHODS)}, "
                            f"got {self.method!r}")
        if self.samples < 1:
            raise PassError(f"pass {self.name}: samples must be >= 1, got {self.samples}")
        unfuse_residual(graph)
        if not any(quantizable(n) for n in graph.nodes):
            return PassResult(changed=False)
        if not self.data:
            log.warning("quantize-int8: no data= given; calibrating on seeded random inputs")
        batches = calibration_batches(graph, self.data, self.samples, self.seed)
        ranges = calibrate(graph, batches, self.method, self.percentile)
        rows = quantize_graph(graph, ranges)
        for r in rows:
            ctx.record(r.name, op=r.op, weight_error=r.weight_error, in_scale=r.in_scale,
                       out_scale=r.out_scale)
        return PassResult(changed=True, stats={"quantized": len(rows)})
