"""A compiled accelerator program: instructions, the layer table, the DRAM image and where the
inputs and outputs live. Saved as a ``.lasm`` listing plus a ``.lasm.npz`` data sidecar (no pickle).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lwc.backends.accel.isa import Instr


@dataclass(frozen=True)
class TensorInfo:
    """An int8 tensor in DRAM (NCHW, batch 1) with its per-tensor scale."""

    name: str
    addr: int
    shape: tuple[int, ...]
    scale: float

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class LayerInfo:
    """What the report needs to know about a lowered layer."""

    name: str
    kind: str
    """conv, depthwise, gemm, add, pool, concat."""
    macs: int = 0
    gemm: tuple[int, int, int] = (0, 0, 0)
    """(M, N, K) per group for GEMM-shaped layers."""
    groups: int = 1
    unit: str = "array"
    """Where it ran: array, vector, vpu."""
    core_work: list[int] = field(default_factory=list)
    """Work units given to each VPU core (empty on a systolic array)."""
    max_tile_bytes: int = 0
    """Largest scratchpad/buffer footprint of one tile (checked against the budget)."""
    split_units: int = 0
    """VPU: indivisible work units along the longest axis the layer may be split on (a layer
    with at least 10 per core is balanced within 10%)."""
    dw_block: int = 1
    """Depthwise on the array: channels per block-diagonal GEMM (1: one GEMM per channel)."""


@dataclass
class Program:
    accel: str
    instrs: list[Instr]
    layers: list[LayerInfo]
    dram_init: np.ndarray
    """uint8 DRAM image with weights and parameters; activations are written at run time."""
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def save(self, path: str | Path) -> None:
        """Write the listing and its ``.npz`` sidecar (DRAM image + tables), both atomically."""
        from lwc.backends.accel.assembler import disassemble
        from lwc.fileio import atomic_write_text, save_npz

        p = Path(path)
        meta = {"accel": self.accel, "layers": [asdict(x) for x in self.layers],
                "inputs": [asdict(t) for t in self.inputs],
                "outputs": [asdict(t) for t in self.outputs]}
        save_npz(str(p) + ".npz", {"dram": self.dram_init,
                                   "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)})
        atomic_write_text(p, disassemble(self))

    @staticmethod
    def load(path: str | Path) -> Program:
        """Read a ``.lasm`` listing; the ``.npz`` sidecar (if present) restores data and tables.
        Without it the program can still be timed, not run."""
        from lwc.backends.accel.assembler import assemble
        from lwc.backends.accel.isa import IsaError
        from lwc.fileio import load_arrays

        p = Path(path)
        if not p.is_file():
            raise IsaError(f"{p}: no such program file")
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            raise IsaError(f"{p}: not a text assembly listing") from None
        prog = assemble(text, where=str(p))
        side = Path(str(p) + ".npz")
        if side.is_file():
            z = load_arrays(side)
            try:
                meta = json.loads(z["meta"].astype(np.uint8).tobytes().decode())
                dram = z["dram"]
                if dram.dtype != np.uint8 or dram.ndim != 1:
                    raise ValueError(f"dram image is {dram.dtype} {dram.shape}, not uint8 1-D")
                prog.dram_init = dram
                prog.accel = meta["accel"]
                prog.layers = [LayerInfo(**{**x, "gemm": tuple(x["gemm"])})
                               for x in meta["layers"]]
                prog.inputs = [TensorInfo(**{**t, "shape": tuple(t["shape"])})
                               for t in meta["inputs"]]
                prog.outputs = [TensorInfo(**{**t, "shape": tuple(t["shape"])})
                                for t in meta["outputs"]]
            except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
                raise IsaError(f"{side}: malformed program sidecar ({e})") from None
            for t in prog.inputs + prog.outputs:
                if t.addr < 0 or t.addr + t.nbytes > dram.size:
                    raise IsaError(f"{side}: tensor {t.name} {t.shape} at {t.addr} lies outside "
                                   f"the {dram.size}-byte DRAM image")
        return prog
