"""The IR core: types, values, nodes, graphs and the verifier. Import from here, not submodules."""

from lwc.ir.core import Graph, Node, Use, Value
from lwc.ir.types import Dim, DType, QuantParams, TensorType, broadcast_shapes
from lwc.ir.verify import verify

__all__ = ["Dim", "DType", "Graph", "Node", "QuantParams", "TensorType", "Use", "Value",
           "broadcast_shapes", "verify"]
