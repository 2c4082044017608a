"""The reader against the manifest's independent per-file counts, on all 87 shared captures.

``manifest.json`` was made by a strict walker independent of this code (MANIFEST.md). Every field
it has for a file is compared; the few places where the reader deliberately differs are listed
in ``EXCEPTIONS`` with the reason, and checked to differ in exactly the stated way.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import TraceError
from pipeline.ingest import read_trace
from tests.conftest import MANIFEST, shared_traces_dir

#: files that are unusable input: the reader must raise TraceError (exit code 2).
UNUSABLE = {
    "malformed/derived_zero_length.pcap": "empty file",
    "malformed/derived_short_file_header.pcap": "file header cut short",
    "malformed/ndpi_fuzz_nsec_bogus_caplen.pcap": "bogus caplen",  # the very first record is bogus
}

INT64_MAX = np.iinfo(np.int64).max


@functools.cache
def _read(rel: str):
    chunk, info = read_trace(shared_traces_dir() / rel, sha256=True)
    return chunk, info


def _observed(chunk, info) -> dict:
    ts = chunk.ts_ns
    cap = chunk.cap_len.astype(np.int64)
    wire = chunk.wire_len.astype(np.int64)
    obs = {
        "packets": len(chunk),
        "bytes_wire": int(wire.sum()),
        "bytes_captured": int(cap.sum()),
        "snap_truncated_pkts": int((cap < wire).sum()),
        "linktypes": info.linktypes,
        "format": info.format,
        "endian": info.byte_order,
        "version": info.version,
        "ts_resolution": set(info.ts_resolution.split(",")),
        "snaplen": {str(s) for s in info.snaplens},
    }
    if len(chunk):
        obs.update({
            # the manifest's first_ts/duration are min and max - min (non-monotonic files differ)
            "first_ts": int(ts.min()),
            "duration_ns": int(ts.max()) - int(ts.min()),
            "non_monotonic_ts": int((np.diff(ts) < 0).sum()),
            "max_caplen": int(cap.max()),
            "max_origlen": int(wire.max()),
        })
    return obs


def _expected(e: dict) -> dict:
    exp = {k: e[k] for k in ("packets", "bytes_wire", "bytes_captured", "snap_truncated_pkts",
                             "linktypes", "format", "endian", "version") if k in e}
    if "ts_resolution" in e:
        exp["ts_resolution"] = set(e["ts_resolution"].split(","))
    if "snaplen" in e:
        exp["snaplen"] = set(str(e["snaplen"]).split(","))
    for k in ("non_monotonic_ts", "max_caplen", "max_origlen"):
        if k in e:
            exp[k] = e[k]
    return exp


def _compare(obs: dict, exp: dict, e: dict, *, skip_ts: bool = False) -> None:
    # timestamps: manifest floats in seconds; to 1 us (float64 at 1e9 s resolves ~0.24 us)
    if "first_ts" in e and not skip_ts:
        assert abs(obs["first_ts"] / 1e9 - e["first_ts"]) <= 1e-6, (obs["first_ts"], e["first_ts"])
        assert abs(obs["duration_ns"] / 1e9 - e["duration_s"]) <= 1e-6 + 1e-15 * e["duration_s"]
    mismatched = {k: (obs.get(k), v) for k, v in exp.items() if obs.get(k) != v}
    assert not mismatched, f"observed != manifest: {mismatched}"


def _ids():
    return [e["file"] for e in MANIFEST]


def test_manifest_has_all_shared_traces(manifest: list[dict]) -> None:
    assert len(MANIFEST) == len(manifest) == 87


@pytest.mark.parametrize("entry", MANIFEST, ids=_ids())
def test_reader_matches_manifest(entry: dict, shared_traces: Path) -> None:
    rel = entry["file"]
    path = shared_traces / rel
    # the cached reader (shared_traces_dir) reads the very file this test names
    assert (shared_traces_dir() / rel).samefile(path)
    if rel in UNUSABLE:
        assert entry["packets"] == 0
        with pytest.raises(TraceError):
            read_trace(path)
        return
    chunk, info = _read(rel)
    # the SHA-256 computed while streaming is the file's
    assert info.sha256 == entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.file_size == entry["size"]
    assert info.complete
    obs, exp = _observed(chunk, info), _expected(entry)

    if rel == "malformed/ppp_pcapng_zstd_compressed.pcapng.zst":
        # The manifest's walker cannot read zstd (it records "unknown magic"); Wireshark reads 159
        # packets. The content is linktypes/ppp_pcapng_2if_sll_eth.pcapng compressed: the reader
        # must give exactly that file's packets.
        assert info.compression == "zstd"
        assert len(chunk) == entry["wireshark"]["ws_packets"] == 159
        plain, _ = _read("linktypes/ppp_pcapng_2if_sll_eth.pcapng")
        for name, col in plain.columns().items():
            np.testing.assert_array_equal(getattr(chunk, name), col, err_msg=name)
        return

    if rel == "malformed/derived_cut_in_packet_data.pcap":
        # The manifest counts the cut final record (caplen 1514 promised, 700 bytes present) as a
        # packet; the reader keeps only complete records (like Wireshark: 499) and warns.
        assert entry["last_record_partial"] and entry["packets"] == 500
        assert entry["wireshark"]["ws_packets"] == 499
        exp["packets"] -= 1
        exp["bytes_wire"] -= 1514
        exp["bytes_captured"] -= 700
        exp["snap_truncated_pkts"] -= 1
        # its duration includes the cut record's timestamp; without it the trace is the 499
        # complete records that derived_cut_in_record_header.pcap (same source) holds
        other = next(x for x in MANIFEST if x["file"] == "malformed/derived_cut_in_record_header.pcap")
        entry = {**entry, "duration_s": other["duration_s"]}
        assert info.truncated
        assert any("record 500 at byte offset 668516: data cut short (caplen 1514, 700 bytes left)" in w
                   for w in info.warnings)

    skip_ts = False
    if rel in ("linktypes/ppp_pcapng_2if_sll_eth.pcapng",
               "malformed/libpcap_pcapng_shb_option_too_long.pcapng"):
        # Raw pcapng timestamps beyond int64 nanoseconds (1.8e13 s and 3.5e12 s after the epoch):
        # ts_ns is clamped to the int64 maximum and a warning says so; the manifest keeps floats.
        skip_ts = True
        ts = chunk.ts_ns
        assert (ts == INT64_MAX).any()
        big = [t for t in [entry["first_ts"], entry["first_ts"] + entry["duration_s"]] if t > 9.2e9]
        assert big, "expected a manifest timestamp beyond int64 ns"
        assert any("beyond the int64 nanosecond range" in w for w in info.warnings)
        if entry["first_ts"] < 9.2e9:
            assert abs(int(ts[0]) / 1e9 - entry["first_ts"]) <= 1e-6
    _compare(obs, exp, entry, skip_ts=skip_ts)
    if rel.startswith(("bulk_tcp/", "mixed/", "captured/")):
        assert not info.truncated and not info.warnings
