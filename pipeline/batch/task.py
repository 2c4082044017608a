"""One unit of batch work, run in a worker (a local process or a Dask worker): replay a trace (or a
guest group) and write its partitions into a private staging directory.

:func:`run_task` takes and returns plain JSON-safe dicts (cheap to ship to any worker) and never
raises for bad input: the returned record has ``status`` "ok" or "failed" with a one-line
``reason``. The coordinating process moves the staged partitions into the dataset (see
:mod:`pipeline.batch.runner`); a worker never touches the visible dataset.

Staged layout (relative paths, the same inside the dataset)::

    summary/arch=<arch>/trace=<trace id>/part-0.parquet   # the summary rows of that arch (no arch column:
    packets/arch=<arch>/trace=<trace id>/part-0.parquet   # it is the partition key), per-packet rows

Each file's schema metadata (key ``pipeline``) holds the provenance document of ``pipeline replay``
(configuration, parameters with provenance, mapping, trace summary and SHA-256, warnings, tool
version) plus ``trace_id``, ``arch`` and, for guest groups, each member's path and SHA-256.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.store.layout import PART_FILE, partition_dir


def worker_init(coordinator_pid: int | None = None, cpus: list[list[int]] | None = None) -> None:
    """Initialise a local worker process: exit as soon as the coordinator dies; Ctrl-C is its to handle;
    run on its own CPUs, worker k on ``cpus[k % len(cpus)]`` (``--jobs N`` with N traces or more: N
    workers on one CPU each, background threads included: ``--jobs 1`` really uses one CPU, and two
    workers do not slow each other down by sharing both; measured ~4 % faster per trace than
    letting them float).

    Workers are forked from a fork server, not from the coordinator, and hold both ends of the
    pool's pipes, so they would never notice a ``kill -9`` of the coordinator by themselves: a
    watchdog thread waits on a pidfd of the coordinator and ends the worker (``os._exit``) when it
    exits, so no orphan keeps writing or lingers.
    """
    import select

    def watch(pid: int) -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            os._exit(1)
        except (OSError, AttributeError):  # no pidfd (old kernel): poll
            while True:
                time.sleep(0.5)
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    os._exit(1)
                except PermissionError:
                    pass
        select.select([fd], [], [])  # readable once the process has exited
        os._exit(1)

    if cpus:
        import multiprocessing

        # the pool numbers its workers 1, 2, ... (replacements after a crash continue the count)
        ident = multiprocessing.current_process()._identity
        try:
            os.sched_setaffinity(0, cpus[(ident[-1] - 1) % len(cpus)] if ident else [c for g in cpus for c in g])
        except (OSError, AttributeError):
            pass
    if coordinator_pid is not None:
        threading.Thread(target=watch, args=(coordinator_pid,), name="coordinator-watch", daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _one_line(e: BaseException) -> str:
    if isinstance(e, PipelineError):
        return str(e)
    if isinstance(e, MemoryError):
        return "out of memory"
    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return " ".join(f"internal error: {type(e).__name__}: {e}{where}".split())


def failed_record(task: dict[str, Any], reason: str | None) -> dict[str, Any]:
    """The record of ``task`` before (or without) any result: status "failed", no partitions.
    :func:`run_task` fills it in; the coordinator uses it as it is for a task whose worker died."""
    now = time.time()
    return {"trace_id": task["trace_id"], "kind": task["kind"], "status": "failed", "reason": reason,
            "started": now, "finished": now, "seconds": 0.0, "inputs": [dict(i) for i in task["inputs"]],
            "sha256": None, "packets": 0, "host_packets": 0, "wire_bytes": 0, "warnings": [], "partitions": [],
            "staging": task["staging"], "mapping": None}


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Replay one trace or guest group into ``task["staging"]``; a JSON-safe record, never raises.

    ``task``: trace_id, kind ("trace" | "guests"), inputs (CaptureFile dicts), staging (directory),
    config (ReplayConfig.to_dict()), threads, write_packets.
    Record: trace_id, status ("ok" | "failed"), reason, started, finished, seconds, packets,
    host_packets, wire_bytes, inputs (with sha256), sha256, warnings, partitions, staging, mapping.
    """
    t0 = time.perf_counter()
    rec = failed_record(task, None)
    rec["worker_pid"] = os.getpid()
    try:
        _replay_task(task, rec)
        rec["status"] = "ok"
    except BaseException as e:  # noqa: BLE001 - every failure becomes the record's one-line reason
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        rec["reason"] = _one_line(e)
        rec["partitions"] = []
    rec["finished"] = time.time()
    rec["seconds"] = time.perf_counter() - t0
    return rec


def _replay_task(task: dict[str, Any], rec: dict[str, Any]) -> None:
    import uuid

    from pipeline.batch.manifest import combined_sha256
    from pipeline.replay import ReplayConfig, run_replay
    from pipeline.store import write_table_atomic
    from pipeline.store.packets import rows_table

    cfg = ReplayConfig(**task["config"])
    cfg.threads = task.get("threads") or cfg.threads
    root = Path(task["staging"])
    trace_id = task["trace_id"]
    inputs = rec["inputs"]
    group = None
    if task["kind"] == "guests":
        from pipeline.batch.guests import GuestTraces

        group = GuestTraces([i["path"] for i in inputs], task["guest_names"], chunk_packets=cfg.chunk_packets,
                            hosts=cfg.hosts).open()
        source: Any = group
        translate = group.member_packet
    else:
        source = inputs[0]["path"]
        translate = None
    writer = None
    if task.get("write_packets", True):
        from pipeline.store.packets import PacketResultsWriter

        # one file per architecture, in its partition (the arch is the partition key, not a column)
        writer = PacketResultsWriter(lambda arch: root / partition_dir("packets", arch, trace_id) / PART_FILE,
                                     list(dict.fromkeys(cfg.archs)), arch_column=False, translate=translate)
    ok = False
    try:
        result = run_replay(source, cfg, packet_sink=writer, mapping=group.mapping if group else None,
                            on_mapping=(lambda m: writer.open(list(m.guest_names))) if writer else None)
        ok = True
    finally:
        if writer is not None and not ok:
            writer.close(None, commit=False)
    warnings = list(result.warnings)
    if group is not None:
        warnings += group.warnings
        for i, info in zip(inputs, group.infos, strict=True):
            i["sha256"] = info.get("sha256")
            i["packets"] = info.get("packets")
        members = [{"guest": n, "path": i["path"], "sha256": i["sha256"], "packets": i["packets"],
                    "offset_ns": off, "first_ts_ns": ts}
                   for n, i, off, ts in zip(group.names, inputs, group.offset_ns, group.first_ts_ns, strict=True)]
        rec["sha256"] = combined_sha256([i["sha256"] or "" for i in inputs])
        rec["packets"] = int(sum(i["packets"] or 0 for i in inputs))
        rec["guests"] = list(group.names)
    else:
        members = None
        inputs[0]["sha256"] = result.trace.get("sha256")
        rec["sha256"] = inputs[0]["sha256"]
        rec["packets"] = int(result.trace.get("packets") or 0)
    rec["host_packets"] = int(result.trace.get("host_packets") or 0)
    rows = result.summary_rows  # dicts, not the DataFrame: a worker need not import pandas
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    first = [r for r in rows if r["arch"] == archs[0] and r["guest"] == "all" and r["direction"] == "all"]
    rec["wire_bytes"] = int(first[0]["wire_bytes"]) if first else 0
    rec["warnings"] = warnings
    rec["mapping"] = result.mapping.get("explanation")
    run_id = uuid.uuid4().hex

    def metadata_for(arch: str) -> dict[str, Any]:
        return {"kind": "batch-replay", "run_id": run_id, "trace_id": trace_id, "arch": arch,
                "config": result.config, "params": result.params, "mapping": result.mapping,
                "trace": result.trace, "trace_sha256": rec["sha256"], "members": members,
                "warnings": warnings, "saturation": result.saturation.get(arch),
                "guest_names": result.guest_names,
                "kernel_ns_per_packet": result.kernel_ns_per_packet.get(arch)}

    parts = ([partition_dir("packets", arch, trace_id) for arch in writer.close(metadata_for, commit=True)]
             if writer is not None else [])
    for arch in archs:
        rel = partition_dir("summary", arch, trace_id)
        table = rows_table([{k: v for k, v in r.items() if k != "arch"} for r in rows if r["arch"] == arch])
        write_table_atomic(table, root / rel / PART_FILE, metadata_for(arch))
        parts.append(rel)
    rec["partitions"] = sorted(parts)
