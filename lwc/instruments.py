"""Pass instruments (after TVM): hooks the ``PassManager`` calls around every pass.

``Verify`` (on by default), ``Timing`` (``--time-passes``), ``PrintIR`` (``--print-ir-after``),
``Parity`` (interpreter before/after every exact pass) and ``NodeCounts`` are built in; write your
own by subclassing ``Instrument`` and overriding the hooks you need.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

import numpy as np

from lwc.errors import PassError, VerifyError

if TYPE_CHECKING:
    from lwc.ir.core import Graph
    from lwc.pass_manager import Pass, PassContext, PassResult


class Instrument:
    """Base class: every hook is a no-op."""

    def enter(self, ctx: PassContext, graph: Graph) -> None:
        """Before the first pass."""

    def should_run(self, p: Pass, graph: Graph, ctx: PassContext) -> bool:
        """Return False to skip ``p`` (e.g. to bisect a pipeline)."""
        return True

    def before(self, p: Pass, graph: Graph, ctx: PassContext) -> None:
        """Just before ``p.run``."""

    def after(self, p: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        """Just after ``p.run`` returned."""

    def exit(self, ctx: PassContext, graph: Graph) -> None:
        """After the last pass."""


class Verify(Instrument):
    """``graph.verify()`` after every pass; the error names the pass and those that ran before."""

    def after(self, p: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        try:
            graph.verify()
        except VerifyError as e:
            names = [r.name for r in ctx.history[:-1]]  # history already holds this pass
            prior = f" (after {', '.join(names)})" if names else " (first pass)"
            raise PassError(f"pass {p.name} left an invalid graph{prior}: {e}") from None


class Timing(Instrument):
    """Wall time per pass (read from ``ctx.history``); ``report()`` formats a table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, bool]] = []

    def after(self, p: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        self.rows.append((str(p), ctx.history[-1].seconds, result.changed))

    def total(self) -> float:
        return sum(r[1] for r in self.rows)

    def report(self) -> str:
        total = self.total() or 1e-12
        lines = [f"{'pass':<40} {'ms':>9} {'%':>6}  changed"]
        for name, sec, changed in self.rows:
            lines.append(f"{name:<40} {sec * 1e3:9.2f} {100 * sec / total:6.1f}  {changed}")
        lines.append(f"{'total':<40} {self.total() * 1e3:9.2f}")
        return "\n".join(lines)


class PrintIR(Instrument):
    """Print the textual IR before and/or after the named passes (``all=True``: every pass)."""

    def __init__(self, after: Iterable[str] = (), before: Iterable[str] = (), *,
                 all: bool = False, stream: TextIO | None = None) -> None:
        self.after_names, self.before_names = set(after), set(before)
        self.all = all
        self.stream = stream

    def _emit(self, when: str, p: Pass, graph: Graph) -> None:
        out = self.stream or sys.stdout
        out.write(f"// ----- IR {when} {p} -----\n{render_ir(graph)}\n")

    def before(self, p: Pass, graph: Graph, ctx: PassContext) -> None:
        if p.name in self.before_names:
            self._emit("before", p, graph)

    def after(self, p: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        if self.all or p.name in self.after_names:
            self._emit("after", p, graph)


class Parity(Instrument):
    """Run the interpreter before and after every *exact* pass on seeded inputs and require the
    outputs to agree (``rtol``/``atol``); approximate passes are skipped (they report error)."""

    def __init__(self, rtol: float = 1e-5, atol: float = 1e-5, seed: int = 0) -> None:
        self.rtol, self.atol, self.seed = rtol, atol, seed
        self._inputs: dict[str, np.ndarray] = {}
        self._ref: list[np.ndarray] = []

    def enter(self, ctx: PassContext, graph: Graph) -> None:
        from lwc.interp import interpret, random_inputs

        self._inputs = random_inputs(graph, seed=self.seed)
        self._ref = list(interpret(graph, self._inputs).values())

    def after(self, p: Pass, graph: Graph, ctx: PassContext, result: PassResult) -> None:
        from lwc.interp import interpret

        if not result.changed:
            return
        got = list(interpret(graph, self._inputs).values())
        if not p.exact:
            self._ref = got  # the new baseline for later exact passes
            return
        for i, (a, b) in enumerate(zip(self._ref, got)):
            if a.shape != b.shape or not np.allclose(b, a, rtol=self.rtol, atol=self.atol):
                err = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("nan")
                raise PassError(f"exact pass {p} changed output {i} (max abs error {err:.3g})")


class NodeCounts(Instrument):
    """Node count per op before the first and after the last pass."""

    def __init__(self) -> None:
        self.before_counts: dict[str, int] = {}
        self.after_counts: dict[str, int] = {}

    @staticmethod
    def count(graph: Graph) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in graph.nodes:
            out[n.op] = out.get(n.op, 0) + 1
        return dict(sorted(out.items()))

    def enter(self, ctx: PassContext, graph: Graph) -> None:
        self.before_counts = self.count(graph)

    def exit(self, ctx: PassContext, graph: Graph) -> None:
        self.after_counts = self.count(graph)


def render_ir(graph: Graph) -> str:
    """The textual IR if the printer is available, else one line per node."""
    try:
        from lwc.ir.printer import print_graph
    except ImportError:
        lines = [f"graph @{graph.name}({', '.join(repr(v) for v in graph.inputs)}) {{"]
        lines += [f"  {n!r} {n.attrs or ''} : {', '.join(str(o.type) for o in n.outputs)}"
                  for n in graph.nodes]
        lines.append(f"  return {', '.join('%' + v.name for v in graph.outputs)}\n}}")
        return "\n".join(lines)
    return print_graph(graph)


__all__ = ["Instrument", "NodeCounts", "Parity", "PrintIR", "Timing", "Verify", "render_ir"]
