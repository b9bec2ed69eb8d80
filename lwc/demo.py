"""The end-to-end demo (``make demo`` / ``lwc demo``): load -> optimise -> run -> check -> report.

The demo is a list of ``Stage``s sharing one ``DemoState``; a later backend (LLVM compile,
compression, accelerator simulation) adds one stage function and one ``STAGES`` entry. A stage
returns an ``Outcome`` (a one-line summary plus an optional rich renderable to print) or raises
``SkipStage`` when what it needs is not available yet; any ``LwcError`` stops the demo.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lwc.errors import LwcError
from lwc.ir.core import Graph

DEFAULT_MODEL = "zoo:mobilenet_v2"
DEFAULT_PIPELINE = "O2"


class SkipStage(Exception):
    """Raised by a stage whose prerequisites are missing; the message says why."""


@dataclass
class DemoState:
    """What the stages hand to each other."""

    spec: str
    pipeline: str = DEFAULT_PIPELINE
    seed: int = 0
    top: int = 10
    graph: Graph | None = None
    reference: Graph | None = None
    """An untouched copy of the loaded graph, kept when a stage rewrites ``graph``."""
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    def need_graph(self) -> Graph:
        if self.graph is None:
            raise SkipStage("no graph was loaded")
        return self.graph


@dataclass(frozen=True)
class Outcome:
    summary: str
    detail: Any = None
    """A rich renderable (table) printed under the stage line, or None."""


@dataclass(frozen=True)
class Stage:
    name: str
    fn: Callable[[DemoState], Outcome]


@dataclass(frozen=True)
class StageResult:
    name: str
    status: str
    """"ok" or "skipped"."""
    seconds: float
    summary: str


# ----- stages ------------------------------------------------------------------------------------


def load_stage(s: DemoState) -> Outcome:
    from lwc.model_io import load_model

    s.graph = load_model(s.spec)
    return Outcome(f"{s.spec}: {s.graph.summary()}")


def optimise_stage(s: DemoState) -> Outcome:
    g = s.need_graph()
    try:
        from lwc.pass_manager import PassManager

        pm = PassManager(s.pipeline)
    except (ImportError, LwcError) as e:
        raise SkipStage(f"pipeline {s.pipeline!r} is not available ({e})") from None
    s.reference = g.copy()
    before = len(g.nodes)
    ctx = pm.run(g)
    changed = ", ".join(dict.fromkeys(r.name for r in ctx.history if r.changed)) or "none"
    return Outcome(f"{s.pipeline}: {before} -> {len(g.nodes)} nodes; {len(ctx.history)} passes "
                   f"ran, changed: {changed}")


def run_stage(s: DemoState) -> Outcome:
    from lwc.interp import interpret, random_inputs

    g = s.need_graph()
    s.inputs = random_inputs(g, seed=s.seed)
    s.outputs = interpret(g, s.inputs)
    parts = []
    for name, a in s.outputs.items():
        top1 = f", top-1 class {int(np.argmax(a[0]))}" if a.ndim == 2 and a.shape[1] > 1 else ""
        parts.append(f"{name}: {a.dtype}{list(a.shape)}{top1}")
    return Outcome("interpreter on seeded random input; " + "; ".join(parts))


def check_stage(s: DemoState) -> Outcome:
    """The optimised graph must compute what the original did (the interpreter is the oracle)."""
    from lwc.interp import interpret

    if s.reference is None or not s.outputs:
        raise SkipStage("nothing to compare: the graph was not optimised")
    want = interpret(s.reference, s.inputs)
    worst, worst_tol = 0.0, 0.0
    for name, ref in want.items():
        got = s.outputs[name]
        err = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
        tol = 1e-4 * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
        if not err <= tol:
            raise LwcError(f"optimised graph differs from the original on {name}: max abs error "
                           f"{err:.3g} > {tol:.3g}")
        if err >= worst:
            worst, worst_tol = err, tol
    return Outcome(f"optimised vs original: max abs error {worst:.3g} (tolerance {worst_tol:.3g})")


def _max_rel_error(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for name, ref in want.items():
        if ref.size:
            err = float(np.max(np.abs(got[name].astype(np.float64) - ref)))
            worst = max(worst, err / max(1.0, float(np.max(np.abs(ref)))))
    return worst


def _median_seconds(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def compile_stage(s: DemoState) -> Outcome:
    """JIT-compile with the LLVM backend; its outputs must match the interpreter's."""
    from lwc.backends import compile as compile_graph
    from lwc.interp import interpret

    g = s.need_graph()
    if not s.outputs:
        raise SkipStage("no interpreter outputs to check against")
    model = compile_graph(g, target="llvm", opt_level=3)
    got = model.run(s.inputs)
    err = _max_rel_error(got, s.outputs)
    if not err <= 1e-4:
        raise LwcError(f"LLVM output differs from the interpreter: max relative error {err:.3g}")
    t_llvm = _median_seconds(lambda: model.run(s.inputs))
    t_interp = _median_seconds(lambda: interpret(g, s.inputs), runs=3)
    return Outcome(f"LLVM JIT in {model.compile_seconds:.2f} s, arena {model.arena_size / 2**20:.2f} "
                   f"MiB; max rel. error vs interpreter {err:.2g}; median {1e3 * t_llvm:.2f} ms "
                   f"vs interpreter {1e3 * t_interp:.1f} ms ({t_interp / t_llvm:.0f}x)")


def _weight_bytes(g: Graph) -> int:
    return sum(int(v.data.nbytes) for v in g.constants.values() if v.data is not None)


def compress_stage(s: DemoState) -> Outcome:
    """Post-training int8 quantisation of the optimised graph (calibrated on seeded random
    inputs: the bundled model has random weights and no dataset), checked against float."""
    from lwc.interp import interpret
    from lwc.pass_manager import PassManager

    g = s.need_graph()
    if not s.outputs:
        raise SkipStage("no float outputs to compare with")
    q = g.copy()
    quiet = logging.getLogger("lwc.passes.compress.quantize")  # its "no data= given" warning is expected here
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        PassManager("quantize-int8{method=minmax,samples=4}").run(q)
    finally:
        quiet.setLevel(level)
    got = interpret(q, s.inputs)
    err = _max_rel_error(got, s.outputs)
    agree = all(int(np.argmax(got[k][0])) == int(np.argmax(v[0]))
                for k, v in s.outputs.items() if v.ndim == 2)
    n_q = sum(n.op.startswith("qlinear") for n in q.nodes)
    return Outcome(f"int8 (calibrated on 4 random inputs): {n_q} qlinear ops, weights {_weight_bytes(g) / 2**20:.2f} -> "
                   f"{_weight_bytes(q) / 2**20:.2f} MiB; output error {100 * err:.1f}% of "
                   f"max |output|; top-1 {'unchanged' if agree else 'changed'}")


def simulate_stage(s: DemoState) -> Outcome:
    """Compile for the TPU-like systolic array, run it bit-exactly and time it."""
    from lwc.backends.accel import compile_accel, quantize_model, reference_outputs, simulate

    g = s.reference if s.reference is not None else s.need_graph()
    if not s.inputs:
        raise SkipStage("no input to simulate")
    qm = quantize_model(g, [s.inputs])
    prog = compile_accel(qm, "tpu-v1")
    rep = simulate(prog, "tpu-v1", inputs=s.inputs)
    want = reference_outputs(qm, prog, s.inputs)
    if any(not np.array_equal(v, want[k]) for k, v in rep.outputs.items()):
        raise LwcError("accelerator simulation is not bit-exact against the int8 reference")
    t = rep.total()
    return Outcome(f"tpu-v1: {len(prog.instrs)} instructions, {t['total_cycles']:,} cycles "
                   f"({1e3 * t['seconds']:.2f} ms at 700 MHz), utilisation "
                   f"{100 * t['utilization']:.1f}%, {t['achieved_tops']:.2f} of "
                   f"{t['peak_tops']:.2f} peak TOPS, {t['energy_pj'] / 1e6:.1f} uJ; bit-exact")


def report_stage(s: DemoState) -> Outcome:
    from lwc.report import human, layer_report, render_table

    r = layer_report(s.need_graph())
    table = render_table(r, r.top(s.top), title=f"top {s.top} layers by MACs")
    return Outcome(f"{human(r.macs)} MACs, {human(r.params)} parameters, "
                   f"{human(r.bytes, 'B')} moved", table)


STAGES: list[Stage] = [
    Stage("load", load_stage),
    Stage("optimise", optimise_stage),
    Stage("run", run_stage),
    Stage("check", check_stage),
    Stage("compress", compress_stage),
    Stage("compile", compile_stage),
    Stage("simulate", simulate_stage),
    Stage("report", report_stage),
]
"""The demo's stages in order; backends append theirs (compile, compress, simulate, ...)."""


# ----- driver ------------------------------------------------------------------------------------


def run_demo(state: DemoState, stages: Sequence[Stage] = STAGES, console: Any = None
             ) -> list[StageResult]:
    """Run every stage in order, printing a line (and any table) per stage when ``console``."""
    results: list[StageResult] = []
    for i, stage in enumerate(stages, 1):
        t0 = time.perf_counter()
        try:
            out = stage.fn(state)
            status = "ok"
        except SkipStage as e:
            out, status = Outcome(f"skipped: {e}"), "skipped"
        dt = time.perf_counter() - t0
        results.append(StageResult(stage.name, status, dt, out.summary))
        if console is not None:
            from rich.markup import escape

            mark = "[green]ok[/]" if status == "ok" else "[yellow]skip[/]"
            console.print(f"[{i}/{len(stages)}] [bold]{stage.name:<9}[/] {mark} {dt:7.2f} s  "
                          f"{escape(out.summary)}", markup=True, highlight=False)
            if out.detail is not None:
                console.print(out.detail)
    if console is not None:
        total = sum(r.seconds for r in results)
        console.print(f"demo finished in {total:.2f} s ("
                      + ", ".join(f"{r.name} {r.seconds:.2f} s" for r in results) + ")")
    return results


__all__ = ["DEFAULT_MODEL", "STAGES", "DemoState", "Outcome", "SkipStage", "Stage",
           "StageResult", "run_demo"]
