"""Per-layer simulation reports: the one result type every ``lwc sim`` mode prints.

The program simulator (``timing.py``) and SCALE-Sim's topology mode (``scalesim_compat.py``) both
fill ``LayerReport`` rows, so ``--json`` has the same keys in every mode (``LAYER_KEYS`` and
``TOTAL_KEYS``). Totals are derived here, never stored, so they always equal the sums of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LAYER_KEYS = ("name", "kind", "compute_cycles", "stall_cycles", "total_cycles", "utilization",
              "mapping_efficiency", "macs", "buffer_reads", "buffer_writes", "dram_reads",
              "dram_writes", "energy_pj", "arith_intensity", "roofline_bound")
"""Keys every layer object of ``SimReport.to_json()`` has (more may follow: unit, folds, note)."""
SUM_KEYS = ("compute_cycles", "stall_cycles", "total_cycles", "macs", "buffer_reads",
            "buffer_writes", "dram_reads", "dram_writes", "energy_pj")
"""Layer keys whose total is the plain sum over layers."""
TOTAL_KEYS = SUM_KEYS + ("utilization", "mapping_efficiency", "arith_intensity", "roofline_bound",
                         "achieved_tops", "peak_tops", "seconds")


@dataclass
class LayerReport:
    """One layer's cycles, traffic and energy. Memory counts are bytes."""

    name: str
    kind: str
    compute_cycles: int
    """Cycles the compute units (array, vector unit or VPU cores) are busy on this layer."""
    stall_cycles: int
    """total - compute: waiting for DRAM, fill and drain not hidden by overlap."""
    total_cycles: int
    macs: int = 0
    peak_macs_per_cycle: int = 1
    mapping_efficiency: float = 1.0
    """Fraction of the PEs (or lanes / cores) the mapping gives work to, averaged over folds."""
    buffer_reads: int = 0
    buffer_writes: int = 0
    dram_reads: int = 0
    dram_writes: int = 0
    energy_pj: float = 0.0
    ridge_point: float = 1.0
    """Ops per DRAM byte at which the roofline turns from memory- to compute-bound."""
    unit: str = "array"
    folds: int = 0
    """Array folds of the layer's GEMM shape (SCALE-Sim's count; independent of tiling)."""
    passes: int = 0
    """Folds actually executed: tiling along M (accumulator size) repeats fill and drain."""
    note: str = ""
    energy_breakdown: dict[str, float] = field(default_factory=dict)

    @property
    def utilization(self) -> float:
        """MACs done / MACs the whole accelerator could have done in ``total_cycles``."""
        cap = self.total_cycles * self.peak_macs_per_cycle
        return self.macs / cap if cap else 0.0

    @property
    def arith_intensity(self) -> float:
        """Operations (2 per MAC) per DRAM byte moved."""
        traffic = self.dram_reads + self.dram_writes
        return 2 * self.macs / traffic if traffic else 0.0

    @property
    def roofline_bound(self) -> str:
        """Which roof limits the layer: ``memory`` below the ridge point, else ``compute``."""
        if not (self.dram_reads + self.dram_writes):
            return "compute" if self.macs else "memory"
        return "compute" if self.arith_intensity >= self.ridge_point else "memory"

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in LAYER_KEYS}
        d["utilization"] = round(d["utilization"], 6)
        d["mapping_efficiency"] = round(d["mapping_efficiency"], 6)
        d["arith_intensity"] = round(d["arith_intensity"], 4)
        d["energy_pj"] = round(d["energy_pj"], 3)
        d.update(unit=self.unit, folds=self.folds, passes=self.passes, note=self.note,
                 energy_breakdown_pj={k: round(v, 3) for k, v in self.energy_breakdown.items()})
        return d


@dataclass
class SimReport:
    """A whole run: the accelerator's peak numbers, one row per layer and (functional runs) the
    int8 outputs by tensor name."""

    accel: str
    clock_mhz: float
    peak_macs_per_cycle: int
    dram_bandwidth: float
    """Bytes per cycle."""
    layers: list[LayerReport]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    mode: str = "program"
    """program (compiled and simulated), timing (no data), topology, scalesim-compat."""
    wall_seconds: dict[str, float] = field(default_factory=dict)
    trace: list[Any] = field(default_factory=list)
    """Per-instruction schedule rows (``timing.TraceRow``) when asked for."""

    @property
    def peak_tops(self) -> float:
        return 2 * self.peak_macs_per_cycle * self.clock_mhz * 1e6 / 1e12

    @property
    def ridge_point(self) -> float:
        return 2 * self.peak_macs_per_cycle / self.dram_bandwidth

    def total(self) -> dict[str, Any]:
        t: dict[str, Any] = {k: sum(getattr(x, k) for x in self.layers) for k in SUM_KEYS}
        t["energy_pj"] = round(float(t["energy_pj"]), 3)
        cyc, macs = t["total_cycles"], t["macs"]
        t["utilization"] = round(macs / (cyc * self.peak_macs_per_cycle), 6) if cyc else 0.0
        w = sum(x.total_cycles for x in self.layers if x.macs)
        t["mapping_efficiency"] = round(sum(x.mapping_efficiency * x.total_cycles
                                            for x in self.layers if x.macs) / w, 6) if w else 0.0
        traffic = t["dram_reads"] + t["dram_writes"]
        ai = 2 * macs / traffic if traffic else 0.0
        t["arith_intensity"] = round(ai, 4)
        t["roofline_bound"] = "compute" if ai >= self.ridge_point else "memory"
        seconds = cyc / (self.clock_mhz * 1e6)
        t["seconds"] = seconds
        t["achieved_tops"] = 2 * macs / seconds / 1e12 if seconds else 0.0
        t["peak_tops"] = self.peak_tops
        t["ridge_point"] = round(self.ridge_point, 4)
        return t

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"accel": self.accel, "mode": self.mode,
                               "layers": [x.to_json() for x in self.layers],
                               "total": self.total()}
        if self.wall_seconds:
            out["wall_seconds"] = {k: round(v, 4) for k, v in self.wall_seconds.items()}
        return out
