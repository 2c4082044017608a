"""Results storage: Parquet files written atomically, with provenance in the schema metadata."""

import importlib
from typing import Any

__all__ = [
    "METADATA_KEY",
    "SCHEMA_VERSION",
    "AtomicParquetWriter",
    "atomic_output",
    "read_metadata",
    "write_table_atomic",
]


_HOME = dict.fromkeys(("METADATA_KEY", "SCHEMA_VERSION", "atomic_output"), "pipeline.store.files")


def __getattr__(name: str) -> Any:
    # imported on first use (PEP 562): pipeline.store.layout, .files and .packets stay free of pyarrow
    # (~0.03 s), which `pipeline replay` imports on a background thread while its kernels run
    if name in __all__:
        return getattr(importlib.import_module(_HOME.get(name, "pipeline.store.parquet")), name)
    raise AttributeError(f"module 'pipeline.store' has no attribute {name!r}")
