"""Atomic Parquet writes with the run's provenance in the schema metadata.

A file only ever appears under its final name complete: it is written to a hidden temporary file
in the same directory and ``os.replace``d into place when (and only when) writing finished. A
crash, an exception or Ctrl-C leaves at most a ``.*.tmp`` file, never a file that looks complete.

Provenance lives under one schema-metadata key, :data:`METADATA_KEY`, as JSON: the schema version,
the tool version, the resolved configuration, parameters with provenance, and the input's SHA-256.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import __version__
from pipeline.store.files import METADATA_KEY, SCHEMA_VERSION, atomic_output


def provenance(extra: dict[str, Any]) -> dict[bytes, bytes]:
    """Schema metadata for a results file: ``extra`` plus schema and tool versions, as JSON."""
    doc = {"schema_version": SCHEMA_VERSION, "tool_version": __version__, **extra}
    return {METADATA_KEY: json.dumps(doc, default=str, sort_keys=True).encode()}


def write_table_atomic(table: pa.Table, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                       *, compression: str = "zstd") -> Path:
    """Write ``table`` to ``path`` atomically, adding the provenance metadata document."""
    if metadata is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **provenance(metadata)})
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression=compression)
    return Path(path)


class AtomicParquetWriter:
    """Stream record batches into one Parquet file that appears under its name only on ``commit``.

    Use as a context manager: leaving the block normally commits, an exception discards.
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, metadata: dict[str, Any] | None = None,
                 *, compression: str = "zstd", **writer_options: Any) -> None:
        self.path = Path(path)
        if metadata is not None:
            schema = schema.with_metadata({**(schema.metadata or {}), **provenance(metadata)})
        self.schema = schema
        self._ctx = atomic_output(self.path)
        self._tmp = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, schema, compression=compression, **writer_options)
        self.rows = 0

    def write(self, columns: dict[str, Any] | pa.RecordBatch | pa.Table) -> None:
        if isinstance(columns, dict):
            table = pa.Table.from_pydict(columns, schema=self.schema)
        else:
            table = pa.Table.from_batches([columns]) if isinstance(columns, pa.RecordBatch) else columns
            if not table.schema.equals(self.schema, check_metadata=False):
                # (a cast imports pyarrow.compute, ~0.06 s: only when the schema differs)
                table = table.cast(self.schema)
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def add_metadata(self, metadata: dict[str, Any]) -> None:
        """Set the provenance document now (known only at the end, e.g. the input's SHA-256)."""
        self._writer.add_key_value_metadata(
            {k.decode(): v.decode() for k, v in provenance(metadata).items()})

    def commit(self) -> Path:
        self._writer.close()
        self._ctx.__exit__(None, None, None)
        return self.path

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(BaseException):
            self._ctx.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance document of a results file written by this tool ({} when absent).

    Read from the file's key-value metadata, which holds the Arrow schema metadata written at open
    and, for streamed files, the complete document added at the end (:meth:`AtomicParquetWriter.add_metadata`).
    """
    raw = (pq.read_metadata(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
