"""Batch replay of trace directories into one hive-partitioned results dataset (``pipeline batch``).

Public API::

    run_batch(inputs, dataset, config, *, glob=None, jobs=None, scheduler=None, as_guests=False,
              write_packets=True, progress=None) -> BatchResult
    discover_captures(inputs, glob=None, *, exclude=()) -> (list[CaptureFile], n_not_captures)
    read_dataset(dataset, table="summary") -> pandas.DataFrame      # convenience reader

Dataset layout (readable directly by pandas, pyarrow and DuckDB with hive partitioning)::

    DATASET/manifest.json
    DATASET/summary/arch=<arch>/trace=<trace id>/part-0.parquet
    DATASET/packets/arch=<arch>/trace=<trace id>/part-0.parquet

See :mod:`pipeline.batch.runner` (protocol: resumable, idempotent, atomic per trace, locked),
:mod:`pipeline.batch.task` (what a worker writes), :mod:`pipeline.batch.manifest` (manifest format)
and :mod:`pipeline.batch.guests` (``--as-guests``).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# Imported on first use (PEP 562), so `pipeline batch` can start its fork server
# (pipeline.batch.forkserver) before the replay engine's heavy imports.
_LAZY = {"CaptureFile": "pipeline.batch.discover", "discover_captures": "pipeline.batch.discover",
         "BatchProgress": "pipeline.batch.runner", "BatchResult": "pipeline.batch.runner",
         "default_jobs": "pipeline.batch.runner", "run_batch": "pipeline.batch.runner"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.batch' has no attribute {name!r}")


def read_dataset(dataset: str | os.PathLike, table: str = "summary"):
    """One table of a batch dataset as a DataFrame, with the ``arch`` and ``trace`` partition columns."""
    import pyarrow.dataset as pds

    from pipeline.errors import ResultsError

    path = os.path.join(os.fspath(dataset), table)
    if not os.path.isdir(path):
        raise ResultsError(f"{path}: no such table in the dataset")
    return pds.dataset(path, format="parquet", partitioning="hive").to_table().to_pandas()


__all__ = ["BatchProgress", "BatchResult", "CaptureFile", "default_jobs", "discover_captures", "read_dataset",
           "run_batch"]
