"""Reading ONNX files as untrusted input: protobuf parsing, external data and tensor payloads.

Everything that can go wrong with a file (missing, truncated, malformed, a tensor whose declared
size disagrees with its payload, external data pointing outside the model's folder, a tensor too
large to be plausible) becomes a one-line ``ModelFormatError`` naming the file, before any large
allocation is made.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from lwc.errors import ModelFormatError, UnsupportedOpError
from lwc.ir.types import DType

MAX_TENSOR_BYTES = 4 << 30
"""Largest single tensor we agree to materialise (4 GiB); anything bigger is treated as hostile."""

ONNX_TO_DTYPE: dict[int, DType] = {
    TensorProto.FLOAT: DType.F32,
    TensorProto.DOUBLE: DType.F64,
    TensorProto.FLOAT16: DType.F16,
    TensorProto.INT64: DType.I64,
    TensorProto.INT32: DType.I32,
    TensorProto.INT16: DType.I16,
    TensorProto.INT8: DType.I8,
    TensorProto.UINT8: DType.U8,
    TensorProto.BOOL: DType.BOOL,
}
DTYPE_TO_ONNX = {v: k for k, v in ONNX_TO_DTYPE.items()}


def lwc_dtype(elem_type: int, where: str) -> DType:
    """The lwc dtype of an ONNX element type, or ``UnsupportedOpError`` naming it."""
    if (dt := ONNX_TO_DTYPE.get(elem_type)) is None:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() \
            else str(elem_type)
        raise UnsupportedOpError(f"{where}: element type {name} is not supported; lwc supports "
                                 + ", ".join(TensorProto.DataType.Name(k) for k in ONNX_TO_DTYPE))
    return dt


def read_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Parse a model file without following its external data (the importer checks that)."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"{p}: no such model file")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # DecodeError, RuntimeWarning-as-error, OSError...
        raise ModelFormatError(f"{p}: not a valid ONNX protobuf ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else 'truncated?'})") from None
    if not model.HasField("graph"):
        raise ModelFormatError(f"{p}: the model has no graph (truncated or not an ONNX model?)")
    return model


def _expected_bytes(t: TensorProto, where: str) -> tuple[DType, int]:
    dt = lwc_dtype(t.data_type, where)
    if any(d < 0 for d in t.dims):
        raise ModelFormatError(f"{where}: tensor {t.name!r} has negative dims {list(t.dims)}")
    n = 1
    for d in t.dims:
        n *= int(d)
        if n * dt.itemsize > MAX_TENSOR_BYTES:
            raise ModelFormatError(f"{where}: tensor {t.name!r} of shape {list(t.dims)} is larger "
                                   f"than the {MAX_TENSOR_BYTES >> 30} GiB limit")
    return dt, n * dt.itemsize


def _external_bytes(t: TensorProto, base_dir: Path | None, where: str, size: int) -> bytes:
    info = {e.key: e.value for e in t.external_data}
    loc = info.get("location", "")
    if base_dir is None:
        raise ModelFormatError(f"{where}: tensor {t.name!r} uses external data but the model has "
                               "no folder to read it from")
    rel = Path(loc)
    if not loc or rel.is_absolute() or ".." in rel.parts or loc.startswith(("/", "\\")):
        raise ModelFormatError(f"{where}: tensor {t.name!r} external data location {loc!r} must be "
                               "a relative path inside the model's folder")
    root = base_dir.resolve()
    target = (root / rel).resolve()
    if root not in target.parents or not target.is_file():
        raise ModelFormatError(f"{where}: tensor {t.name!r} external data {loc!r} is missing or "
                               "resolves outside the model's folder")
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else size
    except ValueError:
        raise ModelFormatError(f"{where}: tensor {t.name!r} has a non-numeric offset/length") \
            from None
    if length != size or offset < 0:
        raise ModelFormatError(f"{where}: tensor {t.name!r} declares {length} bytes of external "
                               f"data at offset {offset}; its shape needs {size}")
    if target.stat().st_size < offset + size:
        raise ModelFormatError(f"{where}: external data file {loc!r} is shorter than "
                               f"{offset + size} bytes (tensor {t.name!r})")
    with open(target, "rb") as f:
        f.seek(offset)
        return f.read(size)


def tensor_to_numpy(t: TensorProto, base_dir: Path | None, where: str) -> np.ndarray:
    """A checked copy of a tensor's payload (inline or external) as a numpy array."""
    dt, size = _expected_bytes(t, where)
    if t.data_location == TensorProto.EXTERNAL:
        raw = _external_bytes(t, base_dir, where, size)
        arr = np.frombuffer(raw, dtype=dt.numpy.newbyteorder("<")).astype(dt.numpy)
        return arr.reshape(tuple(t.dims))
    if t.HasField("raw_data") and len(t.raw_data) != size:
        raise ModelFormatError(f"{where}: tensor {t.name!r} of shape {list(t.dims)} holds "
                               f"{len(t.raw_data)} bytes, expected {size}")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:
        raise ModelFormatError(f"{where}: tensor {t.name!r} is malformed ({e})") from None
    if arr.shape != tuple(t.dims):
        raise ModelFormatError(f"{where}: tensor {t.name!r} payload does not fit shape "
                               f"{list(t.dims)}")
    return np.asarray(arr, dtype=dt.numpy)


def check_leniently(model: onnx.ModelProto) -> str | None:
    """Run ``onnx.checker`` and return its complaint (None if happy); never raises."""
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None
