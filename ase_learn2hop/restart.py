"""Restart files of `LearnedHopOptimizer`: the cycle loop's state as plain
arrays (JSON through ASE's ``Dynamics.dump``), and a clear error when a file
holds the search of another system."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import neighbours
from ase_learn2hop.precision import float64


def optimizer_state(optimizer) -> dict:
    """What a `LearnedHopOptimizer` writes to its restart file."""
    found = optimizer._search
    return {
        "system": restart_identity(optimizer),
        "nsteps": optimizer.nsteps,
        "best_energy": optimizer.best_energy,
        "best_positions": optimizer.best_positions,
        "energy_evaluations": optimizer.energy_evaluations,
        "start_energies": optimizer.start_energies,
        "search": None if found is None else search_to_dict(found),
    }


def restore_optimizer_state(optimizer, data: dict) -> None:
    """Put a restart file's state back on ``optimizer`` (checked first)."""
    check_restart_identity(data, restart_identity(optimizer), optimizer.restart)
    optimizer.nsteps = int(data["nsteps"])
    optimizer.best_energy = float(data["best_energy"])
    if data["best_positions"] is not None:
        optimizer.best_positions = np.asarray(data["best_positions"])
    optimizer.energy_evaluations = int(data["energy_evaluations"])
    if data.get("start_energies") is not None:
        optimizer.start_energies = np.asarray(data["start_energies"])
    optimizer._search = None
    if data.get("search") is not None:
        optimizer._begin()
        optimizer._search = search_from_dict(optimizer._search, data["search"])


def restart_identity(optimizer) -> dict:
    """What a restart file must match: the system and the search's shape."""
    return {
        "formula": optimizer.atoms.get_chemical_formula(),
        "n_atoms": len(optimizer.atoms),
        "n_starts": optimizer.n_starts,
        "weights": optimizer.weights.name,
        "protocol": optimizer.protocol,
        "horizon": optimizer.todict()["horizon"],
    }


def check_restart_identity(data: dict, expected: dict, path) -> None:
    """Raise a ValueError naming what differs between the saved search
    (``data["system"]``: formula, atoms, starts, weights, horizon) and this one."""
    saved = data.get("system")
    if saved is None:  # a file without the record: compare shapes
        saved = {}
        if data.get("best_positions") is not None:
            saved["n_atoms"] = len(np.asarray(data["best_positions"]))
        if data.get("start_energies") is not None:
            saved["n_starts"] = int(np.size(data["start_energies"]))
    differences = [
        f"{key} {saved[key]!r} (this optimizer: {expected[key]!r})"
        for key in expected
        if key in saved and saved[key] != expected[key]
    ]
    if differences:
        raise ValueError(
            f"the restart file {str(path)!r} holds the search of "
            "another system or set-up: "
            + "; ".join(differences)
            + ". Delete it or pass another restart path."
        )


_SEARCH_ARRAYS = ("best_energy", "best_positions", "force_calls", "first_hit")


def search_to_dict(found) -> dict:
    """A `cycles.CycleSearch` or `hopping_search.HoppingSearch` as arrays."""
    spec = neighbours.list_spec(found.parameters)
    return {
        "neighbour_capacity": None if spec is None else spec.capacity,
        "cycle_step": found.cycle_step,
        "steps": found.steps,
        "carry": [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(found.carry)],
        **{name: np.asarray(getattr(found, name)) for name in _SEARCH_ARRAYS},
    }


def search_from_dict(template, data: dict):
    """The saved search, on the structure of a fresh one (shapes checked)."""
    spec = neighbours.list_spec(template.parameters)
    capacity = data.get("neighbour_capacity")
    if spec is not None and capacity is not None and capacity != spec.capacity:
        # The saved list grew after an overflow: restore it at its size.
        parameters, carry = neighbours.resized(
            template.parameters, template.carry, capacity
        )
        template = template._replace(parameters=parameters, carry=carry)
    leaves, structure = jax.tree_util.tree_flatten(template.carry)
    saved = [np.asarray(leaf) for leaf in data["carry"]]
    if len(saved) != len(leaves) or any(
        a.shape != np.shape(b) for a, b in zip(saved, leaves)
    ):
        mismatched = [
            f"{a.shape} (this search: {np.shape(b)})"
            for a, b in zip(saved, leaves)
            if a.shape != np.shape(b)
        ]
        raise ValueError(
            "the restart file holds a search of another system or set-up: "
            f"{len(saved)} saved arrays against {len(leaves)} needed"
            + (f"; saved shapes {', '.join(mismatched[:3])}" if mismatched else "")
            + " (atoms, starts or weights differ)"
        )
    with float64():
        carry = jax.tree_util.tree_unflatten(structure, [jnp.asarray(a) for a in saved])
    return template._replace(
        carry=carry,
        cycle_step=int(data["cycle_step"]),
        steps=int(data["steps"]),
        **{name: np.asarray(data[name]) for name in _SEARCH_ARRAYS},
    )
