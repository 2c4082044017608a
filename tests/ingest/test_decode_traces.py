"""decode_fields on the shared real captures, checked against dpkt and the manifest's counts.

Framing here is a small strict pcap/pcapng walker of the test's own (per-interface link types,
wire lengths), independent of ``pipeline.ingest.reader``; the packet bytes are cross-checked
against dpkt's ``pcap.Reader``/``pcapng.Reader``. Each packet's bytes are then decoded with
dpkt's Ethernet/SLL/SLL2/Loopback/IP/IP6/TCP/UDP classes and compared field by field with
``decode_fields``.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dpkt
import numpy as np
import pytest

from pipeline.ingest.columns import PACKET_COLUMNS
from pipeline.ingest.decode import DECODED_COLUMNS, decode_fields
from tests.conftest import MANIFEST

DECODED = DECODED_COLUMNS
MAX_CAPLEN = 262144


# --- an independent strict framing walker (test-side) -----------------------------------------

@dataclass
class Framed:
    data: bytes
    buf: np.ndarray          # uint8 view of the whole file
    data_off: np.ndarray     # int64
    cap_len: np.ndarray      # uint32
    wire_len: np.ndarray     # uint32
    linktype: np.ndarray     # uint16

    def packet(self, i: int) -> bytes:
        o = int(self.data_off[i])
        return self.data[o:o + int(self.cap_len[i])]


def frame_capture(path: Path) -> Framed:
    """Frame every complete record of a pcap/pcapng file (stops at the first damaged one)."""
    data = path.read_bytes()
    offs: list[int] = []
    caps: list[int] = []
    wires: list[int] = []
    lts: list[int] = []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xD4, 0x4D) else ">"
        linktype = struct.unpack_from(e + "I", data, 20)[0] & 0xFFFF
        pos = 24
        while pos + 16 <= len(data):
            _, _, cap, wire = struct.unpack_from(e + "IIII", data, pos)
            if cap > MAX_CAPLEN:
                break
            if pos + 16 + cap > len(data):      # data cut: keep what is there, as dpkt does
                cap = len(data) - pos - 16
            offs.append(pos + 16)
            caps.append(cap)
            wires.append(wire)
            lts.append(linktype)
            pos += 16 + cap
    elif magic == b"\x0a\x0d\x0d\x0a":
        pos = 0
        e = "<"
        ifaces: list[tuple[int, int]] = []
        while pos + 12 <= len(data):
            if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
                e = "<" if data[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                ifaces = []
            btype, blen = struct.unpack_from(e + "II", data, pos)
            if blen < 12 or pos + blen > len(data):
                break
            if btype == 1:                                   # IDB
                lt, _, snap = struct.unpack_from(e + "HHI", data, pos + 8)
                ifaces.append((lt, snap))
            elif btype == 6:                                 # EPB
                iface, _, _, cap, wire = struct.unpack_from(e + "IIIII", data, pos + 8)
                offs.append(pos + 28)
                caps.append(cap)
                wires.append(wire)
                lts.append(ifaces[iface][0])
            elif btype == 2:                                 # obsolete Packet Block
                iface, _, _, _, cap, wire = struct.unpack_from(e + "HHIIII", data, pos + 8)
                offs.append(pos + 28)
                caps.append(cap)
                wires.append(wire)
                lts.append(ifaces[iface][0])
            elif btype == 3:                                 # SPB
                wire = struct.unpack_from(e + "I", data, pos + 8)[0]
                lt, snap = ifaces[0]
                cap = min(wire, blen - 16, snap or wire)
                offs.append(pos + 12)
                caps.append(cap)
                wires.append(wire)
                lts.append(lt)
            pos += blen
    else:
        raise ValueError(f"{path}: not a pcap/pcapng file")
    return Framed(data, np.frombuffer(data, dtype=np.uint8), np.array(offs, dtype=np.int64),
                  np.array(caps, dtype=np.uint32), np.array(wires, dtype=np.uint32),
                  np.array(lts, dtype=np.uint16))


def dpkt_packets(path: Path) -> list[bytes]:
    with open(path, "rb") as f:
        magic = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        return [bytes(buf) for _, buf in reader]


# --- expected fields from dpkt's own decoding ---------------------------------------------------

VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
MPLS = (0x8847, 0x8848)


def _ports_rule(l4: bytes, proto: int, ip_payload: int) -> tuple[int, int, int, int]:
    """Where dpkt cannot decode a TCP/UDP header (cut by the snaplen, or a TCP data offset < 5;
    dpkt then leaves the raw bytes), the rule is: ports when their 4 bytes were captured; TCP flags when byte 13 was
    captured; a 20-byte TCP header assumed when the data offset is not captured or < 5; UDP payload
    from the UDP length when captured (>= 8), else IP payload - 8."""
    sport = dport = flags = 0
    if len(l4) >= 4:
        sport, dport = struct.unpack_from(">HH", l4, 0)
    if proto == 6:
        hl = 20
        if len(l4) >= 13 and l4[12] >> 4 >= 5:
            hl = (l4[12] >> 4) * 4
        if len(l4) >= 14:
            flags = struct.unpack_from(">H", l4, 12)[0] & 0x1FF
        return sport, dport, flags, max(ip_payload - hl, 0)
    ulen = struct.unpack_from(">H", l4, 4)[0] if len(l4) >= 6 else 0
    return sport, dport, 0, ulen - 8 if ulen >= 8 else max(ip_payload - 8, 0)


def dpkt_expected(pkt: bytes, linktype: int, wire_len: int) -> tuple[dict[str, int], str]:
    """The decoded fields of one packet according to dpkt, and a note on the rule applied when
    dpkt itself could not decode part of it (``""`` when dpkt decoded everything)."""
    x = {c: 0 for c in DECODED}
    x["vlan_id"] = -1
    note = ""
    l3 = None
    l2_len = 0
    if linktype == 1:
        if len(pkt) < 14:               # dpkt raises NeedData: MACs that were captured, nothing else
            if len(pkt) >= 6:
                x["dst_mac"] = int.from_bytes(pkt[0:6], "big")
            if len(pkt) >= 12:
                x["src_mac"] = int.from_bytes(pkt[6:12], "big")
            return x, "ethernet header cut"
        eth = dpkt.ethernet.Ethernet(pkt)
        x["dst_mac"] = int.from_bytes(eth.dst, "big")
        x["src_mac"] = int.from_bytes(eth.src, "big")
        tags = getattr(eth, "vlan_tags", None) or []
        if tags:
            x["vlan_id"] = tags[0].id
            x["vlan_depth"] = len(tags)
            et = tags[-1].type
            assert et not in VLAN_TPIDS, "more than 2 VLAN tags: dpkt stops at 2"
        else:
            et = eth.type
        x["ethertype"] = et if et >= 0x0600 else 0
        l2_len = 14 + 4 * len(tags)
        l3 = eth.data
        if et in MPLS:
            # both skip the label stack and guess IP from the next byte; dpkt decodes a
            # pseudowire Ethernet (control word) inside, which we leave undecoded
            l2_len += 4 * len(eth.mpls_labels)
            if isinstance(l3, dpkt.ethernet.Ethernet):
                return x, "mpls pseudowire"
    elif linktype in (113, 276):
        cooked = dpkt.sll.SLL(pkt) if linktype == 113 else dpkt.sll2.SLL2(pkt)
        if cooked.hlen == 6:
            x["src_mac"] = int.from_bytes(cooked.hdr[:6], "big")
        x["ethertype"] = cooked.ethtype if cooked.ethtype >= 0x0600 else 0
        l2_len = 16 if linktype == 113 else 20
        l3 = cooked.data
    elif linktype in (0, 108):
        lo = dpkt.loopback.Loopback(pkt)
        x["ethertype"] = {2: 0x0800, 24: 0x86DD, 28: 0x86DD, 30: 0x86DD}.get(lo.family, 0)
        l2_len = 4
        l3 = lo.data
    elif linktype in (12, 14, 101, 228, 229):
        nibble = pkt[0] >> 4 if pkt else 0
        if nibble == 4:
            x["ethertype"], l3 = 0x0800, dpkt.ip.IP(pkt)
        elif nibble == 6:
            x["ethertype"], l3 = 0x86DD, dpkt.ip6.IP6(pkt)
    else:
        return x, "unsupported link type"

    derived_total = max(wire_len - l2_len, 0)
    if isinstance(l3, dpkt.ip.IP) and x["ethertype"] in (0x0800, *MPLS) and l3.v == 4:
        x["ip_version"] = 4
        x["src_ip_lo"] = 0xFFFF_0000_0000 | int.from_bytes(l3.src, "big")
        x["dst_ip_lo"] = 0xFFFF_0000_0000 | int.from_bytes(l3.dst, "big")
        x["ip_proto"] = l3.p
        total = l3.len or derived_total
        hdr = l3.hl * 4
        later = l3.offset != 0
        first_fragment = l3.offset == 0 and bool(l3.mf)
    elif isinstance(l3, dpkt.ip6.IP6) and x["ethertype"] in (0x86DD, *MPLS) and l3.v == 6:
        x["ip_version"] = 6
        for name, raw in (("src", l3.src), ("dst", l3.dst)):
            x[f"{name}_ip_hi"] = int.from_bytes(raw[:8], "big")
            x[f"{name}_ip_lo"] = int.from_bytes(raw[8:], "big")
        x["ip_proto"] = l3.p
        exts = l3.all_extension_headers
        hdr = 40 + sum(ext.length for ext in exts)
        total = 40 + l3.plen if l3.plen else derived_total
        if not l3.plen and 0 in l3.extension_hdrs:
            jumbo = [o for o in l3.extension_hdrs[0].options if o["type"] == 0xC2]
            if jumbo:
                total = 40 + int.from_bytes(jumbo[0]["data"], "big")
        frag = l3.extension_hdrs.get(44)
        later = frag is not None and frag.frag_off > 0
        first_fragment = frag is not None and frag.frag_off == 0 and bool(frag.m_flag)
    else:
        if l3 is not None and not isinstance(l3, (bytes, dpkt.Packet)):
            raise AssertionError(type(l3))
        if isinstance(l3, bytes) and x["ethertype"] in (0x0800, 0x86DD) and len(l3) >= 1:
            note = "dpkt could not decode the IP header"
        return x, note

    x["ip_total_len"] = total
    ip_payload = max(total - hdr, 0)
    l4 = l3.data
    if later:
        x["payload_len"] = ip_payload
    elif isinstance(l4, dpkt.tcp.TCP):
        x["src_port"], x["dst_port"], x["tcp_flags"] = l4.sport, l4.dport, l4.flags
        x["payload_len"] = max(ip_payload - l4.off * 4, 0)
    elif isinstance(l4, dpkt.udp.UDP):
        x["src_port"], x["dst_port"] = l4.sport, l4.dport
        # a first fragment carries only part of the datagram the UDP length describes
        x["payload_len"] = (l4.ulen - 8 if l4.ulen >= 8 and not first_fragment
                            else max(ip_payload - 8, 0))
    elif x["ip_proto"] in (6, 17):
        raw = bytes(l4)
        x["src_port"], x["dst_port"], x["tcp_flags"], x["payload_len"] = _ports_rule(
            raw, x["ip_proto"], ip_payload)
        note = "dpkt rejects the TCP/UDP header"
    else:
        x["payload_len"] = ip_payload
    return x, note


def dpkt_expected_columns(fr: Framed) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Expected columns for every framed packet, and how often each dpkt-fallback rule applied."""
    n = len(fr.data_off)
    rows = {c: np.zeros(n, dtype=np.int64) for c in DECODED}
    rows_u = {c: np.zeros(n, dtype=np.uint64) for c in ("src_mac", "dst_mac", "src_ip_hi", "src_ip_lo",
                                                         "dst_ip_hi", "dst_ip_lo")}
    notes: dict[str, int] = {}
    for i in range(n):
        x, note = dpkt_expected(fr.packet(i), int(fr.linktype[i]), int(fr.wire_len[i]))
        if note:
            notes[note] = notes.get(note, 0) + 1
        for c, v in x.items():
            (rows_u if c in rows_u else rows)[c][i] = v
    rows.update(rows_u)
    return rows, notes


# --- which captures, and what is known about them -----------------------------------------------

#: files the test-side walker cannot frame (no capture inside, or zstd-compressed)
UNFRAMABLE = {"malformed/derived_short_file_header.pcap", "malformed/derived_zero_length.pcap",
              "malformed/ppp_pcapng_zstd_compressed.pcapng.zst"}
FRAMABLE = [e["file"] for e in MANIFEST if e["file"] not in UNFRAMABLE]
SLOW_PACKETS = 10_000

#: packets per file where dpkt's decoding stops short and the stated rule decides instead
DPKT_FALLBACKS: dict[str, dict[str, int]] = {
    "linktypes/ppp_big_endian_netlink.pcap": {"unsupported link type": 13},
    "linktypes/suricata_chdlc_http.pcap": {"unsupported link type": 17},
    "linktypes/suricata_ppp_ipv6_frag.pcap": {"unsupported link type": 3},
    "linktypes/zeek_fddi_llc.pcap": {"unsupported link type": 1333},
    "malformed/scapy_trailing_byte_80211.pcap": {"unsupported link type": 1},
    "malformed/tcpdump_snaplen4.pcap": {"unsupported link type": 26},
    # fuzzed: TCP data offset 0, dpkt raises UnpackError; we keep ports/flags, assume 20 bytes
    "malformed/suricata_bogus_caplen_1.4G.pcap": {"dpkt rejects the TCP/UDP header": 1},
    # one 13-byte frame: dpkt raises NeedData; we keep the captured MACs
    "mixed/ndpi_gnutella.pcap": {"ethernet header cut": 1},
    "mixed/tcpreplay_test.pcap": {"mpls pseudowire": 10},
}


def _params(files: list[str]) -> list:
    by_file = {e["file"]: e for e in MANIFEST}
    return [pytest.param(f, id=f, marks=[pytest.mark.slow] if by_file[f]["packets"] > SLOW_PACKETS else [])
            for f in files]


@pytest.fixture(scope="module")
def framed_cache():
    return {}


def _framed(shared_traces: Path, rel: str, cache: dict) -> tuple[Framed, dict[str, np.ndarray]]:
    if rel not in cache:
        fr = frame_capture(shared_traces / rel)
        cache[rel] = (fr, decode_fields(fr.buf, fr.data_off, fr.cap_len, fr.wire_len, fr.linktype))
    return cache[rel]


# --- field-by-field agreement with dpkt ---------------------------------------------------------

@pytest.mark.parametrize("rel", _params(FRAMABLE))
def test_fields_match_dpkt(shared_traces: Path, rel: str, framed_cache: dict) -> None:
    """Every packet, every decoded field, against dpkt's own decoding of the same bytes."""
    fr, got = _framed(shared_traces, rel, framed_cache)
    entry = next(e for e in MANIFEST if e["file"] == rel)
    if entry["dpkt_ok"] and not entry.get("problems") and entry["packets"]:
        # dpkt's reader yields exactly the packets the walker framed (link types come from the
        # walker: dpkt's pcapng reader applies the first IDB's link type to every packet)
        assert dpkt_packets(shared_traces / rel) == [fr.packet(i) for i in range(len(fr.data_off))]
    expected, notes = dpkt_expected_columns(fr)
    assert notes == DPKT_FALLBACKS.get(rel, {})
    for col in DECODED:
        assert got[col].dtype == PACKET_COLUMNS[col][0], col
        diff = np.flatnonzero(got[col].astype(expected[col].dtype) != expected[col])
        assert diff.size == 0, (f"{col}: {diff.size} packets differ, first #{diff[0]}: "
                                f"got {got[col][diff[0]]}, dpkt {expected[col][diff[0]]}")


def test_fields_cover_the_interesting_cases(shared_traces: Path, framed_cache: dict) -> None:
    """The dpkt comparison above is only as good as what the captures contain: check they do hold
    the cases the decoder distinguishes (so a decoder ignoring them would have failed)."""
    seen = {"vlan": 0, "qinq": 0, "ipv6": 0, "sll": 0, "sll2": 0, "null": 0, "raw": 0, "mpls_ip": 0,
            "tso_v4": 0, "jumbo_v6": 0, "snap_cut": 0}
    for rel in ("linktypes/ppp_vlan_packets.pcap", "linktypes/tcpdump_qinq_802.1ad.pcap",
                "linktypes/ppp_linux_sll.pcap", "linktypes/ppp_linux_sll2.pcap",
                "linktypes/ppp_null_loopback.pcap", "linktypes/ppp_raw_ip_101.pcap",
                "mixed/tcpreplay_test.pcap", "bulk_tcp/tcpdump_bigtcp_ipv4.pcap",
                "bulk_tcp/tcpdump_bigtcp_ipv6_hbh.pcap", "malformed/zeek_snaplen68_truncated_tcp_hdr.pcap"):
        fr, c = _framed(shared_traces, rel, framed_cache)
        seen["vlan"] += int((c["vlan_depth"] == 1).sum())
        seen["qinq"] += int((c["vlan_depth"] == 2).sum())
        seen["ipv6"] += int((c["ip_version"] == 6).sum())
        seen["sll"] += int(((fr.linktype == 113) & (c["ip_version"] > 0)).sum())
        seen["sll2"] += int(((fr.linktype == 276) & (c["ip_version"] > 0)).sum())
        seen["null"] += int(((fr.linktype == 0) & (c["ip_version"] > 0)).sum())
        seen["raw"] += int(((fr.linktype == 101) & (c["ip_version"] > 0)).sum())
        seen["mpls_ip"] += int(((c["ethertype"] == 0x8847) & (c["ip_version"] == 4)).sum())
        seen["tso_v4"] += int(((c["ip_version"] == 4) & (c["ip_total_len"] > 65535)).sum())
        seen["jumbo_v6"] += int(((c["ip_version"] == 6) & (c["ip_total_len"] > 65575)).sum())
        seen["snap_cut"] += int(((fr.cap_len < fr.wire_len) & (c["payload_len"] > 0)).sum())
    assert [k for k, v in seen.items() if v == 0] == [], seen


# --- agreement with the manifest's independent counts -------------------------------------------

def manifest_stats(c: dict[str, np.ndarray]) -> dict:
    """The manifest's per-file counts recomputed from decoded columns (numpy only).

    Definitions that reproduce the manifest exactly: ipv4/ipv6 = packets whose IP header decoded
    (including IP under MPLS, non-first fragments included); tcp/udp/icmp = those packets by IP
    protocol (icmp: 1 or 58); other_l4 = any other protocol; mpls = ethertype 0x8847/0x8848;
    vlan_tagged = at least one tag; hosts = distinct source or destination addresses of IP
    packets; tcp_flows_dir = distinct (src, dst, sport, dport) of TCP packets; tcp_payload_total =
    sum of TCP payload_len; dominant flow = the directed TCP flow with the largest payload sum,
    with its packets (segments), packets with payload (data_segments) and largest payload_len.
    """
    v, pr = c["ip_version"], c["ip_proto"]
    ip = v > 0
    icmp = ip & ((pr == 1) | (pr == 58))
    out: dict = {
        "ipv4": int((v == 4).sum()), "ipv6": int((v == 6).sum()),
        "tcp": int((ip & (pr == 6)).sum()), "udp": int((ip & (pr == 17)).sum()),
        "icmp": int(icmp.sum()), "other_l4": int((ip & (pr != 6) & (pr != 17) & ~icmp).sum()),
        "mpls": int(((c["ethertype"] == 0x8847) | (c["ethertype"] == 0x8848)).sum()),
        "vlan_tagged": int((c["vlan_depth"] > 0).sum()),
    }
    addrs = np.concatenate([np.stack([c["src_ip_hi"][ip], c["src_ip_lo"][ip]], axis=1),
                            np.stack([c["dst_ip_hi"][ip], c["dst_ip_lo"][ip]], axis=1)])
    out["hosts"] = int(len(np.unique(addrs, axis=0))) if len(addrs) else 0
    t = ip & (pr == 6)
    keys = np.stack([c["src_ip_hi"][t], c["src_ip_lo"][t], c["dst_ip_hi"][t], c["dst_ip_lo"][t],
                     c["src_port"][t].astype(np.uint64), c["dst_port"][t].astype(np.uint64)], axis=1)
    out["tcp_flows_dir"] = int(len(np.unique(keys, axis=0))) if len(keys) else 0
    payload = c["payload_len"][t].astype(np.int64)
    out["tcp_payload_total"] = int(payload.sum())
    out["dominant_flow"] = None
    if t.any():
        _, flow = np.unique(keys, axis=0, return_inverse=True)
        flow = flow.reshape(-1)
        per_flow = np.bincount(flow, weights=payload)
        top = flow == int(np.argmax(per_flow))
        out["dominant_flow"] = {"payload_bytes": int(per_flow.max()), "segments": int(top.sum()),
                                "data_segments": int((payload[top] > 0).sum()),
                                "max_seg": int(payload[top].max())}
    return out


#: where the manifest's independent decoder and ours differ, and why (field -> (manifest, ours))
MANIFEST_DIFFERENCES: dict[str, dict[str, tuple[int, int]]] = {
    # packet 3 is a Cisco HDLC frame (0f 00 08 00 ...) pasted into a NULL file: family 0x0008000f
    # is no address family (dpkt does not decode it either); the manifest guesses IPv4
    "linktypes/ppp_null_loopback.pcap": {"ipv4": (2, 1), "udp": (2, 1), "hosts": (5, 3)},
    # fuzzed TCP header with data offset 0: the manifest counts it as other_l4 (no valid TCP
    # header); we keep ip_proto 6 and the ports
    "malformed/suricata_bogus_caplen_1.4G.pcap": {"tcp": (0, 1), "other_l4": (1, 0),
                                                   "tcp_flows_dir": (0, 1)},
}
L3_KEYS = ("ipv4", "ipv6", "tcp", "udp", "icmp", "other_l4", "mpls", "vlan_tagged")


@pytest.mark.parametrize("rel", _params([e["file"] for e in MANIFEST
                                         if e["file"] not in UNFRAMABLE and e.get("l3") is not None]))
def test_counts_match_manifest(shared_traces: Path, rel: str, framed_cache: dict) -> None:
    """Exact agreement with the manifest's independent per-file counts. Not reproduced: ``dns``
    (the manifest counts packets whose payload parses as DNS, incl. mDNS/LLMNR ports)."""
    entry = next(e for e in MANIFEST if e["file"] == rel)
    _, cols = _framed(shared_traces, rel, framed_cache)
    got = manifest_stats(cols)
    expected = {k: entry["l3"].get(k, 0) for k in L3_KEYS}
    expected.update(hosts=entry["hosts"], tcp_flows_dir=entry["tcp_flows_dir"])
    if entry.get("tcp_payload_total") is not None:
        expected["tcp_payload_total"] = entry["tcp_payload_total"]
    for key, (theirs, ours) in MANIFEST_DIFFERENCES.get(rel, {}).items():
        assert expected[key] == theirs
        expected[key] = ours
    assert {k: got[k] for k in expected} == expected
    if entry.get("dominant_flow"):
        dom = entry["dominant_flow"]
        assert got["dominant_flow"] == {k: dom[k] for k in
                                        ("payload_bytes", "segments", "data_segments", "max_seg")}


# --- the same output without the JIT --------------------------------------------------------------

NOJIT_FILES = ("mixed/tcpreplay_test.pcap", "linktypes/ppp_null_loopback.pcap",
               "linktypes/ppp_linux_sll2.pcap", "linktypes/ppp_raw_ip_101.pcap",
               "linktypes/tcpdump_qinq_802.1ad.pcap", "bulk_tcp/tcpdump_bigtcp_ipv6_hbh.pcap",
               "bulk_tcp/tcpdump_bigtcp_ipv4.pcap", "malformed/zeek_snaplen68_truncated_tcp_hdr.pcap")

_NOJIT_SCRIPT = """
import sys, numpy as np
from pipeline.ingest.decode import decode_fields
a = np.load(sys.argv[1])
out = decode_fields(a["buf"], a["data_off"], a["cap_len"], a["wire_len"], a["linktype"])
np.savez(sys.argv[2], **out)
"""


@pytest.mark.slow
def test_pure_python_mode_gives_the_same_columns(shared_traces: Path, tmp_path: Path,
                                                 framed_cache: dict) -> None:
    """NUMBA_DISABLE_JIT=1 runs the kernel as plain Python: same columns, same dtypes."""
    bufs, offs, caps, wires, lts = [], [], [], [], []
    base = 0
    for rel in NOJIT_FILES:
        fr, _ = _framed(shared_traces, rel, framed_cache)
        bufs.append(fr.buf)
        offs.append(fr.data_off + base)
        caps.append(fr.cap_len)
        wires.append(fr.wire_len)
        lts.append(fr.linktype)
        base += len(fr.buf)
    inputs = {"buf": np.concatenate(bufs), "data_off": np.concatenate(offs),
              "cap_len": np.concatenate(caps), "wire_len": np.concatenate(wires),
              "linktype": np.concatenate(lts)}
    np.savez(tmp_path / "in.npz", **inputs)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", _NOJIT_SCRIPT, str(tmp_path / "in.npz"),
                    str(tmp_path / "out.npz")], check=True, env=env, timeout=300)
    compiled = decode_fields(**inputs)
    python_mode = np.load(tmp_path / "out.npz")
    assert (compiled["ip_version"] > 0).sum() > 250
    for col in DECODED:
        assert python_mode[col].dtype == compiled[col].dtype, col
        np.testing.assert_array_equal(python_mode[col], compiled[col], err_msg=col)
