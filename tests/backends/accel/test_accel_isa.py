"""The ISA: binary encode/decode and assembly listing round-trips (hypothesis over every opcode),
malformed binaries and listings rejected with one-line errors, and whole programs surviving
save/load with identical behaviour."""

from __future__ import annotations

import re

import numpy as np
import pytest
from accel_helpers import shared_input, shared_qmodel
from hypothesis import given
from hypothesis import strategies as st

from lwc.backends.accel import compile_accel, simulate
from lwc.backends.accel.assembler import assemble, disassemble, format_instr, parse_instr
from lwc.backends.accel.isa import INSTR_BYTES, MAGIC, SPECS, Dep, Instr, IsaError, decode, encode
from lwc.backends.accel.program import Program

i32 = st.integers(-(2**31), 2**31 - 1)


@st.composite
def instrs(draw) -> Instr:
    spec = draw(st.sampled_from(SPECS))
    args = tuple(draw(st.lists(i32, min_size=len(spec.fields), max_size=len(spec.fields))))
    return Instr(spec.mnemonic, args, Dep(draw(st.integers(0, 15))),
                 draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 255)))


@given(st.lists(instrs(), max_size=40))
def test_encode_decode_round_trip(prog: list[Instr]) -> None:
    blob = encode(prog)
    assert len(blob) == len(MAGIC) + 4 + INSTR_BYTES * len(prog)
    assert decode(blob) == prog


@given(instrs())
def test_assembly_line_round_trip(ins: Instr) -> None:
    line = format_instr(ins)
    assert "\n" not in line
    assert parse_instr(line) == ins


def test_every_opcode_has_a_distinct_code_and_mnemonic() -> None:
    assert len({s.code for s in SPECS}) == len(SPECS)
    assert len({s.mnemonic for s in SPECS}) == len(SPECS)
    assert all(len(s.fields) <= 9 for s in SPECS)


@pytest.mark.parametrize("blob, fragment", [
    (b"NOPE" + bytes(8), "bad magic"),
    (MAGIC + (2).to_bytes(4, "little") + bytes(INSTR_BYTES), "expected 2 x"),
    (MAGIC + (1).to_bytes(4, "little") + bytes([99]) + bytes(INSTR_BYTES - 1), "unknown opcode 99"),
])
def test_decode_rejects_malformed_binaries(blob: bytes, fragment: str) -> None:
    with pytest.raises(IsaError, match=fragment):
        decode(blob)


def test_encode_rejects_out_of_range_fields() -> None:
    with pytest.raises(IsaError, match="cannot encode"):
        encode([Instr("nop", (), core=300)])


@pytest.mark.parametrize("text, fragment", [
    ("frobnicate a=1", "x.lasm:1: unknown mnemonic 'frobnicate'"),
    ("matmul acc=0 a=0 w=0 m=1 k=1 n=1", "x.lasm:1: matmul lacks field(s) accumulate"),
    ("sync bogus=1", "x.lasm:1: sync has no field 'bogus'"),
    ("\n\nsync @x", "x.lasm:3: bad placement"),
    ("sync +sideways", "x.lasm:1: unexpected token"),
    ("load buf=0 dst=0 dram=zz rows=1 cols=1 rstride=0 cstride=1", "not an integer"),
    (".section text", "unknown directive"),
])
def test_assemble_rejects_bad_listings(text: str, fragment: str) -> None:
    with pytest.raises(IsaError, match=re.escape(fragment)) as e:
        assemble(text, where="x.lasm")
    assert "\n" not in str(e.value)


def test_program_listing_and_sidecar_round_trip(tmp_path) -> None:
    qm = shared_qmodel("digits_lenet5")
    prog = compile_accel(qm, "edge-16x16")
    text = disassemble(prog)
    again = assemble(text)
    assert again.instrs == prog.instrs
    assert [(x.name, x.kind) for x in again.layers] == [(x.name, x.kind) for x in prog.layers]
    path = tmp_path / "p.lasm"
    prog.save(path)
    loaded = Program.load(path)
    assert loaded.instrs == prog.instrs and loaded.layers == prog.layers
    np.testing.assert_array_equal(loaded.dram_init, prog.dram_init)
    x = shared_input("digits_lenet5")
    a, b = simulate(prog, "edge-16x16", inputs=x), simulate(loaded, "edge-16x16", inputs=x)
    for k in a.outputs:
        np.testing.assert_array_equal(a.outputs[k], b.outputs[k])
    assert a.to_json()["layers"] == b.to_json()["layers"]


def test_program_load_rejects_a_corrupt_sidecar(tmp_path) -> None:
    prog = compile_accel(shared_qmodel("digits_lenet5"), "edge-16x16")
    path = tmp_path / "p.lasm"
    prog.save(path)
    (tmp_path / "p.lasm.npz").write_bytes(b"not a zip")
    with pytest.raises(Exception, match="p.lasm.npz") as e:
        Program.load(path)
    assert "\n" not in str(e.value)
