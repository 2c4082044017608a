"""Ingest speed and memory benchmark (issue 2): pipeline's ingest vs dpkt's bare ``pcap.Reader``.

Measured in one run, on the synthetic snaplen-96 bulk-TCP trace (``synth.py``), page cache warm:

1. dpkt ``pcap.Reader`` iterating ``(ts, buf)`` with no decoding: in process (loop time) and as a
   whole ``python -c`` process (wall time).  The reference for both ratios.
2. ``pipeline.ingest.open_trace`` iterated to the end in this process (framing + field decode into
   the per-packet columns), after one warm-up run (numba cache), median of ``--repeats``; the
   target is for this default ingest. Reported beside it, not as the target: the same with
   ``sha256=True`` (the provenance hash inspect/replay/batch ask for, on a helper thread; SHA-256 at
   ~2.1 GB/s is itself ~0.1 s of CPU for the 204 MB file).
3. ``pipeline inspect FILE --json`` as a whole child process (wall time), median of ``--repeats``,
   alternated with the dpkt process runs so both see the same machine load; its JSON is checked
   against the synthetic trace's ground truth (packets, bytes, first/last timestamp, ...).
4. Peak RSS (``os.wait4`` ru_maxrss) of ``pipeline inspect`` on the 2M trace and on a 20M one.

Targets (issue 2): in-process ingest >= 20x dpkt bare iteration (packets/s); the whole inspect
process >= 3x faster than dpkt bare iteration; RSS(inspect, 20M) <= 1.5x RSS(inspect, 2M).

Run: ``.venv/bin/python tests/benchmarks/bench_ingest.py [--packets N] [--big-packets N]
[--skip-big] [--repeats 3] [--json-out FILE]``.  The first run also generates (and caches) the
traces: about 1.5 s per 2M packets, 2.1 GB of disk for 20M.
"""

from __future__ import annotations

import argparse
import json
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
from synth import cached_trace, truth_path

DPKT_CHILD = """\
import sys, dpkt
n = 0
with open(sys.argv[1], 'rb') as fh:
    for ts, buf in dpkt.pcap.Reader(fh):
        n += 1
print(n)
"""

CHECK_KEYS = ("packets", "wire_bytes", "captured_bytes", "first_ts_ns", "last_ts_ns",
              "snap_truncated_packets", "ipv6_packets", "vlan_tagged_packets", "udp_packets")

TARGET_INPROC_X = 20.0
TARGET_PROCESS_X = 3.0
TARGET_RSS_RATIO = 1.5


def dpkt_in_process(path: Path) -> tuple[float, int]:
    """Seconds for dpkt's pcap.Reader to iterate (ts, buf) over the whole file, and the count."""
    import dpkt

    n = 0
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        for _ts, _buf in dpkt.pcap.Reader(fh):
            n += 1
    return time.perf_counter() - t0, n


def ingest_in_process(path: Path, sha256: bool = False) -> tuple[float, int]:
    """Seconds for pipeline.ingest.open_trace to yield every chunk of the file, and the count."""
    from pipeline.ingest import open_trace

    n = 0
    t0 = time.perf_counter()
    with open_trace(path, sha256=sha256) as reader:
        for chunk in reader:
            n += len(chunk)
    return time.perf_counter() - t0, n


def ready_trace(packets: int, label: str) -> tuple[Path, dict]:
    """The cached synthetic trace of ``packets`` packets (generated if needed) and its ground truth,
    read once into the page cache."""
    t0 = time.perf_counter()
    path = cached_trace(packets)
    truth = json.loads(truth_path(path).read_text())
    print(f"{label}: {path} ({path.stat().st_size / 1e6:,.1f} MB, {packets:,} packets; "
          f"ready in {time.perf_counter() - t0:.1f} s)")
    warm_page_cache(path)
    return path, truth


def check_inspect(run: ChildRun, truth: dict) -> list[str]:
    """Mismatches between ``pipeline inspect --json`` output and the trace's ground truth."""
    if run.returncode != 0:
        return [f"exit code {run.returncode}: {run.stderr.strip()[-500:]}"]
    try:
        got = json.loads(run.stdout)
    except json.JSONDecodeError as e:
        return [f"stdout is not JSON ({e}): {run.stdout[:200]!r}"]
    return [f"{k}: inspect says {got.get(k)!r}, truth {truth[k]!r}" for k in CHECK_KEYS
            if k in truth and got.get(k) != truth[k]]


def main() -> int:
    ap = argparse.ArgumentParser(description="pipeline ingest vs dpkt: speed and peak RSS (issue 2)")
    ap.add_argument("--packets", type=int, default=2_000_000, help="packets in the main trace")
    ap.add_argument("--big-packets", type=int, default=20_000_000, help="packets in the RSS-scaling trace")
    ap.add_argument("--skip-big", action="store_true", help="skip the big trace (no RSS ratio)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--json-out", type=Path, help="write all figures here as JSON")
    a = ap.parse_args()

    path, truth = ready_trace(a.packets, "trace")
    warm_bytecode()
    n = a.packets
    res: dict = {"host": host_info(), "trace": str(path), "packets": n, "file_bytes": path.stat().st_size,
                 "repeats": a.repeats}
    problems: list[str] = []

    # 1. dpkt bare iteration, in process.
    dpkt_s = []
    for _ in range(a.repeats):
        s, cnt = dpkt_in_process(path)
        dpkt_s.append(s)
        if cnt != n:
            problems.append(f"dpkt counted {cnt} packets, expected {n}")
    res["dpkt_inproc_s"] = dpkt_s

    # 2. pipeline ingest in process: warm-up (numba cache, page cache), then timed runs.
    ingest_in_process(path)
    ing_s = []
    hashed_s = []
    for _ in range(a.repeats):  # alternated, so both see the same machine load
        s, cnt = ingest_in_process(path)
        ing_s.append(s)
        if cnt != n:
            problems.append(f"open_trace yielded {cnt} packets, expected {n}")
        hashed_s.append(ingest_in_process(path, sha256=True)[0])
    res["ingest_inproc_s"] = ing_s
    res["ingest_inproc_sha256_s"] = hashed_s

    # 3. whole processes, alternated: dpkt child, pipeline inspect child.
    run_child(pipeline_argv("inspect", str(path), "--json"))  # warm-up (numba cache of every kernel)
    dpkt_proc: list[ChildRun] = []
    insp_proc: list[ChildRun] = []
    for _ in range(a.repeats):
        dpkt_proc.append(run_child([sys.executable, "-c", DPKT_CHILD, str(path)]))
        r = run_child(pipeline_argv("inspect", str(path), "--json"))
        insp_proc.append(r)
        problems += [f"inspect (2M): {p}" for p in check_inspect(r, truth)]
    res["dpkt_process_s"] = [r.wall_s for r in dpkt_proc]
    res["dpkt_process_rss_bytes"] = [r.max_rss_bytes for r in dpkt_proc]
    res["inspect_process_s"] = [r.wall_s for r in insp_proc]
    res["inspect_rss_bytes"] = [r.max_rss_bytes for r in insp_proc]

    # 4. peak RSS on the big trace.
    if not a.skip_big:
        big, big_truth = ready_trace(a.big_packets, "big trace")
        r = run_child(pipeline_argv("inspect", str(big), "--json"))
        problems += [f"inspect (big): {p}" for p in check_inspect(r, big_truth)]
        res.update(big_trace=str(big), big_packets=a.big_packets, big_inspect_s=r.wall_s,
                   big_inspect_rss_bytes=r.max_rss_bytes, big_inspect_ok=r.returncode == 0)

    # Figures and targets.
    d_in = median(dpkt_s)
    d_proc = median(res["dpkt_process_s"])
    i_proc = median(res["inspect_process_s"])
    rss2 = median(res["inspect_rss_bytes"])
    rows = [["dpkt pcap.Reader bare, in process", f"{d_in:.3f}", f"{n / d_in / 1e6:.2f}", ""],
            ["dpkt pcap.Reader bare, whole process", f"{d_proc:.3f}", f"{n / d_proc / 1e6:.2f}",
             f"{median(res['dpkt_process_rss_bytes']) / 2**20:.0f}"]]
    targets = {}
    i_in = median(res["ingest_inproc_s"])
    rows.append(["pipeline open_trace, in process (warm)", f"{i_in:.3f}", f"{n / i_in / 1e6:.2f}", ""])
    i_hash = median(res["ingest_inproc_sha256_s"])
    rows.append(["  the same with sha256=True (not the target)", f"{i_hash:.3f}", f"{n / i_hash / 1e6:.2f}", ""])
    res["inproc_sha256_vs_dpkt_x"] = d_in / i_hash
    x = d_in / i_in
    targets["inproc_vs_dpkt_x"] = {"value": x, "target": f">= {TARGET_INPROC_X}", "met": x >= TARGET_INPROC_X}
    inspect_ok = all(r.returncode == 0 for r in insp_proc)
    if inspect_ok:
        rows.append([f"pipeline inspect --json, whole process ({n / 1e6:g}M)", f"{i_proc:.3f}",
                     f"{n / i_proc / 1e6:.2f}", f"{rss2 / 2**20:.0f}"])
        x = d_proc / i_proc
        targets["inspect_process_vs_dpkt_process_x"] = {"value": x, "target": f">= {TARGET_PROCESS_X}",
                                                        "met": x >= TARGET_PROCESS_X}
    else:
        rows.append([f"pipeline inspect --json ({n / 1e6:g}M): FAILED, see problems", "-", "-", "-"])
    if "big_inspect_s" in res and inspect_ok and res["big_inspect_ok"]:
        nb = res["big_packets"]
        rows.append([f"pipeline inspect --json, whole process ({nb / 1e6:g}M)", f"{res['big_inspect_s']:.3f}",
                     f"{nb / res['big_inspect_s'] / 1e6:.2f}", f"{res['big_inspect_rss_bytes'] / 2**20:.0f}"])
        ratio = res["big_inspect_rss_bytes"] / rss2
        targets["rss_big_over_rss_2m"] = {"value": ratio, "target": f"<= {TARGET_RSS_RATIO}",
                                          "met": ratio <= TARGET_RSS_RATIO}
    print()
    print_table(rows, ["measurement (median)", "seconds", "M packets/s", "peak RSS MiB"])
    print()
    return finish(res, targets, problems, a.json_out, width=40)


if __name__ == "__main__":
    sys.exit(main())
