"""Per-layer cost reports (op, node, output shape, parameters, MACs, bytes moved) and their totals.

Shared by ``lwc info``, the demo and benchmarks, so every place prints the same figures. The
figures come from ``lwc.cost`` (each op's ``cost`` hook), counted at batch 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from lwc.cost import node_cost
from lwc.ir.core import Graph


@dataclass(frozen=True)
class LayerRow:
    """One node's figures; ``shape`` is the printed type of its (first) output."""

    op: str
    name: str
    shape: str
    params: int
    macs: int
    bytes: int


@dataclass(frozen=True)
class Report:
    """All layers in graph order plus the totals over them."""

    graph: str
    layers: list[LayerRow]
    params: int
    """Every constant element in the graph (counts weights shared between nodes once)."""
    macs: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"graph": self.graph, "layers": [asdict(r) for r in self.layers],
                "total": {"nodes": len(self.layers), "params": self.params, "macs": self.macs,
                          "bytes": self.bytes}}

    def top(self, n: int) -> list[LayerRow]:
        """The ``n`` layers with the most MACs (ties keep graph order)."""
        return sorted(self.layers, key=lambda r: -r.macs)[:n]


def layer_report(graph: Graph) -> Report:
    """Figures for every node of ``graph``, in graph order."""
    rows: list[LayerRow] = []
    for n in graph.nodes:
        c = node_cost(n)
        shape = ", ".join(str(v.type) for v in n.outputs)
        rows.append(LayerRow(n.op, n.label, shape, int(c.params), int(c.macs), int(c.bytes)))
    return Report(graph.name, rows, graph.parameter_count(), sum(r.macs for r in rows),
                  sum(r.bytes for r in rows))


def human(n: float, unit: str = "") -> str:
    """``1234567`` -> ``1.23M``: compact figures for tables (JSON keeps exact integers)."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{int(n)}{unit}"


def render_table(report: Report, rows: Sequence[LayerRow] | None = None, *, title: str = "") -> Any:
    """A ``rich`` table of ``rows`` (default: all layers) with a totals line."""
    from rich.markup import escape
    from rich.table import Table

    rows = report.layers if rows is None else rows
    t = Table(title=escape(title) if title else None, show_footer=True, header_style="bold")
    t.add_column("#", justify="right", footer="")
    t.add_column("op", footer="total")
    t.add_column("node", footer=f"{len(report.layers)} nodes")
    t.add_column("output", footer="")
    t.add_column("params", justify="right", footer=human(report.params))
    t.add_column("MACs", justify="right", footer=human(report.macs))
    t.add_column("bytes", justify="right", footer=human(report.bytes, "B"))
    index = {id(r): i for i, r in enumerate(report.layers)}
    for r in rows:
        t.add_row(str(index.get(id(r), "")), r.op, escape(r.name), r.shape, human(r.params),
                  human(r.macs), human(r.bytes, "B"))
    return t


__all__ = ["LayerRow", "Report", "human", "layer_report", "render_table"]
