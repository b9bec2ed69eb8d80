"""Lowering of ``conv``: depthwise 2-D to its own kernel, everything else to im2row/im2col into
packed GEMM panels + GEMM (1x1 stride-1 2-D convs: the GEMM reads the input in place). Weights
are packed at compile time; bias, residual and activation become the GEMM epilogue."""

from __future__ import annotations

import math

import numpy as np

from lwc.backends.llvm.kernels.depthwise import (FUSED_MAX_PLANE, DepthwiseSpec, emit_depthwise,
                                                 emit_depthwise_fused, emit_pad_split)
from lwc.backends.llvm.kernels.gemm import Addend, GemmSpec, choose_schedule, emit_gemm, pack_a
from lwc.backends.llvm.kernels.pack import Im2colSpec, Im2rowSpec, emit_im2col, emit_im2row
from lwc.backends.llvm.plan import LowerCtx, attrs_of, lowers, shape
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Node, Value
from lwc.ops.conv import spatial_attrs


def _weights_and_addends(ctx: LowerCtx, w: Value, bias: Value | None, res: Value | None,
                         g: int, og: int, K: int, n: int, npix: int, mr: int
                         ) -> tuple[np.ndarray, tuple[Addend, ...], list]:
    """Packed weights plus the GEMM epilogue's addends (bias per channel, residual per pixel)
    and their argument pointers, shared by the im2col and im2row conv lowerings."""
    wa = pack_a(np.asarray(w.data, np.float32).reshape(g, og, K), mr)
    addends, extra = [], []
    if bias is not None:
        addends.append(Addend(og, 1, 0))
        extra.append(ctx.const(np.tile(np.asarray(bias.data, np.float32), n)))
    if res is not None:
        addends.append(Addend(og * npix, npix, 1))
        extra.append(ctx.buf(res))
    return wa, tuple(addends), extra


def _epilogue(a: dict) -> dict:
    return {"act": a["act"], "act_alpha": a["alpha"], "lo": a["clip_min"], "hi": a["clip_max"]}


@lowers("conv")
def lower_conv(node: Node, ctx: LowerCtx) -> None:
    a = attrs_of(node)
    x, w = node.inputs[0], node.inputs[1]
    nb = 3 if a["residual"] else 2
    bias = node.inputs[2] if len(node.inputs) > nb else None
    res = node.inputs[-1] if a["residual"] else None
    out = node.output
    if w.data is None or (bias is not None and bias.data is None):
        raise UnsupportedOpError(f"node {node.label} (conv): the llvm backend needs constant "
                                 "weights and bias")
    if x.type.dtype != "f32":
        raise UnsupportedOpError(f"node {node.label} (conv): dtype {x.type.dtype} is not supported "
                                 "by the llvm backend (f32 only)")
    xs, ws, os_ = shape(x), shape(w), shape(out)
    n, cin, in_sp = xs[0], xs[1], xs[2:]
    cout, kernel, out_sp = ws[0], ws[2:], os_[2:]
    nsp = len(in_sp)
    strides, dil, pads = spatial_attrs(a, nsp)
    g = a["group"]
    if nsp == 2 and g == cin == cout and res is None:
        _depthwise(node, ctx, a, xs, ws, os_, strides, dil, pads)
        return
    cg, og = cin // g, cout // g
    K = cg * math.prod(kernel)
    npix = math.prod(out_sp)
    sched = choose_schedule(og, npix, K, ctx.vw, ctx.nregs)
    gt = n * g
    if nsp == 2:
        _gemm_conv2d(node, ctx, a, x, w, bias, res, xs, os_, kernel, strides, dil, pads, g)
        return
    ic = Im2colSpec(gt, cg, tuple(in_sp), tuple(out_sp), tuple(kernel), tuple(strides),
                    tuple(pads[:nsp]), tuple(dil), sched.nr, cg * math.prod(in_sp))
    packed = ctx.alloc(gt * ic.nb * K * sched.nr * 4)
    ctx.call(ic, emit_im2col, [ctx.buf(x), packed], gt * ic.nb, work=gt * K * npix)
    wa, addends, extra = _weights_and_addends(ctx, w, bias, res, g, og, K, n, npix, sched.mr)
    spec = GemmSpec(gt, og, npix, K, sched, ctx.vw, a_packed=True, a_groups=g,
                    c_strides=(og * npix, npix), addends=addends, **_epilogue(a))
    ctx.call(spec, emit_gemm, [ctx.const(wa), packed, ctx.buf(out), *extra], spec.items,
             work=gt * og * K * npix)


def _gemm_conv2d(node: Node, ctx: LowerCtx, a: dict, x, w, bias, res, xs: tuple, os_: tuple,
                 kernel: tuple, strides: tuple, dil: tuple, pads: tuple, g: int) -> None:
    """2-D conv as GEMM with unpacked B: the input itself for pointwise convs, else a dense
    im2row matrix in scratch."""
    n, cin, h, wd = xs
    cout, oh, ow = os_[1], os_[2], os_[3]
    cg, og = cin // g, cout // g
    K, npix, gt = cg * kernel[0] * kernel[1], oh * ow, n * g
    sched = choose_schedule(og, npix, K, ctx.vw, ctx.nregs)
    pointwise = kernel == (1, 1) and strides == (1, 1) and not any(pads)
    b_packed = False
    if pointwise:
        bsrc, b_strides = ctx.buf(x), (cg * h * wd, h * wd)
    else:
        # im2row straight into GEMM panels when a row fits a stack buffer (<= 256 KiB)
        nr = sched.nr if -(-npix // sched.nr) * sched.nr <= 65536 else 0
        spec = Im2rowSpec(gt, cg, h, wd, oh, ow, kernel[0], kernel[1], strides[0], strides[1],
                          pads[0], pads[1], dil[0], dil[1], nr)
        cols = spec.nb * nr if nr else npix
        bsrc = ctx.alloc(gt * K * cols * 4)
        ctx.call(spec, emit_im2row, [ctx.buf(x), bsrc], gt * K, work=gt * K * npix)
        b_strides, b_packed = (K * npix, npix), bool(nr)
    wa, addends, extra = _weights_and_addends(ctx, w, bias, res, g, og, K, n, npix, sched.mr)
    gs = GemmSpec(gt, og, npix, K, sched, ctx.vw, a_packed=True, a_groups=g,
                  c_strides=(og * npix, npix), addends=addends, b_packed=b_packed,
                  b_strides=(0, 0) if b_packed else b_strides, **_epilogue(a))
    ctx.call(gs, emit_gemm, [ctx.const(wa), bsrc, ctx.buf(node.output), *extra], gs.items,
             work=gt * og * K * npix)


def _depthwise(node: Node, ctx: LowerCtx, a: dict, xs: tuple, ws: tuple, os_: tuple,
               strides: tuple, dil: tuple, pads: tuple) -> None:
    x, w = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    n, c, h, wd = xs
    s = DepthwiseSpec(n * c, c, h, wd, os_[2], os_[3], ws[2], ws[3], strides[0], strides[1],
                      dil[0], dil[1], pads[0], pads[1], pads[2], pads[3], bias is not None,
                      **{k: v for k, v in _epilogue(a).items() if k != "act_alpha"},
                      alpha=a["alpha"])
    rest = [ctx.buf(w)] + ([ctx.buf(bias)] if bias is not None else []) + [ctx.buf(node.output)]
    work = s.CT * (s.OH * s.OW * s.KH * s.KW + s.plane)
    if s.plane <= FUSED_MAX_PLANE:
        ctx.call(s, emit_depthwise_fused, [ctx.buf(x), *rest], s.CT, work=work)
        return
    scratch = ctx.alloc(s.CT * s.plane * 4)
    ctx.call(s, emit_pad_split, [ctx.buf(x), scratch], s.CT, work=s.CT * s.plane)
    ctx.call(s, emit_depthwise, [scratch, *rest], s.CT, work=s.CT * s.OH * s.OW * s.KH * s.KW)
