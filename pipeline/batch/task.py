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
import queue
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import PipelineError

PART_FILE = "part-0.parquet"
TABLES = ("summary", "packets")


def partition_dir(table: str, arch: str, trace_id: str) -> str:
    """Relative directory of one partition: ``<table>/arch=<arch>/trace=<trace id>``."""
    return f"{table}/arch={arch}/trace={trace_id}"


def worker_init(coordinator_pid: int | None = None, cpus: list[int] | None = None) -> None:
    """Initialise a local worker process: exit as soon as the coordinator dies; Ctrl-C is its to handle;
    run on ``cpus`` only (``--jobs N`` below the machine's CPU count: the workers share N CPUs, so
    ``--jobs 1`` really uses one CPU, background threads included).

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
        try:
            os.sched_setaffinity(0, cpus)
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


class _PartitionPacketWriter:
    """Per-packet results, one Parquet file per architecture, encoded on a background thread.

    Same columns (less ``arch``, the partition key) and the same encoding choices as
    ``pipeline replay``'s packets file (:class:`pipeline.api._PacketWriter`: required columns, delta
    encoding for the int64 columns, LZ4 for the cycle columns only, ...). The engine reuses its
    cycle/completion/dropped buffers for the next chunk, so those are copied in the sink call; the
    Arrow tables are built and encoded on the writer thread (bounded queue: bounded memory).
    ``translate`` (guest groups) maps the merged packet index to (guest, index in the member trace).
    """

    def __init__(self, root: Path, trace_id: str, translate=None) -> None:
        self.root = root
        self.trace_id = trace_id
        self.translate = translate
        self.writers: dict[str, Any] = {}
        self.schema = None
        self.guest_names: list[str] = []
        self.queue: queue.Queue = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="batch-packets-writer", daemon=True)
        self.thread.start()

    def set_guests(self, guest_names: list[str]) -> None:
        import pyarrow as pa

        from pipeline.api import _packet_schema, _PacketWriter
        from pipeline.models.components import DIRECTIONS

        self.guest_names = list(guest_names)
        schema = _packet_schema(self.guest_names)
        self.schema = schema.remove(schema.get_field_index("arch"))
        self._dicts = (pa.array(list(DIRECTIONS), pa.string()), pa.array(self.guest_names, pa.string()))
        options = dict(getattr(_PacketWriter, "WRITER_OPTIONS", {}))
        options["use_dictionary"] = ["direction", "guest"]
        uncompressed = getattr(_PacketWriter, "UNCOMPRESSED", None)
        self.options = options
        self.compression: Any = ({n: ("none" if n in uncompressed else "lz4") for n in self.schema.names}
                                 if uncompressed is not None else "zstd")

    def _drain(self) -> None:
        from pipeline.store import AtomicParquetWriter

        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue
            arch, cols = item
            try:
                w = self.writers.get(arch)
                if w is None:
                    path = self.root / partition_dir("packets", arch, self.trace_id) / PART_FILE
                    w = AtomicParquetWriter(path, self.schema, compression=self.compression, **self.options)
                    self.writers[arch] = w
                w.write(self._table(*cols))
            except BaseException as e:  # surfaced in the next call or in close()
                self.error = e

    def _table(self, index, ts_ns, direction, guest, cycles, completion, dropped):
        import pyarrow as pa

        dirs, guests = self._dicts
        arrays = [pa.array(index), pa.array(ts_ns),
                  pa.DictionaryArray.from_arrays(pa.array(direction.astype(np.int8, copy=False)), dirs),
                  pa.DictionaryArray.from_arrays(pa.array(np.asarray(guest).astype(np.int32, copy=False)), guests)]
        arrays += [pa.array(c) for c in cycles]
        arrays += [pa.array(completion), pa.array(dropped)]
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def __call__(self, arch: str, cols: dict[str, np.ndarray]) -> None:
        from pipeline.models.components import COMPONENTS

        if self.error is not None:
            raise self.error
        n = len(cols["packet_index"])
        if n == 0:
            return
        if self.translate is not None:
            guest, index = self.translate(cols["packet_index"])
        else:  # the chunk's own arrays: never modified by the engine
            guest, index = cols["guest"], cols["packet_index"]
        cycles = [cols[f"cycles_{c}"].astype(np.float32) for c in COMPONENTS]  # a copy
        self.queue.put((arch, (index, cols["ts_ns"], cols["direction"], guest, cycles,
                               cols["completion_ns"].copy(), cols["dropped"].copy())))

    def close(self, metadata_for: Any, commit: bool) -> list[str]:
        """Finish the files (commit with ``metadata_for(arch)``) or discard them; the partitions written."""
        self.queue.put(None)
        self.thread.join()
        done = []
        for arch, w in self.writers.items():
            if commit and self.error is None:
                w.add_metadata(metadata_for(arch))
                w.commit()
                done.append(partition_dir("packets", arch, self.trace_id))
            else:
                w.discard()
        if self.error is not None and commit:
            raise self.error
        return done


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Replay one trace or guest group into ``task["staging"]``; a JSON-safe record, never raises.

    ``task``: trace_id, kind ("trace" | "guests"), inputs (CaptureFile dicts), staging (directory),
    config (ReplayConfig.to_dict()), threads, write_packets.
    Record: trace_id, status ("ok" | "failed"), reason, started, finished, seconds, packets,
    host_packets, wire_bytes, inputs (with sha256), sha256, warnings, partitions, staging, mapping.
    """
    started = time.time()
    t0 = time.perf_counter()
    rec: dict[str, Any] = {"trace_id": task["trace_id"], "kind": task["kind"], "status": "failed", "reason": None,
                           "started": started, "inputs": [dict(i) for i in task["inputs"]], "sha256": None,
                           "packets": 0, "host_packets": 0, "wire_bytes": 0, "warnings": [], "partitions": [],
                           "staging": task["staging"], "mapping": None, "worker_pid": os.getpid()}
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

    import pyarrow as pa

    from pipeline.batch.manifest import combined_sha256
    from pipeline.replay import ReplayConfig, run_replay
    from pipeline.store import write_table_atomic

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
    writer = _PartitionPacketWriter(root, trace_id, translate) if task.get("write_packets", True) else None
    ok = False
    try:
        result = run_replay(source, cfg, packet_sink=writer, mapping=group.mapping if group else None,
                            on_mapping=(lambda m: writer.set_guests(list(m.guest_names))) if writer else None)
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
    s = result.summary
    first = s[(s.arch == s.arch.iloc[0]) & (s.guest == "all") & (s.direction == "all")]
    rec["wire_bytes"] = int(first.wire_bytes.iloc[0]) if len(first) else 0
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

    parts = writer.close(metadata_for, commit=True) if writer is not None else []
    for arch in dict.fromkeys(s.arch):
        rows = s[s.arch == arch].drop(columns=["arch"]).reset_index(drop=True)
        rel = partition_dir("summary", arch, trace_id)
        write_table_atomic(pa.Table.from_pandas(rows, preserve_index=False), root / rel / PART_FILE,
                           metadata_for(arch))
        parts.append(rel)
    rec["partitions"] = sorted(parts)
