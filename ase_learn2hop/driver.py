"""The one batched driver: any `descent.Optimizer` over a batch of starts.

Every method of the package runs on it: Adam, FIRE and gradient descent
(`descent`), the paper's basin hopping (`basin_hopping`) and the learned
optimizer's steps (`search`). The batch is ``vmap``-ed and split over the
devices, each running its share (`devices`; one CPU device per core), steps
run in a ``lax.fori_loop``, cut into jitted chunks so that a progress bar
advances, an observer can look between chunks, and Ctrl-C stops between
chunks. Every chunk runs on one program compiled for ``chunk_steps`` (the step
count is traced), so runs of another length, and their last, shorter chunk,
compile nothing new.

Besides the optimizer's own state the driver keeps, per start, the lowest energy
evaluated and where (best-so-far; a NaN never compares lower, so a blown-up step
cannot become the best), the force calls spent, and the force calls at which the
energy first reached a target (the global minimum), -1 before that.

A chunk after which a neighbour list reports an overflow (`neighbours`) runs
again from where it began with the list's capacity grown, so no neighbour is
ever dropped; `DriverResult.parameters` carries the grown list on.

Force-call accounting: one energy-and-gradient evaluation at the start structure,
then one per step, so ``steps`` steps charge ``steps + 1``. This is what
``ase.optimize`` charges for ``run(steps=N)``, so force calls compare one to one
with ASE.

Calling convention (see `descent.Optimizer`): ``init_fn(positions, parameters,
shared, key)`` and ``step_fn(state, parameters, shared)``; ``parameters`` carry
the batch on axis 0 of every leaf (per start: potential parameters, structure
context), ``shared`` do not (the learned optimizer's ``theta``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import devices, neighbours, saved_programs
from ase_learn2hop.descent import Optimizer, polish, select_tree

#: Energy records kept per run by default (a figure needs no more).
RECORD_POINTS = 500
#: Steps per jitted call by default.
CHUNK_STEPS = 1000
#: Name of the ``vmap`` axis of the driver's batch of starts (`batch_cond`,
#: `batch_select`).
VMAP_AXIS = "start"


class DriverState(NamedTuple):
    """Carry of a batched run (every leaf batched on axis 0).

    Attributes:
        state: the optimizer's state.
        best_energy: ``[batch]`` lowest energy evaluated so far (+inf if none).
        best_positions: ``[batch, n, 3]`` where it was evaluated.
        first_hit: ``[batch]`` force calls spent when the energy first reached
            the target, -1 before that.
        force_calls: ``[batch]`` energy-and-gradient evaluations so far.
    """

    state: Any
    best_energy: jax.Array
    best_positions: jax.Array
    first_hit: jax.Array
    force_calls: jax.Array


class DriverResult(NamedTuple):
    """What `run_batched` returns.

    Attributes:
        carry: the final `DriverState`.
        record_steps: ``[n_records]`` steps at which energies were recorded.
        energy_records: ``[batch, n_records]`` energy of the current structure
            at those steps.
        parameters: the parameters the run ended with: the ones given, with
            any neighbour list grown after an overflow (`neighbours.grown`).
        steps: steps made (fewer than asked when every start stopped at the
            target, ``stop_at_target``).
    """

    carry: DriverState
    record_steps: np.ndarray
    energy_records: np.ndarray
    parameters: Any = None
    steps: int = 0


def _finite_or_inf(energy: jax.Array) -> jax.Array:
    return jnp.where(jnp.isfinite(energy), energy, jnp.inf)


def _inside_batch() -> bool:
    """Whether the caller is traced inside the driver's batch (its ``vmap``
    axis `VMAP_AXIS` is bound); false for one search or another ``vmap``."""
    try:
        jax.lax.axis_index(VMAP_AXIS)
    except NameError:
        return False
    return True


def batch_cond(predicate: jax.Array, true_fn: Callable, false_fn: Callable):
    """``lax.cond(predicate, true_fn, false_fn)`` of one start, for a branch
    that few starts of a batch take at any one step.

    Inside the driver's ``vmap`` a start's ``lax.cond`` becomes a select that
    computes both branches for every start at every step. Here ``true_fn``
    runs only at the steps where some start of the device's share of the
    batch takes it (their any, a ``psum`` over `VMAP_AXIS`, which
    ``shard_map`` keeps on the device), and every start gets what the plain
    conditional gives it, bit for bit. Outside the driver's batch (one
    search, or a ``vmap`` without that axis) it is the plain conditional.
    """
    if not _inside_batch():
        return jax.lax.cond(predicate, true_fn, false_fn)
    taken = jax.lax.psum(jnp.asarray(predicate, jnp.int32), VMAP_AXIS) > 0
    return jax.lax.cond(
        taken, lambda: jax.lax.cond(predicate, true_fn, false_fn), false_fn
    )


def batch_select(predicate: jax.Array, true_fn: Callable, false_fn: Callable):
    """``lax.cond(predicate, true_fn, false_fn)`` of one start, for branches
    that close over values shared by the batch (the learned step's weights).

    Inside the driver's batch both branches run for every start and each
    start's result is selected, as ``vmap`` does to a ``lax.cond``, except
    that what the branches close over and is not per start stays shared:
    ``vmap`` of a ``lax.cond`` copies it per start, so that a shared
    weight matrix multiplies each start's rows apart instead of the batch's
    in one product. Outside the driver's batch (one search) it is the plain
    conditional, which runs one branch.
    """
    if not _inside_batch():
        return jax.lax.cond(predicate, true_fn, false_fn)
    return select_tree(predicate, true_fn(), false_fn())


def start_one(
    optimizer: Optimizer,
    positions: jax.Array,
    parameters: Any,
    shared: Any,
    key: jax.Array | None,
    target_energy: jax.Array,
) -> DriverState:
    """The `DriverState` of one start ``[n, 3]`` (one force call); unbatched,
    traceable (`driver_init` vmaps it; `search.learned_search` calls it)."""
    state = optimizer.init_fn(positions, parameters, shared, key)
    energy = _finite_or_inf(state.energy)
    # NaN compares False: a blown-up start never counts as a hit. The counters
    # are not weakly typed, so that `saved_programs` may keep the programs.
    first_hit = jnp.where(state.energy <= target_energy, 1, -1).astype(int)
    force_calls = jnp.asarray(1, dtype=int)
    return DriverState(state, energy, state.positions, first_hit, force_calls)


def step_one(
    optimizer: Optimizer,
    carry: DriverState,
    parameters: Any,
    shared: Any,
    target_energy: jax.Array,
) -> DriverState:
    """One optimizer step of one start with the driver's bookkeeping (best so
    far, first hit, force calls); unbatched, traceable."""
    state = optimizer.step_fn(carry.state, parameters, shared)
    force_calls = carry.force_calls + 1
    # NaN never compares lower, so a blown-up step cannot become the best.
    improved = state.energy < carry.best_energy
    newly_hit = (carry.first_hit < 0) & (state.energy <= target_energy)
    return DriverState(
        state,
        jnp.where(improved, state.energy, carry.best_energy),
        jnp.where(improved, state.positions, carry.best_positions),
        jnp.where(newly_hit, force_calls, carry.first_hit),
        force_calls,
    )


@saved_programs.saved_jit(static_argnames=("optimizer",))
def driver_init(
    optimizer: Optimizer,
    positions: jax.Array,
    parameters: Any,
    shared: Any,
    key: jax.Array | None,
    target_energy: jax.Array,
) -> DriverState:
    """Initial `DriverState` for ``[batch, n, 3]`` starts (one force call each),
    ``key`` split into one per start (`start_keys`)."""
    # Split here, not eagerly: an eager split compiles a program per batch
    # size in every new process.
    keys = start_keys(key, positions.shape[0])
    return devices.over_batch(
        lambda x, p, k: start_one(optimizer, x, p, shared, k, target_energy)
    )(positions, parameters, keys)


@saved_programs.saved_jit(static_argnames=("optimizer", "steps", "stop_at_target"))
def driver_advance(
    optimizer: Optimizer,
    carry: DriverState,
    parameters: Any,
    shared: Any,
    target_energy: jax.Array,
    active: jax.Array,
    steps: int,
    stop_at_target: bool = False,
) -> tuple[DriverState, jax.Array, jax.Array]:
    """``active`` optimizer steps on every start, compiled for ``steps``.

    ``active`` (at most ``steps``) is a traced scalar, so chunks of any length
    up to ``steps`` run on one compiled program. With ``stop_at_target`` a
    start stops right after the step at which it first reached the target
    (under ``vmap`` the others go on).

    Returns:
        the new carry, ``[batch, steps]`` energies of the current structures
        after each step (the first ``active`` are meaningful; a start that
        stopped repeats its last energy), and ``[batch]`` the steps each start
        made.
    """

    def run_one(carry: DriverState, parameters):
        energies = jnp.zeros((steps,), carry.best_energy.dtype)

        def going(loop):
            index, carry, _ = loop
            if not stop_at_target:
                return index < active
            return (index < active) & (carry.first_hit < 0)

        def advance(loop):
            index, carry, energies = loop
            carry = step_one(optimizer, carry, parameters, shared, target_energy)
            return index + 1, carry, energies.at[index].set(carry.state.energy)

        # A loop bound that is not a compile-time constant: a while loop. Its
        # counter has the bound's integer type: with int32 against an int64
        # bound, a learned LJ13 step of one search cost 26 instead of 20 µs.
        index = jnp.zeros((), jnp.asarray(active).dtype)
        made, carry, energies = jax.lax.while_loop(
            going, advance, (index, carry, energies)
        )
        if stop_at_target:
            stopped = jnp.arange(steps) >= made
            energies = jnp.where(stopped, carry.state.energy, energies)
        return carry, energies, made

    if carry.best_energy.shape[0] == 1:
        # A batch of one runs unbatched: under vmap every lax.cond of an
        # optimizer turns into a select that computes both branches.
        def first(tree):
            return jax.tree_util.tree_map(lambda leaf: leaf[0], tree)

        result = run_one(first(carry), first(parameters))
        return jax.tree_util.tree_map(lambda leaf: leaf[None], result)
    return devices.over_batch(run_one, axis_name=VMAP_AXIS)(carry, parameters)


def chunk_plan(steps: int, record_every: int, chunk_steps: int) -> list[int]:
    """Chunk lengths covering ``steps``: multiples of ``record_every`` of about
    ``chunk_steps``, then the remainder."""
    blocks_per_chunk = max(1, chunk_steps // record_every)
    full_blocks, remainder = divmod(steps, record_every)
    plan = []
    while full_blocks > 0:
        blocks = min(blocks_per_chunk, full_blocks)
        plan.append(blocks * record_every)
        full_blocks -= blocks
    if remainder:
        plan.append(remainder)
    return plan


def record_interval(steps: int, points: int = RECORD_POINTS) -> int:
    """Steps between energy records so that about ``points`` are kept."""
    return max(1, steps // max(points, 1))


def start_keys(key: jax.Array | None, batch: int) -> jax.Array:
    """One random key per start (split from ``key``; a fixed key when None)."""
    return jax.random.split(jax.random.key(0) if key is None else key, batch)


def start(
    optimizer: Optimizer,
    positions: jax.Array,
    parameters: Any = None,
    shared: Any = None,
    *,
    key: jax.Array | None = None,
    target_energy: float = -math.inf,
) -> DriverState:
    """The driver's carry at ``[batch, n_atoms, 3]`` starts (see `driver_init`).

    Args:
        parameters: batched on axis 0 of every leaf.
        key: split into one key per start (basin hopping's perturbations).
        target_energy: energy counted as reaching the global minimum.
    """
    positions = jnp.asarray(positions)
    if positions.ndim != 3 or positions.shape[-1] != 3:
        raise ValueError(
            f"positions must have shape [batch, n_atoms, 3], got {positions.shape}"
        )
    target = jnp.asarray(target_energy, dtype=positions.dtype)
    batch = positions.shape[0]
    # Split over the devices (one per CPU core, `devices`): the carry comes
    # out split the same way, and every chunk keeps it so.
    positions, parameters = devices.distribute((positions, parameters), batch)
    return driver_init(optimizer, positions, parameters, shared, key, target)


def advance(
    optimizer: Optimizer,
    carry: DriverState,
    steps: int,
    parameters: Any = None,
    shared: Any = None,
    *,
    target_energy: float = -math.inf,
    record_every: int | None = None,
    chunk_steps: int = CHUNK_STEPS,
    progress: Callable[[int], Any] | None = None,
    first_step: int = 0,
    stop_at_target: bool = False,
) -> DriverResult:
    """``steps`` more steps from ``carry``, in jitted chunks.

    Args:
        record_every: steps between energy records (default: about
            `RECORD_POINTS` over the run).
        chunk_steps: at most this many steps per jitted call (unless
            ``record_every`` is longer), all on one program compiled for it.
        progress: called with the number of steps of each finished chunk.
        first_step: the step count before this call (for ``record_steps``).
        stop_at_target: each start stops at the step at which it first
            reaches ``target_energy``, and the run ends once every start has
            (`DriverResult.steps` then counts the steps made).
    """
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    record_every = record_every or record_interval(steps)
    # A NumPy scalar: a jnp one would cost a dispatch per call (~30 µs).
    target = np.asarray(target_energy, dtype=carry.best_energy.dtype)
    records, record_steps, done = [], [], first_step
    plan = chunk_plan(int(steps), record_every, chunk_steps)
    batch = carry.best_energy.shape[0]
    # Every chunk runs on a program compiled for chunk_steps (or the longest
    # chunk): runs of other lengths compile nothing new.
    compiled = max([chunk_steps, *plan])

    def run_chunk(carry, parameters, chunk):
        # A carry or parameters made on one device (a restart file, a grown
        # neighbour list) are split again; split ones are left as they are.
        carry, parameters = devices.distribute((carry, parameters), batch)
        return driver_advance(
            optimizer, carry, parameters, shared, target, chunk, compiled,
            stop_at_target,
        )  # fmt: skip

    for chunk in plan:
        every = min(record_every, chunk)
        before = carry
        carry, energies, made = run_chunk(carry, parameters, chunk)
        while neighbours.overflowed(carry):
            # A neighbour list was too short: grow it, run the chunk again.
            parameters, before = neighbours.grown(parameters, before, carry)
            carry, energies, made = run_chunk(before, parameters, chunk)
        made = int(np.asarray(made).max())  # np.max would call jax's max
        records.append(np.asarray(energies)[:, every - 1 : made : every])
        record_steps.extend(done + every * np.arange(1, made // every + 1))
        done += made
        if progress is not None:
            progress(made)
        if made < chunk:
            break  # every start reached the target
    energy_records = (
        np.concatenate(records, axis=1) if records else np.zeros((batch, 0))
    )
    return DriverResult(
        carry,
        np.asarray(record_steps, dtype=int),
        energy_records,
        parameters,
        done - first_step,
    )


def run_batched(
    optimizer: Optimizer,
    positions: jax.Array,
    steps: int,
    parameters: Any = None,
    shared: Any = None,
    *,
    key: jax.Array | None = None,
    target_energy: float = -math.inf,
    record_every: int | None = None,
    chunk_steps: int = CHUNK_STEPS,
    progress: Callable[[int], Any] | None = None,
) -> DriverResult:
    """Run ``optimizer`` for ``steps`` steps from every start of a batch.

    Args:
        optimizer: a `descent.Optimizer` (any method of the package).
        positions: ``[batch, n_atoms, 3]`` starting positions (length units of
            the potential).
        steps: optimizer steps; ``steps + 1`` force calls are charged per start.
        parameters: per-start arrays, batch on axis 0 of every leaf
            (`systems.broadcast_to_batch` for one system shared by all starts).
        shared: arrays shared by every start.
        key: random key, split into one per start.
        target_energy: energy counted as reaching the global minimum.
        record_every, chunk_steps, progress: see `advance`.

    Returns:
        `DriverResult`.

    Example:
        >>> result = run_batched(descent.adam_descent(energy_fn, 1e-2), starts, 1000)
        >>> result.carry.best_energy.min()
    """
    carry = start(
        optimizer, positions, parameters, shared, key=key, target_energy=target_energy
    )
    return advance(
        optimizer,
        carry,
        steps,
        parameters,
        shared,
        target_energy=target_energy,
        record_every=record_every,
        chunk_steps=chunk_steps,
        progress=progress,
    )


@saved_programs.saved_jit(
    static_argnames=("energy_fn", "geometry", "steps", "learning_rate")
)
def polish_batch(
    energy_fn: Callable,
    positions: jax.Array,
    parameters: Any,
    geometry: Any,
    steps: int,
    learning_rate: float,
) -> tuple[jax.Array, jax.Array]:
    """`descent.polish` of ``[batch, n, 3]`` structures (parameters batched)."""
    return devices.over_batch(
        lambda x, p: polish(energy_fn, x, p, geometry, steps, learning_rate)
    )(positions, parameters)
