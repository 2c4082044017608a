"""`pipeline compare A B`: what differs is listed, metrics that moved are highlighted, nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.errors import ResultsError
from pipeline.report.compare import compare_runs, load_one, make_comparison
from tests.report.test_results import make_dataset


def test_parameter_change_highlights_only_the_arch_that_uses_it(run_1500, run_1500_override) -> None:
    cmp = compare_runs(load_one(run_1500), load_one(run_1500_override))
    what = list(cmp.differences.what)
    assert "parameter netback_rx_per_packet" in what and "config param_overrides" in what
    assert "trace" not in what  # same capture
    row = cmp.differences.set_index("what").loc["parameter netback_rx_per_packet"]
    assert row.b.startswith("12000") and "[override]" in row.b and "[fitted]" in row.a
    hl = cmp.metrics[cmp.metrics.highlight]
    assert set(hl.arch) == {"xen"}
    m = cmp.metrics.set_index(["arch", "metric"])
    assert m.loc[("xen", "cycles_per_packet"), "delta"] < 0  # cheaper netback -> fewer cycles
    assert m.loc[("xen", "cpp_hypercall_event"), "highlight"]
    assert m.loc[("linux", "cycles_per_packet"), "delta"] == 0
    assert cmp.label_a == "A (" + str(run_1500) + ")"  # same trace: labelled A/B


def test_same_run_twice_has_no_differences(run_1500) -> None:
    cmp = compare_runs(load_one(run_1500), load_one(run_1500))
    assert len(cmp.differences) == 0 and not cmp.metrics.highlight.any()
    assert (cmp.metrics.delta.fillna(0) == 0).all()


def test_threshold_controls_highlighting(run_1500, run_3g) -> None:
    lo = compare_runs(load_one(run_1500), load_one(run_3g), threshold_pct=1.0)
    hi = compare_runs(load_one(run_1500), load_one(run_3g), threshold_pct=1000.0)
    assert lo.metrics.highlight.sum() > hi.metrics.highlight.sum()
    assert "trace" in set(lo.differences.what)


def test_dataset_needs_a_trace_id(run_1500, run_3g, tmp_path) -> None:
    root = make_dataset(run_1500, tmp_path / "ds", "t1")
    make_dataset(run_3g, root, "t2")
    with pytest.raises(ResultsError, match="2 traces.*#TRACE_ID"):
        load_one(root)
    t2 = load_one(f"{root}#t2")
    assert t2.guest_names == ["g1", "g2", "g3"]
    assert len(t2.packet_files) == 4 and all(f.parts[-2] == "trace=t2" for f in t2.packet_files)
    with pytest.raises(ResultsError, match="no trace 't9'"):
        load_one(f"{root}#t9")


def test_written_comparison_marks_changes(run_1500, run_1500_override, tmp_path) -> None:
    cmp, paths = make_comparison(run_1500, run_1500_override, tmp_path / "cmp", "both")
    md = paths["md"].read_text()
    html = paths["html"].read_text()
    assert "parameter netback_rx_per_packet" in md
    assert md.count("**") // 2 == 3 * int(cmp.metrics.highlight.sum())  # B, delta, delta % per highlighted row
    assert html.count('class="hl"') == 3 * int(cmp.metrics.highlight.sum())


def test_cli_compare(run_1500, run_1500_override, tmp_path) -> None:
    p = subprocess.run([sys.executable, "-m", "pipeline", "compare", str(run_1500), str(run_1500_override)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "netback_rx_per_packet" in p.stdout and "xen" in p.stdout and "linux" not in p.stdout.split("Metrics")[1]
    p = subprocess.run([sys.executable, "-m", "pipeline", "compare", str(run_1500), str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("pipeline: error:") and len(p.stderr.splitlines()) == 1
