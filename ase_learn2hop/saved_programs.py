"""Jitted programs saved across processes, so a second run neither traces nor
lowers them.

JAX's persistent compilation cache (`compilation_cache`) skips XLA's
compilation in a new process, but its key is the lowered program, so every
process still traces the search's Python code and lowers it to StableHLO
first: about 0.5 s for one LJ13 search on a 2-core CPU, most of what a warm
run still pays. `saved_jit` is ``jax.jit`` that also keeps each program it
compiles as a ``jax.export``-ed StableHLO module in a `ProgramStore` (the
cache folder's ``programs``: `compilation_cache.ProgramFolder`), under a key
computed without tracing (`fingerprint`): the function, its static arguments
described by value (functions by their code, defaults and closed-over values),
the pytree structure by value, the shapes, dtypes, weak types and shardings of
the other arguments, JAX's configuration, the devices, the versions of the
libraries that build the program and the store's salt (a hash of this
package's source). A later process with the same key loads the module and
calls it; its compilation then hits JAX's cache.

Anything the key cannot describe by value (an ASE calculator behind the
generic path, an object of an unknown class) falls back to plain ``jax.jit``,
as does a program ``jax.export`` refuses (host callbacks): a miss costs what
``jax.jit`` costs, never a wrong program. Only active where `enable` was
given a store (by `compilation_cache.enable`, so ``LEARN2HOP_COMPILATION_CACHE=0``
turns this off too). What a store holds is unpickled: it is trusted as JAX's
compilation cache is (which holds native code).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import inspect
import pickle
import sys
import types
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import numpy as np

#: Raise it when what a store holds changes layout.
FORMAT = 1
#: Programs a `SavedJit` keeps loaded in this process (it holds their static
#: arguments, as ``jax.jit``'s cache does).
MAX_IN_PROCESS = 256
#: Libraries whose code builds the programs (their versions join the key).
LIBRARIES = ("jax", "jaxlib", "jax-md", "optax", "flax", "numpy", "ml_dtypes")
#: Modules whose functions and classes a key may name: this package (its
#: source is hashed) and those libraries. A function from anywhere else (a
#: user's script, whose helpers the key could not follow) makes its program
#: run on plain ``jax.jit``.
TRUSTED_MODULES = frozenset(
    {"ase_learn2hop", "jax", "jaxlib", "jax_md", "optax", "flax", "numpy"}
    | {"ml_dtypes", "builtins", "functools", "operator", "math"}
)


class ProgramStore(Protocol):
    """Where saved programs live (`compilation_cache.ProgramFolder`)."""

    #: Joins every key: what the programs depend on that the key cannot see
    #: (this package's source).
    salt: str

    def load(self, key: str) -> bytes | None: ...

    def save(self, key: str, data: bytes) -> None: ...


_store: ProgramStore | None = None


def enable(store: ProgramStore | None) -> None:
    """Save and load programs in ``store`` from now on (``None``: stop)."""
    global _store
    _store = store


class NotDescribable(TypeError):
    """A value `fingerprint` cannot describe by value."""


_SCALARS = (type(None), bool, int, float, complex, str, bytes, np.dtype, np.generic)


def _code(code: types.CodeType) -> tuple:
    constants = tuple(
        _code(c) if isinstance(c, types.CodeType) else _plain(c) for c in code.co_consts
    )
    return (code.co_code, constants, code.co_names, code.co_varnames,
            code.co_freevars, code.co_argcount, code.co_kwonlyargcount,
            code.co_flags)  # fmt: skip


def _plain(value: Any) -> Any:
    """Constants of code objects: scalars, and tuples and frozensets of them
    (sorted: a frozenset's order changes with the process's string hashes)."""
    if isinstance(value, _SCALARS) or value is Ellipsis:
        return (type(value).__name__, repr(value))
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, frozenset):
        return ("frozenset", tuple(sorted(repr(_plain(item)) for item in value)))
    raise NotDescribable(type(value))


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _global_names(constant)
    return names


def _named(value: Any) -> tuple:
    """A trusted function, class or module by its name (its code is in the
    key through the source hash or the library's version)."""
    module = getattr(value, "__module__", None) or getattr(value, "__name__", "")
    if module.split(".")[0] not in TRUSTED_MODULES:
        raise NotDescribable(f"{value!r} is not from a trusted module")
    name = getattr(value, "__qualname__", getattr(value, "__name__", None))
    return (type(value).__name__, module, name)


class _Describer:
    """Turns a value into nested tuples of strings and bytes, equal for equal
    values in any process; objects already met are referred to by number."""

    def __init__(self):
        self.seen: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps ids unique while describing

    def __call__(self, value: Any) -> Any:
        if isinstance(value, _SCALARS):
            return (type(value).__name__, repr(value))
        if isinstance(value, enum.Enum):
            return (*_named(type(value)), value.name)
        if id(value) in self.seen:
            return ("seen", self.seen[id(value)])
        self.seen[id(value)] = len(self.seen)
        self.keep.append(value)
        return self._describe(value)

    def _describe(self, value: Any) -> Any:
        if isinstance(value, (np.ndarray, jax.Array)):
            array = np.asarray(value)
            if array.dtype.hasobject:  # its bytes would be addresses
                raise NotDescribable(f"an array of {array.dtype}")
            digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
            return ("array", str(array.dtype), array.shape, digest)
        if type(value) in (tuple, list, dict, set, frozenset):
            if isinstance(value, dict):
                return (
                    "dict",
                    tuple(sorted((repr(self(k)), self(v)) for k, v in value.items())),
                )
            if isinstance(value, (set, frozenset)):
                return ("set", tuple(sorted(repr(self(item)) for item in value)))
            return (type(value).__name__, tuple(self(item) for item in value))
        if isinstance(value, tuple):  # a NamedTuple
            return (_named(type(value)), tuple(self(item) for item in value))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = dataclasses.fields(value)
            return (_named(type(value)),
                    tuple(self(getattr(value, f.name)) for f in fields))  # fmt: skip
        if isinstance(value, functools.partial):
            return ("partial", self(value.func), self(value.args), self(value.keywords))
        if isinstance(value, types.MethodType):
            return ("method", self(value.__func__), self(value.__self__))
        if isinstance(value, types.FunctionType):
            return self._function(value)
        if isinstance(value, (type, types.ModuleType, types.BuiltinFunctionType)):
            return _named(value)
        if type(value).__module__.split(".")[0] in ("jax", "jaxlib") and hasattr(
            value, "__wrapped__"
        ):
            # jax.jit, custom_jvp and the like: what they wrap and their rules.
            return (_named(type(value)), self(dict(vars(value))))
        raise NotDescribable(type(value))

    def _function(self, function: types.FunctionType) -> tuple:
        named = _named(function)
        cells = tuple(self(cell.cell_contents) for cell in function.__closure__ or ())
        # Globals the code reads, where they could change at run time: plain
        # data by value; functions, classes and modules by name. A library's
        # globals are its version's.
        used = {}
        if function.__module__.split(".")[0] == "ase_learn2hop":
            for name in sorted(_global_names(function.__code__)):
                if name in function.__globals__:
                    value = function.__globals__[name]
                    callable_ = callable(value) or isinstance(value, types.ModuleType)
                    used[name] = _named(value) if callable_ else self(value)
        return ("function", named, _code(function.__code__),
                self(function.__defaults__), self(function.__kwdefaults__),
                cells, tuple(used.items()))  # fmt: skip


def describe_treedef(treedef: Any, describer: _Describer | None = None) -> Any:
    """A pytree structure by value: node types and their static data (a
    function there is described by its code, not by its address)."""
    describer = describer or _Describer()
    if jax.tree_util.treedef_is_leaf(treedef) and treedef.num_leaves == 1:
        return "*"
    node_type, node_data = treedef.node_data()
    children = tuple(describe_treedef(c, describer) for c in treedef.children())
    return (_named(node_type), describer(node_data), children)


def describe(value: Any) -> Any:
    """``value`` as nested tuples, equal for equal values in any process;
    raises `NotDescribable` for what it cannot describe by value."""
    return _Describer()(value)


@functools.cache
def _environment() -> tuple:
    """What every key shares: the libraries' versions, Python's."""
    versions = []
    for library in LIBRARIES:
        try:
            versions.append((library, importlib.metadata.version(library)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((library, None))
    return (FORMAT, sys.version, tuple(versions))


def _leaf_signature(leaf: Any) -> tuple:
    if isinstance(leaf, jax.Array):
        return (str(leaf.aval), str(leaf.sharding))
    if isinstance(leaf, (bool, int, float, complex)):
        return (type(leaf).__name__,)  # weakly typed in jit
    array = np.asarray(leaf)
    return (str(array.dtype), array.shape)


def _local_signature(leaf: Any) -> Any:
    # What jit's own cache tells programs apart by, in this process.
    if isinstance(leaf, jax.Array):
        return (leaf.aval, leaf.sharding)
    if isinstance(leaf, np.ndarray):
        return (leaf.dtype, leaf.shape)
    return _leaf_signature(leaf)


def fingerprint(
    function: Callable, static: tuple, treedef: Any, leaves: list, salt: str = ""
) -> str:
    """The key of ``function``'s program for these static arguments and these
    traced ``leaves`` (flattened by ``treedef``); raises `NotDescribable`."""
    configuration = tuple(sorted((k, repr(v)) for k, v in jax.config.values.items()))
    devices = tuple((d.platform, d.device_kind, d.id) for d in jax.devices())
    description = (
        _environment(), salt, configuration, devices, describe(function),
        describe(static), describe_treedef(treedef),
        tuple(_leaf_signature(x) for x in leaves),
    )  # fmt: skip
    return hashlib.sha256(repr(description).encode()).hexdigest()


def _key_impl(leaf: Any) -> str | None:
    """The implementation's name of a typed PRNG key array, else None."""
    dtype = getattr(leaf, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(leaf))
    return None


def _key_data(leaves: list, impls: tuple) -> list:
    # Exported programs take keys as their raw data: jax.export's sharding
    # constraints get the rank of a sharded key array wrong (jax 0.10.1).
    return [jax.random.key_data(x) if i else x for x, i in zip(leaves, impls)]


def _wrapped_keys(leaves: list, impls: tuple) -> list:
    return [
        jax.random.wrap_key_data(x, impl=i) if i else x for x, i in zip(leaves, impls)
    ]


def _loaded(data: bytes | None) -> tuple | None:
    if data is None:
        return None
    try:
        blob, out_treedef, out_keys = pickle.loads(data)
        return jax.export.deserialize(blob), out_treedef, out_keys
    except Exception:  # noqa: BLE001  (a truncated or foreign entry is a miss)
        return None


class _Program(NamedTuple):
    """A loaded program: ``call(*leaves)`` gives the output's leaves,
    ``out_treedef`` their structure."""

    call: Callable
    out_treedef: Any


class SavedJit:
    """``jax.jit(function, static_argnames=...)`` whose programs are saved
    across processes (see the module's docstring); its other attributes
    (``lower``, ``trace``) are the plain jitted function's."""

    def __init__(self, function: Callable, static_argnames: tuple[str, ...]):
        self.jitted = jax.jit(function, static_argnames=static_argnames)
        self.function = function
        self.signature = inspect.signature(function)
        self.static_argnames = frozenset(static_argnames)
        self.programs: dict[Any, _Program | None] = {}
        functools.update_wrapper(self, function)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.jitted, name)

    def __call__(self, *args, **kwargs):
        store = _store
        if store is None:
            return self.jitted(*args, **kwargs)
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        static = tuple(
            (n, v) for n, v in arguments.items() if n in self.static_argnames
        )
        traced = {n: v for n, v in arguments.items() if n not in self.static_argnames}
        leaves, treedef = jax.tree_util.tree_flatten(traced)
        local_key = (static, treedef, tuple(map(_local_signature, leaves)))
        if local_key not in self.programs:
            if len(self.programs) >= MAX_IN_PROCESS:  # forget the oldest
                del self.programs[next(iter(self.programs))]
            self.programs[local_key] = self._program(store, static, treedef, leaves)
        program = self.programs[local_key]
        if program is None:
            return self.jitted(*args, **kwargs)
        return jax.tree_util.tree_unflatten(program.out_treedef, program.call(*leaves))

    def _program(self, store, static, treedef, leaves) -> _Program | None:
        try:
            key = fingerprint(self.function, static, treedef, leaves, store.salt)
        except NotDescribable:
            return None
        in_keys = tuple(_key_impl(x) for x in leaves)
        loaded = _loaded(store.load(key))
        if loaded is None:
            found = {}

            def flat(*raw):
                traced = jax.tree_util.tree_unflatten(
                    treedef, _wrapped_keys(raw, in_keys)
                )
                out = self.jitted(**dict(static), **traced)
                out_leaves, found["treedef"] = jax.tree_util.tree_flatten(out)
                found["keys"] = tuple(_key_impl(x) for x in out_leaves)
                return _key_data(out_leaves, found["keys"])

            # JAX's logs name the program after the function.
            flat.__name__ = flat.__qualname__ = self.function.__name__

            try:
                exported = jax.export.export(jax.jit(flat))(*_key_data(leaves, in_keys))
                blob = exported.serialize()
            except Exception:  # noqa: BLE001  (host callbacks and the like: plain jit)
                return None
            if any(aval.weak_type for aval in exported.out_avals):
                # A loaded program's outputs are never weakly typed: the
                # programs they feed would trace apart from plain jit's.
                return None
            store.save(key, pickle.dumps((blob, found["treedef"], found["keys"])))
            # Called as loaded, so this process computes what later ones do.
            loaded = jax.export.deserialize(blob), found["treedef"], found["keys"]
        exported, out_treedef, out_keys = loaded

        def call(*leaves):
            out = exported.call(*_key_data(leaves, in_keys))
            return _wrapped_keys(out, out_keys)

        return _Program(jax.jit(call), out_treedef)


def saved_jit(
    function: Callable | None = None, *, static_argnames: tuple[str, ...] = ()
):
    """Decorator: `SavedJit` of ``function`` (like ``jax.jit``)."""
    if function is None:
        return functools.partial(saved_jit, static_argnames=static_argnames)
    return SavedJit(function, tuple(static_argnames))
