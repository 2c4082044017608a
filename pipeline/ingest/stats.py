"""capinfos-style statistics of a trace, accumulated chunk by chunk in bounded memory.

Everything here is exact (no sampling): totals are running sums, distinct hosts and per-flow totals
live in numba hash tables (:mod:`pipeline.ingest.hashtable`) that grow with distinct keys, not with
packets. No pandas import on this path: ``pipeline inspect`` must start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.ingest.columns import PacketChunk
from pipeline.ingest.hashtable import KeyAggregator

IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58

_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min


def flow_keys(chunk: PacketChunk) -> np.ndarray:
    """Directed 5-tuple keys, (n, 5) uint64: src hi/lo, dst hi/lo, proto<<32 | sport<<16 | dport."""
    keys = np.empty((len(chunk), 5), dtype=np.uint64)
    keys[:, 0] = chunk.src_ip_hi
    keys[:, 1] = chunk.src_ip_lo
    keys[:, 2] = chunk.dst_ip_hi
    keys[:, 3] = chunk.dst_ip_lo
    keys[:, 4] = ((chunk.ip_proto.astype(np.uint64) << np.uint64(32))
                  | (chunk.src_port.astype(np.uint64) << np.uint64(16))
                  | chunk.dst_port.astype(np.uint64))
    return keys


@dataclass
class TraceStats:
    """Running totals over the packets of one trace (see :meth:`add`)."""

    packets: int = 0
    wire_bytes: int = 0
    captured_bytes: int = 0
    snap_truncated: int = 0
    max_cap_len: int = 0
    max_wire_len: int = 0
    min_ts_ns: int = _I64_MAX
    max_ts_ns: int = _I64_MIN
    first_record_ts_ns: int | None = None
    last_record_ts_ns: int | None = None
    non_monotonic: int = 0
    ipv4: int = 0
    ipv6: int = 0
    tcp: int = 0
    udp: int = 0
    icmp: int = 0
    other_l4: int = 0
    non_ip: int = 0
    vlan_tagged: int = 0
    payload_bytes: int = 0
    linktype_packets: dict[int, int] = field(default_factory=dict)
    hosts: KeyAggregator = field(default_factory=lambda: KeyAggregator(2))
    flows: KeyAggregator = field(default_factory=lambda: KeyAggregator(5))

    def add(self, chunk: PacketChunk) -> None:
        n = len(chunk)
        if n == 0:
            return
        ts = chunk.ts_ns
        self.packets += n
        self.wire_bytes += int(chunk.wire_len.sum(dtype=np.int64))
        self.captured_bytes += int(chunk.cap_len.sum(dtype=np.int64))
        self.snap_truncated += int(np.count_nonzero(chunk.cap_len < chunk.wire_len))
        self.max_cap_len = max(self.max_cap_len, int(chunk.cap_len.max()))
        self.max_wire_len = max(self.max_wire_len, int(chunk.wire_len.max()))
        self.min_ts_ns = min(self.min_ts_ns, int(ts.min()))
        self.max_ts_ns = max(self.max_ts_ns, int(ts.max()))
        if self.last_record_ts_ns is not None and int(ts[0]) < self.last_record_ts_ns:
            self.non_monotonic += 1
        self.non_monotonic += int(np.count_nonzero(ts[1:] < ts[:-1]))
        if self.first_record_ts_ns is None:
            self.first_record_ts_ns = int(ts[0])
        self.last_record_ts_ns = int(ts[-1])

        v = chunk.ip_version
        is_ip = v != 0
        self.ipv4 += int(np.count_nonzero(v == 4))
        self.ipv6 += int(np.count_nonzero(v == 6))
        self.non_ip += int(n - np.count_nonzero(is_ip))
        proto = chunk.ip_proto
        tcp = is_ip & (proto == IPPROTO_TCP)
        udp = is_ip & (proto == IPPROTO_UDP)
        icmp = is_ip & ((proto == IPPROTO_ICMP) | (proto == IPPROTO_ICMPV6))
        self.tcp += int(np.count_nonzero(tcp))
        self.udp += int(np.count_nonzero(udp))
        self.icmp += int(np.count_nonzero(icmp))
        self.other_l4 += int(np.count_nonzero(is_ip & ~(tcp | udp | icmp)))
        self.vlan_tagged += int(np.count_nonzero(chunk.vlan_depth > 0))
        self.payload_bytes += int(chunk.payload_len[is_ip].sum(dtype=np.int64))
        lts, counts = np.unique(chunk.linktype, return_counts=True)
        for lt, c in zip(lts.tolist(), counts.tolist(), strict=True):
            self.linktype_packets[lt] = self.linktype_packets.get(lt, 0) + c

        host_keys = np.empty((2 * n, 2), dtype=np.uint64)
        host_keys[:n, 0] = chunk.src_ip_hi
        host_keys[:n, 1] = chunk.src_ip_lo
        host_keys[n:, 0] = chunk.dst_ip_hi
        host_keys[n:, 1] = chunk.dst_ip_lo
        both_valid = np.concatenate([is_ip, is_ip])
        both_wire = np.concatenate([chunk.wire_len, chunk.wire_len])
        both_payload = np.concatenate([chunk.payload_len, chunk.payload_len])
        self.hosts.add(host_keys, both_valid, both_wire, both_payload, np.concatenate([ts, ts]))
        self.flows.add(flow_keys(chunk), is_ip, chunk.wire_len, chunk.payload_len, ts)

    def top_flows(self, k: int = 10) -> list[dict]:
        """The ``k`` directed flows with the most wire bytes (ties broken by key for stability)."""
        from pipeline.ingest.addresses import format_ip

        keys, packets, wire, payload, first, last = self.flows.items()
        if keys.shape[0] == 0:
            return []
        order = np.lexsort((keys[:, 4], keys[:, 3], keys[:, 1], -wire))[:k]
        out = []
        for i in order.tolist():
            meta = int(keys[i, 4])
            proto, sport, dport = meta >> 32, (meta >> 16) & 0xFFFF, meta & 0xFFFF
            out.append({
                "src": format_ip(int(keys[i, 0]), int(keys[i, 1])),
                "dst": format_ip(int(keys[i, 2]), int(keys[i, 3])),
                "proto": proto, "src_port": sport, "dst_port": dport,
                "packets": int(packets[i]), "wire_bytes": int(wire[i]), "payload_bytes": int(payload[i]),
                "duration_s": (int(last[i]) - int(first[i])) / 1e9,
            })
        return out

    def to_dict(self, top: int = 10) -> dict:
        """JSON-safe summary (timestamps in ns; rates from the min..max timestamp span)."""
        have_ts = self.packets > 0
        duration_ns = (self.max_ts_ns - self.min_ts_ns) if have_ts else 0
        dur_s = duration_ns / 1e9
        return {
            "packets": self.packets,
            "wire_bytes": self.wire_bytes,
            "captured_bytes": self.captured_bytes,
            "snap_truncated_packets": self.snap_truncated,
            "max_cap_len": self.max_cap_len,
            "max_wire_len": self.max_wire_len,
            "first_ts_ns": self.min_ts_ns if have_ts else None,
            "last_ts_ns": self.max_ts_ns if have_ts else None,
            "first_record_ts_ns": self.first_record_ts_ns,
            "last_record_ts_ns": self.last_record_ts_ns,
            "duration_s": dur_s,
            "avg_packet_rate_pps": self.packets / dur_s if dur_s > 0 else None,
            "avg_bit_rate_bps": self.wire_bytes * 8 / dur_s if dur_s > 0 else None,
            "avg_packet_size_bytes": self.wire_bytes / self.packets if self.packets else None,
            "timestamps_in_order": self.non_monotonic == 0,
            "non_monotonic_timestamps": self.non_monotonic,
            "ipv4_packets": self.ipv4,
            "ipv6_packets": self.ipv6,
            "tcp_packets": self.tcp,
            "udp_packets": self.udp,
            "icmp_packets": self.icmp,
            "other_l4_packets": self.other_l4,
            "non_ip_packets": self.non_ip,
            "vlan_tagged_packets": self.vlan_tagged,
            "l4_payload_bytes": self.payload_bytes,
            "distinct_hosts": self.hosts.count,
            "distinct_flows": self.flows.count,
            "top_flows": self.top_flows(top),
        }
