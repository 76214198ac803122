"""One long learned walk per start and quenches of its points (issue 13 note).

From each quenched relaxed start (the time-to-minimum benchmark's, ``--seed``),
one learned walk with the shipped weights, a fresh state and a random frame;
the walk's point after t steps is quenched (L-BFGS to fmax 1e-2).

    python long_walk.py lj26 400 7 390 --at 20 40 65 100 130 195 260 325 390
        how many quenches of the point after t steps land in the global minimum
    python long_walk.py lj26 100 7 8000 --every 130
        quench every 130th point: force calls (walk steps plus every quench so
        far) at which each walk first quenches into the global minimum
    python long_walk.py lj26 60 7 260 --at 260 --scipy
        also quench the same points with scipy's L-BFGS-B (default options,
        NumPy energies): its evaluations against ours, and whether both end
        in the same minimum
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import learned_optimizer, quench, systems
from ase_learn2hop.benchmark import time_to_minimum_methods as methods
from ase_learn2hop.precision import float64


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("system")
    parser.add_argument("runs", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("steps", type=int)
    parser.add_argument("--at", type=int, nargs="+")
    parser.add_argument("--every", type=int)
    parser.add_argument("--scipy", action="store_true")
    arguments = parser.parse_args()
    system = systems.system_from_name(arguments.system)
    weights = methods.learned_weights(system)
    context, potential = system.context, system.potential_parameters
    value_and_grad = jax.value_and_grad(system.energy_fn)
    target = system.global_minimum * (1 - 1e-3)

    @jax.jit
    @jax.vmap
    def quenched(positions):
        energy, gradient = value_and_grad(positions, potential)

        def body(state, _):
            done = quench.quench_converged(state, 1e-2)
            trial = quench.quench_trial(state, quench.MAX_STEP)
            energy, gradient = value_and_grad(trial, potential)
            moved = quench.quench_observe(state, trial, energy, gradient)
            return jax.tree.map(lambda a, b: jnp.where(done, a, b), state, moved), None

        state = quench.quench_begin(positions, energy, gradient)
        state, _ = jax.lax.scan(body, state, None, length=600)
        return state.positions, state.energy, state.iterations

    @jax.jit
    @jax.vmap
    def walk(positions, key):
        _, gradient = value_and_grad(positions, potential)
        positions, gradient = context.geometry.random_frame(key, positions, gradient)

        def body(carry, _):
            positions, gradient, state = carry
            displacement, state = learned_optimizer.update(
                weights.theta, weights.config, state, positions, gradient, context
            )
            positions = context.geometry.move(positions, displacement)
            _, gradient = value_and_grad(positions, potential)
            return (positions, gradient, state), positions

        state = learned_optimizer.init(positions, context)
        _, path = jax.lax.scan(
            body, (positions, gradient, state), None, length=arguments.steps
        )
        return path

    with float64():
        starts = methods.relaxed_starts(
            system, jax.random.key(arguments.seed), arguments.runs
        )
        minima = quenched(jnp.asarray(starts))[0]
        keys = jax.random.split(jax.random.key(arguments.seed + 11), arguments.runs)
        path = walk(minima, keys)  # [runs, steps, n, 3]
        if arguments.at:
            for step in arguments.at:
                _, energy, calls = quenched(path[:, step - 1])
                print(
                    f"t={step}: hits {int((energy < target).sum())}/{arguments.runs}"
                    f"  mean quench calls {float(jnp.mean(calls)):.1f}"
                    f"  median E {float(jnp.median(energy)):.3f}",
                    flush=True,
                )
                if arguments.scipy:
                    compare_with_scipy(np.asarray(path[:, step - 1]), energy, calls)
        if arguments.every:
            spent = np.zeros(arguments.runs)
            first = np.full(arguments.runs, np.inf)
            checkpoints = range(arguments.every, arguments.steps + 1, arguments.every)
            for step in checkpoints:
                energy, calls = map(np.asarray, quenched(path[:, step - 1])[1:])
                spent += calls
                new = (energy < target) & np.isinf(first)
                first[new] = step + spent[new]
            print(
                f"{arguments.system}: {int(np.isfinite(first).sum())}/{arguments.runs} "
                f"walks hit; force calls {sorted(first[np.isfinite(first)].astype(int).tolist())}; "
                f"mean quench {spent.mean() / len(checkpoints):.1f} calls"
            )


def compare_with_scipy(points, energies, calls):
    """scipy's L-BFGS-B from ``points`` ``[runs, n, 3]`` against our quench's
    ``energies`` and ``calls`` from the same points (LJ only)."""
    import scipy.optimize

    from ase_learn2hop.benchmark.time_to_minimum_methods import lennard_jones_numpy

    results = [
        scipy.optimize.minimize(
            lennard_jones_numpy, point.ravel(), jac=True, method="L-BFGS-B"
        )
        for point in points
    ]
    evaluations = np.array([result.nfev for result in results])
    same = np.abs(np.array([result.fun for result in results]) - energies) < 1e-3
    print(
        f"  scipy L-BFGS-B evaluations mean {evaluations.mean():.1f} median "
        f"{np.median(evaluations):.0f}; ours mean {float(np.mean(calls)):.1f} "
        f"median {float(np.median(calls)):.0f}; same minimum {same.mean():.2f}"
    )


if __name__ == "__main__":
    main()
