"""ONNX converters, one module per op family; importing this package registers them."""

from lwc.frontend.onnx.ops import elementwise, nn, tensor  # noqa: F401
