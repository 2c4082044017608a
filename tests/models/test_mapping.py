"""Host/guest mapping: direction and guest per packet from --host / --guest / --guests, inference."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from pipeline.errors import OptionError
from pipeline.ingest.columns import PacketChunk
from pipeline.models.mapping import parse_address, resolve_mapping


def _ip(text: str) -> tuple[int, int]:
    a = ipaddress.ip_address(text)
    v = ((0xFFFF << 32) | int(a)) if a.version == 4 else int(a)
    return v >> 64, v & ((1 << 64) - 1)


def chunk(pkts: list[tuple[str, str, int, int]], macs: list[tuple[int, int]] | None = None) -> PacketChunk:
    """pkts: (src ip, dst ip, src port, dst port)."""
    ch = PacketChunk.empty(len(pkts))
    for i, (s, d, sp, dp) in enumerate(pkts):
        ch.src_ip_hi[i], ch.src_ip_lo[i] = _ip(s)
        ch.dst_ip_hi[i], ch.dst_ip_lo[i] = _ip(d)
        ch.ip_version[i] = 4 if "." in s else 6
        ch.src_port[i], ch.dst_port[i] = sp, dp
        ch.ip_proto[i] = 6
        ch.wire_len[i] = 100
        ch.ts_ns[i] = i
    if macs:
        for i, (sm, dm) in enumerate(macs):
            ch.src_mac[i], ch.dst_mac[i] = sm, dm
    return ch


PKTS = [("10.0.0.1", "10.0.0.2", 1, 2),   # host .2 receives
        ("10.0.0.2", "10.0.0.1", 2, 1),   # host sends
        ("10.0.0.3", "10.0.0.4", 5, 6),   # neither
        ("10.0.0.1", "10.0.0.2", 1, 2),
        ("2001:db8::1", "2001:db8::2", 7, 8)]


@pytest.mark.parametrize("host, expected", [
    ("10.0.0.2", [0, 1, -1, 0, -1]),
    ("10.0.0.0/30", [1, 1, 1, 1, -1]),        # .1-.3 all host: src match wins (tx)
    ("2001:db8::2", [-1, -1, -1, -1, 0]),
    ("2001:db8::/64", [-1, -1, -1, -1, 1]),
])
def test_host_direction(host, expected):
    m = resolve_mapping([host], [], None, None)
    d, g, key = m.classify(chunk(PKTS))
    assert d.tolist() == expected
    assert (g == 0).all()


def test_mac_host_and_remote_key():
    ch = chunk(PKTS[:2], macs=[(0xAA, 0xBB), (0xBB, 0xAA)])
    m = resolve_mapping(["00:00:00:00:00:bb"], [], None, None)
    d, _, key = m.classify(ch)
    assert d.tolist() == [0, 1]
    # the remote end (MAC 0xAA) gets the same key in both directions
    assert key[0] == key[1] and key[0] != 0


def test_guests_by_address():
    pk = [("10.0.0.1", "10.0.0.11", 1, 2), ("10.0.0.12", "10.0.0.1", 2, 1), ("10.0.0.1", "10.0.0.13", 1, 2),
          ("10.0.0.1", "10.0.0.99", 1, 2)]
    m = resolve_mapping([], ["a=10.0.0.11", "b=10.0.0.12", "c=10.0.0.13"], None, None)
    d, g, _ = m.classify(chunk(pk))
    assert d.tolist() == [0, 1, 0, -1]
    assert g[:3].tolist() == [0, 1, 2]
    assert m.guest_names == ["a", "b", "c"]


def test_guests_spread_round_robin_across_chunks():
    flows = [("10.0.0.1", "10.0.0.2", 1000 + f, 80) for f in range(5)]
    m = resolve_mapping(["10.0.0.2"], [], 3, None)
    _, g1, _ = m.classify(chunk(flows[:3] + flows[:3]))
    assert g1.tolist() == [0, 1, 2, 0, 1, 2]
    _, g2, _ = m.classify(chunk(flows[3:] + flows[:1]))
    assert g2.tolist() == [0, 1, 0]  # new flows continue the round robin; flow 0 keeps guest 0
    # the reverse direction of a flow goes to the same guest
    rev = [("10.0.0.2", "10.0.0.1", 80, 1001)]
    _, g3, _ = m.classify(chunk(rev))
    assert g3.tolist() == [1]


def test_infer_host_from_most_packets():
    m = resolve_mapping([], [], None, chunk(PKTS))
    assert m.inferred
    assert m.host[0].text in ("10.0.0.1", "10.0.0.2")
    # .1 and .2 are both in 3 packets of 300 bytes: .2 receives more bytes (200 against 100)
    assert m.host[0].text == "10.0.0.2" and "tie broken by bytes received" in m.explanation
    assert "inferred" in m.explanation and "--host" in m.explanation and "\n" not in m.explanation
    d, _, _ = m.classify(chunk(PKTS))
    assert (d[:2] >= 0).all() and d[2] == -1


@pytest.mark.parametrize("args, msg", [
    ((["10.0.0.300"], [], None), "not an IP address"),
    (([], ["noequals"], None), "NAME=ADDR"),
    (([], ["a=10.0.0.1"], 2), "not both"),
    ((["10.0.0.1"], [], 0), ">= 1"),
])
def test_mapping_errors(args, msg):
    with pytest.raises(OptionError, match=msg):
        resolve_mapping(*args, None)


def test_parse_address_kinds():
    assert parse_address("10.1.2.3").prefix == 128
    assert parse_address("10.1.2.0/24").prefix == 120
    assert parse_address("aa:bb:cc:dd:ee:ff").mac == 0xAABBCCDDEEFF
    assert np.uint64(parse_address("::1").lo) == 1
