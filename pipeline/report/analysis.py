"""What a report shows, computed from replay results (no rendering here).

Tables come from the summary rows and the provenance metadata; the time series and the flow costs
stream the per-packet Parquet (bounded memory); the load sweep and the sensitivity analysis re-run
the model (:func:`pipeline.replay.run_replay`, :func:`pipeline.replay.sensitivity_rows`) on the
capture named in the metadata, when it is still there and its SHA-256 matches.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import PipelineError
from pipeline.models.components import COMPONENTS, CONTEXTS
from pipeline.report.results import RunResults, finite

#: Relative tolerance under which two saturation throughputs count as equal: the saturation search
#: brackets the factor to 2 % (ReplayConfig.saturation_tol), so closer results are not distinguishable.
SATURATION_TIE = 0.02
#: Relative tolerance for cycles-per-packet comparisons (the per-packet costs are exact sums).
CYCLES_TIE = 0.01


# --- tables from the summary ---------------------------------------------------------------------

def _all_row(run: RunResults, guest: str = "all", direction: str = "all") -> pd.DataFrame:
    s = run.summary
    return s[(s.guest == guest) & (s.direction == direction)].set_index("arch")


def arch_table(run: RunResults) -> pd.DataFrame:
    """Per architecture (guest all, both directions): the comparison with ratios to ``linux``.

    Columns: saturation_mbps, limited_by, sat_vs_linux, cpu_bound_mbps (when the results have it:
    the rate at which the busiest CPU is 100 % busy, drops and link ignored), delivered_mbps,
    cpu_util_pct, cycles_per_packet, cpp_vs_linux, cycles_per_byte, drops, latency_p99_us.
    """
    rows = _all_row(run)
    sat = run.metadata.get("saturation") or {}
    out = pd.DataFrame(index=pd.Index(run.archs, name="arch"))
    out["saturation_mbps"] = rows.saturation_bps / 1e6
    out["limited_by"] = [str((sat.get(a) or {}).get("limited_by", "")) for a in out.index]
    if "cpu_bound_bps" in rows:
        out["cpu_bound_mbps"] = rows.cpu_bound_bps / 1e6
    out["delivered_mbps"] = rows.delivered_bps / 1e6
    out["cpu_util_pct"] = 100.0 * rows.cpu_util
    out["cycles_per_packet"] = rows.cycles_per_packet
    out["cycles_per_byte"] = rows.cycles_total / rows.wire_bytes.where(rows.wire_bytes > 0)
    out["drops"] = rows.drops.astype(int)
    out["latency_p99_us"] = rows["latency_p99_ns"] / 1e3 if "latency_p99_ns" in rows else np.nan
    if "linux" in out.index:
        out.insert(2, "sat_vs_linux", out.saturation_mbps / out.loc["linux", "saturation_mbps"])
        out.insert(out.columns.get_loc("cycles_per_packet") + 1, "cpp_vs_linux",
                   out.cycles_per_packet / out.loc["linux", "cycles_per_packet"])
    return out


def component_table(run: RunResults, guest: str = "all", direction: str = "all") -> pd.DataFrame:
    """Cycles per packet by component (columns = COMPONENTS), one row per architecture."""
    rows = _all_row(run, guest, direction)
    pk = rows.packets.where(rows.packets > 0)
    out = pd.DataFrame({c: rows[f"cycles_{c}"] / pk for c in COMPONENTS}, index=rows.index)
    return out.loc[[a for a in run.archs if a in out.index]]


def context_table(run: RunResults) -> pd.DataFrame:
    """CPU utilisation (% of one CPU at the trace's own timing) per context, one row per architecture."""
    rows = _all_row(run)
    cols = {c: 100.0 * rows[f"cpu_util_{c}"] for c in CONTEXTS if f"cpu_util_{c}" in rows}
    for c in sorted(k for k in rows.columns if k.startswith("cpu_util_cpu")):
        cols[c.removeprefix("cpu_util_")] = 100.0 * rows[c]
    return pd.DataFrame(cols, index=rows.index).loc[run.archs]


def direction_table(run: RunResults) -> pd.DataFrame:
    """Per architecture and direction (rx, tx): packets, Mb/s at saturation, cycles per packet and byte."""
    s = run.summary
    s = s[(s.guest == "all") & (s.direction.isin(["rx", "tx"]))]
    out = pd.DataFrame({
        "arch": s.arch, "direction": s.direction, "packets": s.packets.astype(int),
        "wire_mb": s.wire_bytes / 1e6, "saturation_mbps": s.saturation_bps / 1e6,
        "cycles_per_packet": s.cycles_per_packet,
        "cycles_per_byte": s.cycles_total / s.wire_bytes.where(s.wire_bytes > 0), "drops": s.drops.astype(int)})
    return out.reset_index(drop=True)


def guest_table(run: RunResults) -> pd.DataFrame:
    """Per guest and architecture (both directions): saturation, CPU, cycles per packet and byte."""
    s = run.summary
    s = s[(s.guest != "all") & (s.direction == "all")]
    out = pd.DataFrame({
        "guest": s.guest, "arch": s.arch, "packets": s.packets.astype(int),
        "saturation_mbps": s.saturation_bps / 1e6, "delivered_mbps": s.delivered_bps / 1e6,
        "cpu_util_pct": 100.0 * s.cpu_util, "cycles_per_packet": s.cycles_per_packet,
        "cycles_per_byte": s.cycles_total / s.wire_bytes.where(s.wire_bytes > 0), "drops": s.drops.astype(int)})
    return out.reset_index(drop=True)


def cross_trace_table(runs: list[RunResults]) -> pd.DataFrame:
    """One row per (trace, arch): saturation Mb/s, ratio to linux, cycles per packet, CPU %."""
    frames = []
    for r in runs:
        t = arch_table(r).reset_index()
        t.insert(0, "trace", r.label)
        frames.append(t)
    cols = ["trace", "arch", "saturation_mbps", "sat_vs_linux", "cycles_per_packet", "cpp_vs_linux",
            "cpu_util_pct", "drops"]
    out = pd.concat(frames, ignore_index=True)
    return out[[c for c in cols if c in out.columns]]


def params_table(run: RunResults) -> pd.DataFrame:
    """The parameters the run used, with value, unit, status, range and source (from the metadata)."""
    rows = run.metadata.get("params") or []
    cols = ["name", "value", "unit", "status", "low", "high", "source", "fitted_to"]
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df.columns:
            df[c] = ""
    return df[cols].sort_values("name").reset_index(drop=True)


def mapping_lines(run: RunResults) -> list[str]:
    """The direction/guest mapping the replay used, as short lines."""
    m = run.metadata.get("mapping") or {}
    lines = [str(m.get("explanation") or "mapping not recorded")]
    lines.append("inferred from the trace" if m.get("inferred") else "given by the user")
    names = m.get("guest_names") or run.guest_names
    guests = m.get("guests") or {}
    if guests:
        lines.append("guests: " + ", ".join(f"{k} = {v}" for k, v in guests.items()))
    elif len(names) > 1:
        lines.append(f"{len(names)} guests ({', '.join(names)}), flows spread by hash")
    ti = run.trace
    if ti.get("left_out_packets"):
        lines.append(f"{ti['left_out_packets']:,} packets touch neither host nor guest: left out")
    return lines


# --- the capture: find it again, summarise, per-flow costs -----------------------------------------

@dataclass
class TraceData:
    """What the report recomputes from the capture itself (when it can be found)."""

    path: Path | None
    note: str = ""
    inspect: dict[str, Any] = field(default_factory=dict)
    chunks: list[Any] | None = None       # PacketChunks in memory (for the sweep / sensitivity)
    chunks_note: str = ""
    flow_id: np.ndarray | None = None     # int64 per packet index -> flow number
    flows: pd.DataFrame | None = None     # one row per flow: label, packets, wire_bytes


def locate_trace(run: RunResults) -> Path | None:
    """The capture named in the metadata: as recorded, absolute, or relative to the results."""
    p = run.trace.get("path")
    if not p:
        return None
    cands = [Path(p)]
    if not Path(p).is_absolute():
        base = run.source if run.source.is_dir() else run.source.parent
        cands += [base / p, base.parent / p, base / Path(p).name]
    for c in cands:
        if c.is_file():
            return c
    return None


def _flow_keys_bidirectional(chunk) -> np.ndarray:
    """(n, 7) uint64 keys, the same for both directions of a flow: lower endpoint first."""
    a = np.stack([chunk.src_ip_hi, chunk.src_ip_lo, chunk.src_port.astype(np.uint64)], axis=1)
    b = np.stack([chunk.dst_ip_hi, chunk.dst_ip_lo, chunk.dst_port.astype(np.uint64)], axis=1)
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & ((a[:, 1] > b[:, 1]) |
                                                         ((a[:, 1] == b[:, 1]) & (a[:, 2] > b[:, 2]))))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    return np.concatenate([lo, hi, chunk.ip_proto.astype(np.uint64)[:, None]], axis=1)


_PROTO = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6"}


def _flow_label(key: tuple[int, ...]) -> str:
    from pipeline.ingest.addresses import format_ip

    a_hi, a_lo, a_port, b_hi, b_lo, b_port, proto = key
    if not any(key):
        return "non-IP"
    pa, pb = (f":{a_port}", f":{b_port}") if proto in (6, 17) else ("", "")
    return f"{format_ip(a_hi, a_lo)}{pa} <-> {format_ip(b_hi, b_lo)}{pb} {_PROTO.get(proto, str(proto))}"


def load_trace_data(run: RunResults, max_packets: int = 2_000_000) -> TraceData:
    """Find the capture again, check its SHA-256, summarise it and number its flows, in one pass.

    ``inspect`` is what ``pipeline inspect`` gives (:func:`pipeline.api.inspect_trace`, no top flows):
    the replay's metadata records the container details, not the capinfos-style statistics.
    Keeps up to ``max_packets`` packets in memory for the load sweep and the sensitivity runs.
    Whenever ``chunks`` is None, ``note`` or ``chunks_note`` says why.
    """
    from pipeline.api import inspect_trace

    path = locate_trace(run)
    recorded = run.trace.get("path")
    if path is None:
        return TraceData(None, note=f"capture {recorded!r} not found: the summary below is from the results' "
                                    "metadata; flows, load sweep and sensitivity need the capture")
    chunks: list[Any] | None = []
    n_kept = 0
    ids: list[np.ndarray] = []
    key_index: dict[tuple[int, ...], int] = {}
    f_packets: list[int] = []
    f_wire: list[int] = []

    def keep(ch) -> None:
        nonlocal chunks, n_kept
        _number_flows(ch, key_index, f_packets, f_wire, ids)
        if chunks is not None:
            if n_kept + len(ch) <= max_packets:
                chunks.append(ch)
                n_kept += len(ch)
            else:
                chunks = None

    try:
        info = inspect_trace(path, top=0, on_chunk=keep)  # one pass: summary, flows and chunks
    except PipelineError as e:
        return TraceData(None, note=f"capture {path} cannot be read again ({e}); sections that need it are left out")
    want = run.metadata.get("trace_sha256") or run.trace.get("sha256")
    if want and info.get("sha256") and info["sha256"] != want:
        return TraceData(None, note=f"capture {path} has changed since the replay (SHA-256 differs): sections "
                                    "that need the capture are left out")
    td = TraceData(path, inspect=info)
    td.flow_id = np.concatenate(ids) if ids else np.empty(0, np.int64)
    labels = [""] * len(key_index)
    for k, i in key_index.items():
        labels[i] = _flow_label(k)
    td.flows = pd.DataFrame({"flow": labels, "packets": f_packets, "wire_bytes": f_wire})
    td.chunks = chunks
    if chunks is None:
        td.chunks_note = (f"the capture has more than {max_packets:,} packets: load sweep and sensitivity "
                          "left out (they re-run the model on the whole trace in memory)")
    return td


def _number_flows(ch, key_index: dict[tuple[int, ...], int], f_packets: list[int], f_wire: list[int],
                  ids: list[np.ndarray]) -> None:
    """Give each packet of ``ch`` its (bidirectional) flow number; count packets and wire bytes per flow."""
    keys = _flow_keys_bidirectional(ch)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    gid = np.empty(len(uniq), np.int64)
    for i, row in enumerate(uniq.tolist()):
        t = tuple(int(v) for v in row)
        if t not in key_index:
            key_index[t] = len(key_index)
            f_packets.append(0)
            f_wire.append(0)
        gid[i] = key_index[t]
    fid = gid[inv.reshape(-1)]
    cnt = np.bincount(fid, minlength=len(key_index))
    wb = np.bincount(fid, weights=ch.wire_len.astype(np.float64), minlength=len(key_index))
    for j in np.flatnonzero(cnt).tolist():
        f_packets[j] += int(cnt[j])
        f_wire[j] += int(wb[j])
    ids.append(fid)


def flow_costs(run: RunResults, td: TraceData, top: int = 10) -> pd.DataFrame | None:
    """The ``top`` flows by modeled cycles (summed over the architectures), with cycles per arch.

    Columns: flow, packets, wire_bytes, then ``<arch>_mcycles`` (millions of cycles) and
    ``<arch>_share_pct`` (share of that architecture's cycles) per architecture.
    """
    if td.flow_id is None or td.flows is None or not run.packet_files:
        return None
    archs = run.archs
    n_flows = len(td.flows)
    acc = {a: np.zeros(n_flows) for a in archs}
    cyc_cols = [f"cycles_{c}" for c in COMPONENTS]
    for df in run.iter_packets(["arch", "packet_index"] + cyc_cols):
        idx = df.packet_index.to_numpy()
        if len(idx) and idx.max() >= len(td.flow_id):
            return None
        total = df[cyc_cols].to_numpy(np.float64).sum(axis=1)
        for a, sub in df.groupby("arch", observed=True).indices.items():
            if a in acc:
                acc[a] += np.bincount(td.flow_id[idx[sub]], weights=total[sub], minlength=n_flows)
    out = td.flows.copy()
    for a in archs:
        out[f"{a}_mcycles"] = acc[a] / 1e6
    out["_sum"] = sum(acc[a] for a in archs)
    out = out[out._sum > 0].sort_values(["_sum", "flow"], ascending=[False, True]).head(top)
    for a in archs:
        tot = acc[a].sum()
        out[f"{a}_share_pct"] = 100.0 * out[f"{a}_mcycles"] * 1e6 / tot if tot > 0 else np.nan
    return out.drop(columns="_sum").reset_index(drop=True)


def interval_series(run: RunResults, interval_s: float | None = None) -> pd.DataFrame | None:
    """Cycles per interval over time per architecture (like Wireshark's IO graph), from per-packet rows.

    Index: interval start in seconds from the first packet; columns: architectures; values:
    millions of cycles in that interval. ``interval_s`` None: about 100 intervals over the span.
    """
    if not run.packet_files:
        return None
    t0 = run.trace.get("first_ts_ns")
    span = float(run.trace.get("span_ns") or 0.0)
    if t0 is None:
        return None
    if interval_s is None:
        interval_s = _nice_interval(span / 1e9 / 100.0) if span > 0 else 1.0
    if not interval_s > 0:
        raise PipelineError(f"--interval must be > 0 s, not {interval_s}")
    n_bins = int(span / 1e9 // interval_s) + 1
    if n_bins > 100_000:
        raise PipelineError(f"--interval {interval_s:g} s gives {n_bins:,} intervals over "
                            f"{span / 1e9:.3f} s: choose a longer interval")
    archs = run.archs
    acc = {a: np.zeros(n_bins) for a in archs}
    cyc_cols = [f"cycles_{c}" for c in COMPONENTS]
    width_ns = interval_s * 1e9
    for df in run.iter_packets(["arch", "ts_ns"] + cyc_cols):
        b = np.clip(((df.ts_ns.to_numpy() - int(t0)) // width_ns).astype(np.int64), 0, n_bins - 1)
        total = df[cyc_cols].to_numpy(np.float64).sum(axis=1)
        for a, sub in df.groupby("arch", observed=True).indices.items():
            if a in acc:
                acc[a] += np.bincount(b[sub], weights=total[sub], minlength=n_bins)
    out = pd.DataFrame({a: acc[a] / 1e6 for a in archs}, index=np.arange(n_bins) * interval_s)
    out.index.name = "t_s"
    out.attrs["interval_s"] = interval_s
    return out


def _nice_interval(x: float) -> float:
    """The 1-2-5 step at or above x (seconds)."""
    if x <= 0:
        return 1.0
    e = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10.0 ** e >= x:
            return float(f"{m * 10.0 ** e:.3g}")
    return float(10.0 ** (e + 1))


# --- re-running the model: load sweep, sensitivity -------------------------------------------------

def replay_config(run: RunResults, **changes: Any):
    """The run's ReplayConfig, rebuilt from its metadata (``changes`` override fields)."""
    from pipeline.replay import ReplayConfig

    names = {f.name for f in dataclasses.fields(ReplayConfig)}
    cfg = {k: v for k, v in run.config.items() if k in names}
    cfg["archs"] = run.archs
    po = cfg.get("param_overrides")
    if isinstance(po, str):
        cfg["param_overrides"] = _overrides_dict(cfg.get("params"), po)
    cfg.update(changes)
    return ReplayConfig(**cfg)


def _overrides_dict(param_set: str | None, path: str) -> dict[str, Any]:
    """A --params file as {name: value} (for re-runs that add their own overrides)."""
    from pipeline.models.params import DEFAULT_PARAMS, load_params

    ps = load_params(param_set or DEFAULT_PARAMS, path)
    return {n: p.value for n, p in ps.params.items() if p.status == "override"}


def load_sweep(run: RunResults, chunks: list[Any], n_points: int = 12) -> pd.DataFrame:
    """Delivered throughput against offered load: the trace time-compressed by factors up to past saturation.

    One row per (factor, arch): factor, offered_mbps (host wire bits / compressed span), delivered_mbps,
    cpu_util_pct, drops. The factors run geometrically from min(1, half the lowest saturation factor)
    to 1.3 x the highest (link-capped) saturation factor.
    """
    from pipeline.replay import run_replay

    sat = run.metadata.get("saturation") or {}
    ks = [float(v.get("factor")) for v in sat.values() if finite(v.get("factor")) and float(v["factor"]) > 0]
    kl = [float(v.get("link_factor")) for v in sat.values() if finite(v.get("link_factor"))]
    hi = 1.3 * max(ks + kl) if (ks or kl) else 10.0
    lo = min([1.0] + [0.5 * k for k in ks])
    factors = np.geomspace(lo, hi, n_points)
    t0 = int(chunks[0].ts_ns[0]) if chunks else 0
    cfg = replay_config(run, saturation=False)
    rows = []
    for k in factors:
        scaled = [dataclasses.replace(c, ts_ns=t0 + ((c.ts_ns - t0) / k).astype(np.int64)) for c in chunks]
        res = run_replay(scaled, cfg)
        s = res.summary
        span_s = float(res.trace.get("span_ns") or 0.0) / 1e9
        for _, r in s[(s.guest == "all") & (s.direction == "all")].iterrows():
            rows.append({"factor": float(k), "arch": r.arch,
                         "offered_mbps": 8.0 * r.wire_bytes / span_s / 1e6 if span_s > 0 else np.nan,
                         "delivered_mbps": r.delivered_bps / 1e6, "cpu_util_pct": 100.0 * r.cpu_util,
                         "drops": int(r.drops)})
    return pd.DataFrame(rows)


def sensitivity(run: RunResults, chunks: list[Any], param_names: list[str] | None = None) -> pd.DataFrame:
    """Each non-published parameter at its ``low`` and ``high`` (pipeline.replay.sensitivity_rows)."""
    from pipeline.replay import sensitivity_rows

    return sensitivity_rows(chunks, replay_config(run), param_names)


def _relation(a: float, b: float, tie: float) -> str:
    if not (finite(a) and finite(b)):
        return "?"
    if a > b * (1.0 + tie):
        return ">"
    if a < b * (1.0 - tie):
        return "<"
    return "≈"


def conclusions(sens: pd.DataFrame) -> pd.DataFrame:
    """The pairwise conclusions of the comparison and whether they hold across the parameter ranges.

    Conclusions: for every pair of architectures, saturation throughput A vs B (ties within
    SATURATION_TIE) and cycles per packet A vs B (ties within CYCLES_TIE), at the baseline values.
    A *flip* is a strict reversal (> becomes <); a *change* is any other change (e.g. > becomes ≈).
    Columns: conclusion, baseline, flips (param=end, ...), changes (param=end, ...).
    """
    if sens is None or len(sens) == 0:
        return pd.DataFrame(columns=["conclusion", "baseline", "flips", "changes"])
    archs = list(dict.fromkeys(sens.arch))
    base = sens.groupby("arch").first()
    rows = []
    for i, a in enumerate(archs):
        for b in archs[i + 1:]:
            for _metric, bcol, col, tie, label in (
                    ("saturation", "base_saturation_mbps", "saturation_mbps", SATURATION_TIE,
                     "saturation throughput"),
                    ("cycles", "base_cycles_per_packet", "cycles_per_packet", CYCLES_TIE, "cycles per packet")):
                rel0 = _relation(base.loc[a, bcol], base.loc[b, bcol], tie)
                flips, changes = [], []
                for (p, end), g in sens.groupby(["param", "end"], sort=False):
                    g = g.set_index("arch")
                    rel = _relation(g.loc[a, col], g.loc[b, col], tie)
                    if rel != rel0:
                        tag = f"{p}={end}"
                        (flips if {rel, rel0} == {"<", ">"} else changes).append(tag)
                rows.append({"conclusion": f"{label}: {a} vs {b}", "baseline": f"{a} {rel0} {b}",
                             "flips": ", ".join(flips), "changes": ", ".join(changes)})
    return pd.DataFrame(rows)


def tornado_data(sens: pd.DataFrame, top: int = 10) -> dict[str, pd.DataFrame]:
    """Per architecture: % change of cycles per packet at each parameter's low and high end.

    Returns arch -> DataFrame(param, low_pct, high_pct, swing_pct) of the ``top`` parameters with
    the largest swing for that architecture (parameters that do not move it are left out).
    """
    out: dict[str, pd.DataFrame] = {}
    if sens is None or len(sens) == 0:
        return out
    s = sens.copy()
    s["pct"] = 100.0 * (s.cycles_per_packet / s.base_cycles_per_packet - 1.0)
    for a, g in s.groupby("arch", sort=False):
        p = g.pivot_table(index="param", columns="end", values="pct", aggfunc="first")
        for end in ("low", "high"):
            if end not in p:
                p[end] = 0.0
        p = p.rename(columns={"low": "low_pct", "high": "high_pct"})
        p["swing_pct"] = (p.high_pct - p.low_pct).abs()
        p = p[p.swing_pct > 1e-9].sort_values(["swing_pct"], ascending=False).head(top)
        out[str(a)] = p.reset_index()[["param", "low_pct", "high_pct", "swing_pct"]]
    return out
