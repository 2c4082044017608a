"""capinfos-style statistics of a trace, accumulated chunk by chunk in bounded memory.

Everything here is exact (no sampling): totals are running sums, distinct hosts and per-flow totals
live in numba hash tables (:mod:`pipeline.ingest.hashtable`) that grow with distinct keys, not with
packets. No pandas import on this path: ``pipeline inspect`` must start fast.
"""

from __future__ import annotations

import numpy as np

from pipeline.ingest import hashtable
from pipeline.ingest.columns import PacketChunk
from pipeline.ingest.hashtable import KeyAggregator

_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min


class TraceStats:
    """Running totals over the packets of one trace (see :meth:`add`); one numba pass per chunk."""

    def __init__(self) -> None:
        self.counts = np.zeros(hashtable.N_COUNTS, dtype=np.int64)
        self.counts[hashtable.C_MIN_TS] = _I64_MAX
        self.counts[hashtable.C_MAX_TS] = _I64_MIN
        self.first_record_ts_ns: int | None = None
        self.hosts = KeyAggregator(2)
        self.flows = KeyAggregator(5)

    def add(self, chunk: PacketChunk) -> None:
        n = len(chunk)
        if n == 0:
            return
        if self.first_record_ts_ns is None:
            self.first_record_ts_ns = int(chunk.ts_ns[0])
        start = 0
        while start < n:
            h_room, f_room = self.hosts.room(), self.flows.room()
            if h_room < 2 or f_room < 1:
                self.hosts.ensure_room(max(2, 2 * self.hosts.count))
                self.flows.ensure_room(max(1, self.flows.count))
                continue
            start, new_h, new_f = hashtable.trace_stats_kernel(
                self.counts, chunk.ts_ns, chunk.wire_len, chunk.cap_len, chunk.ip_version, chunk.ip_proto,
                chunk.vlan_depth, chunk.payload_len, chunk.src_ip_hi, chunk.src_ip_lo, chunk.dst_ip_hi,
                chunk.dst_ip_lo, chunk.src_port, chunk.dst_port,
                self.hosts.keys, self.hosts.used, h_room, *self.flows.tables(), f_room, start)
            self.hosts.count += new_h
            self.flows.count += new_f

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
        c = self.counts
        H = hashtable
        packets = int(c[H.C_PACKETS])
        have_ts = packets > 0
        min_ts, max_ts = int(c[H.C_MIN_TS]), int(c[H.C_MAX_TS])
        duration_ns = (max_ts - min_ts) if have_ts else 0
        wire = int(c[H.C_WIRE])
        dur_s = duration_ns / 1e9
        return {
            "packets": packets,
            "wire_bytes": wire,
            "captured_bytes": int(c[H.C_CAPTURED]),
            "snap_truncated_packets": int(c[H.C_SNAP_TRUNC]),
            "max_cap_len": int(c[H.C_MAX_CAP]),
            "max_wire_len": int(c[H.C_MAX_WIRE]),
            "first_ts_ns": min_ts if have_ts else None,
            "last_ts_ns": max_ts if have_ts else None,
            "first_record_ts_ns": self.first_record_ts_ns,
            "last_record_ts_ns": int(c[H.C_LAST_TS]) if have_ts else None,
            "duration_s": dur_s,
            "avg_packet_rate_pps": packets / dur_s if dur_s > 0 else None,
            "avg_bit_rate_bps": wire * 8 / dur_s if dur_s > 0 else None,
            "avg_packet_size_bytes": wire / packets if packets else None,
            "timestamps_in_order": int(c[H.C_NON_MONO]) == 0,
            "non_monotonic_timestamps": int(c[H.C_NON_MONO]),
            "ipv4_packets": int(c[H.C_IPV4]),
            "ipv6_packets": int(c[H.C_IPV6]),
            "tcp_packets": int(c[H.C_TCP]),
            "udp_packets": int(c[H.C_UDP]),
            "icmp_packets": int(c[H.C_ICMP]),
            "other_l4_packets": int(c[H.C_OTHER_L4]),
            "non_ip_packets": int(c[H.C_NON_IP]),
            "vlan_tagged_packets": int(c[H.C_VLAN]),
            "l4_payload_bytes": int(c[H.C_PAYLOAD]),
            "distinct_hosts": self.hosts.count,
            "distinct_flows": self.flows.count,
            "top_flows": self.top_flows(top),
        }
