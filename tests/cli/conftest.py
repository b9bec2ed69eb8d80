"""Fixtures for CLI tests (helpers live in ``cli_helpers``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cli_helpers import Result

from lwc.cli import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("info", "zoo:mlp")`` runs ``lwc`` in this process and captures its output."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run
