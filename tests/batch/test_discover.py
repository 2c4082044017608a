"""Finding captures by magic bytes (not by name), --glob, and stable unique trace ids."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil

import pytest
import zstandard

from pipeline.batch.discover import capture_kind, discover_captures, make_trace_id
from pipeline.errors import OptionError


@pytest.mark.parametrize("rel, kind", [
    ("bulk_tcp/suricata_1flowB.pcap", "pcap"),                      # little-endian, usec
    ("linktypes/ppp_nanosecs_big_endian.pcap", "pcap"),             # big-endian, nsec
    ("linktypes/ppp_nanosecs.pcap", "pcap"),                        # little-endian, nsec
    ("bulk_tcp/zeek_irc_dcc_send.pcapng", "pcapng"),
    ("linktypes/ndpi_dtls_pcapng_named_pcap.pcap", "pcapng"),       # pcapng behind a .pcap name
    ("malformed/ppp_pcapng_zstd_compressed.pcapng.zst", "pcapng"),  # zstd around pcapng
    ("malformed/derived_zero_length.pcap", None),                   # empty: not a capture
    ("MANIFEST.md", None),
])
def test_capture_kind_by_magic(shared_traces, rel, kind):
    assert capture_kind(shared_traces / rel) == kind


def test_compressed_and_renamed_captures_are_found_and_others_are_not(tmp_path, bundled_traces):
    src = bundled_traces / "iperf3_mtu1500_tso_snap96.pcap"
    raw = src.read_bytes()
    d = tmp_path / "in"
    (d / "deep" / "er").mkdir(parents=True)
    (d / "deep" / "er" / "capture.bin").write_bytes(raw)               # no capture extension
    (d / "a.pcap.gz").write_bytes(gzip.compress(raw))
    (d / "b.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    (d / "notes.pcap").write_text("not a capture\n")                   # capture name, no magic
    (d / "text.gz").write_bytes(gzip.compress(b"hello world"))          # gzip, but not of a capture
    (d / ".hidden.pcap").write_bytes(raw)                               # hidden: not searched
    (d / ".cache").mkdir()
    (d / ".cache" / "x.pcap").write_bytes(raw)
    found, skipped = discover_captures([d])
    assert sorted(c.rel_path for c in found) == ["in/a.pcap.gz", "in/b.zst", "in/deep/er/capture.bin"]
    assert skipped == 2  # notes.pcap and text.gz were looked at and rejected
    assert all(c.size == c.path.stat().st_size and c.path.is_absolute() for c in found)


def test_glob_narrows_by_relative_path_or_name(tmp_path, bundled_traces):
    d = tmp_path / "in"
    for sub in ("x", "y"):
        (d / sub).mkdir(parents=True)
        shutil.copy(bundled_traces / "iperf3_mtu1500_tso_snap96.pcap", d / sub / "t.pcap")
        shutil.copy(bundled_traces / "iperf3_mtu1500_tso_snap96.pcap", d / sub / "t.cap")
    assert len(discover_captures([d])[0]) == 4
    assert sorted(c.rel_path for c in discover_captures([d], "*.pcap")[0]) == ["in/x/t.pcap", "in/y/t.pcap"]
    assert [c.rel_path for c in discover_captures([d], "y/*")[0]] == ["in/y/t.cap", "in/y/t.pcap"]


def test_trace_ids_are_unique_sanitised_and_stable(tmp_path, bundled_traces, monkeypatch):
    d = tmp_path / "in"
    for sub in ("A b", "c=d"):
        (d / sub).mkdir(parents=True)
        shutil.copy(bundled_traces / "iperf3_mtu1500_tso_snap96.pcap", d / sub / "Same Name.pcap")
    found, _ = discover_captures([d])
    ids = [c.trace_id for c in found]
    assert len(set(ids)) == 2
    assert all(re.fullmatch(r"[a-z0-9_.-]+-[0-9a-f]{8}", i) for i in ids), ids
    monkeypatch.chdir(d / "A b")  # another working directory and a relative input: same ids
    again, _ = discover_captures([os.path.join("..", "..", "in")])
    assert [c.trace_id for c in again] == ids
    assert make_trace_id("x" * 500, "k") == make_trace_id("x" * 500, "k") and len(make_trace_id("x" * 500, "k")) < 100
    assert make_trace_id("x" * 500, "k") == "x" * 80 + "-" + hashlib.sha256(b"k").hexdigest()[:8]


def test_explicit_files_are_inputs_even_without_magic_and_missing_inputs_are_errors(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a capture")
    found, skipped = discover_captures([f])
    assert [c.path for c in found] == [f.absolute()] and skipped == 0
    with pytest.raises(OptionError, match="no such file"):
        discover_captures([tmp_path / "missing"])


def test_excluded_directory_is_not_searched(tmp_path, bundled_traces):
    d = tmp_path / "in"
    (d / "out").mkdir(parents=True)
    shutil.copy(bundled_traces / "iperf3_mtu1500_tso_snap96.pcap", d / "t.pcap")
    shutil.copy(bundled_traces / "iperf3_mtu1500_tso_snap96.pcap", d / "out" / "t.pcap")
    assert [c.rel_path for c in discover_captures([d], exclude=[d / "out"])[0]] == ["in/t.pcap"]
