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

import os

from pipeline.batch.discover import CaptureFile, discover_captures
from pipeline.batch.runner import BatchProgress, BatchResult, default_jobs, run_batch


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
