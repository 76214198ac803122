"""Population evaluation sharded over all visible devices (SPEC section 5).

The population axis (candidates paired with their instances) is split over a 1-D
``jax.sharding.Mesh`` named "population"; ``jax.jit`` partitions ``vmap(loss_fn)``
along it. Several hosts join through ``initialize_distributed`` before any JAX call;
every process then runs the same program on the same data and sees all the losses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any
POPULATION_AXIS = "population"


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    discard_import_backend: bool = False,
) -> bool:
    """Joins a multi-host run through ``jax.distributed.initialize``.

    Must be called before any other JAX computation. Does nothing when no argument
    is given (a single-host run).

    A program that has already started JAX's backend (any computation, or
    importing jax-md's whole package, whose ``jax_md.rigid_body`` builds arrays
    at import; ``ase_learn2hop`` imports only the jax-md modules it uses,
    `ase_learn2hop.lazy_imports`) makes ``jax.distributed.initialize`` refuse
    to run. Such a program, if it has computed nothing it still needs (the
    ``learn2hop`` command line), passes ``discard_import_backend``: the backend
    is dropped (``jax.extend.backend.clear_backends``) and started again inside
    the distributed system. Arrays made before stay on the dropped backend and
    must not be used.

    Args:
        coordinator_address: "host:port" of process 0.
        num_processes: number of processes in the run.
        process_id: this process's index, 0 to num_processes - 1.
        discard_import_backend: drop a backend that is already started (see
            above) instead of failing.

    Returns:
        True if the distributed system was initialized, False for the no-op.

    Example:
        >>> initialize_distributed("10.0.0.1:1234", num_processes=2, process_id=0)
    """
    if coordinator_address is None and num_processes is None and process_id is None:
        return False
    if discard_import_backend:
        from jax.extend.backend import clear_backends

        clear_backends()
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
    )
    return True


def computed_on_process_zero(
    name: str, compute: Callable[[], Any], timeout_s: float = 24 * 3600.0
) -> Any:
    """``compute()`` on process 0, its (JSON) value handed to every process.

    The other processes wait for it through the coordinator's key-value store (no
    device collective, so a long computation on process 0 does not time out a
    collective) and never call ``compute`` themselves: what process 0 alone does
    (writing a cache file, say) is not done twice at once. JSON keeps floats exact.
    In a single-process run this is just ``compute()``.

    Args:
        name: key of the value, unique within the run.
        compute: returns a JSON-serializable value.
        timeout_s: how long the other processes wait for it.

    Returns:
        The value process 0 computed.

    Example:
        >>> energies = computed_on_process_zero("adam", lambda: [-44.3, -16.5])
    """
    if jax.process_count() == 1:
        return compute()
    from jax._src import distributed as jax_distributed

    client = jax_distributed.global_state.client
    key = f"ase_learn2hop/{name}"
    if jax.process_index() == 0:
        value = compute()
        client.key_value_set(key, json.dumps(value))
        return value
    return json.loads(client.blocking_key_value_get(key, int(timeout_s * 1000)))


def assert_same_on_all_processes(tree: PyTree, what: str) -> None:
    """Raises on every process unless all processes hold bitwise the same ``tree``.

    Every process runs the same program on the same data (``make_population_
    evaluator`` hands them the same losses), so they must agree; this is the check
    that they did. No-op in a single-process run.

    Args:
        tree: a pytree of arrays or numbers.
        what: what ``tree`` is, for the error message.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    multihost_utils.assert_equal(
        jax.tree.map(np.asarray, tree),
        f"the {jax.process_count()} processes disagree on {what}",
    )


def make_population_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all visible ones, every host).

    Args:
        devices: devices to shard the population over.

    Returns:
        ``Mesh`` with the single axis "population".

    Example:
        >>> mesh = make_population_mesh()
    """
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (POPULATION_AXIS,))


def _leading_size(tree: PyTree, what: str) -> int:
    sizes = {
        np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(tree)
    }
    if not sizes or None in sizes or len(sizes) != 1:
        raise ValueError(
            f"every leaf of {what} needs the same leading (population) axis; "
            f"got leading sizes {sizes}"
        )
    return sizes.pop()


def _pad_to(tree: PyTree, size: int) -> PyTree:
    def pad(leaf: jax.Array) -> jax.Array:
        leaf = jnp.asarray(leaf)
        n_missing = size - leaf.shape[0]
        if n_missing == 0:
            return leaf
        # Copies of a real member evaluate safely; their losses are discarded.
        return jnp.concatenate([leaf, jnp.repeat(leaf[:1], n_missing, axis=0)])

    return jax.tree.map(pad, tree)


def _put_sharded(tree: PyTree, sharding: NamedSharding) -> PyTree:
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    # Every process holds the same host data; each one supplies its own shards.
    def put(leaf: jax.Array) -> jax.Array:
        host = np.asarray(leaf)
        return jax.make_array_from_callback(
            host.shape, sharding, lambda index: host[index]
        )

    return jax.tree.map(put, tree)


def make_population_evaluator(
    loss_fn: Callable[[PyTree, PyTree], jax.Array], mesh: Mesh | None = None
) -> Callable[[PyTree, PyTree], jax.Array]:
    """Builds ``evaluate(candidates, instances) -> losses``, sharded over ``mesh``.

    The compiled function is kept, so build the evaluator once and call it every
    update. A population that is not a multiple of the device count is padded with
    copies of its first member, whose losses are dropped.

    Args:
        loss_fn: ``loss_fn(theta, instance) -> scalar`` meta-loss of one candidate on
            one problem instance (dimensionless, lower is better).
        mesh: from ``make_population_mesh``; default all visible devices.

    Returns:
        ``evaluate(candidates, instances)``: both pytrees with leading axis
        ``[population, ...]``; returns the ``[population]`` float losses on the
        default device, the same on every process.

    Example:
        >>> evaluate = make_population_evaluator(loss_fn, make_population_mesh())
        >>> losses = evaluate(candidates, instances)
    """
    mesh = make_population_mesh() if mesh is None else mesh
    population_sharding = NamedSharding(mesh, PartitionSpec(POPULATION_AXIS))
    # Losses are a short vector: gather them everywhere so every host can tell.
    replicated = NamedSharding(mesh, PartitionSpec())
    batched_loss = jax.jit(
        jax.vmap(loss_fn),
        in_shardings=(population_sharding, population_sharding),
        out_shardings=replicated,
    )
    n_devices = mesh.devices.size

    def evaluate(candidates: PyTree, instances: PyTree) -> jax.Array:
        population = _leading_size(candidates, "candidates")
        n_instances = _leading_size(instances, "instances")
        if n_instances != population:
            raise ValueError(
                f"{population} candidates but {n_instances} instances: give one "
                "instance per candidate (see strategies.repeat_instances)"
            )
        padded_size = -(-population // n_devices) * n_devices
        candidates = _put_sharded(_pad_to(candidates, padded_size), population_sharding)
        instances = _put_sharded(_pad_to(instances, padded_size), population_sharding)
        losses = batched_loss(candidates, instances)
        if losses.shape != (padded_size,):
            raise ValueError(
                f"loss_fn must return a scalar; vmapped output has shape {losses.shape}"
            )
        # Back to an ordinary default-device array, so that the strategy's update
        # (and anything the caller does with the losses) is not pinned to the mesh.
        return jnp.asarray(np.asarray(losses)[:population])

    return evaluate
