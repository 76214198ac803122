"""Meta-training of learned optimizers: ES, ESMC and GA (paper 3.2-3.3, B, D).

Imported as ``ase_learn2hop.training`` (only: ``training/`` is installed there
through ``package-dir``; inside it imports are relative). The engine is generic: it minimizes any meta-loss
``loss_fn(theta, instance) -> scalar`` over a pytree ``theta``.
"""

from .checkpoint import checkpoint_exists, restore_checkpoint, save_checkpoint
from .distributed import (
    initialize_distributed,
    make_population_evaluator,
    make_population_mesh,
)
from .estimators import es_gradient, esmc_gradient
from .loop import TrainingResult, TrainingState, plot_meta_loss, train
from .strategies import (
    STRATEGIES,
    ESState,
    GAState,
    Strategy,
    antithetic_es,
    default_meta_optimizer,
    esmc,
    genetic_algorithm,
    make_strategy,
    repeat_instances,
)

__all__ = [
    "STRATEGIES",
    "ESState",
    "GAState",
    "Strategy",
    "TrainingResult",
    "TrainingState",
    "antithetic_es",
    "checkpoint_exists",
    "default_meta_optimizer",
    "es_gradient",
    "esmc",
    "esmc_gradient",
    "genetic_algorithm",
    "initialize_distributed",
    "make_population_evaluator",
    "make_population_mesh",
    "make_strategy",
    "plot_meta_loss",
    "repeat_instances",
    "restore_checkpoint",
    "save_checkpoint",
    "train",
]
