"""pipeline.kernels.jit: kernels load from numba's cache without numba's full context refresh, give
the same results as in this process, and fall back to numba's own load when the light one fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from pipeline.kernels import jit

# In a fresh process (the cache is warm: this test process replays the same trace first), count
# numba's full target-context refreshes while a trace is read and replayed.
_CHILD = """
import json, sys, tempfile
from numba.core import base
refreshes = []
_refresh = base.BaseContext.refresh
def counting_refresh(self):
    refreshes.append(type(self).__name__)
    return _refresh(self)
base.BaseContext.refresh = counting_refresh
from pipeline.api import replay
from pipeline.ingest import framing
from pipeline.kernels import replay_kernel
from pipeline.replay import ReplayConfig
with tempfile.TemporaryDirectory() as d:
    res = replay(sys.argv[1], d, ReplayConfig(saturation=False), write_packets=False)
print(json.dumps({"refreshes": refreshes, "rows": res.summary_rows,
                  "light": [framing.frame_pcap._cache.light_loads, replay_kernel.replay_kernel._cache.light_loads]},
                 default=float))
"""


@pytest.mark.skipif(not jit.LIGHT_LOADS or os.environ.get("NUMBA_DISABLE_JIT") == "1",
                    reason="numba without the internals the light load needs, or no JIT")
def test_fresh_process_loads_kernels_without_full_refresh(bundled_traces):
    from pipeline.api import replay
    from pipeline.replay import ReplayConfig

    trace = bundled_traces / "iperf3_mtu1500_snap96.pcap"
    with tempfile.TemporaryDirectory() as d:  # compiles on a cold cache, so the child loads
        here = replay(trace, d, ReplayConfig(saturation=False), write_packets=False)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(trace)], capture_output=True, text=True, check=True)
    child = json.loads(out.stdout)
    assert child["refreshes"] == []  # numba's load_overload would have refreshed on the first load
    assert all(n >= 1 for n in child["light"])  # ingest and replay kernels both came the light way
    assert json.loads(json.dumps(here.summary_rows, default=float)) == child["rows"]


class _FakeNumbaCache:
    """Stands in for numba's FunctionCache: its private loader fails, its public one answers."""

    cache_path = "/nowhere"

    def __init__(self, private_fails: bool):
        self.private_fails = private_fails
        self.calls: list[str] = []

    def _load_overload(self, sig, target_context):
        self.calls.append("private")
        if self.private_fails:
            raise KeyError("registry missing")
        return "cres" if sig == "hit" else None

    def load_overload(self, sig, target_context):
        self.calls.append("public")
        return "cres-from-numba"


@pytest.fixture
def no_nrt(monkeypatch):
    monkeypatch.setattr(jit._rtsys, "initialize", lambda ctx: None)


@pytest.mark.skipif(not jit.LIGHT_LOADS, reason="numba without the internals the light load needs")
@pytest.mark.parametrize(("sig", "fails", "result", "calls", "light"), [
    ("hit", False, "cres", ["private"], 1),        # the light load
    ("miss", False, None, ["private"], 0),         # not cached: numba compiles (and refreshes) itself
    ("hit", True, "cres-from-numba", ["private", "public"], 0),  # light load failed: numba's own
])
def test_light_load_and_fallback(no_nrt, sig, fails, result, calls, light):
    fake = _FakeNumbaCache(fails)
    cache = jit.LightCacheLoads(fake)
    assert cache.load_overload(sig, target_context=None) == result
    assert fake.calls == calls
    assert cache.light_loads == light
    assert cache.cache_path == "/nowhere"  # everything else is the wrapped cache's


def test_njit_cached_is_njit_with_cache():
    @jit.njit_cached(nogil=True)
    def add(a, b):
        return a + b

    assert add(2, 3) == 5
    if os.environ.get("NUMBA_DISABLE_JIT") != "1":
        assert add.targetoptions["nogil"] is True
        assert isinstance(add._cache, jit.LightCacheLoads) == jit.LIGHT_LOADS


def test_light_cache_copies_without_recursion():
    """copy/pickle build the proxy without __init__: looking up its own ``cache`` must not recurse."""
    import copy

    fake = _FakeNumbaCache(private_fails=False)
    dup = copy.copy(jit.LightCacheLoads(fake))
    assert dup.cache is fake and dup.cache_path == "/nowhere"
