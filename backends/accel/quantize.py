"""Float IR graph -> int8 ``QModel``: fold batch norms, fuse activations, calibrate, quantise.

A simple post-training scheme kept inside this backend: symmetric per-tensor activation scales
(range / 127 over the calibration inputs, taken after the fused activation; the range is max |x|
by default, or a percentile / entropy threshold from ``passes.compress.calibrate``) and symmetric
per-output-channel weight scales; biases become int32 at scale s_x * s_w. Reshape-like ops are
aliases (NCHW bytes do not move), so ``flatten`` before a ``gemm`` costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lwc.backends.accel.qmodel import (QAdd, QConcat, QConv, QModel, QPool, QTensor,
                                       quant_multiplier)
from lwc.errors import InputError, UnsupportedOpError
from lwc.interp import interpret, random_inputs
from lwc.ir.core import Graph, Node, Value
from lwc.ops.registry import get_op

ALIAS_OPS = ("reshape", "flatten", "identity", "dropout", "squeeze", "unsqueeze")
ACT_OPS = ("relu", "clip")


def _attrs(node: Node) -> dict:
    return get_op(node.op).complete_attrs(node.attrs, node.label)


def _shape4(v: Value) -> tuple[int, int, int, int]:
    shp = [1 if isinstance(d, str) else int(d) for d in v.type.shape]
    if shp and shp[0] != 1:
        raise UnsupportedOpError(f"%{v.name}: the accelerator runs batch 1, got {v.type}")
    shp = (shp + [1, 1, 1])[:4] if len(shp) <= 4 else shp
    if len(shp) != 4:
        raise UnsupportedOpError(f"%{v.name}: rank {len(shp)} tensors are not supported")
    return tuple(shp)  # type: ignore[return-value]


def _sole_user(g: Graph, v: Value, ops: tuple[str, ...]) -> Node | None:
    users = v.users
    if len(users) == 1 and users[0].op in ops and v not in g.outputs and len(v.uses) == 1:
        return users[0]
    return None


def _act_bounds(node: Node | None, extra: str = "") -> tuple[float, float]:
    """Float clamp of a fused activation (relu, clip or a producer's ``act`` attribute)."""
    if node is None:
        if extra == "relu":
            return 0.0, float("inf")
        if extra == "relu6":
            return 0.0, 6.0
        return float("-inf"), float("inf")
    if node.op == "relu":
        return 0.0, float("inf")
    a = _attrs(node)
    return a["min"], a["max"]


class _Builder:
    def __init__(self, g: Graph, ranges: Mapping[str, float]) -> None:
        self.g = g
        self.ranges = ranges
        self.tensors: dict[str, QTensor] = {}
        self.layers: list = []
        self.names: dict[str, str] = {}
        """float value name -> QTensor name (aliases resolve to the same storage)."""
        self.done: set[int] = set()

    def scale_of(self, vname: str) -> float:
        r = self.ranges.get(vname, 0.0)
        return r / 127.0 if r > 0 else 1.0 / 127.0

    def new_tensor(self, v: Value, storage: str = "") -> str:
        self.tensors[v.name] = QTensor(v.name, _shape4(v), self.scale_of(v.name), storage)
        self.names[v.name] = v.name
        return v.name

    def tensor(self, v: Value) -> QTensor:
        if v.name not in self.names:
            raise UnsupportedOpError(f"%{v.name} ({v.type}) is not produced by an op the "
                                     f"accelerator runs")
        return self.tensors[self.names[v.name]]

    def clamp(self, lo: float, hi: float, s: float) -> tuple[int, int]:
        qlo = -128 if lo == float("-inf") else int(np.clip(np.round(lo / s), -128, 127))
        qhi = 127 if hi == float("inf") else int(np.clip(np.round(hi / s), -128, 127))
        return qlo, qhi

    # ----- op handlers -------------------------------------------------------------------
    def conv_like(self, node: Node) -> None:
        a = _attrs(node)
        if a.get("residual"):
            raise UnsupportedOpError(f"node {node.label} ({node.op}): fused residual is not "
                                     f"supported by the accelerator lowering yet")
        if node.op == "conv":
            x, w = node.inputs[0], node.inputs[1]
            if w.data is None or x.type.rank != 4:
                raise UnsupportedOpError(f"node {node.label}: conv needs a constant 4-D weight")
            wf = w.data.astype(np.float64)
            bf = (node.inputs[2].data.astype(np.float64) if len(node.inputs) > 2
                  else np.zeros(wf.shape[0]))
            st = tuple(a["strides"] or (1, 1))
            p = a["pads"] or (0, 0, 0, 0)
            pads = (p[0], p[1], p[2], p[3])
            dil = tuple(a["dilations"] or (1, 1))
            group = a["group"]
        else:  # gemm / matmul with a constant right operand: a 1x1 conv on [1, K, 1, 1]
            x, b = node.inputs[0], node.inputs[1]
            if b.data is None or a.get("trans_a"):
                raise UnsupportedOpError(f"node {node.label} ({node.op}): needs constant "
                                         f"weights and no trans_a")
            bm = b.data.astype(np.float64)
            bm = bm.T if a.get("trans_b") else bm  # K x N
            wf = (bm.T * a.get("alpha", 1.0))[:, :, None, None]
            bf = np.zeros(wf.shape[0])
            if node.op == "gemm" and len(node.inputs) > 2:
                bf = np.broadcast_to(node.inputs[2].data.astype(np.float64),
                                     (wf.shape[0],)) * a["beta"]
            st, pads, dil, group = (1, 1), (0, 0, 0, 0), (1, 1), 1
        out = node.output
        bn = _sole_user(self.g, out, ("batch_norm",))
        if bn is not None and node.op == "conv":
            sc, beta, mean, var = (v.data.astype(np.float64) for v in bn.inputs[1:5])
            k = sc / np.sqrt(var + _attrs(bn)["epsilon"])
            wf = wf * k[:, None, None, None]
            bf = (bf - mean) * k + beta
            self.done.add(id(bn))
            out = bn.output
        act_node = _sole_user(self.g, out, ACT_OPS)
        lo, hi = _act_bounds(act_node, a.get("act", ""))
        if a.get("act", "") not in ("", "relu", "relu6"):
            raise UnsupportedOpError(f"node {node.label}: fused activation {a['act']!r} is not "
                                     f"supported on the accelerator")
        if act_node is not None:
            self.done.add(id(act_node))
            out = act_node.output
        xt = self.tensor(x)
        y = self.new_tensor(out)
        sy = self.tensors[y].scale
        wmax = np.abs(wf).reshape(wf.shape[0], -1).max(axis=1)
        sw = np.where(wmax > 0, wmax / 127.0, 1.0)
        wq = np.clip(np.round(wf / sw[:, None, None, None]), -127, 127).astype(np.int8)
        bias = np.round(bf / (xt.scale * sw)).astype(np.int64)
        bias = np.clip(bias, -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
        ms = [quant_multiplier(xt.scale * s / sy) for s in sw]
        qlo, qhi = self.clamp(lo, hi, sy)
        kind = "gemm" if node.op != "conv" else "conv"
        lyr = QConv(node.label, xt.name, y, wq, bias, np.array([m for m, _ in ms], np.int32),
                    np.array([s for _, s in ms], np.int32), st, pads, dil, group, qlo, qhi, kind)
        if lyr.is_depthwise:
            lyr.kind = "depthwise"
        self.layers.append(lyr)

    def add(self, node: Node) -> None:
        ta, tb = self.tensor(node.inputs[0]), self.tensor(node.inputs[1])
        if ta.shape != tb.shape:
            raise UnsupportedOpError(f"node {node.label} (add): broadcasting {ta.shape} + "
                                     f"{tb.shape} is not supported on the accelerator")
        out = node.output
        act_node = _sole_user(self.g, out, ACT_OPS)
        if act_node is not None:
            self.done.add(id(act_node))
            out = act_node.output
        lo, hi = _act_bounds(act_node)
        y = self.new_tensor(out)
        sy = self.tensors[y].scale
        ra, rb = ta.scale / sy, tb.scale / sy
        mbig, shift = quant_multiplier(max(ra, rb))
        ma, mb = round(ra * 2.0 ** shift), round(rb * 2.0 ** shift)
        self.layers.append(QAdd(node.label, ta.name, tb.name, y, ma, mb, shift,
                                *self.clamp(lo, hi, sy)))

    def pool(self, node: Node) -> None:
        xt = self.tensor(node.inputs[0])
        a = _attrs(node)
        if node.op == "max_pool":
            y = self.new_tensor(node.output, "")
            self.tensors[y].scale = xt.scale  # max commutes with a positive scale
            lyr = QPool(node.label, xt.name, y, "max", tuple(a["kernel"]),
                        tuple(a["strides"] or (1, 1)), tuple(a["pads"] or (0, 0, 0, 0)))
            if any(d != 1 for d in (a.get("dilations") or (1, 1))):
                raise UnsupportedOpError(f"node {node.label}: dilated pooling is not supported")
        elif node.op == "global_avg_pool":
            y = self.new_tensor(node.output)
            m, s = quant_multiplier(xt.scale / (self.tensors[y].scale * xt.shape[2] * xt.shape[3]))
            lyr = QPool(node.label, xt.name, y, "gavg", (xt.shape[2], xt.shape[3]), mult=m, shift=s)
        else:  # avg_pool
            pads = tuple(a["pads"] or (0, 0, 0, 0))
            if any(pads) and not a["count_include_pad"]:
                raise UnsupportedOpError(f"node {node.label}: padded avg_pool without "
                                         f"count_include_pad is not supported")
            y = self.new_tensor(node.output)
            k = tuple(a["kernel"])
            m, s = quant_multiplier(xt.scale / (self.tensors[y].scale * k[0] * k[1]))
            lyr = QPool(node.label, xt.name, y, "avg", k, tuple(a["strides"] or (1, 1)),
                        pads, m, s)
        exp = _shape4(node.output)
        from lwc.backends.accel.qmodel import out_hw
        if lyr.mode != "gavg" and (1, xt.shape[1], *out_hw(xt.shape[2], xt.shape[3], *lyr.kernel,
                                                             lyr.strides, lyr.pads, (1, 1))) != exp:
            # ceil_mode: extend the bottom/right padding so floor arithmetic gives the same size
            extra_h = (exp[2] - 1) * lyr.strides[0] + lyr.kernel[0] - (xt.shape[2] + pads_sum(lyr, 0))
            extra_w = (exp[3] - 1) * lyr.strides[1] + lyr.kernel[1] - (xt.shape[3] + pads_sum(lyr, 1))
            if lyr.mode != "max" or extra_h < 0 or extra_w < 0:
                raise UnsupportedOpError(f"node {node.label}: pooling geometry not supported")
            p = lyr.pads
            lyr.pads = (p[0], p[1], p[2] + extra_h, p[3] + extra_w)
        self.layers.append(lyr)

    def concat(self, node: Node) -> None:
        if _attrs(node)["axis"] != 1:
            raise UnsupportedOpError(f"node {node.label}: concat only along channels (axis 1)")
        xs = [self.tensor(v) for v in node.inputs]
        y = self.new_tensor(node.output)
        sy = self.tensors[y].scale
        ms = [quant_multiplier(t.scale / sy) for t in xs]
        self.layers.append(QConcat(node.label, [t.name for t in xs], y, [m for m, _ in ms],
                                   [s for _, s in ms]))

    def alias(self, node: Node) -> None:
        src = self.tensor(node.inputs[0])
        out = node.output
        shape = _shape4(out)
        if int(np.prod(shape)) != src.numel:
            raise UnsupportedOpError(f"node {node.label} ({node.op}): changes the element count")
        self.tensors[out.name] = QTensor(out.name, shape, src.scale, src.base)
        self.names[out.name] = out.name


def pads_sum(lyr: QPool, axis: int) -> int:
    return lyr.pads[axis] + lyr.pads[axis + 2]


METHODS = ("max", "percentile", "entropy")


def calibration_ranges(graph: Graph, inputs: list[Mapping[str, np.ndarray]],
                       method: str = "max") -> dict[str, float]:
    """Symmetric range (the scale is range / 127) of every float graph value over the
    calibration inputs: ``max`` is max |x| (via the interpreter); ``percentile`` and ``entropy``
    reuse ``passes.compress.calibrate`` (99.99th percentile of |x|, TensorRT's KL search) and
    take max(|lo|, |hi|) of the range it calibrates."""
    if method not in METHODS:
        raise InputError(f"unknown accelerator calibration method {method!r}; known: "
                         f"{', '.join(METHODS)}")
    from threadpoolctl import threadpool_limits

    if method != "max":
        from lwc.passes.compress.calibrate import collect_stats, tensor_range

        name = graph.inputs[0].name
        batches = [np.asarray(feed[name]) for feed in inputs]
        with threadpool_limits(1, user_api="blas"):
            stats = collect_stats(graph, batches, histogram=True)
        out: dict[str, float] = {}
        for k, st in stats.items():
            lo, hi = tensor_range(st, method)
            out[k] = max(abs(lo), abs(hi))
        return out
    ranges: dict[str, float] = {}
    for feed in inputs:
        with threadpool_limits(1, user_api="blas"):  # mid-sized GEMMs: one thread is faster
            env = interpret(graph, feed, keep_all=True)
        for name, arr in [*env.items(), *feed.items()]:
            if np.issubdtype(np.asarray(arr).dtype, np.floating):
                ranges[name] = max(ranges.get(name, 0.0), float(np.max(np.abs(arr), initial=0.0)))
    return ranges


def quantize_graph(graph: Graph, calib: list[Mapping[str, np.ndarray]] | None = None,
                   method: str = "max") -> QModel:
    """Quantise a float graph with one float input for the accelerator; ``method`` picks the
    activation calibration (``METHODS``)."""
    if len(graph.inputs) != 1:
        raise UnsupportedOpError(f"graph @{graph.name}: the accelerator lowering takes exactly "
                                 f"one input, got {len(graph.inputs)}")
    calib = calib or [random_inputs(graph, seed=0)]
    b = _Builder(graph, calibration_ranges(graph, calib, method))
    b.new_tensor(graph.inputs[0])
    handlers = {"conv": b.conv_like, "gemm": b.conv_like, "matmul": b.conv_like, "add": b.add,
                "max_pool": b.pool, "avg_pool": b.pool, "global_avg_pool": b.pool,
                "concat": b.concat}
    for node in graph.nodes:
        if id(node) in b.done:
            continue
        if node.op in ALIAS_OPS:
            b.alias(node)
        elif node.op in ACT_OPS and node.inputs[0].name in b.names:
            raise UnsupportedOpError(f"node {node.label} ({node.op}): an activation that does "
                                     f"not follow a conv/gemm/add is not supported")
        elif (h := handlers.get(node.op)) is not None:
            h(node)
        else:
            raise UnsupportedOpError(f"node {node.label} ({node.op}) has no accelerator lowering;"
                                     f" supported: {', '.join(sorted(handlers) + list(ALIAS_OPS))}")
    outs = [b.tensor(v).name for v in graph.outputs]
    return QModel(b.tensors, b.layers, graph.inputs[0].name, outs, graph.inputs[0].name,
                  [v.name for v in graph.outputs])
