"""--as-guests: several captures as concurrent guests of one host, and the replay-layer hooks it uses
(``run_replay(..., mapping=...)`` and re-iterable chunk sources)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.batch import read_dataset, run_batch
from pipeline.batch.guests import GuestTraces
from pipeline.ingest import read_trace
from pipeline.replay import ReplayConfig, run_replay

from .conftest import link, read_table, replace_input

NUMERIC = ["packets", "frames", "wire_bytes", "payload_bytes", "cycles_total", "drops"]


@pytest.fixture
def group_dir(tmp_path, bundled_traces):
    d = tmp_path / "in" / "exp1"
    for name in ("iperf3_mtu1500_snap96.pcap", "iperf3_mtu552_snap96.pcap"):
        link(bundled_traces / name, d / name)
    return d


def test_one_member_group_equals_a_lone_replay(bundled_traces):
    path = bundled_traces / "iperf3_mtu1500_tso_snap96.pcap"
    cfg = ReplayConfig(archs=["linux", "xen"], hosts=["10.99.0.2"])
    lone = run_replay(path, cfg)
    g = GuestTraces([path], ["only"], hosts=cfg.hosts).open()
    grouped = run_replay(g, cfg, mapping=g.mapping)
    assert grouped.guest_names == ["only"] and grouped.mapping["as_guests"] is True
    a = lone.summary.replace({"guest": {"g0": "only"}})
    pd.testing.assert_frame_equal(grouped.summary, a)
    assert g.infos[0]["sha256"] == lone.trace["sha256"] and g.offset_ns == [0]


def test_members_are_time_aligned_merged_in_order_and_keep_their_own_counts(bundled_traces):
    paths = [bundled_traces / "iperf3_mtu1500_snap96.pcap", bundled_traces / "iperf3_mtu552_snap96.pcap"]
    g = GuestTraces(paths, ["a", "b"], chunk_packets=3000).open()
    chunks = list(g)
    member = np.concatenate([c.member for c in chunks])
    index = np.concatenate([c.member_index for c in chunks])
    ts = np.concatenate([c.ts_ns for c in chunks])
    originals = [read_trace(p)[0] for p in paths]
    for k, orig in enumerate(originals):
        mine = member == k
        # every packet exactly once, in its own order, shifted by the member's offset
        assert np.array_equal(index[mine], np.arange(len(orig)))
        assert np.array_equal(ts[mine], orig.ts_ns + g.offset_ns[k])
        assert ts[mine][0] == min(g.first_ts_ns)  # both start at the same instant
    assert g.offset_ns[int(np.argmin(g.first_ts_ns))] == 0
    # merged in time order (these captures' own timestamps never step back)
    assert np.all(np.diff(ts) >= 0)
    assert [c.first_index for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]))


def test_group_summary_has_one_guest_per_member_with_that_members_traffic(group_dir, bundled_traces):
    cfg = ReplayConfig(archs=["linux", "xen"], hosts=["10.99.0.2"], placement="per-guest")
    ds = group_dir.parent.parent / "ds"
    res = run_batch([group_dir.parent], ds, cfg, as_guests=True, jobs=1)
    assert res.exit_code == 0 and len(res.ok) == 1
    rec = res.ok[0]
    assert rec["trace_id"].startswith("guests_") and len(rec["inputs"]) == 2 and len(rec["guests"]) == 2
    s = read_dataset(ds)
    assert set(s.guest.astype(str)) == set(rec["guests"]) | {"all"}
    assert {c for c in s.columns if c.startswith("cpu_util_cpu")} == {"cpu_util_cpu0", "cpu_util_cpu1",
                                                                    "cpu_util_cpu2"}
    for guest, inp in zip(rec["guests"], rec["inputs"], strict=True):
        lone = run_replay(inp["path"], ReplayConfig(archs=["linux", "xen"], hosts=["10.99.0.2"])).summary
        for arch in ("linux", "xen"):
            mine = s[(s.arch == arch) & (s.guest == guest)].set_index("direction")
            theirs = lone[(lone.arch == arch) & (lone.guest == "g0")].set_index("direction")
            for col in ("packets", "frames", "wire_bytes", "payload_bytes"):
                assert (mine.loc[["rx", "tx", "all"], col].to_numpy() ==
                        theirs.loc[["rx", "tx", "all"], col].to_numpy()).all(), (arch, col)
    allrows = s[(s.guest == "all") & (s.direction == "all")].set_index("arch")
    per_guest = s[(s.guest != "all") & (s.direction == "all")].groupby("arch", observed=True)[NUMERIC].sum()
    pd.testing.assert_frame_equal(allrows[NUMERIC].sort_index(), per_guest.sort_index(), check_names=False,
                                  check_dtype=False)
    # per-packet rows name the member and the packet's index in it
    p = read_table(ds, "packets")
    for guest, inp in zip(rec["guests"], rec["inputs"], strict=True):
        mine = p[(p.arch == "linux") & (p.guest == guest)]
        assert mine.packet_index.is_unique and mine.packet_index.max() < inp["packets"]
        assert len(mine) == s[(s.arch == "linux") & (s.guest == guest) & (s.direction == "all")].packets.iloc[0]


def test_group_is_resumable_and_redone_when_a_member_changes(group_dir, bundled_traces):
    cfg = ReplayConfig(archs=["linux"], hosts=["10.99.0.2"], saturation=False)
    ds = group_dir.parent.parent / "ds"
    first = run_batch([group_dir.parent], ds, cfg, as_guests=True, jobs=1)
    again = run_batch([group_dir.parent], ds, cfg, as_guests=True, jobs=1)
    assert len(again.skipped) == 1 and not again.ok
    member = group_dir / "iperf3_mtu552_snap96.pcap"
    replace_input(member, bundled_traces / "iperf3_mtu1500_tso_snap96.pcap")
    third = run_batch([group_dir.parent], ds, cfg, as_guests=True, jobs=1)
    assert len(third.ok) == 1 and third.ok[0]["sha256"] != first.ok[0]["sha256"]
    assert len(read_table(ds, "summary")) == 3 * 3  # (2 guests + all) x 3 directions, not duplicated


def test_run_replay_iterates_a_reiterable_source_once_per_pass(bundled_traces):
    class Counting:
        def __init__(self, chunks):
            self.chunks, self.passes = chunks, 0

        def __iter__(self):
            self.passes += 1
            return iter(self.chunks)

    chunk, _ = read_trace(bundled_traces / "iperf3_mtu1500_tso_snap96.pcap")
    src = Counting([chunk])
    cfg = ReplayConfig(archs=["linux"], hosts=["10.99.0.2"], cache_packets=0)
    res = run_replay(src, cfg)
    assert src.passes >= 2  # the main pass and at least one saturation pass, no copy kept
    assert res.summary.equals(run_replay(chunk, cfg).summary)


def test_a_bad_member_fails_its_group_with_the_members_name(tmp_path, group_dir, shared_traces):
    link(shared_traces / "malformed/derived_short_file_header.pcap", group_dir / "broken.pcap")
    other = tmp_path / "in" / "exp2"
    link(group_dir / "iperf3_mtu1500_snap96.pcap", other / "only.pcap")
    res = run_batch([tmp_path / "in"], tmp_path / "ds", ReplayConfig(archs=["linux"], saturation=False),
                    as_guests=True, jobs=1)
    assert res.exit_code == 1 and len(res.ok) == 1 and len(res.failed) == 1
    assert "broken.pcap" in res.failed[0]["reason"] and "header cut short" in res.failed[0]["reason"]
    assert len(res.failed[0]["inputs"]) == 3


def test_a_group_is_hashed_on_its_first_pass_only(bundled_traces, monkeypatch):
    import pipeline.batch.guests as guests_mod
    from pipeline.ingest.source import file_sha256

    paths = [bundled_traces / "iperf3_mtu1500_snap96.pcap", bundled_traces / "iperf3_mtu552_snap96.pcap"]
    hashed: list[bool] = []
    real = guests_mod.open_trace

    def spy(path, **kw):
        hashed.append(kw.get("sha256", False))
        return real(path, **kw)

    monkeypatch.setattr(guests_mod, "open_trace", spy)
    g = GuestTraces(paths, ["a", "b"], hosts=["10.99.0.2"]).open()
    hashed.clear()  # open() reads each member's first chunk only
    run_replay(g, ReplayConfig(archs=["linux"], hosts=["10.99.0.2"], cache_packets=0), mapping=g.mapping)
    assert len(hashed) >= 2 * len(paths)  # the main pass and at least one saturation pass
    assert hashed[:len(paths)] == [True] * len(paths) and not any(hashed[len(paths):])
    assert [i["sha256"] for i in g.infos] == [file_sha256(p) for p in paths]
