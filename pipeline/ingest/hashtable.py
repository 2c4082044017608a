"""Exact streaming aggregation by key in numba: an open-addressing hash table held in arrays.

Used for per-flow totals (5-tuple keys) and distinct-host counts in ``pipeline inspect``, without
pandas and without holding the trace: the table grows with the number of distinct keys, not packets.
Keys are rows of a uint64 matrix (``n_words`` words per key); each slot accumulates packets, bytes,
payload bytes and first/last timestamp (ns).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _hash_row(keys, i, n_words):
    h = np.uint64(0x9E3779B97F4A7C15)
    for w in range(n_words):
        h ^= keys[i, w] + np.uint64(0x9E3779B97F4A7C15) + (h << np.uint64(6)) + (h >> np.uint64(2))
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return h


@njit(cache=True)
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


@njit(cache=True)
def aggregate_kernel(tab_keys, tab_used, tab_packets, tab_bytes, tab_payload, tab_first, tab_last,
                     keys, valid, wire_len, payload_len, ts_ns, start, max_new):
    """Add rows ``start..`` of ``keys`` (where ``valid``) to the table.

    Stops after ``max_new`` new keys (so the caller can grow the table and resume); returns
    (next row index, number of new keys).
    """
    n_words = keys.shape[1]
    mask = np.int64(tab_used.shape[0] - 1)
    new = 0
    for i in range(start, keys.shape[0]):
        if new >= max_new:
            return i, new
        if not valid[i]:
            continue
        slot, is_new = _insert(tab_keys, tab_used, keys, i, n_words, mask)
        if is_new:
            new += 1
            tab_first[slot] = ts_ns[i]
            tab_last[slot] = ts_ns[i]
        tab_packets[slot] += 1
        tab_bytes[slot] += wire_len[i]
        tab_payload[slot] += payload_len[i]
        if ts_ns[i] < tab_first[slot]:
            tab_first[slot] = ts_ns[i]
        if ts_ns[i] > tab_last[slot]:
            tab_last[slot] = ts_ns[i]
    return keys.shape[0], new


@njit(cache=True)
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

    _FIELDS = ("packets", "bytes", "payload", "first", "last")

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

    def _grow(self, capacity: int) -> None:
        old = (self.keys, self.used, self.packets, self.bytes, self.payload, self.first, self.last)
        self._alloc(capacity)
        rehash_kernel(*old, self.keys, self.used, self.packets, self.bytes, self.payload, self.first,
                      self.last)

    def add(self, keys: np.ndarray, valid: np.ndarray, wire_len: np.ndarray, payload_len: np.ndarray,
            ts_ns: np.ndarray) -> None:
        """Add one chunk: ``keys`` (n, n_words) uint64; rows where ``valid`` is False are ignored.

        The table stays at most half full (grown by doubling), so memory follows distinct keys.
        """
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        valid = np.ascontiguousarray(valid, dtype=np.bool_)
        wire = wire_len.astype(np.int64, copy=False)
        payload = payload_len.astype(np.int64, copy=False)
        ts = ts_ns.astype(np.int64, copy=False)
        start = 0
        while start < keys.shape[0]:
            room = self.used.shape[0] // 2 - self.count
            if room <= 0:
                self._grow(self.used.shape[0] * 2)
                continue
            start, new = aggregate_kernel(self.keys, self.used, self.packets, self.bytes, self.payload,
                                          self.first, self.last, keys, valid, wire, payload, ts,
                                          start, room)
            self.count += new

    def items(self) -> tuple[np.ndarray, ...]:
        """(keys, packets, bytes, payload, first_ts_ns, last_ts_ns) of every distinct key."""
        used = np.flatnonzero(self.used)
        return (self.keys[used], self.packets[used], self.bytes[used], self.payload[used],
                self.first[used], self.last[used])
