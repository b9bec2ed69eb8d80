"""The accelerator ISA: a VTA/TPU-style instruction set with three in-order queues.

Every instruction belongs to one queue (``load``, ``compute``, ``store``) fixed by its opcode.
Queues run concurrently and synchronise only through dependency tokens, exactly as in VTA: each
instruction may pop a token from / push a token to its neighbour queue (load <-> compute <->
store). That is what lets the load of tile i+1 overlap the matrix multiply of tile i (double
buffering). ``SYNC`` waits until every earlier store has reached DRAM (a layer boundary).

Binary encoding (little endian, 44 bytes per instruction)::

    u8 opcode | u8 flags (POP_PREV, POP_NEXT, PUSH_PREV, PUSH_NEXT) | u8 core | u8 reserved
    u32 layer | 9 x i32 operand fields (unused fields are 0)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from lwc.errors import LwcError


class IsaError(LwcError):
    """A malformed instruction, binary image or assembly line."""


class Queue(IntEnum):
    LOAD = 0
    COMPUTE = 1
    STORE = 2


class Dep(IntFlag):
    """Token flags; "prev"/"next" are the neighbour queues in load -> compute -> store order."""

    NONE = 0
    POP_PREV = 1
    POP_NEXT = 2
    PUSH_PREV = 4
    PUSH_NEXT = 8


class Buf(IntEnum):
    """On-chip memories a DMA can target."""

    ACT = 0
    WGT = 1
    PARAM = 2
    ACC = 3
    """int32 words into the accumulators (partial sums of another core, for ``vsum``)."""


@dataclass(frozen=True)
class OpSpec:
    code: int
    mnemonic: str
    queue: Queue
    fields: tuple[str, ...]
    doc: str


SPECS: tuple[OpSpec, ...] = (
    OpSpec(0, "nop", Queue.COMPUTE, (), "do nothing"),
    OpSpec(1, "sync", Queue.LOAD, (), "layer barrier: wait until every earlier instruction of "
           "every core has finished (its stores reached DRAM)"),
    OpSpec(2, "agcfg", Queue.LOAD, ("h", "w", "c", "kh", "kw", "stride", "pad", "dil", "ow"),
           "address-generator registers for LOADI; stride/pad/dil pack (x << 16 | y)"),
    OpSpec(3, "load", Queue.LOAD, ("buf", "dst", "dram", "rows", "cols", "rstride", "cstride"),
           "2-D DMA DRAM -> buffer: dst[r*cols+c] = dram[r*rstride + c*cstride] (param, acc: int32 "
           "words, strides in words)"),
    OpSpec(4, "loadi", Queue.LOAD, ("dst", "dram", "m0", "rows", "k0", "cols"),
           "im2col DMA: act[dst + i*cols + j] = X[m0+i, k0+j] of the tensor at dram (agcfg)"),
    OpSpec(5, "store", Queue.STORE, ("dram", "src", "rows", "cols", "rstride", "cstride"),
           "2-D DMA act buffer -> DRAM: dram[r*rstride + c*cstride] = src[r*cols + c]"),
    OpSpec(6, "matmul", Queue.COMPUTE, ("acc", "a", "w", "m", "k", "n", "accumulate"),
           "acc[m,n] (+)= act[a: m x k] @ wgt[w: k x n] on the array (int8 x int8 -> int32)"),
    OpSpec(7, "vdw", Queue.COMPUTE, ("acc", "a", "w", "m", "c", "kk", "accumulate"),
           "depthwise on the vector unit: acc[i,ch] (+)= sum_j act[a][i, ch*kk+j]*wgt[w][ch*kk+j]"),
    OpSpec(8, "vreq", Queue.COMPUTE, ("dst", "acc", "param", "m", "n", "lo", "hi"),
           "act[dst] = clamp(requant(acc + bias[n], mult[n], shift[n]), lo, hi) (params at param)"),
    OpSpec(9, "vadd", Queue.COMPUTE, ("dst", "a", "b", "n", "ma", "mb", "shift", "lo", "hi"),
           "act[dst+i] = clamp((a[i]*ma + b[i]*mb + round) >> shift, lo, hi)"),
    OpSpec(10, "vrescale", Queue.COMPUTE, ("dst", "src", "n", "mult", "shift", "lo", "hi"),
           "act[dst+i] = clamp((src[i]*mult + round) >> shift, lo, hi)"),
    OpSpec(11, "pcfg", Queue.COMPUTE, ("h", "w", "kh", "kw", "stride", "pad", "oh", "ow", "mode"),
           "pooling registers for VPOOL; mode 0 max, 1 avg (count_include_pad), 2 global avg"),
    OpSpec(12, "vpool", Queue.COMPUTE, ("dst", "src", "c", "mult", "shift"),
           "pool c channels of h x w at src into oh x ow at dst (pcfg); avg rescales"),
    OpSpec(13, "storeacc", Queue.STORE, ("dram", "src", "rows", "cols", "rstride", "cstride"),
           "2-D DMA accumulators -> DRAM: the int32 word at dram + 4*(r*rstride + c*cstride) = "
           "acc[src + r*cols + c] (partial sums of a K split)"),
    OpSpec(14, "vsum", Queue.COMPUTE, ("dst", "src", "n", "parts"),
           "acc[dst+i] = sum_p acc[src + p*n + i], p < parts (reduce a K split's partial sums)"),
)
BY_CODE = {s.code: s for s in SPECS}
BY_NAME = {s.mnemonic: s for s in SPECS}
NFIELDS = 9
_HEAD = struct.Struct("<BBBBI")
_BODY = struct.Struct("<" + "i" * NFIELDS)
INSTR_BYTES = _HEAD.size + _BODY.size
MAGIC = b"LWCA\x01\x00\x00\x00"


def pack2(hi: int, lo: int) -> int:
    """Two 16-bit values in one field (hi << 16 | lo)."""
    return (hi << 16) | (lo & 0xFFFF)


def unpack2(v: int) -> tuple[int, int]:
    return v >> 16, v & 0xFFFF


@dataclass(frozen=True, slots=True)
class Instr:
    op: str
    args: tuple[int, ...]
    flags: Dep = Dep.NONE
    layer: int = 0
    core: int = 0

    def __post_init__(self) -> None:
        spec = BY_NAME.get(self.op)
        if spec is None:
            raise IsaError(f"unknown opcode {self.op!r}")
        if len(self.args) != len(spec.fields):
            raise IsaError(f"{self.op} takes {len(spec.fields)} fields "
                           f"({', '.join(spec.fields)}), got {len(self.args)}")

    @property
    def spec(self) -> OpSpec:
        return BY_NAME[self.op]

    @property
    def queue(self) -> Queue:
        return BY_NAME[self.op].queue

    def field(self, name: str) -> int:
        return self.args[self.spec.fields.index(name)]

    def as_dict(self) -> dict[str, int]:
        return dict(zip(self.spec.fields, self.args))


def make(op: str, flags: Dep = Dep.NONE, layer: int = 0, core: int = 0, **fields: int) -> Instr:
    """Build an instruction by field name (missing fields are an error)."""
    spec = BY_NAME[op]
    try:
        args = tuple(int(fields[f]) for f in spec.fields)
    except KeyError as e:
        raise IsaError(f"{op}: missing field {e.args[0]}") from None
    if extra := set(fields) - set(spec.fields):
        raise IsaError(f"{op}: unknown field(s) {', '.join(sorted(extra))}")
    return Instr(op, args, flags, layer, core)


def encode(instrs: list[Instr]) -> bytes:
    """The binary image: magic, count, then fixed 44-byte records."""
    out = bytearray(MAGIC)
    out += struct.pack("<I", len(instrs))
    for ins in instrs:
        body = list(ins.args) + [0] * (NFIELDS - len(ins.args))
        try:
            out += _HEAD.pack(ins.spec.code, int(ins.flags), ins.core, 0, ins.layer)
            out += _BODY.pack(*body)
        except struct.error as e:
            raise IsaError(f"cannot encode {ins.op} {ins.args}: {e}") from None
    return bytes(out)


def decode(blob: bytes) -> list[Instr]:
    if blob[:8] != MAGIC:
        raise IsaError("not an lwc accelerator binary (bad magic)")
    (count,) = struct.unpack_from("<I", blob, 8)
    if len(blob) != 12 + count * INSTR_BYTES:
        raise IsaError(f"binary holds {len(blob) - 12} bytes of records, expected "
                       f"{count} x {INSTR_BYTES}")
    instrs: list[Instr] = []
    for i in range(count):
        off = 12 + i * INSTR_BYTES
        code, flags, core, _, layer = _HEAD.unpack_from(blob, off)
        spec = BY_CODE.get(code)
        if spec is None:
            raise IsaError(f"record {i}: unknown opcode {code}")
        args = _BODY.unpack_from(blob, off + _HEAD.size)[:len(spec.fields)]
        instrs.append(Instr(spec.mnemonic, tuple(args), Dep(flags), layer, core))
    return instrs
