"""ONNX converters: elementwise activations, arithmetic and comparisons."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from lwc.frontend.onnx.registry import ImportContext, converter

if TYPE_CHECKING:
    import onnx

    from lwc.ir import Value

Ins = list["Value | None"]

_UNARY = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Neg": "neg", "Abs": "abs", "Exp": "exp",
    "Log": "log", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Erf": "erf", "Softplus": "softplus",
    "Softsign": "softsign", "Floor": "floor", "Ceil": "ceil", "Sign": "sign", "Not": "not",
    "HardSwish": "hard_swish",
}
# ONNX attribute name -> (lwc attribute, ONNX default)
_UNARY_ATTRS: dict[str, tuple[str, dict[str, tuple[str, float]]]] = {
    "LeakyRelu": ("leaky_relu", {"alpha": ("alpha", 0.01)}),
    "HardSigmoid": ("hard_sigmoid", {"alpha": ("alpha", 0.2), "beta": ("beta", 0.5)}),
    "Elu": ("elu", {"alpha": ("alpha", 1.0)}),
    "Shrink": ("shrink", {"lambd": ("lambd", 0.5), "bias": ("bias", 0.0)}),
    "Selu": ("selu", {"alpha": ("alpha", 1.67326319217681884765625),
                      "gamma": ("gamma", 1.05070102214813232421875)}),
}
_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
           "Equal": "equal", "Less": "less", "Greater": "greater", "And": "and", "Or": "or",
           "GreaterOrEqual": "greater_equal", "LessOrEqual": "less_equal"}
_VARIADIC = {"Sum": "add", "Max": "max", "Min": "min"}


def _unary(op: str) -> Callable[..., list[Value]]:
    def conv(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
        return [ctx.emit(op, [_req(ctx, node, ins, 0)], node=node)]
    return conv


def _unary_attrs(op: str, spec: dict[str, tuple[str, float]]) -> Callable[..., list[Value]]:
    def conv(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
        a = ctx.attrs(node)
        attrs = {lwc: float(a.get(k, d)) for k, (lwc, d) in spec.items()}
        return [ctx.emit(op, [_req(ctx, node, ins, 0)], attrs, node=node)]
    return conv


def _req(ctx: ImportContext, node: onnx.NodeProto, ins: Ins, i: int) -> Value:
    if i >= len(ins) or ins[i] is None:
        raise ctx.fail(node, f"needs input {i}")
    return ins[i]  # type: ignore[return-value]


def legacy_broadcast(ctx: ImportContext, node: onnx.NodeProto, a: Value, b: Value) -> Value:
    """Opset < 7 ``broadcast=1, axis=k``: align b's dims with a's starting at axis k."""
    attrs = ctx.attrs(node)
    if ctx.opset >= 7 or not attrs.get("broadcast") or b.type.rank >= a.type.rank:
        return b
    axis = attrs.get("axis", a.type.rank - b.type.rank) % a.type.rank
    trail = a.type.rank - axis - b.type.rank
    if trail < 0:
        raise ctx.fail(node, f"legacy broadcast of {b.type} at axis {axis} into {a.type}")
    if trail == 0:
        return b
    shape = [d if isinstance(d, int) else 0 for d in b.type.shape] + [1] * trail
    return ctx.emit("reshape", [b], {"shape": shape}, node=node)


def _binary(op: str) -> Callable[..., list[Value]]:
    def conv(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
        a, b = _req(ctx, node, ins, 0), _req(ctx, node, ins, 1)
        b = legacy_broadcast(ctx, node, a, b)
        if op == "pow" and b.type.dtype != a.type.dtype:
            b = ctx.emit("cast", [b], {"to": str(a.type.dtype)}, node=node)
        return [ctx.emit(op, [a, b], node=node)]
    return conv


def _variadic(op: str) -> Callable[..., list[Value]]:
    def conv(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
        vals = [v for v in ins if v is not None]
        if not vals:
            raise ctx.fail(node, "has no inputs")
        acc = vals[0]
        for v in vals[1:]:
            acc = ctx.emit(op, [acc, v], node=node)
        if len(vals) == 1:
            acc = ctx.emit("identity", [acc], node=node)
        return [acc]
    return conv


for _onnx, _op in _UNARY.items():
    converter(_onnx)(_unary(_op))
for _onnx, (_op, _spec) in _UNARY_ATTRS.items():
    converter(_onnx)(_unary_attrs(_op, _spec))
for _onnx, _op in _BINARY.items():
    converter(_onnx)(_binary(_op))
for _onnx, _op in _VARIADIC.items():
    converter(_onnx)(_variadic(_op))


@converter("Mean")
def mean(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    total = _variadic("add")(ctx, node, ins)[0]
    n = ctx.add_constant(np.array(len([v for v in ins if v is not None]),
                                  dtype=total.type.dtype.numpy), "count")
    return [ctx.emit("div", [total, n], node=node)]


@converter("Clip")
def clip_v6(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    a = ctx.attrs(node)
    attrs = {"min": a.get("min", float("-inf")), "max": a.get("max", float("inf"))}
    return [ctx.emit("clip", [_req(ctx, node, ins, 0)], attrs, node=node)]


@converter("Clip", since=11)
def clip_v11(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    attrs = {}
    for i, key in ((1, "min"), (2, "max")):
        if i < len(ins) and ins[i] is not None:
            c = ctx.const(ins[i])
            if c is None:
                raise ctx.fail(node, f"{key} must be a constant")
            attrs[key] = float(c)
    return [ctx.emit("clip", [_req(ctx, node, ins, 0)], attrs, node=node)]


@converter("PRelu")
def prelu(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    x, slope = _req(ctx, node, ins, 0), _req(ctx, node, ins, 1)
    xs, ss = x.type.shape, slope.type.shape
    # A per-channel slope [C] on N,C,... input (Caffe/PyTorch style, opset < 7 and in practice)
    if len(ss) == 1 and len(xs) > 2 and ss[0] == xs[1] and ss[0] != xs[-1]:
        slope = ctx.emit("reshape", [slope], {"shape": [ss[0]] + [1] * (len(xs) - 2)}, node=node)
    return [ctx.emit("prelu", [x, slope], node=node)]


@converter("Where")
def where(ctx: ImportContext, node: onnx.NodeProto, ins: Ins) -> list[Value]:
    return [ctx.emit("where", [_req(ctx, node, ins, i) for i in range(3)], node=node)]
