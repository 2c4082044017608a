"""Exact streaming aggregation by key in numba: an open-addressing hash table held in arrays.

Used for per-flow totals (5-tuple keys) and distinct-host counts in ``pipeline inspect``
(:mod:`pipeline.ingest.stats`), without pandas and without holding the trace: the table grows with the
number of distinct keys, not packets. Keys are rows of a uint64 matrix (``n_words`` words per key);
each slot accumulates packets, bytes, payload bytes and first/last timestamp (ns). The one writer is
:func:`trace_stats_kernel`; :class:`KeyAggregator` owns the arrays and grows them.
"""

from __future__ import annotations

import numpy as np

from pipeline.kernels.jit import njit_cached


@njit_cached(inline="always")
def _mix(h, w):
    h ^= w + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6)) + (h >> np.uint64(2))
    h *= np.uint64(0xBF58476D1CE4E5B9)
    return h ^ (h >> np.uint64(31))


@njit_cached()
def _hash_row(keys, i, n_words):
    """The hash of key row ``i``: the same as ``_insert2``/``_insert5`` compute from scalars, so a
    table grown by :func:`rehash_kernel` is found again by the trace-statistics kernel."""
    h = np.uint64(0x9E3779B97F4A7C15)
    for w in range(n_words):
        h = _mix(h, keys[i, w])
    return h


@njit_cached()
def _insert(tab_keys, tab_used, keys, i, n_words, mask):
    """Slot of key row ``i`` in the table, inserting it if absent; returns (slot, is_new)."""
    slot = np.int64(_hash_row(keys, i, n_words) & mask)
    while True:
        if not tab_used[slot]:
            tab_used[slot] = True
            for w in range(n_words):
                tab_keys[slot, w] = keys[i, w]
            return slot, True
        same = True
        for w in range(n_words):
            if tab_keys[slot, w] != keys[i, w]:
                same = False
                break
        if same:
            return slot, False
        slot = (slot + 1) & mask


@njit_cached()
def rehash_kernel(o_keys, o_used, o_packets, o_bytes, o_payload, o_first, o_last,
                  tab_keys, tab_used, tab_packets, tab_bytes, tab_payload, tab_first, tab_last):
    """Move every used slot of the old table into the (larger, empty) new one, aggregates intact."""
    n_words = o_keys.shape[1]
    mask = np.int64(tab_used.shape[0] - 1)
    for i in range(o_used.shape[0]):
        if o_used[i]:
            slot, _ = _insert(tab_keys, tab_used, o_keys, i, n_words, mask)
            tab_packets[slot] = o_packets[i]
            tab_bytes[slot] = o_bytes[i]
            tab_payload[slot] = o_payload[i]
            tab_first[slot] = o_first[i]
            tab_last[slot] = o_last[i]


class KeyAggregator:
    """Exact totals per distinct key over a stream of packets (see module docstring)."""

    def __init__(self, n_words: int, capacity: int = 1 << 12) -> None:
        self.n_words = n_words
        self.count = 0
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self.keys = np.zeros((capacity, self.n_words), dtype=np.uint64)
        self.used = np.zeros(capacity, dtype=np.bool_)
        self.packets = np.zeros(capacity, dtype=np.int64)
        self.bytes = np.zeros(capacity, dtype=np.int64)
        self.payload = np.zeros(capacity, dtype=np.int64)
        self.first = np.zeros(capacity, dtype=np.int64)
        self.last = np.zeros(capacity, dtype=np.int64)

    def room(self) -> int:
        """New keys that fit before the table is more than half full."""
        return self.used.shape[0] // 2 - self.count

    def ensure_room(self, n_new: int) -> None:
        """Grow (by doubling) until at least ``n_new`` more keys fit."""
        cap = self.used.shape[0]
        while cap // 2 - self.count < n_new:
            cap *= 2
        if cap != self.used.shape[0]:
            self._grow(cap)

    def tables(self) -> tuple[np.ndarray, ...]:
        """The raw arrays (keys, used, packets, bytes, payload, first, last) for a kernel to fill."""
        return (self.keys, self.used, self.packets, self.bytes, self.payload, self.first, self.last)

    def _grow(self, capacity: int) -> None:
        old = self.tables()
        self._alloc(capacity)
        rehash_kernel(*old, self.keys, self.used, self.packets, self.bytes, self.payload, self.first,
                      self.last)

    def items(self) -> tuple[np.ndarray, ...]:
        """(keys, packets, bytes, payload, first_ts_ns, last_ts_ns) of every distinct key."""
        used = np.flatnonzero(self.used)
        return (self.keys[used], self.packets[used], self.bytes[used], self.payload[used],
                self.first[used], self.last[used])


# --- one-pass trace statistics -------------------------------------------------------------------
# Indices into the ``counts`` array of :func:`trace_stats_kernel`.
(C_PACKETS, C_WIRE, C_CAPTURED, C_SNAP_TRUNC, C_MAX_CAP, C_MAX_WIRE, C_MIN_TS, C_MAX_TS, C_NON_MONO,
 C_IPV4, C_IPV6, C_TCP, C_UDP, C_ICMP, C_OTHER_L4, C_NON_IP, C_VLAN, C_PAYLOAD, C_LAST_TS,
 C_HAVE_LAST) = range(20)
N_COUNTS = 20


@njit_cached(inline="always")
def _insert2(tab_keys, tab_used, a, b, mask):
    h = _mix(_mix(np.uint64(0x9E3779B97F4A7C15), a), b)
    slot = np.int64(h & mask)
    while True:
        if not tab_used[slot]:
            tab_used[slot] = True
            tab_keys[slot, 0] = a
            tab_keys[slot, 1] = b
            return slot, True
        if tab_keys[slot, 0] == a and tab_keys[slot, 1] == b:
            return slot, False
        slot = (slot + 1) & mask


@njit_cached(inline="always")
def _insert5(tab_keys, tab_used, a, b, c, d, e, mask):
    h = _mix(_mix(_mix(_mix(_mix(np.uint64(0x9E3779B97F4A7C15), a), b), c), d), e)
    slot = np.int64(h & mask)
    while True:
        if not tab_used[slot]:
            tab_used[slot] = True
            tab_keys[slot, 0] = a
            tab_keys[slot, 1] = b
            tab_keys[slot, 2] = c
            tab_keys[slot, 3] = d
            tab_keys[slot, 4] = e
            return slot, True
        if (tab_keys[slot, 0] == a and tab_keys[slot, 1] == b and tab_keys[slot, 2] == c
                and tab_keys[slot, 3] == d and tab_keys[slot, 4] == e):
            return slot, False
        slot = (slot + 1) & mask


@njit_cached(inline="always")
def _cached2(tab_keys, tab_used, a, b, mask, c0, c1):
    """``_insert2`` with a two-entry cache of recent slots (consecutive packets share hosts)."""
    if c0 >= 0 and tab_keys[c0, 0] == a and tab_keys[c0, 1] == b:
        return c0, False
    if c1 >= 0 and tab_keys[c1, 0] == a and tab_keys[c1, 1] == b:
        return c1, False
    return _insert2(tab_keys, tab_used, a, b, mask)


@njit_cached(inline="always")
def _same5(tab_keys, slot, a, b, c, d, e):
    return (slot >= 0 and tab_keys[slot, 4] == e and tab_keys[slot, 1] == b and tab_keys[slot, 3] == d
            and tab_keys[slot, 0] == a and tab_keys[slot, 2] == c)


@njit_cached(inline="always")
def _account(slot, is_new, t_packets, t_bytes, t_payload, t_first, t_last, wire, payload, ts):
    if is_new:
        t_first[slot] = ts
        t_last[slot] = ts
    t_packets[slot] += 1
    t_bytes[slot] += wire
    t_payload[slot] += payload
    if ts < t_first[slot]:
        t_first[slot] = ts
    if ts > t_last[slot]:
        t_last[slot] = ts


@njit_cached()
def trace_stats_kernel(counts, ts_ns, wire_len, cap_len, ip_version, ip_proto, vlan_depth, payload_len,
                       src_hi, src_lo, dst_hi, dst_lo, src_port, dst_port,
                       h_keys, h_used, h_room,
                       f_keys, f_used, f_packets, f_bytes, f_payload, f_first, f_last, f_room, start):
    """One pass over rows ``start..`` of a chunk: running totals into ``counts`` (see C_*), distinct
    hosts (2-word keys; membership only, the host table's aggregates stay 0) and directed 5-tuple
    flows (with packets, bytes, payload, first/last ts) into their tables.

    Stops before a row that could exceed a table's room (``h_room``/``f_room`` new keys) so the
    caller can grow it and resume; returns (next row, new hosts, new flows). Totals are kept in
    locals and written back once (array stores in the loop defeat LLVM's register allocation).
    """
    h_mask = np.int64(h_used.shape[0] - 1)
    f_mask = np.int64(f_used.shape[0] - 1)
    new_h = 0
    new_f = 0
    packets = counts[C_PACKETS]
    wire_sum = counts[C_WIRE]
    cap_sum = counts[C_CAPTURED]
    snap_trunc = counts[C_SNAP_TRUNC]
    max_cap = counts[C_MAX_CAP]
    max_wire = counts[C_MAX_WIRE]
    min_ts = counts[C_MIN_TS]
    max_ts = counts[C_MAX_TS]
    non_mono = counts[C_NON_MONO]
    n_v4 = counts[C_IPV4]
    n_v6 = counts[C_IPV6]
    n_tcp = counts[C_TCP]
    n_udp = counts[C_UDP]
    n_icmp = counts[C_ICMP]
    n_other = counts[C_OTHER_L4]
    n_non_ip = counts[C_NON_IP]
    n_vlan = counts[C_VLAN]
    payload_sum = counts[C_PAYLOAD]
    last_ts = counts[C_LAST_TS]
    have_last = counts[C_HAVE_LAST]
    i = start
    n = ts_ns.shape[0]
    h_c0 = -1  # recently used slots: bulk traffic alternates between a few hosts/flows
    h_c1 = -1
    f_c0 = -1
    f_c1 = -1
    while i < n:
        if new_h + 2 > h_room or new_f + 1 > f_room:
            break
        t = ts_ns[i]
        w = np.int64(wire_len[i])
        c = np.int64(cap_len[i])
        packets += 1
        wire_sum += w
        cap_sum += c
        if c < w:
            snap_trunc += 1
        max_cap = max(max_cap, c)
        max_wire = max(max_wire, w)
        min_ts = min(min_ts, t)
        max_ts = max(max_ts, t)
        if have_last != 0 and t < last_ts:
            non_mono += 1
        last_ts = t
        have_last = 1
        if vlan_depth[i] > 0:
            n_vlan += 1
        v = ip_version[i]
        if v == 0:
            n_non_ip += 1
            i += 1
            continue
        if v == 4:
            n_v4 += 1
        else:
            n_v6 += 1
        p = ip_proto[i]
        if p == 6:
            n_tcp += 1
        elif p == 17:
            n_udp += 1
        elif p == 1 or p == 58:
            n_icmp += 1
        else:
            n_other += 1
        pl = np.int64(payload_len[i])
        payload_sum += pl
        s_slot, is_new = _cached2(h_keys, h_used, src_hi[i], src_lo[i], h_mask, h_c0, h_c1)
        if is_new:
            new_h += 1
        d_slot, is_new = _cached2(h_keys, h_used, dst_hi[i], dst_lo[i], h_mask, h_c0, h_c1)
        if is_new:
            new_h += 1
        h_c0 = s_slot
        h_c1 = d_slot
        meta = ((np.uint64(p) << np.uint64(32)) | (np.uint64(src_port[i]) << np.uint64(16))
                | np.uint64(dst_port[i]))
        a, b, c_, d = src_hi[i], src_lo[i], dst_hi[i], dst_lo[i]
        if _same5(f_keys, f_c0, a, b, c_, d, meta):
            slot, is_new = f_c0, False
        elif _same5(f_keys, f_c1, a, b, c_, d, meta):
            slot, is_new = f_c1, False
            f_c1 = f_c0
            f_c0 = slot
        else:
            slot, is_new = _insert5(f_keys, f_used, a, b, c_, d, meta, f_mask)
            f_c1 = f_c0
            f_c0 = slot
        if is_new:
            new_f += 1
        _account(slot, is_new, f_packets, f_bytes, f_payload, f_first, f_last, w, pl, t)
        i += 1
    counts[C_PACKETS] = packets
    counts[C_WIRE] = wire_sum
    counts[C_CAPTURED] = cap_sum
    counts[C_SNAP_TRUNC] = snap_trunc
    counts[C_MAX_CAP] = max_cap
    counts[C_MAX_WIRE] = max_wire
    counts[C_MIN_TS] = min_ts
    counts[C_MAX_TS] = max_ts
    counts[C_NON_MONO] = non_mono
    counts[C_IPV4] = n_v4
    counts[C_IPV6] = n_v6
    counts[C_TCP] = n_tcp
    counts[C_UDP] = n_udp
    counts[C_ICMP] = n_icmp
    counts[C_OTHER_L4] = n_other
    counts[C_NON_IP] = n_non_ip
    counts[C_VLAN] = n_vlan
    counts[C_PAYLOAD] = payload_sum
    counts[C_LAST_TS] = last_ts
    counts[C_HAVE_LAST] = have_last
    return i, new_h, new_f
