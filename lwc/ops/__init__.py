"""Built-in op families. Importing this package registers them all with ``lwc.ops.registry``."""

from lwc.ops import conv, elementwise  # noqa: F401
from lwc.ops.registry import Attr, Cost, Op, get_op, register_op, registered_ops

__all__ = ["Attr", "Cost", "Op", "get_op", "register_op", "registered_ops"]
