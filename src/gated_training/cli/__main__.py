"""``python -m gated_training.cli``: the same as the ``gated-training`` command."""

import sys

from gated_training.cli import main

sys.exit(main())
