"""`pipeline inspect` as a user runs it: a real process, JSON contract, one-line errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

REQUIRED_KEYS = {"packets", "wire_bytes", "captured_bytes", "first_ts_ns", "last_ts_ns", "link_types",
                 "format", "truncated", "warnings"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          timeout=120)


def test_json_contract_on_bundled_trace(bundled_traces) -> None:
    p = run("inspect", str(bundled_traces / "iperf3_mtu552_snap96.pcap"), "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert REQUIRED_KEYS <= d.keys()
    assert d["packets"] == 15_802 and d["wire_bytes"] == 7_335_210  # traces/README.md (capinfos)
    assert d["link_types"] == ["EN10MB(1)"] and d["format"] == "pcap" and d["truncated"] is False
    assert d["first_ts_ns"] < d["last_ts_ns"]
    assert d["top_flows"][0]["payload_bytes"] > 6_000_000


def test_table_output_names_the_essentials(bundled_traces) -> None:
    p = run("inspect", str(bundled_traces / "iperf3_mtu1500_snap96.pcap"))
    assert p.returncode == 0, p.stderr
    for label in ("Packets", "9,343", "Wire bytes", "Top flows by wire bytes", "10.99.0.1"):
        assert label in p.stdout


def test_salvaged_file_warns_once_and_exits_zero(shared_traces) -> None:
    p = run("inspect", str(shared_traces / "malformed/derived_cut_in_record_header.pcap"), "--json")
    assert p.returncode == 0
    d = json.loads(p.stdout)
    assert d["packets"] == 499 and d["truncated"] is True
    warnings = [line for line in p.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "668516" in warnings[0]


@pytest.mark.parametrize("args, needle", [
    (["inspect", "/nonexistent/trace.pcap"], "no such file"),
    (["inspect", "{shared}/malformed/derived_zero_length.pcap"], "empty file"),
    (["inspect", "{shared}/malformed/derived_short_file_header.pcap"], "derived_short_file_header.pcap"),
    (["inspect", "{repo}/pyproject.toml"], "pyproject.toml"),
    (["inspect"], "Missing argument"),
    (["inspect", "x.pcap", "--top", "many"], "--top"),
    (["no-such-command"], "No such command"),
])
def test_bad_input_one_line_exit_2(shared_traces, args: list[str], needle: str) -> None:
    from .. import conftest

    args = [a.format(shared=shared_traces, repo=conftest.REPO_ROOT) for a in args]
    p = run(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert needle in lines[0]
    assert "Traceback" not in p.stderr
