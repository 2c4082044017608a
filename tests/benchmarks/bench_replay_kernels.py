"""Per-architecture replay kernel cost in ns per packet, and the saturation search, on the synthetic
benchmark trace (issue 3's "per-architecture kernel cost" figure). In-process, warm numba cache.

    .venv/bin/python tests/benchmarks/bench_replay_kernels.py [--packets 2000000] [--json-out F]

Rows: ``detail+packets`` = the own-timing pass with per-packet result columns (what ``pipeline
replay`` does for each architecture), ``detail`` = the same without per-packet columns, ``factor`` =
one saturation-search simulation (no detail); then the whole ``run_replay`` (ingest, 4 archs, the
saturation search, no Parquet) with 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import cached_trace  # noqa: E402

from pipeline.ingest import read_trace  # noqa: E402
from pipeline.kernels.replay_kernel import KernelState  # noqa: E402
from pipeline.models.mapping import resolve_mapping  # noqa: E402
from pipeline.models.params import load_params  # noqa: E402
from pipeline.models.registry import DEFAULT_ARCHS, compile_architecture, get_architecture  # noqa: E402
from pipeline.replay import ReplayConfig, _host_setup, _OutBuffers, _run, prepare_chunk, run_replay  # noqa: E402


def best_of(fn, reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args()
    path = cached_trace(a.packets)
    chunk, _ = read_trace(path)
    cfg = ReplayConfig(hosts=["192.168.1.2"])
    mapping = resolve_mapping(cfg.hosts, [], None, chunk)
    hp, _ = prepare_chunk(chunk, mapping, "captured", 1500)
    params = load_params()
    host = _host_setup(params, cfg, 1)
    n = len(hp)
    t0 = int(hp.ts_ns[0])
    results: dict[str, dict[str, float]] = {}
    print(f"{'arch':8} {'detail+packets':>15} {'detail':>8} {'factor':>8}   ns/packet, {n:,} packets")
    for name in DEFAULT_ARCHS:
        arch = compile_architecture(get_architecture(name), params)
        out = _OutBuffers()
        out.get(n)

        def go(detail, out, arch=arch):
            st = KernelState(np.ones(1), host.n_cpus, 1, host.ring_size, arch.bridge_capacity)
            _run(arch, host, st, hp, t0, cfg.link_bps, 1, detail=detail, out=out)

        r = {"detail+packets": 1e9 * best_of(lambda go=go, out=out: go(True, out)) / n,
             "detail": 1e9 * best_of(lambda go=go: go(True, None)) / n,
             "factor": 1e9 * best_of(lambda go=go: go(False, None)) / n}
        results[name] = r
        print(f"{name:8} {r['detail+packets']:15.1f} {r['detail']:8.1f} {r['factor']:8.1f}")
    for threads in (1, 2):
        run_replay(path, ReplayConfig(hosts=["192.168.1.2"], threads=threads))  # warm
        dt = best_of(lambda threads=threads: run_replay(path, ReplayConfig(hosts=["192.168.1.2"], threads=threads)), 2)
        results[f"run_replay_threads{threads}"] = {"seconds": dt}
        print(f"run_replay (ingest + 4 archs + saturation, no Parquet), {threads} thread(s): {dt:.2f} s")
    if a.json_out:
        a.json_out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
