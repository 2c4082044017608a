"""How this package's numba kernels are compiled and loaded: :func:`njit_cached`.

Every kernel (ingest, classify, replay) is ``numba.njit(cache=True, ...)``: compiled once per
machine into numba's on-disk cache (``__pycache__/*.nbi, *.nbc``), then loaded from there by each
process. :func:`njit_cached` adds one thing: a lighter load from that cache.

numba's ``Cache.load_overload`` calls ``target_context.refresh()`` before it loads anything. That
installs every lowering and typing registry numba has (the code generators for all of Python and
NumPy, ~60 more modules imported): what compiling needs, not what loading object code needs. It cost
~0.05 s of every process start here (the batch fork server's warm-up went from 0.135 to 0.080 s,
a separate measurement gave 0.045-0.05 s; `pipeline replay` pays it too). Loading cached object code needs the NRT (numba's runtime, whose
functions the object code links against; ``rtsys.initialize``) and the codegen, nothing else. numba
PR #2202 (2016) added the refresh to fix a context that was not initialised at all when loading from
the cache (issue #2198); numba PR #9806 (2024, not merged) proposed refreshing only for functions with
``objmode`` blocks, the case that needs it. These kernels have none, and cache nothing else that
needs the registries (no dynamic globals, no closures over objects).

So the dispatchers made here load with ``rtsys.initialize`` instead of the full refresh, and fall
back to numba's own ``load_overload`` if that raises. That covers Python exceptions, not object code
linking against a symbol only the refresh registers: for these kernels every undefined symbol in
their cached object code (NRT, CPython C API, numba's helpers, libm) is defined once the target
context exists and the NRT is initialised (check again for a kernel using other numba features).
Compiling (a cold cache, or new argument types) is untouched: numba's compiler refreshes the context
itself. Only this package's dispatchers are affected (not other numba code in the same process),
and only when numba has the internals this relies on (``Cache._load_overload``,
``numba.core.runtime.rtsys``) and not on Windows (where numba's load also tolerates spurious
file-permission errors, the light one would not); otherwise, and under ``NUMBA_DISABLE_JIT`` (no
dispatcher at all), this is plain ``njit(cache=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from numba import njit

try:
    from numba.core.runtime import rtsys as _rtsys

    LIGHT_LOADS = hasattr(_rtsys, "initialize") and os.name != "nt"  # (each cache is checked in njit_cached)
except ImportError:  # pragma: no cover - another numba layout
    LIGHT_LOADS = False


class LightCacheLoads:
    """A numba function cache whose ``load_overload`` initialises only the NRT (see the module
    docstring); everything else is the wrapped cache's."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.light_loads = 0  # loads served without the full refresh (tests read it)

    def __getattr__(self, name: str) -> Any:
        if name == "cache":  # not set yet (copy/pickle build the object without __init__): no recursion
            raise AttributeError(name)
        return getattr(self.cache, name)

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        try:
            _rtsys.initialize(target_context)
            cres = self.cache._load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 - numba's own path, with its full refresh, decides
            return self.cache.load_overload(sig, target_context)
        self.light_loads += cres is not None
        return cres


def njit_cached(**options: Any) -> Callable[[Callable], Any]:
    """``numba.njit(cache=True, **options)``, loading from numba's cache the light way when it can."""

    def decorate(py_func: Callable) -> Any:
        dispatcher = njit(cache=True, **options)(py_func)
        cache = getattr(dispatcher, "_cache", None)
        if LIGHT_LOADS and cache is not None and hasattr(cache, "_load_overload"):
            dispatcher._cache = LightCacheLoads(cache)
        return dispatcher

    return decorate
