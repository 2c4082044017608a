"""The project's own captures in traces/: present, what traces/README.md says they are, and private.

Independent of the pipeline's ingest: record headers are read with ``struct`` and the packets with
dpkt, so a regression in the ingest cannot hide a bad bundled file (or the reverse).
"""

from __future__ import annotations

import ipaddress
import json
import struct
import subprocess
from collections import Counter
from pathlib import Path

import dpkt
import pytest

PRIVATE_NET = ipaddress.ip_network("10.99.0.0/24")

# file -> (packets, wire bytes, snap-truncated, {payload bytes: data segments} for the main sizes,
#          server addresses, iperf3 client JSON files); the figures are those of traces/README.md.
BUNDLED = {
    "iperf3_mtu1500_snap96.pcap": (9343, 13_200_342, 8741, {1448: 8640, 752: 96}, ["10.99.0.2"],
                                   ["iperf3_mtu1500_snap96.client.json"]),
    "iperf3_mtu552_snap96.pcap": (15802, 7_335_210, 12629, {500: 12576, 72: 48}, ["10.99.0.2"],
                                  ["iperf3_mtu552_snap96.client.json"]),
    "iperf3_mtu1500_3guests_snap96.pcap": (9433, 12_028_232, 7932, {1448: 7828, 752: 85},
                                           ["10.99.0.11", "10.99.0.12", "10.99.0.13"],
                                           [f"iperf3_mtu1500_3guests_snap96.client{i}.json" for i in (1, 2, 3)]),
    "iperf3_mtu1500_tso_snap96.pcap": (541, 12_619_411, 298, {65160: 188, 752: 94}, ["10.99.0.2"],
                                       ["iperf3_mtu1500_tso_snap96.client.json"]),
}


def read_records(path: Path) -> tuple[int, int, list[tuple[int, int, bytes]]]:
    """(linktype, snaplen, [(caplen, orig_len, captured bytes)]) of a little-endian microsecond pcap."""
    data = path.read_bytes()
    magic, _vmaj, _vmin, _tz, _sig, snaplen, linktype = struct.unpack_from("<IHHiIII", data, 0)
    assert magic == 0xA1B2C3D4, f"{path.name}: not a little-endian microsecond pcap"
    off, recs = 24, []
    while off < len(data):
        _s, _us, caplen, origlen = struct.unpack_from("<IIII", data, off)
        recs.append((caplen, origlen, data[off + 16:off + 16 + caplen]))
        off += 16 + caplen
    assert off == len(data), f"{path.name}: trailing bytes after the last record"
    return linktype, snaplen, recs


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_trace_matches_readme(bundled_traces: Path, name: str) -> None:
    packets, wire, truncated, segs, servers, jsons = BUNDLED[name]
    linktype, snaplen, recs = read_records(bundled_traces / name)
    assert (linktype, snaplen) == (1, 96)
    assert len(recs) == packets
    assert sum(r[1] for r in recs) == wire
    assert sum(1 for r in recs if r[0] < r[1]) == truncated
    assert all(r[0] <= 96 and r[0] <= r[1] for r in recs)

    payloads: Counter[int] = Counter()
    seen_servers: set[str] = set()
    for _cap, _orig, buf in recs:
        eth = dpkt.ethernet.Ethernet(buf)
        if isinstance(eth.data, dpkt.arp.ARP):
            continue
        ip = eth.data
        assert isinstance(ip, dpkt.ip.IP), f"{name}: unexpected {type(ip).__name__}"
        src, dst = ipaddress.ip_address(ip.src), ipaddress.ip_address(ip.dst)
        assert src in PRIVATE_NET and dst in PRIVATE_NET, f"{name}: {src} -> {dst} left 10.99.0.0/24"
        tcp = ip.data
        assert isinstance(tcp, dpkt.tcp.TCP)
        payload = ip.len - ip.hl * 4 - tcp.off * 4
        if payload > 0 and str(src) == "10.99.0.1":
            payloads[payload] += 1
            seen_servers.add(str(dst))
    for size, count in segs.items():
        assert payloads[size] == count, f"{name}: {payloads[size]} segments of {size} B, README says {count}"
    assert sorted(seen_servers) == servers

    for j in jsons:
        doc = json.loads((bundled_traces / j).read_text())
        assert doc["end"]["sum_sent"]["retransmits"] == 0
        assert doc["start"]["connected"][0]["remote_host"] in servers


def test_capture_script_is_there_and_documented(bundled_traces: Path) -> None:
    script = (bundled_traces / "capture.sh").read_text()
    readme = (bundled_traces / "README.md").read_text()
    assert script.startswith("#!/usr/bin/env bash")
    assert "trap cleanup EXIT" in script and "tso" in script and "ip netns add" in script
    for name in BUNDLED:
        assert name in readme


@pytest.mark.parametrize("args, message", [
    (["--mtu", "10"], "--mtu must be"),
    (["--offloads", "maybe"], "--offloads must be"),
    (["--servers", "0"], "--servers must be"),
    (["--rate", "fast"], "--rate must look like"),
    (["--bogus"], "unknown option '--bogus'"),
])
def test_capture_script_rejects_bad_options(bundled_traces: Path, args: list[str], message: str) -> None:
    """Bad options are refused with one line and exit 2, before anything touches the network."""
    r = subprocess.run(["bash", str(bundled_traces / "capture.sh"), *args], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
