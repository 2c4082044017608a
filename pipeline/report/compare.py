"""`pipeline compare A B`: two runs side by side, differences highlighted.

The runs may differ in anything (trace, parameter set or overrides, architectures, placement, ...):
the comparison lists what differs in their configuration and parameters, then every metric per
architecture with A, B, the difference and the relative difference; a metric is highlighted when it
moved by at least ``threshold_pct`` percent (or appears in one run only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ResultsError
from pipeline.models.components import COMPONENTS
from pipeline.report import analysis as an
from pipeline.report import figures as fg
from pipeline.report.render import Document, Figure, Para, Table, fmt_num, fmt_table
from pipeline.report.results import RunResults, config_differences, finite, load_results

#: Metrics compared per architecture: column of analysis.arch_table / component_table -> (label, format).
METRICS: tuple[tuple[str, str, str], ...] = (
    ("saturation_mbps", "saturation Mb/s", ",.1f"),
    ("delivered_mbps", "delivered Mb/s", ",.1f"),
    ("cpu_util_pct", "CPU %", ".2f"),
    ("cycles_per_packet", "cycles/pkt", ",.0f"),
    ("cycles_per_byte", "cycles/byte", ".3f"),
    ("drops", "drops", ",d"),
    ("latency_p99_us", "latency p99 us", ",.1f"),
) + tuple((f"cpp_{c}", f"{c} cycles/pkt", ",.0f") for c in COMPONENTS)


@dataclass
class Comparison:
    a: RunResults
    b: RunResults
    label_a: str
    label_b: str
    metrics: pd.DataFrame          # arch, metric, label, fmt, a, b, delta, delta_pct, highlight
    differences: pd.DataFrame      # what, a, b (configuration, trace, parameter values)
    threshold_pct: float


def load_one(spec: str | os.PathLike) -> RunResults:
    """One run: a replay directory, or ``DATASET#TRACE_ID`` for one trace of a batch dataset."""
    text = str(spec)
    path, _, trace_id = text.partition("#")
    runs = load_results(path)
    if trace_id:
        sel = [r for r in runs if r.trace_id == trace_id]
        if not sel:
            raise ResultsError(f"{path}: no trace {trace_id!r} in this dataset (traces: "
                               f"{', '.join(r.trace_id for r in runs[:10])})")
        return sel[0]
    if len(runs) > 1:
        raise ResultsError(f"{path}: a dataset of {len(runs)} traces: compare one of them, as {path}#TRACE_ID "
                           f"(traces: {', '.join(r.trace_id for r in runs[:10])}{', ...' if len(runs) > 10 else ''})")
    return runs[0]


def _metric_frame(run: RunResults) -> pd.DataFrame:
    t = an.arch_table(run)
    comp = an.component_table(run)
    for c in COMPONENTS:
        t[f"cpp_{c}"] = comp[c]
    return t


def compare_runs(a: RunResults, b: RunResults, threshold_pct: float = 5.0) -> Comparison:
    """Metric by metric and architecture by architecture, A against B (see the module docstring)."""
    ta, tb = _metric_frame(a), _metric_frame(b)
    archs = list(dict.fromkeys(list(ta.index) + list(tb.index)))
    rows = []
    for arch in archs:
        for col, label, fmt in METRICS:
            va = ta.loc[arch, col] if arch in ta.index else np.nan
            vb = tb.loc[arch, col] if arch in tb.index else np.nan
            va = float(va) if finite(va) else np.nan
            vb = float(vb) if finite(vb) else np.nan
            delta = vb - va
            pct = 100.0 * delta / abs(va) if finite(va) and va != 0 else (0.0 if delta == 0 else np.nan)
            one_side = finite(va) != finite(vb)
            hl = bool(one_side or (finite(pct) and abs(pct) >= threshold_pct)
                      or (finite(delta) and delta != 0 and va == 0))
            rows.append({"arch": arch, "metric": col, "label": label, "fmt": fmt, "a": va, "b": vb,
                         "delta": delta, "delta_pct": pct, "highlight": hl})
    metrics = pd.DataFrame(rows)
    diffs: list[dict[str, Any]] = []
    for k, (va, vb) in config_differences(a.config, b.config).items():
        diffs.append({"what": f"config {k}", "a": _short(va), "b": _short(vb)})
    sa, sb = a.metadata.get("trace_sha256"), b.metadata.get("trace_sha256")
    if sa != sb:
        diffs.append({"what": "trace", "a": f"{a.trace.get('path')} ({str(sa)[:12]})",
                      "b": f"{b.trace.get('path')} ({str(sb)[:12]})"})
    ma, mb = (a.metadata.get("mapping") or {}).get("explanation"), (b.metadata.get("mapping") or {}).get("explanation")
    if ma != mb:
        diffs.append({"what": "mapping", "a": _short(ma), "b": _short(mb)})
    pa = {p["name"]: p for p in a.metadata.get("params") or []}
    pb = {p["name"]: p for p in b.metadata.get("params") or []}
    for name in sorted(set(pa) | set(pb)):
        x, y = pa.get(name, {}), pb.get(name, {})
        if x.get("value") != y.get("value"):
            diffs.append({"what": f"parameter {name}",
                          "a": _short(x.get("value", "(not used)")) + (f" [{x['status']}]" if x else ""),
                          "b": _short(y.get("value", "(not used)")) + (f" [{y['status']}]" if y else "")})
    if a.metadata.get("tool_version") != b.metadata.get("tool_version"):
        diffs.append({"what": "tool version", "a": str(a.metadata.get("tool_version")),
                      "b": str(b.metadata.get("tool_version"))})
    la, lb = a.label, b.label
    if la == lb:
        la, lb = f"A ({a.source})", f"B ({b.source})"
    return Comparison(a, b, la, lb, metrics, pd.DataFrame(diffs, columns=["what", "a", "b"]), threshold_pct)


def _short(v: Any, n: int = 80) -> str:
    s = f"{v:g}" if isinstance(v, float) else str(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def metric_rows(cmp: Comparison) -> pd.DataFrame:
    """The metrics as formatted strings: arch, metric, A, B, delta, delta % (and the highlight mask)."""
    out = pd.DataFrame({
        "arch": cmp.metrics.arch,
        "metric": cmp.metrics.label,
        cmp.label_a: [fmt_num(v, f) for v, f in zip(cmp.metrics.a, cmp.metrics.fmt, strict=True)],
        cmp.label_b: [fmt_num(v, f) for v, f in zip(cmp.metrics.b, cmp.metrics.fmt, strict=True)],
        "delta": [("+" if finite(v) and v > 0 else "") + fmt_num(v, f.replace(",d", ",.0f"))
                  for v, f in zip(cmp.metrics.delta, cmp.metrics.fmt, strict=True)],
        "delta %": [("+" if finite(v) and v > 0 else "") + fmt_num(v, ".1f") for v in cmp.metrics.delta_pct],
    })
    return out


def comparison_document(cmp: Comparison) -> Document:
    """The comparison as a report document (HTML/Markdown via pipeline.report.render)."""
    doc = Document(f"Comparison: {cmp.label_a} vs {cmp.label_b}")
    doc.intro.append(Para(f"A = {cmp.label_a} ({cmp.a.source}); B = {cmp.label_b} ({cmp.b.source}). "
                          f"Highlighted: metrics that moved by {cmp.threshold_pct:g} % or more, or exist in one "
                          "run only. Deltas are B - A."))
    s = doc.section("What differs between the runs")
    if len(cmp.differences):
        s.add(Table(fmt_table(cmp.differences, rename={"a": cmp.label_a, "b": cmp.label_b})))
    else:
        s.add(Para("Nothing: same trace, configuration and parameters."))
    s = doc.section("Metrics per architecture")
    rows = metric_rows(cmp)
    hl = pd.DataFrame(False, index=rows.index, columns=rows.columns)
    for c in (cmp.label_b, "delta", "delta %"):
        hl[c] = cmp.metrics.highlight.to_numpy()
    s.add(Table(rows, highlight=hl))
    s = doc.section("Side by side")
    both = []
    for lab, run in ((cmp.label_a, cmp.a), (cmp.label_b, cmp.b)):
        t = an.arch_table(run).reset_index()
        t.insert(0, "trace", lab)
        both.append(t)
    df = pd.concat(both, ignore_index=True)
    s.add(Figure("compare_cycles", fg.grouped_bars_figure(df, "arch", "trace", "cycles_per_packet", "cycles/packet",
                                                          "Cycles per packet, A and B"), "Cycles per packet, A and B"))
    s.add(Figure("compare_saturation", fg.grouped_bars_figure(df, "arch", "trace", "saturation_mbps", "Mb/s",
                                                              "Saturation throughput, A and B"),
                 "Saturation throughput, A and B"))
    return doc


def make_comparison(a: str | os.PathLike, b: str | os.PathLike, out: str | os.PathLike | None = None,
                    fmt: str = "both", threshold_pct: float = 5.0) -> tuple[Comparison, dict[str, Path]]:
    """Load both runs, compare them and, with ``out``, write the HTML/Markdown comparison."""
    from pipeline.report.render import output_paths, write_document

    if out is not None:
        output_paths(out, fmt)
    cmp = compare_runs(load_one(a), load_one(b), threshold_pct)
    paths = write_document(comparison_document(cmp), out, fmt) if out is not None else {}
    return cmp, paths
