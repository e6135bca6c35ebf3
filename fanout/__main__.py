"""``python -m fanout`` is the ``fanout`` command."""

import sys

from fanout.cli import main

sys.exit(main())
