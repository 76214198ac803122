"""A second process pays (almost) no compilation with the persistent cache.

Runs the same search (construct + 1000 learned steps) in three fresh
processes: cache off, cache on (cold), cache on (warm), in a fresh cache
folder, and prints the seconds of each, the imports before it, and JAX's own
compile-side time (its logged tracing, lowering and XLA compilation or cache
loading, ``JAX_LOG_COMPILES=1`` in every process). Two searches: LJ13 with the
defaults (one start, learned basin hopping) and the paper's protocol with
four starts (split over the devices). Run:

    python benchmarks/compilation_cache.py > benchmarks/results/compilation_cache.txt
"""

import os
import re
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
LearnedHopOptimizer(atoms, logfile=None, **{options!r}).run(fmax=0.05, steps=1000)
ended = time.perf_counter()
print(f"{{ended - started:.2f}} {{atoms.get_potential_energy():.6f}} {{started - imported:.2f}}")
"""
SEARCHES = {
    "LJ13, defaults (hopping, 1 start)": {},
    "LJ13, paper protocol, 4 starts": {"protocol": "paper", "n_starts": 4},
}
#: What JAX logs for each program it traces, lowers and compiles (or loads).
COMPILE_SIDE = re.compile(
    r"Finished (tracing|jaxpr to MLIR module conversion|"
    r"XLA compilation of) .* in ([0-9.e-]+) s"
)


def compile_side_seconds(log: str) -> float:
    return sum(float(match[2]) for match in COMPILE_SIDE.finditer(log))


def main() -> None:
    structure = os.path.join(
        os.path.dirname(__file__), "..", "tests", "data", "lj13_global_minimum.xyz"
    )
    for name, options in SEARCHES.items():
        print(name)
        script = RUN.format(structure=structure, options=options)
        with tempfile.TemporaryDirectory() as cache:
            for label, switch in (("off", "0"), ("on, cold", "1"), ("on, warm", "1")):
                env = {**os.environ, "LEARN2HOP_CACHE": cache, "JAX_LOG_COMPILES": "1"}
                env["LEARN2HOP_COMPILATION_CACHE"] = switch
                done = subprocess.run(
                    [sys.executable, "-c", script],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=True,
                )
                out = done.stdout.split()
                print(
                    f"  cache {label:9s}: construct + 1000 learned steps {out[0]} s, "
                    f"JAX compile-side {compile_side_seconds(done.stderr):.2f} s, "
                    f"energy {out[1]} (imports before it {out[2]} s)"
                )


if __name__ == "__main__":
    main()
