"""`pipeline report`: contents computed right, self-contained HTML, Markdown with figures beside it."""

from __future__ import annotations

import base64
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import OptionError, PipelineError
from pipeline.report import analysis as an
from pipeline.report.render import output_paths
from pipeline.report.results import load_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_both_formats_written_with_every_figure(report_both) -> None:
    html = report_both["html"].read_text()
    md = report_both["md"].read_text()
    figs = sorted(report_both["figures"].glob("*.png"))
    refs = re.findall(r"!\[[^\]]*\]\(report_files/([^)]+\.png)\)", md)
    assert sorted(refs) == [f.name for f in figs] and len(figs) >= 12
    imgs = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == len(figs)
    for data in imgs:
        assert base64.b64decode(data).startswith(PNG_MAGIC)
    for f in figs:
        assert f.read_bytes().startswith(PNG_MAGIC)


def test_html_is_self_contained(report_both) -> None:
    html = report_both["html"].read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    for attr in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html):
        assert attr.startswith("data:image/png;base64,"), attr[:60]
    assert "url(" not in html


@pytest.mark.parametrize("section", [
    "Across traces", "Capture summary and mapping", "Architecture comparison", "Cycles per interval",
    "Throughput against offered load", "Top flows by modeled cost", "Sensitivity to the parameter ranges",
    "Parameters with provenance"])
def test_every_section_is_there(report_both, section) -> None:
    md = report_both["md"].read_text()
    assert md.count(f"## {section}") == (1 if section == "Across traces" else 2)


def test_per_guest_section_only_for_several_guests(report_both) -> None:
    md = report_both["md"].read_text()
    one, three = md.split("## Trace iperf3_mtu1500_3guests_snap96")
    assert "### Per guest" not in one
    assert "### Per guest" in three and "| g1 |" in three and "g3: dbnet fewer cycles per byte than xen" in three


def test_comparison_numbers_come_from_the_summary(run_1500, report_both) -> None:
    (r,) = load_results(run_1500)
    s = r.summary[(r.summary.guest == "all") & (r.summary.direction == "all")].set_index("arch")
    md = report_both["md"].read_text()
    for arch in r.archs:
        sat = f"{s.loc[arch, 'saturation_bps'] / 1e6:,.1f}"
        cpp = f"{s.loc[arch, 'cycles_per_packet']:,.0f}"
        ratio = f"{s.loc[arch, 'saturation_bps'] / s.loc['linux', 'saturation_bps']:.2f}"
        assert re.search(rf"\| iperf3_mtu1500_snap96 \| {arch} \| {re.escape(sat)} \| {ratio} \| {re.escape(cpp)} \|", md)
    assert "modeled host 10.99.0.2 (given)" in md
    assert "| Packets | 9,343 |" in md  # capinfos count (traces/README.md)


def test_components_sum_to_cycles_per_packet(run_1500) -> None:
    (r,) = load_results(run_1500)
    comp = an.component_table(r)
    arch = an.arch_table(r)
    np.testing.assert_allclose(comp.sum(axis=1), arch.cycles_per_packet, rtol=1e-9)
    assert comp.loc["linux", ["bridge", "segment_switch", "domain_switch", "grant_copy"]].sum() == 0
    assert comp.loc["dbnet", "segment_switch"] > 0 and comp.loc["xen", "segment_switch"] == 0
    assert arch.loc["linux", "sat_vs_linux"] == 1.0 and arch.loc["xen", "sat_vs_linux"] < 1.0


@pytest.mark.parametrize("interval_s", [None, 0.05, 0.3])
def test_interval_series_adds_up_to_the_totals(run_1500, interval_s) -> None:
    (r,) = load_results(run_1500)
    ser = an.interval_series(r, interval_s)
    s = r.summary[(r.summary.guest == "all") & (r.summary.direction == "all")].set_index("arch")
    np.testing.assert_allclose(ser.sum() * 1e6, s.cycles_total[ser.columns], rtol=1e-5)
    if interval_s:
        assert ser.attrs["interval_s"] == interval_s
        assert len(ser) == int(r.trace["span_ns"] / 1e9 // interval_s) + 1
    else:
        assert 50 <= len(ser) <= 200


def test_interval_must_be_positive(run_1500) -> None:
    (r,) = load_results(run_1500)
    with pytest.raises(PipelineError, match="--interval"):
        an.interval_series(r, -1.0)


def test_flow_costs_cover_every_cycle(run_1500) -> None:
    (r,) = load_results(run_1500)
    td = an.load_trace_data(r)
    assert td.path is not None and td.inspect["packets"] == 9343
    fl = an.flow_costs(r, td, top=1000)
    s = r.summary[(r.summary.guest == "all") & (r.summary.direction == "all")].set_index("arch")
    for a in r.archs:
        assert fl[f"{a}_mcycles"].sum() * 1e6 == pytest.approx(s.loc[a, "cycles_total"], rel=1e-5)
    top = fl.iloc[0]
    assert top.flow.startswith("10.99.0.1:") and "10.99.0.2:5201 TCP" in top.flow
    assert top.linux_share_pct > 95  # the bulk flow


def test_capture_summary_is_what_inspect_gives(run_1500) -> None:
    """The report's one pass over the capture (inspect_trace with an on_chunk hook that numbers flows
    and keeps chunks) gives the same capinfos numbers as `pipeline inspect`."""
    import dataclasses

    from pipeline.api import inspect_trace
    from pipeline.report.build import capture_rows

    (r,) = load_results(run_1500)
    td = an.load_trace_data(r)
    ref = inspect_trace(td.path, top=0)
    assert {k: v for k, v in td.inspect.items() if k != "path"} == \
        {k: v for k, v in ref.items() if k != "path"}
    assert td.flows.packets.sum() == ref["packets"] and len(td.flow_id) == ref["packets"]
    rows = capture_rows(r, td)
    assert rows == capture_rows(r, dataclasses.replace(td, inspect=ref))
    assert ("Packets", "9,343") in rows and ("Link types", "EN10MB(1)") in rows


def test_changed_capture_is_not_used(run_1500, tmp_path) -> None:
    import json
    import shutil

    import pyarrow.parquet as pq

    from pipeline.store import METADATA_KEY, read_metadata

    d = tmp_path / "r"
    shutil.copytree(run_1500, d)
    meta = read_metadata(d / "summary.parquet")
    meta["trace_sha256"] = "0" * 64
    pq.write_table(pq.read_table(d / "summary.parquet").replace_schema_metadata(
        {METADATA_KEY: json.dumps(meta).encode()}), d / "summary.parquet")
    (r,) = load_results(d)
    td = an.load_trace_data(r)
    assert td.path is None and "SHA-256 differs" in td.note


def test_sweep_starts_at_the_trace_rate_and_saturates(run_1500) -> None:
    (r,) = load_results(run_1500)
    td = an.load_trace_data(r)
    sw = an.load_sweep(r, td.chunks, n_points=6)
    s = r.summary[(r.summary.guest == "all") & (r.summary.direction == "all")].set_index("arch")
    first = sw[sw.factor == sw.factor.min()].set_index("arch")
    assert sw.factor.min() == pytest.approx(1.0)
    np.testing.assert_allclose(first.delivered_mbps, s.delivered_bps[first.index] / 1e6, rtol=1e-6)
    xen = sw[sw.arch == "xen"].sort_values("factor")
    assert (np.diff(xen.offered_mbps) > 0).all()
    last = xen.iloc[-1]
    assert last.delivered_mbps < 0.95 * last.offered_mbps  # past xen's saturation (cpu-limited at ~680 Mb/s)


def test_conclusions_find_flips_and_ties() -> None:
    rows = []
    for param, end, sat, cyc in [("p", "low", (100.0, 50.0), (10.0, 20.0)),
                                 ("p", "high", (40.0, 50.0), (10.0, 20.0)),
                                 ("q", "low", (50.5, 50.0), (10.0, 20.0)),
                                 ("q", "high", (100.0, 50.0), (10.0, 20.0))]:
        for i, a in enumerate(("a", "b")):
            rows.append({"param": param, "end": end, "value": 1.0, "arch": a, "saturation_mbps": sat[i],
                         "base_saturation_mbps": (100.0, 50.0)[i], "cycles_per_packet": cyc[i],
                         "base_cycles_per_packet": (10.0, 20.0)[i], "cpu_util_pct": 1.0})
    c = an.conclusions(pd.DataFrame(rows)).set_index("conclusion")
    sat = c.loc["saturation throughput: a vs b"]
    assert sat.baseline == "a > b" and sat.flips == "p=high" and sat.changes == "q=low"
    cyc = c.loc["cycles per packet: a vs b"]
    assert cyc.baseline == "a < b" and cyc.flips == "" and cyc.changes == ""


def test_tornado_orders_by_swing_and_drops_inert_parameters() -> None:
    rows = []
    for param, lo, hi in [("small", 99.0, 101.0), ("big", 80.0, 130.0), ("inert", 100.0, 100.0)]:
        for end, v in (("low", lo), ("high", hi)):
            rows.append({"param": param, "end": end, "arch": "x", "cycles_per_packet": v,
                         "base_cycles_per_packet": 100.0})
    t = an.tornado_data(pd.DataFrame(rows))["x"]
    assert list(t.param) == ["big", "small"]
    assert t.iloc[0].low_pct == pytest.approx(-20.0) and t.iloc[0].high_pct == pytest.approx(30.0)


@pytest.mark.parametrize(("out", "fmt", "want"), [
    ("rep", "both", {"rep.html", "rep.md", "rep_files"}),
    ("rep.html", "html", {"rep.html"}),
    ("rep.md", "md", {"rep.md", "rep_files"}),
])
def test_output_paths(tmp_path, out, fmt, want) -> None:
    assert {p.name for p in output_paths(tmp_path / out, fmt).values()} == want


def test_bad_format_and_directory_out(tmp_path) -> None:
    with pytest.raises(OptionError, match="--format"):
        output_paths(tmp_path / "r", "pdf")
    with pytest.raises(OptionError, match="is a directory"):
        output_paths(tmp_path, "html")


def test_cli_report_html_only_without_slow_sections(run_3g, tmp_path) -> None:
    out = tmp_path / "r.html"
    p = subprocess.run([sys.executable, "-m", "pipeline", "report", str(run_3g), "--out", str(out), "--format",
                        "html", "--no-sweep", "--no-sensitivity", "--interval", "0.1", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["r.html"]
    html = out.read_text()
    assert "Left out (--no-sweep)." in html and "Left out (--no-sensitivity)." in html
    assert "per 0.1 s interval" in html


def test_rewriting_replaces_the_old_report(run_1500, tmp_path) -> None:
    from pipeline.report import make_report

    out = tmp_path / "rep"
    make_report([run_1500], out, "md", sweep=False, sensitivity=False)
    (tmp_path / "rep_files" / "stale.png").write_bytes(b"x")
    make_report([run_1500], out, "md", sweep=False, sensitivity=False)
    names = {p.name for p in (tmp_path / "rep_files").iterdir()}
    assert "stale.png" not in names and "t0_components.png" in names
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers
