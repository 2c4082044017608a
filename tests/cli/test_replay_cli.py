"""`pipeline replay` as a user runs it: files written, table printed, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipeline.store import read_metadata


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=300)


def test_replay_writes_results_and_prints_comparison(bundled_traces, tmp_path) -> None:
    out = tmp_path / "run"
    p = run("replay", str(bundled_traces / "iperf3_mtu552_snap96.pcap"), "--out", str(out),
            "--arch", "linux", "--arch", "dbnet")
    assert p.returncode == 0, p.stderr
    assert "Architecture comparison" in p.stdout and "Cycles per packet by component" in p.stdout
    assert "modeled host 10.99.0.2 inferred" in p.stderr
    summary = pq.read_table(out / "summary.parquet").to_pandas()
    assert set(summary.arch) == {"linux", "dbnet"}
    packets = pq.read_table(out / "packets.parquet", columns=["arch"]).to_pandas()
    host_packets = int(summary[(summary.guest == "all") & (summary.direction == "all")].packets.iloc[0])
    assert len(packets) == 2 * host_packets
    meta = read_metadata(out / "summary.parquet")
    assert meta["run_id"] == read_metadata(out / "packets.parquet")["run_id"]
    assert meta["trace_sha256"] == "4f8e0a2a478541fbe4dfde37c2a91308fc73d00eaf52a7161dc80b93c3113702"
    assert sorted(p.name for p in out.iterdir()) == ["packets.parquet", "summary.parquet"]


@pytest.mark.parametrize("args, needle", [
    (["{shared}/linktypes/zeek_fddi_llc.pcap"], "zeek_fddi_llc.pcap: cannot infer the modeled host"),
    (["/nonexistent.pcap"], "/nonexistent.pcap: no such file"),
    (["{bundled}", "--segments", "bogus"], "--segments"),
    (["{bundled}", "--arch", "nosuch"], "nosuch"),
    (["{bundled}", "--params", "/nonexistent.toml"], "/nonexistent.toml"),
    (["{bundled}", "--host", "not-an-address"], "not-an-address"),
])
def test_bad_input_one_line_exit_2_nothing_written(shared_traces, bundled_traces, tmp_path, args, needle) -> None:
    out = tmp_path / "run"
    args = [a.format(shared=shared_traces, bundled=bundled_traces / "iperf3_mtu1500_snap96.pcap") for a in args]
    p = run("replay", *args, "--out", str(out))
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    assert not out.exists() or list(out.iterdir()) == []
