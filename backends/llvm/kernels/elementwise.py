"""Elementwise ops with broadcasting: one generic loop nest (operand strides are 0 along
broadcast axes, axes are collapsed where contiguous) around a scalar expression per op. The
inner loop is unit-stride for the output, so LLVM vectorises it. Also lowers the ops that are
elementwise once their constant operands are folded: unfused batch_norm, quantize/dequantize."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import F32, I8
from lwc.backends.llvm.kernels.act import apply_act, call_math, clamp, fconst, fmax, fmin
from lwc.backends.llvm.kernels.loops import emit_rows, row_items
from lwc.backends.llvm.kernels.tensor import INT_OF_SIZE, collapse, contiguous_strides
from lwc.backends.llvm.plan import Buf, LowerCtx, attrs_of, lowers, shape
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Node
from lwc.ir.types import DType


@dataclass(frozen=True)
class EwSpec:
    op: str
    attrs: tuple[tuple[str, Any], ...]
    shape: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    """Per operand, then the output last."""
    dtypes: tuple[str, ...]
    """Per operand, then the output last."""


def _ty(dt: str) -> ir.Type:
    d = DType(dt)
    if d == DType.F32:
        return F32
    if d == DType.BOOL:
        return I8
    if d.is_int:
        return INT_OF_SIZE[d.itemsize]
    raise UnsupportedOpError(f"dtype {dt} is not supported by the llvm backend")


def _libm(b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
    return b.call(irb.intrinsic(b.module, name, F32, [F32]), [x])


def _float_unary(b: ir.IRBuilder, op: str, x: ir.Value, a: dict) -> ir.Value | None:
    zero, one = fconst(F32, 0.0), fconst(F32, 1.0)
    simple = {"relu": "relu", "hard_swish": "hard_swish", "sigmoid": "sigmoid"}
    if op in simple:
        return apply_act(b, x, simple[op])
    if op == "clip":
        return clamp(b, x, a["min"], a["max"])
    if op == "leaky_relu":
        return apply_act(b, x, "leaky_relu", a["alpha"])
    if op == "hard_sigmoid":
        return clamp(b, b.fadd(b.fmul(x, fconst(F32, a["alpha"])), fconst(F32, a["beta"])), 0.0, 1.0)
    if op in ("tanh", "exp", "log", "sqrt", "floor", "ceil"):
        return call_math(b, op, x)
    if op == "abs":
        return call_math(b, "fabs", x)
    if op == "neg":
        return b.fneg(x)
    if op == "reciprocal":
        return b.fdiv(one, x)
    if op == "erf":
        return _libm(b, "erff", x)
    if op == "softplus":  # max(x, 0) + log1p(exp(-|x|)), as np.logaddexp(x, 0)
        t = _libm(b, "log1pf", call_math(b, "exp", b.fneg(call_math(b, "fabs", x))))
        return b.fadd(fmax(b, x, zero), t)
    if op == "softsign":
        return b.fdiv(x, b.fadd(one, call_math(b, "fabs", x)))
    if op == "sign":
        pos = b.uitofp(b.fcmp_ordered(">", x, zero), F32)
        neg = b.uitofp(b.fcmp_ordered("<", x, zero), F32)
        return b.fsub(pos, neg)
    if op in ("elu", "selu"):
        em1 = _libm(b, "expm1f", x)
        y = b.select(b.fcmp_ordered(">", x, zero), x, b.fmul(fconst(F32, a["alpha"]), em1))
        return b.fmul(y, fconst(F32, a["gamma"])) if op == "selu" else y
    if op == "shrink":
        lam, bias = fconst(F32, a["lambd"]), fconst(F32, a["bias"])
        lt = b.fcmp_ordered("<", x, b.fneg(lam))
        gt = b.fcmp_ordered(">", x, lam)
        return b.select(lt, b.fadd(x, bias), b.select(gt, b.fsub(x, bias), zero))
    return None


COMPARE = {"equal": "==", "less": "<", "greater": ">", "greater_equal": ">=", "less_equal": "<="}
"""Comparison ops and their LLVM predicates (ordered for floats: NaN compares false)."""


def _binary(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value, dt: DType) -> ir.Value | None:
    if dt == DType.F32:
        table = {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}
        if op in table:
            return table[op](x, y)
        if op == "pow":
            return call_math(b, "pow", x, y)
        if op == "max":
            return fmax(b, x, y)
        if op == "min":
            return fmin(b, x, y)
        if op == "prelu":
            return b.select(b.fcmp_ordered(">=", x, fconst(F32, 0.0)), x, b.fmul(x, y))
        if op in COMPARE:
            return b.zext(b.fcmp_ordered(COMPARE[op], x, y), I8)
        return None
    signed = dt != DType.U8 and dt != DType.BOOL
    table = {"add": b.add, "sub": b.sub, "mul": b.mul,
             "div": b.sdiv if signed else b.udiv}
    if op in table:
        return table[op](x, y)
    cmpf = b.icmp_signed if signed else b.icmp_unsigned
    if op in COMPARE:
        return b.zext(cmpf(COMPARE[op], x, y), I8)
    if op in ("max", "min"):
        return b.select(cmpf(">" if op == "max" else "<", x, y), x, y)
    if op == "and":
        return b.zext(b.and_(b.icmp_unsigned("!=", x, ir.Constant(x.type, 0)),
                             b.icmp_unsigned("!=", y, ir.Constant(y.type, 0))), I8)
    if op == "or":
        return b.zext(b.or_(b.icmp_unsigned("!=", x, ir.Constant(x.type, 0)),
                            b.icmp_unsigned("!=", y, ir.Constant(y.type, 0))), I8)
    return None


def _convert(b: ir.IRBuilder, x: ir.Value, src: DType, dst: DType) -> ir.Value:
    st, dt = _ty(src), _ty(dst)
    if dst == DType.BOOL:
        nz = b.fcmp_unordered("!=", x, ir.Constant(st, 0.0)) if src == DType.F32 else \
            b.icmp_unsigned("!=", x, ir.Constant(st, 0))
        return b.zext(nz, I8)
    if src == DType.F32 and dst == DType.F32:
        return x
    if src == DType.F32:
        return b.fptosi(x, dt) if dst != DType.U8 else b.fptoui(x, dt)
    if dst == DType.F32:
        return b.sitofp(x, F32) if src not in (DType.U8, DType.BOOL) else b.uitofp(x, F32)
    if st.width == dt.width:
        return x
    if st.width > dt.width:
        return b.trunc(x, dt)
    return b.sext(x, dt) if src not in (DType.U8, DType.BOOL) else b.zext(x, dt)


def _expr(b: ir.IRBuilder, s: EwSpec, xs: list[ir.Value]) -> ir.Value:
    a = dict(s.attrs)
    dts = [DType(d) for d in s.dtypes]
    op = s.op
    if op == "cast":
        return _convert(b, xs[0], dts[0], dts[-1])
    if op == "where":
        return b.select(b.icmp_unsigned("!=", xs[0], ir.Constant(I8, 0)), xs[1], xs[2])
    if op == "affine":  # x * scale + shift (unfused batch_norm)
        return b.fadd(b.fmul(xs[0], xs[1]), xs[2])
    if op == "quantize_linear":
        info = np.iinfo(dts[-1].numpy)
        q = call_math(b, "rint", b.fdiv(xs[0], xs[1]))
        q = b.fadd(q, b.sitofp(xs[2], F32) if dts[2] != DType.U8 else b.uitofp(xs[2], F32))
        return _convert(b, clamp(b, q, float(info.min), float(info.max)), DType.F32, dts[-1])
    if op == "dequantize_linear":
        q = _convert(b, xs[0], dts[0], DType.I32)
        z = _convert(b, xs[2], dts[2], DType.I32) if len(xs) > 2 else ir.Constant(irb.I32, 0)
        return b.fmul(b.sitofp(b.sub(q, z), F32), xs[1])
    if op == "not":
        return b.zext(b.icmp_unsigned("==", xs[0], ir.Constant(I8, 0)), I8)
    if len(xs) == 2:
        if (r := _binary(b, op, xs[0], xs[1], dts[0])) is not None:
            return r
    elif dts[0] == DType.F32 and (r := _float_unary(b, op, xs[0], a)) is not None:
        return r
    elif op in ("relu", "neg", "abs", "clip", "sign") and dts[0].is_int:
        return _int_unary(b, op, xs[0], a, dts[0])
    raise UnsupportedOpError(f"op {op} on {', '.join(s.dtypes[:-1])} has no llvm lowering")


def _int_unary(b: ir.IRBuilder, op: str, x: ir.Value, a: dict, dt: DType) -> ir.Value:
    zero = ir.Constant(x.type, 0)
    if op == "relu":
        return b.select(b.icmp_signed(">", x, zero), x, zero)
    if op == "neg":
        return b.sub(zero, x)
    if op == "abs":
        return b.select(b.icmp_signed("<", x, zero), b.sub(zero, x), x)
    if op == "sign":
        pos = b.zext(b.icmp_signed(">", x, zero), x.type)
        neg = b.zext(b.icmp_signed("<", x, zero), x.type)
        return b.sub(pos, neg)
    info = np.iinfo(dt.numpy)
    lo = int(max(a["min"], info.min)) if a["min"] != float("-inf") else int(info.min)
    hi = int(min(a["max"], info.max)) if a["max"] != float("inf") else int(info.max)
    cmpf = b.icmp_signed if dt != DType.U8 else b.icmp_unsigned
    x = b.select(cmpf("<", x, ir.Constant(x.type, lo)), ir.Constant(x.type, lo), x)
    return b.select(cmpf(">", x, ir.Constant(x.type, hi)), ir.Constant(x.type, hi), x)


def emit_elementwise(module: ir.Module, name: str, s: EwSpec) -> None:
    """args = [operands..., out]."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    n = len(s.strides)
    ptrs = [irb.arg_ptr(b, args, k) for k in range(n)]
    tys = [_ty(d) for d in s.dtypes]

    def body(offs: list[ir.Value]) -> None:
        xs = [irb.load(b, p, o, t) for p, o, t in zip(ptrs[:-1], offs[:-1], tys[:-1])]
        irb.store(b, _expr(b, s, xs), ptrs[-1], offs[-1])

    emit_rows(b, s.shape, s.strides, lo, hi, body)
    b.ret_void()


def broadcast_strides(shp: tuple[int, ...], out: tuple[int, ...]) -> tuple[int, ...]:
    st = contiguous_strides(shp)
    pad = len(out) - len(shp)
    return tuple(0 if d < pad or shp[d - pad] == 1 else st[d - pad] for d in range(len(out)))


def elementwise_call(ctx: LowerCtx, op: str, attrs: dict,
                     ins: list[tuple[Buf, tuple[int, ...], str]], out: Buf, out_shape: tuple[int, ...], out_dtype: str) -> None:
    n = math.prod(out_shape)
    if n == 0:
        return
    strides = [broadcast_strides(s, out_shape) for _, s, _ in ins] + [contiguous_strides(out_shape)]
    cs, *cst = collapse(tuple(out_shape), *strides)
    spec = EwSpec(op, tuple(sorted(attrs.items())), cs, tuple(cst),
                  tuple(str(d) for _, _, d in ins) + (out_dtype,))
    ctx.call(spec, emit_elementwise, [b for b, _, _ in ins] + [out], row_items(cs), work=n)


EW_OPS = ("add", "sub", "mul", "div", "relu", "clip", "leaky_relu", "sigmoid", "hard_sigmoid",
          "hard_swish", "tanh", "neg", "abs", "exp", "log", "sqrt", "reciprocal", "erf", "elu",
          "selu", "softplus", "softsign", "floor", "ceil", "sign", "shrink", "pow", "max", "min",
          "prelu", *COMPARE, "and", "or", "not", "where", "cast")


@lowers(*EW_OPS)
def lower_elementwise(node: Node, ctx: LowerCtx) -> None:
    a = attrs_of(node)
    a.pop("to", None)
    out = node.output
    ins = [(ctx.buf(v), shape(v), str(v.type.dtype)) for v in node.inputs]
    elementwise_call(ctx, node.op, a, ins, ctx.buf(out), shape(out), str(out.type.dtype))


@lowers("batch_norm")
def lower_batch_norm(node: Node, ctx: LowerCtx) -> None:
    x, scale, bias, mean, var = node.inputs
    if any(v.data is None for v in (scale, bias, mean, var)):
        raise UnsupportedOpError(f"node {node.label} (batch_norm): needs constant parameters")
    eps = attrs_of(node)["epsilon"]
    inv = scale.data.astype(np.float64) / np.sqrt(var.data.astype(np.float64) + eps)
    a = inv.astype(np.float32)
    sh = (bias.data - mean.data * inv).astype(np.float32)
    cshape = (shape(x)[1],) + (1,) * (x.type.rank - 2)
    ins = [(ctx.buf(x), shape(x), "f32"), (ctx.const(a), cshape, "f32"), (ctx.const(sh), cshape, "f32")]
    elementwise_call(ctx, "affine", {}, ins, ctx.buf(node.output), shape(node.output), "f32")


@lowers("quantize_linear", "dequantize_linear")
def lower_quant(node: Node, ctx: LowerCtx) -> None:
    x = node.inputs[0]
    axis = attrs_of(node)["axis"] % max(1, x.type.rank)
    ins = [(ctx.buf(x), shape(x), str(x.type.dtype))]
    for p in node.inputs[1:]:
        ps = shape(p)
        if len(ps) == 0 or math.prod(ps) == 1:
            pshape: tuple[int, ...] = ()
        else:
            pshape = tuple(ps[0] if d == axis else 1 for d in range(x.type.rank))
        ins.append((ctx.buf(p), pshape, str(p.type.dtype)))
    out = node.output
    elementwise_call(ctx, node.op, {}, ins, ctx.buf(out), shape(out), str(out.type.dtype))

