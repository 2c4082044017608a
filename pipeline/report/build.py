"""`pipeline report`: turn replay results (single runs or batch datasets) into one report document.

For each trace: a capinfos-style summary and the mapping used; the architecture comparison
(saturation throughput, CPU per context, cycles per packet by component, ratios to ``linux``); cycles
per interval over time; throughput against offered load (time-compression sweep); the top flows by
modeled cost; per-guest tables when there are several guests; sensitivity of the comparison to each
parameter's plausible range (tornado chart, conclusions that flip); the parameters with provenance.
Across traces: one table and chart of every trace x architecture.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.ingest.columns import format_ts_ns
from pipeline.models.components import COMPONENTS
from pipeline.report import analysis as an
from pipeline.report import figures as fg
from pipeline.report.render import Bullets, Document, Figure, Para, Section, Table, fmt_num, fmt_table
from pipeline.report.results import RunResults, check_compatible, finite, load_many

Log = Callable[[str], None]

ARCH_TABLE_FORMATS = {"saturation_mbps": ",.1f", "sat_vs_linux": ".2f", "cpu_bound_mbps": ",.1f",
                      "delivered_mbps": ",.1f",
                      "cpu_util_pct": ".1f", "cycles_per_packet": ",.0f", "cpp_vs_linux": ".2f",
                      "cycles_per_byte": ".2f", "drops": ",d", "latency_p99_us": ",.1f"}
ARCH_TABLE_NAMES = {"saturation_mbps": "saturation Mb/s", "limited_by": "limited by", "sat_vs_linux":
                    "vs linux", "cpu_bound_mbps": "CPU-bound Mb/s", "delivered_mbps": "delivered Mb/s",
                    "cpu_util_pct": "CPU %",
                    "cycles_per_packet": "cycles/pkt", "cpp_vs_linux": "cycles vs linux",
                    "cycles_per_byte": "cycles/byte", "latency_p99_us": "latency p99 us"}


def capture_rows(run: RunResults, td: an.TraceData) -> list[tuple[str, str]]:
    """capinfos-style rows: recomputed from the capture when found, else from the results' metadata."""
    s = td.inspect or {}
    t = run.trace
    if s:
        rows = [
            ("File", str(td.path)),
            ("Format", f"{s.get('format')} ({s.get('compression') or 'uncompressed'}), "
                       f"{s.get('byte_order')}-endian, version {s.get('version')}"),
            ("Link types", ", ".join(s.get("linktypes") or []) or "-"),
            ("Snaplen", str(s.get("snaplen"))),
            ("Packets", fmt_num(s.get("packets"), ",d")),
            ("Wire bytes", fmt_num(s.get("wire_bytes"), ",d")),
            ("Captured bytes", fmt_num(s.get("captured_bytes"), ",d")),
            ("Snaplen-truncated packets", fmt_num(s.get("snap_truncated_packets"), ",d")),
            ("First packet", format_ts_ns(s.get("first_ts_ns"))),
            ("Last packet", format_ts_ns(s.get("last_ts_ns"))),
            ("Duration", f"{fmt_num(s.get('duration_s'), '.6f')} s"),
            ("Average rate", f"{fmt_num((s.get('avg_bit_rate_bps') or 0) / 1e6, ',.2f')} Mbit/s, "
                             f"{fmt_num(s.get('avg_packet_rate_pps'), ',.0f')} pkt/s"),
            ("Average packet size", f"{fmt_num(s.get('avg_packet_size_bytes'), '.1f')} B"),
            ("IPv4 / IPv6 / non-IP", f"{s.get('ipv4_packets', 0):,} / {s.get('ipv6_packets', 0):,} / "
                                     f"{s.get('non_ip_packets', 0):,}"),
            ("TCP / UDP / ICMP / other", f"{s.get('tcp_packets', 0):,} / {s.get('udp_packets', 0):,} / "
                                         f"{s.get('icmp_packets', 0):,} / {s.get('other_l4_packets', 0):,}"),
            ("Distinct hosts / flows", f"{s.get('distinct_hosts', 0):,} / {s.get('distinct_flows', 0):,}"),
            ("Damage", "truncated (good packets kept)" if s.get("truncated") else "none found"),
        ]
    else:
        rows = [("File", str(t.get("path"))), ("Format", str(t.get("format"))),
                ("Link types", ", ".join(t.get("linktypes") or []) or "-"),
                ("Packets", fmt_num(t.get("packets"), ",d")), ("First packet", format_ts_ns(t.get("first_ts_ns"))),
                ("Last packet", format_ts_ns(t.get("last_ts_ns")))]
    rows += [("Modeled host's packets", fmt_num(t.get("host_packets"), ",d")),
             ("Left out (neither host nor guest)", fmt_num(t.get("left_out_packets"), ",d")),
             ("SHA-256", str(run.metadata.get("trace_sha256") or t.get("sha256")))]
    return rows


def _kv_table(rows: list[tuple[str, str]], caption: str = "") -> Table:
    return Table(pd.DataFrame(rows, columns=["", "value"]), caption=caption)


def _run_line(run: RunResults) -> dict[str, str]:
    c = run.config
    return {"trace": run.label, "results": str(run.source), "archs": ", ".join(run.archs),
            "parameter set": str(c.get("params")), "overrides": str(c.get("param_overrides") or "-"),
            "placement": str(c.get("placement")), "segments": str(c.get("segments")),
            "link Mb/s": fmt_num(float(c.get("link_bps") or 0) / 1e6, ",.0f"),
            "tool": str(run.metadata.get("tool_version"))}


def _can_rerun(s: Section, wanted: bool, flag: str, td: an.TraceData) -> bool:
    """Whether a section that re-runs the model on the capture (sweep, sensitivity) can; if not, says why in ``s``."""
    if not wanted:
        s.add(Para(f"Left out ({flag})."))
    elif td.chunks is None:
        s.add(Para(td.chunks_note or td.note))  # load_trace_data sets one of them whenever chunks is None
    else:
        return True
    return False


def trace_sections(run: RunResults, i: int, *, interval_s: float | None, sweep: bool, sensitivity: bool,
                   top_flows: int, log: Log) -> list[Section]:
    """Every section about one trace's run (figure names prefixed ``t<i>_``)."""
    secs: list[Section] = [Section(f"Trace {run.label}", level=2)]
    log(f"{run.label}: reading the capture again")
    td = an.load_trace_data(run)
    s = Section("Capture summary and mapping", level=3)
    secs.append(s)
    if td.note:
        s.add(Para(td.note))
    s.add(_kv_table(capture_rows(run, td)))
    s.add(Para("Direction and guest mapping used by the replay:"))
    s.add(Bullets(an.mapping_lines(run)))
    warns = list(run.metadata.get("warnings") or [])
    if warns:
        s.add(Para("Warnings recorded by the replay:"))
        s.add(Bullets(warns))

    # architecture comparison
    arch = an.arch_table(run)
    comp = an.component_table(run)
    ctx = an.context_table(run)
    s = Section("Architecture comparison", level=3)
    secs.append(s)
    s.add(Para("Guest 'all', both directions. Saturation throughput: the highest time-compression of the trace "
               "with no drops and no CPU above 100 %, capped by the link rate. CPU-bound: the rate at which "
               "the busiest CPU is 100 % busy with this traffic, drops and link ignored (what a CPU-bound, "
               "closed-loop sender reaches; it shows differences the link cap hides). CPU % at the trace's "
               "own timing; ratios are to the native 'linux' model."))
    s.add(Table(fmt_table(arch, ARCH_TABLE_FORMATS, ARCH_TABLE_NAMES, index=True), caption="Comparison"))
    s.add(Figure(f"t{i}_saturation_cpu", fg.saturation_cpu_figure(arch, ctx),
                 "Saturation throughput and CPU utilisation by context"))
    s.add(Table(fmt_table(ctx, dict.fromkeys(ctx.columns, ".2f"), index=True),
                caption="CPU utilisation per context and per CPU (% of one CPU, trace timing)"))
    comp_t = comp.copy()
    comp_t["total"] = comp.sum(axis=1)
    if "linux" in comp.index:
        comp_t["vs linux"] = comp_t["total"] / comp_t.loc["linux", "total"]
    s.add(Table(fmt_table(comp_t, {**dict.fromkeys(COMPONENTS, ",.0f"), "total": ",.0f", "vs linux": ".2f"},
                          index=True), caption="Cycles per packet by component"))
    s.add(Figure(f"t{i}_components", fg.components_figure(comp), "Cycles per packet, stacked by component"))
    dirs = an.direction_table(run)
    s.add(Table(fmt_table(dirs, {"wire_mb": ",.2f", "saturation_mbps": ",.1f", "cycles_per_packet": ",.0f",
                                 "cycles_per_byte": ".2f"},
                          {"wire_mb": "wire MB", "saturation_mbps": "saturation Mb/s",
                           "cycles_per_packet": "cycles/pkt", "cycles_per_byte": "cycles/byte"}),
                caption="Per direction (rx = towards the host, tx = from it)"))

    # time series
    s = Section("Cycles per interval", level=3)
    secs.append(s)
    series = an.interval_series(run, interval_s)
    if series is None:
        s.add(Para("No per-packet results in these results (replayed with --no-packets): no time series."))
    else:
        s.add(Figure(f"t{i}_intervals", fg.interval_figure(series),
                     f"Modeled cycles per {series.attrs['interval_s']:g} s interval, per architecture"))
        peak = series.max()
        s.add(Para("Peak interval (Mcycles): " + ", ".join(f"{a} {peak[a]:,.2f}" for a in series.columns)
                   + f"; interval {series.attrs['interval_s']:g} s."))

    # sweep
    s = Section("Throughput against offered load", level=3)
    secs.append(s)
    if _can_rerun(s, sweep, "--no-sweep", td):
        log(f"{run.label}: load sweep")
        sw = an.load_sweep(run, td.chunks)
        sat_mbps = arch.saturation_mbps.to_dict()
        link = float(run.config.get("link_bps") or 0) / 1e6 or None
        s.add(Para("The trace replayed time-compressed by each factor (arrival times divided by it): offered "
                   "load against delivered throughput per architecture. Dotted lines: the saturation "
                   "throughput found by the replay."))
        s.add(Figure(f"t{i}_sweep", fg.sweep_figure(sw, link, sat_mbps), "Throughput against offered load"))
        piv = sw.pivot_table(index="factor", columns="arch", values="delivered_mbps", sort=False)[run.archs]
        off = sw.groupby("factor", sort=False).offered_mbps.first()
        tab = piv.copy()
        tab.insert(0, "offered Mb/s", off)
        s.add(Table(fmt_table(tab.reset_index(), {"factor": ".2f", **dict.fromkeys(tab.columns, ",.1f")}),
                    caption="Delivered Mb/s per architecture at each compression factor"))

    # flows
    s = Section("Top flows by modeled cost", level=3)
    secs.append(s)
    fl = an.flow_costs(run, td, top=top_flows)
    if fl is None:
        s.add(Para(td.note or "Needs per-packet results and the capture: not available."))
    else:
        fmts = {"packets": ",d", "wire_bytes": ",d"}
        for a in run.archs:
            fmts[f"{a}_mcycles"] = ",.2f"
            fmts[f"{a}_share_pct"] = ".1f"
        names = {f"{a}_mcycles": f"{a} Mcycles" for a in run.archs}
        names.update({f"{a}_share_pct": f"{a} %" for a in run.archs})
        s.add(Table(fmt_table(fl, fmts, names), caption="Flows (both directions) ranked by cycles summed over "
                                                        "the architectures; % = share of that architecture's cycles"))

    # guests
    if len(run.guest_names) > 1:
        s = Section("Per guest", level=3)
        secs.append(s)
        gt = an.guest_table(run)
        s.add(Table(fmt_table(gt, {"saturation_mbps": ",.1f", "delivered_mbps": ",.1f", "cpu_util_pct": ".2f",
                                   "cycles_per_packet": ",.0f", "cycles_per_byte": ".2f"},
                              {"saturation_mbps": "saturation Mb/s", "delivered_mbps": "delivered Mb/s",
                               "cpu_util_pct": "CPU %", "cycles_per_packet": "cycles/pkt",
                               "cycles_per_byte": "cycles/byte"}), caption="Each guest, both directions"))
        s.add(Figure(f"t{i}_guests", fg.grouped_bars_figure(gt, "guest", "arch", "cycles_per_byte", "cycles/byte",
                                                            "Cycles per byte per guest"), "Cycles per byte per guest"))
        better = []
        if {"dbnet", "xen"} <= set(run.archs):
            for g, sub in gt.groupby("guest", sort=False):
                sub = sub.set_index("arch")
                ok = sub.loc["dbnet", "cycles_per_byte"] < sub.loc["xen", "cycles_per_byte"]
                better.append(f"{g}: dbnet {'fewer' if ok else 'NOT fewer'} cycles per byte than xen "
                              f"({sub.loc['dbnet', 'cycles_per_byte']:.2f} vs {sub.loc['xen', 'cycles_per_byte']:.2f})")
            s.add(Bullets(better))

    # sensitivity
    s = Section("Sensitivity to the parameter ranges", level=3)
    secs.append(s)
    if _can_rerun(s, sensitivity, "--no-sensitivity", td):
        log(f"{run.label}: sensitivity runs")
        try:
            sens = an.sensitivity(run, td.chunks)
        except PipelineError as e:
            sens = None
            s.add(Para(f"Sensitivity runs not possible: {e}"))
        if sens is not None and len(sens):
            n_params = sens.param.nunique()
            conc = an.conclusions(sens)
            flips = conc[conc.flips != ""]
            changes = conc[conc.changes != ""]
            s.add(Para(f"Each of the {n_params} non-published parameters the architectures use was set to its "
                       "'low' and then its 'high' value (one at a time, everything else at the baseline) and "
                       "the trace replayed again. "
                       + (f"{len(flips)} of {len(conc)} pairwise conclusions FLIP (strict reversal) somewhere "
                          "in the ranges: see the table." if len(flips) else
                          f"No pairwise conclusion flips (strict reversal) anywhere in the ranges; "
                          f"{len(changes)} of {len(conc)} move to or from a tie.")))
            tor = an.tornado_data(sens)
            s.add(Figure(f"t{i}_tornado", fg.tornado_figure(tor),
                         "Tornado: % change of cycles per packet at each parameter's low (blue) and high (red)"))
            hl = pd.DataFrame(False, index=range(len(conc)), columns=conc.columns)
            hl["flips"] = (conc.flips != "").to_numpy()
            s.add(Table(fmt_table(conc, rename={"changes": "changes (to/from a tie)"}),
                        caption="Conclusions at the baseline and the parameter ends that change them",
                        highlight=hl))
        elif sens is not None:
            s.add(Para("No parameter with a range to vary."))

    # parameters
    s = Section("Parameters with provenance", level=3)
    secs.append(s)
    pt = an.params_table(run)
    counts = pt.status.value_counts().sort_index()
    s.add(Para("Status counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + ". 'fitted' values were "
               "solved to published end-to-end results (fitted_to); 'assumed' values have no published source "
               "and are varied across their range above; nothing here is a measurement of this tool."))
    s.add(Table(fmt_table(pt, {"value": _g, "low": _g, "high": _g}), caption="Parameters"))
    return secs


def _g(v: Any) -> str:
    if isinstance(v, str):
        return v
    return "-" if v is None or not finite(v) else f"{float(v):.6g}"


def build_report(runs: list[RunResults], *, interval_s: float | None = None, sweep: bool = True,
                 sensitivity: bool = True, top_flows: int = 10, log: Log | None = None) -> Document:
    """The report document for ``runs`` (see the module docstring)."""
    log = log or (lambda _m: None)
    check_compatible(runs)
    title = ("Replay report: " + runs[0].label) if len(runs) == 1 else f"Replay report: {len(runs)} traces"
    doc = Document(title)
    doc.intro.append(Para("Per-packet CPU cost models of network I/O virtualization architectures, replayed over "
                          "captured traffic. Modeled values, not measurements: the parameters' provenance is "
                          "listed per trace, and the sensitivity sections show how much the conclusions "
                          "depend on the values that are not published."))
    doc.intro.append(Table(pd.DataFrame([_run_line(r) for r in runs]), caption="Runs in this report"))
    if len(runs) > 1:
        s = doc.section("Across traces")
        ct = an.cross_trace_table(runs)
        s.add(Table(fmt_table(ct, ARCH_TABLE_FORMATS, ARCH_TABLE_NAMES), caption="Every trace x architecture"))
        s.add(Figure("all_cycles", fg.grouped_bars_figure(ct, "trace", "arch", "cycles_per_packet", "cycles/packet",
                                                          "Cycles per packet by trace"), "Cycles per packet by trace"))
        s.add(Figure("all_saturation", fg.grouped_bars_figure(ct, "trace", "arch", "saturation_mbps", "Mb/s",
                                                              "Saturation throughput by trace"),
                     "Saturation throughput by trace"))
    for i, r in enumerate(runs):
        doc.sections.extend(trace_sections(r, i, interval_s=interval_s, sweep=sweep, sensitivity=sensitivity,
                                           top_flows=top_flows, log=log))
    return doc


def make_report(results: list[str | os.PathLike], out: str | os.PathLike, fmt: str = "both", *,
                interval_s: float | None = None, sweep: bool = True, sensitivity: bool = True,
                top_flows: int = 10, log: Log | None = None) -> dict[str, Path]:
    """Load ``results``, build the report and write it (atomically); returns the paths written."""
    from pipeline.report.render import output_paths, write_document

    output_paths(out, fmt)  # option errors before any work
    runs = load_many(list(results))
    doc = build_report(runs, interval_s=interval_s, sweep=sweep, sensitivity=sensitivity, top_flows=top_flows,
                       log=log)
    return write_document(doc, out, fmt)
