"""Framing checked packet by packet against dpkt 1.9.8, the reference (DESIGN.md section 4).

Where MANIFEST.md says dpkt reads a file right, every packet's timestamp and captured bytes must
be identical. Where it says dpkt is wrong (phantom packets from bogus caplens, a cut record returned
as a packet, the first IDB's if_tsresol or link type applied to every interface), the test shows
the reader differs from dpkt in exactly that way, and agrees with the independent manifest.
"""

from __future__ import annotations

from pathlib import Path

import dpkt
import numpy as np
import pytest

from pipeline.errors import TraceError
from pipeline.ingest import open_trace
from tests.conftest import MANIFEST

_BY_FILE = {e["file"]: e for e in MANIFEST}

#: dpkt yields one phantom packet past a bogus record header (it never checks caplen)
PHANTOM = ["malformed/suricata_bogus_caplen_1.4G.pcap", "malformed/suricata_bad_record_hdr_tls.pcap",
           "malformed/suricata_bad_record_hdr_smtp.pcap"]
#: dpkt applies the first IDB's if_tsresol to all interfaces: (file, wrong timestamps per MANIFEST.md)
TS_WRONG = [("linktypes/ndpi_dtls_pcapng_named_pcap.pcap", 18), ("linktypes/ndpi_sites_22if.pcapng", 358),
            ("linktypes/ppp_pcapng_2if_sll_eth.pcapng", 100)]
#: dpkt reports the first IDB's link type for all packets: (file, packets on other link types)
LT_WRONG = [("linktypes/ppp_many_interfaces.pcapng", 2), ("linktypes/ppp_pcapng_2if_sll_eth.pcapng", 100)]
DPKT_WRONG = set(PHANTOM) | {f for f, _ in TS_WRONG} | {f for f, _ in LT_WRONG} | {
    "malformed/derived_cut_in_packet_data.pcap",  # dpkt returns the cut record as a short packet
    "malformed/ndpi_fuzz_nsec_bogus_caplen.pcap",  # dpkt yields 1 packet from a bogus first record
}


def dpkt_read(path: Path) -> tuple[list[tuple[float, bytes]], int | None, Exception | None]:
    """(ts, bytes) of every packet dpkt yields, its datalink, and the error it stopped with."""
    pkts: list[tuple[float, bytes]] = []
    with open(path, "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        try:
            rd = dpkt.pcapng.Reader(fh) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
        except Exception as e:  # noqa: BLE001 - dpkt raises many kinds
            return pkts, None, e
        try:
            for ts, buf in rd:
                pkts.append((float(ts), bytes(buf)))
        except Exception as e:  # noqa: BLE001
            return pkts, rd.datalink(), e
        return pkts, rd.datalink(), None


def ours(path: Path) -> tuple[list[bytes], np.ndarray, np.ndarray, np.ndarray, object]:
    """Captured bytes, ts_ns, linktype, interface per packet, and the TraceInfo."""
    data: list[bytes] = []
    ts, lt, ifc = [], [], []
    with open_trace(path) as r:
        for b in r.iter_frames():
            data.extend(b.packet_bytes(i) for i in range(len(b)))
            ts.append(b.ts_ns.copy())
            lt.append(b.linktype.copy())
            ifc.append(b.interface.copy())
        info = r.info

    def cat(xs: list, dt) -> np.ndarray:
        return np.concatenate(xs) if xs else np.zeros(0, dt)
    return data, cat(ts, np.int64), cat(lt, np.uint16), cat(ifc, np.uint32), info


def _ts_close(ts_ns: int, ts_s: float) -> bool:
    return abs(ts_ns / 1e9 - ts_s) <= 1e-6 + 1e-15 * abs(ts_s)


RIGHT = [e["file"] for e in MANIFEST
         if e["file"] not in DPKT_WRONG and e.get("dpkt_packets", 0) > 0 and e["dpkt_reader"] != "open"]


@pytest.mark.parametrize("rel", RIGHT)
def test_identical_to_dpkt_where_dpkt_is_right(rel: str, shared_traces: Path) -> None:
    path = shared_traces / rel
    ref, datalink, err = dpkt_read(path)
    data, ts, lt, _ifc, info = ours(path)
    # dpkt stops with NeedData on a cut tail after yielding the good packets: same packets
    assert len(data) == len(ref) == _BY_FILE[rel]["packets"]
    for i, (t_ref, b_ref) in enumerate(ref):
        assert data[i] == b_ref, f"packet {i}: bytes differ"
        assert _ts_close(int(ts[i]), t_ref), f"packet {i}: ts {ts[i]} vs dpkt {t_ref}"
    if datalink is not None:
        assert set(lt.tolist()) <= {datalink & 0xFFFF}
    assert info.truncated == (err is not None)


@pytest.mark.parametrize("rel", PHANTOM)
def test_no_phantom_packet_after_bogus_caplen(rel: str, shared_traces: Path) -> None:
    ref, _dl, _err = dpkt_read(shared_traces / rel)
    data, ts, _lt, _ifc, info = ours(shared_traces / rel)
    n = _BY_FILE[rel]["packets"]
    assert len(ref) == n + 1 and len(data) == n          # dpkt: one packet too many
    assert data == [b for _, b in ref[:n]]                 # the good packets are identical
    assert all(_ts_close(int(t), r) for t, (r, _) in zip(ts, ref, strict=False))
    assert info.truncated and any("bogus caplen" in w for w in info.warnings)


def test_cut_record_is_not_a_packet(shared_traces: Path) -> None:
    rel = "malformed/derived_cut_in_packet_data.pcap"
    ref, _dl, err = dpkt_read(shared_traces / rel)
    data, _ts, _lt, _ifc, info = ours(shared_traces / rel)
    assert err is None and len(ref) == 500 and len(ref[-1][1]) == 700   # dpkt: short 500th packet
    assert len(data) == 499 and data == [b for _, b in ref[:499]]
    assert info.truncated


def test_bogus_first_record_is_unusable(shared_traces: Path) -> None:
    rel = "malformed/ndpi_fuzz_nsec_bogus_caplen.pcap"
    ref, _dl, _err = dpkt_read(shared_traces / rel)
    assert len(ref) == 1  # dpkt silently yields a packet from a 524501-byte caplen record
    with pytest.raises(TraceError, match=r"bogus caplen 524501.*record 1, byte offset 24"):
        ours(shared_traces / rel)


@pytest.mark.parametrize(("rel", "n_wrong"), TS_WRONG)
def test_per_interface_ts_resolution_where_dpkt_uses_the_first(rel: str, n_wrong: int,
                                                               shared_traces: Path) -> None:
    ref, _dl, err = dpkt_read(shared_traces / rel)
    data, ts, _lt, ifc, info = ours(shared_traces / rel)
    assert err is None and len(data) == len(ref)
    assert data == [b for _, b in ref]
    wrong = {i for i, (t, (r, _)) in enumerate(zip(ts, ref, strict=True)) if not _ts_close(int(t), r)}
    assert len(wrong) == n_wrong
    # exactly the packets of interfaces whose resolution differs from the first interface's
    res = [i["ts_resolution"] for i in info.interfaces]
    other_res = {i for i, k in enumerate(ifc) if res[int(k)] != res[0]}
    assert wrong == other_res
    # and for those, dpkt's value is ours scaled by the ratio of the two resolutions
    scale = {"usec": 1e-6, "nsec": 1e-9}
    for i in sorted(wrong)[:50]:
        if ts[i] == np.iinfo(np.int64).max:
            continue  # clamped (beyond int64 ns): no exact value to compare
        k = int(ifc[i])
        expect_dpkt = ts[i] / 1e9 / scale[res[k]] * scale[res[0]]
        assert abs(expect_dpkt - ref[i][0]) <= 1e-6 * max(1.0, abs(expect_dpkt) * 1e-9)


@pytest.mark.parametrize(("rel", "n_other"), LT_WRONG)
def test_per_interface_linktype_where_dpkt_uses_the_first(rel: str, n_other: int, shared_traces: Path) -> None:
    ref, datalink, _err = dpkt_read(shared_traces / rel)
    data, _ts, lt, ifc, info = ours(shared_traces / rel)
    assert data == [b for _, b in ref]
    assert int((lt != datalink).sum()) == n_other
    per_if = np.array([i["linktype"] for i in info.interfaces])
    np.testing.assert_array_equal(lt, per_if[ifc])
