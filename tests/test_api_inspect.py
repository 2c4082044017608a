"""`pipeline.api.inspect_trace` (the library behind `pipeline inspect`) against the manifest's
independent counts, on every shared capture it can read."""

from __future__ import annotations

import pytest

from pipeline.api import inspect_trace
from pipeline.errors import TraceError

from .conftest import MANIFEST

UNUSABLE = {"malformed/derived_zero_length.pcap", "malformed/derived_short_file_header.pcap",
            "malformed/ndpi_fuzz_nsec_bogus_caplen.pcap"}
# Files where the manifest's own decoder classifies a packet differently (see
# tests/ingest/test_decode_traces.py): a Cisco HDLC frame inside a NULL file that the manifest guesses
# is IPv4, and a fuzzed TCP header (data offset 0) that the manifest counts as other_l4.
L3_EXCEPTIONS = {"linktypes/ppp_null_loopback.pcap", "malformed/suricata_bogus_caplen_1.4G.pcap"}
READABLE = [e for e in MANIFEST if e["file"] not in UNUSABLE
            and not e["file"].endswith(".zst") and e["file"] != "malformed/derived_cut_in_packet_data.pcap"]


@pytest.mark.parametrize("entry", READABLE, ids=lambda e: e["file"])
def test_counts_match_manifest(shared_traces, entry: dict) -> None:
    s = inspect_trace(shared_traces / entry["file"])
    assert s["packets"] == entry["packets"]
    assert s["wire_bytes"] == entry["bytes_wire"]
    assert s["captured_bytes"] == entry["bytes_captured"]
    assert s["snap_truncated_packets"] == entry["snap_truncated_pkts"]
    assert s["format"] == entry["format"]
    if "non_monotonic_ts" in entry:
        assert s["non_monotonic_timestamps"] == entry["non_monotonic_ts"]
        assert s["timestamps_in_order"] == (entry["non_monotonic_ts"] == 0)
    if entry.get("first_ts") is not None and entry["first_ts"] < 9e9:
        assert s["first_ts_ns"] / 1e9 == pytest.approx(entry["first_ts"], abs=2e-6)
        if entry["duration_s"] < 1e9:
            assert s["duration_s"] == pytest.approx(entry["duration_s"], rel=1e-6, abs=2e-6)
    if "l3" in entry and entry["file"] not in L3_EXCEPTIONS:
        l3 = entry["l3"]
        assert s["ipv4_packets"] == l3.get("ipv4", 0)
        assert s["ipv6_packets"] == l3.get("ipv6", 0)
        assert s["tcp_packets"] == l3.get("tcp", 0)
        assert s["udp_packets"] == l3.get("udp", 0)
        assert s["vlan_tagged_packets"] == l3.get("vlan_tagged", 0)
        assert s["distinct_hosts"] == entry["hosts"]
    assert s["truncated"] == any(
        ("truncated" in p or "bogus caplen" in p or "runs past EOF" in p) for p in entry["problems"])


def test_top_flow_is_the_manifests_dominant_flow(shared_traces) -> None:
    entry = next(e for e in MANIFEST if e["file"] == "bulk_tcp/suricata_1flowB.pcap")
    s = inspect_trace(shared_traces / entry["file"], top=3)
    top = s["top_flows"][0]
    assert f"{top['src']}:{top['src_port']} -> {top['dst']}:{top['dst_port']}" == entry["dominant_flow"]["flow"]
    assert top["payload_bytes"] == entry["dominant_flow"]["payload_bytes"]
    assert s["distinct_flows"] >= entry["tcp_flows_dir"]


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_unusable_files_raise(shared_traces, name: str) -> None:
    with pytest.raises(TraceError) as exc:
        inspect_trace(shared_traces / name)
    assert name.split("/")[-1] in str(exc.value)
    assert "\n" not in str(exc.value)


def test_zstd_capture_equals_its_pcapng(shared_traces, tmp_path) -> None:
    import zstandard

    src = shared_traces / "malformed/ppp_pcapng_zstd_compressed.pcapng.zst"
    plain = tmp_path / "plain.pcapng"
    plain.write_bytes(zstandard.ZstdDecompressor().stream_reader(src.open("rb")).read())
    a, b = inspect_trace(src), inspect_trace(plain)
    assert a["compression"] == "zstd" and b["compression"] is None
    for key in ("packets", "wire_bytes", "captured_bytes", "tcp_packets", "distinct_hosts", "top_flows"):
        assert a[key] == b[key]
    assert a["packets"] == 159  # Wireshark's count for this file (manifest: ws_packets)
