"""Lowering of ``gemm`` (ONNX Gemm with fused epilogue) and ``matmul`` (numpy semantics) onto
the shared GEMM kernel. Constant B operands (fully connected weights) are packed at compile time
with alpha folded in; runtime B operands get a pack kernel into scratch."""

from __future__ import annotations

import itertools

import numpy as np

from lwc.backends.llvm.kernels.elementwise import broadcast_strides
from lwc.backends.llvm.kernels.gemm import Addend, GemmSpec, choose_schedule, emit_gemm, pack_b
from lwc.backends.llvm.kernels.pack import StridedPackSpec, emit_strided_pack
from lwc.backends.llvm.plan import Buf, LowerCtx, attrs_of, lowers, shape
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Node
from lwc.ir.types import broadcast_shapes


def _check_f32(node: Node) -> None:
    for v in node.inputs:
        if v.type.dtype != "f32":
            raise UnsupportedOpError(f"node {node.label} ({node.op}): dtype {v.type.dtype} is not "
                                     "supported by the llvm backend (f32 only)")


def gemm_core(ctx: LowerCtx, M: int, N: int, K: int, a: Buf, a_rs: int, a_ks: int,
              b_const: np.ndarray | None, b_buf: tuple[Buf, int, int] | None, out: Buf,
              addends: list[tuple[Buf, Addend]], alpha: float = 1.0, act: str = "",
              act_alpha: float = 0.01, lo: float = 0.0, hi: float = 6.0) -> None:
    """out[M,N] = act(alpha * A @ B + addends); B is a constant [K,N] array or (buf, k stride,
    n stride)."""
    sched = choose_schedule(M, N, K, ctx.vw, ctx.nregs)
    if b_const is not None:
        bc = np.asarray(b_const, np.float32)
        packed = ctx.const(pack_b((bc * np.float32(alpha) if alpha != 1.0 else bc)[None],
                                  sched.nr))
        alpha = 1.0
    else:
        assert b_buf is not None
        src, ks, ns = b_buf
        ps = StridedPackSpec(1, K, N, sched.nr, 0, ks, ns)
        packed = ctx.alloc(ps.nb * K * sched.nr * 4)
        ctx.call(ps, emit_strided_pack, [src, packed], ps.nb, work=K * N)
    spec = GemmSpec(1, M, N, K, sched, ctx.vw, a_packed=False, a_strides=(0, a_rs, a_ks),
                    c_strides=(0, N), addends=tuple(d for _, d in addends), alpha=alpha, act=act,
                    act_alpha=act_alpha, lo=lo, hi=hi)
    ctx.call(spec, emit_gemm, [a, packed, out, *[b for b, _ in addends]], spec.items,
             work=M * N * K)


@lowers("gemm")
def lower_gemm(node: Node, ctx: LowerCtx) -> None:
    _check_f32(node)
    at = attrs_of(node)
    a, b = node.inputs[0], node.inputs[1]
    n_ops = len(node.inputs)
    has_c = n_ops > (3 if at["residual"] else 2)
    out = node.output
    M, N = shape(out)
    K = shape(a)[0] if at["trans_a"] else shape(a)[1]
    a_rs, a_ks = (1, M) if at["trans_a"] else (K, 1)
    addends: list[tuple[Buf, Addend]] = []
    if has_c and at["beta"] != 0.0:
        c = node.inputs[2]
        rs, cs = broadcast_strides(shape(c), (M, N))
        addends.append((ctx.buf(c), Addend(0, rs, cs, at["beta"])))
    if at["residual"]:
        addends.append((ctx.buf(node.inputs[-1]), Addend(0, N, 1)))
    b_const = b_buf = None
    if b.data is not None:
        bd = np.asarray(b.data, np.float32)
        b_const = bd.T if at["trans_b"] else bd
    else:
        b_buf = (ctx.buf(b), 1, K) if at["trans_b"] else (ctx.buf(b), N, 1)
    gemm_core(ctx, M, N, K, ctx.buf(a), a_rs, a_ks, b_const, b_buf, ctx.buf(out), addends,
              at["alpha"], at["act"], at["alpha_act"], at["clip_min"], at["clip_max"])


def _batch_offsets(bshape: tuple[int, ...], out_batch: tuple[int, ...], idx: tuple[int, ...],
                   mat: int) -> int:
    """Element offset of batch ``idx`` (of the broadcast batch shape) inside an operand."""
    pad = len(out_batch) - len(bshape)
    off, stride = 0, mat
    for d in reversed(range(len(bshape))):
        i = idx[d + pad] if bshape[d] != 1 else 0
        off += i * stride
        stride *= bshape[d]
    return off


@lowers("matmul")
def lower_matmul(node: Node, ctx: LowerCtx) -> None:
    _check_f32(node)
    a, b = node.inputs
    sa = shape(a) if a.type.rank > 1 else (1, *shape(a))
    sb = shape(b) if b.type.rank > 1 else (*shape(b), 1)
    M, K, N = sa[-2], sa[-1], sb[-1]
    batch = tuple(int(d) for d in broadcast_shapes(sa[:-2], sb[:-2]))
    out = node.output
    for g, idx in enumerate(itertools.product(*[range(d) for d in batch])):
        ao = _batch_offsets(sa[:-2], batch, idx, M * K) * 4
        bo = _batch_offsets(sb[:-2], batch, idx, K * N)
        oo = g * M * N * 4
        b_const = b_buf = None
        if b.data is not None:
            bd = np.asarray(b.data, np.float32).reshape(sb).reshape(-1, K, N)
            b_const = bd.reshape(-1)[bo: bo + K * N].reshape(K, N)
        else:
            b_buf = (ctx.buf(b, bo * 4), N, 1)
        gemm_core(ctx, M, N, K, ctx.buf(a, ao), K, 1, b_const, b_buf, ctx.buf(out, oo), [])
