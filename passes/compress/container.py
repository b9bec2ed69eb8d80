"""The ``.lwcz`` compressed model container (format documented in docs/compression.md).

Layout, all integers little-endian::

    b"LWCZ"  u8 version(=1)  u8 flags(=0)  u16 reserved(=0)  u32 header_len
    header   zlib(JSON {"graph": <textual IR>, "tensors": [<record>, ...]})
    payload  the blobs of every record, concatenated in record order

A record names a constant of the graph and says how it is stored (``kind``):

- ``raw``: the array's bytes, zlib-compressed;
- ``dc``: Deep Compression — a codebook (entry 0 is exact zero; float16 when every centroid is
  exactly representable in it, else float32), Huffman-coded codebook indices and Huffman-coded
  relative gaps (``sparse_codec``; no gap stream for a dense tensor, ``gap_bits`` 0);
- ``binary``: BMXNet-style bit packing, 1 bit per weight (1 = +1) and a float32 alpha per
  output filter: weight = alpha[o] * (+1 | -1); with ``"alpha": false`` the record holds the
  bits only and decodes to +-1 (an ``xnor_conv``/``xnor_gemm`` weight, whose alpha is its own
  operand);
- ``int8``: int8 values with a float32 scale per output channel: weight = scale[o] * q.

Every field read from a file is checked before it is used: sizes against the file, element
counts against a limit, codes against their tables.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bitarray import bitarray

from lwc.errors import ModelFormatError
from lwc.fileio import atomic_write_bytes
from lwc.ir.core import Graph
from lwc.ir.types import DType
from lwc.passes.compress.sparse_codec import (
    HuffmanStream,
    SparseEntries,
    from_entries,
    huffman_decode,
    huffman_encode,
    to_entries,
)

MAGIC = b"LWCZ"
VERSION = 1
MAX_ELEMENTS = 1 << 31
_PREFIX = struct.Struct("<4sBBHI")


@dataclass
class Encoded:
    """One stored tensor: JSON-able metadata plus binary blobs."""

    meta: dict[str, Any]
    blobs: list[bytes] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.blobs)


# ---- encoders ---------------------------------------------------------------------------------
def encode_raw(name: str, arr: np.ndarray) -> Encoded:
    a = np.ascontiguousarray(arr)
    little = a.astype(a.dtype.newbyteorder("<")).tobytes()
    return Encoded({"name": name, "kind": "raw", "dtype": str(DType.from_numpy(a.dtype)),
                    "shape": list(a.shape)}, [zlib.compress(little, 9)])


def encode_dc(name: str, codebook: np.ndarray, index: np.ndarray, gap_bits: int) -> Encoded:
    """``index``: codebook index per weight (0 = pruned/zero), shape of the weight.
    ``gap_bits`` 0 stores a dense tensor: one index per weight and no gap stream."""
    if gap_bits == 0:
        flat = index.ravel().astype(np.int64)
        entries = SparseEntries(np.zeros(len(flat), np.int64), flat, len(flat))
    else:
        entries = to_entries(index.ravel(), gap_bits)
    idx_s, gap_s = huffman_encode(entries.symbols), huffman_encode(entries.gaps)
    cb = np.asarray(codebook, np.float32)
    half = bool(np.array_equal(cb.astype(np.float16).astype(np.float32), cb))
    meta = {"name": name, "kind": "dc", "dtype": "f32", "shape": list(index.shape),
            "gap_bits": gap_bits, "entries": len(entries.gaps), "idx": _table(idx_s),
            "codebook": "f16" if half else "f32"}
    blobs = [cb.astype("<f2" if half else "<f4").tobytes(), idx_s.bits.tobytes()]
    if gap_bits:
        meta["gap"] = _table(gap_s)
        blobs.append(gap_s.bits.tobytes())
    return Encoded(meta, blobs)


def encode_binary(name: str, signs: np.ndarray, alpha: np.ndarray | None) -> Encoded:
    """``signs``: +1/-1 per weight (axis 0 = output filters); ``alpha``: one scale per filter,
    or None for a tensor of plain +-1 (its alphas, if any, live in their own constant)."""
    bits = bitarray((np.asarray(signs).ravel() > 0).tolist())
    meta = {"name": name, "kind": "binary", "dtype": "f32", "shape": list(signs.shape),
            "nbits": len(bits)}
    if alpha is None:
        return Encoded({**meta, "alpha": False}, [bits.tobytes()])
    return Encoded(meta, [bits.tobytes(), np.asarray(alpha, "<f4").tobytes()])


def encode_int8(name: str, q: np.ndarray, scale: np.ndarray) -> Encoded:
    return Encoded({"name": name, "kind": "int8", "dtype": "f32", "shape": list(q.shape)},
                   [np.asarray(q, np.int8).tobytes(), np.asarray(scale, "<f4").tobytes()])


def _table(s: HuffmanStream) -> dict[str, Any]:
    return {"count": s.count, "symbols": s.symbols, "n": s.n, "nbits": len(s.bits)}


# ---- decoders ---------------------------------------------------------------------------------
def _numel(meta: Mapping[str, Any]) -> int:
    shape = meta.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ModelFormatError(f"tensor {meta.get('name')!r}: bad shape {shape!r}")
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if n > MAX_ELEMENTS:
        raise ModelFormatError(f"tensor {meta.get('name')!r}: {n} elements exceeds the limit")
    return n


def _stream(table: Mapping[str, Any], blob: bytes, what: str) -> HuffmanStream:
    try:
        count, symbols = [int(c) for c in table["count"]], [int(s) for s in table["symbols"]]
        n, nbits = int(table["n"]), int(table["nbits"])
    except (KeyError, TypeError, ValueError):
        raise ModelFormatError(f"{what}: malformed Huffman table") from None
    if nbits > 8 * len(blob) or n < 0 or n > MAX_ELEMENTS:
        raise ModelFormatError(f"{what}: Huffman stream is shorter than its declared length")
    bits = bitarray()
    bits.frombytes(blob)
    del bits[nbits:]
    return HuffmanStream(count, symbols, bits, n)


def decode(meta: Mapping[str, Any], blobs: list[bytes]) -> np.ndarray:
    name, kind = meta.get("name"), meta.get("kind")
    n = _numel(meta)
    shape = tuple(meta["shape"])
    where = f"tensor {name!r} ({kind})"
    try:
        if kind == "raw":
            dt = DType(meta["dtype"]).numpy.newbyteorder("<")
            raw = zlib.decompress(blobs[0], bufsize=max(n * dt.itemsize, 1))
            if len(raw) != n * dt.itemsize:
                raise ModelFormatError(f"{where}: holds {len(raw)} bytes, expected {n * dt.itemsize}")
            return np.frombuffer(raw, dt).reshape(shape).astype(dt.newbyteorder("="))
        if kind == "dc":
            cb_type = {"f16": "<f2", "f32": "<f4"}[meta.get("codebook", "f32")]
            codebook = np.frombuffer(blobs[0], cb_type).astype(np.float32)
            idx = huffman_decode(_stream(meta["idx"], blobs[1], where))
            gaps = (np.zeros(len(idx), np.int64) if int(meta["gap_bits"]) == 0 else
                    huffman_decode(_stream(meta["gap"], blobs[2], where)))
            if len(idx) != len(gaps) or len(idx) != int(meta["entries"]):
                raise ModelFormatError(f"{where}: index and gap streams disagree in length")
            if len(idx) and (idx.max() >= len(codebook) or idx.min() < 0):
                raise ModelFormatError(f"{where}: codebook index out of range")
            symbols = from_entries(SparseEntries(gaps, idx, n))
            return codebook[symbols].reshape(shape)
        if kind == "binary":
            if int(meta["nbits"]) != n or len(blobs[0]) * 8 < n:
                raise ModelFormatError(f"{where}: bit count does not match the shape")
            bits = bitarray()
            bits.frombytes(blobs[0])
            signs = np.where(np.frombuffer(bits[:n].unpack(), np.uint8) > 0, 1.0, -1.0)
            if meta.get("alpha", True) is False:
                return signs.reshape(shape).astype(np.float32)
            alpha = np.frombuffer(blobs[1], "<f4").astype(np.float32)
            if len(alpha) != shape[0]:
                raise ModelFormatError(f"{where}: {len(alpha)} alphas for {shape[0]} filters")
            return (signs.reshape(shape) * alpha.reshape((-1,) + (1,) * (len(shape) - 1))
                    ).astype(np.float32)
        if kind == "int8":
            q = np.frombuffer(blobs[0], np.int8)
            scale = np.frombuffer(blobs[1], "<f4").astype(np.float32)
            if len(q) != n or len(scale) != shape[0]:
                raise ModelFormatError(f"{where}: sizes do not match the shape")
            return (q.reshape(shape).astype(np.float32) *
                    scale.reshape((-1,) + (1,) * (len(shape) - 1)))
    except (KeyError, ValueError, TypeError, IndexError, zlib.error) as e:
        raise ModelFormatError(f"{where}: corrupt record ({e})") from None
    raise ModelFormatError(f"{where}: unknown storage kind")


# ---- files ------------------------------------------------------------------------------------
def write_lwcz(path: str | Path, graph: Graph, records: Mapping[str, Encoded]) -> int:
    """Write ``graph`` with its constants stored as ``records`` (raw for any not given).
    Returns the file size in bytes."""
    from lwc.ir.printer import print_graph

    encoded = []
    for name, v in graph.constants.items():
        if v.data is None or v.data.size <= 16:
            continue  # small constants are inlined into the text by the printer
        encoded.append(records.get(name) or encode_raw(name, v.data))
    header = {"graph": print_graph(graph),
              "tensors": [dict(e.meta, blobs=[len(b) for b in e.blobs]) for e in encoded]}
    head = zlib.compress(json.dumps(header, separators=(",", ":")).encode(), 9)
    data = (_PREFIX.pack(MAGIC, VERSION, 0, 0, len(head)) + head +
            b"".join(b for e in encoded for b in e.blobs))
    atomic_write_bytes(path, data)
    return len(data)


def read_lwcz(path: str | Path) -> Graph:
    from lwc.ir.parser import parse_graph

    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"{p}: no such file")
    data = p.read_bytes()
    if len(data) < _PREFIX.size:
        raise ModelFormatError(f"{p}: too short to be an .lwcz file")
    magic, version, _flags, _res, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ModelFormatError(f"{p}: not an .lwcz file (bad magic)")
    if version != VERSION:
        raise ModelFormatError(f"{p}: .lwcz version {version} is not supported (only {VERSION})")
    if _PREFIX.size + head_len > len(data):
        raise ModelFormatError(f"{p}: truncated header")
    try:
        header = json.loads(zlib.decompress(data[_PREFIX.size:_PREFIX.size + head_len]))
        tensors, text = header["tensors"], header["graph"]
        if not isinstance(tensors, list) or not isinstance(text, str):
            raise TypeError("bad header types")
    except (zlib.error, ValueError, KeyError, TypeError) as e:
        raise ModelFormatError(f"{p}: corrupt header ({e})") from None
    offset = _PREFIX.size + head_len
    weights: dict[str, np.ndarray] = {}
    for meta in tensors:
        lengths = meta.get("blobs") if isinstance(meta, dict) else None
        if not isinstance(lengths, list) or not all(isinstance(n, int) and n >= 0 for n in lengths):
            raise ModelFormatError(f"{p}: corrupt tensor record")
        if offset + sum(lengths) > len(data):
            raise ModelFormatError(f"{p}: truncated payload in tensor {meta.get('name')!r}")
        blobs = []
        for n in lengths:
            blobs.append(data[offset:offset + n])
            offset += n
        try:
            weights[str(meta.get("name"))] = decode(meta, blobs)
        except ModelFormatError as e:
            raise ModelFormatError(f"{p}: {e}") from None
    if offset != len(data):
        raise ModelFormatError(f"{p}: {len(data) - offset} trailing bytes after the payload")
    return parse_graph(text, filename=str(p), weights=weights)
