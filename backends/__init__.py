"""Code generators. ``compile(graph, target=...)`` dispatches to a backend package, imported
lazily so that importing lwc never loads LLVM (or TVM)."""

from __future__ import annotations

from typing import Any

from lwc.errors import LwcError

TARGETS = ("llvm",)


def compile(graph: Any, target: str = "llvm", **kw: Any) -> Any:
    """Compile ``graph`` for ``target``; keyword arguments go to the backend's ``compile``."""
    if target == "llvm":
        from lwc.backends.llvm import compile as llvm_compile

        return llvm_compile(graph, **kw)
    raise LwcError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}")
