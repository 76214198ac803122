"""A second process pays (almost) no compilation with the persistent cache.

Runs the same LJ13 search (construct + 1000 learned steps) in three fresh
processes: cache off, cache on (cold), cache on (warm), in a fresh cache folder,
and prints the seconds of each. Run:

    python benchmarks/compilation_cache.py > benchmarks/results/compilation_cache.txt
"""

import os
import subprocess
import sys
import tempfile

RUN = """
import time
imported = time.perf_counter()
import jax
jax.config.update("jax_enable_x64", True)
from ase.io import read
from ase_learn2hop import LearnedHopOptimizer
from ase_learn2hop.calculators import LennardJones
atoms = read({structure!r}); atoms.rattle(0.3, seed=1); atoms.calc = LennardJones()
started = time.perf_counter()
LearnedHopOptimizer(atoms, logfile=None).run(fmax=0.05, steps=1000)
ended = time.perf_counter()
print(f"{{ended - started:.2f}} {{atoms.get_potential_energy():.6f}} {{started - imported:.2f}}")
"""


def main() -> None:
    structure = os.path.join(
        os.path.dirname(__file__), "..", "tests", "data", "lj13_global_minimum.xyz"
    )
    with tempfile.TemporaryDirectory() as cache:
        for label, switch in (("off", "0"), ("on, cold", "1"), ("on, warm", "1")):
            env = {**os.environ, "LEARN2HOP_CACHE": cache}
            env["LEARN2HOP_COMPILATION_CACHE"] = switch
            out = subprocess.run(
                [sys.executable, "-c", RUN.format(structure=structure)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout.split()
            print(
                f"cache {label:9s}: construct + 1000 learned steps {out[0]} s, "
                f"energy {out[1]} (imports before it {out[2]} s)"
            )


if __name__ == "__main__":
    main()
