"""Named Gupta (RGL) parameter sets: gold (Garzon) and the bimetallic sets of
SPEC section 2 (Cleri-Rosato style), as symmetric ``[S, S]`` tables per element
pair. `potentials.gupta` evaluates them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GuptaParameters(NamedTuple):
    """Gupta pair parameters, each a symmetric ``[n_species, n_species]`` array.

    Attributes:
        p: repulsive exponent (dimensionless).
        q: band (attractive) exponent (dimensionless).
        r0: reference pair distance, Å.
        A: repulsive prefactor, eV (the smaller number of a pair, SPEC decision).
        xi: band-energy prefactor, eV (the larger number of a pair).
    """

    p: np.ndarray
    q: np.ndarray
    r0: np.ndarray
    A: np.ndarray
    xi: np.ndarray


class GuptaParameterSet(NamedTuple):
    """A named Gupta parameter set.

    Attributes:
        name: set name, e.g. ``"AgAu"``.
        elements: chemical symbols; species index ``s`` means ``elements[s]``.
        parameters: `GuptaParameters` indexed by those species.
    """

    name: str
    elements: tuple[str, ...]
    parameters: GuptaParameters


def _gupta_parameter_set(
    name: str,
    elements: tuple[str, ...],
    pairs: dict[tuple[str, str], tuple[float, float, float, float, float]],
) -> GuptaParameterSet:
    """Builds symmetric arrays from ``{(el1, el2): (p, q, r0, A, xi)}``."""
    n_species = len(elements)
    table = np.zeros((5, n_species, n_species))
    for (first, second), values in pairs.items():
        i, j = elements.index(first), elements.index(second)
        table[:, i, j] = values
        table[:, j, i] = values
    if np.any(table[2] == 0.0):
        raise ValueError(f"Gupta set {name!r} is missing a pair")
    return GuptaParameterSet(
        name=name,
        elements=elements,
        # NumPy float64: a jnp array made at import would be float32 unless the
        # caller had switched x64 on before importing us.
        parameters=GuptaParameters(*(np.asarray(column) for column in table)),
    )


#: Named Gupta sets of SPEC section 2, values (p, q, r0 [Å], A [eV], xi [eV]).
#: "Au" is the Garzon/Jellinek gold set of the Au55 benchmark (jax-md's
#: ``gupta_gold55`` in RGL form); the bimetallic sets are Cleri-Rosato style.
GUPTA_PARAMETER_SETS: dict[str, GuptaParameterSet] = {
    "Au": _gupta_parameter_set(
        "Au", ("Au",), {("Au", "Au"): (10.15, 4.13, 2.96, 0.204525, 1.727)}
    ),
    "AgAu": _gupta_parameter_set(
        "AgAu",
        ("Ag", "Au"),
        {
            ("Ag", "Ag"): (10.85, 3.18, 2.8921, 0.1031, 1.1895),
            ("Ag", "Au"): (10.494, 3.607, 2.8885, 0.1488, 1.4874),
            ("Au", "Au"): (10.139, 4.033, 2.885, 0.2096, 1.8153),
        },
    ),
    "AgPt": _gupta_parameter_set(
        "AgPt",
        ("Ag", "Pt"),
        {
            ("Ag", "Ag"): (10.86, 3.18, 2.8921, 0.1031, 1.1895),
            ("Ag", "Pt"): (10.73, 3.57, 2.833, 0.175, 1.79),
            ("Pt", "Pt"): (10.612, 4.004, 2.7747, 0.2975, 2.695),
        },
    ),
    "PdAu": _gupta_parameter_set(
        "PdAu",
        ("Pd", "Au"),
        {
            ("Pd", "Pd"): (10.867, 3.742, 2.7485, 0.1746, 1.718),
            ("Pd", "Au"): (10.54, 3.89, 2.816, 0.19, 1.75),
            # The paper prints 10.299, a typo for Cleri-Rosato's 10.229 (SPEC).
            ("Au", "Au"): (10.229, 4.036, 2.884, 0.2061, 1.79),
        },
    ),
    "PdPt": _gupta_parameter_set(
        "PdPt",
        ("Pd", "Pt"),
        {
            ("Pd", "Pd"): (10.867, 3.742, 2.7485, 0.1746, 1.718),
            ("Pd", "Pt"): (10.74, 3.87, 2.76, 0.23, 2.2),
            ("Pt", "Pt"): (10.612, 4.004, 2.7747, 0.2975, 2.695),
        },
    ),
}
