"""``python -m bullflow``: the ``bullflow`` command (see :mod:`bullflow.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
