"""Ahead-of-time libraries: no allocator on the run path, and a C program linked against the
.so (built with the system compiler) reproduces the interpreter's outputs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from llvm_helpers import assert_close

import lwc
from lwc.backends.llvm import compile as llvm_compile

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler")

C_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

static void *read_all(const char *path, size_t n) {
  void *p = malloc(n);
  FILE *f = fopen(path, "rb");
  if (!f || fread(p, 1, n, f) != n) { fprintf(stderr, "cannot read %s\n", path); exit(1); }
  fclose(f);
  return p;
}

int main(int argc, char **argv) {
  void *in[1] = {read_all(argv[1], LWC_INPUT0_BYTES)};
  void *out[2] = {malloc(LWC_OUTPUT0_BYTES), malloc(LWC_OUTPUT1_BYTES)};
  void *ws = aligned_alloc(64, (LWC_WORKSPACE_SIZE + 63) / 64 * 64);
  lwc_set_num_threads(2);
  for (int rep = 0; rep < 2; rep++)
    if (lwc_run(in, out, ws) != 0) return 2;
  FILE *f = fopen(argv[2], "wb");
  fwrite(out[0], 1, LWC_OUTPUT0_BYTES, f);
  fwrite(out[1], 1, LWC_OUTPUT1_BYTES, f);
  fclose(f);
  return 0;
}
"""


def _model() -> lwc.Graph:
    rng = np.random.default_rng(7)
    g = lwc.Graph("aot")
    x = g.add_input("x", lwc.TensorType(lwc.DType.F32, (1, 3, 17, 19)))
    w = g.add_constant(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    b = g.add_constant(rng.standard_normal(8).astype(np.float32), "b")
    y = g.add_node("conv", [x, w, b], {"pads": (1, 1, 1, 1), "strides": (2, 2)}).output
    y = g.add_node("clip", [y], {"min": 0.0, "max": 6.0}).output
    p = g.add_node("global_avg_pool", [y]).output
    f = g.add_node("flatten", [p]).output
    fw = g.add_constant(rng.standard_normal((8, 5)).astype(np.float32), "fw")
    s = g.add_node("softmax", [g.add_node("gemm", [f, fw]).output]).output
    g.outputs = [s, y]
    return g


def test_shared_library_has_no_allocator_and_c_program_matches(tmp_path: Path) -> None:
    g = _model()
    lib = llvm_compile(g).save(tmp_path / "model.so")
    assert lib.exists() and (tmp_path / "model.h").exists()
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(lib)], capture_output=True,
                               text=True, check=True).stdout
    names = {line.split()[-1].split("@")[0] for line in undefined.splitlines() if line.strip()}
    assert not names & {"malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc"}, names

    (tmp_path / "main.c").write_text(C_MAIN)
    exe = tmp_path / "main"
    subprocess.run([CC, "-O1", "-o", str(exe), str(tmp_path / "main.c"), f"-I{tmp_path}",
                    str(lib), f"-Wl,-rpath,{tmp_path}"], check=True, capture_output=True)
    x = lwc.random_inputs(g, seed=8)["x"]
    x.tofile(tmp_path / "in.bin")
    subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True,
                   timeout=60)
    raw = np.fromfile(tmp_path / "out.bin", np.float32)
    ref = lwc.interpret(g, {"x": x})
    o0, o1 = (ref[v.name] for v in g.outputs)
    assert_close(raw[: o0.size].reshape(o0.shape), o0, "softmax output from C")
    assert_close(raw[o0.size:].reshape(o1.shape), o1, "conv output from C")
