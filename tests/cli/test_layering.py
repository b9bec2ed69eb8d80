"""The layering rule of docs/architecture.md, checked on every import statement (lazy ones too)."""

from __future__ import annotations

import ast
from pathlib import Path

from cli_helpers import REPO

CORE = ["lwc/ir", "lwc/ops", "lwc/interp.py", "lwc/cost.py", "lwc/errors.py", "lwc/fileio.py"]
ABOVE_CORE = ("lwc.frontend", "lwc.passes", "lwc.backends", "lwc.cli", "lwc.demo", "lwc.report",
              "lwc.model_io", "lwc.zoo", "lwc.train", "lwc.pass_manager", "lwc.pipeline",
              "lwc.instruments", "lwc.rewrite", "lwc.analysis")
TOOLS = ("lwc.cli", "lwc.demo")


def _files(*roots: str) -> list[Path]:
    out: list[Path] = []
    for r in roots:
        p = REPO / r
        out.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def _violations(files: list[Path], banned: tuple[str, ...]) -> list[str]:
    return [f"{f.name}:{line}: imports {mod}" for f in files for line, mod in _imports(f)
            if any(mod == b or mod.startswith(b + ".") for b in banned)]


def test_ir_core_imports_nothing_above_it():
    assert _violations(_files(*CORE), ABOVE_CORE) == []


def test_frontend_does_not_import_passes_backends_or_tools():
    assert _violations(_files("frontend"), ("lwc.passes", "lwc.backends", *TOOLS)) == []


def test_only_the_tools_import_the_cli_and_demo():
    libs = _files("lwc", "frontend", "passes", "backends")
    libs = [f for f in libs if "cli" not in f.relative_to(REPO).parts and f.name != "demo.py"]
    assert _violations(libs, TOOLS) == []


def test_checker_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from lwc.cli import main\n    import lwc.passes.graph\n")
    assert len(_violations([f], ("lwc.cli", "lwc.passes"))) >= 2
