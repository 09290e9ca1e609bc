"""``python -m tinyr1 <command>``: the same as the ``tinyr1`` script (used by ``accelerate launch -m tinyr1``)."""

import sys

from tinyr1.cli import main

sys.exit(main())
