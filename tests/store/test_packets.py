"""PacketResultsWriter's buffer protocol with the replay engine (store.packets)."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.models.components import COMPONENTS
from pipeline.store.packets import QUEUE_CHUNKS, PacketResultsWriter


@pytest.mark.parametrize("n_archs", [1, 4, 9])
def test_two_chunks_of_blocks_are_always_available(tmp_path, n_archs) -> None:
    """The engine holds one chunk's blocks (one per arch) in its kernels while it hands the previous
    chunk's to the sink: out_buffers must give 2 x archs blocks without anything being written."""
    w = PacketResultsWriter(lambda a: tmp_path / "p.parquet", [f"a{i}" for i in range(n_archs)])
    got: list = []
    t = threading.Thread(target=lambda: got.extend(w.out_buffers(100) for _ in range(2 * n_archs)), daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive() and len(got) == 2 * n_archs
    assert len({id(b) for b in got}) == 2 * n_archs
    assert w._n_blocks == 2 * n_archs and all(b.cap >= 100 for b in got)
    if 2 * n_archs < QUEUE_CHUNKS + 2:  # below the queue's own bound, blocks are still handed out
        assert w.out_buffers(100) is not None
    w.close(None, commit=False)


def test_kernel_written_block_and_copied_arrays_give_the_same_rows(tmp_path) -> None:
    """A chunk passed as out= (written in place) and the same chunk passed as plain arrays (copied)
    end up as identical rows."""
    rng = np.random.default_rng(3)
    n = 1000
    cols = {"packet_index": np.arange(n, dtype=np.int64), "ts_ns": np.arange(n, dtype=np.int64) * 7,
            "direction": rng.integers(0, 2, n).astype(np.int8), "guest": np.zeros(n, np.int32),
            "completion_ns": rng.integers(0, 10**9, n), "dropped": rng.random(n) < 0.1}
    for c in COMPONENTS:
        cols[f"cycles_{c}"] = rng.random(n).astype(np.float32) * 1000
    paths = {"copy": tmp_path / "copy.parquet", "inplace": tmp_path / "inplace.parquet"}
    for how, path in paths.items():
        w = PacketResultsWriter(lambda a, path=path: path, ["linux"])
        w.open(["g"])
        if how == "copy":
            w("linux", cols)
        else:
            block = w.out_buffers(n)
            cyc, comp, drop = block.get(n)
            for ci, c in enumerate(COMPONENTS):
                cyc[ci] = cols[f"cycles_{c}"]
            comp[:] = cols["completion_ns"]
            drop[:] = cols["dropped"]
            w("linux", {k: v for k, v in cols.items()}, out=block)
        assert w._n_blocks == 1  # out= is queued as it is, not copied into a second block
        w.close(lambda a: {"k": 1}, commit=True)
    a, b = (pq.read_table(p) for p in paths.values())
    assert a.num_rows == n and a.equals(b)
