"""The numba classify kernel (Mapping.classify) against the numpy formulation it replaced, and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ingest import read_trace
from pipeline.ingest.addresses import format_ip, format_mac
from pipeline.ingest.columns import PacketChunk
from pipeline.models.mapping import resolve_mapping

# one capture per link-type family (MACs, cooked, raw IP, loopback), IPv4 and IPv6
TRACES = [
    "bulk_tcp/mlab_ndt_ipv4_download_snap94.pcap",
    "bulk_tcp/mlab_ndt_ipv6_download_snap114.pcap",
    "bulk_tcp/suricata_sll2_bulk_gro.pcap",
    "bulk_tcp/ppp_http_downloads.pcap",
]


def _mappings(chunk: PacketChunk) -> dict[str, tuple[list[str], list[str], int | None]]:
    """Host/guest options built from addresses of the trace itself (so each one matches packets)."""
    i = int(np.flatnonzero(chunk.ip_version != 0)[0])
    src = format_ip(chunk.src_ip_hi[i], chunk.src_ip_lo[i])
    dst = format_ip(chunk.dst_ip_hi[i], chunk.dst_ip_lo[i])
    dst_net = f"{dst}/24" if chunk.ip_version[i] == 4 else f"{dst}/64"
    out = {
        "inferred": ([], [], None),
        "host-spread-over-3": ([src], [], 3),
        "guests-addr-and-prefix": ([], [f"a={src}", f"b={dst_net}"], None),
        "host-and-overlapping-guests": ([dst], [f"c={src}", f"a={dst_net}", f"b={dst}"], None),
    }
    if chunk.src_mac[i] != 0:
        out["guest-by-mac"] = ([], [f"m={format_mac(chunk.src_mac[i])}", f"n={dst}"], None)
    return out


@pytest.mark.parametrize("trace", TRACES)
def test_kernel_equals_numpy_formulation(shared_traces, trace):
    chunk, _ = read_trace(shared_traces / trace)
    for name, (hosts, guests, n_guests) in _mappings(chunk).items():
        m = resolve_mapping(hosts, guests, n_guests, chunk)
        fast = m.classify(chunk)
        slow = m._classify_numpy(chunk)
        for col, a, b in zip(("direction", "guest", "remote_key"), fast, slow, strict=True):
            assert a.dtype == b.dtype, (name, col)
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: {col}")
        # not vacuous: packets are classified (both directions when only the host is named), and
        # several guests are told apart when guests are named
        assert (fast[0] >= 0).any(), name
        if not guests:
            assert (fast[0] == 0).any() and (fast[0] == 1).any(), name
        else:
            assert len(np.unique(fast[1][fast[0] >= 0])) > 1, name


def _chunk(rows: list[tuple[int, int, int, int]]) -> PacketChunk:
    """rows: (src IPv4 or 0, dst IPv4 or 0, src MAC, dst MAC); IP version 4 when an address is set."""
    ch = PacketChunk.empty(len(rows))
    v4 = 0xFFFF << 32
    for i, (src, dst, smac, dmac) in enumerate(rows):
        ch.ip_version[i] = 4 if (src or dst) else 0
        ch.src_ip_lo[i], ch.dst_ip_lo[i] = v4 | src, v4 | dst
        ch.src_mac[i], ch.dst_mac[i] = smac, dmac
    return ch


def test_directions_guests_and_remote_keys_by_hand():
    g1, g2, other = 0x0A000001, 0x0A000102, 0x08080808
    ch = _chunk([
        (g1, other, 0x0200_0000_0001, 0x0200_0000_00AA),   # g1 sends: TX, guest 0, remote = dst MAC
        (other, g2, 0x0200_0000_00AA, 0x0200_0000_0002),   # to g2: RX, guest 1, remote = src MAC
        (g2, g1, 0, 0),                                     # g2 -> g1: TX wins, guest 1, no MACs
        (other, other, 0, 0),                               # neither
    ])
    m = resolve_mapping([], ["a=10.0.0.1", "b=10.0.1.0/24"], None, ch)
    direction, guest, remote = m.classify(ch)
    np.testing.assert_array_equal(direction, [1, 0, 1, -1])
    np.testing.assert_array_equal(guest, [0, 1, 1, 0])
    assert remote[0] == 0x0200_0000_00AA | (1 << 61)
    assert remote[1] == 0x0200_0000_00AA | (1 << 61)
    # no MAC: a hash of the far end's IP, tagged with bit 60 (never equal to a MAC key)
    assert remote[2] >> 60 == 1 and remote[2] != remote[3]
    np.testing.assert_array_equal(remote, m._classify_numpy(ch)[2])
