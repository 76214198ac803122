"""Checkpoints of a meta-training run, without pickle.

One checkpoint is a directory holding

* ``checkpoint.msgpack``: the whole training state (theta, strategy state with the
  optimizer state, PRNG key, update index, best theta and its validation loss) and
  the history, as flax msgpack. It alone is read back, so it is self-consistent.
* ``checkpoint.json``: a human-readable sidecar (update index, best validation
  loss, sha256 of the msgpack file, caller's metadata).

Both are written to a temporary file and moved into place with ``os.replace``, so a
run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

PyTree = Any
STATE_FILENAME = "checkpoint.msgpack"
SIDECAR_FILENAME = "checkpoint.json"
FORMAT_VERSION = 1


def json_safe(value: Any) -> Any:
    """Converts metrics to strict JSON: non-finite floats become None.

    Args:
        value: a number, bool, string, None, or a dict / list of them (NumPy and
            JAX scalars included).

    Returns:
        The same structure made of plain Python values.
    """
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if value is None or isinstance(value, str):
        return value
    array = np.asarray(value)
    if array.dtype == np.bool_:
        return bool(array)
    if np.issubdtype(array.dtype, np.integer):
        return int(array)
    number = float(array)
    return number if math.isfinite(number) else None


def _write_atomically(path: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def checkpoint_exists(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds a checkpoint written by ``save_checkpoint``."""
    return (Path(directory) / STATE_FILENAME).is_file()


def save_checkpoint(
    directory: str | os.PathLike,
    state: PyTree,
    history: list[dict[str, Any]],
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Writes ``state`` and ``history`` to ``directory`` atomically.

    Args:
        directory: checkpoint directory (created if missing).
        state: pytree of arrays, scalars and NamedTuples (a ``TrainingState``).
        history: per-update metric dicts (JSON-serializable).
        metadata: extra JSON-serializable facts for the sidecar (strategy name,
            configuration); not read back.

    Returns:
        Path of the msgpack file.

    Example:
        >>> save_checkpoint("runs/lj13", training_state, history)
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "state": jax.device_get(serialization.to_state_dict(state)),
        # JSON inside msgpack: the history's dicts vary in keys from row to row.
        "history_json": json.dumps(json_safe(history)),
    }
    data = serialization.msgpack_serialize(payload)
    state_path = directory / STATE_FILENAME
    _write_atomically(state_path, data)
    sidecar = {
        "format_version": FORMAT_VERSION,
        "update_index": json_safe(getattr(state, "update_index", None)),
        "best_validation_loss": json_safe(getattr(state, "best_validation_loss", None)),
        "n_history_rows": len(history),
        "saved_at_unix": time.time(),
        "state_sha256": hashlib.sha256(data).hexdigest(),
        "metadata": json_safe(metadata or {}),
    }
    _write_atomically(
        directory / SIDECAR_FILENAME, json.dumps(sidecar, indent=2).encode()
    )
    return state_path


def restore_checkpoint(
    directory: str | os.PathLike, template: PyTree
) -> tuple[PyTree, list[dict[str, Any]]]:
    """Reads a checkpoint back into the structure of ``template``.

    Args:
        directory: directory given to ``save_checkpoint``.
        template: a state with the same structure (e.g. a freshly initialized
            ``TrainingState``); only its structure is used.

    Returns:
        ``(state, history)``; arrays come back as JAX arrays with their saved dtypes
        and exact values.

    Raises:
        FileNotFoundError: no checkpoint in ``directory``.
        ValueError: unknown format version or a state that does not fit the template.

    Example:
        >>> state, history = restore_checkpoint("runs/lj13", initial_state)
    """
    state_path = Path(directory) / STATE_FILENAME
    payload = serialization.msgpack_restore(state_path.read_bytes())
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{state_path}: checkpoint format {payload.get('format_version')!r}, "
            f"this code reads format {FORMAT_VERSION}"
        )
    state = serialization.from_state_dict(template, payload["state"])
    state = jax.tree.map(
        lambda leaf: jnp.asarray(leaf) if isinstance(leaf, np.ndarray) else leaf, state
    )
    return state, json.loads(payload["history_json"])
