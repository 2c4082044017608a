"""Several captures replayed together as concurrent guests of one host (``pipeline batch --as-guests``).

Multi-guest experiments are usually captured one trace per guest. Here member trace k becomes guest
k of one modeled host: its packets are shifted in time so that every member starts at the same
instant (the earliest member's first timestamp), and the members are merged into one packet stream
in time order, streaming (memory bounded by one chunk per member). Within each member, direction
comes from that member's own host mapping (``--host``, applied to every member, or inferred from the
member's first chunk as for a lone replay).

The engine sees an ordinary chunk stream plus a mapping object (``run_replay(..., mapping=...)``):
the chunks are :class:`GuestChunk` (a :class:`PacketChunk` that also knows each packet's member and
its index in that member), and :class:`TraceGuestsMapping` classifies each member's packets with the
member's mapping and sets the guest to the member.

Order: packets are merged by their running-maximum timestamp per member, so a member's own packet
order is kept even where its capture steps back in time; ties go to the lower member.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import OptionError, TraceError
from pipeline.ingest import PACKET_COLUMNS, PacketChunk, open_trace
from pipeline.models.mapping import Mapping, resolve_mapping


@dataclass
class GuestChunk(PacketChunk):
    """A merged chunk: the packet columns plus, per packet, the member trace (guest id) and the
    packet's index in that member."""

    member: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))        # int32
    member_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # int64


def _take(chunk: PacketChunk, sel: np.ndarray | slice) -> PacketChunk:
    """The packets ``sel`` of ``chunk`` (``first_index`` 0: only the columns are used)."""
    return PacketChunk(first_index=0, **{c: getattr(chunk, c)[sel] for c in PACKET_COLUMNS})


class TraceGuestsMapping:
    """The engine's mapping for merged members: direction from each member's own mapping, guest = member."""

    def __init__(self, members: list[Mapping], names: list[str]) -> None:
        self.members = members
        self.guest_names = list(names)
        self.n_guests = len(names)
        self.inferred = any(m.inferred for m in members)
        self.explanation = (f"{len(names)} traces as guests of one host, aligned to their starts; "
                            + "; ".join(f"{n}: {m.explanation}" for n, m in zip(names, members, strict=True)))

    def classify(self, chunk: PacketChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        member = getattr(chunk, "member", None)
        if member is None:
            raise TypeError("TraceGuestsMapping needs GuestChunk input")
        n = len(chunk)
        direction = np.full(n, -1, np.int8)
        remote = np.zeros(n, np.uint64)
        for k, m in enumerate(self.members):
            sel = member == k
            if not sel.any():
                continue
            d, _g, r = m.classify(_take(chunk, sel))
            direction[sel] = d
            remote[sel] = r
        return direction, member.astype(np.int32), remote

    def to_dict(self) -> dict[str, Any]:
        return {"host": sorted({s for m in self.members for s in m.to_dict()["host"]}),
                "guests": {n: m.to_dict() for n, m in zip(self.guest_names, self.members, strict=True)},
                "n_guests": self.n_guests, "guest_names": list(self.guest_names),
                "explanation": self.explanation, "inferred": self.inferred, "as_guests": True}


class GuestTraces:
    """Re-iterable merged chunk stream of several captures (each pass re-reads the files).

    After :meth:`open`: ``first_ts_ns`` and ``offset_ns`` per member (the shift added to its
    timestamps), ``mapping`` (a :class:`TraceGuestsMapping`). After a complete pass: ``infos``
    (each member's TraceInfo dict, with its SHA-256) and ``warnings``.
    """

    def __init__(self, paths: list[str | Path], names: list[str], *, chunk_packets: int = 1 << 20,
                 hosts: list[str] | None = None) -> None:
        if len(paths) != len(names) or not paths:
            raise OptionError("a guest group needs one name per trace and at least one trace")
        self.paths = [Path(p) for p in paths]
        self.names = list(names)
        self.chunk_packets = int(chunk_packets)
        self.hosts = list(hosts or [])
        self.first_ts_ns: list[int] = []
        self.offset_ns: list[int] = []
        self.infos: list[dict[str, Any]] = [{} for _ in self.paths]
        self.warnings: list[str] = []
        self.mapping: TraceGuestsMapping | None = None
        # member_packet looks merged packets up here; the sink translates a chunk at most a few chunks
        # after it was read (replay._prefetched reads 2 ahead, the engine holds one in its kernels and
        # delivers the one before), so 8 is ample; a deeper read-ahead needs a longer buffer
        self._recent: deque[GuestChunk] = deque(maxlen=8)

    def open(self) -> GuestTraces:
        """Read each member's first chunk: its start time and (unless --host) its inferred host."""
        mappings = []
        for p in self.paths:
            with open_trace(p, chunk_packets=self.chunk_packets) as reader:  # as a lone replay infers
                first = next((c for c in reader if len(c)), None)
            if first is None:
                raise TraceError(p, "has no packets to replay as a guest")
            self.first_ts_ns.append(int(first.ts_ns[0]))
            mappings.append(resolve_mapping(self.hosts, [], None, first))
        base = min(self.first_ts_ns)
        self.offset_ns = [base - t for t in self.first_ts_ns]
        self.mapping = TraceGuestsMapping(mappings, self.names)
        return self

    def __iter__(self) -> Iterator[GuestChunk]:
        if self.mapping is None:
            self.open()
        n = len(self.paths)
        # each member is hashed while the first pass reads it: later (saturation) passes need not hash again
        hashes = [info.get("sha256") for info in self.infos]
        with contextlib.ExitStack() as stack:
            readers = [stack.enter_context(open_trace(p, chunk_packets=self.chunk_packets, sha256=h is None))
                       for p, h in zip(self.paths, hashes, strict=True)]
            iters = [iter(r) for r in readers]
            bufs: list[PacketChunk | None] = [None] * n
            eff: list[np.ndarray] = [np.zeros(0, np.int64)] * n
            pos = [0] * n
            exhausted = [False] * n
            run_max = [np.iinfo(np.int64).min] * n
            emitted = 0
            warnings: list[str] = []
            while True:
                for k in range(n):
                    while not exhausted[k] and (bufs[k] is None or pos[k] >= len(bufs[k])):
                        ch = next(iters[k], None)
                        if ch is None:
                            exhausted[k] = True
                            self.infos[k] = readers[k].info.to_dict()
                            self.infos[k]["sha256"] = hashes[k] or self.infos[k]["sha256"]
                            warnings += [f"{self.names[k]}: {w}" for w in readers[k].info.warnings]
                            bufs[k] = None
                            break
                        if len(ch) == 0:
                            continue
                        ch.ts_ns = ch.ts_ns + np.int64(self.offset_ns[k])
                        e = np.maximum.accumulate(np.maximum(ch.ts_ns, run_max[k]))
                        run_max[k] = int(e[-1])
                        bufs[k], eff[k], pos[k] = ch, e, 0
                live = [k for k in range(n) if bufs[k] is not None and pos[k] < len(bufs[k])]
                if not live:
                    break
                # everything up to the earliest last-buffered time of the members that may have more
                limits = [int(eff[k][-1]) for k in live if not exhausted[k]]
                horizon = min(limits) if limits else np.iinfo(np.int64).max
                parts, keys, members, idx = [], [], [], []
                for k in live:
                    end = int(np.searchsorted(eff[k], horizon, side="right"))
                    if end <= pos[k]:
                        continue
                    ch = bufs[k]
                    parts.append(_take(ch, slice(pos[k], end)))
                    keys.append(eff[k][pos[k]:end])
                    members.append(np.full(end - pos[k], k, np.int32))
                    idx.append(np.arange(ch.first_index + pos[k], ch.first_index + end, dtype=np.int64))
                    pos[k] = end
                key = np.concatenate(keys)
                order = np.argsort(key, kind="stable")
                cols = {c: np.concatenate([getattr(p, c) for p in parts])[order] for c in PACKET_COLUMNS}
                out = GuestChunk(first_index=emitted, **cols, member=np.concatenate(members)[order],
                                 member_index=np.concatenate(idx)[order])
                emitted += len(out)
                self._recent.append(out)
                yield out
            self.warnings = warnings

    def member_packet(self, packet_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(member, index in the member) of merged packet indexes from one of the latest chunks."""
        if len(packet_index) == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        first = int(packet_index[0])
        for ch in reversed(self._recent):
            if ch.first_index <= first < ch.first_index + len(ch):
                rel = packet_index - ch.first_index
                return ch.member[rel], ch.member_index[rel]
        raise RuntimeError(f"merged packet {first} is no longer buffered")

