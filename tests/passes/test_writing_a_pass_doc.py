"""Every ``python`` block of docs/writing-a-pass.md runs, in order, in one fresh interpreter (a
subprocess, so the doc's example passes and ops do not leak into this test session)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "writing-a-pass.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_doc_has_the_four_topics() -> None:
    text = DOC.read_text()
    for heading in ("## 2. Write a pass", "## 3. Write a pattern rewrite", "## 4. Register an op",
                    "## 6. Ship a plugin"):
        assert heading in text
    assert len(python_blocks(text)) >= 6


def test_doc_python_blocks_run(tmp_path: Path) -> None:
    blocks = python_blocks(DOC.read_text())
    script = "\n\n".join(f"# ---- block {i}\n{b}" for i, b in enumerate(blocks))
    path = tmp_path / "doc_blocks.py"
    path.write_text(script)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pass scale-weights: option factor='big' is not a valid float" in proc.stdout
    assert "did you mean scale-weights?" in proc.stdout
