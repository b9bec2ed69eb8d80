"""An example lwc plugin: removes multiplications by one (and, optionally, additions of zero)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lwc import Graph, Pass, PassContext, PassResult
from lwc.rewrite import Match, Rewriter, Rule, any_value, apply_rules, const, op


def _bypass(m: Match, rw: Rewriter) -> None:
    """Readers of x*1 read x, provided broadcasting did not change the shape."""
    if m.value("x").type == m.root.outputs[0].type:
        rw.replace(m.root, m.value("x"))


MUL_ONE = Rule(op("mul", any_value("x"), const(where=lambda c: bool(np.all(c == 1))),
                  commutative=True), _bypass, "mul_one")
ADD_ZERO = Rule(op("add", any_value("x"), const(where=lambda c: bool(np.all(c == 0))),
                   commutative=True), _bypass, "add_zero")


@dataclass(frozen=True)
class RemoveMulOne(Pass):
    """Remove x*1 (and x+0 with also_add_zero) where the result has x's type.

    Exact: both are the identity on every float except that x + 0 turns -0.0 into +0.0.
    """

    name: ClassVar[str] = "remove-mul-one"
    exact: ClassVar[bool] = True
    also_add_zero: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        rules = [MUL_ONE, ADD_ZERO] if self.also_add_zero else [MUL_ONE]
        hits = apply_rules(graph, rules)
        return PassResult(changed=any(hits.values()), stats=hits)
