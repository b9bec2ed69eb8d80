"""Where things live: the DRAM image (tensors, weights, parameters) and the on-chip buffer plan.

Buffers are split into two halves for double buffering. On a systolic accelerator the sizes come
from ``[buffers]``; on a VPU each core gets an even slice of the scratchpad, cut into the same four
regions (inputs, outputs, weights, accumulators), so no tile can exceed its slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lwc.backends.accel.config import AccelConfig


@dataclass(frozen=True)
class BufferPlan:
    """Byte sizes of one half of each region (accumulator/param sizes in int32 words)."""

    act_bytes: int
    """Total activation buffer (inputs + outputs, both halves)."""
    wgt_bytes: int
    acc_words: int
    in_half: int
    out_half: int
    wgt_half: int
    acc_half: int
    param_half: int = 3 * 4096
    """int32 words (bias, multiplier, shift per output channel) in one half of the parameter
    buffer; a systolic accelerator has it beside the described buffers, a VPU inside the slice."""
    budget: int = 0
    """Scratchpad bytes available to one core (VPU) or the sum of the buffers (systolic)."""

    @property
    def footprint(self) -> int:
        """Bytes of every region, both halves (activations, weights, accumulators, parameters)."""
        return self.act_bytes + self.wgt_bytes + 4 * self.acc_words + 8 * self.param_half

    @property
    def tile_budget(self) -> int:
        """Bytes one tile may occupy: one half of every region."""
        return self.in_half + self.out_half + self.wgt_half + 4 * self.acc_half + \
            4 * self.param_half

    @property
    def in_base(self) -> tuple[int, int]:
        return 0, self.in_half

    @property
    def out_base(self) -> tuple[int, int]:
        return 2 * self.in_half, 2 * self.in_half + self.out_half


def buffer_plan(cfg: AccelConfig) -> BufferPlan:
    if cfg.vpu is not None:
        # one core's slice s: inputs 3s/8, outputs s/8, weights s/4, accumulators 3s/16 and
        # parameters s/16 (each region two halves); the regions add up to at most s.
        s = cfg.vpu.slice_bytes
        in_half, out_half = (3 * s) // 16, s // 16
        wgt_half, acc_half_words = s // 8, (3 * s) // 128
        param_half = s // 128
        plan = BufferPlan(2 * (in_half + out_half), 2 * wgt_half, 2 * acc_half_words,
                          in_half, out_half, wgt_half, acc_half_words, param_half=param_half,
                          budget=s)
        assert plan.footprint <= s, (plan.footprint, s)
        return plan
    b = cfg.buffers
    in_half, out_half = (3 * b.activations) // 8, b.activations // 8
    return BufferPlan(b.activations, b.weights, b.accumulators // 4, in_half, out_half,
                      b.weights // 2, b.accumulators // 8,
                      budget=b.activations + b.weights + b.accumulators)


class DramImage:
    """A bump allocator over a growing uint8 image; 64-byte aligned regions."""

    def __init__(self) -> None:
        self.chunks: list[tuple[int, np.ndarray]] = []
        self.size = 0

    def alloc(self, nbytes: int, data: np.ndarray | None = None) -> int:
        addr = (self.size + 63) // 64 * 64
        self.size = addr + max(int(nbytes), 1)
        if data is not None:
            raw = np.ascontiguousarray(data).view(np.uint8).ravel()
            assert raw.size == nbytes, (raw.size, nbytes)
            self.chunks.append((addr, raw))
        return addr

    def image(self) -> np.ndarray:
        img = np.zeros((self.size + 63) // 64 * 64, np.uint8)
        for addr, raw in self.chunks:
            img[addr:addr + raw.size] = raw
        return img
