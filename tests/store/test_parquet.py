"""Atomic Parquet writes: a file appears complete or not at all, with provenance metadata."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import __version__
from pipeline.store import SCHEMA_VERSION, AtomicParquetWriter, read_metadata, write_table_atomic


def test_write_table_atomic_has_provenance(tmp_path) -> None:
    path = tmp_path / "sub" / "t.parquet"
    write_table_atomic(pa.table({"x": [1, 2, 3]}), path, {"trace_sha256": "ab" * 32, "config": {"k": 1}})
    assert pq.read_table(path)["x"].to_pylist() == [1, 2, 3]
    meta = read_metadata(path)
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["tool_version"] == __version__
    assert meta["trace_sha256"] == "ab" * 32 and meta["config"] == {"k": 1}
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]


def test_streaming_writer_commits_on_success(tmp_path) -> None:
    schema = pa.schema([("arch", pa.string()), ("cycles", pa.float64())])
    path = tmp_path / "p.parquet"
    with AtomicParquetWriter(path, schema, {"run": 1}) as w:
        w.write({"arch": ["linux"], "cycles": [1.5]})
        w.write({"arch": ["xen", "xen"], "cycles": [2.0, 3.0]})
        assert not path.exists()  # nothing under the final name while writing
    assert pq.read_table(path).num_rows == 3
    assert read_metadata(path)["run"] == 1


def test_failure_leaves_neither_file_nor_temp(tmp_path) -> None:
    schema = pa.schema([("x", pa.int64())])
    path = tmp_path / "p.parquet"
    with pytest.raises(RuntimeError):
        with AtomicParquetWriter(path, schema) as w:
            w.write({"x": [1]})
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_failure_keeps_previous_complete_file(tmp_path) -> None:
    path = tmp_path / "t.parquet"
    write_table_atomic(pa.table({"x": [1]}), path)
    with pytest.raises(KeyboardInterrupt):
        with AtomicParquetWriter(path, pa.schema([("x", pa.int64())])) as w:
            w.write({"x": [2, 3]})
            raise KeyboardInterrupt
    assert pq.read_table(path)["x"].to_pylist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
