"""The example plugin under docs/examples installs with pip, and its pass then appears in the
registry, in ``lwc passes`` and runs from a pipeline string (entry-point group ``lwc.passes``)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pass_helpers import assert_same_outputs, f32, op_counts, outputs

from lwc.ir import Graph
from lwc.pass_manager import PassManager, get_pass, load_plugins

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "docs" / "examples" / "lwc-plugin-example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip-install the plugin into a private target folder (the shared venv stays clean)."""
    target = tmp_path_factory.mktemp("plugin-site")
    src = tmp_path_factory.mktemp("plugin-src") / "pkg"  # setuptools builds in-tree: use a copy
    shutil.copytree(PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
           str(target), str(src)]
    if importlib.util.find_spec("wheel") is not None:
        cmd.insert(4, "--no-build-isolation")  # offline and fast when the venv can build wheels
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(target.glob("lwc_plugin_example-*.dist-info/entry_points.txt"))
    sys.path.insert(0, str(target))
    try:
        yield target
    finally:
        sys.path.remove(str(target))


def _graph() -> Graph:
    g = Graph()
    x = g.add_input("x", f32("N", 4))
    one = g.add_constant(np.ones(4, np.float32), "one")
    zero = g.add_constant(np.zeros((), np.float32), "zero")
    y = g.add_node("mul", [one, x]).output
    y = g.add_node("add", [y, zero]).output
    g.outputs = [g.add_node("relu", [y], name="out").output]
    return g


@pytest.mark.slow
def test_plugin_pass_registers_and_runs_from_a_pipeline(site: Path) -> None:
    assert "remove-mul-one" in load_plugins(force=True)
    cls = get_pass("remove-mul-one")
    assert cls.__module__ == "lwc_plugin_example" and cls.exact
    g = _graph()
    before = outputs(g)
    PassManager("remove-mul-one{also_add_zero=true},dce").run(g)
    assert op_counts(g) == {"relu": 1}
    assert_same_outputs(before, g)
    g2 = _graph()
    PassManager("remove-mul-one").run(g2)
    assert op_counts(g2) == {"add": 1, "relu": 1}


@pytest.mark.slow
def test_plugin_pass_is_listed_by_the_cli(site: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH",
                                                                                  "")])}
    proc = subprocess.run([sys.executable, "-m", "lwc.cli", "passes"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("remove-mul-one"))
    assert "[exact" in line and "x*1" in line
    assert "also_add_zero: bool = False" in proc.stdout


def test_broken_plugin_is_logged_not_fatal(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A distribution whose entry point cannot be imported must not break lwc."""
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[lwc.passes]\nbroken = no_such_module_xyz:Pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        names = load_plugins(force=True)
    finally:
        sys.path.remove(str(tmp_path))
    assert "broken" not in names
    assert "no_such_module_xyz" in caplog.text and "failed to load" in caplog.text
    assert get_pass("dce").name == "dce"  # the registry still works
