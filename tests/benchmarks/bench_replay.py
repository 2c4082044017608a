"""Replay speed benchmark (issue 3): ``pipeline replay`` vs dpkt bare iteration and a dpkt-object pipeline.

On the synthetic 2M-packet snaplen-96 trace (``synth.py``), page cache, numba cache and
bytecode cache (``_common.warm_bytecode``) warm:

1. In process: ``pipeline.replay.run_replay`` over the four architectures (one warm-up run, then
   ``--repeats``); per-architecture kernel ns/packet as the engine measures it around its kernel
   calls (``ReplayResult.kernel_ns_per_packet``, the trace's own timing, per-packet outputs on),
   and the saturation search's passes.
2. Whole processes, alternated: dpkt ``pcap.Reader`` iterating ``(ts, buf)`` with no decoding, and
   ``pipeline replay FILE --out DIR`` (all four architectures, saturation search and per-packet
   Parquet included); median of ``--repeats`` wall times.  Outputs are checked (summary rows,
   per-packet row counts).
3. The baseline: ``dpkt_baseline.py replay FILE --out DIR``: the same ``pipeline`` CLI with every
   ``open_trace`` replaced by a dpkt-object decoder (``PktHdr`` -> ``Ethernet`` -> ``IP``/``IP6`` ->
   ``TCP``/``UDP`` per packet, into the same columns), so the same model, saturation search and
   Parquet writes run on top.  Its columns are first checked equal to the fast ingest's on a prefix
   of the trace, and its summary.parquet equal to the fast run's.

Targets (issue 3): whole ``pipeline replay`` <= 0.5x dpkt bare iteration's time; >= 12x faster
than the dpkt-object pipeline.

Run: ``.venv/bin/python tests/benchmarks/bench_replay.py [--packets N] [--repeats 3]
[--baseline-repeats 1] [--skip-baseline] [--replay-arg OPT ...] [--json-out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from _common import (
    ChildRun,
    finish,
    host_info,
    median,
    pipeline_argv,
    print_table,
    run_child,
    warm_bytecode,
    warm_page_cache,
)
from bench_ingest import DPKT_CHILD
from synth import bench_dir, cached_trace, truth_path

TARGET_VS_DPKT = 0.5
TARGET_VS_BASELINE_X = 12.0
BASELINE = str(Path(__file__).with_name("dpkt_baseline.py"))


def check_columns_equal(path: Path, n_check: int) -> list[str]:
    """The dpkt baseline's columns equal open_trace's on the first ``n_check`` packets."""
    import numpy as np
    from dpkt_baseline import dpkt_packet_chunks

    from pipeline.ingest import open_trace
    from pipeline.ingest.columns import PACKET_COLUMNS

    slow = next(iter(dpkt_packet_chunks(path, chunk_packets=n_check)))
    with open_trace(path, chunk_packets=n_check) as reader:
        fast = next(iter(reader))
    m = min(len(slow), len(fast))
    problems = []
    for k in PACKET_COLUMNS:
        a, b = getattr(slow, k)[:m], getattr(fast, k)[:m]
        if a.dtype != b.dtype or not np.array_equal(a, b):
            problems.append(f"dpkt baseline column {k} differs from open_trace's "
                            f"({int(np.sum(a != b))} of {m} packets)")
    return problems


def in_process(path: Path, repeats: int) -> tuple[dict, list[str]]:
    """Time run_replay in this process; per-arch kernel ns/packet."""
    from pipeline.replay import ReplayConfig, run_replay

    packet_rows = {"n": 0}

    def sink(_arch: str, cols: dict) -> None:  # per-packet outputs consumed, as the store would
        packet_rows["n"] += len(cols["packet_index"])

    run_replay(path, ReplayConfig(), packet_sink=sink)  # warm-up: numba cache, page cache
    times, kern = [], []
    res = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = run_replay(path, ReplayConfig(), packet_sink=sink)
        times.append(time.perf_counter() - t0)
        kern.append(dict(res.kernel_ns_per_packet))
    out = {"run_replay_s": times, "kernel_ns_per_packet": {a: median([k[a] for k in kern]) for a in kern[0]},
           "saturation": {a: {k: v for k, v in s.items()} for a, s in res.saturation.items()},
           "host_packets": res.trace.get("host_packets"), "warnings": res.warnings}
    return out, []


def check_replay_output(out_dir: Path, run: ChildRun) -> tuple[list[str], dict]:
    """Problems with a `pipeline replay` output directory, and what it holds."""
    if run.returncode != 0:
        return [f"exit code {run.returncode}: {run.stderr.strip()[-400:]}"], {}
    import pyarrow.parquet as pq

    files = sorted(out_dir.rglob("*.parquet"))
    info = {"files": [str(f.relative_to(out_dir)) for f in files],
            "rows": {str(f.relative_to(out_dir)): pq.ParquetFile(f).metadata.num_rows for f in files}}
    problems = []
    if not (out_dir / "summary.parquet").exists():
        problems.append(f"no summary.parquet in {out_dir}")
    if len(files) < 2:
        problems.append(f"no per-packet Parquet in {out_dir} (files: {info['files']})")
    return problems, info


def compare_summaries(a: Path, b: Path) -> list[str]:
    """The fast run's and the baseline's summary.parquet agree (same model, same input columns)."""
    import numpy as np
    import pandas as pd

    fa, fb = pd.read_parquet(a / "summary.parquet"), pd.read_parquet(b / "summary.parquet")
    if fa.shape != fb.shape or list(fa.columns) != list(fb.columns):
        return [f"summaries differ in shape: {fa.shape} vs {fb.shape}"]
    bad = []
    for c in fa.columns:
        x, y = fa[c].to_numpy(), fb[c].to_numpy()
        if x.dtype.kind in "fiu":
            if not np.allclose(x.astype(float), y.astype(float), rtol=1e-9, equal_nan=True):
                bad.append(c)
        elif not (fa[c].astype(str) == fb[c].astype(str)).all():
            bad.append(c)
    return [f"baseline summary differs from the fast run's in {bad}"] if bad else []


def main() -> int:
    ap = argparse.ArgumentParser(description="pipeline replay vs dpkt (issue 3)")
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-repeats", type=int, default=1)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--check-packets", type=int, default=200_000,
                    help="packets of the trace on which the baseline's columns are checked against open_trace")
    ap.add_argument("--replay-arg", action="append", default=[],
                    help="extra option for `pipeline replay` (and the baseline), repeatable")
    ap.add_argument("--json-out", type=Path)
    a = ap.parse_args()

    path = cached_trace(a.packets)
    truth = json.loads(truth_path(path).read_text())
    n = a.packets
    warm_page_cache(path)
    warm_bytecode()
    print(f"trace: {path} ({path.stat().st_size / 1e6:.1f} MB, {n:,} packets)")
    res: dict = {"host": host_info(), "trace": str(path), "packets": n, "repeats": a.repeats,
                 "replay_args": a.replay_arg}
    problems: list[str] = []
    work = bench_dir() / "replay_runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()

    inproc, p = in_process(path, a.repeats)
    res["in_process"] = inproc
    problems += p
    # The inferred host is 192.168.1.2 (IPv4 only), so the IPv6 flow (fd00::11 -> fd00::2) is left out.
    expect_host = truth["packets"] - truth["ipv6_packets"]
    if inproc["host_packets"] != expect_host:
        problems.append(f"replay saw {inproc['host_packets']} host packets, expected {expect_host} "
                        "(all but the IPv6 ones)")

    help_run = run_child(pipeline_argv("replay", "--help"))
    has_cli = help_run.returncode == 0
    if not has_cli:
        print("`pipeline replay` is not a command yet: whole-process figures skipped.")
        problems.append("`pipeline replay` CLI missing")

    dpkt_proc: list[ChildRun] = []
    replay_proc: list[ChildRun] = []
    fast_out = work / "fast"
    if has_cli:
        run_child(pipeline_argv("replay", str(path), "--out", str(work / "warm"), *a.replay_arg))
        shutil.rmtree(work / "warm", ignore_errors=True)
        for rep in range(a.repeats):
            dpkt_proc.append(run_child([sys.executable, "-c", DPKT_CHILD, str(path)]))
            shutil.rmtree(fast_out, ignore_errors=True)
            r = run_child(pipeline_argv("replay", str(path), "--out", str(fast_out), *a.replay_arg))
            replay_proc.append(r)
            if rep == 0:
                p, info = check_replay_output(fast_out, r)
                problems += [f"replay: {x}" for x in p]
                res["replay_output"] = info
    else:
        for _ in range(a.repeats):
            dpkt_proc.append(run_child([sys.executable, "-c", DPKT_CHILD, str(path)]))
    res["dpkt_process_s"] = [r.wall_s for r in dpkt_proc]
    res["replay_process_s"] = [r.wall_s for r in replay_proc]
    res["replay_process_rss_bytes"] = [r.max_rss_bytes for r in replay_proc]

    base_proc: list[ChildRun] = []
    if has_cli and not a.skip_baseline:
        problems += check_columns_equal(path, a.check_packets)
        base_out = work / "baseline"
        for rep in range(a.baseline_repeats):
            shutil.rmtree(base_out, ignore_errors=True)
            r = run_child([sys.executable, BASELINE, "replay", str(path), "--out", str(base_out), *a.replay_arg])
            base_proc.append(r)
            if rep == 0:
                p, _info = check_replay_output(base_out, r)
                problems += [f"baseline: {x}" for x in p]
                if not p and fast_out.exists():
                    problems += compare_summaries(fast_out, base_out)
        res["baseline_process_s"] = [r.wall_s for r in base_proc]
    shutil.rmtree(work, ignore_errors=True)

    # Figures.
    d = median(res["dpkt_process_s"])
    rows = [["dpkt pcap.Reader bare, whole process", f"{d:.3f}", f"{n / d / 1e6:.2f}"]]
    ip = median(inproc["run_replay_s"])
    rows.append(["run_replay in process (4 archs, saturation, sink)", f"{ip:.3f}", f"{n / ip / 1e6:.2f}"])
    targets = {}
    ok_replay = replay_proc and all(r.returncode == 0 for r in replay_proc)
    if ok_replay:
        rp = median(res["replay_process_s"])
        rows.append(["pipeline replay --out, whole process", f"{rp:.3f}", f"{n / rp / 1e6:.2f}"])
        targets["replay_time_over_dpkt_time"] = {"value": rp / d, "target": f"<= {TARGET_VS_DPKT}",
                                                 "met": rp / d <= TARGET_VS_DPKT}
        if base_proc and all(r.returncode == 0 for r in base_proc):
            b = median(res["baseline_process_s"])
            rows.append(["dpkt-object decode -> same replay, whole process", f"{b:.3f}", f"{n / b / 1e6:.3f}"])
            targets["baseline_time_over_replay_time_x"] = {"value": b / rp, "target": f">= {TARGET_VS_BASELINE_X}",
                                                           "met": b / rp >= TARGET_VS_BASELINE_X}
    print()
    print_table(rows, ["measurement (median)", "seconds", "M packets/s"])
    print("\nkernel ns/packet (in process, trace timing, per-packet outputs on):")
    for arch, v in inproc["kernel_ns_per_packet"].items():
        sat = inproc["saturation"].get(arch, {})
        print(f"  {arch:8s} {v:7.1f} ns/packet   saturation factor {sat.get('factor', float('nan')):.3f} "
              f"({sat.get('limited_by', '?')}, {sat.get('passes', '?')} passes)")
    print()
    return finish(res, targets, problems, a.json_out, width=36)


if __name__ == "__main__":
    sys.exit(main())
