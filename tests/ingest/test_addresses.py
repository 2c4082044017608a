"""Address/MAC helpers: formatting and parsing round trips, CIDR matching on the hi/lo columns."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from pipeline.errors import OptionError, PipelineError
from pipeline.ingest.addresses import (
    format_ip,
    format_ips,
    format_mac,
    format_macs,
    is_ipv4_mapped,
    match_cidr,
    parse_cidr,
    parse_ip,
    parse_mac,
    prefix_masks,
)

ADDRESSES = ["192.0.2.1", "0.0.0.0", "255.255.255.255", "10.99.0.2", "2001:db8::1", "::1", "::",
             "fe80::1:2:3:4", "2604:1380:4091:ce00::d", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
             "::fffe:1.2.3.4", "64:ff9b::c000:201"]


@pytest.mark.parametrize("text", ADDRESSES)
def test_parse_format_round_trip(text: str) -> None:
    hi, lo = parse_ip(text)
    assert format_ip(hi, lo) == str(ipaddress.ip_address(text))
    assert 0 <= hi < 2**64 and 0 <= lo < 2**64


def test_ipv4_is_held_ipv4_mapped() -> None:
    assert parse_ip("192.168.0.1") == (0, 0xFFFF_C0A8_0001)
    assert parse_ip("::ffff:192.168.0.1") == parse_ip("192.168.0.1")
    assert format_ip(0, 0xFFFF_C0A8_0001) == "192.168.0.1"
    assert is_ipv4_mapped(0, 0xFFFF_C0A8_0001) and not is_ipv4_mapped(1, 0xFFFF_C0A8_0001)
    assert not is_ipv4_mapped(0, 0xFFFE_C0A8_0001)


def test_format_ips_vectorised_matches_scalar() -> None:
    pairs = [parse_ip(a) for a in ADDRESSES] * 3
    hi = np.array([p[0] for p in pairs], np.uint64)
    lo = np.array([p[1] for p in pairs], np.uint64)
    out = format_ips(hi, lo)
    assert out.dtype == object and out.shape == hi.shape
    assert list(out) == [str(ipaddress.ip_address(a)) for a in ADDRESSES] * 3
    np.testing.assert_array_equal(is_ipv4_mapped(hi, lo),
                                  [ipaddress.ip_address(a).version == 4 for a in ADDRESSES] * 3)
    assert format_ips(np.zeros(0, np.uint64), np.zeros(0, np.uint64)).shape == (0,)


@pytest.mark.parametrize("text, expected", [
    ("10.0.0.0/8", (0, 0xFFFF_0A00_0000, 104)),
    ("10.1.2.3/8", (0, 0xFFFF_0A00_0000, 104)),            # host bits cleared
    ("192.0.2.7", (0, 0xFFFF_C000_0207, 128)),
    ("0.0.0.0/0", (0, 0xFFFF_0000_0000, 96)),              # all of IPv4, nothing else
    ("2001:db8::/32", (0x2001_0DB8_0000_0000, 0, 32)),
    ("::/0", (0, 0, 0)),
    (" 2001:db8::1 ", (0x2001_0DB8_0000_0000, 1, 128)),
])
def test_parse_cidr(text, expected) -> None:
    assert parse_cidr(text) == expected


@pytest.mark.parametrize("bad", ["", "10.0.0.0/33", "300.1.1.1", "2001:db8::/129", "host", "10.0.0.0/8/1"])
def test_bad_cidr_and_ip_raise_option_error(bad) -> None:
    with pytest.raises(OptionError) as err:
        parse_cidr(bad)
    assert isinstance(err.value, PipelineError) and "\n" not in str(err.value) and err.value.exit_code == 2
    if "/" not in bad:
        with pytest.raises(OptionError):
            parse_ip(bad)


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 96, 127, 128])
def test_prefix_masks(n) -> None:
    mhi, mlo = prefix_masks(n)
    assert ((mhi << 64) | mlo) == ((2**128 - 1) >> (128 - n) << (128 - n) if n else 0)
    with pytest.raises(OptionError):
        prefix_masks(129)


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "10.99.0.0/24", "10.99.0.2/32", "0.0.0.0/0",
                                  "2001:db8::/32", "2001:db8:0:1::/64", "::/0", "fe80::/10",
                                  "2001:db8::1/127", "::ffff:10.0.0.0/104"])
def test_match_cidr_agrees_with_ipaddress(cidr) -> None:
    addrs = ["10.99.0.1", "10.99.0.2", "10.98.255.255", "11.0.0.0", "9.255.255.255", "192.0.2.1",
             "2001:db8::1", "2001:db8::", "2001:db8:0:1::5", "2001:db9::1", "fe80::1", "febf::1",
             "fec0::1", "::1", "::a63:2"]
    hi = np.array([parse_ip(a)[0] for a in addrs], np.uint64)
    lo = np.array([parse_ip(a)[1] for a in addrs], np.uint64)
    net = ipaddress.ip_network(cidr, strict=False)
    # reference: ipaddress on the 128-bit mapped form (so IPv4 nets never match IPv6 and back)
    mapped_net = (ipaddress.ip_network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
                  if net.version == 4 else net)
    expected = [ipaddress.IPv6Address((int(h) << 64) | int(v)) in mapped_net for h, v in zip(hi, lo, strict=True)]
    got = match_cidr(hi, lo, cidr)
    assert got.dtype == bool
    assert list(got) == expected
    assert list(match_cidr(hi, lo, parse_cidr(cidr))) == expected


def test_match_cidr_ipv4_does_not_match_ipv6_zeros() -> None:
    hi = np.array([0, 0], np.uint64)
    lo = np.array([0, 0xFFFF_0000_0001], np.uint64)        # "::" and 0.0.0.1
    assert list(match_cidr(hi, lo, "0.0.0.0/0")) == [False, True]


@pytest.mark.parametrize("text", ["02:00:00:00:00:01", "02-00-00-00-00-01", "0200.0000.0001",
                                  "020000000001", "02:00:00:00:00:01".upper()])
def test_parse_mac_forms(text) -> None:
    assert parse_mac(text) == 0x020000000001


@pytest.mark.parametrize("bad", ["02:00:00:00:00", "02:00:00-00:00:01", "0200000000011", "zz:00:00:00:00:01", ""])
def test_bad_mac_raises(bad) -> None:
    with pytest.raises(OptionError):
        parse_mac(bad)


def test_format_mac_and_vectorised() -> None:
    assert format_mac(0x0800277FB58B) == "08:00:27:7f:b5:8b"
    assert format_mac(0) == "00:00:00:00:00:00"
    values = np.array([0x0800277FB58B, 0xFFFFFFFFFFFF, 0x0800277FB58B, 1], np.uint64)
    out = format_macs(values)
    assert list(out) == ["08:00:27:7f:b5:8b", "ff:ff:ff:ff:ff:ff", "08:00:27:7f:b5:8b", "00:00:00:00:00:01"]
    assert all(parse_mac(s) == int(v) for s, v in zip(out, values, strict=True))
    assert format_macs(np.zeros(0, np.uint64)).shape == (0,)
