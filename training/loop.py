"""The meta-training loop: sample, ask, evaluate (sharded), tell; validate; resume.

Paper sections 3.2-3.3 and appendix B: each update draws fresh problem instances,
evaluates the strategy's population on them over all devices and updates theta. The
exported theta is the best one on a FIXED validation set, not the last one, because
the meta-loss of ES-type training can jump up late ("forgets", paper B).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from tqdm.auto import tqdm

from .checkpoint import (
    checkpoint_exists,
    json_safe,
    restore_checkpoint,
    save_checkpoint,
)
from .distributed import (
    assert_same_on_all_processes,
    make_population_evaluator,
    make_population_mesh,
)
from .strategies import Strategy, repeat_instances

PyTree = Any


class TrainingState(NamedTuple):
    """Everything a resumed run needs besides the history.

    Attributes:
        strategy_state: the strategy's state; ``strategy_state.theta`` is theta.
        key: raw ``uint32[2]`` PRNG key for the next update.
        update_index: number of updates done.
        best_theta: theta with the lowest validation loss so far (the latest theta
            when there is no validation set).
        best_validation_loss: its mean validation meta-loss (inf before any).
    """

    strategy_state: Any
    key: jax.Array
    update_index: int
    best_theta: PyTree
    best_validation_loss: float


class TrainingResult(NamedTuple):
    """What ``train`` returns.

    Attributes:
        theta: theta after the last update.
        best_theta: the theta to export: best on the validation set (the last theta
            when no validation set was given).
        best_validation_loss: its mean validation meta-loss, or None.
        history: one metric dict per update (plus an ``update`` 0 row holding the
            initial validation loss when there is a validation set).
        state: the final ``TrainingState``.
    """

    theta: PyTree
    best_theta: PyTree
    best_validation_loss: float | None
    history: list[dict[str, Any]]
    state: TrainingState


def _raw_key(key: jax.Array) -> jax.Array:
    key = jnp.asarray(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def _tile_theta(theta: PyTree, n: int) -> PyTree:
    return jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (n, *leaf.shape)), theta)


def _mean_validation_loss(
    evaluate: Callable[[PyTree, PyTree], jax.Array],
    theta: PyTree,
    validation_instances: PyTree,
    n_validation: int,
) -> float:
    losses = evaluate(_tile_theta(theta, n_validation), validation_instances)
    # A collapse on the fixed validation set disqualifies theta: count it as +inf.
    losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
    return float(jnp.mean(losses))


def _write_metrics(path: Path, rows: list[dict[str, Any]], mode: str) -> None:
    with open(path, mode) as stream:
        stream.writelines(json.dumps(json_safe(row)) + "\n" for row in rows)
        stream.flush()


def _progress_loss(metrics: Mapping[str, Any]) -> float | None:
    for name in ("theta_loss", "mean_loss"):
        value = metrics.get(name)
        if value is not None:
            return value
    return None


def train(
    strategy: Strategy,
    theta0: PyTree,
    loss_fn: Callable[[PyTree, PyTree], jax.Array],
    sample_instances: Callable[[jax.Array, int], PyTree],
    *,
    n_updates: int,
    key: jax.Array,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    validation_instances: PyTree | None = None,
    validate_every: int = 10,
    progress: bool = True,
    metrics_path: str | os.PathLike | None = None,
    mesh: Mesh | None = None,
    metadata: dict[str, Any] | None = None,
) -> TrainingResult:
    """Meta-trains ``theta`` with ``strategy`` (paper 3.2-3.3).

    Each update samples fresh instances, asks the strategy for its population,
    evaluates it sharded over ``mesh`` and tells the losses back (plus the GA's
    confirmation on further fresh instances). Every ``validate_every`` updates (and
    after the last) theta is scored on ``validation_instances``; the best is kept.
    When ``checkpoint_dir`` holds a checkpoint, the run resumes from it and gives
    the same result as an uninterrupted run. (A finished run extended to a larger
    ``n_updates`` also keeps the validation made at its old last update.)

    Args:
        strategy: from ``strategies`` (``esmc()``, ``antithetic_es()``,
            ``genetic_algorithm()``).
        theta0: initial meta-parameters (pytree of float arrays).
        loss_fn: ``loss_fn(theta, instance) -> scalar`` meta-loss, lower is better;
            non-finite values (collapsed atoms) are allowed.
        sample_instances: ``sample_instances(key, n) -> instances``, a pytree with
            leading axis ``[n, ...]`` of fresh problem instances.
        n_updates: total number of updates (counting those of a resumed run).
        key: PRNG key (raw ``uint32[2]`` or typed).
        checkpoint_dir: directory for checkpoints; resumed from when it has one.
        checkpoint_every: updates between checkpoints (one is always written last).
        validation_instances: FIXED instance pytree ``[n_validation, ...]``.
        validate_every: updates between validations.
        progress: show a tqdm bar with the current meta-loss.
        metrics_path: JSON-lines file, one row per update (rewritten from the
            checkpoint's history on resume).
        mesh: device mesh for the population; default all visible devices.
        metadata: JSON-serializable facts stored in the checkpoint sidecar.

    Returns:
        A ``TrainingResult``.

    Example:
        >>> result = train(esmc(), theta0, loss_fn, sample_instances,
        ...                n_updates=1000, key=jax.random.PRNGKey(0),
        ...                checkpoint_dir="runs/lj13", metrics_path="runs/lj13.jsonl")
    """
    mesh = make_population_mesh() if mesh is None else mesh
    evaluate = make_population_evaluator(loss_fn, mesh)
    # In a multi-host run every process computes the same; one writes the files.
    writes_files = jax.process_index() == 0
    metadata = {"strategy": strategy.name, **(metadata or {})}

    # fold_in: a stream apart from the split() chain the updates use.
    strategy_state = strategy.init(jax.random.fold_in(_raw_key(key), 0), theta0)
    state = TrainingState(
        strategy_state=strategy_state,
        key=_raw_key(key),
        update_index=0,
        best_theta=strategy_state.theta,
        best_validation_loss=math.inf,
    )
    n_validation = None
    if validation_instances is not None:
        n_validation = jax.tree.leaves(validation_instances)[0].shape[0]

    history: list[dict[str, Any]] = []
    resume = checkpoint_dir is not None and checkpoint_exists(checkpoint_dir)
    # Processes that do not see the same checkpoint (no shared file system) would
    # run different programs; they must fail here, all of them, not hang later.
    what = "the checkpoint to resume from (do all processes see the same folder?)"
    assert_same_on_all_processes(resume, what)
    if resume:
        state, history = restore_checkpoint(checkpoint_dir, state)
        assert_same_on_all_processes((state.update_index, state.key), what)
    elif n_validation is not None:
        validation_loss = _mean_validation_loss(
            evaluate, state.strategy_state.theta, validation_instances, n_validation
        )
        state = state._replace(best_validation_loss=validation_loss)
        history.append(json_safe({"update": 0, "validation_loss": validation_loss}))

    if metrics_path is not None and writes_files:
        metrics_path = Path(metrics_path)
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        # Rows past the checkpoint belong to a run that was cut off: drop them.
        _write_metrics(metrics_path, history, "w")
    elapsed_before = next(
        (row["elapsed_s"] for row in reversed(history) if "elapsed_s" in row), 0.0
    )
    run_start = time.perf_counter()

    with tqdm(
        total=n_updates,
        initial=min(state.update_index, n_updates),
        disable=not progress,
        desc=f"meta-training ({strategy.name})",
    ) as bar:
        for update in range(state.update_index + 1, n_updates + 1):
            update_start = time.perf_counter()
            key, sample_key, ask_key, confirm_key = jax.random.split(state.key, 4)
            instances = sample_instances(sample_key, strategy.n_instances)
            candidates, strategy_state = strategy.ask(ask_key, state.strategy_state)
            losses = evaluate(
                candidates, repeat_instances(instances, strategy.n_groups)
            )
            strategy_state, metrics = strategy.tell(strategy_state, losses)
            metrics = dict(metrics)
            if strategy.confirm_tell is not None and bool(strategy_state.has_proposal):
                confirm_instances = sample_instances(
                    confirm_key, strategy.n_confirm_instances
                )
                confirm_losses = evaluate(
                    strategy.confirm_ask(strategy_state),
                    repeat_instances(confirm_instances, 2),
                )
                strategy_state, confirm_metrics = strategy.confirm_tell(
                    strategy_state, confirm_losses
                )
                metrics.update(confirm_metrics)

            state = state._replace(
                strategy_state=strategy_state, key=key, update_index=update
            )
            row = {"update": update, **json_safe(metrics)}
            if n_validation is None:
                state = state._replace(best_theta=strategy_state.theta)
            elif update % validate_every == 0 or update == n_updates:
                validation_loss = _mean_validation_loss(
                    evaluate, strategy_state.theta, validation_instances, n_validation
                )
                row["validation_loss"] = json_safe(validation_loss)
                if validation_loss < state.best_validation_loss:
                    state = state._replace(
                        best_theta=strategy_state.theta,
                        best_validation_loss=validation_loss,
                    )
            now = time.perf_counter()
            row["wall_time_s"] = now - update_start
            row["elapsed_s"] = elapsed_before + (now - run_start)
            history.append(row)

            if metrics_path is not None and writes_files:
                _write_metrics(metrics_path, [row], "a")
            checkpoint_due = update % checkpoint_every == 0 or update == n_updates
            if checkpoint_dir is not None and writes_files and checkpoint_due:
                save_checkpoint(checkpoint_dir, state, history, metadata)
            bar.update(1)
            postfix = {"meta_loss": _progress_loss(row)}
            if math.isfinite(state.best_validation_loss):
                postfix["best_validation"] = state.best_validation_loss
            bar.set_postfix(postfix, refresh=False)

    best_validation_loss = (
        state.best_validation_loss if n_validation is not None else None
    )
    return TrainingResult(
        theta=state.strategy_state.theta,
        best_theta=state.best_theta,
        best_validation_loss=best_validation_loss,
        history=history,
        state=state,
    )


def _read_metric(path: str | os.PathLike, metric: str) -> tuple[list, list]:
    updates, values = [], []
    with open(path) as stream:
        for line in stream:
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get(metric) is not None:
                updates.append(row["update"])
                values.append(row[metric])
    return updates, values


def _moving_average(values: list[float], window: int) -> list[float]:
    averaged = []
    for index in range(len(values)):
        window_values = values[max(0, index - window + 1) : index + 1]
        averaged.append(sum(window_values) / len(window_values))
    return averaged


def plot_meta_loss(
    metrics_paths: Mapping[str, str | os.PathLike],
    out_png: str | os.PathLike,
    *,
    metric: str = "mean_loss",
    smoothing: int = 1,
    title: str | None = "Meta-training: ES vs ESMC vs GA",
) -> Path:
    """Plots one meta-loss curve per run in one figure (paper Figure 3).

    Args:
        metrics_paths: ``{label: metrics JSON-lines path}`` written by ``train``.
        out_png: output image path.
        metric: row key to plot ("mean_loss", "theta_loss", "validation_loss", ...).
        smoothing: moving-average window in updates (1: raw).
        title: figure title, or None.

    Returns:
        Path of the written image.

    Example:
        >>> plot_meta_loss({"ES": "es.jsonl", "ESMC": "esmc.jsonl",
        ...                 "GA": "ga.jsonl"}, "figure3.png")
    """
    # The Figure API, not pyplot: no global backend or figure state is touched.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.subplots()
    for label, path in metrics_paths.items():
        updates, values = _read_metric(path, metric)
        if values:
            axes.plot(updates, _moving_average(values, max(1, smoothing)), label=label)
    axes.set_xlabel("meta-update")
    axes.set_ylabel(f"meta-loss ({metric})")
    if title:
        axes.set_title(title)
    axes.legend()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=150)
    return out_png
