"""Shared test setup: ``tests/`` on ``sys.path`` (for ``from strategies import graphs``) and the
hypothesis profiles: ``ci`` (derandomized, no deadline; chosen when the ``CI`` environment
variable is set) and ``dev`` (random, no deadline: the interpreter's first calls are slow)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import settings

_TESTS = Path(__file__).resolve().parent
if str(_TESTS) not in sys.path:
    sys.path.insert(0, str(_TESTS))

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
