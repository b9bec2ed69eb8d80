"""The .lwcz container stores every kind of record bit-exactly and refuses corrupt files."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from lwc.errors import ModelFormatError
from lwc.interp import interpret, random_inputs
from lwc.ir import DType, Graph, TensorType
from lwc.passes.compress.container import (
    decode,
    encode_binary,
    encode_dc,
    encode_int8,
    encode_raw,
    read_lwcz,
    write_lwcz,
)
from lwc.passes.compress.sharing import kmeans_share


def _mlp() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("mlp")
    x = g.add_input("input", TensorType(DType.F32, ("N", 16)))
    w1 = g.add_constant(rng.standard_normal((32, 16)).astype(np.float32), "w1")
    b1 = g.add_constant(rng.standard_normal(32).astype(np.float32), "b1")
    w2 = g.add_constant(rng.standard_normal((10, 32)).astype(np.float32), "w2")
    h = g.add_node("gemm", [x, w1, b1], {"trans_b": True, "act": "relu"}).output
    y = g.add_node("gemm", [h, w2], {"trans_b": True}, name="output").output
    g.outputs = [y]
    g.verify()
    return g


def test_records_decode_bit_exactly() -> None:
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((8, 3, 3, 3)) * (rng.random((8, 3, 3, 3)) < 0.2)).astype(np.float32)
    cb, idx = kmeans_share(w, 4, w != 0)
    for rec, want in [
        (encode_raw("a", w), w),
        (encode_dc("b", cb, idx, 3), cb[idx]),
        (encode_binary("c", np.sign(w + 0.5), np.arange(1, 9, dtype=np.float32)),
         np.where(w + 0.5 > 0, 1.0, -1.0) * np.arange(1, 9).reshape(-1, 1, 1, 1)),
        (encode_int8("d", (w * 10).astype(np.int8), np.full(8, 0.1, np.float32)),
         (w * 10).astype(np.int8).astype(np.float32) * np.float32(0.1)),
    ]:
        got = decode(rec.meta, rec.blobs)
        assert got.shape == want.shape and np.array_equal(got, want.astype(np.float32))


def test_lwcz_round_trip_runs_identically(tmp_path: Path) -> None:
    g = _mlp()
    w1 = g.constants["w1"].data
    cb, idx = kmeans_share(w1, 3, np.abs(w1) > 0.7)
    g.set_constant(g.constants["w1"], cb[idx])
    size = write_lwcz(tmp_path / "m.lwcz", g, {"w1": encode_dc("w1", cb, idx, 5)})
    assert size == (tmp_path / "m.lwcz").stat().st_size
    back = read_lwcz(tmp_path / "m.lwcz")
    x = random_inputs(g, batch=4)
    assert np.array_equal(interpret(back, x)["output"], interpret(g, x)["output"])


def _with_record(data: bytes, **changes: object) -> bytes:
    """Rewrite the first tensor record of an .lwcz file's header."""
    head_len = struct.unpack_from("<I", data, 8)[0]
    header = json.loads(zlib.decompress(data[12:12 + head_len]))
    header["tensors"][0].update(changes)
    head = zlib.compress(json.dumps(header).encode())
    return data[:8] + struct.pack("<I", len(head)) + head + data[12 + head_len:]


MUTATIONS = {
    "magic": lambda d: b"XXXX" + d[4:],
    "version": lambda d: d[:4] + bytes([99]) + d[5:],
    "truncate": lambda d: d[: len(d) - 10],
    "trailing": lambda d: d + b"\0",
    "header": lambda d: d[:12] + b"\xff" * 8 + d[20:],
    "header-length": lambda d: d[:8] + struct.pack("<I", len(d)) + d[12:],
    "huge-shape": lambda d: _with_record(d, shape=[1 << 20, 1 << 20]),
    "negative-blob": lambda d: _with_record(d, blobs=[-5]),
    "unknown-kind": lambda d: _with_record(d, kind="pickle"),
}


@pytest.mark.parametrize("mutate", sorted(MUTATIONS))
def test_corrupt_files_are_refused_with_one_line(tmp_path: Path, mutate: str) -> None:
    p = tmp_path / "m.lwcz"
    write_lwcz(p, _mlp(), {})
    p.write_bytes(MUTATIONS[mutate](p.read_bytes()))
    with pytest.raises(ModelFormatError) as e:
        read_lwcz(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
