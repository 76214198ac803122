"""ASE calculators around the JAX potentials (SPEC section 2).

``atoms.calc = LennardJones()`` (or ``Gupta(system="AgAu")``,
``StillingerWeber()``) gives energies and forces from `ase_learn2hop.potentials`,
with forces from ``jax.grad``. Each calculator builds the `geometry.Geometry` of
the atoms from ``atoms.cell`` and ``atoms.pbc`` (`geometry_from_atoms`) and takes
its energy function from the factories of `potentials`. The jitted
energy-and-forces function is built once per chemical system and cell, not per
position change, and is public
(`JaxCalculator.energy_and_forces_fn`) so that batched JAX code can reuse it.

Every misuse raises a `CalculatorInputError` (a ``ValueError``) whose message names
the problem: an element the potential does not cover, an unknown Gupta set, a cell
Stillinger-Weber cannot handle, non-finite positions, coincident atoms, or an
energy or force that is not finite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ase_learn2hop import geometry as geometries
from ase_learn2hop import potentials, saved_programs
from ase_learn2hop.geometry import FREE, Geometry, periodic_cell, periodic_cube
from ase_learn2hop.precision import in_float64

#: Atoms closer than this (in units of the potential's length scale) coincide.
COINCIDENCE_TOLERANCE = 1e-6


class CalculatorInputError(ValueError):
    """The atoms (or calculator settings) are outside what the potential handles."""


class UnsupportedElementError(CalculatorInputError):
    """An atom's element is not covered by the potential's parameters."""


class UnknownParameterSetError(CalculatorInputError):
    """A Gupta parameter-set name that does not exist."""


class UnsupportedCellError(CalculatorInputError):
    """Periodicity or cell shape the potential does not support."""


class NonFinitePositionsError(CalculatorInputError):
    """Positions contain NaN or inf."""


class CoincidentAtomsError(CalculatorInputError):
    """Two atoms sit on top of each other."""


class NonFiniteResultError(CalculatorInputError):
    """The computed energy or forces are NaN or inf."""


def geometry_from_atoms(atoms) -> Geometry:
    """The `geometry.Geometry` of ``atoms``.

    No periodic direction: `geometry.FREE`. Periodic in all three directions: a
    periodic cube (`geometry.periodic_cube`) when the cell is cubic, else the
    general cell (`geometry.periodic_cell`). Partial periodicity is not a
    geometry of this package: `geometry.FREE` is returned (the potentials'
    calculators reject such atoms in their `JaxCalculator.check_atoms` first).

    Raises:
        UnsupportedCellError: a fully periodic cell with degenerate vectors.
    """
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.all():
        return FREE
    cell = np.asarray(atoms.cell, dtype=float)
    edge = cell[0, 0]
    if edge > 0.0 and np.allclose(
        cell, edge * np.eye(3), rtol=0.0, atol=1e-8 * abs(edge)
    ):
        return periodic_cube(edge)
    try:
        return periodic_cell(cell)
    except ValueError as error:
        raise UnsupportedCellError(
            f"atoms.pbc is {pbc.tolist()} but the cell is unusable: {error}"
        ) from error


class _Bound(NamedTuple):
    """``positions -> energy_fn(positions, parameters)`` as a pytree whose
    ``energy_fn`` is static (the potentials' functions are cached per geometry)
    and whose ``parameters`` are traced: every calculator of the same potential
    and shapes then shares one compiled program (`_shared_checked`)."""

    energy_fn: Callable
    parameters: Any

    def __call__(self, positions: jax.Array) -> jax.Array:
        return self.energy_fn(positions, self.parameters)


jax.tree_util.register_pytree_node(
    _Bound,
    lambda bound: ((bound.parameters,), bound.energy_fn),
    lambda energy_fn, children: _Bound(energy_fn, *children),
)


def _energy_and_forces(energy, positions):
    value, gradient = jax.value_and_grad(energy)(positions)
    return value, -gradient


def _checked(energy, positions, geometry):
    # One fused call also returns the closest pair, so that coincident atoms
    # (where Gupta stays finite) are reported by name.
    value, forces = _energy_and_forces(energy, positions)
    distances = potentials.safe_pairwise_distances(positions, geometry)
    n_atoms = positions.shape[0]
    distances = jnp.where(jnp.eye(n_atoms, dtype=bool), jnp.inf, distances)
    flat_index = jnp.argmin(distances)
    closest_pair = jnp.stack(jnp.unravel_index(flat_index, distances.shape))
    return value, forces, closest_pair, distances.ravel()[flat_index]


# Saved across processes (`saved_programs`): a new process's first energy
# call then neither traces nor lowers.
_shared_energy_and_forces = saved_programs.saved_jit(_energy_and_forces)
_shared_checked = saved_programs.saved_jit(_checked, static_argnames=("geometry",))


class JaxCalculator(Calculator):
    """ASE calculator for any JAX energy function of the positions.

    Subclasses choose the energy function per chemical system and geometry
    (`make_energy_fn`) and validate the atoms (`check_atoms`); this class builds
    the geometry of the atoms (`geometry_from_atoms`), and jits
    ``positions -> (energy, -grad energy)`` once per (atomic numbers, cell, pbc)
    and caches it.

    Args:
        energy_fn: ``energy_fn(positions [n_atoms, 3]) -> scalar`` in eV (or reduced
            units); used by this base class as is (the geometry then only serves
            the coincident-atoms check). Subclasses pass ``None``.
        potential_name: short name of the potential, e.g. ``"lj"``.
        length_scale: the potential's length scale (Å, or reduced units).
        **kwargs: passed to `ase.calculators.calculator.Calculator`.

    Attributes:
        potential_name: ``"lj"``, ``"gupta"``, ``"sw"`` (or the name given).
        length_scale: length scale of the potential (SPEC 4, radial features).
        geometry: `geometry.Geometry` of the last atoms seen (`geometry.FREE`
            before any).
        box_length: periodic cube edge (Å) of the last atoms seen, ``None`` for
            free clusters and non-cubic cells.

    Example:
        >>> from ase import Atoms
        >>> from ase_learn2hop import potentials
        >>> atoms = Atoms("X2", positions=[[0, 0, 0], [0, 0, 1.0]])
        >>> energy_fn = potentials.lennard_jones()
        >>> atoms.calc = JaxCalculator(lambda positions: energy_fn(positions, None))
        >>> round(atoms.get_potential_energy(), 6)
        -1.0
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(
        self,
        energy_fn: Callable[[jax.Array], jax.Array] | None = None,
        *,
        potential_name: str = "custom",
        length_scale: float = 1.0,
        **kwargs,
    ):
        Calculator.__init__(self, **kwargs)
        self._energy_fn = energy_fn
        self.potential_name = potential_name
        self.length_scale = length_scale
        self.geometry = FREE
        self._cache_key = None
        self._energy_and_forces = None
        self._checked_energy_and_forces = None

    # Hooks for subclasses ------------------------------------------------------

    def check_atoms(self, atoms) -> None:
        """Raises a `CalculatorInputError` if the potential cannot handle ``atoms``."""

    def make_energy_fn(self, atoms) -> Callable[[jax.Array], jax.Array]:
        """``energy_fn(positions [n_atoms, 3]) -> scalar`` for this system and
        ``self.geometry`` (already set from ``atoms``)."""
        if self._energy_fn is None:
            raise NotImplementedError("JaxCalculator needs an energy_fn")
        return self._energy_fn

    @property
    def box_length(self) -> float | None:
        """Edge of the periodic cube of the last atoms seen, else ``None``."""
        return self.geometry.box_length if self.geometry.is_cube else None

    # Public API ----------------------------------------------------------------

    def energy_and_forces_fn(
        self, atoms
    ) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
        """The jitted pure function ``positions -> (energy, forces)`` for ``atoms``.

        Valid for any positions of a system with the same atomic numbers, cell and
        periodicity as ``atoms``; it does not check its inputs (the calculator
        does). ``forces`` is ``-grad energy``, ``[n_atoms, 3]``.

        Args:
            atoms: `ase.Atoms` defining the chemical system and cell.

        Returns:
            ``fn(positions [n_atoms, 3]) -> (scalar energy, [n_atoms, 3] forces)``.
        """
        self._prepare(atoms)
        return self._energy_and_forces

    # ASE -----------------------------------------------------------------------

    # float64 inside (energies to 1e-6), without the caller's global JAX config.
    @in_float64
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        Calculator.calculate(self, atoms, properties, system_changes)
        atoms = self.atoms
        positions = np.asarray(atoms.get_positions(), dtype=np.float64)
        if not np.all(np.isfinite(positions)):
            bad = np.flatnonzero(~np.all(np.isfinite(positions), axis=1))
            raise NonFinitePositionsError(
                f"{self.__class__.__name__}: positions of atom(s) {bad.tolist()} "
                "are not finite (NaN or inf)"
            )
        self._prepare(atoms)
        # One transfer of all outputs; numpy goes to the jitted function directly
        # (jnp.asarray first would cost an extra dispatch per call).
        energy, forces, closest_pair, closest_distance = jax.device_get(
            self._checked_energy_and_forces(positions)
        )
        closest_distance = float(closest_distance)
        if closest_distance < COINCIDENCE_TOLERANCE * self.length_scale:
            first, second = (int(index) for index in closest_pair)
            raise CoincidentAtomsError(
                f"{self.__class__.__name__}: atoms {first} and {second} coincide "
                f"(distance {closest_distance:.3g}); the potential is singular there"
            )
        energy = float(energy)
        forces = np.asarray(forces, dtype=np.float64)
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise NonFiniteResultError(
                f"{self.__class__.__name__}: energy {energy} or forces are not "
                f"finite (closest pair: atoms {int(closest_pair[0])} and "
                f"{int(closest_pair[1])} at distance {closest_distance:.3g})"
            )
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}

    # Internals -----------------------------------------------------------------

    def _prepare(self, atoms) -> None:
        """Validates ``atoms`` and (re)builds the jitted functions if needed."""
        cache_key = (
            atoms.get_atomic_numbers().tobytes(),
            np.asarray(atoms.cell).tobytes(),
            np.asarray(atoms.pbc).tobytes(),
        )
        if cache_key == self._cache_key:
            return
        self.check_atoms(atoms)
        self.geometry = geometry = geometry_from_atoms(atoms)
        energy_fn = self.make_energy_fn(atoms)
        if isinstance(energy_fn, _Bound):
            # Compiled once per potential, geometry and shapes, for every
            # calculator instance.
            self._energy_and_forces = functools.partial(
                _shared_energy_and_forces, energy_fn
            )
            self._checked_energy_and_forces = functools.partial(
                _shared_checked, energy_fn, geometry=geometry
            )
        else:
            self._energy_and_forces = jax.jit(
                functools.partial(_energy_and_forces, energy_fn)
            )
            self._checked_energy_and_forces = jax.jit(
                functools.partial(_checked, energy_fn, geometry=geometry)
            )
        self._cache_key = cache_key


def _require_free_cluster(calculator: JaxCalculator, atoms) -> None:
    if np.any(atoms.pbc):
        raise UnsupportedCellError(
            f"{calculator.__class__.__name__} is for free clusters, but atoms.pbc is "
            f"{atoms.pbc.tolist()}; set atoms.pbc = False"
        )


class LennardJones(JaxCalculator):
    """Lennard-Jones clusters, in reduced units or in ASE's conventions.

    - ``LennardJones()``: **reduced units**, the Cambridge Cluster Database
      convention (SPEC section 2), ``E = sum_{i<j} (1/r)^12 - 2 (1/r)^6``: eps =
      d0 = 1, no cutoff; positions in units of the pair minimum d0, energies in
      units of eps (LJ13's global minimum is -44.326801). This is *not* ASE's
      ``LennardJones()`` (sigma = 1, pair minimum at 2^(1/6), cutoff at 3).
    - Any of ``sigma``, ``epsilon``, ``rc``, ``ro``, ``smooth`` given: **ASE's
      conventions**, the energies and forces of `ase.calculators.lj.LennardJones`
      with the same arguments and ASE's defaults for the rest (sigma = epsilon =
      1, ``rc = 3 sigma`` with the pair energy shifted to 0 there, or with
      ``smooth=True`` ASE's cutoff function from ``ro = 0.66 rc``), in the units
      of sigma and epsilon (``LennardJones(sigma=3.4, epsilon=0.0104, rc=10.2)``:
      argon in Å and eV). ``rc=numpy.inf`` (beyond ASE) means no cutoff.
      ``set(sigma=...)`` later works as in ASE.

    Any chemical symbols are accepted; the system must not be periodic.

    Attributes:
        lennard_jones_parameters: the `potentials.LennardJonesParameters`, or
            ``None`` in reduced units.
        length_scale: the pair minimum, 1 or ``2^(1/6) sigma``.

    Raises:
        CalculatorInputError: a parameter out of range (see
            `potentials.lennard_jones_parameters`).
    """

    PARAMETER_NAMES: ClassVar[tuple[str, ...]] = (
        "sigma",
        "epsilon",
        "rc",
        "ro",
        "smooth",
    )

    def __init__(
        self, sigma=None, epsilon=None, rc=None, ro=None, smooth=None, **kwargs
    ):
        self.lennard_jones_parameters = None
        self._given: dict = {}  # the Lennard-Jones parameters ever given
        super().__init__(
            potential_name="lj",
            length_scale=potentials.LENNARD_JONES_LENGTH_SCALE,
            **kwargs,
        )
        self.set(sigma=sigma, epsilon=epsilon, rc=rc, ro=ro, smooth=smooth)

    def set(self, **kwargs):
        """`ase.calculators.calculator.Calculator.set`; a Lennard-Jones parameter
        switches to ASE's conventions, ASE's defaults filling in the others never
        given. ``parameters`` then holds all five, resolved, as in ASE."""
        given = {n: kwargs.pop(n) for n in self.PARAMETER_NAMES if n in kwargs}
        changed = Calculator.set(self, **kwargs)
        given = {**self._given, **{n: v for n, v in given.items() if v is not None}}
        if given == self._given:
            return changed
        try:
            parameters = potentials.lennard_jones_parameters(**given)
        except ValueError as error:
            raise CalculatorInputError(f"{self.__class__.__name__}: {error}") from error
        self._given, self.lennard_jones_parameters = given, parameters
        self.length_scale = potentials.lennard_jones_length_scale(parameters)
        resolved = [float(value) for value in parameters[:4]] + [bool(parameters[5])]
        resolved = dict(zip(self.PARAMETER_NAMES, resolved))
        changed.update(
            {n: v for n, v in resolved.items() if self.parameters.get(n) != v}
        )
        self.parameters.update(resolved)
        self.reset()
        self._cache_key = None  # the jitted energy closes over the parameters
        return changed

    def check_atoms(self, atoms) -> None:
        _require_free_cluster(self, atoms)

    def make_energy_fn(self, atoms):
        return _Bound(
            potentials.lennard_jones(self.geometry), self.lennard_jones_parameters
        )


class Gupta(JaxCalculator):
    """Gupta (RGL) free clusters in Å and eV (SPEC section 2, paper App. A.2).

    Args:
        system: parameter set, one of ``"Au"`` (Garzon gold, the Au55 benchmark),
            ``"AgAu"``, ``"AgPt"``, ``"PdAu"``, ``"PdPt"``.
        **kwargs: passed to `ase.calculators.calculator.Calculator`.

    Attributes:
        parameter_set: the `potentials.GuptaParameterSet` in use.
        length_scale: mean of the set's pair distances r0, Å.

    Raises:
        UnknownParameterSetError: ``system`` is not a known set.
    """

    def __init__(self, system: str = "Au", **kwargs):
        if system not in potentials.GUPTA_PARAMETER_SETS:
            raise UnknownParameterSetError(
                f"unknown Gupta system {system!r}; valid names: "
                f"{', '.join(potentials.GUPTA_PARAMETER_SETS)}"
            )
        self.parameter_set = potentials.GUPTA_PARAMETER_SETS[system]
        super().__init__(
            potential_name="gupta",
            # Mean pair r0: one length for mixed sets (as systems.gupta_length_scale).
            length_scale=float(np.mean(np.asarray(self.parameter_set.parameters.r0))),
            system=system,
            **kwargs,
        )

    def species_indices(self, atoms) -> np.ndarray:
        """``[n_atoms]`` int32 indices of the atoms' elements in the parameter set.

        Raises:
            UnsupportedElementError: an element is not in the set.
        """
        elements = self.parameter_set.elements
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(elements))
        if unknown:
            raise UnsupportedElementError(
                f"element(s) {', '.join(unknown)} not in the Gupta set "
                f"{self.parameter_set.name!r} (elements: {', '.join(elements)})"
            )
        return np.array([elements.index(symbol) for symbol in symbols], np.int32)

    def check_atoms(self, atoms) -> None:
        _require_free_cluster(self, atoms)
        self.species_indices(atoms)

    def make_energy_fn(self, atoms):
        parameters = potentials.gupta_input(
            self.parameter_set, self.species_indices(atoms)
        )
        return _Bound(potentials.gupta(self.geometry), parameters)


class StillingerWeber(JaxCalculator):
    """Stillinger-Weber silicon in a periodic cell, Å and eV (SPEC 2).

    The cell must be periodic in all three directions, and every cell height
    (distance between opposite faces) at least twice the 3.77118 Å cutoff
    (minimum image). Cubic cells and general (e.g. sheared) cells both work. The
    default benchmark is Si64 in a 10.862 Å cube (`potentials.SILICON_BOX_LENGTH`),
    whose diamond structure has -277.537 eV.
    """

    def __init__(self, **kwargs):
        super().__init__(
            potential_name="sw",
            length_scale=potentials.STILLINGER_WEBER_LENGTH_SCALE,
            **kwargs,
        )

    def check_atoms(self, atoms) -> None:
        name = self.__class__.__name__
        if not np.all(atoms.pbc):
            raise UnsupportedCellError(
                f"{name} needs a periodic cell in all three directions, but "
                f"atoms.pbc is {atoms.pbc.tolist()}"
            )
        geometry = geometry_from_atoms(atoms)
        minimum_edge = 2.0 * potentials.STILLINGER_WEBER_CUTOFF
        if geometry.is_cube:
            edge = geometry.box_length
            if edge < minimum_edge:
                raise UnsupportedCellError(
                    f"{name}: cell edge {edge:.5f} Å is smaller than twice the "
                    f"cutoff ({minimum_edge:.5f} Å), so the minimum-image "
                    "convention fails"
                )
        else:
            height = geometries.smallest_cell_height(geometry)
            if height < minimum_edge:
                raise UnsupportedCellError(
                    f"{name}: smallest cell height {height:.5f} Å is smaller than "
                    f"twice the cutoff ({minimum_edge:.5f} Å), so the "
                    "minimum-image convention fails"
                )
        unknown = sorted(set(atoms.get_chemical_symbols()) - {"Si"})
        if unknown:
            raise UnsupportedElementError(
                f"{name} is parametrized for Si only; got element(s) "
                f"{', '.join(unknown)}"
            )

    def make_energy_fn(self, atoms):
        return _Bound(potentials.stillinger_weber(self.geometry), None)
