"""The library API behind the CLI: each command is one function here, usable from Python.

The CLI (:mod:`pipeline.cli`) only parses options, calls these and prints; everything a script
needs (results as dicts / DataFrames, files written atomically) is available without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pipeline.ingest import open_trace
from pipeline.ingest.stats import TraceStats

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
