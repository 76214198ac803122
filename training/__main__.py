"""``python -m ase_learn2hop.training CONFIG`` (same as ``learn2hop train``).

`run.main` switches JAX to float64 for this process.
"""

import sys

from .run import main

sys.exit(main())
