"""``python -m training CONFIG`` from a checkout (same as ``learn2hop train``)."""

import sys

from .run import main

sys.exit(main())
