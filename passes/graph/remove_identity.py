"""Removal of ops that return their input unchanged (identity, inference dropout, no-op casts
and pads)."""

from __future__ import annotations

from lwc.rewrite import Match, Rewriter, any_value, op, pattern_set, takes_output_name

remove_identity = pattern_set(
    "remove-identity", exact=True,
    doc="Remove identity, dropout, casts to the same dtype and all-zero pads.\n\n"
        "Exact: each returns its input unchanged. A graph output keeps its name.")


def _bypass(m: Match, rw: Rewriter) -> None:
    """Let readers of the root read its input, unless that would rename a graph input."""
    out, src = m.root.outputs[0], m.value("x")
    if out.type != src.type:
        return
    if any(o is out for o in m.graph.outputs) and not takes_output_name(m.graph, out, src):
        return
    rw.replace(m.root.outputs[0], src)


@remove_identity.rule(op(("identity", "dropout"), any_value("x")))
def identity(m: Match, rw: Rewriter) -> None:
    if len(m.root.outputs) == 1:
        _bypass(m, rw)


@remove_identity.rule(op("cast", any_value("x")))
def noop_cast(m: Match, rw: Rewriter) -> None:
    _bypass(m, rw)


@remove_identity.rule(op("pad", any_value("x"), attrs={"pads": lambda p: not any(p)}))
def noop_pad(m: Match, rw: Rewriter) -> None:
    _bypass(m, rw)
