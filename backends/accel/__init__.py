"""The accelerator backend: compile a float graph to a systolic-array / VPU program and simulate it.

Public API (kept stable; the sweep and SCALE-Sim modes build on it)::

    compile_accel(graph, accel, calib=None) -> Program
    simulate(graph_or_program, accel, *, inputs=None, functional=True, trace=False) -> SimReport

``accel`` is a preset name (``tpu-v1``), a ``.toml``/``.json`` description or an ``AccelConfig``.
``simulate(..., functional=False)`` only times the program (no data), which is what sweeps use.
See docs/accelerator.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lwc.backends.accel.config import AccelConfig, AccelConfigError, load_accel, preset_names
from lwc.backends.accel.program import Program
from lwc.backends.accel.qmodel import QModel
from lwc.backends.accel.report import LAYER_KEYS, TOTAL_KEYS, LayerReport, SimReport
from lwc.errors import InputError
from lwc.ir.core import Graph

__all__ = ["AccelConfig", "AccelConfigError", "LAYER_KEYS", "LayerReport", "Program", "SimReport",
           "TOTAL_KEYS", "compile_accel", "load_accel", "preset_names", "quantize_model",
           "reference_outputs", "simulate"]

Accel = str | Path | AccelConfig


def quantize_model(graph: Graph, calib: Sequence[Mapping[str, np.ndarray]] | None = None,
                   method: str = "max") -> QModel:
    """The int8 model the accelerator runs (symmetric per-channel weights, per-tensor
    activations calibrated on ``calib``, default one seeded random input; ``method``: ``max``
    (max |x|), ``percentile`` or ``entropy`` (via ``passes.compress.calibrate``))."""
    from lwc.backends.accel.quantize import quantize_graph

    return quantize_graph(graph, list(calib) if calib else None, method)


def compile_accel(graph: Graph | QModel, accel: Accel,
                  calib: Sequence[Mapping[str, np.ndarray]] | None = None) -> Program:
    """Quantise (unless given a ``QModel``) and lower for ``accel``."""
    from lwc.backends.accel.lower import lower

    cfg = load_accel(accel)
    qm = graph if isinstance(graph, QModel) else quantize_model(graph, calib)
    return lower(qm, cfg)


def reference_outputs(qm: QModel, prog: Program, inputs: Any = None) -> dict[str, np.ndarray]:
    """The int8 reference semantics (``qmodel.run_reference``) on the input the simulator would
    feed ``prog``: what a functional simulation must reproduce bit for bit."""
    from lwc.backends.accel.qmodel import run_reference

    return run_reference(qm, _int8_input(prog, inputs))


def _int8_input(prog: Program, inputs: Any) -> np.ndarray:
    """The program's int8 input from a float array / feed dict (quantised with the model's input
    scale) or an int8 array; seeded random when ``inputs`` is None."""
    t = prog.inputs[0]
    if inputs is None:
        rng = np.random.default_rng(0)
        return rng.integers(-128, 128, size=t.shape, dtype=np.int8)
    if isinstance(inputs, Mapping):
        if len(inputs) != 1:
            raise InputError(f"the accelerator program takes one input, got {len(inputs)} "
                             f"({', '.join(inputs)})")
        inputs = next(iter(inputs.values()))
    x = np.asarray(inputs)
    if x.size != t.nbytes:
        raise InputError(f"input {t.name}: expected {t.shape} ({t.nbytes} elements), got "
                         f"shape {x.shape}")
    if x.dtype == np.int8:
        return x.reshape(t.shape)
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"input {t.name}: expected float (quantised here) or int8, got {x.dtype}")
    q = np.clip(np.round(x.astype(np.float64) / t.scale), -128, 127)
    return q.astype(np.int8).reshape(t.shape)


def simulate(graph_or_program: Graph | QModel | Program, accel: Accel, *, inputs: Any = None,
             functional: bool = True, trace: bool = False) -> SimReport:
    """Compile (if needed) and simulate on ``accel``; per-layer cycles, traffic and energy.

    With ``functional`` the program also runs on ``inputs`` (float: quantised with the input's
    scale, and a graph is calibrated on them; int8: used as is; None: seeded random int8) and
    ``report.outputs`` holds the int8 results by tensor name. ``trace`` keeps the per-instruction schedule in ``report.trace``.
    """
    from lwc.backends.accel.functional import run_functional
    from lwc.backends.accel.timing import time_program

    cfg = load_accel(accel)
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    if isinstance(graph_or_program, Program):
        prog = graph_or_program
        if prog.accel not in (cfg.name, "unknown"):
            raise AccelConfigError(f"program was compiled for {prog.accel!r}, not {cfg.name!r}: "
                                   f"recompile it for this accelerator")
    else:
        calib = None
        if isinstance(graph_or_program, Graph) and inputs is not None:
            feed = dict(inputs) if isinstance(inputs, Mapping) else \
                {graph_or_program.inputs[0].name: np.asarray(inputs)}
            if all(np.issubdtype(np.asarray(v).dtype, np.floating) for v in feed.values()):
                calib = [feed]  # calibrate on the data it will run
        prog = compile_accel(graph_or_program, cfg, calib)
        wall["compile"] = time.perf_counter() - t0
    outputs: dict[str, np.ndarray] = {}
    if functional:
        if not prog.inputs or not prog.dram_init.size:
            raise InputError("the program has no data (its .lasm.npz sidecar is missing): "
                             "simulate with functional=False (lwc sim --timing-only) or recompile")
        t1 = time.perf_counter()
        outputs = run_functional(prog, cfg, _int8_input(prog, inputs))
        wall["functional"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    layers, rows = time_program(prog, cfg, trace=trace)
    wall["timing"] = time.perf_counter() - t2
    rep = SimReport(cfg.name, cfg.clock_mhz, cfg.peak_macs_per_cycle, cfg.dram.bandwidth, layers,
                    outputs, mode="program" if functional else "timing", wall_seconds=wall,
                    trace=rows)
    return rep
