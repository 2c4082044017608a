"""The slow baseline of issue 3's speed target: decode every packet with dpkt objects into columns.

``dpkt_packet_chunks(path)`` yields the same ``PacketChunk`` columns as ``pipeline.ingest.open_trace``
(classic pcap, Ethernet with 802.1Q tags, IPv4/IPv6, TCP/UDP), but built the way a straightforward
dpkt program would: ``dpkt.pcap`` file and record headers (``FileHdr``/``PktHdr``, so the wire
length is kept, which ``pcap.Reader``'s iteration drops), then ``dpkt.ethernet.Ethernet(buf)`` ->
``IP``/``IP6`` -> ``TCP``/``UDP`` objects per packet, fields appended to Python lists, one numpy
array per column per chunk.  Lengths come from header fields (the captures are snaplen-truncated).

Used by ``bench_replay.py`` as a child process, ``python dpkt_baseline.py replay TRACE --out DIR``:
the real ``pipeline`` CLI with every ``open_trace`` swapped for :class:`DpktTraceReader`, so the
same replay model, saturation search and Parquet output run on dpkt-decoded columns.  The columns
are checked equal to ``open_trace``'s, column by column, on the benchmark trace (bench_replay.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import numpy as np

from pipeline.ingest.columns import PACKET_COLUMNS, PacketChunk

_V4_MAPPED = 0xFFFF << 32


def _addr(raw: bytes) -> tuple[int, int]:
    """(hi, lo) 64-bit halves of an address as in columns.py (IPv4 as IPv4-mapped IPv6)."""
    if len(raw) == 4:
        return 0, _V4_MAPPED | int.from_bytes(raw, "big")
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def dpkt_packet_chunks(path: str | Path, chunk_packets: int = 1 << 18) -> Iterator[PacketChunk]:
    """Decode a classic-pcap Ethernet trace with dpkt objects; yield ``PacketChunk``s.

    Supports what the benchmark traces hold (Ethernet, 802.1Q/802.1ad, IPv4, IPv6 without extension
    headers, TCP, UDP); anything else keeps its L2 fields and zeros above, like the fast path.
    """
    names = list(PACKET_COLUMNS)
    with open(path, "rb") as fh:
        fhdr = dpkt.pcap.LEFileHdr(fh.read(dpkt.pcap.LEFileHdr.__hdr_len__))
        if fhdr.magic == dpkt.pcap.TCPDUMP_MAGIC:
            pkt_hdr, ts_mul = dpkt.pcap.LEPktHdr, 1000
        elif fhdr.magic == dpkt.pcap.TCPDUMP_MAGIC_NANO:
            pkt_hdr, ts_mul = dpkt.pcap.LEPktHdr, 1
        else:
            raise ValueError(f"{path}: the dpkt baseline reads little-endian classic pcap only")
        linktype = fhdr.linktype
        hlen = pkt_hdr.__hdr_len__
        cols: dict[str, list] = {k: [] for k in names}
        first = 0
        count = 0
        while True:
            hbuf = fh.read(hlen)
            if len(hbuf) < hlen:
                break
            h = pkt_hdr(hbuf)
            buf = fh.read(h.caplen)
            eth = dpkt.ethernet.Ethernet(buf)
            tags = getattr(eth, "vlan_tags", None) or []
            ethertype = tags[-1].type if tags else eth.type  # innermost, as in columns.py
            ipv = proto = sport = dport = flags = tot = pay = 0
            s_hi = s_lo = d_hi = d_lo = 0
            l3 = eth.data
            if isinstance(l3, dpkt.ip.IP):
                ipv, proto, tot = 4, l3.p, l3.len
                s_hi, s_lo = _addr(l3.src)
                d_hi, d_lo = _addr(l3.dst)
                l4_len = l3.len - l3.hl * 4
            elif isinstance(l3, dpkt.ip6.IP6):
                ipv, proto, tot = 6, l3.nxt, 40 + l3.plen
                s_hi, s_lo = _addr(l3.src)
                d_hi, d_lo = _addr(l3.dst)
                l4_len = l3.plen
            l4 = l3.data if ipv else None
            if isinstance(l4, dpkt.tcp.TCP):
                sport, dport, flags = l4.sport, l4.dport, l4.flags
                pay = max(l4_len - l4.off * 4, 0)
            elif isinstance(l4, dpkt.udp.UDP):
                sport, dport = l4.sport, l4.dport
                pay = max(l4_len - 8, 0)
            row = (
                (h.tv_sec * 1_000_000_000 + h.tv_usec * ts_mul), h.len, h.caplen, 0, linktype, ethertype,
                tags[0].id if tags else -1, len(tags), int.from_bytes(eth.src, "big"),
                int.from_bytes(eth.dst, "big"), ipv, s_hi, s_lo, d_hi, d_lo, proto, sport, dport, flags,
                tot, pay,
            )
            for k, v in zip(names, row, strict=True):
                cols[k].append(v)
            count += 1
            if count == chunk_packets:
                yield _chunk(cols, first)
                first += count
                count = 0
                cols = {k: [] for k in names}
        if count:
            yield _chunk(cols, first)


def _chunk(cols: dict[str, list], first: int) -> PacketChunk:
    return PacketChunk(first_index=first,
                       **{k: np.array(v, dtype=PACKET_COLUMNS[k][0]) for k, v in cols.items()})


class DpktTraceReader:
    """Stand-in for ``pipeline.ingest.TraceReader`` that decodes with dpkt objects.

    Same protocol as the real reader (context manager, iterate for ``PacketChunk``s, ``info`` with
    counts and the file's SHA-256 once iteration finished), so the pipeline's replay, store and CLI
    run unchanged on top of it.  Hashing is done as the real reader does (over the raw bytes).
    """

    def __init__(self, path: str | Path, *, chunk_packets: int = 1 << 20, progress=None) -> None:
        from pipeline.ingest import TraceInfo

        self.path = Path(path)
        self.chunk_packets = chunk_packets
        self.progress = progress
        self.info = TraceInfo(path=str(path), file_size=self.path.stat().st_size, format="pcap",
                              compression=None, byte_order="little", version="2.4", ts_resolution="usec",
                              snaplen=None)

    def __enter__(self) -> DpktTraceReader:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __iter__(self) -> Iterator[PacketChunk]:
        import hashlib

        n = 0
        for chunk in dpkt_packet_chunks(self.path, self.chunk_packets):
            n += len(chunk)
            if self.progress is not None:
                self.progress(n, 0)
            yield chunk
        h = hashlib.sha256()
        with open(self.path, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
        self.info.packets = n
        self.info.sha256 = h.hexdigest()
        self.info.linktypes = ["EN10MB(1)"]
        self.info.linktype_packets = {"EN10MB(1)": n}
        self.info.complete = True


def use_dpkt_decoder() -> None:
    """Make every ``open_trace`` the pipeline calls return a :class:`DpktTraceReader`."""
    import pipeline.ingest
    import pipeline.ingest.reader

    def open_trace(path, *, chunk_packets: int = 1 << 20, progress=None, **_kw):
        return DpktTraceReader(path, chunk_packets=chunk_packets, progress=progress)

    for mod in (pipeline.ingest, pipeline.ingest.reader):
        mod.open_trace = open_trace
    for name in ("pipeline.api", "pipeline.replay"):
        mod = sys.modules.get(name)
        if mod is None:
            __import__(name)
            mod = sys.modules[name]
        if hasattr(mod, "open_trace"):
            mod.open_trace = open_trace


def main() -> int:
    """``dpkt_baseline.py TRACE`` decodes only; ``dpkt_baseline.py replay TRACE --out DIR ...`` runs the
    pipeline CLI with the argument list given, every trace read through dpkt objects."""
    if len(sys.argv) >= 2 and sys.argv[1] not in ("-h", "--help") and not Path(sys.argv[1]).exists():
        use_dpkt_decoder()
        from pipeline.cli import main as cli_main

        sys.argv = ["pipeline", *sys.argv[1:]]
        cli_main()  # argv from sys.argv, exactly as the `pipeline` console script (same fast exit)
        return 0
    ap = argparse.ArgumentParser(description="dpkt-object decode of a pcap into pipeline's columns (the slow "
                                             "baseline); `dpkt_baseline.py replay TRACE --out DIR` runs "
                                             "`pipeline replay` on top of it")
    ap.add_argument("trace", type=Path)
    a = ap.parse_args()
    t0 = time.perf_counter()
    n = sum(len(c) for c in dpkt_packet_chunks(a.trace))
    print(f"{n} packets decoded with dpkt in {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
