"""``python -m phasejax.cli``: the same command as ``phasejax``, started after ``import phasejax`` (so without the
console script's start-up signal cover, ``_phasejax_cli``; ``python -m _phasejax_cli`` has it)."""

import sys

from . import main

sys.exit(main())
