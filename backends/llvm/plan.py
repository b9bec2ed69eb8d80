"""What lowering produces: a list of kernel calls over buffers, independent of where buffers live.

A ``Buf`` names a graph value (plus a byte offset), a compile-time array that goes into the
weights blob, or scratch space that the memory planner places in the arena for one node only.
A ``KernelDef`` is a frozen spec plus the function that emits it; equal specs share one function,
and the spec's repr (with the target and the generator's source hash) keys the on-disk cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from llvmlite import ir

from lwc.ir.core import Node, Value

Emit = Callable[[ir.Module, str, Any], None]


def _source_hash() -> str:
    h = hashlib.sha1()
    root = Path(__file__).parent
    for p in sorted(root.rglob("*.py")) + sorted(root.rglob("*.c")):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


SOURCE_HASH = _source_hash()


@dataclass(frozen=True)
class KernelDef:
    spec: Any
    emit: Emit

    @property
    def key(self) -> str:
        return f"{self.emit.__module__}.{self.emit.__qualname__}:{self.spec!r}"

    def name(self, target_key: str) -> str:
        h = hashlib.sha1(f"{SOURCE_HASH}|{target_key}|{self.key}".encode()).hexdigest()
        return f"lwc_k_{h[:20]}"


@dataclass(frozen=True, eq=False)
class Buf:
    """One kernel argument pointer."""

    kind: str
    """"value" (a graph value), "const" (an array in the weights blob) or "scratch"."""
    value: Value | None = None
    offset: int = 0
    """Bytes added to the base address."""
    index: int = -1
    """Index into ``LowerCtx.consts`` or the node's scratch list."""
    step: int = -1
    """For scratch: the node step that owns it."""

    def at(self, offset: int) -> Buf:
        return Buf(self.kind, self.value, self.offset + offset, self.index, self.step)


@dataclass
class Call:
    kernel: KernelDef
    args: list[Buf]
    items: int
    work: int = 0
    """Rough element-operations of the call; small calls are not worth a thread hand-off."""
    node: Node | None = None


@dataclass
class LowerCtx:
    """Collects calls, compile-time arrays and scratch requests while nodes are lowered."""

    vw: int
    nregs: int
    inplace_concat: set[int] = field(default_factory=set)
    features: frozenset[str] = frozenset()
    """target features as LLVM spells them (``+avx2``, ...), for kernels with ISA-specific paths."""
    """ids of concat nodes whose inputs were placed in the output by the memory planner."""
    calls: list[Call] = field(default_factory=list)
    consts: list[np.ndarray] = field(default_factory=list)
    scratch: dict[int, list[int]] = field(default_factory=dict)
    """node index -> byte sizes of its scratch buffers."""
    step: int = 0
    node: Node | None = None

    def const(self, arr: np.ndarray) -> Buf:
        self.consts.append(np.ascontiguousarray(arr))
        return Buf("const", index=len(self.consts) - 1)

    def buf(self, v: Value, offset: int = 0) -> Buf:
        return Buf("value", v, offset)

    def alloc(self, nbytes: int) -> Buf:
        lst = self.scratch.setdefault(self.step, [])
        lst.append(int(nbytes))
        return Buf("scratch", index=len(lst) - 1, step=self.step)

    def call(self, spec: Any, emit: Emit, args: list[Buf], items: int, work: int = 0) -> None:
        self.calls.append(Call(KernelDef(spec, emit), args, max(1, int(items)), int(work), self.node))


Lowering = Callable[[Node, LowerCtx], None]
LOWERINGS: dict[str, Lowering] = {}


def lowers(*ops: str) -> Callable[[Lowering], Lowering]:
    """Register the function that turns nodes of these ops into kernel calls."""

    def deco(fn: Lowering) -> Lowering:
        for op in ops:
            LOWERINGS[op] = fn
        return fn

    return deco


def attrs_of(node: Node) -> dict[str, Any]:
    from lwc.ops.registry import get_op

    return get_op(node.op).complete_attrs(node.attrs, node.label)


def shape(v: Value) -> tuple[int, ...]:
    return v.type.concrete_shape()
