"""decode_fields on hand-built packets: one test per edge the decoder distinguishes."""

from __future__ import annotations

import ipaddress
import struct

import numpy as np
import pytest

from pipeline.ingest.columns import PACKET_COLUMNS
from pipeline.ingest.decode import DECODED_COLUMNS, decode_fields

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
V4_A, V4_B = "192.168.0.1", "10.1.2.3"
V6_A, V6_B = "2001:db8::1", "2001:db8:0:1::2"


# --- builders ---------------------------------------------------------------------------------------

def eth(payload: bytes, ethertype: int = 0x0800, tags: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet II; ``tags`` = ((tpid, vid), ...) outermost first."""
    types = [t for t, _ in tags] + [ethertype]
    out = MAC_B + MAC_A + struct.pack(">H", types[0])
    for k, (_, vid) in enumerate(tags):
        out += struct.pack(">HH", (5 << 13) | vid, types[k + 1])
    return out + payload


def ipv4(payload: bytes, proto: int = 6, total_len: int | None = None, options: bytes = b"",
         frag_off8: int = 0, more_fragments: bool = False, src: str = V4_A, dst: str = V4_B) -> bytes:
    ihl = 5 + len(options) // 4
    total = ihl * 4 + len(payload) if total_len is None else total_len
    flags = (0x2000 if more_fragments else 0) | frag_off8
    return (struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, flags, 64, proto, 0,
                        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
            + options + payload)


def ipv6(payload: bytes, nxt: int = 6, plen: int | None = None, src: str = V6_A, dst: str = V6_B) -> bytes:
    return (struct.pack(">IHBB", 6 << 28, len(payload) if plen is None else plen, nxt, 64)
            + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + payload)


def ext(nxt: int, body_len8: int) -> bytes:
    """Hop-by-hop / routing / destination options header of (body_len8 + 1) * 8 bytes (PadN filled)."""
    size = (body_len8 + 1) * 8
    return struct.pack(">BBBB", nxt, body_len8, 1, size - 4) + b"\0" * (size - 4)


def frag6(nxt: int, offset8: int, more: bool = True) -> bytes:
    return struct.pack(">BBHI", nxt, 0, (offset8 << 3) | int(more), 0x1234)


def tcp(payload: bytes = b"", sport: int = 40000, dport: int = 443, flags: int = 0x18,
        doff: int = 5, ns: bool = False) -> bytes:
    opts = b"\x01" * (doff * 4 - 20) if doff >= 5 else b""
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 2, (doff << 4) | int(ns), flags, 65535, 0, 0) + opts + payload


def udp(payload: bytes = b"", sport: int = 5353, dport: int = 53, ulen: int | None = None) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload) if ulen is None else ulen, 0) + payload


def v4_lo(addr: str) -> int:
    return 0xFFFF_0000_0000 | int(ipaddress.IPv4Address(addr))


def v6_halves(addr: str) -> tuple[int, int]:
    v = int(ipaddress.IPv6Address(addr))
    return v >> 64, v & (2**64 - 1)


def decode_one(pkt: bytes, linktype: int = 1, wire_len: int | None = None,
               cap_len: int | None = None) -> dict[str, int]:
    """Decode one packet (optionally snaplen-cut to ``cap_len``), surrounded by junk bytes so a read
    outside the packet would show up in the fields."""
    cap = len(pkt) if cap_len is None else cap_len
    junk = b"\xab" * 64
    buf = np.frombuffer(junk + pkt[:cap] + junk, dtype=np.uint8)
    out = decode_fields(buf, np.array([len(junk)], np.int64), np.array([cap], np.uint32),
                        np.array([len(pkt) if wire_len is None else wire_len], np.uint32),
                        np.array([linktype], np.uint16))
    return {k: int(v[0]) for k, v in out.items()}


# --- dtypes and shape ------------------------------------------------------------------------------------

def test_returns_exactly_the_decoded_columns_with_their_dtypes() -> None:
    framing = {"ts_ns", "wire_len", "cap_len", "interface", "linktype"}
    pkt = eth(ipv4(tcp(b"x" * 10)))
    buf = np.frombuffer(pkt * 3, dtype=np.uint8)
    out = decode_fields(buf, np.array([0, len(pkt), 2 * len(pkt)], np.int64),
                        np.full(3, len(pkt), np.uint32), np.full(3, len(pkt), np.uint32),
                        np.ones(3, np.uint16))
    assert list(out) == list(DECODED_COLUMNS) == [c for c in PACKET_COLUMNS if c not in framing]
    for name, arr in out.items():
        assert arr.dtype == PACKET_COLUMNS[name][0] and arr.shape == (3,), name
    assert (out["payload_len"] == 10).all()


def test_empty_input() -> None:
    out = decode_fields(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.uint32),
                        np.zeros(0, np.uint32), np.zeros(0, np.uint16))
    assert all(a.shape == (0,) and a.dtype == PACKET_COLUMNS[k][0] for k, a in out.items())


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        decode_fields(np.zeros(10, np.uint8), np.zeros(2, np.int64), np.zeros(1, np.uint32),
                      np.zeros(2, np.uint32), np.zeros(2, np.uint16))


# --- link layers --------------------------------------------------------------------------------------

def test_plain_ethernet_ipv4_tcp_all_fields() -> None:
    r = decode_one(eth(ipv4(tcp(b"p" * 100, flags=0x12))))
    assert r == {"ethertype": 0x0800, "vlan_id": -1, "vlan_depth": 0,
                 "src_mac": 0x020000000001, "dst_mac": 0x020000000002, "ip_version": 4,
                 "src_ip_hi": 0, "src_ip_lo": v4_lo(V4_A), "dst_ip_hi": 0, "dst_ip_lo": v4_lo(V4_B),
                 "ip_proto": 6, "src_port": 40000, "dst_port": 443, "tcp_flags": 0x12,
                 "ip_total_len": 140, "payload_len": 100}


@pytest.mark.parametrize("tags, vlan_id, depth", [
    (((0x8100, 42),), 42, 1),
    (((0x88A8, 100), (0x8100, 200)), 100, 2),                     # 802.1ad QinQ
    (((0x9100, 7), (0x8100, 8), (0x8100, 9)), 7, 3),              # legacy QinQ, three deep
    (((0x9200, 4095), (0x88A8, 1)), 4095, 2),
])
def test_vlan_tags_any_depth(tags, vlan_id, depth) -> None:
    r = decode_one(eth(ipv6(udp(b"q" * 30), nxt=17), ethertype=0x86DD, tags=tags))
    assert (r["vlan_id"], r["vlan_depth"], r["ethertype"]) == (vlan_id, depth, 0x86DD)
    assert (r["ip_version"], r["ip_proto"], r["dst_port"], r["payload_len"]) == (6, 17, 53, 30)
    assert (r["src_ip_hi"], r["src_ip_lo"]) == v6_halves(V6_A)


def test_vlan_tag_cut_by_snaplen_is_not_counted() -> None:
    pkt = eth(ipv4(tcp()), tags=((0x88A8, 10), (0x8100, 20)))
    r = decode_one(pkt, cap_len=14 + 4 + 2)          # second tag only half captured
    assert (r["vlan_id"], r["vlan_depth"], r["ethertype"], r["ip_version"]) == (10, 1, 0x8100, 0)


def test_ethernet_cut_before_type_keeps_captured_macs() -> None:
    r = decode_one(eth(ipv4(tcp())), cap_len=10)
    assert (r["dst_mac"], r["src_mac"], r["ethertype"], r["ip_version"]) == (0x020000000002, 0, 0, 0)


def test_802_3_length_field_is_no_ethertype() -> None:
    llc = b"\x42\x42\x03" + b"\0" * 35
    r = decode_one(MAC_B + MAC_A + struct.pack(">H", len(llc)) + llc)
    assert (r["ethertype"], r["ip_version"], r["src_mac"]) == (0, 0, 0x020000000001)


def test_linux_sll_v1() -> None:
    hdr = struct.pack(">HHH", 0, 1, 6) + MAC_A + b"\0\0" + struct.pack(">H", 0x86DD)
    r = decode_one(hdr + ipv6(tcp(b"z" * 5)), linktype=113)
    assert (r["src_mac"], r["dst_mac"], r["ethertype"], r["ip_version"]) == (0x020000000001, 0, 0x86DD, 6)
    assert (r["ip_total_len"], r["payload_len"], r["dst_port"]) == (65, 5, 443)


def test_linux_sll2() -> None:
    hdr = struct.pack(">HHIHBB", 0x0800, 0, 3, 1, 4, 6) + MAC_B + b"\0\0"
    r = decode_one(hdr + ipv4(udp(b"d" * 12), proto=17), linktype=276)
    assert (r["src_mac"], r["ethertype"], r["ip_version"], r["ip_proto"]) == (0x020000000002, 0x0800, 4, 17)
    assert (r["src_port"], r["payload_len"], r["ip_total_len"]) == (5353, 12, 40)


def test_linux_sll2_with_vlan_tag() -> None:
    hdr = struct.pack(">HHIHBB", 0x8100, 0, 3, 1, 0, 6) + MAC_B + b"\0\0"
    r = decode_one(hdr + struct.pack(">HH", 33, 0x0800) + ipv4(tcp()), linktype=276)
    assert (r["vlan_id"], r["vlan_depth"], r["ethertype"], r["ip_version"]) == (33, 1, 0x0800, 4)


@pytest.mark.parametrize("linktype, header, version", [
    (0, struct.pack("<I", 2), 4),            # NULL, little-endian writer
    (0, struct.pack(">I", 2), 4),            # NULL, big-endian writer
    (0, struct.pack("<I", 24), 6),
    (0, struct.pack(">I", 28), 6),
    (0, struct.pack("<I", 30), 6),
    (108, struct.pack(">I", 2), 4),          # LOOP: network order
    (108, struct.pack(">I", 30), 6),
])
def test_null_and_loop_families(linktype, header, version) -> None:
    inner = ipv4(tcp(b"n" * 9)) if version == 4 else ipv6(tcp(b"n" * 9))
    r = decode_one(header + inner, linktype=linktype)
    assert (r["ip_version"], r["ethertype"], r["payload_len"]) == (version, 0x0800 if version == 4 else 0x86DD, 9)
    assert r["src_mac"] == r["dst_mac"] == 0


@pytest.mark.parametrize("linktype, header", [
    (108, struct.pack("<I", 2)),             # LOOP is network order only
    (0, struct.pack("<I", 7)),               # not an IP family
    (0, bytes.fromhex("0f000800")),          # a C-HDLC header in a NULL file
])
def test_null_and_loop_non_ip(linktype, header) -> None:
    r = decode_one(header + ipv4(tcp()), linktype=linktype)
    assert (r["ip_version"], r["ethertype"], r["src_ip_lo"], r["src_port"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("linktype", [12, 14, 101, 228, 229])
@pytest.mark.parametrize("version", [4, 6])
def test_raw_ip_version_nibble_decides(linktype, version) -> None:
    """LINKTYPE_IPV4 holding IPv6 (malformed/tcpdump_linktype_ipv4_holding_ipv6.pcap) decodes as IPv6."""
    pkt = ipv4(udp(b"r" * 3), proto=17) if version == 4 else ipv6(udp(b"r" * 3), nxt=17)
    r = decode_one(pkt, linktype=linktype)
    assert (r["ip_version"], r["ethertype"], r["ip_proto"], r["payload_len"]) == (
        version, 0x0800 if version == 4 else 0x86DD, 17, 3)


def test_raw_ip_with_other_nibble_is_not_decoded() -> None:
    r = decode_one(b"\x50" + ipv4(tcp())[1:], linktype=101)
    assert (r["ip_version"], r["ethertype"]) == (0, 0)


@pytest.mark.parametrize("linktype", [9, 10, 104, 105, 127, 253])
def test_unsupported_link_types_decode_to_zeros(linktype) -> None:
    r = decode_one(eth(ipv4(tcp())), linktype=linktype)
    assert r == {**{k: 0 for k in DECODED_COLUMNS}, "vlan_id": -1}


def test_mpls_label_stack_then_ipv4() -> None:
    labels = struct.pack(">II", (16 << 12) | 64, (17 << 12) | 0x100 | 64)   # bottom-of-stack on the 2nd
    r = decode_one(eth(labels + ipv4(udp(b"m" * 4), proto=17), ethertype=0x8847))
    assert (r["ethertype"], r["ip_version"], r["ip_proto"], r["payload_len"]) == (0x8847, 4, 17, 4)


def test_mpls_stack_cut_before_bottom_or_pseudowire_is_not_decoded() -> None:
    labels = struct.pack(">II", (16 << 12) | 64, (17 << 12) | 0x100 | 64)
    pkt = eth(labels + ipv4(udp(), proto=17), ethertype=0x8847)
    assert decode_one(pkt, cap_len=14 + 4)["ip_version"] == 0
    pseudowire = eth(labels + b"\0\0\0\0" + eth(ipv4(tcp())), ethertype=0x8847)
    assert (decode_one(pseudowire)["ip_version"], decode_one(pseudowire)["ethertype"]) == (0, 0x8847)


# --- IPv4 -------------------------------------------------------------------------------------------------

def test_ipv4_options_move_the_l4_header() -> None:
    r = decode_one(eth(ipv4(tcp(b"o" * 7, sport=1, dport=2), options=b"\x01\x01\x01\x00" * 2)))
    assert (r["src_port"], r["dst_port"], r["ip_total_len"], r["payload_len"]) == (1, 2, 28 + 20 + 7, 7)


def test_ipv4_ihl_below_5_is_not_decoded() -> None:
    pkt = bytearray(eth(ipv4(tcp())))
    pkt[14] = 0x44
    r = decode_one(bytes(pkt))
    assert (r["ethertype"], r["ip_version"], r["src_ip_lo"], r["ip_total_len"]) == (0x0800, 0, 0, 0)


def test_ethertype_and_version_nibble_must_agree() -> None:
    assert decode_one(eth(ipv6(tcp()), ethertype=0x0800))["ip_version"] == 0
    assert decode_one(eth(ipv4(tcp()), ethertype=0x86DD))["ip_version"] == 0


def test_ipv4_fixed_header_cut_is_not_decoded() -> None:
    r = decode_one(eth(ipv4(tcp())), cap_len=14 + 19)
    assert (r["ethertype"], r["ip_version"], r["dst_ip_lo"]) == (0x0800, 0, 0)


def test_ipv4_fragments_only_the_first_has_ports() -> None:
    # the first fragment counts its own 1472 payload bytes, not the 3000 of the UDP length
    first = decode_one(eth(ipv4(udp(b"f" * 1472, ulen=3008), proto=17, more_fragments=True)))
    assert (first["src_port"], first["dst_port"], first["payload_len"]) == (5353, 53, 1472)
    whole = decode_one(eth(ipv4(udp(b"f" * 1472, ulen=1480), proto=17)))
    assert whole["payload_len"] == 1472
    later = decode_one(eth(ipv4(b"g" * 1000, proto=17, frag_off8=185)))
    assert (later["ip_proto"], later["src_port"], later["dst_port"], later["tcp_flags"]) == (17, 0, 0, 0)
    assert (later["ip_total_len"], later["payload_len"]) == (1020, 1000)
    later_tcp = decode_one(eth(ipv4(tcp(b"h" * 60)[4:], proto=6, frag_off8=1)))
    assert (later_tcp["src_port"], later_tcp["tcp_flags"], later_tcp["payload_len"]) == (0, 0, 76)


@pytest.mark.parametrize("tags, l2", [((), 14), (((0x8100, 5),), 18)])
def test_tso_ipv4_total_length_zero_derived_from_wire_len(tags, l2) -> None:
    """BIG TCP / TSO (bulk_tcp/tcpdump_bigtcp_ipv4.pcap): a 0 total length means wire_len - L2."""
    pkt = eth(ipv4(tcp(b"t" * 200, doff=8), total_len=0), tags=tags)
    r = decode_one(pkt, wire_len=l2 + 20 + 32 + 80000, cap_len=l2 + 20 + 32 + 10)
    assert (r["ip_total_len"], r["payload_len"], r["dst_port"]) == (20 + 32 + 80000, 80000, 443)


def test_snaplen_cut_payload_from_header_fields() -> None:
    pkt = eth(ipv4(tcp(b"s" * 1448, doff=8)))
    r = decode_one(pkt, cap_len=96)
    assert (r["ip_total_len"], r["payload_len"], r["tcp_flags"]) == (1500, 1448, 0x18)


def test_total_length_beyond_wire_len_is_trusted() -> None:
    r = decode_one(eth(ipv4(tcp(b"x" * 10), total_len=9000)))
    assert (r["ip_total_len"], r["payload_len"]) == (9000, 9000 - 40)


def test_ethernet_padding_is_not_read_as_l4() -> None:
    """60-byte minimum frames: bytes after the IP datagram are padding, never a header."""
    pure_ack = eth(ipv4(tcp(flags=0x10))) + b"\xff" * 6
    r = decode_one(pure_ack)
    assert (r["payload_len"], r["tcp_flags"], r["ip_total_len"]) == (0, 0x10, 40)
    no_l4 = eth(ipv4(b"", proto=6)) + b"\x12\x34\x56\x78" * 7        # TCP claimed, datagram ends
    r = decode_one(no_l4)
    assert (r["ip_proto"], r["src_port"], r["dst_port"], r["payload_len"]) == (6, 0, 0, 0)


# --- TCP / UDP --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cap_tcp, ports, flags, payload", [
    (0, (0, 0), 0, 1032 - 20),        # nothing of TCP: 20-byte header assumed (IP payload 1032)
    (3, (0, 0), 0, 1032 - 20),
    (4, (40000, 443), 0, 1032 - 20),  # ports only
    (12, (40000, 443), 0, 1032 - 20),
    (13, (40000, 443), 0, 1000),      # data offset byte (8 -> 32 bytes) there, flags byte not
    (14, (40000, 443), 0x18, 1000),   # data offset and flags read
])
def test_truncated_tcp_header(cap_tcp, ports, flags, payload) -> None:
    """malformed/zeek_snaplen68_truncated_tcp_hdr.pcap cuts TCP headers mid-options; here the cut
    goes further. Rule: what was captured is used; a data offset not captured means 20 bytes."""
    pkt = eth(ipv4(tcp(b"u" * 1000, doff=8)))
    r = decode_one(pkt, cap_len=14 + 20 + cap_tcp)
    assert ((r["src_port"], r["dst_port"]), r["tcp_flags"], r["payload_len"]) == (ports, flags, payload)
    assert r["ip_total_len"] == 20 + 32 + 1000


def test_tcp_flags_include_ns() -> None:
    r = decode_one(eth(ipv4(tcp(flags=0xC2, ns=True))))       # CWR|ECE|SYN + NS
    assert r["tcp_flags"] == 0x1C2


def test_tcp_invalid_data_offset_assumes_20() -> None:
    r = decode_one(eth(ipv4(tcp(b"i" * 30, doff=2))))
    assert (r["src_port"], r["tcp_flags"], r["payload_len"]) == (40000, 0x18, 30)


def test_payload_never_negative() -> None:
    r = decode_one(eth(ipv4(tcp(doff=15), total_len=30)))
    assert r["payload_len"] == 0
    r = decode_one(eth(ipv4(udp(ulen=3), proto=17)))
    assert r["payload_len"] == 0


@pytest.mark.parametrize("ulen, cap_udp, payload", [
    (8 + 500, 8, 500),        # UDP length field
    (0, 8, 500),              # 0 (e.g. jumbogram / GSO): IP payload - 8
    (8 + 500, 4, 500),        # length not captured: IP payload - 8
])
def test_udp_payload(ulen, cap_udp, payload) -> None:
    pkt = eth(ipv4(udp(b"v" * 500, ulen=ulen), proto=17))
    r = decode_one(pkt, cap_len=14 + 20 + cap_udp)
    assert (r["src_port"], r["dst_port"], r["payload_len"]) == (5353, 53, payload)


def test_other_protocols_payload_is_ip_payload() -> None:
    icmp = decode_one(eth(ipv4(b"\x08\0" + b"\0" * 62, proto=1)))
    assert (icmp["ip_proto"], icmp["payload_len"], icmp["src_port"]) == (1, 64, 0)
    gre = decode_one(eth(ipv6(b"\0" * 100, nxt=47), ethertype=0x86DD))
    assert (gre["ip_proto"], gre["payload_len"], gre["ip_total_len"]) == (47, 100, 140)


# --- IPv6 extension headers and jumbograms -------------------------------------------------------------

def test_ipv6_extension_header_chain() -> None:
    body = ext(43, 0) + ext(44, 2) + frag6(60, 0) + ext(6, 1) + tcp(b"e" * 77, doff=6)
    r = decode_one(eth(ipv6(body, nxt=0), ethertype=0x86DD))
    assert (r["ip_proto"], r["src_port"], r["dst_port"]) == (6, 40000, 443)
    assert (r["ip_total_len"], r["payload_len"]) == (40 + len(body), 77)


def test_ipv6_authentication_header() -> None:
    ah = struct.pack(">BBHII", 17, 4, 0, 1, 1) + b"\0" * 12          # (4 + 2) * 4 = 24 bytes
    r = decode_one(eth(ipv6(ah + udp(b"a" * 11), nxt=51), ethertype=0x86DD))
    assert (r["ip_proto"], r["dst_port"], r["payload_len"]) == (17, 53, 11)


def test_ipv6_esp_ends_the_walk() -> None:
    r = decode_one(eth(ipv6(b"\0" * 64, nxt=50), ethertype=0x86DD))
    assert (r["ip_proto"], r["src_port"], r["payload_len"]) == (50, 0, 64)


def test_ipv6_first_fragment_udp_counts_its_own_bytes() -> None:
    body = frag6(17, 0, more=True) + udp(b"y" * 1000, ulen=8 + 2500)
    r = decode_one(eth(ipv6(body, nxt=44), ethertype=0x86DD))
    assert (r["ip_proto"], r["dst_port"], r["payload_len"]) == (17, 53, 1000)


def test_ipv6_non_first_fragment_has_no_ports() -> None:
    body = frag6(6, 181, more=False) + b"w" * 400
    r = decode_one(eth(ipv6(body, nxt=44), ethertype=0x86DD))
    assert (r["ip_proto"], r["src_port"], r["dst_port"], r["tcp_flags"]) == (6, 0, 0, 0)
    assert r["payload_len"] == 400


@pytest.mark.parametrize("cap_ext, proto, has_ports, payload", [
    (8 + 1, 43, False, 1000 + 20 + 24),     # routing header's type known, its length not
    (8 + 2, 6, False, 1000),                # routing length read: TCP is next, TCP not captured
    (8 + 24 + 4, 6, True, 1000),
])
def test_ipv6_extension_headers_walked_as_far_as_captured(cap_ext, proto, has_ports, payload) -> None:
    body = ext(43, 0) + ext(6, 2) + tcp(b"c" * 1000)
    r = decode_one(eth(ipv6(body, nxt=0), ethertype=0x86DD), cap_len=14 + 40 + cap_ext)
    assert (r["ip_proto"], r["src_port"] != 0, r["payload_len"]) == (proto, has_ports, payload)
    assert r["ip_total_len"] == 40 + len(body)


def test_ipv6_jumbo_payload_option() -> None:
    """RFC 2675 (bulk_tcp/tcpdump_bigtcp_ipv6_hbh.pcap): payload length 0, jumbo option in HBH."""
    jumbo_len = 8 + 32 + 80000
    hbh = struct.pack(">BBBBI", 6, 0, 0xC2, 4, jumbo_len)
    pkt = eth(ipv6(hbh + tcp(b"j" * 100, doff=8), nxt=0, plen=0), ethertype=0x86DD)
    r = decode_one(pkt, wire_len=14 + 40 + jumbo_len, cap_len=14 + 40 + 8 + 32 + 10)
    assert (r["ip_total_len"], r["payload_len"], r["ip_proto"]) == (40 + jumbo_len, 80000, 6)


def test_ipv6_zero_payload_length_without_jumbo_derived_from_wire_len() -> None:
    pkt = eth(ipv6(tcp(b"k" * 100), plen=0), ethertype=0x86DD)
    r = decode_one(pkt, wire_len=14 + 40 + 20 + 64000, cap_len=200)
    assert (r["ip_total_len"], r["payload_len"]) == (40 + 20 + 64000, 64000)


# --- bounds ------------------------------------------------------------------------------------------------

def test_never_reads_past_the_buffer() -> None:
    """A cap_len running past the end of ``buf`` is clipped to the buffer."""
    pkt = eth(ipv4(tcp(b"b" * 50)))
    buf = np.frombuffer(pkt[:30], dtype=np.uint8)            # buffer ends inside the IP header
    out = decode_fields(buf, np.array([0], np.int64), np.array([len(pkt)], np.uint32),
                        np.array([len(pkt)], np.uint32), np.array([1], np.uint16))
    assert (int(out["ethertype"][0]), int(out["ip_version"][0])) == (0x0800, 0)


def test_many_packets_each_decoded_independently() -> None:
    pkts = [eth(ipv4(tcp(b"a" * k, sport=1000 + k))) for k in range(50)]
    pkts += [eth(ipv6(udp(b"b" * k, sport=2000 + k), nxt=17), ethertype=0x86DD) for k in range(50)]
    offs = np.cumsum([0] + [len(p) for p in pkts[:-1]]).astype(np.int64)
    lens = np.array([len(p) for p in pkts], np.uint32)
    out = decode_fields(np.frombuffer(b"".join(pkts), np.uint8), offs, lens, lens,
                        np.ones(len(pkts), np.uint16))
    k = np.arange(50)
    np.testing.assert_array_equal(out["payload_len"], np.concatenate([k, k]))
    np.testing.assert_array_equal(out["src_port"], np.concatenate([1000 + k, 2000 + k]))
    np.testing.assert_array_equal(out["ip_version"], np.repeat([4, 6], 50))


# --- the Ethernet/IPv4/TCP fast path agrees with the general layer walk ------------------------------

def _df(pkt_ip: bytes) -> bytes:
    """Set the IPv4 don't-fragment bit (allowed on the fast path)."""
    return pkt_ip[:6] + bytes([pkt_ip[6] | 0x40]) + pkt_ip[7:]


@pytest.mark.parametrize("ip_pkt, cap_len", [
    (ipv4(tcp(b"p" * 100)), None),
    (_df(ipv4(tcp(b"p" * 1448, doff=8))), 96),            # snaplen cut, DF set, options
    (ipv4(tcp(doff=15) + b"o" * 20), None),               # data offset 15, payload 0
    (ipv4(tcp(b"i" * 30, doff=2)), None),                 # invalid data offset: 20 assumed
    (ipv4(tcp(b"x" * 10), total_len=9000), None),         # total length beyond the capture: trusted
    (ipv4(tcp(flags=0x10)) + b"\xff" * 6, None),          # 60-byte frame with padding
    (ipv4(tcp(flags=0xC2, ns=True)), 54),                 # exactly the 54 bytes the fast path needs
    (ipv4(tcp(b"m" * 60), more_fragments=True), None),    # first fragment: general path
    (ipv4(tcp(b"h" * 60)[4:], frag_off8=1), None),        # later fragment: general path
    (ipv4(tcp(b"t" * 20), total_len=39), None),           # datagram shorter than IP + TCP headers
    (ipv4(tcp(b"z" * 8), options=b"\x01" * 4), None),      # IHL 6: general path
], ids=["plain", "df-snaplen96", "doff15", "doff2", "total9000", "padding", "cap54", "first-frag",
        "later-frag", "total39", "ihl6"])
def test_fast_path_matches_the_general_path(ip_pkt, cap_len) -> None:
    """An untagged Ethernet/IPv4/TCP packet (the kernel's fast path) decodes to the same fields as
    the same packet behind an 802.1Q tag (always the general layer walk), VLAN fields aside."""
    plain = decode_one(eth(ip_pkt), cap_len=cap_len)
    tagged = decode_one(eth(ip_pkt, tags=((0x8100, 7),)), wire_len=len(ip_pkt) + 18,
                        cap_len=None if cap_len is None else cap_len + 4)
    assert (tagged.pop("vlan_id"), tagged.pop("vlan_depth")) == (7, 1)
    assert (plain.pop("vlan_id"), plain.pop("vlan_depth")) == (-1, 0)
    assert plain == tagged
    assert plain["ip_version"] == 4 and plain["src_ip_lo"] == v4_lo(V4_A)
