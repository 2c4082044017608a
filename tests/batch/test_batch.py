"""run_batch as a library: dataset layout and readers, manifest, faults, resume, lock, leftovers, Dask."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.batch import read_dataset, run_batch
from pipeline.batch.manifest import DatasetLock, config_hash, resolved_config
from pipeline.errors import OptionError
from pipeline.replay import ReplayConfig, run_replay

from .conftest import BAD, GOOD, read_table, replace_input


def _parts(ds):
    return sorted(p.relative_to(ds).as_posix() for p in ds.rglob("part-0.parquet"))


def _stamp(ds):
    """(inode, mtime_ns) of every part file: unchanged means not rewritten."""
    return {p: ((ds / p).stat().st_ino, (ds / p).stat().st_mtime_ns) for p in _parts(ds)}


def test_dataset_layout_is_hive_partitioned_and_read_alike_by_pandas_pyarrow_duckdb(tmp_path, good_dir,
                                                                                      fast_config):
    import duckdb

    ds = tmp_path / "ds"
    res = run_batch([good_dir], ds, fast_config, jobs=2)
    assert res.exit_code == 0 and len(res.ok) == len(GOOD) and not res.failed
    ids = sorted(r["trace_id"] for r in res.ok)
    expect = sorted(f"{t}/arch={a}/trace={i}/part-0.parquet" for t in ("summary", "packets")
                    for a in ("linux", "dbnet") for i in ids)
    assert _parts(ds) == expect
    assert not (ds / ".staging").exists()

    via_pyarrow = read_table(ds, "summary")
    via_pandas = pd.read_parquet(ds / "summary")
    via_duckdb = duckdb.sql(f"select * from read_parquet('{ds}/summary/**/*.parquet', hive_partitioning=true)").df()
    assert len(via_pyarrow) == len(via_pandas) == len(via_duckdb) == len(GOOD) * 2 * 2 * 3  # archs x (g0, all) x dirs
    assert sorted(via_duckdb.trace.unique()) == sorted(via_pandas.trace.astype(str).unique()) == ids
    assert via_pandas.packets.sum() == via_duckdb.packets.sum() == via_pyarrow.packets.sum()
    pk = duckdb.sql(f"select arch, trace, count(*) n from read_parquet('{ds}/packets/**/*.parquet', "
                    "hive_partitioning=true) group by all").df()
    host_packets = {r["trace_id"]: r["host_packets"] for r in res.ok}
    assert len(pk) == 2 * len(GOOD)
    assert all(row.n == host_packets[row.trace] for row in pk.itertuples())
    assert read_dataset(ds, "packets").shape[0] == pk.n.sum()

    # each trace's summary rows are exactly those of a lone replay of the same capture
    rec = next(r for r in res.ok if r["inputs"][0]["rel_path"].endswith("suricata_1flowB.pcap"))
    lone = run_replay(rec["inputs"][0]["path"], fast_config).summary
    mine = read_dataset(ds).query(f"trace == '{rec['trace_id']}'")
    for arch in ("linux", "dbnet"):
        a = mine[mine.arch == arch].drop(columns=["arch", "trace"]).reset_index(drop=True)
        b = lone[lone.arch == arch].drop(columns=["arch"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(a[b.columns], b, check_dtype=False)


def test_manifest_records_inputs_configuration_and_one_line_failures(tmp_path, mixed_dir, fast_config):
    ds = tmp_path / "ds"
    res = run_batch([mixed_dir], ds, fast_config, jobs=2)
    assert res.exit_code == 1
    assert len(res.ok) == len(GOOD) and len(res.failed) == len(BAD)
    m = json.loads((ds / "manifest.json").read_text())
    assert m["tool_version"] and m["config_hash"] == config_hash(
        resolved_config(fast_config.to_dict(), write_packets=True, as_guests=False))
    assert m["config"]["replay"]["archs"] == ["linux", "dbnet"]
    assert m["runs"][-1]["ok"] == len(GOOD) and m["runs"][-1]["failed"] == len(BAD)
    for tid, e in m["traces"].items():
        (inp,) = e["inputs"]
        assert inp["size"] == os.path.getsize(inp["path"])
        assert e["seconds"] >= 0 and e["started"] <= e["finished"]
        if e["status"] == "ok":
            assert inp["sha256"] == hashlib.sha256(open(inp["path"], "rb").read()).hexdigest()
            assert e["partitions"] and e["reason"] is None and e["packets"] > 0
        else:
            needle = BAD["malformed/" + os.path.basename(inp["path"])]
            assert needle in e["reason"] and "\n" not in e["reason"], e["reason"]
            assert e["partitions"] == []
            assert not list(ds.glob(f"*/arch=*/trace={tid}"))


def test_rerun_skips_unchanged_redoes_changed_and_never_duplicates(tmp_path, good_dir, shared_traces,
                                                                   fast_config):
    ds = tmp_path / "ds"
    first = run_batch([good_dir], ds, fast_config, jobs=2)
    before = _stamp(ds)
    rows = read_table(ds, "summary")

    again = run_batch([good_dir], ds, fast_config, jobs=2)
    assert len(again.skipped) == len(GOOD) and not again.ok and again.exit_code == 0
    assert _stamp(ds) == before  # nothing rewritten
    pd.testing.assert_frame_equal(read_table(ds, "summary"), rows)

    # one input's content changes: only that trace is redone, its rows replaced (not added)
    victim = good_dir / "sub" / "suricata_1flowB.pcap"
    replace_input(victim, shared_traces / "bulk_tcp/suricata_http_aptget.pcap")
    third = run_batch([good_dir], ds, fast_config, jobs=2)
    assert [r["inputs"][0]["path"] for r in third.ok] == [str(victim.absolute())]
    assert len(third.skipped) == len(GOOD) - 1
    now = read_table(ds, "summary")
    tid = third.ok[0]["trace_id"]
    assert len(now) == len(rows)
    pd.testing.assert_frame_equal(now[now.trace != tid].reset_index(drop=True),
                                  rows[rows.trace != tid].reset_index(drop=True))
    assert not now[now.trace == tid].packets.equals(rows[rows.trace == tid].packets)
    assert len(read_table(ds, "packets").query(f"trace == '{tid}'")) == 2 * third.ok[0]["host_packets"]

    # another configuration: everything redone, the old architecture's partitions gone
    cfg2 = ReplayConfig(archs=["xen"], saturation=False)
    fourth = run_batch([good_dir], ds, cfg2, jobs=2)
    assert len(fourth.ok) == len(GOOD) and not fourth.skipped
    assert {p.split("/")[1] for p in _parts(ds)} == {"arch=xen"}
    assert json.loads((ds / "manifest.json").read_text())["runs"][-1]["config_changed"] is True
    assert first.manifest["config_hash"] != fourth.manifest["config_hash"]


def test_failed_traces_are_retried_and_recover_when_fixed(tmp_path, mixed_dir, bundled_traces, fast_config):
    ds = tmp_path / "ds"
    run_batch([mixed_dir], ds, fast_config, jobs=1)
    again = run_batch([mixed_dir], ds, fast_config, jobs=1)
    assert len(again.failed) == len(BAD) and len(again.skipped) == len(GOOD)
    bad = mixed_dir / "bad" / "tcpdump_empty_header_only.pcap"
    replace_input(bad, bundled_traces / "iperf3_mtu552_snap96.pcap")
    fixed = run_batch([mixed_dir], ds, fast_config, jobs=1)
    assert [r["inputs"][0]["path"] for r in fixed.ok] == [str(bad.absolute())]
    assert len(fixed.failed) == len(BAD) - 1


def test_a_second_batch_on_a_locked_dataset_refuses(tmp_path, good_dir, fast_config):
    ds = tmp_path / "ds"
    ds.mkdir()
    with DatasetLock(ds):
        with pytest.raises(OptionError, match=f"pid {os.getpid()}.*another --out|another pipeline batch") as exc:
            run_batch([good_dir], ds, fast_config, jobs=1)
        assert f"(pid {os.getpid()})" in str(exc.value)  # the alternation above lets a missing pid pass
        assert not (ds / "summary").exists()
    assert run_batch([good_dir], ds, fast_config, jobs=1).exit_code == 0  # released: usable again


@pytest.mark.parametrize("kwargs, needle", [
    ({"jobs": 0}, "--jobs"),
    ({"as_guests": True, "config": ReplayConfig(guests=["a=10.0.0.1"])}, "--as-guests"),
    ({"glob": "*.nothing"}, "no pcap or pcapng captures"),
])
def test_unusable_arguments_raise_option_errors(tmp_path, good_dir, fast_config, kwargs, needle):
    cfg = kwargs.pop("config", fast_config)
    with pytest.raises(OptionError, match=needle):
        run_batch([good_dir], tmp_path / "ds", cfg, **kwargs)


def test_refuses_a_directory_that_is_not_a_batch_dataset(tmp_path, good_dir, fast_config):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "precious.txt").write_text("keep me")
    with pytest.raises(OptionError, match="not a pipeline batch dataset"):
        run_batch([good_dir], ds, fast_config)
    assert (ds / "precious.txt").read_text() == "keep me"


def test_leftovers_of_an_interrupted_run_are_cleaned_and_redone(tmp_path, good_dir, fast_config):
    ds = tmp_path / "ds"
    run_batch([good_dir], ds, fast_config, jobs=2)
    reference = {t: read_table(ds, t) for t in ("summary", "packets")}
    m = json.loads((ds / "manifest.json").read_text())
    # a run killed after committing a trace but before recording it: partitions without an entry
    unrecorded, replacing = sorted(m["traces"])[:2]
    del m["traces"][unrecorded]
    m["traces"][replacing]["status"] = "replacing"  # killed while committing a new version of it
    (ds / "manifest.json").write_text(json.dumps(m))
    # ... and a stray partition of a trace no manifest knows, and staging debris
    src = next(ds.glob(f"summary/arch=linux/trace={unrecorded}"))
    shutil.copytree(src, ds / "summary/arch=linux/trace=ghost-00000000")
    (ds / ".staging" / "x.1234" / "summary").mkdir(parents=True)
    res = run_batch([good_dir], ds, fast_config, jobs=2)
    assert sorted(r["trace_id"] for r in res.ok) == sorted([unrecorded, replacing])
    assert not (ds / "summary/arch=linux/trace=ghost-00000000").exists() and not (ds / ".staging").exists()
    for t, df in reference.items():
        pd.testing.assert_frame_equal(read_table(ds, t), df)


def test_dask_local_cluster_gives_the_same_dataset(tmp_path, good_dir, fast_config):
    distributed = pytest.importorskip("distributed")
    local = tmp_path / "local"
    run_batch([good_dir], local, fast_config, jobs=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as c:
        res = run_batch([good_dir], tmp_path / "dask", fast_config, scheduler=c.scheduler_address)
    assert res.exit_code == 0 and len(res.ok) == len(GOOD)
    assert json.loads((tmp_path / "dask/manifest.json").read_text())["runs"][-1]["scheduler"] == c.scheduler_address
    for t in ("summary", "packets"):
        pd.testing.assert_frame_equal(read_table(tmp_path / "dask", t), read_table(local, t))


def test_scheduler_without_dask_installed_is_a_clear_error(tmp_path, good_dir, fast_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(OptionError, match=r"pip install .*\[dask\]"):
        run_batch([good_dir], tmp_path / "ds", fast_config, scheduler="tcp://127.0.0.1:1")


def test_no_packets_option_writes_summaries_only(tmp_path, good_dir, fast_config):
    ds = tmp_path / "ds"
    res = run_batch([good_dir], ds, fast_config, jobs=1, write_packets=False)
    assert res.exit_code == 0 and not (ds / "packets").exists()
    assert np.all(read_table(ds, "summary").packets >= 0)
    assert len(read_table(ds, "summary")) == len(GOOD) * 2 * 2 * 3  # archs x (g0, all) x directions
    assert all(len(r["partitions"]) == 2 and all(p.startswith("summary/") for p in r["partitions"]) for r in res.ok)


def test_progress_reports_traces_packets_bytes_and_failures(tmp_path, mixed_dir, fast_config):
    seen = []
    res = run_batch([mixed_dir], tmp_path / "ds", fast_config, jobs=2,
                    progress=lambda p: seen.append((p.done, p.failed, p.packets, p.bytes, p.total, p.total_bytes)))
    n = len(GOOD) + len(BAD)
    assert seen[0][:4] == (0, 0, 0, 0) and [s[0] for s in seen] == list(range(n + 1))
    done, failed, packets, nbytes, total, total_bytes = seen[-1]
    assert (done, failed, total) == (n, len(BAD), n)
    assert packets == sum(r["packets"] for r in res.records) > 0
    assert nbytes == total_bytes == sum(r["inputs"][0]["size"] for r in res.records)
    assert all(a[2] <= b[2] for a, b in zip(seen, seen[1:], strict=False))


def test_local_workers_share_out_the_jobs_cpus(monkeypatch):
    """Worker k runs on CPU group k: one CPU each with a full pool, every --jobs CPU still in use
    when fewer traces than jobs make the pool smaller (each task then runs jobs // traces threads)."""
    from pipeline.batch import runner

    monkeypatch.setattr(runner.os, "sched_getaffinity", lambda _pid: {3, 0, 2, 1, 5})
    assert runner._cpu_groups(4, 4) == [[0], [1], [2], [3]]
    assert runner._cpu_groups(4, 1) == [[0, 1, 2, 3]]
    assert runner._cpu_groups(4, 3) == [[0, 3], [1], [2]]
    assert runner._cpu_groups(8, 8) == [[0], [1], [2], [3], [5]]  # more jobs than CPUs: each CPU once


def _worker_state() -> dict:
    """Run in a worker forked from the batch fork server: what it inherited."""
    import gc
    import os
    import sys

    from pipeline.kernels import replay_kernel

    return {"frozen": gc.get_freeze_count(), "blas": os.environ.get("OPENBLAS_NUM_THREADS"),
            "replay_kernel_loaded": bool(replay_kernel.replay_kernel.overloads),
            "pyarrow": "pyarrow.parquet" in sys.modules}


def test_fork_server_workers_start_warm(monkeypatch):
    """Workers start with the replay kernel loaded, pyarrow imported, the warm-up's objects frozen
    out of their garbage collections, and one BLAS thread (the server starts before the CLI sets it)."""
    import concurrent.futures as cf

    from pipeline.batch.forkserver import start_forkserver, stop_forkserver

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    stop_forkserver()  # a server left by an earlier test may predate this environment
    try:
        with cf.ProcessPoolExecutor(max_workers=1, mp_context=start_forkserver()) as pool:
            state = pool.submit(_worker_state).result(timeout=120)
    finally:
        stop_forkserver()
    assert state["replay_kernel_loaded"] and state["pyarrow"]
    assert state["frozen"] > 10_000
    assert state["blas"] == "1"
