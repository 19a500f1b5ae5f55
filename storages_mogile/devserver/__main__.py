"""``python -m storages_mogile.devserver``: see :mod:`.cli`."""

import sys

from .cli import main

sys.exit(main())
