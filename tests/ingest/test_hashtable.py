"""Exact streaming aggregation (the flow and host tables of ``pipeline inspect``): totals per flow
must equal a pandas group-by, however the packets are chunked and however often the tables grow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.ingest.columns import PacketChunk
from pipeline.ingest.hashtable import KeyAggregator
from pipeline.ingest.stats import TraceStats


@pytest.fixture(scope="module")
def chunk() -> PacketChunk:
    rng = np.random.default_rng(7)
    n = 50_000
    c = PacketChunk.empty(n)
    c.ip_version[:] = np.where(rng.random(n) > 0.1, 4, 0)  # 10 % non-IP: not flows, not hosts
    ip = c.ip_version != 0
    c.src_ip_lo[:] = np.where(ip, (0xFFFF << 32) | rng.integers(1, 40, n), 0)
    c.dst_ip_lo[:] = np.where(ip, (0xFFFF << 32) | rng.integers(1, 3000, n), 0)  # > 2048 hosts: growth
    c.ip_proto[:] = np.where(ip, 6, 0)
    c.src_port[:] = np.where(ip, rng.integers(1, 4, n), 0)
    c.wire_len[:] = rng.integers(60, 1514, n)
    c.cap_len[:] = c.wire_len
    c.payload_len[:] = np.where(ip, rng.integers(0, 1448, n), 0)
    c.ts_ns[:] = rng.integers(0, 10**9, n)
    return c


def reference(c: PacketChunk) -> pd.DataFrame:
    ip = c.ip_version != 0
    df = pd.DataFrame({"src": c.src_ip_lo[ip].astype(np.int64), "dst": c.dst_ip_lo[ip].astype(np.int64),
                       "sport": c.src_port[ip].astype(np.int64), "wire": c.wire_len[ip].astype(np.int64),
                       "payload": c.payload_len[ip].astype(np.int64), "ts": c.ts_ns[ip]})
    g = df.groupby(["src", "dst", "sport"]).agg(packets=("wire", "size"), bytes=("wire", "sum"),
                                                 payload=("payload", "sum"), first=("ts", "min"),
                                                 last=("ts", "max"))
    return g.reset_index().sort_values(["src", "dst", "sport"]).reset_index(drop=True)


def _slice(c: PacketChunk, a: int, b: int) -> PacketChunk:
    return PacketChunk(first_index=a, **{k: v[a:b] for k, v in c.columns().items()})


@pytest.mark.parametrize("chunk_size", [997, 50_000])
@pytest.mark.parametrize("capacity", [2, 1 << 16])
def test_matches_groupby_however_chunked(chunk, chunk_size: int, capacity: int) -> None:
    stats = TraceStats()
    stats.flows = KeyAggregator(5, capacity=capacity)
    stats.hosts = KeyAggregator(2, capacity=capacity)
    n = len(chunk)
    for s in range(0, n, chunk_size):
        stats.add(_slice(chunk, s, s + chunk_size))
    keys, pk, by, pl, first, last = stats.flows.items()
    got = pd.DataFrame({"src": keys[:, 1].astype(np.int64), "dst": keys[:, 3].astype(np.int64),
                        "sport": ((keys[:, 4] >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.int64),
                        "packets": pk, "bytes": by, "payload": pl, "first": first, "last": last})
    got = got.sort_values(["src", "dst", "sport"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, reference(chunk), check_dtype=False)
    assert stats.flows.count == len(got)
    ip = chunk.ip_version != 0
    assert stats.hosts.count == len(np.union1d(chunk.src_ip_lo[ip], chunk.dst_ip_lo[ip]))
    for table in (stats.flows, stats.hosts):
        assert table.used.sum() * 2 <= table.used.shape[0]  # at most half full


def test_non_ip_rows_are_neither_flows_nor_hosts() -> None:
    c = PacketChunk.empty(3)
    c.ip_version[:] = [4, 0, 4]
    c.src_ip_lo[:] = [1, 2, 1]
    c.dst_ip_lo[:] = [5, 6, 5]
    c.wire_len[:] = [10, 20, 30]
    c.cap_len[:] = c.wire_len
    c.payload_len[:] = [1, 2, 3]
    c.ts_ns[:] = [5, 6, 4]
    stats = TraceStats()
    stats.add(c)
    k, pk, by, pl, first, last = stats.flows.items()
    assert k[:, [1, 3]].tolist() == [[1, 5]]
    assert (pk[0], by[0], pl[0], first[0], last[0]) == (2, 40, 4, 4, 5)
    assert stats.hosts.count == 2
    assert stats.to_dict()["non_ip_packets"] == 1
