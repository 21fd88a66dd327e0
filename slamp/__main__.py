"""``python -m slamp ...`` is the same as the ``slamp`` command."""
import sys

from slamp.cli import main


sys.exit(main())
