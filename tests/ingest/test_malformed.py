"""Every damaged or odd capture in ../shared/traces/malformed has a stated outcome (issue 2).

Outcomes follow the policy in :mod:`pipeline.ingest.reader`: unusable input raises
:class:`TraceError` (exit code 2, one line naming file, problem, record and byte offset); damage
after good packets keeps them, sets ``truncated`` and warns once naming record and offset; odd but
readable input is read as recorded with one warning per kind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.errors import TraceError
from pipeline.ingest import read_trace


@dataclass(frozen=True)
class Outcome:
    packets: int | None          # None: TraceError expected
    truncated: bool = False
    warning: str | None = None   # substring one warning must contain ("" = no warnings at all)
    error: str | None = None     # substring of the TraceError message


OUTCOMES: dict[str, Outcome] = {
    # unusable -> TraceError, exit code 2
    "derived_zero_length.pcap": Outcome(None, error="empty file (0 bytes)"),
    "derived_short_file_header.pcap": Outcome(None, error="pcap file header cut short (10 of 24 bytes)"),
    "ndpi_fuzz_nsec_bogus_caplen.pcap": Outcome(
        None, error="bogus caplen 524501 (> 262144); the remaining 215 bytes are skipped; no complete "
                    "packet before it (record 1, byte offset 24)"),
    # salvaged: good packets kept, truncated, one warning with record number and byte offset
    "derived_cut_in_packet_data.pcap": Outcome(
        499, True, "record 500 at byte offset 668516: data cut short (caplen 1514, 700 bytes left)"),
    "derived_cut_in_record_header.pcap": Outcome(
        499, True, "record 500 at byte offset 668516: record header cut short (7 bytes left)"),
    "derived_cut_in_pcapng_epb.pcapng": Outcome(
        600, True, "record 601 at byte offset 708208: block cut short (block type 0x6, length 1548, "
                   "774 bytes left)"),
    "mlab_v6_trailing_byte.pcap": Outcome(8, True, "record 9 at byte offset 862: record header cut short (1 bytes left)"),
    "scapy_trailing_byte_80211.pcap": Outcome(1, True, "record 2 at byte offset 359: record header cut short"),
    "suricata_pgsql_bulk_trailing_byte.pcap": Outcome(
        785, True, "record 786 at byte offset 3276005: record header cut short (1 bytes left)"),
    "suricata_bad_record_hdr_smtp.pcap": Outcome(
        18, True, "record 19 at byte offset 3695: bogus caplen 3925868813 (> 262144); the remaining "
                  "125513 bytes are skipped"),
    "suricata_bad_record_hdr_tls.pcap": Outcome(
        6, True, "record 7 at byte offset 5035: bogus caplen 4325376 (> 262144)"),
    "suricata_bogus_caplen_1.4G.pcap": Outcome(
        1, True, "record 2 at byte offset 228: bogus caplen 1409179648 (> 262144)"),
    # odd but readable: kept as recorded, warned once per kind
    "libpcap_linktype_reserved_bits.pcap": Outcome(0, False, "linktype reserved bits set: 0x00300000"),
    "libpcap_pcap_invalid_version_1.4.pcap": Outcome(1, False, "unusual pcap version 1.4"),
    "libpcap_pcap_invalid_version_2.5.pcap": Outcome(1, False, "unusual pcap version 2.5"),
    "ndpi_big_endian_version_2.1.pcap": Outcome(128, False, "unusual pcap version 2.1"),
    "libpcap_pcapng_invalid_vers_0.1.pcapng": Outcome(1, False, "unusual pcapng version 0.1 in the section header block at byte offset 0"),
    "libpcap_pcapng_invalid_vers_1.1.pcapng": Outcome(1, False, "unusual pcapng version 1.1"),
    "libpcap_pcapng_shb_option_too_long.pcapng": Outcome(
        1, False, "block at byte offset 0: trailing block length 808464432 != leading length 52 (3 blocks"),
    "ndpi_fuzz_usec_overflow.pcap": Outcome(
        1, False, "record 1 at byte offset 24: sub-second timestamp field 4293562680 out of range for usec"),
    "tcpdump_timestamp_invalid_micro.pcap": Outcome(
        3, False, "record 2 at byte offset 116: sub-second timestamp field 1000000 out of range for usec (2 records"),
    "tcpdump_timestamp_invalid_nano.pcap": Outcome(
        3, False, "sub-second timestamp field 1000000000 out of range for nsec (2 records"),
    "tcpdump_caplen_gt_snaplen.pcap": Outcome(
        245, False, "record 58 at byte offset 42638: caplen 65549 > snaplen 65535 (2 records"),
    "tcpdump_origlen_lt_caplen.pcap": Outcome(1, False, "record 1 at byte offset 24: origlen 32 < caplen 34"),
    "tcpdump_snaplen4.pcap": Outcome(26, False, "26 packets of link types the decoder does not handle (C_HDLC(104): 26)"),
    "ppp_pcapng_zstd_compressed.pcapng.zst": Outcome(159, False, "beyond the int64 nanosecond range"),
    # valid files that look odd: no warnings at all
    "tcpdump_empty.pcapng": Outcome(0, False, ""),
    "tcpdump_empty_header_only.pcap": Outcome(0, False, ""),
    "tcpdump_linktype_ipv4_holding_ipv6.pcap": Outcome(1, False, ""),
    "zeek_snaplen68_truncated_tcp_hdr.pcap": Outcome(24, False, ""),
}


def test_every_malformed_file_has_an_outcome(shared_traces: Path) -> None:
    files = {p.name for p in (shared_traces / "malformed").iterdir()}
    assert files == set(OUTCOMES)


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_malformed_outcome(name: str, shared_traces: Path) -> None:
    path = shared_traces / "malformed" / name
    want = OUTCOMES[name]
    if want.packets is None:
        with pytest.raises(TraceError) as ei:
            read_trace(path)
        msg = str(ei.value)
        assert ei.value.exit_code == 2
        assert "\n" not in msg and msg.startswith(str(path) + ": ")
        assert want.error in msg
        return
    chunk, info = read_trace(path)
    assert len(chunk) == want.packets
    assert info.truncated is want.truncated
    if want.warning == "":
        assert info.warnings == []
    else:
        hits = [w for w in info.warnings if want.warning in w]
        assert len(hits) == 1, info.warnings
    # never one warning per packet; each a single line
    assert len(info.warnings) <= 6
    assert all("\n" not in w for w in info.warnings)
    json.dumps(info.to_dict())


def test_unusable_input_errors_name_the_place(shared_traces: Path) -> None:
    with pytest.raises(TraceError) as ei:
        read_trace(shared_traces / "malformed" / "ndpi_fuzz_nsec_bogus_caplen.pcap")
    assert ei.value.record == 1 and ei.value.offset == 24


@pytest.mark.slow
@pytest.mark.parametrize(("name", "code", "lines"), [
    ("ndpi_fuzz_nsec_bogus_caplen.pcap", 2, 1),      # unusable: one line on stderr, exit 2
    ("suricata_bogus_caplen_1.4G.pcap", 0, None),    # salvaged: exit 0, the warning on stderr
])
def test_cli_exit_codes(name: str, code: int, lines: int | None, shared_traces: Path) -> None:
    path = shared_traces / "malformed" / name
    p = subprocess.run([sys.executable, "-m", "pipeline", "inspect", str(path), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == code, p.stderr
    assert "Traceback" not in p.stderr
    if code == 2:
        assert len(p.stderr.strip().splitlines()) == lines
        assert str(path) in p.stderr and "byte offset 24" in p.stderr
    else:
        out = json.loads(p.stdout)
        assert out["packets"] == 1 and out["truncated"] is True
        assert "record 2 at byte offset 228" in p.stderr
