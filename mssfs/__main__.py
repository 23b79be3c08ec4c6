"""``python -m mssfs`` is the ``mssfs`` command."""

import sys

from mssfs.cli import main

sys.exit(main())
