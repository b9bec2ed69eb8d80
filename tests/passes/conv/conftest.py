"""Put ``tests/passes`` on ``sys.path`` so the conv-rewrite tests share ``pass_helpers``."""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parents[1])
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
