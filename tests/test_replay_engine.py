"""The replay engine's scheduling (read-ahead, double-buffered outputs, saturation jobs) changes no result."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from pipeline.models.components import COMPONENTS
from pipeline.replay import ReplayConfig, _prefetched, run_replay

GUESTS3 = ["g1=10.99.0.11", "g2=10.99.0.12", "g3=10.99.0.13"]


def test_prefetched_yields_everything_in_order():
    assert list(_prefetched(iter(range(1000)), depth=2)) == list(range(1000))
    assert list(_prefetched(iter([]))) == []


def test_prefetched_hands_the_producers_error_to_the_consumer():
    def gen():
        yield 1
        yield 2
        raise ValueError("damaged record 3")

    got = []
    with pytest.raises(ValueError, match="damaged record 3"):
        for x in _prefetched(gen()):
            got.append(x)
    assert got == [1, 2]


def test_prefetched_stops_and_closes_the_source_when_the_consumer_stops():
    closed = threading.Event()
    produced = []

    def gen():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    before = threading.active_count()
    for x in _prefetched(gen(), depth=2):
        if x == 3:
            break
    assert closed.wait(5)
    assert len(produced) < 100  # read ahead by `depth`, not to the end
    assert threading.active_count() == before  # the producer thread is gone


def _run(trace, **kw):
    progress: list[tuple[str, int]] = []
    res = run_replay(trace, ReplayConfig(guests=GUESTS3, ring_size=16, **kw),
                     progress=lambda stage, n: progress.append((stage, n)))
    return res, progress


def test_saturation_search_is_the_same_cached_streamed_and_on_any_thread_count(bundled_traces):
    # ring_size 16: drops at modest rates, so every arch needs several bracketing passes
    f = bundled_traces / "iperf3_mtu1500_3guests_snap96.pcap"
    cached, p_cached = _run(f, chunk_packets=3000)  # threads=None: all of a pass's simulations at once
    streamed, p_streamed = _run(f, threads=2, chunk_packets=3000, cache_packets=0)
    single, _ = _run(f, threads=1)
    pooled, _ = _run(f, threads=2)
    assert max(s["passes"] for s in cached.saturation.values()) >= 3
    for other in (streamed, single, pooled):
        assert other.saturation == cached.saturation  # exactly: same factors, same passes
        pd.testing.assert_frame_equal(other.summary, cached.summary, check_exact=True)
    # progress: the same calls whether the saturation passes read the cache or the file
    assert p_cached == p_streamed
    assert [s for s, _ in p_cached].count("replay") == -(-cached.trace["packets"] // 3000)


def test_a_float32_sink_gets_the_float64_results_rounded(bundled_traces):
    f = bundled_traces / "iperf3_mtu1500_snap96.pcap"
    got: dict[type, dict[str, list[dict[str, np.ndarray]]]] = {}

    def make_sink(dtype):
        def sink(arch, cols):
            got.setdefault(dtype, {}).setdefault(arch, []).append({k: v.copy() for k, v in cols.items()})
        if dtype is np.float32:
            sink.cycles_dtype = np.float32
        return sink

    cfg = ReplayConfig(hosts=["10.99.0.2"], saturation=False, chunk_packets=4000)
    r64 = run_replay(f, cfg, packet_sink=make_sink(np.float64))
    r32 = run_replay(f, cfg, packet_sink=make_sink(np.float32))
    pd.testing.assert_frame_equal(r64.summary, r32.summary, check_exact=True)
    for arch, chunks in got[np.float64].items():
        for c64, c32 in zip(chunks, got[np.float32][arch], strict=True):
            for c in COMPONENTS:
                assert c64[f"cycles_{c}"].dtype == np.float64 and c32[f"cycles_{c}"].dtype == np.float32
                np.testing.assert_array_equal(c64[f"cycles_{c}"].astype(np.float32), c32[f"cycles_{c}"])
            for k in ("packet_index", "completion_ns", "dropped"):
                np.testing.assert_array_equal(c64[k], c32[k])
    assert sum(c["cycles_stack"].sum() for c in got[np.float64]["xen"]) > 0


@pytest.mark.parametrize("segments", ["captured", "mss"])
@pytest.mark.parametrize(("trace", "hosts", "guests"), [
    ("iperf3_mtu1500_tso_snap96.pcap", ["10.99.0.2"], []),
    ("iperf3_mtu1500_3guests_snap96.pcap", [], GUESTS3[:2]),
])
def test_prepare_chunk_kernel_equals_numpy(bundled_traces, trace, hosts, guests, segments):
    from pipeline.ingest import read_trace
    from pipeline.models.mapping import resolve_mapping
    from pipeline.replay import HostPackets, _prepare_chunk_numpy, prepare_chunk

    chunk, _ = read_trace(bundled_traces / trace)
    chunk.first_index = 12345
    mapping = resolve_mapping(hosts, guests, None, chunk)
    for mtu in (1500, 576):
        fast, out_fast = prepare_chunk(chunk, mapping, segments, mtu)
        slow, out_slow = _prepare_chunk_numpy(chunk, mapping, segments, mtu)
        assert out_fast == out_slow and 0 < len(fast) <= len(chunk)
        for f in HostPackets.__dataclass_fields__:
            a, b = getattr(fast, f), getattr(slow, f)
            assert a.dtype == b.dtype, f
            np.testing.assert_array_equal(a, b, err_msg=f)
        if segments == "mss" and "tso" in trace:
            assert fast.nseg.max() > 1  # super-segments were split: the comparison covers that path


def test_saturation_passes_reading_the_file_do_not_hash_it_again(bundled_traces, monkeypatch):
    import pipeline.ingest
    from pipeline.ingest.source import file_sha256

    f = bundled_traces / "iperf3_mtu1500_3guests_snap96.pcap"
    opened = []
    real = pipeline.ingest.open_trace

    def spy(path, **kw):
        opened.append(kw.get("sha256", False))
        return real(path, **kw)

    monkeypatch.setattr(pipeline.ingest, "open_trace", spy)
    res, _ = _run(f, threads=2, chunk_packets=3000, cache_packets=0)
    assert len(opened) >= 3  # the main pass and at least two saturation passes read the file
    assert opened[0] and not any(opened[1:])  # hashed while first read, only then
    assert res.trace["sha256"] == file_sha256(f)
