"""Framing edge cases on tiny captures built here with struct (formats per the pcap/pcapng drafts).

Covers what the shared captures do not: pcapng sections that switch byte order, Simple and
Obsolete Packet Blocks, binary/odd if_tsresol and if_tsoffset, unknown blocks, records straddling
the reader's buffer (the block size is a parameter, made tiny here), gzip/zstd, chunking, progress,
bounded buffers and synthesized damage.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from pathlib import Path

import dpkt
import numpy as np
import pytest
import zstandard

from pipeline.errors import TraceError
from pipeline.ingest import open_trace, read_trace

# ------------------------------------------------------------------ builders

def pcap_file(records: list[tuple[int, int, bytes, int | None]], *, big: bool = False, nsec: bool = False,
              snaplen: int = 65535, linktype: int = 1, version: tuple[int, int] = (2, 4)) -> bytes:
    """pcap bytes; each record is (sec, subsec, data, orig_len or None for len(data))."""
    o = ">" if big else "<"
    out = [struct.pack(o + "IHHiIII", 0xA1B23C4D if nsec else 0xA1B2C3D4, *version, 0, 0, snaplen, linktype)]
    for sec, frac, data, orig in records:
        out.append(struct.pack(o + "IIII", sec, frac, len(data), len(data) if orig is None else orig) + data)
    return b"".join(out)


def block(btype: int, body: bytes, big: bool = False, trailer: int | None = None) -> bytes:
    o = ">" if big else "<"
    body = body + b"\0" * (-len(body) % 4)
    blen = 12 + len(body)
    return struct.pack(o + "II", btype, blen) + body + struct.pack(o + "I", blen if trailer is None else trailer)


def opt(code: int, value: bytes, big: bool = False) -> bytes:
    return struct.pack((">" if big else "<") + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(big: bool = False, version: tuple[int, int] = (1, 0)) -> bytes:
    o = ">" if big else "<"
    return block(0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, *version, -1), big)


def idb(linktype: int, snaplen: int = 0, big: bool = False, tsresol: int | None = None,
        tsoffset: int | None = None, name: str | None = None) -> bytes:
    o = ">" if big else "<"
    opts = b""
    if name is not None:
        opts += opt(2, name.encode(), big)
    if tsresol is not None:
        opts += opt(9, bytes([tsresol]), big)
    if tsoffset is not None:
        opts += opt(14, struct.pack(o + "q", tsoffset), big)
    if opts:
        opts += struct.pack(o + "HH", 0, 0)
    return block(1, struct.pack(o + "HHI", linktype, 0, snaplen) + opts, big)


def epb(iface: int, ts_units: int, data: bytes, orig: int | None = None, big: bool = False,
        trailer: int | None = None, caplen: int | None = None) -> bytes:
    o = ">" if big else "<"
    body = struct.pack(o + "IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF,
                       len(data) if caplen is None else caplen, len(data) if orig is None else orig) + data
    return block(6, body, big, trailer)


def opb(iface: int, ts_units: int, data: bytes, big: bool = False) -> bytes:
    o = ">" if big else "<"
    return block(2, struct.pack(o + "HHIIII", iface, 0, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data),
                                len(data)) + data, big)


def spb(data: bytes, orig: int | None = None, big: bool = False) -> bytes:
    o = ">" if big else "<"
    return block(3, struct.pack(o + "I", len(data) if orig is None else orig) + data, big)


def payload(i: int, n: int) -> bytes:
    return bytes((i * 7 + k) & 0xFF for k in range(n))


@pytest.fixture
def write(tmp_path: Path):
    def _write(name: str, data: bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(data)
        return p
    return _write


def frames(path: Path, **kw) -> tuple[list[bytes], dict[str, np.ndarray], object, list[int]]:
    """Packet bytes, framing columns, TraceInfo and chunk sizes, via iter_frames."""
    data, cols, sizes = [], {k: [] for k in ("ts_ns", "cap_len", "wire_len", "interface", "linktype")}, []
    with open_trace(path, **kw) as r:
        for b in r.iter_frames():
            sizes.append(len(b))
            data.extend(b.packet_bytes(i) for i in range(len(b)))
            for k in cols:
                cols[k].append(getattr(b, k).copy())
        info = r.info
    return data, {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}, info, sizes


# ------------------------------------------------------------------ pcap

PCAP_RECORDS = [(1_600_000_000 + i, (i * 123_457) % 1_000_000, payload(i, (i * 37) % 1600), None)
                for i in range(200)]


@pytest.mark.parametrize("big", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("nsec", [False, True], ids=["usec", "nsec"])
@pytest.mark.parametrize("block_size", [64, 1000, 1 << 20])
def test_pcap_records_exact_across_buffer_boundaries(write, big, nsec, block_size) -> None:
    p = write("t.pcap", pcap_file(PCAP_RECORDS, big=big, nsec=nsec))
    data, cols, info, sizes = frames(p, block_size=block_size, chunk_packets=64)
    assert data == [r[2] for r in PCAP_RECORDS]
    scale = 1 if nsec else 1000
    np.testing.assert_array_equal(cols["ts_ns"], [s * 10**9 + f * scale for s, f, _, _ in PCAP_RECORDS])
    np.testing.assert_array_equal(cols["cap_len"], [len(r[2]) for r in PCAP_RECORDS])
    assert max(sizes) <= 64 and sum(sizes) == 200
    assert info.byte_order == ("big" if big else "little")
    assert info.ts_resolution == ("nsec" if nsec else "usec")
    assert not info.warnings and not info.truncated


def test_buffer_stays_bounded_and_grows_only_for_a_big_record(write) -> None:
    recs = [(1, 0, payload(i, 100), None) for i in range(5000)] + [(2, 0, payload(9, 10000), None)]
    p = write("t.pcap", pcap_file(recs))
    with open_trace(p, block_size=4096) as r:
        sizes = [r._buf.nbytes for _ in r.iter_frames()]
        n = r.info.packets
    assert n == 5001
    assert max(sizes[:-1]) == 4096            # 500 KB read through a 4 KiB buffer
    assert 10016 <= r._buf.nbytes <= 2 * 10016  # grown just enough for the 10 KB record


def test_chunks_respect_chunk_packets_and_concatenate_to_the_whole(write) -> None:
    p = write("t.pcap", pcap_file(PCAP_RECORDS))
    whole, _ = read_trace(p)
    with open_trace(p, chunk_packets=7, block_size=3000) as r:
        chunks = list(r)
    assert all(1 <= len(c) <= 7 for c in chunks)
    assert [c.first_index for c in chunks] == list(np.cumsum([0] + [len(c) for c in chunks[:-1]]))
    for name, col in whole.columns().items():
        np.testing.assert_array_equal(np.concatenate([getattr(c, name) for c in chunks]), col, err_msg=name)


def test_one_warning_per_kind_however_many_packets(write) -> None:
    recs = [(1, 2_000_000, payload(i, 80), 60) for i in range(3000)]  # frac out of range, orig < cap
    p = write("t.pcap", pcap_file(recs, snaplen=64))                  # and caplen > snaplen
    _, info = read_trace(p, block_size=4096)
    assert len(info.warnings) == 3
    assert "record 1 at byte offset 24: caplen 80 > snaplen 64 (3000 records like this" in info.warnings[0]
    assert "origlen 60 < caplen 80 (3000 records" in info.warnings[1]
    assert "sub-second timestamp field 2000000 out of range for usec (3000 records" in info.warnings[2]


# ------------------------------------------------------------------ pcapng

def two_section_pcapng() -> tuple[bytes, list[dict]]:
    """Section 1 little-endian (Ethernet, usec); section 2 big-endian (RAW ns; SLL 2^-20 s with a
    +100 s offset), with EPB, SPB, OPB, an ISB and a custom block; the packets it should give."""
    s1 = [shb(), idb(1, 65535, name="eth0"),
          epb(0, 1_700_000_000_123_456, payload(1, 60)),
          epb(0, 1_700_000_001_000_000, payload(2, 1514), orig=1514),
          block(5, struct.pack("<IIIHH", 0, 0, 0, 0, 0)),  # interface statistics block: skipped
          epb(0, 1_700_000_002_000_001, payload(3, 54), orig=9000)]
    ts_bin = (1_700_000_100 << 20) | (1 << 19)          # .5 s in 2^-20 units
    s2 = [shb(big=True), idb(101, 0, big=True, tsresol=9),
          idb(113, 128, big=True, tsresol=0x80 | 20, tsoffset=100),
          epb(0, 1_700_000_200_000_000_007, payload(4, 40), big=True),
          epb(1, ts_bin, payload(5, 128), orig=1500, big=True),
          spb(payload(6, 44), big=True),                          # interface 0 of section 2, no ts
          block(0x40000BAD, b"custom block body", big=True),      # custom block: skipped
          opb(1, ts_bin + (1 << 20), payload(7, 100), big=True)]
    want = [
        dict(data=payload(1, 60), ts=1_700_000_000_123_456_000, wire=60, iface=0, lt=1),
        dict(data=payload(2, 1514), ts=1_700_000_001_000_000_000, wire=1514, iface=0, lt=1),
        dict(data=payload(3, 54), ts=1_700_000_002_000_001_000, wire=9000, iface=0, lt=1),
        dict(data=payload(4, 40), ts=1_700_000_200_000_000_007, wire=40, iface=1, lt=101),
        dict(data=payload(5, 128), ts=(1_700_000_100 + 100) * 10**9 + 500_000_000, wire=1500, iface=2, lt=113),
        dict(data=payload(6, 44), ts=(1_700_000_100 + 100) * 10**9 + 500_000_000, wire=44, iface=1, lt=101),
        dict(data=payload(7, 100), ts=(1_700_000_101 + 100) * 10**9 + 500_000_000, wire=100, iface=2, lt=113),
    ]
    return b"".join(s1 + s2), want


@pytest.mark.parametrize("block_size", [32, 57, 200, 1 << 20])
def test_pcapng_sections_switch_byte_order(write, block_size) -> None:
    raw, want = two_section_pcapng()
    p = write("t.pcapng", raw)
    data, cols, info, _ = frames(p, block_size=block_size, chunk_packets=3)
    assert data == [w["data"] for w in want]
    np.testing.assert_array_equal(cols["ts_ns"], [w["ts"] for w in want])
    np.testing.assert_array_equal(cols["wire_len"], [w["wire"] for w in want])
    np.testing.assert_array_equal(cols["cap_len"], [len(w["data"]) for w in want])
    np.testing.assert_array_equal(cols["interface"], [w["iface"] for w in want])
    np.testing.assert_array_equal(cols["linktype"], [w["lt"] for w in want])
    assert [s["byte_order"] for s in info.sections] == ["little", "big"]
    assert [s["first_interface"] for s in info.sections] == [0, 1]
    assert [i["ts_resolution"] for i in info.interfaces] == ["usec", "nsec", "2^-20"]
    assert info.interfaces[0]["name"] == "eth0" and info.interfaces[2]["ts_offset_s"] == 100
    assert info.linktypes == ["EN10MB(1)", "RAW(101)", "LINUX_SLL(113)"]
    assert info.linktype_packets == {"EN10MB(1)": 3, "RAW(101)": 2, "LINUX_SLL(113)": 2}
    assert info.ts_resolution == "2^-20,nsec,usec"
    assert not info.warnings and not info.truncated


def test_dpkt_misses_what_the_reader_gets(write) -> None:
    """dpkt skips SPBs and stops silently at a big-endian second section (MANIFEST.md)."""
    raw, want = two_section_pcapng()
    p = write("t.pcapng", raw)
    with open(p, "rb") as fh:
        got = [bytes(b) for _, b in dpkt.pcapng.Reader(fh)]
    assert got == [w["data"] for w in want[:3]]
    assert len(read_trace(p)[0]) == len(want) == 7


def test_spb_caplen_limited_by_snaplen_and_data(write) -> None:
    raw = shb() + idb(1, 50) + spb(payload(1, 80), orig=1500) + spb(payload(2, 30), orig=30)
    data, cols, info, _ = frames(write("s.pcapng", raw))
    assert data == [payload(1, 50), payload(2, 30)]
    np.testing.assert_array_equal(cols["wire_len"], [1500, 30])
    np.testing.assert_array_equal(cols["ts_ns"], [0, 0])  # no packet before them: ts 0


@pytest.mark.parametrize(("tsresol", "units", "ns"), [
    (3, 1_234, 1_234_000_000),                 # msec
    (12, 5_000_000_000_123_456, 5_000_000_000_123),  # psec: divided
    (0x80 | 10, (7 << 10) | 512, 7_500_000_000),   # 2^-10 s
    (0x80 | 40, (3 << 40) | (1 << 39), 3_500_000_000),  # 2^-40 s (fraction beyond 33 bits)
    (0x80, 42, 42_000_000_000),                  # 2^0 = whole seconds
    (0, 42, 42_000_000_000),                     # 10^0 = whole seconds
])
def test_if_tsresol_variants(write, tsresol, units, ns) -> None:
    raw = shb() + idb(1, 0, tsresol=tsresol) + epb(0, units, b"x" * 20)
    _, cols, _, _ = frames(write("r.pcapng", raw))
    assert int(cols["ts_ns"][0]) == ns


def test_no_interfaces_yet_and_empty_section(write) -> None:
    _, info = read_trace(write("e.pcapng", shb()))
    assert info.packets == 0 and info.interfaces == [] and not info.truncated
    with pytest.raises(TraceError, match="names interface 0 but the section describes 0"):
        read_trace(write("n.pcapng", shb() + epb(0, 1, b"abc")))


# ------------------------------------------------------------------ compression

@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_input_reads_like_plain(write, codec) -> None:
    raw, want = two_section_pcapng()
    comp = gzip.compress(raw) if codec == "gzip" else zstandard.ZstdCompressor().compress(raw)
    plain_chunk, plain_info = read_trace(write("p.pcapng", raw), sha256=True)
    p = write("c.bin", comp)
    chunk, info = read_trace(p, block_size=64, sha256=True)
    assert info.compression == codec and plain_info.compression is None
    for name, col in plain_chunk.columns().items():
        np.testing.assert_array_equal(getattr(chunk, name), col, err_msg=name)
    assert info.sha256 == hashlib.sha256(comp).hexdigest()
    assert plain_info.sha256 == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_cut_compressed_stream_keeps_the_packets_before(write, codec) -> None:
    # random payloads: the cut lands inside a record (python-zstandard's stream reader ends a cut
    # frame silently, so for zstd the damage shows as a cut record; gzip reports it itself)
    rng = np.random.default_rng(0)
    raw = pcap_file([(1, 0, rng.bytes(1000), None) for _ in range(500)])
    comp = gzip.compress(raw) if codec == "gzip" else zstandard.ZstdCompressor().compress(raw)
    p = write("cut.bin", comp[: len(comp) // 2])
    chunk, info = read_trace(p, block_size=4096, sha256=True)
    assert 0 < len(chunk) < 500 and info.truncated
    assert len(info.warnings) == 1 and f"record {len(chunk) + 1} at byte offset" in info.warnings[0]
    assert info.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_hash_covers_raw_bytes_the_framing_never_needed(write, codec) -> None:
    # a bogus record stops framing early: the decompressor has pulled only part of the 4 MiB
    # (incompressible) file, and the hash must still be of every raw byte
    rng = np.random.default_rng(1)
    raw = pcap_file(PCAP_RECORDS[:3]) + struct.pack("<IIII", 1, 0, 300_000, 300_000) + rng.bytes(4 << 20)
    comp = gzip.compress(raw) if codec == "gzip" else zstandard.ZstdCompressor().compress(raw)
    chunk, info = read_trace(write("h.bin", comp), block_size=4096, sha256=True)
    assert len(chunk) == 3 and info.truncated
    assert info.sha256 == hashlib.sha256(comp).hexdigest()


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_no_hash_unless_asked(write, codec) -> None:
    """The SHA-256 is opt-in (provenance, not ingest): without sha256=True it is None, and the
    packets are the same either way."""
    raw, _ = two_section_pcapng()
    p = write("n.bin", gzip.compress(raw) if codec else raw)
    chunk, info = read_trace(p, block_size=64)
    hashed_chunk, hashed = read_trace(p, block_size=64, sha256=True)
    assert info.complete and info.sha256 is None and info.to_dict()["sha256"] is None
    assert hashed.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    for name, col in hashed_chunk.columns().items():
        np.testing.assert_array_equal(getattr(chunk, name), col, err_msg=name)


def test_compressed_garbage_is_not_a_capture(write) -> None:
    with pytest.raises(TraceError, match="unknown magic 0x68656c6c after gzip decompression"):
        read_trace(write("g.gz", gzip.compress(b"hello world")))


# ------------------------------------------------------------------ damage

def test_bogus_record_after_good_ones_is_salvaged(write) -> None:
    raw = pcap_file(PCAP_RECORDS[:3]) + struct.pack("<IIII", 1, 0, 300_000, 300_000) + bytes(50)
    chunk, info = read_trace(write("b.pcap", raw))
    assert len(chunk) == 3 and info.truncated
    off = len(pcap_file(PCAP_RECORDS[:3]))
    assert info.warnings == [f"record 4 at byte offset {off}: bogus caplen 300000 (> 262144); the remaining "
                             f"66 bytes are skipped (trace truncated; the packets before it are kept)"]


@pytest.mark.parametrize(("raw", "match"), [
    (b"", "empty file"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", r"pcap file header cut short \(6 of 24 bytes\)"),
    (b"GIF89a-not-a-capture", r"not a pcap or pcapng capture \(unknown magic 0x47494638"),
    (pcap_file([]) + struct.pack("<IIII", 1, 0, 262145, 10), r"bogus caplen 262145 .*record 1, byte offset 24"),
    (pcap_file([]) + b"\x01\x02\x03", r"record header cut short \(3 bytes left\).*record 1, byte offset 24"),
    (shb()[:20], r"section header block cut short \(20 bytes\)"),
    (b"\x0a\x0d\x0d\x0a" + bytes(20), "bad byte-order magic"),
])
def test_unusable_input(write, raw, match) -> None:
    with pytest.raises(TraceError, match=match) as ei:
        read_trace(write("bad.cap", raw))
    assert ei.value.exit_code == 2 and "\n" not in str(ei.value)


def test_pcapng_damage_after_good_packets(write) -> None:
    good = shb() + idb(1) + epb(0, 1, b"a" * 60) + epb(0, 2, b"b" * 60, trailer=999)
    cases = {
        "iface": (good + epb(7, 3, b"c" * 60), "names interface 7 but the section describes 1"),
        "caplen": (good + epb(0, 3, b"c" * 60, caplen=400_000), "bogus caplen 400000 (> 262144)"),
        "cut": (good + epb(0, 3, b"c" * 60)[:50], "block cut short (block type 0x6, length 92, 50 bytes left)"),
        "badlen": (good + struct.pack("<II", 6, 13) + bytes(20), "impossible block length"),
    }
    for name, (raw, text) in cases.items():
        chunk, info = read_trace(write(f"{name}.pcapng", raw))
        assert len(chunk) == 2 and info.truncated, name
        assert any(text in w and f"at byte offset {len(good)}" in w for w in info.warnings), (name, info.warnings)
        # the second EPB's wrong trailing length: warned, the leading length used
        assert any("trailing block length 999 != leading length 92" in w for w in info.warnings)


# ------------------------------------------------------------------ API behaviour

def test_info_header_fields_at_open_and_json(write) -> None:
    raw, _ = two_section_pcapng()
    p = write("t.pcapng", raw)
    with open_trace(p, sha256=True) as r:
        assert r.info.format == "pcapng" and r.info.byte_order == "little"
        assert r.info.linktypes == ["EN10MB(1)"] and not r.info.complete  # first section primed
        chunks = list(r)
        assert r.info.complete and r.info.packets == 7 == sum(len(c) for c in chunks)
        with pytest.raises(RuntimeError):
            list(r)
    d = json.loads(json.dumps(r.info.to_dict()))
    assert d["packets"] == 7 and d["sha256"] == hashlib.sha256(raw).hexdigest()


def test_progress_reports_file_bytes(write) -> None:
    p = write("t.pcap", pcap_file(PCAP_RECORDS))
    calls: list[tuple[int, int]] = []
    with open_trace(p, block_size=4096, progress=lambda done, total: calls.append((done, total))) as r:
        for _ in r:
            pass
    size = p.stat().st_size
    assert len(calls) > 10 and all(t == size for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == size


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        open_trace(tmp_path / "nope.pcap")
    with pytest.raises(TraceError, match="is a directory"):
        open_trace(tmp_path)


def test_header_block_warnings_are_aggregated(write) -> None:
    sections = b"".join(shb(version=(1, 2)) + idb(1) + epb(0, i, b"z" * 30) for i in range(5))
    chunk, info = read_trace(write("v.pcapng", sections))
    assert len(chunk) == 5 and len(info.sections) == 5
    np.testing.assert_array_equal(chunk.interface, [0, 1, 2, 3, 4])  # global interface numbering
    assert info.warnings == ["unusual pcapng version 1.2 in the section header block at byte offset 0 "
                             "(read as 1.0) (5 blocks like this)"]


def test_big_endian_first_section_interfaces_known_at_open(write) -> None:
    raw = shb(big=True) + idb(113, 96, big=True) + idb(1, 64, big=True) + epb(1, 5, b"q" * 40, big=True)
    with open_trace(write("be.pcapng", raw)) as r:
        assert r.info.byte_order == "big"
        assert r.info.linktypes == ["LINUX_SLL(113)", "EN10MB(1)"] and r.info.snaplens == [96, 64]
        chunks = list(r)
    assert chunks[0].linktype.tolist() == [1] and chunks[0].ts_ns.tolist() == [5000]
