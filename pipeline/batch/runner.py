"""Coordinate a batch: discover, plan (skip what is done), fan out, commit each trace atomically.

Protocol (what makes kill -9 at any moment followed by a re-run equal to an uninterrupted run):

1. Lock the dataset (``flock``; a second batch on it refuses). Remove leftovers of an interrupted
   run: the hidden ``.staging/`` and ``.trash/`` directories, and every visible partition of a
   trace the manifest does not record as complete (committed by a run killed before its manifest
   update). The dataset then holds exactly the manifest's complete traces.
2. Plan: a trace is skipped when the manifest records it complete with the same configuration
   hash, the same input paths and sizes, the same input SHA-256 (recomputed now) and its partitions
   are present. Everything else is (re)done.
3. Workers replay into private staging directories (``.staging/<trace id>.<nonce>/``); they never
   touch the visible dataset.
4. The coordinator commits each finished trace: old partitions of the trace out of the way
   (renamed into ``.trash/``; a trace the manifest calls complete is first marked ``replacing``
   there), staged partition directories renamed into place (one rename each), then the manifest
   entry, and the manifest is rewritten atomically (at most every 0.5 s and at the end). A trace committed but not yet in the manifest is removed and redone by step 1 of the
   next run, so rows are never duplicated or mixed.

Workers: a local process pool (forked from a fork server that has imported and warmed up every kernel
once, :mod:`pipeline.batch.worker_preload`, so workers start ready) or a Dask distributed cluster
(``scheduler``); either way the unit of work is :func:`pipeline.batch.task.run_task`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.batch.discover import CaptureFile, discover_captures, make_trace_id
from pipeline.batch.forkserver import start_forkserver, stop_forkserver
from pipeline.batch.manifest import (
    COMPLETE,
    LOCK_FILE,
    MANIFEST_FILE,
    DatasetLock,
    config_hash,
    load_manifest,
    new_manifest,
    resolved_config,
    save_manifest,
)
from pipeline.batch.task import failed_record, run_task, worker_init
from pipeline.config import ReplayConfig, resolve_models
from pipeline.errors import OptionError
from pipeline.ingest.source import file_sha256
from pipeline.store.layout import PART_FILE, TABLES

STAGING = ".staging"
TRASH = ".trash"
_SAVE_EVERY_S = 0.5
_MAX_ATTEMPTS = 3  # a task whose worker process died is retried (in a fresh pool) up to this many times


@dataclass
class BatchProgress:
    """What the progress display shows, after each finished trace (and once at the start)."""

    total: int                 # traces (or guest groups) to replay in this run
    done: int = 0
    failed: int = 0
    skipped: int = 0           # up to date, not replayed
    packets: int = 0           # packets read by the finished traces
    bytes: int = 0             # input bytes (on disk) of the finished traces
    total_bytes: int = 0
    last: dict[str, Any] | None = None  # the record of the trace that just finished


@dataclass
class BatchResult:
    """The outcome of :func:`run_batch`."""

    dataset: Path
    manifest: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)  # this run's records (ok, failed, skipped)
    not_captures: int = 0
    seconds: float = 0.0

    def _by(self, status: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] == status]

    @property
    def ok(self) -> list[dict[str, Any]]:
        return self._by("ok")

    @property
    def failed(self) -> list[dict[str, Any]]:
        return self._by("failed")

    @property
    def skipped(self) -> list[dict[str, Any]]:
        return self._by("skipped")

    @property
    def exit_code(self) -> int:
        """1 when any trace failed, else 0."""
        return 1 if self.failed else 0


# --------------------------------------------------------------------------------------- planning

def _units(captures: list[CaptureFile], as_guests: bool) -> list[dict[str, Any]]:
    """Units of work: one per capture, or (as_guests) one guest group per directory of captures."""
    if not as_guests:
        return [{"trace_id": c.trace_id, "kind": "trace", "inputs": [c.to_dict()]} for c in captures]
    groups: dict[Path, list[CaptureFile]] = {}
    for c in captures:
        groups.setdefault(c.path.parent, []).append(c)
    units = []
    for parent, members in groups.items():
        members = sorted(members, key=lambda c: str(c.path))
        rel_dir = members[0].rel_path.rsplit("/", 1)[0] if "/" in members[0].rel_path else parent.name
        tid = make_trace_id(f"guests_{rel_dir}", "\n".join(str(m.path) for m in members))
        units.append({"trace_id": tid, "kind": "guests", "inputs": [m.to_dict() for m in members],
                      "guest_names": [m.trace_id for m in members]})
    return units


def _partitions_present(dataset: Path, entry: dict[str, Any]) -> bool:
    parts = entry.get("partitions") or []
    return bool(parts) and all((dataset / p / PART_FILE).is_file() for p in parts)


def _may_be_up_to_date(dataset: Path, unit: dict[str, Any], entry: dict[str, Any] | None, chash: str) -> bool:
    """Every check but the inputs' content: recorded complete with this configuration, the same input
    paths and sizes, its partitions present."""
    if not entry or entry.get("status") not in COMPLETE or entry.get("config_hash") != chash:
        return False
    old = entry.get("inputs") or []
    if [(i.get("path"), i.get("size")) for i in old] != [(i["path"], i["size"]) for i in unit["inputs"]]:
        return False
    return _partitions_present(dataset, entry)


def _plan(dataset: Path, units: list[dict[str, Any]], manifest: dict[str, Any], chash: str,
          threads: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(units to replay, units up to date). Hashes only the inputs of units that pass every other check."""
    traces = manifest["traces"]
    candidates = [u for u in units if _may_be_up_to_date(dataset, u, traces.get(u["trace_id"]), chash)]
    paths = sorted({i["path"] for u in candidates for i in u["inputs"]})
    hashes: dict[str, str] = {}
    if paths:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for p, h in zip(paths, pool.map(_sha_or_none, paths), strict=True):
                if h is not None:
                    hashes[p] = h
    unchanged = {u["trace_id"] for u in candidates
                 if all(hashes.get(i["path"]) == o.get("sha256")
                        for i, o in zip(u["inputs"], traces[u["trace_id"]]["inputs"], strict=True))}
    todo = [u for u in units if u["trace_id"] not in unchanged]
    return todo, [u for u in units if u["trace_id"] in unchanged]


def _sha_or_none(path: str) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


# ---------------------------------------------------------------------------------- dataset state

def _check_dataset(dataset: Path) -> None:
    if dataset.exists() and not dataset.is_dir():
        raise OptionError(f"--out {dataset}: exists and is not a directory")
    dataset.mkdir(parents=True, exist_ok=True)
    if (dataset / MANIFEST_FILE).exists():
        return
    ours = {LOCK_FILE, STAGING, TRASH, MANIFEST_FILE}
    others = [p.name for p in dataset.iterdir() if p.name not in ours and not p.name.startswith(f".{MANIFEST_FILE}.")]
    if others:
        raise OptionError(f"--out {dataset}: not empty and not a pipeline batch dataset (no {MANIFEST_FILE}); "
                          "choose an empty or new directory")


def _trace_partition_dirs(dataset: Path, trace_id: str | None = None) -> list[Path]:
    """Visible partition directories (of one trace, or all)."""
    pat = f"trace={trace_id}" if trace_id is not None else "trace=*"
    out: list[Path] = []
    for table in TABLES:
        out += sorted((dataset / table).glob(f"arch=*/{pat}"))
    return [p for p in out if p.is_dir()]


def _discard(dataset: Path, path: Path) -> None:
    """Move ``path`` out of the visible dataset at once (rename into .trash), then delete it."""
    trash = dataset / TRASH
    trash.mkdir(exist_ok=True)
    dest = trash / uuid.uuid4().hex
    try:
        os.rename(path, dest)
    except FileNotFoundError:
        return
    shutil.rmtree(dest, ignore_errors=True)


def _clean(dataset: Path, manifest: dict[str, Any]) -> int:
    """Remove what an interrupted run left: staging, trash, partitions not recorded complete."""
    for d in (STAGING, TRASH):
        shutil.rmtree(dataset / d, ignore_errors=True)
    traces = manifest["traces"]
    removed = 0
    for p in _trace_partition_dirs(dataset):
        rel = p.relative_to(dataset).as_posix()
        tid = p.name.split("=", 1)[1]
        e = traces.get(tid)
        if not e or e.get("status") not in COMPLETE or rel not in (e.get("partitions") or []):
            _discard(dataset, p)
            removed += 1
    for table in TABLES:
        for a in (dataset / table).glob("arch=*"):
            with contextlib.suppress(OSError):
                a.rmdir()  # only when empty
    return removed


def _commit(dataset: Path, rec: dict[str, Any]) -> None:
    """Make a finished trace's staged partitions visible (or, when it failed, remove its old ones)."""
    tid = rec["trace_id"]
    staging = Path(rec["staging"])
    new = rec["partitions"] if rec["status"] == "ok" else []
    for p in _trace_partition_dirs(dataset, tid):
        _discard(dataset, p)
    for rel in new:
        dest = dataset / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging / rel, dest)
    shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------------------------- executors

def _cpu_groups(jobs: int, workers: int) -> list[list[int]] | None:
    """The CPUs each local worker runs on (worker k on group k, cycling): the first ``jobs`` of this
    process's CPUs dealt out to ``workers`` workers, so a pool smaller than ``--jobs`` (fewer traces
    than jobs; each task then gets ``jobs // traces`` threads) still has all ``jobs`` CPUs."""
    try:
        allowed = sorted(os.sched_getaffinity(0))[:jobs]
    except AttributeError:  # pragma: no cover - not Linux
        return None
    n = max(1, min(workers, len(allowed)))
    return [allowed[i::n] for i in range(n)]


def _local_pool(jobs: int, cpus: list[list[int]] | None) -> cf.ProcessPoolExecutor:
    """Worker processes forked from a clean fork server (started by exec, so it holds none of this
    process's threads, OpenMP state or descriptors such as the dataset lock), with the heavy
    imports preloaded. Not plain fork: forking a process that has run numba/OpenMP or started
    threads is unsafe."""
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=start_forkserver(), initializer=worker_init,
                                  initargs=(os.getpid(), cpus))


def _run_local(tasks: list[dict[str, Any]], jobs: int, on_record: Callable) -> None:
    pending = list(tasks)
    attempts: dict[str, int] = {}
    while pending:
        retry: list[dict[str, Any]] = []
        workers = min(jobs, len(pending))
        pool = _local_pool(workers, _cpu_groups(jobs, workers))
        try:
            futs = {pool.submit(run_task, t): t for t in pending}
            for fut in cf.as_completed(futs):
                t = futs[fut]
                try:
                    rec = fut.result()
                except cf.process.BrokenProcessPool:
                    attempts[t["trace_id"]] = attempts.get(t["trace_id"], 0) + 1
                    if attempts[t["trace_id"]] < _MAX_ATTEMPTS:
                        retry.append(t)
                        continue
                    rec = failed_record(t, "the worker process died while replaying it (crash or killed)")
                except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be unpickled
                    rec = failed_record(t, f"internal error: {type(e).__name__}: {e}")
                on_record(rec)
        except BaseException:
            for p in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    p.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        pending = retry


def _run_dask(tasks: list[dict[str, Any]], address: str, on_record: Callable) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise OptionError("--scheduler needs Dask: pip install 'iovirt-pipeline[dask]'") from None
    try:
        client = Client(address, timeout="5s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise OptionError(f"cannot connect to the Dask scheduler at {address}: "
                          f"{' '.join(str(e).split()) or type(e).__name__}") from None
    try:
        futs = {client.submit(run_task, t, key=f"pipeline-batch-{t['trace_id']}-{uuid.uuid4().hex[:8]}",
                              pure=False): t for t in tasks}
        for fut in as_completed(list(futs), loop=client.loop):
            t = futs[fut]
            try:
                rec = fut.result()
            except Exception as e:  # noqa: BLE001 - a worker lost, a task erred outside run_task
                rec = failed_record(t, f"failed on the Dask cluster: {type(e).__name__}: {' '.join(str(e).split())}")
            on_record(rec)
    finally:
        client.close()


# ------------------------------------------------------------------------------------------ batch

def default_jobs() -> int:
    """Worker processes for a local batch: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_batch(inputs: list[str | os.PathLike], dataset: str | os.PathLike, config: ReplayConfig, *,
              glob: str | None = None, jobs: int | None = None, scheduler: str | None = None,
              as_guests: bool = False, write_packets: bool = True,
              progress: Callable[[BatchProgress], None] | None = None) -> BatchResult:
    """Replay every capture under ``inputs`` into the hive-partitioned dataset ``dataset``.

    See the module docstring for the protocol and :mod:`pipeline.batch.task` for the layout.
    ``jobs``: local worker processes (default: the CPUs available); ``scheduler``: a Dask scheduler
    address (then ``jobs`` is ignored); ``as_guests``: the captures of each directory are replayed
    together as guests of one host. Raises :class:`OptionError` (exit code 2) for unusable
    arguments, a locked dataset or a directory that is not a batch dataset; bad captures do not
    raise: they are ``failed`` records (``BatchResult.exit_code`` 1).
    """
    t_start = time.perf_counter()
    started = time.time()
    config.validate()
    if jobs is not None and jobs < 1:
        raise OptionError(f"--jobs must be >= 1, not {jobs}")
    if as_guests and (config.guests or config.n_guests):
        raise OptionError("--as-guests makes each trace a guest: do not combine it with --guest or --guests")
    if not inputs:
        raise OptionError("no input directories or files given")
    for i in inputs:
        if not Path(i).exists():
            raise OptionError(f"{i}: no such file or directory")
    ds = Path(dataset).absolute()
    _check_dataset(ds)
    n_jobs = jobs or default_jobs()
    cfg_doc = resolved_config(config.to_dict(), write_packets=write_packets, as_guests=as_guests)
    chash = config_hash(cfg_doc)

    if not scheduler:
        start_forkserver()  # it imports and warms up while this process locks, discovers and plans
    try:
        return _locked_batch(inputs, ds, config, glob, n_jobs, scheduler, as_guests, write_packets, progress,
                             cfg_doc, chash, started, t_start)
    finally:
        if not scheduler:
            stop_forkserver()


def _locked_batch(inputs, ds: Path, config: ReplayConfig, glob, n_jobs: int, scheduler, as_guests: bool,
                  write_packets: bool, progress, cfg_doc: dict[str, Any], chash: str, started: float,
                  t_start: float) -> BatchResult:
    with DatasetLock(ds):
        manifest = load_manifest(ds) or new_manifest()
        _clean(ds, manifest)
        captures, not_captures = discover_captures(list(inputs), glob, exclude=[ds])
        if not captures:
            where = ", ".join(str(i) for i in inputs)
            raise OptionError(f"no pcap or pcapng captures found under {where}"
                              + (f" matching --glob {glob!r}" if glob else ""))
        units = _units(captures, as_guests)
        todo, up_to_date = _plan(ds, units, manifest, chash, threads=min(4, n_jobs))
        if todo:
            resolve_models(config)  # a bad configuration exits 2 before any work is fanned out
        run_no = (manifest["runs"][-1]["run"] + 1) if manifest["runs"] else 1
        run_rec = {"run": run_no, "started": started, "finished": None, "inputs": [str(i) for i in inputs],
                   "glob": glob, "jobs": None if scheduler else n_jobs, "scheduler": scheduler,
                   "as_guests": as_guests, "config_hash": chash,
                   "config_changed": manifest.get("config_hash") not in (None, chash),
                   "traces": len(units), "not_captures": not_captures}
        manifest["runs"].append(run_rec)
        manifest["config"], manifest["config_hash"] = cfg_doc, chash
        manifest["layout"] = {"summary": "summary/arch=<arch>/trace=<trace id>/part-0.parquet",
                              "packets": "packets/arch=<arch>/trace=<trace id>/part-0.parquet",
                              "partitioning": "hive"}
        records: list[dict[str, Any]] = []
        for u in up_to_date:
            e = manifest["traces"][u["trace_id"]]
            e.update(status="skipped", reason=None, run=run_no)
            records.append({**e, "trace_id": u["trace_id"]})
        save_manifest(ds, manifest)

        state = BatchProgress(total=len(todo), skipped=len(up_to_date),
                              total_bytes=sum(i["size"] for u in todo for i in u["inputs"]))
        if progress is not None:
            progress(state)
        last_save = [time.monotonic()]

        def on_record(rec: dict[str, Any]) -> None:
            prev = manifest["traces"].get(rec["trace_id"])
            if prev and prev.get("status") in COMPLETE:
                # about to replace partitions the manifest calls complete: say so first, so a kill
                # in between leaves a trace that the next run cleans up and redoes
                prev["status"] = "replacing"
                save_manifest(ds, manifest)
            _commit(ds, rec)
            entry = {k: v for k, v in rec.items() if k not in ("staging", "trace_id", "worker_pid")}
            entry.update(config_hash=chash, run=run_no)
            manifest["traces"][rec["trace_id"]] = entry
            records.append(rec)
            state.done += 1
            state.failed += rec["status"] == "failed"
            state.packets += int(rec.get("packets") or 0)
            state.bytes += sum(int(i.get("size") or 0) for i in rec["inputs"])
            state.last = rec
            if time.monotonic() - last_save[0] >= _SAVE_EVERY_S:
                save_manifest(ds, manifest)
                last_save[0] = time.monotonic()
            if progress is not None:
                progress(state)

        staging_root = ds / STAGING
        tasks = []
        for u in sorted(todo, key=lambda u: -sum(i["size"] for i in u["inputs"])):  # largest first
            tasks.append({**u, "staging": str(staging_root / f"{u['trace_id']}.{uuid.uuid4().hex[:8]}"),
                          "config": config.to_dict(), "write_packets": write_packets,
                          "threads": 1 if scheduler else max(1, n_jobs // len(todo))})
        try:
            if tasks and scheduler:
                _run_dask(tasks, scheduler, on_record)
            elif tasks:
                _run_local(tasks, n_jobs, on_record)
        finally:
            run_rec.update(finished=time.time(), seconds=time.perf_counter() - t_start,
                           ok=sum(r["status"] == "ok" for r in records),
                           failed=sum(r["status"] == "failed" for r in records),
                           skipped=sum(r["status"] == "skipped" for r in records))
            save_manifest(ds, manifest)
            shutil.rmtree(staging_root, ignore_errors=True)
            shutil.rmtree(ds / TRASH, ignore_errors=True)
    return BatchResult(dataset=ds, manifest=manifest, records=records, not_captures=not_captures,
                       seconds=time.perf_counter() - t_start)
