"""The one mapping between ASE's `Atoms` and the core's `systems.System`.

Used by `LearnedHopOptimizer`, the command line and the benchmark alike:

- `system_from_atoms`: the `System` behind atoms whose calculator is one of ours
  (`LennardJones`, `Gupta`, `StillingerWeber`), else ``None``;
- `atoms_from_system`: `Atoms` of a system at given positions (cell and pbc for
  periodic systems);
- `calculator_for`: our ASE calculator of a system;
- `generic_context`, `calculator_energy_fn`: what the
  core needs to search atoms under any other ASE calculator (the generic path);
- `free_coordinates`, `constrained_energy_fn`: ASE's ``FixAtoms`` and
  ``FixCartesian`` as the core sees them.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

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
        parameters = calc.lennard_jones_parameters
        if parameters is None:  # reduced units
            return systems.lennard_jones_system(len(atoms))
        system = systems.lennard_jones_system(
            len(atoms),
            sigma=float(parameters.sigma),
            epsilon=float(parameters.epsilon),
            cutoff=float(parameters.cutoff),
            onset=float(parameters.onset),
            smooth=bool(parameters.smooth),
        )
        return system._replace(symbols=tuple(atoms.get_chemical_symbols()))
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
        parameters = system.potential_parameters
        if parameters is None:  # reduced units
            return calculators.LennardJones()
        return calculators.LennardJones(
            sigma=float(parameters.sigma),
            epsilon=float(parameters.epsilon),
            rc=float(parameters.cutoff),
            ro=float(parameters.onset),
            smooth=bool(parameters.smooth),
        )
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


def generic_context(
    atoms: Atoms, length_scale: float | None
) -> systems.StructureContext:
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
        length_scale = median_nearest_neighbour_distance(
            atoms.get_positions(), geometry
        )
    return systems.StructureContext(
        species=jnp.asarray(species),
        species_descriptors=jnp.zeros((len(atoms), systems.N_SPECIES_DESCRIPTORS)),
        length_scale=jnp.asarray(length_scale),
        geometry=geometry,
        composition=systems.Composition.of(species),
    )


class UnsupportedConstraintError(ValueError):
    """A constraint the search cannot honour (only FixAtoms and FixCartesian)."""


def free_coordinates(atoms: Atoms) -> np.ndarray | None:
    """``[n_atoms, 3]`` 1.0 where a coordinate may move, 0.0 where ASE's
    ``FixAtoms`` or ``FixCartesian`` fixes it; ``None`` without constraints.

    Raises:
        UnsupportedConstraintError: any other constraint (never ignored).
    """
    from ase.constraints import FixAtoms, FixCartesian

    if not atoms.constraints:
        return None
    free = np.ones((len(atoms), 3))
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            free[constraint.index] = 0.0
        elif isinstance(constraint, FixCartesian):
            # ASE's mask is True for the fixed directions.
            free[constraint.index] *= ~np.asarray(constraint.mask, dtype=bool)
        else:
            raise UnsupportedConstraintError(
                f"LearnedHopOptimizer honours FixAtoms and FixCartesian only, not "
                f"{type(constraint).__name__}: remove it, or search without it and "
                "relax with it afterwards"
            )
    return free


class ConstrainedParameters(NamedTuple):
    """Parameters of `constrained_energy_fn`: the potential's own, the positions
    the fixed coordinates keep (``anchor``, ``[n, 3]``) and ``free`` (``[n, 3]``)."""

    potential: Any
    anchor: jax.Array
    free: jax.Array


@functools.lru_cache(maxsize=64)
def constrained_energy_fn(energy_fn):
    """``energy_fn`` evaluated with fixed coordinates held at their anchor, so
    that their gradient is exactly zero and no descent moves them."""

    def constrained(positions, parameters: ConstrainedParameters):
        held = parameters.anchor + parameters.free * (positions - parameters.anchor)
        return energy_fn(held, parameters.potential)

    return constrained


class SearchProblem(NamedTuple):
    """What the core's cycle loop needs to search ``atoms`` (see `search_problem`).

    Attributes:
        system: the `systems.System` when the calculator is one of ours, else None.
        fast: True when the energy is our JAX potential, False when it calls
            ``atoms.calc`` (the generic path).
        context: the `systems.StructureContext` (fixed coordinates in ``free``).
        energy_fn: ``energy_fn(positions, potential_parameters)``.
        potential_parameters: its parameters.
    """

    system: systems.System | None
    fast: bool
    context: systems.StructureContext
    energy_fn: Any
    potential_parameters: Any


def search_problem(
    atoms: Atoms,
    *,
    fast: bool | None = None,
    length_scale: float | None = None,
    n_starts: int = 1,
    starts: str = "harmonic",
) -> SearchProblem:
    """The `SearchProblem` of ``atoms`` and its calculator.

    Args:
        fast: force our JAX potential (True) or the user's calculator (False);
            None picks the JAX potential whenever the calculator is one of ours.
        length_scale: the learned step's length scale instead of the potential's
            (or, on the generic path, the median nearest-neighbour distance).
        n_starts, starts: the multi-start set-up (checked against the path and
            the constraints).

    Raises:
        ValueError: a set-up the search cannot honour, with the reason.
    """
    system = system_from_atoms(atoms)
    if fast and system is None:
        raise ValueError(
            "the fast path needs one of ase_learn2hop's JAX calculators "
            "(LennardJones, Gupta, StillingerWeber)"
        )
    fast = system is not None if fast is None else bool(fast)
    if n_starts > 1 and not fast:
        raise ValueError(
            "n_starts > 1 runs the starts as one batched JAX computation and needs "
            "one of ase_learn2hop's calculators (LennardJones, Gupta, StillingerWeber)"
        )
    if fast:
        context = system.context
        energy_fn, parameters = system.energy_fn, system.potential_parameters
        if length_scale is not None:
            context = context._replace(length_scale=jnp.asarray(length_scale))
    else:
        context = generic_context(atoms, length_scale)
        energy_fn, parameters = calculator_energy_fn(atoms), None
    free = free_coordinates(atoms)
    if free is not None:
        if n_starts > 1 and starts == "harmonic":
            raise ValueError(
                "harmonic starts would move fixed atoms: with FixAtoms or "
                "FixCartesian use starts='perturb' (free coordinates only)"
            )
        # Fixed coordinates neither move nor feel a gradient.
        context = context._replace(free=jnp.asarray(free))
        energy_fn = constrained_energy_fn(energy_fn)
        parameters = ConstrainedParameters(
            parameters, jnp.asarray(atoms.get_positions()), jnp.asarray(free)
        )
    return SearchProblem(system, fast, context, energy_fn, parameters)


def start_positions(
    positions: np.ndarray,
    system: systems.System | None,
    context: systems.StructureContext,
    n_starts: int,
    starts: str,
    perturbation: float,
    seed: int,
) -> np.ndarray:
    """``[n_starts, n_atoms, 3]``: the given structure, then ``n_starts - 1``
    harmonic-initialization starts of ``system`` (``starts="harmonic"``) or
    Gaussian perturbations of the free coordinates by ``perturbation`` length
    scales (``starts="perturb"``), drawn from ``seed``."""
    positions = np.asarray(positions)[None]
    extra = n_starts - 1
    if extra == 0:
        return positions
    key = jax.random.key(seed)
    if starts == "harmonic":
        others = np.asarray(systems.starting_structures(key, system, extra))
    else:
        noise = np.asarray(jax.random.normal(key, (extra,) + positions.shape[1:]))
        if context.free is not None:
            noise = noise * np.asarray(context.free)
        scale = perturbation * float(context.length_scale)
        others = positions + scale * noise
    return np.concatenate([positions, others])
