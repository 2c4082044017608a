"""The library API behind the CLI: each command is one function here, usable from Python.

The CLI (:mod:`pipeline.cli`) only parses options, calls these and prints; everything a script
needs (results as dicts / DataFrames, files written atomically) is available without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import OptionError
from pipeline.ingest import open_trace
from pipeline.ingest.stats import TraceStats
from pipeline.replay import ReplayConfig, ReplayResult

ProgressFn = Callable[[int, int], None]


def inspect_trace(path: str | os.PathLike, *, top: int = 10, progress: ProgressFn | None = None,
                  chunk_packets: int = 1 << 20) -> dict[str, Any]:
    """A capinfos-like summary of one capture, as a JSON-safe dict.

    Keys include ``packets``, ``wire_bytes``, ``captured_bytes``, ``first_ts_ns``, ``last_ts_ns``
    (earliest and latest timestamp), ``link_types``, ``format``, ``truncated``, ``warnings``, plus
    container details (byte order, timestamp resolution, snaplen, interfaces), L3/L4 counts,
    distinct hosts, the top flows by wire bytes, and whether timestamps are in order.
    """
    stats = TraceStats()
    with open_trace(path, chunk_packets=chunk_packets, progress=progress) as reader:
        for chunk in reader:
            stats.add(chunk)
        info = reader.info.to_dict()
    summary = stats.to_dict(top=top)
    out: dict[str, Any] = {"path": str(path)}
    out.update(info)
    out.update(summary)
    out["link_types"] = info.get("linktypes", [])
    out["truncated"] = bool(info.get("truncated", False))
    out["warnings"] = list(info.get("warnings", []))
    return out


# --- replay --------------------------------------------------------------------------------------

#: Files a replay writes into its output directory.
SUMMARY_FILE = "summary.parquet"
PACKETS_FILE = "packets.parquet"


def _packet_schema(guest_names: list[str]):
    import pyarrow as pa

    from pipeline.models.components import COMPONENTS

    fields = [
        pa.field("arch", pa.dictionary(pa.int8(), pa.string())),
        pa.field("packet_index", pa.int64()),
        pa.field("ts_ns", pa.int64()),
        pa.field("direction", pa.dictionary(pa.int8(), pa.string())),
        pa.field("guest", pa.dictionary(pa.int32(), pa.string())),
    ]
    fields += [pa.field(f"cycles_{c}", pa.float32()) for c in COMPONENTS]
    fields += [pa.field("completion_ns", pa.int64()), pa.field("dropped", pa.bool_())]
    return pa.schema(fields)


class _PacketWriter:
    """Per-packet results into one Parquet file, encoded on a background thread.

    Arrays from the replay engine are reused for its next chunk, so each chunk is converted to an
    Arrow table (copying) before being queued; the queue is bounded, so memory stays bounded.
    Cycle columns are stored as float32 (7 significant digits: plenty for cycle counts of one packet).
    """

    def __init__(self, path, archs: list[str]) -> None:
        import queue
        import threading

        self.path = path
        self.archs = archs
        self.writer = None
        self.guest_names: list[str] | None = None
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="packets-writer", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            table = self.queue.get()
            if table is None:
                return
            if self.error is None:
                try:
                    self.writer.write(table)
                except BaseException as e:  # surfaced in close()
                    self.error = e

    def open(self, guest_names: list[str]) -> None:
        from pipeline.store import AtomicParquetWriter

        self.guest_names = guest_names
        self.schema = _packet_schema(guest_names)
        self.writer = AtomicParquetWriter(self.path, self.schema, compression="zstd",
                                          use_dictionary=["arch", "direction", "guest"])

    def __call__(self, arch: str, cols: dict[str, np.ndarray]) -> None:
        import pyarrow as pa

        from pipeline.models.components import COMPONENTS, DIRECTIONS

        n = len(cols["packet_index"])
        if n == 0:
            return
        if self.error is not None:
            raise self.error
        arch_idx = self.archs.index(arch)
        arrays = [
            pa.DictionaryArray.from_arrays(pa.array(np.full(n, arch_idx, np.int8)), pa.array(self.archs)),
            pa.array(cols["packet_index"].copy()),
            pa.array(cols["ts_ns"].copy()),
            pa.DictionaryArray.from_arrays(pa.array(cols["direction"].astype(np.int8)),
                                           pa.array(list(DIRECTIONS))),
            pa.DictionaryArray.from_arrays(pa.array(cols["guest"].astype(np.int32)),
                                           pa.array(self.guest_names)),
        ]
        arrays += [pa.array(cols[f"cycles_{c}"].astype(np.float32)) for c in COMPONENTS]
        arrays += [pa.array(cols["completion_ns"].copy()), pa.array(cols["dropped"].copy())]
        self.queue.put(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self, metadata: dict | None, commit: bool) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.writer is None:
            return
        if commit and self.error is None:
            if metadata is not None:
                self.writer.add_metadata(metadata)
            self.writer.commit()
        else:
            self.writer.discard()
        if self.error is not None:
            raise self.error


def replay(trace: str | os.PathLike, out_dir: str | os.PathLike | None, config: ReplayConfig, *,
           write_packets: bool = True, progress: Callable[[str, int], None] | None = None) -> ReplayResult:
    """Replay one capture through the configured architectures and write the results.

    Writes ``out_dir/summary.parquet`` (one row per arch x guest x direction) and, unless
    ``write_packets`` is False, ``out_dir/packets.parquet`` (one row per arch x host packet). Each
    file's schema metadata (key ``pipeline``) holds the resolved configuration, the parameters with
    provenance, the direction/guest mapping, the trace's summary and SHA-256, warnings, the tool
    version and a ``run_id`` shared by the files of one run. Files appear only complete (atomic
    rename); an interrupted run leaves the previous results, if any, untouched.
    With ``out_dir=None`` nothing is written (the result is returned only).
    """
    import uuid

    import pyarrow as pa

    from pipeline.replay import run_replay
    from pipeline.store import write_table_atomic

    config.validate()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise OptionError(f"--out {out}: exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
    archs = list(dict.fromkeys(config.archs))
    writer = _PacketWriter(out / PACKETS_FILE, archs) if (out is not None and write_packets) else None

    def sink(arch: str, cols: dict[str, np.ndarray]) -> None:
        if writer.writer is None:
            writer.open(_guest_names_hint[0])
        writer(arch, cols)

    _guest_names_hint: list[list[str]] = [[]]
    ok = False
    try:
        result = run_replay(trace, config, packet_sink=sink if writer is not None else None,
                            progress=progress, on_mapping=lambda m: _guest_names_hint.__setitem__(
                                0, list(m.guest_names)))
        ok = True
    finally:
        if writer is not None and not ok:
            writer.close(None, commit=False)
    run_id = uuid.uuid4().hex
    metadata = {
        "kind": "replay",
        "run_id": run_id,
        "config": result.config,
        "params": result.params,
        "mapping": result.mapping,
        "trace": result.trace,
        "trace_sha256": result.trace.get("sha256"),
        "warnings": result.warnings,
        "saturation": result.saturation,
        "guest_names": result.guest_names,
        "kernel_ns_per_packet": result.kernel_ns_per_packet,
    }
    if out is not None:
        if writer is not None:
            writer.close(metadata, commit=True)
        write_table_atomic(pa.Table.from_pandas(result.summary, preserve_index=False), out / SUMMARY_FILE,
                           metadata)
    return result
