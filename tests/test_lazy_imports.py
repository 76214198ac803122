"""Importing ase_learn2hop compiles nothing and imports only the jax-md
modules it uses; jax-md stays whole for the user."""

from python_process import run_python


def run(script: str):
    # JAX logs every compilation with JAX_LOG_COMPILES=1 ("Compiling jit(...)").
    return run_python(script, JAX_LOG_COMPILES="1")


def test_importing_the_optimizer_compiles_nothing():
    done = run(
        "import sys\n"
        "import ase_learn2hop.cli, ase_learn2hop.optimizer\n"
        "from ase_learn2hop import LearnedHopOptimizer\n"
        "print(sorted(m for m in sys.modules if m.startswith('jax_md')))\n"
    )
    assert "Compiling" not in done.stderr
    loaded = eval(done.stdout.strip())
    assert "jax_md.space" in loaded and "jax_md.partition" in loaded
    assert "jax_md.rigid_body" not in loaded and "jax_md.energy" not in loaded


def test_the_whole_of_jax_md_stays_reachable():
    done = run(
        "import ase_learn2hop.optimizer\n"
        "import jax_md\n"
        "from jax_md import rigid_body\n"
        "print(jax_md.energy.lennard_jones.__name__, rigid_body.__name__)\n"
        "try:\n"
        "    jax_md.no_such_module\n"
        "except AttributeError as error:\n"
        "    print(type(error).__name__)\n"
    )
    assert done.stdout.split() == [
        "lennard_jones",
        "jax_md.rigid_body",
        "AttributeError",
    ]


def test_jax_md_imported_first_is_left_alone():
    done = run(
        "import jax_md\n"
        "import ase_learn2hop.optimizer\n"
        "print('energy' in vars(jax_md), 'rigid_body' in vars(jax_md))\n"
    )
    # jax-md's own __init__ ran and bound its submodules.
    assert done.stdout.split() == ["True", "True"]
