"""The package's layering (README "What is inside"): the pure-JAX core imports
neither ASE, matplotlib nor anything above it; the ASE boundary imports no
tool; no module imports another that imports it back; no module is huge."""

import ast
import pathlib
import sys

import pytest
from python_process import run_python

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "ase_learn2hop"
TRAINING = PACKAGE.parent / "training"

CORE = {
    "geometry",
    "gupta_parameters",
    "precision",
    "devices",
    "potentials",
    "stillinger_weber",
    "initialization",
    "systems",
    "features",
    "learned_optimizer",
    "descent",
    "driver",
    "search",
    "cycles",
    "basin_hopping",
    "quench",
    "learned_hopping",
    "hopping_search",
    "neighbours",
    "saved_programs",
}
BOUNDARY = {
    "weights",
    "calculators",
    "conversion",
    "minima",
    "restart",
    "compilation_cache",
    "cpu_devices",
    "lazy_imports",
    "protocols",
    "optimizer",
}
#: Third-party packages the core may use.
CORE_LIBRARIES = {"jax", "jax_md", "numpy", "optax", "flax"}


def module_name(path: pathlib.Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(
        ".__init__"
    )


def imports_of(path: pathlib.Path) -> set[str]:
    """Every module imported anywhere in the file (functions included), with
    ``ase_learn2hop.`` stripped from our own."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "ase_learn2hop":
                names.update(f"ase_learn2hop.{alias.name}" for alias in node.names)
    return {name.removeprefix("ase_learn2hop.") for name in names}


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("name", sorted(CORE))
def test_core_imports_only_the_core_and_numerical_libraries(name):
    for imported in imports_of(MODULES[name]) - {"ase_learn2hop"}:
        top = imported.split(".")[0]
        if imported in MODULES:
            assert imported in CORE, f"core module {name} imports {imported}"
        else:
            assert top not in {"ase", "matplotlib", "safetensors", "tqdm"}, (
                f"core module {name} imports {imported}"
            )
            assert top in CORE_LIBRARIES or top in _STANDARD_LIBRARY, (
                f"core module {name} imports {imported}"
            )


def test_importing_the_core_loads_neither_ase_nor_matplotlib():
    code = (
        "import sys\n"
        + "".join(f"import ase_learn2hop.{name}\n" for name in sorted(CORE))
        + "print(sorted(m for m in ('ase', 'matplotlib') if m in sys.modules))"
    )
    loaded = run_python(code).stdout.strip()
    assert loaded == "[]"


@pytest.mark.parametrize("name", sorted(BOUNDARY))
def test_ase_boundary_imports_no_tool(name):
    for imported in imports_of(MODULES[name]):
        if imported in MODULES:
            assert imported in CORE | BOUNDARY, f"{name} imports the tool {imported}"


def test_no_import_cycle():
    graph = {
        name: {m for m in imports_of(path) if m in MODULES and m != name}
        for name, path in MODULES.items()
    }
    state: dict[str, int] = {}

    def visit(name, trail):
        if state.get(name) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(trail + [name])}")
        if state.get(name) == 2:
            return
        state[name] = 1
        for imported in graph[name]:
            visit(imported, trail + [name])
        state[name] = 2

    for name in graph:
        visit(name, [])


def test_modules_stay_readable():
    for path in [*PACKAGE.rglob("*.py"), *TRAINING.glob("*.py")]:
        lines = len(path.read_text().splitlines())
        assert lines <= 500, f"{path.name} has {lines} lines"


_STANDARD_LIBRARY = sys.stdlib_module_names
