"""Run a meta-training experiment from a JSON config, and export its weights.

A config (``training/configs/*.json``) names the systems, the strategy and its
scale; every key can be overridden from the command line::

    learn2hop train training/configs/lj13_cpu.json --strategy ga --updates 50
    python -m ase_learn2hop.training training/configs/lj13_cpu.json

A run writes into ``--out`` (default ``runs/NAME``): ``checkpoint.msgpack`` (resumed
from when the run is started again), ``metrics.jsonl`` (one line per update),
``meta_loss.png`` and, at the end, the weight file ``NAME.safetensors`` +
``NAME.json`` of the best theta by validation loss, with its manifest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import ase_learn2hop
from ase_learn2hop.features import FeatureSet
from ase_learn2hop.learned_hopping import HoppingConfig
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, init_theta
from ase_learn2hop.protocols import trained_hop_steps
from ase_learn2hop.systems import system_from_name
from ase_learn2hop.weights import load_weights, save_weights

from .checkpoint import checkpoint_exists, restore_checkpoint
from .distributed import (
    assert_same_on_all_processes,
    computed_on_process_zero,
    initialize_distributed,
)
from .loop import TrainingState, plot_meta_loss, train
from .strategies import make_strategy
from .tasks import (
    MetaTask,
    make_hopping_meta_loss,
    make_instance_sampler,
    make_meta_loss,
    make_tasks,
)

DEFAULTS: dict[str, Any] = {
    "strategy": "esmc",
    "horizon": 1000,
    "population": 16,
    "updates": 100,
    "sigma": 0.1,
    "learning_rate": 0.01,
    "seed": 0,
    "validation_starts": 16,
    "validate_every": 10,
    "checkpoint_every": 5,
    "polish_steps": 1000,
    "adam_reference_starts": 150,
    "features": {},
    "hidden_sizes": [32, 32],
    "network_dtype": "float32",
    # A weight file to start from instead of a fresh theta (fine-tuning).
    "init_weights": None,
    # Share of training starts that are local minima (see tasks.make_instance_sampler).
    "minimum_start_fraction": 0.0,
    # "paper": H learned steps + polish, final energy (paper 3.3); "hopping":
    # learned basin hopping for `budget` force calls, hops of `horizon` learned
    # steps, mean best-so-far energy (tasks.make_hopping_meta_loss).
    "protocol": "paper",
    "budget": 2000,
    "temperature": 0.8,
    # Hopping only: hops of this many learned steps per atom (None: ``horizon``).
    "hop_steps_per_atom": None,
    # Hopping only: "energy" (mean best-so-far energy) or "time_to_minimum"
    # (share of the budget spent before the global minimum; tasks.HOPPING_OBJECTIVES).
    "objective": "energy",
    # Starts per task that one candidate is judged on (a hit time is noisy).
    "runs_per_instance": 1,
}
OVERRIDABLE = (
    "strategy",
    "horizon",
    "population",
    "updates",
    "seed",
    "sigma",
    "learning_rate",
    "budget",
    "runs_per_instance",
    "validation_starts",
)


def configs_directory() -> Path:
    """The folder of the shipped training configs."""
    return Path(__file__).parent / "configs"


def load_config(path_or_name: str) -> dict[str, Any]:
    """Read a config file (or a shipped config by name) and fill in defaults."""
    path = Path(path_or_name)
    if not path.exists():
        path = configs_directory() / f"{path_or_name.removesuffix('.json')}.json"
    if not path.exists():
        shipped = sorted(p.stem for p in configs_directory().glob("*.json"))
        raise SystemExit(
            f"no training config {path_or_name!r}; shipped configs: {shipped}"
        )
    config = {**DEFAULTS, **json.loads(path.read_text())}
    if "name" not in config or "systems" not in config:
        raise SystemExit(f"{path}: a config needs 'name' and 'systems'")
    return config


def current_commit() -> str:
    """The git commit of the code that trains, ``+dirty`` when tracked files were
    modified (``unknown`` outside a checkout)."""

    def git(*arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def network_config(config: dict[str, Any]) -> LearnedOptimizerConfig:
    """The learned optimizer's architecture a training config asks for."""
    return LearnedOptimizerConfig(
        features=FeatureSet.from_dict(config["features"]),
        hidden_sizes=tuple(config["hidden_sizes"]),
        network_dtype=config["network_dtype"],
    )


def strategy_from_config(config: dict[str, Any]):
    if config["strategy"] == "ga":
        return make_strategy(
            "ga",
            population_size=config["population"],
            sigma=config["sigma"],
            n_confirm_instances=config.get("confirm_instances", config["population"]),
        )
    from .strategies import default_meta_optimizer

    return make_strategy(
        config["strategy"],
        n_pairs=config["population"],
        sigma=config["sigma"],
        optimizer=default_meta_optimizer(learning_rate=config["learning_rate"]),
    )


def tasks_from_config(config: dict[str, Any]):
    """The run's `MetaTask`s, the same on every process of a multi-process run.

    Process 0 alone computes (or reads from its cache) the Adam references and
    hands them to the others: processes sharing the cache folder do not write the
    same file at once, and the meta-loss scales, and with them every loss, are
    bitwise the same everywhere.
    """

    def adam_energies() -> list[float]:
        tasks = make_tasks(
            config["systems"],
            adam_steps=adam_reference_steps(config),
            n_starts=config["adam_reference_starts"],
        )
        return [task.adam_best_energy for task in tasks]

    energies = computed_on_process_zero("adam_reference_energies", adam_energies)
    return [
        MetaTask(system_from_name(name), float(energy))
        for name, energy in zip(config["systems"], energies)
    ]


def adam_reference_steps(config: dict[str, Any]) -> int:
    """Adam steps of the loss scale: the horizon (paper) or the budget (hopping)."""
    return config["budget"] if config["protocol"] == "hopping" else config["horizon"]


def hopping_config(config: dict[str, Any], n_atoms: int) -> HoppingConfig:
    """The learned basin hopping a hopping-protocol config trains for on a
    system of ``n_atoms`` (`protocols.trained_hop_steps`, which the
    optimizer reads from the weights' manifest too)."""
    return HoppingConfig(
        hop_steps=trained_hop_steps(config, n_atoms),
        temperature=float(config["temperature"]),
    )


def meta_loss_from_config(config: dict[str, Any], tasks, network):
    if config["protocol"] == "hopping":
        return make_hopping_meta_loss(
            tasks,
            network,
            [hopping_config(config, task.system.n_atoms) for task in tasks],
            int(config["budget"]),
            objective=config["objective"],
        )
    if config["protocol"] != "paper":
        raise SystemExit(
            f"protocol must be 'paper' or 'hopping', got {config['protocol']!r}"
        )
    if config["objective"] != "energy" or config["runs_per_instance"] != 1:
        raise SystemExit(
            "the paper's protocol has one objective (the final energy) and one "
            "start per instance: 'objective' and 'runs_per_instance' are for "
            "'protocol': 'hopping'"
        )
    return make_meta_loss(tasks, network, config["horizon"], config["polish_steps"])


def run_training(
    config: dict[str, Any], out: Path, progress: bool = True
) -> Path | None:
    """Train as ``config`` says; returns the exported weight manifest's path.

    In a multi-process run (``initialize_distributed``) every process trains the
    same theta; process 0 alone writes into ``out`` (config, checkpoints, metrics,
    figure, weights) and the others return None. ``out`` is read back by every
    process when the run resumes, so give it a folder all processes see (a shared
    file system) or the same path on every host.
    """
    writes_files = jax.process_index() == 0
    if writes_files:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    network = network_config(config)
    tasks = tasks_from_config(config)
    key = jax.random.key(config["seed"])
    theta_key, train_key, validation_key = jax.random.split(key, 3)
    theta0 = init_theta(theta_key, network)
    if config["init_weights"]:
        start = load_weights(config["init_weights"])
        if start.config != network:
            raise SystemExit(
                f"init_weights {config['init_weights']} has configuration "
                f"{start.config.to_dict()}, this run needs {network.to_dict()}"
            )
        theta0 = start.theta
    sample_instances = make_instance_sampler(
        tasks, config["minimum_start_fraction"], config["runs_per_instance"]
    )
    loss_fn = meta_loss_from_config(config, tasks, network)
    started = time.time()
    result = train(
        strategy_from_config(config),
        theta0,
        loss_fn,
        sample_instances,
        n_updates=config["updates"],
        key=jax.random.key_data(train_key),
        checkpoint_dir=out,
        checkpoint_every=config["checkpoint_every"],
        validation_instances=sample_instances(
            validation_key, config["validation_starts"]
        ),
        validate_every=config["validate_every"],
        progress=progress,
        metrics_path=out / "metrics.jsonl",
        metadata={"config": config},
    )
    elapsed = time.time() - started
    if jax.process_count() > 1:
        # Every process ran the same program on the same losses; say so loudly if
        # they drifted apart instead of exporting one process's theta silently.
        assert_same_on_all_processes(
            (result.theta, result.best_theta, result.best_validation_loss),
            "final theta, best theta and best validation loss",
        )
    if not writes_files:
        return None
    plot_meta_loss({config["strategy"]: out / "metrics.jsonl"}, out / "meta_loss.png")
    return export_weights(
        config,
        network,
        tasks,
        result.best_theta,
        result.best_validation_loss,
        result.history,
        out,
        elapsed,
    )


def export_weights(
    config,
    network,
    tasks,
    best_theta,
    best_validation_loss,
    history,
    out: Path,
    elapsed: float,
) -> Path:
    """Write ``best_theta`` as ``out/NAME`` with its manifest."""
    curve = [row.get("mean_loss") for row in history if "mean_loss" in row]
    validation = [
        {"update": row["update"], "validation_loss": row["validation_loss"]}
        for row in history
        if row.get("validation_loss") is not None
    ]
    max_species = max(len(set(task.system.symbols)) for task in tasks)
    return save_weights(
        out / config["name"],
        best_theta,
        network,
        horizon=config["horizon"],
        systems=[task.system.name for task in tasks],
        potentials=sorted({task.system.potential for task in tasks}),
        max_species=max_species,
        training={k: v for k, v in config.items() if k not in ("name", "systems")},
        seed=config["seed"],
        commit=current_commit(),
        package_version=ase_learn2hop.__version__,
        command=config.get("command", f"learn2hop train {config['name']}"),
        training_time_s=round(elapsed, 1),
        metrics={
            "best_validation_loss": best_validation_loss,
            "adam_best_energy": {t.system.name: t.adam_best_energy for t in tasks},
            "validation": validation,
            "meta_loss_curve": curve,
        },
        notes=config.get("notes", ""),
    )


def export_checkpoint(run_directory: Path, out: Path | None = None) -> Path:
    """Export the best theta of a (possibly unfinished) run's checkpoint."""
    config = json.loads((run_directory / "config.json").read_text())
    if not checkpoint_exists(run_directory):
        raise SystemExit(f"{run_directory} has no checkpoint")
    network = network_config(config)
    tasks = make_tasks(
        config["systems"],
        adam_steps=adam_reference_steps(config),
        n_starts=config["adam_reference_starts"],
    )
    template_theta = init_theta(jax.random.key(0), network)
    strategy = strategy_from_config(config)
    template = TrainingState(
        strategy.init(jax.random.key(0), template_theta),
        np.zeros(2, np.uint32),
        0,
        template_theta,
        float("inf"),
    )
    state, history = restore_checkpoint(run_directory, template)
    target = Path(out) if out is not None else run_directory
    elapsed = sum(row.get("wall_time_s") or 0.0 for row in history)
    return export_weights(
        config,
        network,
        tasks,
        state.best_theta,
        state.best_validation_loss,
        history,
        target,
        elapsed,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", help="config file or shipped config name (e.g. lj13_cpu)"
    )
    parser.add_argument("--out", help="run directory (default runs/NAME)")
    for name in OVERRIDABLE:
        kind = (
            str
            if name == "strategy"
            else (float if name in ("sigma", "learning_rate") else int)
        )
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, dest=name)
    parser.add_argument(
        "--coordinator-address", help="jax.distributed coordinator host:port"
    )
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def train_command(args: argparse.Namespace) -> int:
    # Nothing has computed yet, but importing our modules imported jax_md, which
    # started the backend (see initialize_distributed).
    initialize_distributed(
        args.coordinator_address,
        args.num_processes,
        args.process_id,
        discard_import_backend=True,
    )
    config = load_config(args.config)
    config["command"] = "learn2hop train " + " ".join(
        sys.argv[2:] if sys.argv[1:2] == ["train"] else sys.argv[1:]
    )
    for name in OVERRIDABLE:
        if getattr(args, name) is not None:
            config[name] = getattr(args, name)
    out = Path(args.out) if args.out else Path("runs") / config["name"]
    manifest = run_training(config, out, progress=not args.quiet)
    if manifest is None:
        print(
            f"process {jax.process_index()} of {jax.process_count()} done; "
            "process 0 writes the files"
        )
    else:
        print(f"wrote {manifest} and {manifest.with_suffix('.safetensors')}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    manifest = export_checkpoint(Path(args.run_directory), args.out and Path(args.out))
    print(f"wrote {manifest}")
    return 0


def register_commands(commands) -> None:
    """Add ``train`` and ``export`` to the ``learn2hop`` command line."""
    train_parser = commands.add_parser("train", help="meta-train a learned optimizer")
    add_arguments(train_parser)
    train_parser.set_defaults(handler=train_command)
    export_parser = commands.add_parser(
        "export", help="export a training checkpoint's weights"
    )
    export_parser.add_argument("run_directory")
    export_parser.add_argument(
        "--out", help="folder for the weight file (default: the run's)"
    )
    export_parser.set_defaults(handler=export_command)


def main(argv: list[str] | None = None) -> int:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(
        prog="python -m ase_learn2hop.training", description=__doc__
    )
    add_arguments(parser)
    return train_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
