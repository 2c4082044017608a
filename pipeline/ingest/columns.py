"""The per-packet columns the ingest produces: names, dtypes, meaning.

One concept, one place: every layer (decode kernels, models, Parquet store, reports) takes the
column names and dtypes from here.

Addresses: IPv4 and IPv6 are both held as 128-bit values split in two big-endian uint64 halves
(``*_ip_hi``, ``*_ip_lo``); IPv4 is IPv4-mapped (``::ffff:a.b.c.d``), so ``hi == 0`` and
``lo >> 32 == 0xFFFF``. MACs are 48-bit values in a uint64 (first octet most significant).
Missing values: 0 for addresses/MACs/ports/flags, ``ip_version == 0`` means no IP header decoded,
``vlan_id == -1`` means untagged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: column name -> (numpy dtype, meaning with units)
PACKET_COLUMNS: dict[str, tuple[np.dtype, str]] = {
    "ts_ns": (np.dtype(np.int64), "capture timestamp, ns since the Unix epoch"),
    "wire_len": (np.dtype(np.uint32), "on-wire length (pcap orig_len / pcapng packet length), bytes"),
    "cap_len": (np.dtype(np.uint32), "captured length, bytes"),
    "interface": (np.dtype(np.uint32), "interface index (pcapng: global IDB index across sections; pcap: 0)"),
    "linktype": (np.dtype(np.uint16), "LINKTYPE_ value of the packet's interface"),
    "ethertype": (np.dtype(np.uint16), "innermost ethertype / protocol of the L3 payload (0x0800, 0x86DD, ...)"),
    "vlan_id": (np.dtype(np.int32), "outermost 802.1Q/802.1ad VLAN id, -1 when untagged"),
    "vlan_depth": (np.dtype(np.uint8), "number of VLAN tags"),
    "src_mac": (np.dtype(np.uint64), "source MAC (48 bits), 0 when the link type has none"),
    "dst_mac": (np.dtype(np.uint64), "destination MAC (48 bits), 0 when the link type has none"),
    "ip_version": (np.dtype(np.uint8), "4, 6, or 0 when no IP header could be decoded"),
    "src_ip_hi": (np.dtype(np.uint64), "source address, high 64 bits (IPv4-mapped for IPv4)"),
    "src_ip_lo": (np.dtype(np.uint64), "source address, low 64 bits"),
    "dst_ip_hi": (np.dtype(np.uint64), "destination address, high 64 bits"),
    "dst_ip_lo": (np.dtype(np.uint64), "destination address, low 64 bits"),
    "ip_proto": (np.dtype(np.uint8), "IP protocol / IPv6 upper-layer next header (6 TCP, 17 UDP, ...)"),
    "src_port": (np.dtype(np.uint16), "TCP/UDP source port, 0 otherwise"),
    "dst_port": (np.dtype(np.uint16), "TCP/UDP destination port, 0 otherwise"),
    "tcp_flags": (np.dtype(np.uint16), "TCP flags (low 9 bits incl. NS), 0 when not TCP"),
    "ip_total_len": (np.dtype(np.uint32), "IP datagram length from header fields, bytes (IPv4 total length; IPv6 40 + payload length; TSO/BIG TCP with a 0 field: derived from wire_len)"),
    "payload_len": (np.dtype(np.uint32), "L4 payload length from header fields, bytes (true size even when snaplen-truncated)"),
}


def format_ts_ns(ts_ns: int | None) -> str:
    """A ``ts_ns`` value as ``YYYY-MM-DD HH:MM:SS.nnnnnnnnn UTC`` ("-" for None; seconds since the
    epoch for a value no date can hold, e.g. from a hand-edited results file)."""
    if ts_ns is None:
        return "-"
    import datetime as dt

    secs, frac = divmod(int(ts_ns), 1_000_000_000)
    try:
        stamp = dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        stamp = f"{secs} s"
    return f"{stamp}.{frac:09d} UTC"


@dataclass
class PacketChunk:
    """A chunk of consecutive packets as columns (numpy arrays of equal length).

    ``first_index`` is the 0-based index of the chunk's first packet in the whole trace.
    """

    first_index: int
    ts_ns: np.ndarray
    wire_len: np.ndarray
    cap_len: np.ndarray
    interface: np.ndarray
    linktype: np.ndarray
    ethertype: np.ndarray
    vlan_id: np.ndarray
    vlan_depth: np.ndarray
    src_mac: np.ndarray
    dst_mac: np.ndarray
    ip_version: np.ndarray
    src_ip_hi: np.ndarray
    src_ip_lo: np.ndarray
    dst_ip_hi: np.ndarray
    dst_ip_lo: np.ndarray
    ip_proto: np.ndarray
    src_port: np.ndarray
    dst_port: np.ndarray
    tcp_flags: np.ndarray
    ip_total_len: np.ndarray
    payload_len: np.ndarray

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "first_index"}

    @classmethod
    def empty(cls, n: int = 0, first_index: int = 0) -> PacketChunk:
        return cls(first_index=first_index,
                   **{name: np.zeros(n, dtype=dt) for name, (dt, _) in PACKET_COLUMNS.items()})

    @classmethod
    def concat(cls, chunks: list[PacketChunk]) -> PacketChunk:
        if not chunks:
            return cls.empty()
        return cls(first_index=chunks[0].first_index,
                   **{name: np.concatenate([getattr(c, name) for c in chunks]) for name in PACKET_COLUMNS})


assert list(PACKET_COLUMNS) == [f.name for f in fields(PacketChunk) if f.name != "first_index"]
