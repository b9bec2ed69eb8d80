"""ONNX import and export."""
