"""Built-in op families. Importing this package registers them all with ``lwc.ops.registry``."""

from lwc.ops import (  # noqa: F401
    binary,
    conv,
    conv_transpose,
    elementwise,
    im2col,
    layout,
    linalg,
    norm,
    pool,
    qlinear,
    quant,
    reduce,
    tensor,
    winograd,
)
from lwc.ops.registry import Attr, Cost, Op, get_op, register_op, registered_ops

__all__ = ["Attr", "Cost", "Op", "get_op", "register_op", "registered_ops"]
