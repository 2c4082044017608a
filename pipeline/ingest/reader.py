"""Streaming capture reader: pcap / pcapng (optionally gzip/zstd) -> chunks of packet columns.

``open_trace(path)`` returns a :class:`TraceReader`; iterating it yields
:class:`~pipeline.ingest.columns.PacketChunk` objects (framing by the numba kernels of
:mod:`pipeline.ingest.framing`, fields by ``pipeline.ingest.decode.decode_fields``). Memory is
bounded by one read buffer (``block_size``, default 16 MiB, grown only for a single record larger
than it) plus the chunk being built, whatever the file size. ``read_trace(path)`` returns the whole
trace as one chunk (small traces, tests).

Damage policy (issue 2; the rule behind it: *damage with no good packet before it is unusable
input, damage after good packets is salvaged*):

* Unusable -> :class:`~pipeline.errors.TraceError` (one line naming file, problem, record number,
  byte offset; exit code 2): missing/unreadable file or a directory, empty file, unknown magic (not
  a capture), pcap file header cut short, pcapng Section Header Block cut short or with a bad
  byte-order magic, and any of the damage below when it hits before the first complete packet.
* Salvaged, ``truncated=True``, one warning naming record and byte offset: a record header or
  pcapng block cut short at the end of the file, record data cut short
  (``record 500 at byte offset 668516: data cut short (caplen 1514, 700 bytes left)``), a bogus
  record (caplen > 262144 = 256 KiB, impossible pcapng block length, packet block naming an
  undescribed interface): framing stops there, the rest of the file is skipped, every packet
  before it is kept; a damaged gzip/zstd stream.
* Kept as recorded, warned once per kind with a count: caplen > snaplen (<= 256 KiB), origlen <
  caplen, a sub-second field out of range (``ts = sec * 1e9 + frac * scale``, the naive value
  that the manifest and dpkt use), pcapng timestamps beyond int64 ns (clamped to the int64
  maximum), pcapng trailing block length != leading length (the leading one is used), unusual
  versions (pcap other than 2.4; pcapng SHB other than 1.0), pcap link-type reserved bits set,
  packets of link types the decoder does not handle (kept as rows with ``ip_version == 0``).

Byte offsets are offsets in the decompressed stream (equal to file offsets for plain files).
Record numbers are 1-based packet numbers (the number the damaged record would have had).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from pipeline.errors import TraceError
from pipeline.ingest import framing as fr
from pipeline.ingest.columns import PacketChunk
from pipeline.ingest.decode import FRAMING_COLUMNS, decode_fields
from pipeline.ingest.linktypes import is_supported, linktype_label
from pipeline.ingest.magic import PCAPNG_SHB, sniff_format
from pipeline.ingest.source import ByteSource

DEFAULT_BLOCK_SIZE = 16 << 20
_FIRST_CAPACITY = 4096


# =========================================== results ===========================================

@dataclass
class TraceInfo:
    """What a capture is and what reading it found. Header fields are set at open (for pcapng:
    the first section and the interfaces described before the first packet); counts,
    ``warnings``, ``truncated`` and ``sha256`` are complete once iteration has finished
    (``complete``).

    Fields: ``format`` "pcap"/"pcapng"; ``compression`` None/"gzip"/"zstd"; ``byte_order`` and
    ``version`` of the pcap header or the first pcapng section (``sections`` lists every section:
    offset, byte_order, version, first_interface, n_interfaces); ``ts_resolution`` the distinct
    interface resolutions, sorted, comma-joined ("usec", "nsec", "nsec,usec", "2^-20");
    ``snaplen`` the pcap header's or the largest interface snaplen (0 = unlimited),
    ``snaplens`` the distinct values in interface order; ``interfaces`` one dict per interface
    (global index, linktype, linktype_name, snaplen, ts_resolution, ts_offset_s, name, section);
    ``linktypes`` labels like "EN10MB(1)" in order of first appearance among interfaces;
    ``packets`` complete packet records read; ``linktype_packets`` label -> packets;
    ``unsupported_*`` the packets whose link type the decoder does not handle; ``warnings``
    one-line messages (record number and byte offset where there is one), one per kind;
    ``truncated`` damage stopped reading after good packets; ``sha256`` of the raw file bytes (None
    unless the trace was opened with ``sha256=True``).
    """

    path: str
    file_size: int
    format: str
    compression: str | None
    byte_order: str
    version: str
    ts_resolution: str
    snaplen: int | None
    snaplens: list[int] = field(default_factory=list)
    sections: list[dict] = field(default_factory=list)
    interfaces: list[dict] = field(default_factory=list)
    linktypes: list[str] = field(default_factory=list)
    packets: int = 0
    linktype_packets: dict[str, int] = field(default_factory=dict)
    unsupported_packets: int = 0
    unsupported_linktypes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    truncated: bool = False
    sha256: str | None = None
    complete: bool = False

    def to_dict(self) -> dict:
        """JSON-safe dict of every field."""
        return {
            "path": self.path, "file_size": int(self.file_size), "format": self.format,
            "compression": self.compression, "byte_order": self.byte_order, "version": self.version,
            "ts_resolution": self.ts_resolution,
            "snaplen": None if self.snaplen is None else int(self.snaplen),
            "snaplens": [int(s) for s in self.snaplens],
            "sections": [dict(s) for s in self.sections],
            "interfaces": [dict(i) for i in self.interfaces],
            "linktypes": list(self.linktypes), "packets": int(self.packets),
            "linktype_packets": {k: int(v) for k, v in self.linktype_packets.items()},
            "unsupported_packets": int(self.unsupported_packets),
            "unsupported_linktypes": {k: int(v) for k, v in self.unsupported_linktypes.items()},
            "warnings": list(self.warnings), "truncated": bool(self.truncated),
            "sha256": self.sha256, "complete": bool(self.complete),
        }


@dataclass
class FrameBatch:
    """Framing output for consecutive packets. ``buf`` is the reader's buffer: valid only until
    the next batch is requested (copy what you need). ``data_off`` indexes into it."""

    first_index: int
    buf: np.ndarray
    data_off: np.ndarray
    cap_len: np.ndarray
    wire_len: np.ndarray
    ts_ns: np.ndarray
    interface: np.ndarray
    linktype: np.ndarray

    def __len__(self) -> int:
        return int(self.data_off.shape[0])

    def packet_bytes(self, i: int) -> bytes:
        """Captured bytes of packet ``i`` of this batch."""
        o = int(self.data_off[i])
        return bytes(self.buf[o:o + int(self.cap_len[i])])


class _Out:
    """Growable per-chunk framing output arrays."""

    def __init__(self, capacity: int) -> None:
        self.data_off = np.empty(capacity, np.int64)
        self.cap_len = np.empty(capacity, np.uint32)
        self.wire_len = np.empty(capacity, np.uint32)
        self.ts_ns = np.empty(capacity, np.int64)
        self.interface = np.empty(capacity, np.uint32)
        self.linktype = np.empty(capacity, np.uint16)

    @property
    def capacity(self) -> int:
        return int(self.data_off.shape[0])

    def grow(self, capacity: int, n: int) -> None:
        for name in ("data_off", "cap_len", "wire_len", "ts_ns", "interface", "linktype"):
            old = getattr(self, name)
            new = np.empty(capacity, old.dtype)
            new[:n] = old[:n]
            setattr(self, name, new)


# =========================================== framers ===========================================

class _PcapFramer:
    record_header = 16

    def __init__(self, hdr: fr.PcapHeader) -> None:
        self.hdr = hdr
        self.ts_scale = 1000 if hdr.ts_decimal_exponent == 6 else 1
        self.frac_limit = 1_000_000 if hdr.ts_decimal_exponent == 6 else 1_000_000_000
        self.interfaces = [fr.Interface(index=0, linktype=hdr.linktype, snaplen=hdr.snaplen,
                                        ts_decimal=True, ts_exponent=hdr.ts_decimal_exponent)]
        self.sections = [fr.Section(index=0, offset=0, byte_order=hdr.byte_order, version=hdr.version,
                                    first_interface=0, n_interfaces=1)]
        self.damage: fr.FramingDamage | None = None

    def frame(self, buf, pos, end, out: _Out, n, stats, rec_base, file_base):
        st, pos, n = fr.frame_pcap(buf, pos, end, self.hdr.big_endian, self.ts_scale, self.frac_limit,
                                   self.hdr.snaplen, fr.MAX_CAPLEN, out.data_off, out.cap_len,
                                   out.wire_len, out.ts_ns, n, stats, rec_base, file_base)
        return int(st), int(pos), int(n)

    def fill_constant_columns(self, out: _Out, n0: int, n: int) -> None:
        out.interface[n0:n] = 0
        out.linktype[n0:n] = self.hdr.linktype

    def _u32(self, buf, p) -> int:
        return struct.unpack(">I" if self.hdr.big_endian else "<I", bytes(buf[p:p + 4]))[0]

    def describe_stop(self, buf, pos, end, record, offset, rest_known: int | None):
        """Message for framing that stopped at ``pos`` (bogus record, or cut tail at EOF)."""
        left = end - pos
        if left < 16:
            return f"record {record} at byte offset {offset}: record header cut short ({left} bytes left)"
        incl = self._u32(buf, pos + 8)
        if incl > fr.MAX_CAPLEN:
            rest = f"; the remaining {rest_known} bytes are skipped" if rest_known else ""
            return (f"record {record} at byte offset {offset}: bogus caplen {incl} "
                    f"(> {fr.MAX_CAPLEN}){rest}")
        return (f"record {record} at byte offset {offset}: data cut short "
                f"(caplen {incl}, {left - 16} bytes left)")


class _PcapngFramer:
    def __init__(self) -> None:
        self.sections: list[fr.Section] = []
        self.interfaces: list[fr.Interface] = []
        self._warned: dict[str, list] = {}  # kind -> [first message, count]
        self.big = False
        self.prev_ts = 0
        self.damage: fr.FramingDamage | None = None
        self._arrays()

    def _arrays(self) -> None:
        ifs = self.interfaces or [fr.Interface(index=0, linktype=0, snaplen=0)]
        self.if_linktype = np.array([i.linktype for i in ifs], np.int64)
        self.if_snaplen = np.array([i.snaplen for i in ifs], np.int64)
        params = [i.ts_params() for i in ifs]
        self.if_ts_mul = np.array([p[0] for p in params], np.int64)
        self.if_ts_div = np.array([p[1] for p in params], np.int64)
        self.if_ts_shift = np.array([p[2] for p in params], np.int64)
        self.if_ts_off = np.array([max(min(i.ts_offset_s, 9_000_000_000), -9_000_000_000) * 1_000_000_000
                                   for i in ifs], np.int64)

    def _warn(self, kind: str, msg: str) -> None:
        entry = self._warned.setdefault(kind, [msg, 0])
        entry[1] += 1

    @property
    def warnings(self) -> list[str]:
        """One line per kind of header-block anomaly (the first one, with a count if repeated)."""
        return [m if c == 1 else f"{m} ({c} blocks like this)" for m, c in self._warned.values()]

    @property
    def section(self) -> fr.Section:
        return self.sections[-1]

    def _order(self) -> str:
        return ">" if self.big else "<"

    def frame(self, buf, pos, end, out: _Out, n, stats, rec_base, file_base):
        while True:
            if self.sections:
                sec = self.section
                st, pos, n, self.prev_ts = fr.frame_pcapng(
                    buf, pos, end, self.big, sec.first_interface, sec.n_interfaces,
                    self.if_linktype, self.if_snaplen, self.if_ts_mul, self.if_ts_div, self.if_ts_shift,
                    self.if_ts_off, fr.MAX_CAPLEN, fr.MAX_BLOCK_LEN, self.prev_ts,
                    out.data_off, out.cap_len, out.wire_len, out.ts_ns, out.interface, out.linktype,
                    n, stats, rec_base, file_base)
                st, pos, n = int(st), int(pos), int(n)
                if st != fr.ST_BLOCK:
                    return st, pos, n
            try:
                new_pos = self.python_block(buf, pos, end, stats, rec_base + n + 1, file_base)
            except fr.FramingDamage as d:
                self.damage = d
                return fr.ST_BOGUS, pos, n
            if new_pos is None:
                return fr.ST_NEED_MORE, pos, n

            pos = new_pos

    def fill_constant_columns(self, out: _Out, n0: int, n: int) -> None:
        pass

    def python_block(self, buf, pos, end, stats, record, file_base) -> int | None:
        """Parse the SHB or IDB at ``pos``; return the position after it, None if it is incomplete."""
        offset = file_base + pos
        if end - pos < 8:
            return None
        btype = struct.unpack("<I", bytes(buf[pos:pos + 4]))[0]
        if btype == PCAPNG_SHB:
            try:
                shb = fr.parse_shb(buf, pos, end)
            except ValueError as e:
                raise fr.FramingDamage(f"block at byte offset {offset}: {e}", offset=offset) from None
            if shb is None:
                return None
            order, blen, major, minor = shb
            self.big = order == "big"
            idx = len(self.sections)
            self.sections.append(fr.Section(index=idx, offset=offset, byte_order=order,
                                            version=f"{major}.{minor}",
                                            first_interface=len(self.interfaces), n_interfaces=0))
            if (major, minor) != (1, 0):
                self._warn("version", f"unusual pcapng version {major}.{minor} in the section header "
                                      f"block at byte offset {offset} (read as 1.0)")
            self._check_trailer(buf, pos, blen, stats, record, offset)
            return pos + blen
        if not self.sections:
            raise fr.FramingDamage(f"block at byte offset {offset}: not a section header block",
                                   offset=offset)
        order = self._order()
        blen = struct.unpack(order + "I", bytes(buf[pos + 4:pos + 8]))[0]
        if blen < 20 or blen % 4 or blen > fr.MAX_BLOCK_LEN:
            raise fr.FramingDamage(f"block at byte offset {offset}: interface description block "
                                   f"with an impossible length {blen}", offset=offset)
        if end - pos < blen:
            return None
        block = bytes(buf[pos:pos + blen])
        linktype, snaplen, opts, problem = fr.parse_idb(block, order)
        if problem:
            self._warn("idb_options", f"interface description block at byte offset {offset}: {problem} "
                                      f"(options ignored from there)")
        tsresol = opts.get("tsresol", 6)
        iface = fr.Interface(index=len(self.interfaces), linktype=linktype, snaplen=snaplen,
                             ts_decimal=not (tsresol & 0x80), ts_exponent=tsresol & 0x7F,
                             ts_offset_s=int(opts.get("tsoffset", 0)), name=opts.get("name"),
                             section=self.section.index)
        self.interfaces.append(iface)
        self.section.n_interfaces += 1
        self._arrays()
        self._check_trailer(buf, pos, blen, stats, record, offset)
        return pos + blen

    def _check_trailer(self, buf, pos, blen, stats, record, offset) -> None:
        trail = struct.unpack(self._order() + "I", bytes(buf[pos + blen - 4:pos + blen]))[0]
        if trail != blen:
            row = stats[fr.K_TRAILER_MISMATCH]
            row[fr.C_COUNT] += 1
            if row[fr.C_RECORD] < 0:
                row[fr.C_RECORD], row[fr.C_OFFSET] = record, offset
                row[fr.C_VAL_A], row[fr.C_VAL_B] = trail, blen

    def describe_stop(self, buf, pos, end, record, offset, rest_known: int | None):
        if self.damage is not None:
            return self.damage.message
        left = end - pos
        if left < 12:
            return f"block at byte offset {offset}: block header cut short ({left} bytes left)"
        order = self._order()
        btype, blen = struct.unpack(order + "II", bytes(buf[pos:pos + 8]))
        is_packet = btype in (fr.PCAPNG_EPB, fr.PCAPNG_SPB, fr.PCAPNG_OPB)
        where = (f"record {record} at byte offset {offset}" if is_packet
                 else f"block at byte offset {offset}")
        what = f"block type 0x{btype:X}, length {blen}"
        rest = f"; the remaining {rest_known} bytes are skipped" if rest_known else ""
        if blen < 12 or blen % 4 or blen > fr.MAX_BLOCK_LEN:
            return f"{where}: impossible block length ({what}){rest}"
        if left < blen:
            return f"{where}: block cut short ({what}, {left} bytes left)"
        if btype in (fr.PCAPNG_EPB, fr.PCAPNG_OPB):
            if blen < 32:
                return f"{where}: packet block too short ({what}){rest}"
            if btype == fr.PCAPNG_EPB:
                iid = struct.unpack(order + "I", bytes(buf[pos + 8:pos + 12]))[0]
            else:
                iid = struct.unpack(order + "H", bytes(buf[pos + 8:pos + 10]))[0]
            n_if = self.section.n_interfaces
            if iid >= n_if:
                return (f"{where}: packet block names interface {iid} but the section describes "
                        f"{n_if} ({what}){rest}")
            incl = struct.unpack(order + "I", bytes(buf[pos + 20:pos + 24]))[0]
            if incl > fr.MAX_CAPLEN:
                return f"{where}: bogus caplen {incl} (> {fr.MAX_CAPLEN}) ({what}){rest}"
            return f"{where}: caplen {incl} runs past the block ({what}){rest}"
        if btype == fr.PCAPNG_SPB:
            if self.section.n_interfaces == 0:
                return f"{where}: simple packet block in a section without interfaces{rest}"
            return f"{where}: bogus simple packet block ({what}){rest}"
        return f"{where}: unreadable block ({what}){rest}"


# =========================================== reader ============================================

class TraceReader:
    """One pass over a capture. Context manager; iterate for :class:`PacketChunk` objects.

    ``info`` (:class:`TraceInfo`) has the header fields from the moment the reader is open and the
    counts, warnings and hash once iteration has finished.
    """

    def __init__(self, path: str | os.PathLike, *, chunk_packets: int = 1 << 20,
                 progress: Callable[[int, int], None] | None = None,
                 block_size: int = DEFAULT_BLOCK_SIZE, sha256: bool = False) -> None:
        if chunk_packets < 1:
            raise ValueError("chunk_packets must be >= 1")
        self.path = Path(path)
        self.chunk_packets = int(chunk_packets)
        self.progress = progress
        self._src = ByteSource(path, sha256=sha256)
        self._used = False
        self._packets = 0
        self._stats = fr.new_stats()
        self._lt_counts = np.zeros(65536, np.int64)
        self._avg_rec = 0.0
        try:
            self._buf = np.empty(max(int(block_size), 64), np.uint8)
            self._pos = 0
            self._base = 0
            self._fill = 0
            self._eof = False
            self._read_more()
            self._open_header()
        except BaseException:
            self._src.close()
            raise

    # -- buffer ----------------------------------------------------------------------------------
    def _read_more(self) -> None:
        """Move the unread tail to the front, grow the buffer if the tail fills it, read more."""
        src = self._src
        src.sync()
        buf, pos, fill = self._buf, self._pos, self._fill
        keep = fill - pos
        if pos == 0 and fill == buf.shape[0]:
            new = np.empty(buf.shape[0] * 2, np.uint8)
            new[:keep] = buf[:keep]
            self._buf = buf = new
        elif pos:
            buf[:keep] = buf[pos:fill]
            self._base += pos
        self._pos, self._fill = 0, keep
        got = src.readinto(memoryview(buf)[keep:])
        self._fill += got
        if got == 0:
            self._eof = True
        if self.progress is not None:
            self.progress(src.raw_position(), src.file_size)

    def _fail(self, problem: str, *, record: int | None = None, offset: int | None = None) -> NoReturn:
        raise TraceError(self.path, problem, record=record, offset=offset)

    def _open_header(self) -> None:
        src = self._src
        while self._fill < 4 and not self._eof:
            self._read_more()
        if self._fill == 0:
            if src.compression:
                self._fail(f"empty after {src.compression} decompression"
                           + (f" ({src.stream_error})" if src.stream_error else ""))
            self._fail("empty file (0 bytes)")
        head = bytes(self._buf[:4])
        fmt = sniff_format(head)
        if fmt is None:
            inner = f" after {src.compression} decompression" if src.compression else ""
            self._fail(f"not a pcap or pcapng capture (unknown magic 0x{head.hex()}{inner})", offset=0)
        self._header_warnings: list[str] = []
        if fmt == "pcap":
            while self._fill < 24 and not self._eof:
                self._read_more()
            try:
                hdr = fr.parse_pcap_header(bytes(self._buf[:min(self._fill, 24)]))
            except ValueError as e:
                self._fail(str(e), offset=0)
            self._framer: _PcapFramer | _PcapngFramer = _PcapFramer(hdr)
            self._header_warnings.extend(hdr.warnings)
            self._pos = 24
        else:
            self._framer = _PcapngFramer()
            self._prime_pcapng()
        self.info = self._make_info(fmt)
        self._refresh_info()

    def _prime_pcapng(self) -> None:
        """Parse the first section header and the interface blocks before the first packet."""
        fm = self._framer
        while True:
            end = self._fill
            if end - self._pos >= 8 and fm.sections:
                btype = struct.unpack(fm._order() + "I", bytes(self._buf[self._pos:self._pos + 4]))[0]
                if btype not in (PCAPNG_SHB, fr.PCAPNG_IDB):
                    return
            try:
                new = fm.python_block(self._buf, self._pos, end, self._stats, 1, self._base)
            except fr.FramingDamage as d:
                self._fail(d.message.split(": ", 1)[-1], offset=d.offset)
            if new is not None:
                self._pos = new
                continue
            if self._eof:
                if not fm.sections:
                    self._fail(f"section header block cut short ({end - self._pos} bytes)",
                               offset=self._base + self._pos)
                return  # header blocks only, or a cut block that iteration reports
            self._read_more()

    def _make_info(self, fmt: str) -> TraceInfo:
        fm = self._framer
        src = self._src
        first = fm.sections[0]
        return TraceInfo(path=str(self.path), file_size=src.file_size, format=fmt,
                         compression=src.compression, byte_order=first.byte_order,
                         version=first.version, ts_resolution="", snaplen=None)

    def _refresh_info(self) -> None:
        fm = self._framer
        info = self.info
        ifaces = fm.interfaces
        info.sections = [s.to_dict() for s in fm.sections]
        info.interfaces = [i.to_dict() for i in ifaces]
        # distinct values in order of first appearance (dict keys keep insertion order)
        info.linktypes = list(dict.fromkeys(linktype_label(i.linktype) for i in ifaces))
        info.ts_resolution = ",".join(sorted({i.ts_resolution for i in ifaces}))
        snaps = list(dict.fromkeys(i.snaplen for i in ifaces))
        info.snaplens = snaps
        info.snaplen = max(snaps) if snaps else None
        warnings = list(self._header_warnings)
        if isinstance(fm, _PcapngFramer):
            warnings.extend(fm.warnings)
        info.warnings = warnings
        info.packets = self._packets

    # -- iteration -------------------------------------------------------------------------------
    def __enter__(self) -> TraceReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._src.close()

    def __iter__(self) -> Iterator[PacketChunk]:
        for batch in self.iter_frames():
            yield _decode(batch)

    def iter_frames(self) -> Iterator[FrameBatch]:
        """Framing only: :class:`FrameBatch` objects (the buffer is reused between batches)."""
        if self._used:
            raise RuntimeError("a TraceReader can be iterated once; open the trace again")
        self._used = True
        self._refresh_info()
        try:
            yield from self._frames()
        except BaseException:  # error or the consumer stopped early: info stays incomplete
            self._src.close()
            raise
        self._finish()

    def _new_out(self) -> _Out:
        left = self._fill - self._pos
        if self._avg_rec > 0:
            est = int(left / self._avg_rec * 1.05) + 64
        else:
            est = _FIRST_CAPACITY
        return _Out(min(self.chunk_packets, max(16, est)))

    def _emit(self, out: _Out, n: int) -> FrameBatch | None:
        if n == 0:
            return None
        first = self._packets
        lt = out.linktype[:n]
        if isinstance(self._framer, _PcapFramer):
            self._lt_counts[int(self._framer.hdr.linktype)] += n
        else:
            self._lt_counts += np.bincount(lt, minlength=65536)[:65536]
        self._packets += n
        return FrameBatch(first_index=first, buf=self._buf, data_off=out.data_off[:n],
                          cap_len=out.cap_len[:n], wire_len=out.wire_len[:n], ts_ns=out.ts_ns[:n],
                          interface=out.interface[:n], linktype=lt)

    def _frames(self) -> Iterator[FrameBatch]:
        fm = self._framer
        out = self._new_out()
        n = 0
        framed_bytes = 0
        framed_recs = 0
        while True:
            start_pos, n0 = self._pos, n
            st, pos, n = fm.frame(self._buf, self._pos, self._fill, out, n, self._stats,
                                  self._packets, self._base)
            fm.fill_constant_columns(out, n0, n)
            self._pos = pos
            framed_bytes += pos - start_pos
            framed_recs += n - n0
            if framed_recs:
                self._avg_rec = framed_bytes / framed_recs
            if st == fr.ST_FULL:
                if n >= self.chunk_packets:
                    batch = self._emit(out, n)
                    if batch is not None:
                        yield batch
                    out, n = self._new_out(), 0
                else:
                    left = self._fill - self._pos
                    est = int(left / max(self._avg_rec, 16.0) * 1.05) + 64
                    out.grow(min(self.chunk_packets, n + est), n)
                continue
            if st == fr.ST_NEED_MORE and not self._eof:
                batch = self._emit(out, n)
                if batch is not None:
                    yield batch
                n = 0
                self._read_more()
                out = self._new_out()
                continue
            # end of stream (clean or cut) or a bogus record: keep what we have, then stop
            batch = self._emit(out, n)
            n = 0
            if batch is not None:
                yield batch
            if self._pos < self._fill or st == fr.ST_BOGUS:
                self._stop_damaged(at_eof=(st == fr.ST_NEED_MORE))
            elif self._src.stream_error:
                self._damage(f"{self._src.stream_error}; the packets before it are kept",
                             record=self._packets + 1, offset=self._base + self._pos)
            return

    def _stop_damaged(self, at_eof: bool) -> None:
        offset = self._base + self._pos
        record = self._packets + 1
        rest = None
        if self._src.compression is None and not at_eof:
            rest = max(self._src.file_size - offset, 0)
        msg = self._framer.describe_stop(self._buf, self._pos, self._fill, record, offset, rest)
        if self._src.stream_error:
            msg += f" ({self._src.stream_error})"
        self._damage(msg, record=record, offset=offset)

    def _damage(self, msg: str, *, record: int, offset: int) -> None:
        if self._packets == 0:
            problem = msg.split(": ", 1)[-1] if msg.startswith(("record ", "block ")) else msg
            raise TraceError(self.path, problem + "; no complete packet before it",
                             record=record, offset=offset)
        self._damage_msg = msg

    def _finish(self) -> None:
        info = self.info
        self._refresh_info()
        warnings = info.warnings
        warnings.extend(_stats_warnings(self._stats, self.info))
        counts = {int(lt): int(c) for lt, c in enumerate(self._lt_counts) if c}
        info.linktype_packets = {linktype_label(lt): c for lt, c in counts.items()}
        unsup = {linktype_label(lt): c for lt, c in counts.items() if not is_supported(lt)}
        info.unsupported_linktypes = unsup
        info.unsupported_packets = sum(unsup.values())
        if unsup:
            desc = ", ".join(f"{k}: {v}" for k, v in unsup.items())
            n_un = info.unsupported_packets
            warnings.append(f"{n_un} packet{'s' if n_un != 1 else ''} of link types the decoder does not "
                            f"handle ({desc}): kept with fields empty (ip_version 0)")
        msg = getattr(self, "_damage_msg", None)
        if msg:
            warnings.append(msg + " (trace truncated; the packets before it are kept)")
            info.truncated = True
        info.sha256 = self._src.finish_hash()
        info.complete = True
        self._src.close()


def _stats_warnings(stats: np.ndarray, info: TraceInfo) -> list[str]:
    """One line per kind of anomaly the kernels counted."""
    out = []

    def row(k):
        r = stats[k]
        return int(r[fr.C_COUNT]), int(r[fr.C_RECORD]), int(r[fr.C_OFFSET]), int(r[fr.C_VAL_A]), int(r[fr.C_VAL_B])

    def times(c: int, what: str) -> str:
        return f"{c} {what}{'s' if c != 1 else ''}"

    c, rec, off, a, b = row(fr.K_CAPLEN_GT_SNAPLEN)
    if c:
        out.append(f"record {rec} at byte offset {off}: caplen {a} > snaplen {b} "
                   f"({times(c, 'record')} like this, kept as captured)")
    c, rec, off, a, b = row(fr.K_ORIG_LT_CAP)
    if c:
        out.append(f"record {rec} at byte offset {off}: origlen {a} < caplen {b} "
                   f"({times(c, 'record')} like this, kept as recorded)")
    c, rec, off, a, b = row(fr.K_SUBSEC_RANGE)
    if c:
        out.append(f"record {rec} at byte offset {off}: sub-second timestamp field {a} out of range "
                   f"for {info.ts_resolution} ({times(c, 'record')} like this, kept as "
                   f"seconds * 1e9 + field * scale)")
    c, rec, off, a, b = row(fr.K_TS_CLAMPED)
    if c:
        out.append(f"record {rec} at byte offset {off}: timestamp beyond the int64 nanosecond range "
                   f"(after year 2262; interface {a}) ({times(c, 'record')} like this, clamped to "
                   f"{np.iinfo(np.int64).max} ns)")
    c, rec, off, a, b = row(fr.K_TRAILER_MISMATCH)
    if c:
        out.append(f"block at byte offset {off}: trailing block length {a} != leading length {b} "
                   f"({times(c, 'block')} like this, leading length used)")
    return out


# ========================================== decoding ===========================================

def _decode(batch: FrameBatch) -> PacketChunk:
    """Framing columns + the decoder's fields -> one PacketChunk (decoded before the buffer moves on)."""
    fields = decode_fields(batch.buf, batch.data_off, batch.cap_len, batch.wire_len, batch.linktype)
    fields.update({name: getattr(batch, name) for name in FRAMING_COLUMNS})
    return PacketChunk(first_index=batch.first_index, **fields)


# ========================================= public API ==========================================

def open_trace(path: str | os.PathLike, *, chunk_packets: int = 1 << 20,
               progress: Callable[[int, int], None] | None = None,
               block_size: int = DEFAULT_BLOCK_SIZE, sha256: bool = False) -> TraceReader:
    """Open a capture for one streaming pass (see the module docstring for the damage policy).

    ``chunk_packets``: at most this many packets per yielded chunk (chunks end at read-buffer
    boundaries, so they are often smaller). ``progress(bytes_done, bytes_total)``: called after
    every buffer fill with raw file bytes consumed and the file size. ``block_size``: read buffer
    size in bytes (tests make it tiny to force records across buffer boundaries). ``sha256``: also
    hash the raw file bytes while reading (``info.sha256``, else None); the hash runs on a helper
    thread, but at ~2.1 GB/s it is as much CPU as the ingest itself, so only callers that record
    provenance (inspect, replay, batch) ask for it.
    Raises :class:`~pipeline.errors.TraceError` for unusable input.
    """
    return TraceReader(path, chunk_packets=chunk_packets, progress=progress, block_size=block_size,
                       sha256=sha256)


def read_trace(path: str | os.PathLike, **kw) -> tuple[PacketChunk, TraceInfo]:
    """The whole trace as one :class:`PacketChunk` plus its complete :class:`TraceInfo`."""
    with open_trace(path, **kw) as reader:
        chunks = list(reader)
        info = reader.info
    if not chunks:
        return PacketChunk.empty(), info
    return (chunks[0] if len(chunks) == 1 else PacketChunk.concat(chunks)), info
