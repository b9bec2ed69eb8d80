"""The README's Python examples run as written (against a model.onnx made in a temp folder)."""

from __future__ import annotations

import re

from cli_helpers import REPO


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_readme_starts_with_make_demo_and_make_test():
    lines = [ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith("make ")]
    assert [ln.split()[1] for ln in lines[:2]] == ["demo", "test"]


def test_readme_python_examples_run(cli, tmp_path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    assert cli("convert", "zoo:mlp", "-o", "model.onnx").code == 0
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "model.lwc").is_file() and (tmp_path / "model.npz").is_file()
    assert "f32[N,8,32,32]" in capsys.readouterr().out
