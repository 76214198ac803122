"""Importing the package leaves JAX's precision alone, yet it computes in float64.

Each check runs in a fresh interpreter: this test session switched float64 on
globally (conftest.py), which would hide both a global side effect of an import
and a computation that silently falls back to float32.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.io import read

from ase_learn2hop.precision import float64, in_float64

DATA = Path(__file__).parent / "data"


def run_fresh(script: str, *arguments: str) -> dict:
    """Runs ``script`` in a new interpreter without any x64 setting; its last
    stdout line is JSON."""
    environment = {
        key: value for key, value in os.environ.items() if key != "JAX_ENABLE_X64"
    }
    environment["JAX_PLATFORMS"] = "cpu"
    completed = subprocess.run(
        [sys.executable, "-c", script, *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


IMPORTS_AND_LENNARD_JONES = """
import json, sys
import jax
import jax.numpy as jnp
from ase.io import read

import ase_learn2hop
import ase_learn2hop.calculators
import ase_learn2hop.optimizer
from ase_learn2hop.calculators import LennardJones

flags = {"after_import": bool(jax.config.jax_enable_x64)}
atoms = read(sys.argv[1])
atoms.rattle(0.01, seed=4)
atoms.calc = LennardJones()
energy = atoms.get_potential_energy()
forces = atoms.get_forces()
flags["after_calculation"] = bool(jax.config.jax_enable_x64)
print(json.dumps({
    **flags,
    "default_dtype": str(jnp.zeros(1).dtype),
    "energy": energy,
    "forces": forces.tolist(),
    "positions": atoms.get_positions().tolist(),
}))
"""


def test_import_leaves_jax_precision_alone_and_lennard_jones_is_float64():
    result = run_fresh(IMPORTS_AND_LENNARD_JONES, str(DATA / "lj13_global_minimum.xyz"))
    assert result["after_import"] is False
    assert result["after_calculation"] is False
    assert result["default_dtype"] == "float32"  # the process really is in x32

    # ASE's own Lennard-Jones in NumPy float64, our reduced units: pair minimum
    # at r = 1 (sigma = 2^(-1/6)), eps = 1, cutoff far beyond the cluster.
    atoms = read(DATA / "lj13_global_minimum.xyz")
    atoms.set_positions(np.array(result["positions"]))
    atoms.calc = AseLennardJones(sigma=2 ** (-1 / 6), epsilon=1.0, rc=1000.0)
    # float32 would be off by ~1e-5 here.
    assert result["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(result["forces"], atoms.get_forces(), atol=1e-9)


GUPTA = """
import json
import jax
from ase.cluster import Icosahedron

from ase_learn2hop.calculators import Gupta

atoms = Icosahedron("Au", 3, 4.08)
atoms.rattle(0.05, seed=1)
atoms.calc = Gupta(system="Au")
print(json.dumps({"x64": bool(jax.config.jax_enable_x64),
                  "energy": atoms.get_potential_energy()}))
"""


def test_gupta_in_a_fresh_process_equals_float64():
    # The Gupta parameters are module-level data: made as float32 arrays at
    # import (no x64 then), they would cost ~1e-6 eV on Au55.
    from ase.cluster import Icosahedron

    from ase_learn2hop.calculators import Gupta

    result = run_fresh(GUPTA)
    assert result["x64"] is False
    atoms = Icosahedron("Au", 3, 4.08)
    atoms.rattle(0.05, seed=1)
    atoms.calc = Gupta(system="Au")  # this session: global float64
    assert result["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)


def test_float64_context_and_decorator_restore_the_setting():
    import jax
    import jax.numpy as jnp

    @in_float64
    def make():
        return jnp.ones(2)

    with jax.enable_x64(False):
        assert jnp.zeros(1).dtype == jnp.float32
        with float64():
            assert jnp.zeros(1).dtype == jnp.float64
        assert jnp.zeros(1).dtype == jnp.float32
        assert make().dtype == jnp.float64
        assert make.__name__ == "make"
        assert jnp.zeros(1).dtype == jnp.float32
