"""The benchmark: baselines, step accounting, tables, JSON, figures, Ctrl-C.

References we did not compute: ASE's own Lennard-Jones calculator (energies and
forces of the structures each baseline returns), the Cambridge Cluster Database
global minima (Wales & Doye 1997), SciPy's convex hull, and evaluation counts
taken by a callback inside the energy function itself.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLennardJones
from scipy.spatial import ConvexHull

from ase_learn2hop import cli, potentials, systems
from ase_learn2hop.benchmark import analysis, command, orchestration, protocol, runners
from ase_learn2hop.benchmark import figures as benchmark_figures
from ase_learn2hop.benchmark import report as benchmark_report
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, init_theta
from ase_learn2hop.weights import save_weights

ALL_METHODS = list(protocol.METHODS)
# Cambridge Cluster Database, putative global minima (reduced units).
PUBLISHED_LJ_MINIMA = {
    7: -16.505384,
    8: -19.821489,
    10: -28.422532,
    11: -32.765970,
    13: -44.326801,
    19: -72.659782,
    38: -173.928427,
    55: -279.248470,
    75: -397.492331,
    100: -557.039820,
}


def ase_lennard_jones(positions):
    """Energy and largest force component from ASE's own calculator."""
    atoms = Atoms(f"X{len(positions)}", positions=positions)
    atoms.calc = AseLennardJones(sigma=2 ** (-1 / 6), epsilon=1.0, rc=1e6, smooth=False)
    return atoms.get_potential_energy(), np.abs(atoms.get_forces()).max()


def hand_set_weights(path, horizon=20, max_species=1):
    """Weights set by hand (a random perturbation of the initial theta): untrained,
    only something for the learned optimizer to run."""
    config = LearnedOptimizerConfig()
    theta = init_theta(jax.random.key(0), config)
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [
        leaf + 0.3 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)
    ]
    theta = jax.tree_util.tree_unflatten(treedef, leaves)
    return save_weights(
        path,
        theta,
        config,
        horizon=horizon,
        systems=["lj7"],
        max_species=max_species,
        notes="hand-set for tests; untrained",
    )


@pytest.fixture(scope="module")
def lj7():
    system = systems.lennard_jones_system(7)
    return system, systems.starting_structures(jax.random.key(0), system, 3)


def test_baselines_end_in_local_minima_by_ases_own_calculator(lj7):
    system, starts = lj7
    variants = [
        runners.run_local_descent(system, "adam", starts, 1000, 0.01),
        runners.run_local_descent(system, "fire", starts, 1000, 0.01),
        runners.run_paper_basin_hopping(system, starts, 2000, jax.random.key(1), 0.4),
    ]
    for variant in variants:
        for energy, positions in zip(variant.energies, variant.positions):
            reference_energy, largest_force = ase_lennard_jones(positions)
            assert energy == pytest.approx(reference_energy, abs=1e-9)
            assert largest_force < 1e-6
            # Never below LJ7's global minimum.
            assert energy >= PUBLISHED_LJ_MINIMA[7] - 1e-6


def counted_lennard_jones(counter):
    def energy_fn(positions, potential_parameters):
        # One callback per energy evaluation (per start under vmap).
        jax.debug.callback(
            lambda _: counter.__setitem__("calls", counter["calls"] + 1),
            positions[0, 0],
        )
        return potentials.lennard_jones()(positions, None)

    return energy_fn


def test_basin_hopping_spends_exactly_its_budget():
    counter = {"calls": 0}
    system = systems.lennard_jones_system(6)._replace(
        name="lj6-counted-bh", energy_fn=counted_lennard_jones(counter)
    )
    starts = systems.starting_structures(jax.random.key(2), system, 2)
    budget = 95  # 9-step descents: 9 full ones and a truncated last one
    variant = runners.run_paper_basin_hopping(
        system, starts, budget, jax.random.key(3), 0.6, descent_steps=9
    )
    jax.effects_barrier()
    polish = 2 * (runners.descent.POLISH_STEPS + 1)
    assert variant.energy_evaluations.tolist() == [budget + polish] * 2
    assert counter["calls"] == int(variant.energy_evaluations.sum())
    assert variant.extra["descents"] == 10


def test_local_descent_charges_steps_plus_one_and_the_polish():
    counter = {"calls": 0}
    system = systems.lennard_jones_system(6)._replace(
        name="lj6-counted-adam", energy_fn=counted_lennard_jones(counter)
    )
    starts = systems.starting_structures(jax.random.key(2), system, 2)
    variant = runners.run_local_descent(system, "adam", starts, 57, 0.01)
    jax.effects_barrier()
    assert counter["calls"] == int(variant.energy_evaluations.sum())
    assert variant.energy_evaluations.tolist() == [58 + 2 * 1001] * 2


def test_global_minimum_hits_use_the_relative_tolerance():
    minimum = PUBLISHED_LJ_MINIMA[13]
    energies = np.array(
        [minimum, minimum * (1 - 0.9e-3), minimum * (1 - 1.1e-3), np.nan]
    )
    summary = protocol.summarize(energies, minimum)
    assert summary["global_minimum_hits"] == 2
    assert summary["failed"] == 1
    assert summary["min"] == pytest.approx(minimum)
    assert protocol.summarize(energies, None)["global_minimum_hits"] is None


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``learn2hop benchmark`` on a tiny system with every method."""
    folder = tmp_path_factory.mktemp("benchmark")
    weights = hand_set_weights(folder / "hand_set")
    out = folder / "out"
    status = cli.main(
        ["benchmark", "--systems", "lj7", "--methods", *ALL_METHODS]
        + ["--starts", "3", "--steps", "40", "--ase-starts", "1"]
        + ["--learning-rates", "0.01", "0.005", "--step-sizes", "0.4"]
        + ["--weights", str(weights), "--out", str(out), "--quiet"]
    )
    return status, out


def test_benchmark_json_has_every_method_and_system(cli_run):
    status, out = cli_run
    assert status == 0
    report = json.loads((out / "benchmark.json").read_text())
    assert report["complete"] is True
    assert set(report["systems"]) == {"lj7"}
    for name, entry in report["systems"].items():
        size = int(name[2:])
        assert entry["global_minimum"] == pytest.approx(
            PUBLISHED_LJ_MINIMA[size], abs=1e-6
        )
        assert list(entry["methods"]) == ALL_METHODS
        for method, result in entry["methods"].items():
            assert result["status"] == "ok", (name, method)
            assert len(result["best"]["energies"]) == (
                1 if method.startswith("ase") else 3
            )
        methods = entry["methods"]
        assert len(methods["adam"]["variants"]) == 2
        assert len(methods["fire"]["variants"]) == 2
        # Two cycles of 1 + 20 learned steps and two polishes of 1001 force calls.
        assert methods["learned"]["best"]["energy_evaluations"] == [2 * 2023] * 3
        # ASE BasinHopping hops until its 40 force calls are spent; + polish.
        assert methods["ase_basin_hopping"]["best"]["energy_evaluations"] == [40 + 1001]
        assert methods["ase_fire"]["best"]["energy_evaluations"][0] <= 40 + 1001
        assert methods["basin_hopping"]["best"]["energy_evaluations"] == [40 + 2002] * 3
    markdown = (out / "benchmark.md").read_text()
    for label in (method.label for method in protocol.METHODS.values()):
        assert label in markdown


def test_each_figure_is_written(cli_run, tmp_path):
    _, out = cli_run
    for name in ("figure5_minima_lj7.png", "figure6_trajectories_lj7.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name

    # Figure 4 from two Lennard-Jones sizes (numbers made up: only the drawing
    # is tested here).
    sweep = []
    for size in (8, 9):
        result = protocol.SystemResult(f"lj{size}", size, "lj", None, 2, 10, "lj8-9")
        variant = protocol.VariantResult(
            {}, np.array([-18.0, -19.0]), np.ones(2), -np.ones(2), 0.0, np.zeros(2)
        )
        result.methods["fire"] = protocol.MethodResult("fire", variants=[variant])
        sweep.append(result)
    figures = benchmark_figures.write_figures(
        protocol.BenchmarkRun(protocol.BenchmarkSettings(), sweep, True, 0.0),
        tmp_path,
    )
    assert figures == [tmp_path / "figure4_lj_sizes.png"]
    assert figures[0].read_bytes()[:4] == b"\x89PNG"

    # Figure 7 and the learned optimizer skipped where the weights do not fit
    # (one-species weights on a two-species cluster).
    one_species = hand_set_weights(tmp_path / "one_species", max_species=1)
    run = orchestration.run_benchmark(
        protocol.BenchmarkSettings(
            systems=("AgAu4",),
            compositions=(2,),
            methods=("learned", "basin_hopping"),
            starts=2,
            steps=30,
            step_sizes=(0.4,),
            weights=str(one_species),
        )
    )
    assert [r.name for r in run.systems] == ["Ag4Au0", "Ag2Au2", "Ag0Au4"]
    written = benchmark_report.write_outputs(run, tmp_path / "scan")
    assert written["figures"] == [tmp_path / "scan" / "figure7_AgAu4_hull.png"]
    report = json.loads(written["json"].read_text())
    assert list(report["systems"]) == ["Ag4Au0", "Ag2Au2", "Ag0Au4"]
    for entry in report["systems"].values():
        assert list(entry["methods"]) == ["learned", "basin_hopping"]
    learned = report["systems"]["Ag2Au2"]["methods"]["learned"]
    assert learned["status"] == "skipped"
    assert "at most 1 species" in learned["reason"]
    assert report["systems"]["Ag4Au0"]["methods"]["learned"]["status"] == "ok"
    assert "skipped, no weights fit" in benchmark_report.terminal_table(run.systems[1])


def test_lennard_jones_sweep_uses_the_tabulated_global_minima():
    names = protocol.expand_system_names(["lj10-100"])
    assert [name for name, _, _ in names] == [f"lj{n}" for n in range(10, 101)]
    for name, group, _ in names:
        assert group == "lj10-100"
        size = int(name[2:])
        if size in PUBLISHED_LJ_MINIMA:
            system = protocol.build_system(name)
            assert system.global_minimum == pytest.approx(
                PUBLISHED_LJ_MINIMA[size], abs=1e-6
            )
    results = []
    for size in (11, 10):
        result = protocol.SystemResult(f"lj{size}", size, "lj", None, 1, 1, "lj")
        variant = protocol.VariantResult(
            {}, np.array([-30.0]), np.array([1]), np.array([-1]), 0.0, np.array([0.0])
        )
        result.methods["adam"] = protocol.MethodResult("adam", variants=[variant])
        results.append(result)
    sizes, global_minima, means, lowest, _ = analysis.size_sweep_data(results)
    assert sizes.tolist() == [10, 11]
    np.testing.assert_allclose(
        global_minima, [PUBLISHED_LJ_MINIMA[10], PUBLISHED_LJ_MINIMA[11]], atol=1e-6
    )
    np.testing.assert_allclose(means["Adam"], [-30.0, -30.0])
    np.testing.assert_allclose(lowest["Adam"], [-30.0, -30.0])


def test_composition_scan_names_and_excess_energy():
    names = protocol.expand_system_names(["PdPt38"], compositions=[3, 19])
    assert [name for name, _, _ in names] == [
        "Pd38Pt0",
        "Pd35Pt3",
        "Pd19Pt19",
        "Pd0Pt38",
    ]
    counts = np.array([0, 10, 20])
    # Energies linear in m have no excess energy; the endpoints never do.
    assert analysis.excess_energies(counts, -3.0 - 0.1 * counts, 20) == pytest.approx(
        np.zeros(3)
    )
    excess = analysis.excess_energies(counts, np.array([-1.0, -2.5, -2.0]), 20)
    assert excess == pytest.approx([0.0, -1.0, 0.0])


def test_lower_convex_hull_matches_scipy():
    rng = np.random.default_rng(0)
    x = np.arange(30.0)
    y = rng.normal(size=30)
    hull = ConvexHull(np.column_stack([x, y]))
    # Lower facets: outward normals pointing down.
    lower = {
        int(v)
        for simplex, eq in zip(hull.simplices, hull.equations)
        if eq[1] < 0
        for v in simplex
    }
    assert set(analysis.lower_convex_hull(x, y).tolist()) == lower


def test_ctrl_c_keeps_what_finished(monkeypatch, tmp_path, lj7):
    real_run_method = orchestration.run_method
    calls = []

    def interrupted_second_method(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_method(*args, **kwargs)

    monkeypatch.setattr(orchestration, "run_method", interrupted_second_method)
    settings = protocol.BenchmarkSettings(
        systems=("lj7", "lj8"),
        methods=("adam", "fire"),
        starts=2,
        steps=20,
        learning_rates=(0.01,),
    )
    run = orchestration.run_benchmark(settings)
    assert not run.complete
    assert [r.name for r in run.systems] == ["lj7"]
    assert list(run.systems[0].methods) == ["adam"]
    status = benchmark_report.report(run, tmp_path, figures=False, quiet=True)
    assert status == 130
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert report["complete"] is False
    assert report["systems"]["lj7"]["methods"]["adam"]["status"] == "ok"
    assert "INTERRUPTED" in (tmp_path / "benchmark.md").read_text()


def test_update_magnitude_at_minimum_is_zero_for_untrained_weights():
    # An untrained optimizer (zero output layer) never moves atoms: held at a
    # minimum it proposes no update at all.
    system = systems.lennard_jones_system(7)
    config = LearnedOptimizerConfig()
    theta = init_theta(jax.random.key(0), config)
    magnitudes = runners.update_magnitude_at_minimum(
        theta,
        config,
        system.energy_fn,
        jnp.asarray(systems.starting_structures(jax.random.key(0), system, 1)[0]),
        system.context,
        system.potential_parameters,
        5,
    )
    assert magnitudes.shape == (5,)
    assert np.all(np.asarray(magnitudes) == 0.0)


def test_learned_runner_is_cycles_of_the_one_cycle_search(tmp_path, lj7):
    """The benchmark's learned runner gives, per start, the lowest minimum of
    cycles run by hand with `search.learned_search` (each cycle from the polished
    last structure of the one before), and charges 1 + H + 2 x 1001 per cycle."""
    from ase_learn2hop import search
    from ase_learn2hop.weights import load_weights

    system, starts = lj7
    weights = load_weights(hand_set_weights(tmp_path / "hand_set"))
    # Two cycles of 20 steps: the shapes of the CLI run above (compiled once).
    variant, figure_data = runners.run_learned(system, starts, 40, weights)
    for index, start in enumerate(starts):
        positions, lowest = start, np.inf
        for _ in range(2):
            result, _ = search.learned_search(
                weights.theta,
                weights.config,
                system.energy_fn,
                positions,
                system.context,
                system.potential_parameters,
                n_steps=weights.horizon,
            )
            lowest = min(lowest, float(result.best_energy))
            positions = result.final_positions
        np.testing.assert_allclose(variant.energies[index], lowest, atol=1e-10)
    per_cycle = 1 + weights.horizon + 2 * 1001
    assert variant.energy_evaluations.tolist() == [2 * per_cycle] * len(starts)
    assert variant.record_steps[-1] == 40
    assert figure_data["single_energy"].shape == (20,)
    assert figure_data["held_update_magnitude"].shape == (20,)


def test_quick_mode_and_explicit_flags():
    parser = cli.build_parser()
    quick = command.settings_from_args(
        parser.parse_args(["benchmark", "--quick", "--starts", "4"]),
        ["lj13"],
        protocol.METHOD_IDS,
    )
    assert (quick.starts, quick.steps, quick.ase_starts) == (4, 2000, 3)
    full = command.settings_from_args(
        parser.parse_args(["benchmark"]), ["lj13"], protocol.METHOD_IDS
    )
    assert (full.starts, full.steps) == (150, 50000)
    # A default run sweeps the paper's grids (appendix C.1): Adam and FIRE at these
    # learning rates, basin hopping at these step sizes.
    assert tuple(full.learning_rates) == (0.01, 0.005, 0.001)
    assert tuple(full.step_sizes) == (0.2, 0.4, 0.6, 0.8)
    compare = parser.parse_args(["compare"])
    assert compare.handler is command.compare_command
    # The README's main job: time to the minimum of LJ13 and LJ26, ours beside
    # scipy's and ASE's basin hopping.
    assert compare.systems == ["lj13", "lj26"] and compare.runs == 3
    assert compare.methods == ["learned", "scipy_basin_hopping", "ase_basin_hopping"]
