"""Weight files of the learned optimizer: safetensors parameters + JSON manifest.

A weight file ``NAME`` is two files side by side, never a pickle:

- ``NAME.safetensors``: every array of ``theta``, keyed by its path
  (``network/Dense_0/kernel``, ``alpha``, ...);
- ``NAME.json``: the manifest: format version, the network and feature
  configuration (`LearnedOptimizerConfig`), the radial length-scale convention,
  the training horizon H, the systems trained on, the training configuration,
  seed, commit, metrics, and the sha256 of the ``.safetensors`` file.

Shipped weights live in the ``pretrained/`` folder of the repository, installed as
``ase_learn2hop.pretrained``; `load_weights` finds them by name (``"lj"``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from safetensors.numpy import load_file, save_file

from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, Theta, init_theta

WEIGHT_FORMAT = "ase_learn2hop-weights"
WEIGHT_FORMAT_VERSION = 1
#: How radial features and steps are scaled (SPEC decision): recorded so that a
#: future change of convention is detected when old weights are loaded.
RADIAL_UNITS = "length_scale"


class WeightFileError(ValueError):
    """A weight file is missing, corrupt or does not fit this version or system."""


class LearnedWeights(NamedTuple):
    """Loaded weights: ``theta``, their `LearnedOptimizerConfig` and the manifest."""

    theta: Theta
    config: LearnedOptimizerConfig
    manifest: dict

    @property
    def horizon(self) -> int:
        """Number of learned steps the weights were trained to make (H)."""
        return int(self.manifest["horizon"])

    @property
    def name(self) -> str:
        return self.manifest.get("name", "")


def _key(tree_path) -> str:
    return "/".join(str(getattr(entry, "key", entry)) for entry in tree_path)


def _flatten(theta: Theta) -> dict[str, np.ndarray]:
    return {
        _key(tree_path): np.asarray(leaf)
        for tree_path, leaf in jax.tree_util.tree_leaves_with_path(theta)
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_weights(
    path: str | os.PathLike,
    theta: Theta,
    config: LearnedOptimizerConfig,
    *,
    horizon: int,
    systems: list[str],
    **manifest_fields: Any,
) -> Path:
    """Write ``PATH.safetensors`` and ``PATH.json``.

    Args:
        path: file stem (a ``.json`` or ``.safetensors`` suffix is dropped).
        theta: meta-parameters.
        config: their architecture.
        horizon: learned steps per search the weights were trained for.
        systems: names of the systems trained on (e.g. ``["lj13", "lj38"]``).
        **manifest_fields: anything else for the manifest (training config,
            seed, commit, metrics, training time, command...), JSON-serializable.

    Returns:
        the path of the manifest.
    """
    stem = _stem(Path(path))
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors_path = stem.with_suffix(".safetensors")
    save_file(_flatten(theta), str(tensors_path))
    manifest = {
        "format": WEIGHT_FORMAT,
        "format_version": WEIGHT_FORMAT_VERSION,
        "name": stem.name,
        "config": config.to_dict(),
        "radial_units": RADIAL_UNITS,
        "horizon": int(horizon),
        "systems": list(systems),
        **manifest_fields,
        "parameters_file": tensors_path.name,
        "sha256": _sha256(tensors_path),
    }
    manifest_path = stem.with_suffix(".json")
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest_path


def _stem(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path


def pretrained_directory() -> Path:
    """The folder of the shipped weights (works for installed packages too)."""
    return Path(str(importlib.resources.files("ase_learn2hop.pretrained")))


def available_pretrained() -> list[str]:
    """Names of the shipped weight files."""
    return sorted(p.stem for p in pretrained_directory().glob("*.json"))


def load_weights(name_or_path: str | os.PathLike) -> LearnedWeights:
    """Load weights by shipped name (``"lj"``) or by path (stem, ``.json`` or
    ``.safetensors``).

    Raises:
        WeightFileError: the file is missing, unreadable, fails its checksum, or its
            parameters do not fit the configuration in its manifest.
    """
    candidate = Path(name_or_path)
    if candidate.suffix not in (".json", ".safetensors") and not candidate.parent.name:
        shipped = pretrained_directory() / f"{candidate}.json"
        if shipped.exists():
            candidate = shipped
    stem = _stem(candidate)
    manifest_path = stem.with_suffix(".json")
    if not manifest_path.exists():
        raise WeightFileError(
            f"no weight manifest {manifest_path} (shipped weights: "
            f"{available_pretrained() or 'none'})"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightFileError(
            f"corrupt weight manifest {manifest_path}: {error}"
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != WEIGHT_FORMAT:
        raise WeightFileError(
            f"{manifest_path} is not an ase_learn2hop weight manifest"
        )
    if manifest.get("format_version") != WEIGHT_FORMAT_VERSION:
        raise WeightFileError(
            f"{manifest_path} has weight format version {manifest.get('format_version')}, "
            f"this ase_learn2hop reads version {WEIGHT_FORMAT_VERSION}"
        )
    if manifest.get("radial_units") != RADIAL_UNITS:
        raise WeightFileError(
            f"{manifest_path} uses radial units {manifest.get('radial_units')!r}, "
            f"expected {RADIAL_UNITS!r}"
        )
    tensors_path = manifest_path.parent / manifest.get(
        "parameters_file", stem.name + ".safetensors"
    )
    if not tensors_path.exists():
        raise WeightFileError(f"parameters file {tensors_path} is missing")
    digest = _sha256(tensors_path)
    if digest != manifest.get("sha256"):
        raise WeightFileError(
            f"checksum mismatch for {tensors_path}: manifest says {manifest.get('sha256')}, "
            f"file has {digest} (corrupt or replaced file)"
        )
    try:
        config = LearnedOptimizerConfig.from_dict(manifest["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise WeightFileError(
            f"{manifest_path}: invalid configuration: {error}"
        ) from error
    try:
        tensors = load_file(str(tensors_path))
    except Exception as error:  # safetensors raises its own error types
        raise WeightFileError(
            f"corrupt parameters file {tensors_path}: {error}"
        ) from error
    theta = _unflatten(tensors, config, tensors_path)
    return LearnedWeights(theta, config, manifest)


def _unflatten(tensors: dict[str, np.ndarray], config, path: Path) -> Theta:
    # Shapes only: traced, not run (running it compiled the initializers).
    template = jax.eval_shape(lambda: init_theta(jax.random.key(0), config))
    expected = {
        _key(tree_path): leaf
        for tree_path, leaf in jax.tree_util.tree_leaves_with_path(template)
    }
    if set(expected) != set(tensors):
        raise WeightFileError(
            f"{path} does not fit its feature/network configuration: missing "
            f"{sorted(set(expected) - set(tensors))}, unexpected "
            f"{sorted(set(tensors) - set(expected))}"
        )
    for key, array in expected.items():
        if tensors[key].shape != array.shape:
            raise WeightFileError(
                f"{path}: parameter {key} has shape {tensors[key].shape}, the "
                f"configuration needs {array.shape} (feature set changed?)"
            )
    return jax.tree_util.tree_map_with_path(
        # device_put: jnp.asarray compiles a program per shape in a new process.
        lambda tree_path, _: jax.device_put(tensors[_key(tree_path)]),
        template,
    )


# --------------------------------------------------------------------------------
# Which weights fit which system
# --------------------------------------------------------------------------------

#: Shipped weights picked when none are named, in order of preference, by the
#: system's family (`systems.System.family`), then by its potential.
DEFAULT_WEIGHTS = {
    "lj": ("lj", "lj13"),
    "gupta:Au": ("au55", "bimetallic"),
    "gupta:AgAu": ("agau", "bimetallic"),
    "gupta": ("bimetallic",),
    "sw": ("si64",),
}
#: Weights trained for learned basin hopping (``protocol="hopping"``, the
#: default search), preferred by that protocol before `DEFAULT_WEIGHTS`.
DEFAULT_HOPPING_WEIGHTS = {
    "lj": ("lj_hopping_time", "lj_hopping"),
}
#: Default weights picked only for systems of at most this many atoms.
#: ``lj_hopping_time`` (trained on LJ13 for time to the global minimum) needs
#: fewer force calls than ``lj_hopping`` on LJ13 and LJ26, and more on LJ38
#: and LJ55 (README, "Time to the global minimum"; pretrained/README.md).
DEFAULT_UP_TO_ATOMS = {"lj_hopping_time": 26}


class NoSuitableWeightsError(ValueError):
    """No shipped weights fit this system, or the given weights do not fit it."""


def weights_fit(weights: LearnedWeights, system_name: str, n_species: int) -> str:
    """Why ``weights`` cannot run on a system of ``n_species`` species ("" when
    they can): weights that see species were trained on at most a given number."""
    trained = int(weights.manifest.get("max_species", 1))
    if weights.config.features.species and n_species > trained:
        return (
            f"weights {weights.name!r} were trained on systems with at most "
            f"{trained} species; {system_name} has {n_species}"
        )
    return ""


def default_weights_for(
    family: str,
    potential: str,
    system_name: str,
    protocol: str = "paper",
    n_atoms: int | None = None,
) -> LearnedWeights:
    """The shipped weights that fit a system of ``n_atoms`` atoms, or a clear
    error.

    Lennard-Jones clusters get ``lj`` (else ``lj13``), gold ``au55``, silver-gold
    ``agau``, other bimetallic clusters ``bimetallic``, silicon ``si64``; with
    ``protocol="hopping"`` weights trained for hopping come first
    (`DEFAULT_HOPPING_WEIGHTS`: ``lj_hopping_time`` for Lennard-Jones clusters
    of up to 26 atoms, `DEFAULT_UP_TO_ATOMS`, else ``lj_hopping``). Without
    ``n_atoms``, weights bounded by size are passed over.
    """

    def by_system(table):
        return table.get(family, table.get(potential, ()))

    def fits_size(name):
        bound = DEFAULT_UP_TO_ATOMS.get(name)
        return bound is None or (n_atoms is not None and n_atoms <= bound)

    candidates = by_system(DEFAULT_WEIGHTS)
    if protocol == "hopping":
        candidates = by_system(DEFAULT_HOPPING_WEIGHTS) + candidates
    candidates = tuple(name for name in candidates if fits_size(name))
    available = available_pretrained()
    for name in candidates:
        if name in available:
            return load_weights(name)
    raise NoSuitableWeightsError(
        f"no shipped weights fit {system_name} (looked for {candidates}; shipped: "
        f"{available or 'none'}). Pass weights='path/to/weights.json' or train "
        "your own with `learn2hop train`."
    )


def resolve_weights(
    weights,
    family: str,
    potential: str,
    system_name: str,
    n_species: int,
    protocol: str = "paper",
    n_atoms: int | None = None,
) -> LearnedWeights:
    """Loaded weights (given, by name or path, or the shipped default for the
    search ``protocol`` and a system of ``n_atoms`` atoms) that fit.

    Raises:
        NoSuitableWeightsError: none fit.
        WeightFileError: a named weight file cannot be read.
    """
    if weights is None:
        weights = default_weights_for(family, potential, system_name, protocol, n_atoms)
    elif not isinstance(weights, LearnedWeights):
        weights = load_weights(weights)
    reason = weights_fit(weights, system_name, n_species)
    if reason:
        raise NoSuitableWeightsError(reason)
    return weights


def weights_for(system, weights, species, protocol: str = "paper") -> LearnedWeights:
    """`resolve_weights` for a `systems.System`, or for atoms under a calculator
    that is not ours (``system=None``: weights must then be named).

    Args:
        species: ``[n_atoms]`` species indices (their count is checked).
    """
    n_species = len(np.unique(np.asarray(species)))
    if system is None:
        if weights is None:
            raise NoSuitableWeightsError(
                "with a calculator that is not one of ase_learn2hop's, pass "
                f"weights= explicitly (shipped: {available_pretrained() or 'none'})"
            )
        return resolve_weights(weights, "", "", "this system", n_species)
    return resolve_weights(
        weights,
        system.family,
        system.potential,
        system.name,
        n_species,
        protocol,
        system.n_atoms,
    )
