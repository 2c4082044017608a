"""Exact streaming aggregation: totals per key must equal a pandas group-by, however chunked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.ingest.hashtable import KeyAggregator


@pytest.fixture(scope="module")
def packets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 50_000
    return {
        "keys": rng.integers(0, 40, size=(n, 3)).astype(np.uint64),
        "valid": rng.random(n) > 0.1,
        "wire": rng.integers(60, 1514, n).astype(np.uint32),
        "payload": rng.integers(0, 1448, n).astype(np.uint32),
        "ts": rng.integers(0, 10**9, n).astype(np.int64),
    }


def reference(p: dict[str, np.ndarray]) -> pd.DataFrame:
    df = pd.DataFrame(p["keys"].astype(np.int64), columns=["a", "b", "c"])
    for k in ("wire", "payload", "ts"):
        df[k] = p[k].astype(np.int64)
    df = df[p["valid"]]
    g = df.groupby(["a", "b", "c"]).agg(packets=("wire", "size"), bytes=("wire", "sum"),
                                        payload=("payload", "sum"), first=("ts", "min"), last=("ts", "max"))
    return g.reset_index().sort_values(["a", "b", "c"]).reset_index(drop=True)


@pytest.mark.parametrize("chunk", [1, 997, 50_000])
@pytest.mark.parametrize("capacity", [2, 1 << 16])
def test_matches_groupby_however_chunked(packets, chunk: int, capacity: int) -> None:
    agg = KeyAggregator(3, capacity=capacity)
    n = packets["keys"].shape[0]
    step = max(chunk, n // 40) if chunk == 1 else chunk  # chunk=1 over 50k rows is slow: use small chunks
    for s in range(0, n, step):
        sl = slice(s, s + step)
        agg.add(packets["keys"][sl], packets["valid"][sl], packets["wire"][sl], packets["payload"][sl],
                packets["ts"][sl])
    keys, pk, by, pl, first, last = agg.items()
    got = pd.DataFrame(keys.astype(np.int64), columns=["a", "b", "c"]).assign(
        packets=pk, bytes=by, payload=pl, first=first, last=last)
    got = got.sort_values(["a", "b", "c"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, reference(packets), check_dtype=False)
    assert agg.count == len(got)
    assert agg.used.sum() * 2 <= agg.used.shape[0]  # at most half full


def test_invalid_rows_are_ignored() -> None:
    agg = KeyAggregator(1, capacity=4)
    keys = np.array([[1], [2], [1]], dtype=np.uint64)
    agg.add(keys, np.array([True, False, True]), np.array([10, 20, 30]), np.array([1, 2, 3]),
            np.array([5, 6, 4]))
    k, pk, by, pl, first, last = agg.items()
    assert k.tolist() == [[1]]
    assert (pk[0], by[0], pl[0], first[0], last[0]) == (2, 40, 4, 4, 5)
