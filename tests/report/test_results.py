"""The results loader: replay directories and batch datasets give the same tables; bad results are refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.errors import ResultsError
from pipeline.report.results import check_compatible, load_many, load_results
from pipeline.store import METADATA_KEY, read_metadata, write_table_atomic


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def make_dataset(run_dir: Path, root: Path, trace_id: str = "iperf3_mtu1500-abc123") -> Path:
    """A batch dataset in the layout `pipeline batch` writes (DATASET/{summary,packets}/arch=/trace=/part-0)."""
    meta = read_metadata(run_dir / "summary.parquet")
    summary = pq.read_table(run_dir / "summary.parquet").to_pandas()
    packets = pq.read_table(run_dir / "packets.parquet").to_pandas()
    for arch in summary.arch.unique():
        m = {k: v for k, v in meta.items() if k not in ("schema_version", "tool_version")}
        m["saturation"] = {arch: meta["saturation"][arch]}
        part = summary[summary.arch == arch].drop(columns="arch")
        write_table_atomic(pa.Table.from_pandas(part, preserve_index=False),
                           root / "summary" / f"arch={arch}" / f"trace={trace_id}" / "part-0.parquet", m)
        p = packets[packets.arch.astype(str) == arch].drop(columns="arch")
        write_table_atomic(pa.Table.from_pandas(p, preserve_index=False),
                           root / "packets" / f"arch={arch}" / f"trace={trace_id}" / "part-0.parquet", m)
    (root / "manifest.json").write_text("{}")
    return root


def test_replay_dir_loads_with_metadata(run_1500) -> None:
    (r,) = load_results(run_1500)
    assert r.archs == ["linux", "xen", "dbnet", "xen1"]
    assert r.guest_names == ["g0"]
    assert len(r.summary) == 4 * 2 * 3  # arch x (g0, all) x (rx, tx, all)
    assert r.metadata["trace_sha256"] == "b2640d8508b4b8a2cd64a7fe00b19c2f8442efed5ca87284a48442b276abdb1f"
    assert r.packet_files == [run_1500 / "packets.parquet"]
    assert load_results(run_1500 / "summary.parquet")[0].summary.equals(r.summary)


def test_batch_dataset_gives_the_same_tables(run_1500, tmp_path) -> None:
    (single,) = load_results(run_1500)
    (ds,) = load_results(make_dataset(run_1500, tmp_path / "ds"))
    assert ds.trace_id == "iperf3_mtu1500-abc123" and ds.label == "iperf3_mtu1500_snap96"
    cols = list(single.summary.columns)
    key = ["arch", "guest", "direction"]
    a = single.summary[cols].sort_values(key).reset_index(drop=True)
    b = ds.summary[cols].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert set(ds.metadata["saturation"]) == set(single.archs)
    n_single = sum(len(df) for df in single.iter_packets(["arch", "ts_ns"]))
    n_ds = sum(len(df) for df in ds.iter_packets(["arch", "ts_ns"]))
    assert n_single == n_ds > 0
    archs_ds = set().union(*(set(df.arch) for df in ds.iter_packets(["arch"])))
    assert archs_ds == set(single.archs)


def _older_schema(d: Path) -> None:
    path = d / "summary.parquet"
    meta = read_metadata(path)
    meta["schema_version"] = 0
    t = pq.read_table(path).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    pq.write_table(t, path)


def _no_metadata(d: Path) -> None:
    t = pq.read_table(d / "summary.parquet").replace_schema_metadata(None)
    pq.write_table(t, d / "summary.parquet")


def _empty_summary(d: Path) -> None:
    path = d / "summary.parquet"
    t = pq.read_table(path)
    pq.write_table(t.slice(0, 0), path)


def _other_run_packets(d: Path) -> None:
    path = d / "packets.parquet"
    meta = read_metadata(path)
    meta["run_id"] = "f" * 32
    t = pq.read_table(path).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    pq.write_table(t, path)


def _not_parquet(d: Path) -> None:
    (d / "summary.parquet").write_bytes(b"PAR1 this is not parquet")


@pytest.mark.parametrize(("damage", "words"), [
    (_older_schema, "schema version 0"),
    (_no_metadata, "no pipeline provenance metadata"),
    (_empty_summary, "no rows"),
    (_other_run_packets, "different runs"),
    (_not_parquet, "not a readable Parquet"),
])
def test_bad_results_are_refused_with_one_line(run_1500, tmp_path, damage, words) -> None:
    d = _copy(run_1500, tmp_path / "r")
    damage(d)
    with pytest.raises(ResultsError) as e:
        load_results(d)
    msg = str(e.value)
    assert words in msg and "\n" not in msg and str(d) in msg


def test_missing_and_empty_inputs(tmp_path) -> None:
    with pytest.raises(ResultsError, match="no such results"):
        load_results(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no results here"):
        load_results(tmp_path / "empty")
    (tmp_path / "ds" / "summary").mkdir(parents=True)
    with pytest.raises(ResultsError, match="without summary partitions"):
        load_results(tmp_path / "ds")
    with pytest.raises(ResultsError, match="no results given"):
        load_many([])


def test_dataset_with_mixed_configurations_is_refused(run_1500, tmp_path) -> None:
    root = make_dataset(run_1500, tmp_path / "ds")
    part = root / "summary" / "arch=xen" / "trace=iperf3_mtu1500-abc123" / "part-0.parquet"
    meta = read_metadata(part)
    meta["config"]["link_bps"] = 1e10
    pq.write_table(pq.read_table(part).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()}), part)
    with pytest.raises(ResultsError, match="different configurations"):
        load_results(root)


def test_incompatible_runs_cannot_share_a_report(run_1500, run_1500_override, run_3g) -> None:
    check_compatible(load_many([run_1500, run_3g]))  # other trace and mapping: fine
    with pytest.raises(ResultsError, match="incompatible configurations.*param_overrides.*pipeline compare"):
        check_compatible(load_many([run_1500, run_1500_override]))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["missing", "older", "mixed"])
def test_cli_bad_results_exit_2_and_leave_nothing(case, run_1500, run_1500_override, tmp_path) -> None:
    if case == "missing":
        args = [str(tmp_path / "nope")]
    elif case == "older":
        d = _copy(run_1500, tmp_path / "old")
        _older_schema(d)
        args = [str(run_1500), str(d)]
    else:
        args = [str(run_1500), str(run_1500_override)]
    out = tmp_path / "out" / "rep"
    p = _cli("report", *args, "--out", str(out), "--quiet")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pipeline: error:") and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_real_batch_dataset_reports_like_a_replay(bundled_traces, tmp_path) -> None:
    """`pipeline batch` output (as its helper writes it) loads into the same tables as `pipeline replay`."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(bundled_traces / "iperf3_mtu552_snap96.pcap", src)
    common = ["--host", "10.99.0.2", "--arch", "linux", "--arch", "xen"]
    p = _cli("batch", str(src), "--out", str(tmp_path / "ds"), "--quiet", "--jobs", "1", *common)
    assert p.returncode == 0, p.stderr
    p = _cli("replay", str(src / "iperf3_mtu552_snap96.pcap"), "--out", str(tmp_path / "r"), "--no-packets", *common)
    assert p.returncode == 0, p.stderr
    (ds,) = load_results(tmp_path / "ds")
    (rp,) = load_results(tmp_path / "r")
    assert ds.archs == rp.archs == ["linux", "xen"] and ds.trace_id and ds.label == rp.label
    key = ["arch", "guest", "direction"]
    cols = ["packets", "wire_bytes", "cycles_total", "saturation_bps", "drops"]
    a = ds.summary.sort_values(key).reset_index(drop=True)[key + cols]
    b = rp.summary.sort_values(key).reset_index(drop=True)[key + cols]
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert ds.packet_files and not rp.packet_files
    out = tmp_path / "rep"
    p = _cli("report", str(tmp_path / "ds"), str(tmp_path / "r"), "--out", str(out), "--format", "md",
             "--no-sensitivity", "--no-sweep", "--quiet")
    assert p.returncode == 0, p.stderr
    md = out.with_suffix(".md").read_text()
    assert "replayed with --no-packets" in md and md.count("### Cycles per interval") == 2
