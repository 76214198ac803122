"""JAX's persistent compilation cache, so a second run compiles almost nothing.

Jitting the learned search costs seconds per process (more than the search
itself on small clusters). `enable` points JAX's persistent compilation cache at
a folder in the user's cache directory, so that the next process that runs the
same shapes loads the compiled programs from disk instead of compiling them.

`LearnedHopOptimizer` and the ``learn2hop`` command call `enable` (never an
import), and it never overrides a cache directory the user chose: if
``jax_compilation_cache_dir`` is already set, it is left alone. Move the cache
with ``LEARN2HOP_CACHE`` (the folder ``jax`` inside it is used). With it,
the search's own programs are kept as exported StableHLO in the folder
``programs`` beside it (`saved_programs`), so a new process neither traces nor
lowers them either.

On by default where it works, decided once per machine and jaxlib:
``LEARN2HOP_COMPILATION_CACHE=0`` turns it off, ``=1`` on whatever the
check says. The check (`loads_cleanly`): with jax 0.10.1 on some x86 CPUs
(Intel Cascade Lake, for one) XLA's loader rejects every program it reads
back, because it counts LLVM tuning flags ("+prefer-no-gather") as CPU
features the host lacks, and logs an ERROR line claiming this "could lead to
SIGILL" for each one (jax-ml/jax#38445, openxla/xla#44565): there the cache
never hits and only prints alarming lines. So the first `enable` on a
machine compiles and reloads one small program in a child process (about 2 s,
once) and keeps the verdict in the cache folder; the cache is used by
default only where the reload was silent. Measured where it is: an LJ13
search (construct + 1000 steps) in 5.2 s in a new process with a cold cache
and 0.54 s with a warm one (saved programs included), after 2-3 s of imports
(benchmarks/results/compilation_cache.txt).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import jax

from ase_learn2hop import saved_programs

#: Environment variable that turns the cache on (1, true, yes) or off.
SWITCH = "LEARN2HOP_COMPILATION_CACHE"
#: Largest size of our cache folder (bytes); JAX evicts the least recently
#: used programs beyond it.
MAX_SIZE = 2**30
#: Programs kept by `ProgramFolder` (about 70 kB each for LJ13's search).
MAX_PROGRAMS = 1000
#: What `loads_cleanly` runs in a child process: compile one program into a
#: fresh cache, forget it, and load it back.
RELOAD_SCRIPT = """
import sys
import jax
import jax.numpy as jnp
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
program = lambda x: jnp.sin(x) * x + 1.0
jax.block_until_ready(jax.jit(program)(jnp.arange(16.0)))
jax.clear_caches()
jax.block_until_ready(jax.jit(program)(jnp.arange(16.0)))
"""
#: What XLA's loader logs when it rejects a cached program.
REJECTION_SIGNS = ("SIGILL", "machine feature")


def cache_directory() -> Path:
    """``$LEARN2HOP_CACHE/jax``, by default ``~/.cache/ase_learn2hop/jax``."""
    root = os.environ.get("LEARN2HOP_CACHE", Path.home() / ".cache" / "ase_learn2hop")
    return Path(root) / "jax"


def switch_from_environment() -> bool | None:
    """``LEARN2HOP_COMPILATION_CACHE`` as a switch (1/true/yes or 0/false/no),
    ``None`` when it is unset."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if not value:
        return None
    return value not in ("0", "false", "no")


def host_identity() -> str:
    """A short hash of what decides whether cached programs load: the CPU
    (its model and instruction-set flags) and the jaxlib version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            lines = [
                line.strip()
                for line in cpuinfo
                if line.startswith(("model name", "flags", "Features", "CPU part"))
            ]
        cpu = "\n".join(dict.fromkeys(lines)) or cpu
    except OSError:
        pass
    text = f"{platform.machine()}\n{cpu}\njaxlib {importlib.metadata.version('jaxlib')}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reload_is_clean() -> bool | None:
    """Whether a program compiled into a fresh cache loads back in a child
    process without XLA's loader rejecting it (see the module's docstring);
    ``None`` when the child failed otherwise (no verdict). Checked on the CPU
    backend, where the rejection happens."""
    if getattr(sys, "frozen", False):
        # A frozen application's executable is not a Python to run -c with.
        return None
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "JAX_PLATFORMS": "cpu"}
        try:
            done = subprocess.run(
                [sys.executable, "-c", RELOAD_SCRIPT, folder],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
    if any(sign in done.stderr for sign in REJECTION_SIGNS):
        return False
    return True if done.returncode == 0 else None


def loads_cleanly(directory: Path) -> bool:
    """This machine's verdict (`reload_is_clean`), checked once per CPU and
    jaxlib and kept in ``directory`` (a check that failed otherwise counts as
    "no" for this process and is tried again in the next)."""
    verdict = directory / f"loads-cleanly-{host_identity()}.txt"
    try:
        return verdict.read_text().strip() == "yes"
    except OSError:
        pass
    clean = reload_is_clean()
    if clean is not None:
        try:
            verdict.write_text("yes\n" if clean else "no\n")
        except OSError:
            pass
    return bool(clean)


@functools.cache
def package_source_hash() -> str:
    """A hash of this package's Python source (the salt of saved programs'
    keys: a program built from other code is another program)."""
    source = hashlib.sha256()
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        source.update(str(path.relative_to(package)).encode())
        source.update(path.read_bytes())
    return source.hexdigest()


class ProgramFolder:
    """`saved_programs.ProgramStore` as files ``<key>.program`` in ``folder``:
    written whole (a temporary file renamed), at most `MAX_PROGRAMS` kept, the
    least recently used removed beyond it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.salt = package_source_hash()

    def load(self, key: str) -> bytes | None:
        path = self.folder / f"{key}.program"
        try:
            data = path.read_bytes()
            os.utime(path)  # most recently used
        except OSError:
            return None
        return data

    def save(self, key: str, data: bytes) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, delete=False) as file:
                file.write(data)
            os.replace(file.name, self.folder / f"{key}.program")
            saved = sorted(self.folder.glob("*.program"), key=_modified)
            for old in saved[:-MAX_PROGRAMS]:
                old.unlink(missing_ok=True)
        except OSError:
            pass


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed by another process meanwhile
        return 0.0


def enable() -> Path | None:
    """Turn JAX's persistent compilation cache on in our cache directory.

    Returns:
        the folder in use, or ``None`` when switched off, when the user had
        set their own cache directory (theirs is kept), or, left to the
        default, where cached programs do not load cleanly (`loads_cleanly`).
    """
    switch = switch_from_environment()
    directory = cache_directory()
    if switch is not False and jax.config.jax_compilation_cache_dir == str(directory):
        return directory  # turned on by an earlier call
    saved_programs.enable(None)
    if switch is False or jax.config.jax_compilation_cache_dir:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if switch is None and not loads_cleanly(directory):
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    saved_programs.enable(ProgramFolder(directory.parent / "programs"))
    # JAX's eviction needs filelock (a dependency; absent, the cache grows).
    if importlib.util.find_spec("filelock") is not None:
        jax.config.update("jax_compilation_cache_max_size", MAX_SIZE)
    # Our searches compile many programs of well under a second each.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory
