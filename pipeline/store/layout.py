"""Where results live: the files of ``pipeline replay --out DIR`` and the layout of a ``pipeline batch``
dataset. Written by the API and the batch runner, read by the reports: one place for both sides.
"""

from __future__ import annotations

import re
from pathlib import Path

#: replay directory: one row per (arch, guest, direction)
SUMMARY_FILE = "summary.parquet"
#: replay directory: one row per (arch, host packet)
PACKETS_FILE = "packets.parquet"

#: batch dataset: the tables, each hive-partitioned as <table>/arch=<arch>/trace=<trace id>/PART_FILE
TABLES = ("summary", "packets")
PART_FILE = "part-0.parquet"
#: batch dataset: the run manifest at its root
MANIFEST_FILE = "manifest.json"

_PARTITION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")


def partition_dir(table: str, arch: str, trace_id: str) -> str:
    """Relative directory of one partition: ``<table>/arch=<arch>/trace=<trace id>``."""
    return f"{table}/arch={arch}/trace={trace_id}"


def partition_values(path: Path) -> dict[str, str]:
    """The ``key=value`` directory names in ``path`` (hive partition values), e.g. arch and trace."""
    out = {}
    for part in Path(path).parts:
        m = _PARTITION.fullmatch(part)
        if m:
            out[m.group(1)] = m.group(2)
    return out
