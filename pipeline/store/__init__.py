"""Results storage: Parquet files written atomically, with provenance in the schema metadata."""

from pipeline.store.parquet import (
    METADATA_KEY,
    SCHEMA_VERSION,
    AtomicParquetWriter,
    atomic_output,
    read_metadata,
    write_table_atomic,
)

__all__ = [
    "METADATA_KEY",
    "SCHEMA_VERSION",
    "AtomicParquetWriter",
    "atomic_output",
    "read_metadata",
    "write_table_atomic",
]
