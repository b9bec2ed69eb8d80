"""Small helpers over ``llvmlite.ir`` for writing loop nests: typed constants, counted loops
(optionally carrying values through phis), pointer arithmetic on opaque pointers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from llvmlite import ir

F32 = ir.FloatType()
F64 = ir.DoubleType()
I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()
KERNEL_TYPE = ir.FunctionType(VOID, [PTR, I64, I64])
"""Every kernel is ``void k(ptr *args, i64 lo, i64 hi)``: it does work items [lo, hi)."""


def i64(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def f32(v: float) -> ir.Constant:
    return ir.Constant(F32, float(v))


def vec(n: int, ty: ir.Type = F32) -> ir.VectorType:
    return ir.VectorType(ty, n)


def splat(b: ir.IRBuilder, x: ir.Value, n: int) -> ir.Value:
    """Broadcast a scalar to an n-lane vector (insertelement + zero shufflevector)."""
    vt = vec(n, x.type)
    v = b.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(I32, 0))
    return b.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(vec(n, I32), [0] * n))


def const_vec(n: int, x: float) -> ir.Constant:
    return ir.Constant(vec(n), [float(x)] * n)


def gep(b: ir.IRBuilder, ptr: ir.Value, idx: ir.Value | int, ty: ir.Type = F32) -> ir.Value:
    """&ptr[idx] for elements of type ``ty``."""
    if isinstance(idx, int):
        idx = i64(idx)
    return b.gep(ptr, [idx], source_etype=ty, inbounds=True)


def load(b: ir.IRBuilder, ptr: ir.Value, idx: ir.Value | int, ty: ir.Type = F32,
         align: int | None = None) -> ir.Value:
    return b.load(gep(b, ptr, idx, ty), typ=ty, align=align)


def store(b: ir.IRBuilder, val: ir.Value, ptr: ir.Value, idx: ir.Value | int,
          align: int | None = None) -> None:
    b.store(val, gep(b, ptr, idx, val.type), align=align)


def add(b: ir.IRBuilder, *xs: ir.Value | int) -> ir.Value:
    """Sum of i64 values and ints, folding the int parts."""
    const = sum(x for x in xs if isinstance(x, int))
    vals = [x for x in xs if not isinstance(x, int)]
    if not vals:
        return i64(const)
    acc = vals[0]
    for v in vals[1:]:
        acc = b.add(acc, v)
    return b.add(acc, i64(const)) if const else acc


def mul(b: ir.IRBuilder, x: ir.Value, k: int) -> ir.Value:
    if k == 1:
        return x
    if k == 0:
        return i64(0)
    return b.mul(x, i64(k))


@contextmanager
def loop(b: ir.IRBuilder, start: ir.Value | int, stop: ir.Value | int, step: int = 1,
         name: str = "i") -> Iterator[ir.Value]:
    """for (i = start; i < stop; i += step) { body } with the builder left after the loop."""
    with carried_loop(b, start, stop, [], step, name) as (i, _):
        yield i


class Carry:
    """Values carried around a loop: read ``values`` in the body, assign ``next`` before exit."""

    def __init__(self, phis: list[ir.PhiInstr]) -> None:
        self.values: list[ir.Value] = list(phis)
        self.next: list[ir.Value] = list(phis)
        self.out: list[ir.Value] = []


@contextmanager
def carried_loop(b: ir.IRBuilder, start: ir.Value | int, stop: ir.Value | int,
                 init: Sequence[ir.Value], step: int = 1,
                 name: str = "i") -> Iterator[tuple[ir.Value, Carry]]:
    """A counted loop whose phis carry ``init`` values; after the block, ``carry.out`` holds the
    final values (valid after the loop)."""
    start = i64(start) if isinstance(start, int) else start
    stop = i64(stop) if isinstance(stop, int) else stop
    pre = b.block
    head = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64, name=name)
    i.add_incoming(start, pre)
    phis = []
    for k, v in enumerate(init):
        p = b.phi(v.type, name=f"{name}.c{k}")
        p.add_incoming(v, pre)
        phis.append(p)
    b.cbranch(b.icmp_signed("<", i, stop), body, done)
    b.position_at_end(body)
    carry = Carry(phis)
    yield i, carry
    latch = b.block
    i.add_incoming(b.add(i, i64(step), flags=["nsw"]), latch)
    for p, v in zip(phis, carry.next):
        p.add_incoming(v, latch)
    b.branch(head)
    b.position_at_end(done)
    carry.out = list(phis)


def intrinsic(module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
    """Declare (once) an LLVM intrinsic or libm function."""
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, list(args)), name=name)


def kernel_function(module: ir.Module, name: str) -> tuple[ir.Function, ir.IRBuilder, list]:
    """Define ``void name(ptr args, i64 lo, i64 hi)``; returns (fn, builder at entry, [args, lo, hi])."""
    fn = ir.Function(module, KERNEL_TYPE, name=name)
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    return fn, b, list(fn.args)


def arg_ptr(b: ir.IRBuilder, args: ir.Value, k: int) -> ir.Value:
    """The k-th buffer pointer from the kernel's argument array."""
    return b.load(gep(b, args, k, PTR), typ=PTR)
