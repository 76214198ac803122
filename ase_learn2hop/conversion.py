"""The one mapping between ASE's `Atoms` and the core's `systems.System`.

Used by `LearnedHopOptimizer`, the command line and the benchmark alike:

- `system_from_atoms`: the `System` behind atoms whose calculator is one of ours
  (`LennardJones`, `Gupta`, `StillingerWeber`), else ``None``;
- `atoms_from_system`: `Atoms` of a system at given positions (cell and pbc for
  periodic systems);
- `calculator_for`: our ASE calculator of a system;
- `generic_context`, `calculator_energy_fn`: what the
  core needs to search atoms under any other ASE calculator (the generic path).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms

from ase_learn2hop import calculators, systems
from ase_learn2hop.precision import float64


def system_from_atoms(atoms: Atoms) -> systems.System | None:
    """The `systems.System` of ``atoms`` when its calculator is one of ours.

    Raises:
        calculators.CalculatorInputError: the atoms do not suit the calculator
            (unknown element, unsupported cell, ...).
    """
    calc = atoms.calc
    if not isinstance(calc, calculators.JaxCalculator):
        return None
    calc.check_atoms(atoms)
    if isinstance(calc, calculators.LennardJones):
        return systems.lennard_jones_system(len(atoms))
    if isinstance(calc, calculators.Gupta):
        return systems.gupta_system(
            calc.parameter_set.name, atoms.get_chemical_symbols()
        )
    if isinstance(calc, calculators.StillingerWeber):
        return systems.silicon_system(
            len(atoms), geometry=calculators.geometry_from_atoms(atoms)
        )
    return None


def atoms_from_system(system: systems.System, positions: np.ndarray) -> Atoms:
    """`Atoms` of ``system`` at ``positions`` ``[n_atoms, 3]`` (no calculator)."""
    geometry = system.context.geometry
    cell = geometry.cell_matrix
    return Atoms(
        system.symbols,
        positions=np.asarray(positions),
        cell=cell,
        pbc=cell is not None,
    )


def calculator_for(system: systems.System) -> calculators.JaxCalculator:
    """Our ASE calculator of ``system`` (same potential and parameters)."""
    if system.potential == "lj":
        return calculators.LennardJones()
    if system.potential == "sw":
        return calculators.StillingerWeber()
    if system.potential == "gupta":
        return calculators.Gupta(system=system.family.partition(":")[2])
    raise ValueError(f"no calculator for potential {system.potential!r}")


def calculator_energy_fn(atoms: Atoms):
    """``energy_fn(positions [n, 3], parameters) -> energy`` through ``atoms.calc``.

    The generic path's potential: a ``jax.pure_callback`` into the user's ASE
    calculator, with the forces as its derivative (``custom_jvp``), so that
    ``jax.value_and_grad`` costs one calculator call. A calculator that fails or
    returns non-finite numbers gives an infinite energy (the search then treats
    the structure as diverged).
    """
    probe = atoms.copy()
    probe.calc = atoms.calc
    n_atoms = len(atoms)

    def energy_and_gradient(positions):
        probe.set_positions(np.asarray(positions, dtype=float))
        try:
            energy = float(probe.get_potential_energy())
            gradient = -np.asarray(probe.get_forces(), dtype=float)
        except (ValueError, FloatingPointError, RuntimeError):
            return np.float64(np.inf), np.zeros((n_atoms, 3))
        if not (np.isfinite(energy) and np.all(np.isfinite(gradient))):
            return np.float64(np.inf), np.zeros((n_atoms, 3))
        return np.float64(energy), gradient

    def call(positions):
        shapes = (
            jax.ShapeDtypeStruct((), positions.dtype),
            jax.ShapeDtypeStruct((n_atoms, 3), positions.dtype),
        )
        return jax.pure_callback(
            energy_and_gradient, shapes, positions, vmap_method="sequential"
        )

    @functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
    def energy_fn(positions, parameters=None):
        return call(positions)[0]

    @energy_fn.defjvp
    def energy_jvp(parameters, primals, tangents):
        energy, gradient = call(primals[0])
        return energy, jnp.vdot(gradient, tangents[0])

    return energy_fn


def median_nearest_neighbour_distance(positions: np.ndarray, geometry) -> float:
    """Median over atoms of the distance to the nearest other atom: the length
    scale of the learned step when the potential is unknown (length units)."""
    with float64():
        difference = np.asarray(geometry.pair_displacements(jnp.asarray(positions)))
    distances = np.linalg.norm(difference, axis=-1)
    np.fill_diagonal(distances, np.inf)
    return float(np.median(distances.min(axis=1)))


def generic_context(atoms: Atoms, length_scale: float | None) -> systems.StructureContext:
    """The `StructureContext` of atoms under a calculator that is not ours: species
    by atomic number, no species descriptors, the given length scale or the
    median nearest-neighbour distance."""
    if atoms.pbc.any() and not atoms.pbc.all():
        raise ValueError(
            "partly periodic cells (slabs, wires) are not supported: use full "
            "periodicity or none"
        )
    geometry = calculators.geometry_from_atoms(atoms)
    numbers = atoms.get_atomic_numbers()
    kinds = {z: index for index, z in enumerate(sorted(set(numbers)))}
    species = np.array([kinds[z] for z in numbers], dtype=np.int32)
    if length_scale is None:
        length_scale = median_nearest_neighbour_distance(atoms.get_positions(), geometry)
    return systems.StructureContext(
        species=jnp.asarray(species),
        species_descriptors=jnp.zeros((len(atoms), systems.N_SPECIES_DESCRIPTORS)),
        length_scale=jnp.asarray(length_scale),
        geometry=geometry,
    )
