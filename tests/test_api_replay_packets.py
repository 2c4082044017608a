"""api.replay's per-packet Parquet (written on a background thread, tuned encodings) holds exactly the
engine's per-packet results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.api import replay
from pipeline.models.components import COMPONENTS
from pipeline.replay import ReplayConfig, run_replay
from pipeline.store import read_metadata
from pipeline.store.layout import PACKETS_FILE

GUESTS3 = ["g1=10.99.0.11", "g2=10.99.0.12", "g3=10.99.0.13"]


@pytest.mark.parametrize("chunk_packets", [1 << 20, 2500])
def test_packets_parquet_equals_the_engine_results(bundled_traces, tmp_path, chunk_packets):
    f = bundled_traces / "iperf3_mtu1500_3guests_snap96.pcap"
    cfg = ReplayConfig(guests=GUESTS3, chunk_packets=chunk_packets, saturation=False)
    res = replay(f, tmp_path, cfg)
    ref: dict[str, list[dict[str, np.ndarray]]] = {}
    run_replay(f, cfg, packet_sink=lambda a, cols: ref.setdefault(a, []).append(
        {k: v.copy() for k, v in cols.items()}))
    df = pd.read_parquet(tmp_path / PACKETS_FILE)
    assert list(df.arch.cat.categories) == cfg.archs
    assert list(df.guest.cat.categories) == res.guest_names == ["g1", "g2", "g3"]
    assert len(df) == sum(len(c["packet_index"]) for chunks in ref.values() for c in chunks)
    for arch, chunks in ref.items():
        exp = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        got = df[df.arch == arch]
        for k in ("packet_index", "ts_ns", "completion_ns", "dropped"):
            np.testing.assert_array_equal(got[k].to_numpy(), exp[k], err_msg=f"{arch} {k}")
        np.testing.assert_array_equal(got.direction.astype(str).to_numpy(),
                                      np.where(exp["direction"] == 0, "rx", "tx"))
        np.testing.assert_array_equal(got.guest.astype(str).to_numpy(),
                                      np.array(res.guest_names)[exp["guest"]])
        for c in COMPONENTS:
            assert got[f"cycles_{c}"].dtype == np.float32
            np.testing.assert_array_equal(got[f"cycles_{c}"].to_numpy(), exp[f"cycles_{c}"].astype(np.float32))
    assert df[df.arch == "xen"].cycles_bridge.sum() > 0


def test_packets_parquet_layout(bundled_traces, tmp_path):
    res = replay(bundled_traces / "iperf3_mtu552_snap96.pcap", tmp_path,
                 ReplayConfig(archs=["linux", "dbnet"], hosts=["10.99.0.2"], saturation=False))
    meta = pq.ParquetFile(tmp_path / PACKETS_FILE).metadata
    schema = pq.read_schema(tmp_path / PACKETS_FILE)
    assert all(not schema.field(n).nullable for n in schema.names)  # required: no definition levels
    col = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i)
           for i in range(meta.num_columns)}
    assert col["cycles_stack"].compression == "LZ4"
    assert "DELTA_BINARY_PACKED" in col["ts_ns"].encodings
    assert col["ts_ns"].statistics is not None and col["cycles_stack"].statistics is None
    assert read_metadata(tmp_path / PACKETS_FILE)["run_id"] == read_metadata(tmp_path / "summary.parquet")["run_id"]
    assert meta.num_rows == 2 * res.summary.query("guest == 'all' and direction == 'all'").packets.iloc[0]


def test_a_writer_failure_fails_the_run_and_leaves_no_file(bundled_traces, tmp_path, monkeypatch):
    from pipeline.store import AtomicParquetWriter

    def full_disk(self, table):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AtomicParquetWriter, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        replay(bundled_traces / "iperf3_mtu1500_3guests_snap96.pcap", tmp_path,
               ReplayConfig(guests=GUESTS3, chunk_packets=2000, saturation=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no packets.parquet, no temporary file
