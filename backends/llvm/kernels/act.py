"""Scalar and vector activation / unary math, shared by fused epilogues and elementwise kernels."""

from __future__ import annotations

from llvmlite import ir

from lwc.backends.llvm.irb import F32, intrinsic

ACTS = ("", "relu", "relu6", "hard_swish", "leaky_relu", "sigmoid", "clip")


def fconst(ty: ir.Type, x: float) -> ir.Constant:
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [float(x)] * ty.count)
    return ir.Constant(ty, float(x))


def _suffix(ty: ir.Type) -> str:
    return f"v{ty.count}f32" if isinstance(ty, ir.VectorType) else "f32"


def call_math(b: ir.IRBuilder, name: str, *xs: ir.Value) -> ir.Value:
    """``llvm.<name>.<type>`` (exp, log, sqrt, floor, ceil, fabs, tanh, pow, ...)."""
    ty = xs[0].type
    fn = intrinsic(b.module, f"llvm.{name}.{_suffix(ty)}", ty, [ty] * len(xs))
    return b.call(fn, list(xs))


def fmax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.fcmp_ordered(">", x, y), x, y)


def fmin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.fcmp_ordered("<", x, y), x, y)


def clamp(b: ir.IRBuilder, x: ir.Value, lo: float, hi: float) -> ir.Value:
    if lo != float("-inf"):
        x = fmax(b, x, fconst(x.type, lo))
    if hi != float("inf"):
        x = fmin(b, x, fconst(x.type, hi))
    return x


def sigmoid(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    one = fconst(x.type, 1.0)
    e = call_math(b, "exp", b.fneg(x))
    return b.fdiv(one, b.fadd(one, e))


def apply_act(b: ir.IRBuilder, x: ir.Value, act: str, alpha: float = 0.01, lo: float = 0.0,
              hi: float = 6.0) -> ir.Value:
    """The fused epilogue activation, same vocabulary as ``lwc.ops.conv.apply_activation``."""
    if act == "":
        return x
    if act == "relu":
        return fmax(b, x, fconst(x.type, 0.0))
    if act == "relu6":
        return clamp(b, x, 0.0, 6.0)
    if act == "clip":
        return clamp(b, x, lo, hi)
    if act == "leaky_relu":
        neg = b.fmul(x, fconst(x.type, alpha))
        return b.select(b.fcmp_ordered(">=", x, fconst(x.type, 0.0)), x, neg)
    if act == "hard_swish":
        t = b.fadd(b.fmul(x, fconst(x.type, 1.0 / 6.0)), fconst(x.type, 0.5))
        return b.fmul(x, clamp(b, t, 0.0, 1.0))
    if act == "sigmoid":
        return sigmoid(b, x)
    raise ValueError(f"unknown activation {act!r}")


__all__ = ["ACTS", "F32", "apply_act", "call_math", "clamp", "fconst", "fmax", "fmin", "sigmoid"]
