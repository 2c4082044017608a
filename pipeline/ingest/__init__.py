"""Trace ingest: streaming capture reader (framing), field decoding, per-packet columns.

Public API (everything else is internal)::

    open_trace(path, *, chunk_packets=1 << 20, progress=None, sha256=False) -> TraceReader  # iterate for PacketChunk
    read_trace(path, **kw) -> (PacketChunk, TraceInfo)                          # whole trace in memory

See :mod:`pipeline.ingest.reader` for the damage policy and :mod:`pipeline.ingest.columns` for the
column contract.
"""

from pipeline.ingest.columns import PACKET_COLUMNS, PacketChunk
from pipeline.ingest.reader import FrameBatch, TraceInfo, TraceReader, open_trace, read_trace

__all__ = ["PACKET_COLUMNS", "FrameBatch", "PacketChunk", "TraceInfo", "TraceReader", "open_trace",
           "read_trace"]
