"""Trace ingest: streaming capture reader (framing), field decoding, per-packet columns."""
