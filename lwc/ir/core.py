"""The graph IR: SSA values, nodes and graphs with use-def chains kept in both directions.

Types are frozen values (``lwc.ir.types``); the graph is mutable but only through its own methods,
so that ``Value.users`` is always right. Constants (weights) are values with a numpy payload and no
producer. Nodes are kept in a list in topological order; passes that reorder call ``toposort``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lwc.errors import VerifyError
from lwc.ir.types import TensorType

if TYPE_CHECKING:
    import networkx as nx


@dataclass(eq=False)
class Use:
    """One operand slot that reads a value: ``node.inputs[index]``."""

    node: Node
    index: int


@dataclass(eq=False)
class Value:
    """An SSA value: a graph input, a constant, or the result of exactly one node."""

    name: str
    """Unique within its graph; printed as ``%name``."""
    type: TensorType
    producer: Node | None = None
    """The node whose output this is; None for graph inputs and constants."""
    data: np.ndarray | None = None
    """The payload of a constant; None for every other value."""
    uses: list[Use] = field(default_factory=list)
    """Every operand slot that reads this value (maintained by ``Node``)."""

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def users(self) -> list[Node]:
        """Distinct nodes reading this value, in first-use order."""
        seen: dict[int, Node] = {}
        for u in self.uses:
            seen.setdefault(id(u.node), u.node)
        return list(seen.values())

    @property
    def num_users(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One op application. Inputs are set through ``set_input`` so use lists stay right."""

    def __init__(
        self,
        op: str,
        inputs: Sequence[Value],
        outputs: Sequence[Value],
        attrs: Mapping[str, Any] | None = None,
        name: str = "",
    ) -> None:
        self.op = op
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.name = name
        """A label kept from the source model (the ONNX node name) for reports."""
        self._inputs: list[Value] = []
        self.outputs: list[Value] = list(outputs)
        for i, v in enumerate(inputs):
            self._inputs.append(v)
            v.uses.append(Use(self, i))
        for v in self.outputs:
            v.producer = self

    @property
    def inputs(self) -> tuple[Value, ...]:
        return tuple(self._inputs)

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise ValueError(f"node {self.label} has {len(self.outputs)} outputs, not 1")
        return self.outputs[0]

    @property
    def label(self) -> str:
        return self.name or (self.outputs[0].name if self.outputs else self.op)

    def set_input(self, index: int, value: Value) -> None:
        old = self._inputs[index]
        old.uses[:] = [u for u in old.uses if not (u.node is self and u.index == index)]
        self._inputs[index] = value
        value.uses.append(Use(self, index))

    def set_inputs(self, values: Sequence[Value]) -> None:
        self.drop_inputs()
        for i, v in enumerate(values):
            self._inputs.append(v)
            v.uses.append(Use(self, i))

    def drop_inputs(self) -> None:
        for v in self._inputs:
            v.uses[:] = [u for u in v.uses if u.node is not self]
        self._inputs = []

    def __repr__(self) -> str:
        outs = ", ".join(f"%{v.name}" for v in self.outputs)
        ins = ", ".join(f"%{v.name}" for v in self._inputs)
        return f"{outs} = {self.op}({ins})"


class Graph:
    """A dataflow graph: inputs, constants, nodes in topological order, outputs."""

    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.constants: dict[str, Value] = {}
        self._names: set[str] = set()
        self._counter = itertools.count()

    # ----- naming -------------------------------------------------------------------------
    def fresh_name(self, hint: str = "v") -> str:
        """A name unused in this graph: ``hint`` itself, else ``hint.1``, ``hint.2``, ..."""
        base = _sanitize(hint) or "v"
        if base not in self._names:
            self._names.add(base)
            return base
        while True:
            cand = f"{base}.{next(self._counter)}"
            if cand not in self._names:
                self._names.add(cand)
                return cand

    def _claim(self, name: str) -> None:
        if name in self._names:
            raise VerifyError(f"graph @{self.name}: value %{name} defined twice")
        self._names.add(name)

    # ----- building -----------------------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        name = self.fresh_name(name)
        v = Value(name, type)
        self.inputs.append(v)
        return v

    def add_constant(self, data: np.ndarray, name: str = "const") -> Value:
        """A weight or other compile-time tensor; the payload is stored as a read-only copy."""
        arr = np.array(data, copy=True)
        arr.setflags(write=False)
        name = self.fresh_name(name)
        v = Value(name, TensorType.of(arr), data=arr)
        self.constants[name] = v
        return v

    def add_node(
        self,
        op: str,
        inputs: Sequence[Value],
        attrs: Mapping[str, Any] | None = None,
        *,
        name: str = "",
        output_names: Sequence[str] | None = None,
        output_types: Sequence[TensorType] | None = None,
        before: Node | None = None,
    ) -> Node:
        """Create a node; output types come from the op's inference unless given."""
        from lwc.ops.registry import get_op

        opdef = get_op(op)
        full_attrs = opdef.complete_attrs(attrs or {}, where=name or op)
        if output_types is None:
            output_types = opdef.infer([v.type for v in inputs], full_attrs)
        names = list(output_names or [])
        names += [name or op] * (len(output_types) - len(names))
        outs = [Value(self.fresh_name(n), t) for n, t in zip(names, output_types)]
        node = Node(op, inputs, outs, opdef.strip_defaults(full_attrs), name=name)
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    def set_constant(self, value: Value, data: np.ndarray) -> None:
        """Replace a constant's payload (shape and dtype may change: its users are re-inferred by passes)."""
        if value.data is None:
            raise VerifyError(f"%{value.name} is not a constant")
        arr = np.array(data, copy=True)
        arr.setflags(write=False)
        value.data = arr
        value.type = TensorType(TensorType.of(arr).dtype, TensorType.of(arr).shape, value.type.quant)

    # ----- editing ------------------------------------------------------------------------
    def replace_all_uses(self, old: Value, new: Value) -> None:
        for use in list(old.uses):
            use.node.set_input(use.index, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def erase_node(self, node: Node) -> None:
        for v in node.outputs:
            if v.uses or any(o is v for o in self.outputs):
                raise VerifyError(f"cannot erase {node.label} ({node.op}): %{v.name} is still used")
        node.drop_inputs()
        self.nodes.remove(node)
        for v in node.outputs:
            self._names.discard(v.name)

    def remove_unused_constants(self) -> int:
        dead = [k for k, v in self.constants.items() if not v.uses and v not in self.outputs]
        for k in dead:
            del self.constants[k]
            self._names.discard(k)
        return len(dead)

    def toposort(self) -> None:
        """Reorder ``nodes`` topologically, keeping the current order where it is already valid."""
        import heapq

        # Kahn's algorithm that always takes the earliest ready node, so a valid order is kept
        # as it is (taking whole ready batches, as graphlib does, would reorder it).
        index = {id(n): i for i, n in enumerate(self.nodes)}
        succs: list[list[int]] = [[] for _ in self.nodes]
        indeg = [0] * len(self.nodes)
        for i, n in enumerate(self.nodes):
            preds = {index[id(v.producer)] for v in n.inputs if id(v.producer) in index}
            for p in preds:
                succs[p].append(i)
            indeg[i] = len(preds)
        ready = [i for i, d in enumerate(indeg) if d == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for s in succs[i]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    heapq.heappush(ready, s)
        if len(order) != len(self.nodes):
            done = set(order)
            cyclic = [n.label for i, n in enumerate(self.nodes) if i not in done]
            raise VerifyError(f"graph @{self.name}: cycle through {', '.join(cyclic[:5])}")
        self.nodes = [self.nodes[i] for i in order]

    # ----- queries ------------------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        yield from self.constants.values()
        for n in self.nodes:
            yield from n.outputs

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(f"graph @{self.name} has no value %{name}")

    def nodes_of(self, *ops: str) -> list[Node]:
        return [n for n in self.nodes if n.op in ops]

    def constant(self, value: Value) -> np.ndarray | None:
        return value.data

    def parameter_count(self) -> int:
        return sum(int(v.data.size) for v in self.constants.values() if v.data is not None)

    def to_networkx(self) -> nx.MultiDiGraph:
        """A networkx view: one vertex per node (keyed by the node object), edges labelled by value."""
        import networkx as nx

        g = nx.MultiDiGraph()
        for n in self.nodes:
            g.add_node(n, op=n.op)
        for n in self.nodes:
            for i, v in enumerate(n.inputs):
                if v.producer is not None:
                    g.add_edge(v.producer, n, value=v.name, index=i)
        return g

    def verify(self) -> None:
        from lwc.ir.verify import verify

        verify(self)

    def copy(self) -> Graph:
        """A deep copy of the structure; constant payloads are shared (they are read-only)."""
        g = Graph(self.name)
        vmap: dict[int, Value] = {}
        for v in self.inputs:
            nv = Value(v.name, v.type)
            g.inputs.append(nv)
            g._names.add(v.name)
            vmap[id(v)] = nv
        for k, v in self.constants.items():
            nv = Value(v.name, v.type, data=v.data)
            g.constants[k] = nv
            g._names.add(v.name)
            vmap[id(v)] = nv
        for n in self.nodes:
            outs = [Value(o.name, o.type) for o in n.outputs]
            for o, no in zip(n.outputs, outs):
                vmap[id(o)] = no
                g._names.add(o.name)
            g.nodes.append(Node(n.op, [vmap[id(v)] for v in n.inputs], outs, n.attrs, n.name))
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    def summary(self) -> str:
        return f"graph @{self.name}: {len(self.nodes)} nodes, {self.parameter_count()} parameters"

    def __repr__(self) -> str:
        return f"<Graph @{self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes>"


def _sanitize(name: str) -> str:
    """Names must fit the textual IR's ``%name`` token: letters, digits, ``_``, ``.`` and ``-``."""
    out = "".join(c if (c.isascii() and (c.isalnum() or c in "_.-")) else "_" for c in name)
    if out and not (out[0].isalpha() or out[0] == "_"):
        out = "_" + out
    return out


def iter_uses(values: Iterable[Value]) -> Iterator[Use]:
    for v in values:
        yield from v.uses
