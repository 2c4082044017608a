"""Trace ingest: streaming capture reader (framing), field decoding, per-packet columns.

Public API (everything else is internal)::

    open_trace(path, *, chunk_packets=1 << 20, progress=None, sha256=False) -> TraceReader  # iterate for PacketChunk
    read_trace(path, **kw) -> (PacketChunk, TraceInfo)                          # whole trace in memory

See :mod:`pipeline.ingest.reader` for the damage policy and :mod:`pipeline.ingest.columns` for the
column contract.
"""

import importlib
from typing import Any

__all__ = ["PACKET_COLUMNS", "FrameBatch", "PacketChunk", "TraceInfo", "TraceReader", "open_trace",
           "read_trace"]

# Imported on first use (PEP 562): the numba kernels load with the reader, so light submodules
# (pipeline.ingest.source: the file hash the CLI starts before its own imports) stay light.
_HOME = {"PACKET_COLUMNS": "pipeline.ingest.columns", "PacketChunk": "pipeline.ingest.columns"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(_HOME.get(name, "pipeline.ingest.reader")), name)
    raise AttributeError(f"module 'pipeline.ingest' has no attribute {name!r}")
