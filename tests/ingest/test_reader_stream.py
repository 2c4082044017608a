"""Streaming + decoding end to end on real captures: tiny buffers and chunks give the same columns.

The decoder reads packet bytes out of the reader's buffer, which is reused between chunks; these
tests make sure every chunk is decoded before the buffer moves on, whatever the buffer and chunk
sizes, and that link types the decoder does not handle are kept as empty rows and reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.ingest import open_trace, read_trace

FILES = [
    "bulk_tcp/suricata_sll2_bulk_gro.pcap",        # 65 KB records: buffer must grow
    "linktypes/ppp_pcapng_2if_sll_eth.pcapng",     # two interfaces, two link types
    "linktypes/scapy_pfcp_big_endian.pcapng",      # big-endian pcapng, obsolete packet blocks
    "mixed/ppp_many_protocols.pcap",               # VLAN, IPv6, DNS, ...
    "malformed/ppp_pcapng_zstd_compressed.pcapng.zst",
]


@pytest.mark.parametrize("rel", FILES)
def test_tiny_buffers_and_chunks_give_identical_columns(rel: str, shared_traces: Path) -> None:
    path = shared_traces / rel
    whole, info = read_trace(path)
    with open_trace(path, block_size=512, chunk_packets=5) as r:
        chunks = list(r)
        small_info = r.info
    assert all(len(c) <= 5 for c in chunks)
    for name, col in whole.columns().items():
        np.testing.assert_array_equal(np.concatenate([getattr(c, name) for c in chunks]), col, err_msg=name)
    assert small_info.to_dict() == info.to_dict()


def test_decoded_fields_present_for_supported_link_types(shared_traces: Path) -> None:
    chunk, info = read_trace(shared_traces / "bulk_tcp/suricata_1flowB.pcap")
    assert info.unsupported_packets == 0
    assert (chunk.ip_version == 4).all() and (chunk.ip_proto == 6).all()
    assert set(np.unique(chunk.dst_port).tolist()) | set(np.unique(chunk.src_port).tolist()) >= {25}


@pytest.mark.parametrize(("rel", "label"), [
    ("linktypes/ppp_big_endian_netlink.pcap", "NETLINK(253)"),
    ("linktypes/zeek_fddi_llc.pcap", "FDDI(10)"),
    ("linktypes/suricata_ppp_ipv6_frag.pcap", "PPP(9)"),
])
def test_unsupported_link_types_are_rows_with_empty_fields(rel: str, label: str, shared_traces: Path) -> None:
    chunk, info = read_trace(shared_traces / rel)
    assert len(chunk) > 0
    assert info.unsupported_linktypes == {label: len(chunk)} and info.unsupported_packets == len(chunk)
    assert (chunk.ip_version == 0).all()
    assert (chunk.wire_len > 0).all()  # framing columns are still there
    assert sum(label in w and "does not handle" in w for w in info.warnings) == 1
