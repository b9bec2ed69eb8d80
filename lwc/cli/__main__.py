"""``python -m lwc.cli`` is the same as the ``lwc`` console script."""

import sys

from lwc.cli import main

sys.exit(main())
