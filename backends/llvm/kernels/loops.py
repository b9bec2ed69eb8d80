"""The loop nest shared by elementwise-style kernels: items are rows of a collapsed iteration
shape (or blocks of a 1-D one); the body sees each operand's element offset."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from llvmlite import ir

from lwc.backends.llvm import irb
from lwc.backends.llvm.irb import i64

BLOCK = 4096


def row_items(shape: Sequence[int]) -> int:
    return math.prod(shape[:-1]) if len(shape) > 1 else -(-shape[0] // BLOCK)


def emit_rows(b: ir.IRBuilder, shape: Sequence[int], strides: Sequence[Sequence[int]],
              lo: ir.Value, hi: ir.Value, body: Callable[[list[ir.Value]], None]) -> None:
    """for item in [lo, hi): for j in row: body([offset of operand k at this element])."""
    last = shape[-1]
    with irb.loop(b, lo, hi, name="r") as r:
        if len(shape) == 1:
            start = irb.mul(b, r, BLOCK)
            end = b.add(start, i64(BLOCK))
            stop = b.select(b.icmp_signed("<", end, i64(last)), end, i64(last))
            bases = [i64(0)] * len(strides)
        else:
            start, stop = i64(0), i64(last)
            rem, bases = r, [i64(0)] * len(strides)
            for d in reversed(range(len(shape) - 1)):
                idx = b.srem(rem, i64(shape[d]))
                rem = b.sdiv(rem, i64(shape[d]))
                bases = [b.add(bs, irb.mul(b, idx, st[d])) for bs, st in zip(bases, strides)]
        with irb.loop(b, start, stop, name="j") as j:
            body([b.add(bs, irb.mul(b, j, st[-1])) for bs, st in zip(bases, strides)])
