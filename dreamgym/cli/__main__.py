"""``python -m dreamgym.cli``: the ``dreamgym`` command."""

import sys

from dreamgym.cli import main

sys.exit(main())
