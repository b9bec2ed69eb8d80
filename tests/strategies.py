"""Hypothesis strategies that draw small, well-typed lwc graphs (import: ``from strategies import
graphs``; ``tests/conftest.py`` puts this folder on ``sys.path``).

``graphs()`` starts from one NCHW float32 input (batch 1, 2 or the symbol ``N``; <= 8 channels,
<= 8x8 spatial) and appends ops one at a time, each reading values already in the graph whose
types fit: conv (groups, strides, pads, dilations, fused act), batch_norm, activations,
broadcasting add/mul, concat, split, reshape/flatten, pools, gemm after flatten, softmax.
Weights are float32 drawn from a seeded numpy generator, so a failing example replays exactly.
Ops that are not registered (yet) are skipped, so the strategy works while op families land.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from lwc.ir import Graph, TensorType, Value
from lwc.ir.types import Dim, DType
from lwc.ops.registry import registered_ops

Draw = Callable[[st.SearchStrategy], object]

MAX_CHANNELS = 8
MAX_SPATIAL = 8
ACTS = ("", "relu", "relu6", "leaky_relu", "sigmoid", "hard_swish", "clip")


@dataclass
class _Ctx:
    """The graph being built, the seeded generator for weights, and a label counter."""

    graph: Graph
    rng: np.random.Generator
    named: bool
    step: int = 0
    pending: list[Value] = field(default_factory=list)

    def weight(self, shape: Sequence[int], name: str, positive: bool = False) -> Value:
        arr = np.asarray(self.rng.standard_normal(size=tuple(shape)), dtype=np.float32)
        if positive:
            arr = np.abs(arr) + np.float32(0.5)
        return self.graph.add_constant(arr, name)

    def label(self, op: str) -> str:
        """An ONNX-like node label on some graphs, so ``loc(...)`` round trips are exercised."""
        return f"/block{self.step}/{op}" if self.named else ""

    def values(self, rank: int | None = None) -> list[Value]:
        vs = [v for v in self.graph.values() if not v.is_constant and v.type.dtype == DType.F32]
        return [v for v in vs if rank is None or v.type.rank == rank]

    def add(self, op: str, inputs: Sequence[Value], attrs: dict[str, object]) -> None:
        self.graph.add_node(op, inputs, attrs, name=self.label(op))


def _pick(draw: Draw, values: list[Value]) -> Value | None:
    return draw(st.sampled_from(values)) if values else None  # type: ignore[return-value]


def _fits(size: Dim, k: int, d: int, lo: int, hi: int) -> bool:
    return isinstance(size, int) and d * (k - 1) + 1 <= size + lo + hi


# ----- one builder per op: returns False when no value in the graph fits --------------------
def _conv(draw: Draw, c: _Ctx) -> bool:
    if (x := _pick(draw, c.values(4))) is None:
        return False
    cin = int(x.type.shape[1])
    group = draw(st.sampled_from([g for g in range(1, cin + 1) if cin % g == 0]))
    cout = group * draw(st.integers(1, max(1, MAX_CHANNELS // group)))
    k = [draw(st.integers(1, 3)) for _ in range(2)]
    strides = [draw(st.integers(1, 2)) for _ in range(2)]
    dil = [draw(st.integers(1, 2)) for _ in range(2)]
    pads = [draw(st.integers(0, 1)) for _ in range(4)]
    if not all(_fits(x.type.shape[2 + i], k[i], dil[i], pads[i], pads[2 + i]) for i in range(2)):
        return False
    attrs: dict[str, object] = {"strides": strides, "pads": pads, "dilations": dil,
                                "group": group, "act": draw(st.sampled_from(ACTS))}
    if attrs["act"] == "leaky_relu":
        attrs["alpha"] = draw(st.sampled_from([0.01, 0.1, 0.2]))
    ins = [x, c.weight([cout, cin // group, *k], "conv.w")]
    if draw(st.booleans()):
        ins.append(c.weight([cout], "conv.b"))
    c.add("conv", ins, attrs)
    return True


def _batch_norm(draw: Draw, c: _Ctx) -> bool:
    if (x := _pick(draw, c.values(4))) is None:
        return False
    ch = int(x.type.shape[1])
    ins = [x, c.weight([ch], "bn.scale"), c.weight([ch], "bn.bias"), c.weight([ch], "bn.mean"),
           c.weight([ch], "bn.var", positive=True)]
    c.add("batch_norm", ins, {"epsilon": draw(st.sampled_from([1e-5, 1e-3]))})
    return True


def _unary(op: str) -> Callable[[Draw, _Ctx], bool]:
    def build(draw: Draw, c: _Ctx) -> bool:
        if (x := _pick(draw, c.values())) is None:
            return False
        attrs: dict[str, object] = {}
        if op == "clip":
            attrs = {"min": draw(st.sampled_from([0.0, -1.0, float("-inf")])),
                     "max": draw(st.sampled_from([6.0, 1.0, float("inf")]))}
        if op == "leaky_relu":
            attrs = {"alpha": draw(st.floats(0.0, 1.0, width=32))}
        c.add(op, [x], attrs)
        return True

    return build


def _binary(op: str) -> Callable[[Draw, _Ctx], bool]:
    def build(draw: Draw, c: _Ctx) -> bool:
        if (x := _pick(draw, c.values())) is None:
            return False
        same = [v for v in c.values() if v.type.shape == x.type.shape]
        if draw(st.booleans()):
            y = _pick(draw, same)
        else:  # a broadcast constant: per channel, per last axis, or a scalar
            shape = x.type.shape
            cands = [(), (1,), (int(shape[-1]),)] if isinstance(shape[-1], int) else [()]
            if len(shape) == 4 and isinstance(shape[1], int):
                cands += [(int(shape[1]), 1, 1), (1, int(shape[1]), 1, 1)]
            y = c.weight(draw(st.sampled_from(cands)), f"{op}.k")
        ins = [x, y] if draw(st.booleans()) else [y, x]
        c.add(op, ins, {})
        return True

    return build


def _concat(draw: Draw, c: _Ctx) -> bool:
    if (x := _pick(draw, c.values(4))) is None:
        return False
    s = x.type.shape
    same = [v for v in c.values(4) if (v.type.shape[0], *v.type.shape[2:]) == (s[0], *s[2:])]
    others = draw(st.lists(st.sampled_from(same), min_size=1, max_size=2))
    ins = [x, *others]
    if sum(int(v.type.shape[1]) for v in ins) > 2 * MAX_CHANNELS:
        return False
    c.add("concat", ins, {"axis": draw(st.sampled_from([1, -3]))})
    return True


def _split(draw: Draw, c: _Ctx) -> bool:
    xs = [v for v in c.values(4) if int(v.type.shape[1]) >= 2]
    if (x := _pick(draw, xs)) is None:
        return False
    ch = int(x.type.shape[1])
    first = draw(st.integers(1, ch - 1))
    c.add("split", [x], {"axis": 1, "sizes": [first, ch - first]})
    return True


def _reshape(draw: Draw, c: _Ctx) -> bool:
    if (x := _pick(draw, c.values(4))) is None:
        return False
    _, ch, h, w = (int(d) if isinstance(d, int) else d for d in x.type.shape)
    target = draw(st.sampled_from([[0, ch, h * w, 1], [0, ch * h, w, 1], [0, -1, h, w],
                                   [0, ch, 1, -1]]))
    c.add("reshape", [x], {"shape": target})
    return True


def _flatten(draw: Draw, c: _Ctx) -> bool:
    if (x := _pick(draw, c.values(4))) is None:
        return False
    c.add("flatten", [x], {})
    return True


def _pool(op: str) -> Callable[[Draw, _Ctx], bool]:
    def build(draw: Draw, c: _Ctx) -> bool:
        if (x := _pick(draw, c.values(4))) is None:
            return False
        k = [draw(st.integers(1, 3)) for _ in range(2)]
        strides = [draw(st.integers(1, 2)) for _ in range(2)]
        pads = [draw(st.integers(0, (k[i % 2] - 1) // 2)) for i in range(4)]
        if not all(_fits(x.type.shape[2 + i], k[i], 1, pads[i], pads[2 + i]) for i in range(2)):
            return False
        attrs: dict[str, object] = {"kernel": k, "strides": strides, "pads": pads,
                                    "ceil_mode": draw(st.booleans())}
        if op == "avg_pool":
            attrs["count_include_pad"] = draw(st.booleans())
        c.add(op, [x], attrs)
        return True

    return build


def _global_pool(op: str) -> Callable[[Draw, _Ctx], bool]:
    def build(draw: Draw, c: _Ctx) -> bool:
        if (x := _pick(draw, c.values(4))) is None:
            return False
        c.add(op, [x], {})
        return True

    return build


def _gemm(draw: Draw, c: _Ctx) -> bool:
    xs = [v for v in c.values(2) if isinstance(v.type.shape[1], int) and v.type.shape[1] <= 512]
    if (x := _pick(draw, xs)) is None:
        return False
    k, m = int(x.type.shape[1]), draw(st.integers(1, MAX_CHANNELS))
    trans_b = draw(st.booleans())
    ins = [x, c.weight([m, k] if trans_b else [k, m], "fc.w")]
    if draw(st.booleans()):
        ins.append(c.weight([m], "fc.b"))
    attrs: dict[str, object] = {"trans_b": trans_b, "act": draw(st.sampled_from(ACTS))}
    if draw(st.booleans()):
        attrs |= {"alpha": draw(st.sampled_from([0.5, 2.0])), "beta": 0.25}
    c.add("gemm", ins, attrs)
    return True


def _softmax(draw: Draw, c: _Ctx) -> bool:
    if (x := _pick(draw, c.values(2))) is None:
        return False
    c.add(draw(st.sampled_from(["softmax", "log_softmax"])), [x], {"axis": -1})
    return True


BUILDERS: dict[str, Callable[[Draw, _Ctx], bool]] = {
    "conv": _conv,
    "batch_norm": _batch_norm,
    **{op: _unary(op) for op in ("relu", "clip", "leaky_relu", "sigmoid")},
    **{op: _binary(op) for op in ("add", "mul")},
    "concat": _concat,
    "split": _split,
    "reshape": _reshape,
    "flatten": _flatten,
    **{op: _pool(op) for op in ("max_pool", "avg_pool")},
    **{op: _global_pool(op) for op in ("global_avg_pool", "global_max_pool")},
    "gemm": _gemm,
    "softmax": _softmax,
}
"""Op name -> builder; the ops ``graphs()`` can draw (those registered at generation time)."""


def available_ops() -> list[str]:
    """The ops of ``BUILDERS`` that are registered now."""
    reg = registered_ops()
    return [op for op in BUILDERS if op in reg and (op != "softmax" or "log_softmax" in reg)]


@st.composite
def input_types(draw: Draw) -> TensorType:
    """An NCHW float32 type: batch 1, 2 or ``N``; 1-8 channels; 1-8 x 1-8 spatial."""
    batch: Dim = draw(st.sampled_from([1, 2, "N"]))  # type: ignore[assignment]
    ch = draw(st.integers(1, MAX_CHANNELS))
    h, w = draw(st.integers(1, MAX_SPATIAL)), draw(st.integers(1, MAX_SPATIAL))
    return TensorType(DType.F32, (batch, ch, h, w))


@st.composite
def graphs(draw: Draw, max_ops: int = 6, ops: Sequence[str] | None = None) -> Graph:
    """A verified graph of 1..``max_ops`` ops drawn from ``ops`` (default: every available op);
    its outputs are the results no node reads (so every node is live)."""
    names = [op for op in (ops or available_ops()) if op in BUILDERS]
    seed = draw(st.integers(0, 2**32 - 1))
    g = Graph(draw(st.sampled_from(["main", "g", "torch_jit"])))
    c = _Ctx(g, np.random.default_rng(seed), named=draw(st.booleans()))
    g.add_input("x", draw(input_types()))
    for c.step in range(draw(st.integers(1, max_ops))):
        BUILDERS[draw(st.sampled_from(names))](draw, c)  # type: ignore[index]
    head = [op for op in ("flatten", "gemm", "softmax") if op in names]
    if len(head) > 1 and draw(st.booleans()):  # a classifier head, as CNNs end
        c.step += 1
        for op in head[:draw(st.integers(2, len(head)))]:
            BUILDERS[op](draw, c)
    g.remove_unused_constants()
    sinks = [v for n in g.nodes for v in n.outputs if not v.uses]
    g.outputs = sinks or list(g.inputs)
    g.verify()
    return g


def graph_dump(g: Graph) -> list[str]:
    """A structural listing of a graph, independent of the textual printer: names, types, attrs,
    operand names, and constant payloads as dtype/shape/bytes (so equal means bit-identical)."""
    lines = [f"graph {g.name!r}"]
    lines += [f"input {v.name!r}: {v.type!r}" for v in g.inputs]
    for k, v in g.constants.items():
        assert v.data is not None
        lines.append(f"const {k!r}: {v.type!r} = {v.data.dtype}{list(v.data.shape)} "
                     f"{v.data.tobytes().hex()}")
    for n in g.nodes:
        ins = [v.name for v in n.inputs]
        outs = [(v.name, v.type) for v in n.outputs]
        attrs = {k: n.attrs[k] for k in sorted(n.attrs)}
        lines.append(f"node {n.op} name={n.name!r} ins={ins} outs={outs!r} attrs={attrs!r}")
    lines.append(f"outputs {[v.name for v in g.outputs]}")
    return lines


def assert_same_graph(actual: Graph, expected: Graph) -> None:
    """Structural equality (names, types, attrs, wiring, bit-exact weights); fails with a diff."""
    import difflib

    a, e = graph_dump(actual), graph_dump(expected)
    if a != e:
        diff = "\n".join(difflib.unified_diff(e, a, "expected", "actual", lineterm=""))
        raise AssertionError(f"graphs differ:\n{diff}")


__all__ = ["BUILDERS", "assert_same_graph", "available_ops", "graph_dump", "graphs",
           "input_types"]
