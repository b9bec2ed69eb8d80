"""The LLVM target: one target machine per (triple, cpu, features), and the facts kernels need.

llvmlite 0.50 has no ``llvm.initialize()``; only the native target and asm printer are set up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite.binding as llvm


@functools.cache
def _init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@dataclass(frozen=True)
class Target:
    """Where code runs: triple, CPU name and feature string (as LLVM spells them)."""

    triple: str
    cpu: str
    features: str

    @property
    def vector_width(self) -> int:
        """f32 lanes of the widest vector register the kernels should use."""
        return 16 if "+avx512f" in self.features.split(",") else 8

    @property
    def num_vector_regs(self) -> int:
        return 32 if self.vector_width == 16 else 16

    @property
    def key(self) -> str:
        return f"{self.triple}|{self.cpu}|{self.features}"

    def machine(self, opt: int = 3) -> llvm.TargetMachine:
        """A shared target machine for code generation (never hand it to an engine)."""
        return _machine(self, opt)

    def fresh_machine(self, opt: int = 3) -> llvm.TargetMachine:
        """A new target machine: MCJIT takes ownership of (and frees) the one it is given."""
        return _machine.__wrapped__(self, opt)


@functools.cache
def _machine(t: Target, opt: int) -> llvm.TargetMachine:
    _init()
    target = llvm.Target.from_triple(t.triple)
    # reloc="pic" so objects link into shared libraries (weights and constants are globals)
    return target.create_target_machine(cpu=t.cpu, features=t.features, opt=opt, reloc="pic",
                                        codemodel="default")


def host_target(mcpu: str | None = None) -> Target:
    """The machine we run on, or an explicit ``mcpu`` (features then come from the CPU name)."""
    _init()
    if mcpu and mcpu != "native":
        return Target(llvm.get_process_triple(), mcpu, "")
    feats = llvm.get_host_cpu_features().flatten()
    return Target(llvm.get_process_triple(), llvm.get_host_cpu_name(), feats)
