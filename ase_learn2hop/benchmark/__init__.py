"""The benchmark: the learned optimizer beside Adam, FIRE and basin hopping.

Reproduces the paper's evaluation (section 4, 6, appendix C; SPEC section 6) and
puts ASE's own ``FIRE`` and ``BasinHopping`` beside it, so that users see the tools
they already run on the same footing.

Fairness rules, the same for every method:

- **Same starts.** Every method starts from ``systems.starting_structures(key,
  system, n_starts)`` with the same key (``--seed``); ASE's tools take the first
  ``ase_starts`` of them.
- **Same budget.** Adam and FIRE make ``steps`` steps; the paper's basin hopping
  gets ``budget = steps`` energy-and-gradient evaluations; the learned optimizer
  makes ``steps`` learned steps in cycles of its training horizon H, each cycle
  ending with the paper's polish (so its count includes those polishes); ASE's
  tools get at most ``steps`` force calls.
- **Same polish.** The last and the lowest structure of every run are polished
  with ``descent.polish`` (1000 gradient-descent steps at learning rate 1e-3,
  paper 3.3) and the lower is kept: "energy" below is the lowest energy reached
  per start, after the polish. ASE's runs polish their lowest structure.
- **Every evaluation charged.** Evaluations per start are counted as run, polish
  included, and reported beside the energies.

Adam and FIRE run every learning rate of ``descent.BASELINE_LEARNING_RATES``,
basin hopping every step size of ``BASIN_HOPPING_STEP_SIZES``; the table reports
the one with the lowest mean energy and the JSON keeps them all. A start "hits"
the global minimum when its energy is within 1e-3 relative of the known global
minimum (SPEC section 6); the benchmark also reports how many evaluations (and,
for ASE, seconds) each method took to first reach it.

Numerics are pure JAX: each method is an ``Optimizer(init_fn, step_fn)`` run over
the batch of starts with ``vmap`` and ``lax.scan``, in jitted chunks so that
progress bars advance and Ctrl-C stops between chunks. A benchmark interrupted
with Ctrl-C writes the tables, JSON and figures of what it finished.

Command line: ``learn2hop benchmark`` (full tables and figures) and
``learn2hop compare`` (LJ13 in about two minutes; the README's first command).

Modules, each importing only those above it in this list:

- `protocol`: the methods (`protocol.METHODS`: label, colour, note), the paper's
  numbers and tolerances, the result types, system names;
- `runners`: Adam, FIRE, the paper's basin hopping and the learned optimizer,
  batched, and the polish;
- `ase_tools`: ASE's ``FIRE`` and ``BasinHopping`` with counted force calls;
- `orchestration`: every method on every system (`run_benchmark`);
- `analysis`: convex hulls, excess energies, size sweeps (NumPy only);
- `figures`: the paper's figures (Matplotlib only here);
- `report`: tables, JSON and the output files;
- `command`: ``learn2hop benchmark`` and ``learn2hop compare``.

Import a name from the module that owns it; this package re-exports nothing.
"""
