"""The thread-pool runtime (``runtime.c``): built once per machine with the system C compiler
into the cache and loaded process-wide, so JIT-compiled drivers can call ``lwc_parallel_for``.
Without a C compiler a serial ``lwc_parallel_for`` written in LLVM IR stands in."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from lwc.backends.llvm.codegen import cache_dir, new_module
from lwc.backends.llvm.target import Target

SOURCE = Path(__file__).with_name("runtime.c")


def c_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


@functools.cache
def load_runtime() -> ctypes.CDLL | None:
    """Build (once) and load the pool; None when there is no C compiler."""
    cc = c_compiler()
    if cc is None:
        return None
    digest = hashlib.sha1(SOURCE.read_bytes()).hexdigest()[:12]
    lib = cache_dir() / f"runtime-{digest}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=lib.parent, suffix=".so")
        os.close(fd)
        subprocess.run([cc, "-O2", "-fPIC", "-shared", "-o", tmp, str(SOURCE), "-lpthread"],
                       check=True, capture_output=True)
        os.replace(tmp, lib)
    return ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)


def serial_runtime(target: Target) -> str:
    """LLVM IR of a ``lwc_parallel_for`` that runs everything on the caller: fn(args, 0, n)."""
    m = new_module("lwc_serial_runtime", target)
    head = str(m)
    return head + """
define void @lwc_parallel_for(ptr %fn, ptr %args, i64 %n) {
  call void %fn(ptr %args, i64 0, i64 %n)
  ret void
}
define void @lwc_set_num_threads(i32 %n) {
  ret void
}
define i32 @lwc_get_num_threads() {
  ret i32 1
}
"""
