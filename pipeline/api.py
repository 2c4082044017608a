"""The library API behind the CLI: each command is one function here, usable from Python.

The CLI (:mod:`pipeline.cli`) only parses options, calls these and prints; everything a script
needs (results as dicts / DataFrames, files written atomically) is available without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import OptionError
from pipeline.ingest import open_trace
from pipeline.ingest.columns import PacketChunk

if TYPE_CHECKING:  # pandas-heavy: imported lazily so `pipeline inspect` starts fast
    from pipeline.replay import ReplayConfig, ReplayResult

ProgressFn = Callable[[int, int], None]


def inspect_trace(path: str | os.PathLike, *, top: int = 10, progress: ProgressFn | None = None,
                  chunk_packets: int = 1 << 20,
                  on_chunk: Callable[[PacketChunk], None] | None = None) -> dict[str, Any]:
    """A capinfos-like summary of one capture, as a JSON-safe dict.

    Keys include ``packets``, ``wire_bytes``, ``captured_bytes``, ``first_ts_ns``, ``last_ts_ns``
    (earliest and latest timestamp), ``link_types``, ``format``, ``truncated``, ``warnings``, plus
    container details (byte order, timestamp resolution, snaplen, interfaces), L3/L4 counts,
    distinct hosts, the top flows by wire bytes, and whether timestamps are in order.
    ``on_chunk`` sees every chunk of packets too, so a caller that needs more than the summary (the
    report numbers flows) reads the capture once.
    """
    from pipeline.ingest.stats import TraceStats

    stats = TraceStats()
    with open_trace(path, chunk_packets=chunk_packets, progress=progress, sha256=True) as reader:
        for chunk in reader:
            stats.add(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
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


def _import_for_results() -> None:
    """Import the output side's heavy module (run on a background thread by :func:`replay`)."""
    try:
        import pyarrow.parquet  # noqa: F401
    except Exception:  # noqa: S110 - the main thread's own import reports any problem
        pass


def replay(trace: str | os.PathLike, out_dir: str | os.PathLike | None, config: ReplayConfig, *,
           write_packets: bool = True, progress: Callable[[str, int], None] | None = None,
           trace_sha256: Future | None = None) -> ReplayResult:
    """Replay one capture through the configured architectures and write the results.

    Writes ``out_dir/summary.parquet`` (one row per arch x guest x direction) and, unless
    ``write_packets`` is False, ``out_dir/packets.parquet`` (one row per arch x host packet). Each
    file's schema metadata (key ``pipeline``) holds the resolved configuration, the parameters with
    provenance, the direction/guest mapping, the trace's summary and SHA-256, warnings, the tool
    version and a ``run_id`` shared by the files of one run. Files appear only complete (atomic
    rename); an interrupted run leaves the previous results, if any, untouched.
    With ``out_dir=None`` nothing is written (the result is returned only). ``trace_sha256``: a
    Future of the file's SHA-256 already being computed (:func:`pipeline.ingest.source.
    sha256_in_background`), instead of hashing while reading.
    """
    import threading
    import uuid

    from pipeline.replay import run_replay
    from pipeline.store.layout import PACKETS_FILE, SUMMARY_FILE

    config.validate()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise OptionError(f"--out {out}: exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
    writer = None
    if out is not None and write_packets:
        from pipeline.store.packets import PacketResultsWriter

        writer = PacketResultsWriter(lambda arch: out / PACKETS_FILE, list(dict.fromkeys(config.archs)))

    def on_mapping(m) -> None:
        if writer is not None:
            writer.open(list(m.guest_names))  # its thread imports pyarrow, off the main thread
        elif out is not None:
            # summary only: pyarrow.parquet (~0.04 s of imports) loads on a background thread while
            # the kernels run; started only once the first chunk is decoded, so that it does not hold
            # up the start (imports and numba's cache loading both need the GIL)
            threading.Thread(target=_import_for_results, name="import-results", daemon=True).start()
    ok = False
    try:
        result = run_replay(trace, config, packet_sink=writer, progress=progress, on_mapping=on_mapping,
                            trace_sha256=trace_sha256)
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

        from pipeline.store import write_table_atomic
        from pipeline.store.packets import rows_table

        if writer is not None:
            writer.close(lambda arch: metadata, commit=True)
        write_table_atomic(rows_table(result.summary_rows), out / SUMMARY_FILE, metadata)
    return result
