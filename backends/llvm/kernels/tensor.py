"""Data movement: every pure movement op (transpose, slice, split, expand, tile, pad,
channel_shuffle, depth_to_space, gather with constant indices, ...) is lowered by running the op's
own numpy reference on an array of element indices. The resulting index map is then either an
affine strided copy (the common case, one vectorisable loop nest) or, failing that, a gather
through a constant index table. Semantics therefore come from one place, the op definition."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import I32, I64, i64
from lwc.backends.llvm.plan import Buf, LowerCtx, attrs_of, lowers, shape
from lwc.errors import UnsupportedOpError
from lwc.ir.core import Node
from lwc.ops.registry import get_op

INT_OF_SIZE = {1: ir.IntType(8), 2: ir.IntType(16), 4: I32, 8: I64}
BLOCK = 4096


@dataclass(frozen=True)
class CopySpec:
    """out[o + sum i_d*os_d] = in[a + sum i_d*is_d] over ``shape`` (element strides)."""

    shape: tuple[int, ...]
    in_strides: tuple[int, ...]
    out_strides: tuple[int, ...]
    itemsize: int

    @property
    def items(self) -> int:
        return math.prod(self.shape[:-1]) if len(self.shape) > 1 else -(-self.shape[0] // BLOCK)


def collapse(shape: tuple[int, ...], *strides: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Drop size-1 axes and merge axes that are contiguous for every operand."""
    dims = [(n, [s[d] for s in strides]) for d, n in enumerate(shape) if n != 1]
    if not dims:
        return ((1,), *(((0,),) * len(strides)))
    out = [dims[0]]
    for n, st in dims[1:]:
        pn, pst = out[-1]
        if all(ps == s * n for ps, s in zip(pst, st)):
            out[-1] = (pn * n, st)
        else:
            out.append((n, st))
    return (tuple(n for n, _ in out), *(tuple(st[k] for _, st in out) for k in range(len(strides))))


def emit_copy(module: ir.Module, name: str, s: CopySpec) -> None:
    """args = [in, out]; items = rows (or blocks of a 1-D copy)."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    src, dst = irb.arg_ptr(b, args, 0), irb.arg_ptr(b, args, 1)
    ty = INT_OF_SIZE[s.itemsize]
    last = s.shape[-1]
    with irb.loop(b, lo, hi, name="r") as r:
        if len(s.shape) == 1:
            start = irb.mul(b, r, BLOCK)
            stop = b.select(b.icmp_signed("<", b.add(start, i64(BLOCK)), i64(last)),
                            b.add(start, i64(BLOCK)), i64(last))
            ib, ob = i64(0), i64(0)
        else:
            start, stop = i64(0), i64(last)
            rem, ib, ob = r, i64(0), i64(0)
            for d in reversed(range(len(s.shape) - 1)):
                idx = b.srem(rem, i64(s.shape[d]))
                rem = b.sdiv(rem, i64(s.shape[d]))
                ib = b.add(ib, irb.mul(b, idx, s.in_strides[d]))
                ob = b.add(ob, irb.mul(b, idx, s.out_strides[d]))
        with irb.loop(b, start, stop, name="j") as j:
            v = irb.load(b, src, b.add(ib, irb.mul(b, j, s.in_strides[-1])), ty)
            irb.store(b, v, dst, b.add(ob, irb.mul(b, j, s.out_strides[-1])))
    b.ret_void()


@dataclass(frozen=True)
class TableSpec:
    """out[i] = table[i] >= 0 ? in[table[i]] : fill (bit pattern, as an integer)."""

    n: int
    itemsize: int
    fill: int

    @property
    def items(self) -> int:
        return -(-self.n // BLOCK)


def emit_table(module: ir.Module, name: str, s: TableSpec) -> None:
    """args = [in, table(i32), out]."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    src, tab, dst = (irb.arg_ptr(b, args, k) for k in range(3))
    ty = INT_OF_SIZE[s.itemsize]
    with irb.loop(b, lo, hi, name="r") as r:
        start = irb.mul(b, r, BLOCK)
        end = b.add(start, i64(BLOCK))
        stop = b.select(b.icmp_signed("<", end, i64(s.n)), end, i64(s.n))
        with irb.loop(b, start, stop, name="j") as j:
            t = b.sext(irb.load(b, tab, j, I32), I64)
            ok = b.icmp_signed(">=", t, i64(0))
            v = irb.load(b, src, b.select(ok, t, i64(0)), ty)
            irb.store(b, b.select(ok, v, ir.Constant(ty, s.fill)), dst, j)
    b.ret_void()


def contiguous_strides(shp: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(math.prod(shp[d + 1:]) for d in range(len(shp)))


def copy_strided(ctx: LowerCtx, src: Buf, dst: Buf, shp: tuple[int, ...], in_strides: tuple[int, ...],
                 out_strides: tuple[int, ...], itemsize: int) -> None:
    if math.prod(shp) == 0:
        return
    cs, ist, ost = collapse(tuple(shp), tuple(in_strides), tuple(out_strides))
    spec = CopySpec(cs, ist, ost, itemsize)
    ctx.call(spec, emit_copy, [src, dst], spec.items, work=math.prod(shp))


def copy_value(ctx: LowerCtx, src: Buf, dst: Buf, nbytes: int) -> None:
    """A contiguous byte copy (graph outputs that alias inputs, constants or other outputs)."""
    item = 4 if nbytes % 4 == 0 else 1
    copy_strided(ctx, src, dst, (nbytes // item,), (1,), (1,), item)


def _affine(m: np.ndarray) -> tuple[int, tuple[int, ...]] | None:
    """(offset, strides) if the index map is affine in the output coordinates."""
    if m.size == 0 or (m < 0).any():
        return None
    base = int(m.flat[0])
    strides = []
    for d in range(m.ndim):
        if m.shape[d] == 1:
            strides.append(0)
            continue
        idx = [0] * m.ndim
        idx[d] = 1
        strides.append(int(m[tuple(idx)]) - base)
    pred = base + sum(np.arange(n).reshape([-1 if k == d else 1 for k in range(m.ndim)]) * s
                      for d, (n, s) in enumerate(zip(m.shape, strides)))
    return (base, tuple(strides)) if np.array_equal(np.broadcast_to(pred, m.shape), m) else None


def lower_by_index_map(node: Node, ctx: LowerCtx, fill: float = 0.0, **override: object) -> None:
    """Run the op's reference on element indices (+1, so 0 marks a filled position) of input 0
    and copy accordingly."""
    op = get_op(node.op)
    a = {**attrs_of(node), **override}
    x = node.inputs[0]
    if any(v.data is None for v in node.inputs[1:]):
        raise UnsupportedOpError(f"node {node.label} ({node.op}): runtime operands besides the "
                                 "first are not supported by the llvm backend")
    n = x.type.numel()
    ids = (np.arange(n, dtype=np.int64) + 1).reshape(shape(x))
    maps = op.compute([ids, *[v.data for v in node.inputs[1:]]], a)
    itemsize = x.type.dtype.itemsize
    fill_bits = int(np.asarray([fill]).astype(x.type.dtype.numpy).view(f"i{itemsize}")[0])
    for out, m in zip(node.outputs, maps):
        m = np.asarray(m, np.int64) - 1
        if (aff := _affine(m)) is not None:
            off, st = aff
            copy_strided(ctx, ctx.buf(x, off * itemsize), ctx.buf(out), m.shape, st,
                         contiguous_strides(m.shape), itemsize)
            continue
        if n >= 2**31:
            raise UnsupportedOpError(f"node {node.label}: tensor too large for an index table")
        spec = TableSpec(m.size, itemsize, fill_bits)
        ctx.call(spec, emit_table, [ctx.buf(x), ctx.const(m.astype(np.int32).ravel()), ctx.buf(out)],
                 spec.items, work=m.size)


@lowers("transpose", "slice", "split", "expand", "tile", "channel_shuffle", "depth_to_space",
        "space_to_depth")
def lower_movement(node: Node, ctx: LowerCtx) -> None:
    lower_by_index_map(node, ctx)


@lowers("pad")
def lower_pad(node: Node, ctx: LowerCtx) -> None:
    lower_by_index_map(node, ctx, fill=attrs_of(node)["value"], value=0.0)


@lowers("concat")
def lower_concat(node: Node, ctx: LowerCtx) -> None:
    if id(node) in ctx.inplace_concat:
        return  # producers already wrote into place
    out = node.output
    oshape = shape(out)
    axis = attrs_of(node)["axis"] % len(oshape)
    ost = contiguous_strides(oshape)
    itemsize = out.type.dtype.itemsize
    pos = 0
    for v in node.inputs:
        vs = shape(v)
        copy_strided(ctx, ctx.buf(v), ctx.buf(out, pos * ost[axis] * itemsize), vs,
                     contiguous_strides(vs), ost, itemsize)
        pos += vs[axis]


@dataclass(frozen=True)
class GatherSpec:
    outer: int
    axis_len: int
    nidx: int
    inner: int
    itemsize: int
    idx_size: int


def emit_gather(module: ir.Module, name: str, s: GatherSpec) -> None:
    """args = [data, indices, out]; items = outer."""
    fn, b, (args, lo, hi) = irb.kernel_function(module, name)
    src, idx, dst = (irb.arg_ptr(b, args, k) for k in range(3))
    ty = INT_OF_SIZE[s.itemsize]
    ity = INT_OF_SIZE[s.idx_size]
    with irb.loop(b, lo, hi, name="o") as o:
        with irb.loop(b, 0, s.nidx, name="i") as i:
            t = irb.load(b, idx, i, ity)
            t = b.sext(t, I64) if s.idx_size < 8 else t
            t = b.select(b.icmp_signed("<", t, i64(0)), b.add(t, i64(s.axis_len)), t)
            # out-of-range indices are clamped rather than read out of bounds
            t = b.select(b.icmp_unsigned("<", t, i64(s.axis_len)), t, i64(0))
            sb = b.add(irb.mul(b, o, s.axis_len * s.inner), irb.mul(b, t, s.inner))
            db = b.add(irb.mul(b, o, s.nidx * s.inner), irb.mul(b, i, s.inner))
            with irb.loop(b, 0, s.inner, name="j") as j:
                irb.store(b, irb.load(b, src, b.add(sb, j), ty), dst, b.add(db, j))
    b.ret_void()


@lowers("gather")
def lower_gather(node: Node, ctx: LowerCtx) -> None:
    data, idx = node.inputs
    if idx.data is not None:
        lower_by_index_map(node, ctx)
        return
    ds = shape(data)
    axis = attrs_of(node)["axis"] % len(ds)
    spec = GatherSpec(math.prod(ds[:axis]), ds[axis], idx.type.numel(), math.prod(ds[axis + 1:]),
                      data.type.dtype.itemsize, idx.type.dtype.itemsize)
    ctx.call(spec, emit_gather, [ctx.buf(data), ctx.buf(idx), ctx.buf(node.output)], spec.outer,
             work=node.output.type.numel())
