"""`pipeline batch` as a user runs it: real processes, exit codes, the lock, and kill -9 for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.batch.manifest import DatasetLock

from .conftest import BAD, GOOD, link, read_table

#: Inputs for the kill test: enough work (about a second with --jobs 1) to be caught mid-way.
KILL_INPUTS = [
    ("bundled", "iperf3_mtu1500_snap96.pcap"),
    ("bundled", "iperf3_mtu552_snap96.pcap"),
    ("shared", "captured/iperf3_veth_offloads_off_snap128.pcap"),
    ("shared", "bulk_tcp/mlab_ndt_ipv4_download_snap94.pcap"),
    ("shared", "bulk_tcp/suricata_smb2_async_read.pcap"),
    ("shared", "bulk_tcp/zeek_smb2_write.pcap"),
    ("shared", "mixed/ppp_example.pcap"),
    ("shared", "bulk_tcp/suricata_mime_stream_depth.pcap"),
]
# the two bundled captures again under other names (other trace ids): a --jobs 1 run long enough
# (~3 s here) to be killed "after 1.0 s" with work still to do
KILL_COPIES = [(f"copy{i}_{name}", rel) for i in range(20) for name, rel in
               [("mtu1500.pcap", "iperf3_mtu1500_snap96.pcap"), ("mtu552.pcap", "iperf3_mtu552_snap96.pcap")]]
FAST = ["--arch", "linux", "--arch", "dbnet", "--no-saturation"]


def argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "batch", *args]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv(*args), capture_output=True, text=True, timeout=300)


def test_exit_0_when_all_ok_and_a_summary_line(tmp_path, good_dir):
    p = run(str(good_dir), "--out", str(tmp_path / "ds"), *FAST, "--jobs", "2")
    assert p.returncode == 0, p.stderr
    assert f"{len(GOOD)} replayed, 0 up to date, 0 failed" in p.stderr
    assert "Traceback" not in p.stderr
    p = run(str(good_dir), "--out", str(tmp_path / "ds"), *FAST, "--quiet")
    assert p.returncode == 0 and p.stderr == ""  # quiet and nothing to do


def test_exit_1_with_one_line_per_failure_and_the_rest_done(tmp_path, mixed_dir):
    p = run(str(mixed_dir), "--out", str(tmp_path / "ds"), *FAST, "--quiet")
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    failed = [ln for ln in lines if ln.startswith("failed: ")]
    assert len(failed) == len(BAD) and "Traceback" not in p.stderr
    for name, needle in BAD.items():
        assert any(Path(name).name in ln and needle in ln for ln in failed), (name, failed)
    assert lines[-1].startswith(f"{len(GOOD)} replayed, 0 up to date, {len(BAD)} failed")


@pytest.mark.parametrize("args, needle", [
    (["{missing}", "--out", "{ds}"], "no such file or directory"),
    (["{good}", "--out", "{ds}", "--jobs", "0"], "--jobs"),
    (["{good}", "--out", "{ds}", "--segments", "bogus"], "--segments"),
    (["{good}", "--out", "{ds}", "--arch", "nonesuch"], "nonesuch"),
    (["{good}"], "--out"),
    (["{good}", "--out", "{ds}", "--glob", "*.nothing"], "no pcap or pcapng captures"),
])
def test_exit_2_for_unusable_arguments(tmp_path, good_dir, args, needle):
    fill = {"missing": str(tmp_path / "missing"), "ds": str(tmp_path / "ds"), "good": str(good_dir)}
    p = run(*[a.format(**fill) for a in args])
    assert p.returncode == 2, p.stderr
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_a_second_batch_on_the_same_dataset_refuses_while_the_first_holds_it(tmp_path, good_dir):
    ds = tmp_path / "ds"
    ds.mkdir()
    with DatasetLock(ds):  # as a running batch holds it
        p = run(str(good_dir), "--out", str(ds), *FAST)
    assert p.returncode == 2
    assert "another pipeline batch is writing this dataset" in p.stderr and str(os.getpid()) in p.stderr
    assert not (ds / "summary").exists()


@pytest.mark.slow  # waits for the 5 s connect timeout
def test_scheduler_from_environment_unreachable_is_a_clear_error(tmp_path, good_dir):
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"}
    p = subprocess.run(argv(str(good_dir), "--out", str(tmp_path / "ds"), *FAST), capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 2 and "tcp://127.0.0.1:9" in p.stderr and "Traceback" not in p.stderr


def _descendants(pid: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.add(k)
            todo.append(k)
    return out


def _alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def kill_dir(tmp_path_factory, bundled_traces, shared_traces) -> Path:
    d = tmp_path_factory.mktemp("kill") / "in"
    for where, rel in KILL_INPUTS:
        link((bundled_traces if where == "bundled" else shared_traces) / rel, d / Path(rel).name)
    for name, rel in KILL_COPIES:
        link(bundled_traces / rel, d / name)
    return d


@pytest.fixture(scope="module")
def reference(kill_dir) -> Path:
    ds = kill_dir.parent / "reference"
    p = run(str(kill_dir), "--out", str(ds), "--jobs", "2", "--quiet")
    assert p.returncode == 0, p.stderr
    return ds


@pytest.mark.slow
@pytest.mark.parametrize("when", ["after the first committed trace", "during start-up", "after 1.0 s"])
def test_kill_9_at_any_moment_then_rerun_equals_an_uninterrupted_run(tmp_path, kill_dir, reference, when):
    ds = tmp_path / "ds"
    proc = subprocess.Popen(argv(str(kill_dir), "--out", str(ds), "--jobs", "1", "--quiet"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    family: set[int] = set()
    while proc.poll() is None and time.monotonic() - t0 < 60:
        family |= _descendants(proc.pid)
        if when.startswith("after the first") and any((ds / "summary").glob("arch=*/trace=*")):
            break
        if when == "during start-up" and time.monotonic() - t0 > 0.4:
            break
        if when == "after 1.0 s" and time.monotonic() - t0 > 1.0:
            break
        time.sleep(0.005)
    family |= _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, "the batch finished before it could be killed: make it longer"
    # no worker outlives the coordinator for long (they die with their parent)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in family)
    if (ds / "manifest.json").exists():
        m = json.loads((ds / "manifest.json").read_text())
        assert sum(t["status"] == "ok" for t in m["traces"].values()) < len(KILL_INPUTS) + len(KILL_COPIES)  # interrupted

    p = run(str(kill_dir), "--out", str(ds), "--jobs", "2", "--quiet")
    assert p.returncode == 0, p.stderr
    for table in ("summary", "packets"):
        pd.testing.assert_frame_equal(read_table(ds, table), read_table(reference, table))
    got = json.loads((ds / "manifest.json").read_text())["traces"]
    want = json.loads((reference / "manifest.json").read_text())["traces"]
    assert {k: (v["status"] in ("ok", "skipped"), v["sha256"], v["partitions"]) for k, v in got.items()} == \
        {k: (True, v["sha256"], v["partitions"]) for k, v in want.items()}
    assert not (ds / ".staging").exists() and not (ds / ".trash").exists()


def test_progress_bar_on_a_terminal_only(tmp_path, good_dir):
    import pty

    out = bytearray()

    def read(fd):
        data = os.read(fd, 65536)
        out.extend(data)
        return data

    argv_ = argv(str(good_dir), "--out", str(tmp_path / "ds"), *FAST, "--jobs", "1")
    status = pty.spawn(argv_, read)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0
    assert "batch" in text and "packets" in text and f"{len(GOOD)}/{len(GOOD)}" in text
    p = run(str(good_dir), "--out", str(tmp_path / "ds2"), *FAST, "--jobs", "1")  # stderr not a terminal
    assert "packets" not in p.stderr and p.stderr.strip().splitlines()[-1].startswith(f"{len(GOOD)} replayed")
