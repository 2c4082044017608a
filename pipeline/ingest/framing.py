"""Record framing: find every packet record in a byte buffer and fill per-packet arrays.

The numba kernels here walk pcap records / pcapng packet blocks over a region ``[pos, end)`` of a
``uint8`` buffer and write, per packet: the offset of its first data byte in the buffer
(``data_off``, int64), ``cap_len`` and ``wire_len`` (uint32), ``ts_ns`` (int64 ns since the epoch),
and for pcapng the global ``interface`` index and its ``linktype``. They stop and report where when

* the region ends inside a record (``ST_NEED_MORE``: the reader carries the partial record into
  the next buffer fill, or at end of file reports a cut tail),
* the output arrays are full (``ST_FULL``: the reader grows them or ends the chunk),
* a pcapng block needs Python (``ST_BLOCK``: Section Header and Interface Description Blocks are
  rare and carry options, so the reader's ``_PcapngFramer`` parses them in Python and resumes the
  kernel),
* the record is not credible (``ST_BOGUS``: caplen above ``max_caplen`` (256 KiB), impossible block
  length, packet block naming an interface the section has not described).

Anomalies that do not stop framing (caplen > snaplen, origlen < caplen, sub-second field out of
range, timestamps beyond the int64 ns range, pcapng trailing-length mismatch) are counted in a
``stats`` array (row per kind: count, first record number, first byte offset, two values) so the
reader can report each kind once, however many packets it hits. Skipped pcapng blocks (statistics,
name resolution, custom blocks: normal content) are counted there too but not reported.

Formats: pcap per draft-ietf-opsawg-pcap (https://www.tcpdump.org/manpages/pcap-savefile.5.html),
pcapng per draft-ietf-opsawg-pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html).
Timestamps: pcap ``sec * 1e9 + frac * scale`` (scale 1000 for the usec magic, 1 for nsec), kept as
recorded even when the sub-second field is out of range (the naive reading that the manifest and
dpkt use). pcapng: the 64-bit count in units of the interface's ``if_tsresol`` (10^-n or 2^-n s,
default 10^-6) plus ``if_tsoffset`` seconds. Simple Packet Blocks carry no timestamp: they get the
previous packet's timestamp in the file (0 if none yet). Values beyond int64 nanoseconds (after
year 2262) are clamped to the int64 maximum and counted.

numba rules followed: kernels take arrays and plain numbers only, ``cache=True``
(:func:`pipeline.kernels.jit.njit_cached`), helpers live in this module, ``nogil=True`` so a hash
thread can run beside them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from pipeline.ingest.linktypes import PCAP_LINKTYPE_MASK, PCAP_LINKTYPE_RESERVED_MASK, linktype_label
from pipeline.ingest.magic import PCAP_MAGIC_NSEC, PCAP_MAGIC_USEC, PCAPNG_SHB
from pipeline.kernels.jit import njit_cached

# ---- kernel status codes --------------------------------------------------------------------
ST_NEED_MORE = 0
ST_FULL = 1
ST_BLOCK = 2
ST_BOGUS = 3

# ---- stats rows (kinds of non-fatal anomalies) and columns ----------------------------------
K_CAPLEN_GT_SNAPLEN = 0
K_ORIG_LT_CAP = 1
K_SUBSEC_RANGE = 2
K_TS_CLAMPED = 3
K_TRAILER_MISMATCH = 4
K_SKIPPED_BLOCK = 5
N_KINDS = 6
C_COUNT, C_RECORD, C_OFFSET, C_VAL_A, C_VAL_B = range(5)
N_STAT_COLS = 5

#: caplen above this is not a packet but a damaged record header (libpcap's MAXIMUM_SNAPLEN).
MAX_CAPLEN = 262144
#: pcapng blocks longer than this are treated as damage (packet blocks are at most ~256 KiB plus options).
MAX_BLOCK_LEN = 64 << 20

PCAPNG_IDB = 0x00000001
PCAPNG_OPB = 0x00000002
PCAPNG_SPB = 0x00000003
PCAPNG_EPB = 0x00000006

INT64_MAX = np.iinfo(np.int64).max


def new_stats() -> np.ndarray:
    """A zeroed anomaly counter table (``first record`` set to -1 = none yet)."""
    s = np.zeros((N_KINDS, N_STAT_COLS), dtype=np.int64)
    s[:, C_RECORD] = -1
    return s


@njit_cached(nogil=True)
def _u16(buf, p, big):
    if big:
        return (np.int64(buf[p]) << 8) | np.int64(buf[p + 1])
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)


@njit_cached(nogil=True)
def _u32(buf, p, big):
    if big:
        return ((np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16)
                | (np.int64(buf[p + 2]) << 8) | np.int64(buf[p + 3]))
    return (np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
            | (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 3]) << 24))


@njit_cached(nogil=True)
def _note(stats, kind, record, offset, a, b):
    stats[kind, 0] += 1
    if stats[kind, 1] < 0:
        stats[kind, 1] = record
        stats[kind, 2] = offset
        stats[kind, 3] = a
        stats[kind, 4] = b


@njit_cached(nogil=True)
def frame_pcap(buf, pos, end, big_endian, ts_scale, frac_limit, snaplen, max_caplen,
               data_off, cap_len, wire_len, ts_ns, n0, stats, rec_base, file_base):
    """Walk pcap records in ``buf[pos:end]``; fill outputs from index ``n0``.

    ``ts_scale``: ns per sub-second unit (1000 usec, 1 nsec); ``frac_limit``: 1e6 or 1e9 (a
    sub-second field at or above it is counted, kept as recorded); ``snaplen``: the file header's
    (0 = no limit); ``rec_base``: global index of output 0 (1-based record numbers in ``stats`` are
    ``rec_base + i + 1``); ``file_base``: stream offset of ``buf[0]``.
    Returns ``(status, pos, n)``: where the walk stopped and how many outputs are filled.
    """
    n = n0
    cap = data_off.shape[0]
    while True:
        if end - pos < 16:
            return ST_NEED_MORE, pos, n
        incl = _u32(buf, pos + 8, big_endian)
        if incl > max_caplen:
            return ST_BOGUS, pos, n
        if pos + 16 + incl > end:
            return ST_NEED_MORE, pos, n
        if n >= cap:
            return ST_FULL, pos, n
        sec = _u32(buf, pos, big_endian)
        frac = _u32(buf, pos + 4, big_endian)
        orig = _u32(buf, pos + 12, big_endian)
        if frac >= frac_limit:
            _note(stats, K_SUBSEC_RANGE, rec_base + n + 1, file_base + pos, frac, 0)
        if snaplen > 0 and incl > snaplen:
            _note(stats, K_CAPLEN_GT_SNAPLEN, rec_base + n + 1, file_base + pos, incl, snaplen)
        if orig < incl:
            _note(stats, K_ORIG_LT_CAP, rec_base + n + 1, file_base + pos, orig, incl)
        data_off[n] = pos + 16
        cap_len[n] = incl
        wire_len[n] = orig
        ts_ns[n] = sec * 1000000000 + frac * ts_scale
        n += 1
        pos += 16 + incl


@njit_cached(nogil=True)
def _pcapng_ts_ns(hi, lo, mul, div, shift, off_ns):
    """64-bit pcapng timestamp (``hi``/``lo`` halves, in if_tsresol units) to int64 ns.

    Decimal resolutions 10^-n: ``* mul`` (n <= 9) or ``// div`` (n > 9); binary 2^-n: ``shift`` = n.
    Returns ``(ns, clamped)``; values beyond int64 ns are clamped to the int64 maximum.
    """
    if hi >= 0x80000000:
        return INT64_MAX, True
    ts = (hi << 32) | lo
    if shift > 0:
        sec = ts >> shift
        frac = ts & ((np.int64(1) << shift) - 1)
        if shift <= 33:
            frac_ns = (frac * 1000000000) >> shift
        else:
            frac_ns = ((frac >> (shift - 33)) * 1000000000) >> 33
        if sec > 9223372035:
            return INT64_MAX, True
        ns = sec * 1000000000 + frac_ns
    elif div > 1:
        ns = ts // div
    else:
        if ts > INT64_MAX // mul:
            return INT64_MAX, True
        ns = ts * mul
    if off_ns != 0:
        if off_ns > 0 and ns > INT64_MAX - off_ns:
            return INT64_MAX, True
        ns += off_ns
    return ns, False


@njit_cached(nogil=True)
def frame_pcapng(buf, pos, end, big_endian, if_base, n_if, if_linktype, if_snaplen,
                 if_ts_mul, if_ts_div, if_ts_shift, if_ts_off_ns, max_caplen, max_block_len,
                 prev_ts, data_off, cap_len, wire_len, ts_ns, interface, linktype, n0, stats,
                 rec_base, file_base):
    """Walk pcapng blocks of one section in ``buf[pos:end]``: EPB, SPB and OPB become packets,
    other blocks except SHB/IDB are skipped (counted); SHB/IDB stop the walk (``ST_BLOCK``).

    ``if_base``/``n_if``: global index of the section's first interface and how many it has;
    ``if_*`` arrays are indexed by global interface index. ``prev_ts``: timestamp given to a
    Simple Packet Block (the previous packet's). Returns ``(status, pos, n, prev_ts)``.
    """
    n = n0
    cap = data_off.shape[0]
    while True:
        if end - pos < 12:
            return ST_NEED_MORE, pos, n, prev_ts
        btype = _u32(buf, pos, big_endian)
        blen = _u32(buf, pos + 4, big_endian)
        if btype == PCAPNG_SHB or btype == PCAPNG_IDB:
            return ST_BLOCK, pos, n, prev_ts
        if blen < 12 or (blen & 3) != 0 or blen > max_block_len:
            return ST_BOGUS, pos, n, prev_ts
        if pos + blen > end:
            return ST_NEED_MORE, pos, n, prev_ts
        trail = _u32(buf, pos + blen - 4, big_endian)
        is_packet = btype == PCAPNG_EPB or btype == PCAPNG_SPB or btype == PCAPNG_OPB
        if is_packet and n >= cap:
            return ST_FULL, pos, n, prev_ts
        if trail != blen:
            _note(stats, K_TRAILER_MISMATCH, rec_base + n + 1, file_base + pos, trail, blen)
        if btype == PCAPNG_EPB or btype == PCAPNG_OPB:
            if blen < 32:
                return ST_BOGUS, pos, n, prev_ts
            if btype == PCAPNG_EPB:
                iid = _u32(buf, pos + 8, big_endian)
            else:
                iid = _u16(buf, pos + 8, big_endian)
            if iid >= n_if:
                return ST_BOGUS, pos, n, prev_ts
            incl = _u32(buf, pos + 20, big_endian)
            if incl > max_caplen or 28 + incl > blen - 4:
                return ST_BOGUS, pos, n, prev_ts
            orig = _u32(buf, pos + 24, big_endian)
            g = if_base + iid
            ts, clamped = _pcapng_ts_ns(_u32(buf, pos + 12, big_endian), _u32(buf, pos + 16, big_endian),
                                        if_ts_mul[g], if_ts_div[g], if_ts_shift[g], if_ts_off_ns[g])
            if clamped:
                _note(stats, K_TS_CLAMPED, rec_base + n + 1, file_base + pos, g, 0)
            data_off[n] = pos + 28
        elif btype == PCAPNG_SPB:
            if n_if == 0:
                return ST_BOGUS, pos, n, prev_ts
            g = if_base
            orig = _u32(buf, pos + 8, big_endian)
            incl = blen - 16
            if orig < incl:
                incl = orig
            if if_snaplen[g] > 0 and incl > if_snaplen[g]:
                incl = if_snaplen[g]
            if incl > max_caplen:
                return ST_BOGUS, pos, n, prev_ts
            ts = prev_ts
            data_off[n] = pos + 12
        else:
            _note(stats, K_SKIPPED_BLOCK, rec_base + n + 1, file_base + pos, btype, blen)
            pos += blen
            continue
        snap = if_snaplen[g]
        if snap > 0 and incl > snap:
            _note(stats, K_CAPLEN_GT_SNAPLEN, rec_base + n + 1, file_base + pos, incl, snap)
        if orig < incl:
            _note(stats, K_ORIG_LT_CAP, rec_base + n + 1, file_base + pos, orig, incl)
        cap_len[n] = incl
        wire_len[n] = orig
        ts_ns[n] = ts
        interface[n] = g
        linktype[n] = if_linktype[g]
        prev_ts = ts
        n += 1
        pos += blen


# ============================ Python side: headers and rare blocks ============================

def ts_resolution_name(decimal: bool, exponent: int) -> str:
    """``usec``/``nsec``/... for 10^-n, ``2^-n`` for binary resolutions."""
    if decimal:
        return {0: "sec", 3: "msec", 6: "usec", 9: "nsec", 12: "psec"}.get(exponent, f"1e-{exponent}")
    return f"2^-{exponent}"


@dataclass
class Interface:
    """One capture interface (pcap: the file; pcapng: one IDB, globally numbered)."""

    index: int
    linktype: int
    snaplen: int
    ts_decimal: bool = True
    ts_exponent: int = 6
    ts_offset_s: int = 0
    name: str | None = None
    section: int = 0

    @property
    def ts_resolution(self) -> str:
        return ts_resolution_name(self.ts_decimal, self.ts_exponent)

    def ts_params(self) -> tuple[int, int, int]:
        """(mul, div, shift) for :func:`_pcapng_ts_ns`. Absurd resolutions (finer than 2^-62 or
        10^-27 s) are capped there; no real writer produces them."""
        if not self.ts_decimal:
            n = min(self.ts_exponent, 62)
            return (10**9, 1, 0) if n == 0 else (1, 1, n)
        n = self.ts_exponent
        if n <= 9:
            return 10 ** (9 - n), 1, 0
        return 1, 10 ** min(n - 9, 18), 0

    def to_dict(self) -> dict:
        return {"index": self.index, "linktype": self.linktype,
                "linktype_name": linktype_label(self.linktype), "snaplen": self.snaplen,
                "ts_resolution": self.ts_resolution, "ts_offset_s": self.ts_offset_s,
                "name": self.name, "section": self.section}


@dataclass
class Section:
    """One pcapng section (or the pcap file header)."""

    index: int
    offset: int
    byte_order: str
    version: str
    first_interface: int = 0
    n_interfaces: int = 0

    def to_dict(self) -> dict:
        return {"index": self.index, "offset": self.offset, "byte_order": self.byte_order,
                "version": self.version, "first_interface": self.first_interface,
                "n_interfaces": self.n_interfaces}


class FramingDamage(Exception):
    """Framing cannot continue at a known place (a header block the reader parses in Python).

    ``message`` is the one-line description (byte offset included); ``offset`` the stream offset.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass
class PcapHeader:
    byte_order: str
    big_endian: bool
    version: str
    ts_decimal_exponent: int  # 6 usec, 9 nsec
    snaplen: int
    linktype: int
    warnings: list[str] = field(default_factory=list)


def parse_pcap_header(head: bytes) -> PcapHeader:
    """Parse the 24-byte pcap file header; raises ValueError with the problem when unusable."""
    if len(head) < 24:
        raise ValueError(f"pcap file header cut short ({len(head)} of 24 bytes)")
    magic_le = struct.unpack("<I", head[:4])[0]
    if magic_le in (PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC):
        order, big, magic = "<", False, magic_le
    else:
        order, big, magic = ">", True, struct.unpack(">I", head[:4])[0]
    major, minor, _thiszone, _sigfigs, snaplen, lt_field = struct.unpack(order + "HHiIII", head[4:24])
    warnings = []
    if (major, minor) != (2, 4):
        warnings.append(f"unusual pcap version {major}.{minor} in the file header (read as 2.4)")
    reserved = lt_field & PCAP_LINKTYPE_RESERVED_MASK
    if reserved:
        warnings.append(f"linktype reserved bits set: 0x{reserved:08x} (link type read from the low 16 bits)")
    return PcapHeader(byte_order="big" if big else "little", big_endian=big,
                      version=f"{major}.{minor}",
                      ts_decimal_exponent=9 if magic == PCAP_MAGIC_NSEC else 6,
                      snaplen=snaplen, linktype=lt_field & PCAP_LINKTYPE_MASK, warnings=warnings)


def parse_shb(buf: np.ndarray, pos: int, end: int) -> tuple[str, int, int, int] | None:
    """Section Header Block at ``buf[pos:]``: ``(byte_order, block_len, major, minor)``, or None when
    more bytes are needed. Raises ValueError (problem text) when it is not a usable SHB."""
    if end - pos < 12:
        return None
    raw = bytes(buf[pos:pos + 12])
    if raw[8:12] == b"\x4d\x3c\x2b\x1a":
        order = "<"
    elif raw[8:12] == b"\x1a\x2b\x3c\x4d":
        order = ">"
    else:
        raise ValueError(f"section header block with a bad byte-order magic 0x{raw[8:12].hex()}")
    blen = struct.unpack(order + "I", raw[4:8])[0]
    if blen < 28 or blen % 4 or blen > MAX_BLOCK_LEN:
        raise ValueError(f"section header block with an impossible length {blen}")
    if end - pos < blen:
        return None
    major, minor = struct.unpack(order + "HH", bytes(buf[pos + 12:pos + 16]))
    return ("little" if order == "<" else "big"), blen, major, minor


def parse_idb(block: bytes, order: str) -> tuple[int, int, dict, str | None]:
    """Interface Description Block body (whole block bytes): ``(linktype, snaplen, options, problem)``.

    Options read: if_name (2), if_tsresol (9), if_tsoffset (14). ``problem`` describes options that
    run past the block (the rest of the options is ignored)."""
    linktype, _reserved, snaplen = struct.unpack(order + "HHI", block[8:16])
    opts: dict = {}
    problem = None
    p, stop = 16, len(block) - 4
    while p + 4 <= stop:
        code, olen = struct.unpack(order + "HH", block[p:p + 4])
        if code == 0:
            break
        if p + 4 + olen > stop:
            problem = f"option {code} of length {olen} runs past the block"
            break
        val = block[p + 4:p + 4 + olen]
        if code == 2:
            opts["name"] = val.rstrip(b"\0").decode("utf-8", "replace")
        elif code == 9 and olen >= 1:
            opts["tsresol"] = val[0]
        elif code == 14 and olen >= 8:
            opts["tsoffset"] = struct.unpack(order + "q", val[:8])[0]
        p += 4 + ((olen + 3) & ~3)
    return linktype, snaplen, opts, problem
