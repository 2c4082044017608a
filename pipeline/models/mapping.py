"""Direction and guest of each packet, relative to the modeled host.

The user says which addresses are the modeled host:

- ``--host ADDR|CIDR|MAC`` (repeatable): the host; its packets go to one guest, or are spread over
  ``--guests N`` guests (flows assigned round-robin in order of first appearance, which balances a
  few long flows better than a hash would; the assignment is carried across chunks);
- ``--guest NAME=ADDR|CIDR|MAC`` (repeatable): one guest per name; the host is the union of them
  (plus any ``--host``, whose other packets go to the first guest);
- nothing: the host is inferred from the first chunk: the IP address in the most packets (ties: most
  bytes, then most bytes received), or the MAC when no packet has IP. The choice and the reason are one line in
  ``Mapping.explanation``.

A packet is RX when its destination is the host, TX when its source is (both: TX). Packets that touch
neither get direction -1 and are left out of the replay (counted).

``Mapping.classify`` runs the numba kernel pipeline.kernels.classify_kernel; ``Mapping._classify_numpy``
(with ``AddressSpec.match``) is the same in numpy, kept only as the tests' reference for that kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import OptionError
from pipeline.ingest.addresses import format_ip, format_mac, match_cidr, parse_cidr, parse_mac
from pipeline.ingest.columns import PacketChunk
from pipeline.models.components import DIR_NONE


@dataclass(frozen=True)
class AddressSpec:
    """An IP prefix (IPv4 as IPv4-mapped IPv6, 128-bit split in hi/lo) or a MAC (48 bits)."""

    text: str
    kind: str  # "ip" | "mac"
    hi: int = 0
    lo: int = 0
    prefix: int = 128
    mac: int = 0

    def match(self, chunk: PacketChunk, side: str) -> np.ndarray:
        """Boolean array: does the packet's ``side`` ("src" | "dst") address fall in this spec."""
        if self.kind == "mac":
            return getattr(chunk, f"{side}_mac") == np.uint64(self.mac)
        in_prefix = match_cidr(getattr(chunk, f"{side}_ip_hi"), getattr(chunk, f"{side}_ip_lo"),
                               (self.hi, self.lo, self.prefix))
        return (chunk.ip_version != 0) & in_prefix


def parse_address(text: str) -> AddressSpec:
    """Parse ``ADDR``, ``CIDR`` (IPv4 or IPv6) or a MAC (``aa:bb:cc:dd:ee:ff`` and the other
    spellings :func:`pipeline.ingest.addresses.parse_mac` accepts)."""
    t = text.strip()
    try:
        return AddressSpec(text=t, kind="mac", mac=parse_mac(t))
    except OptionError:
        pass
    try:
        hi, lo, prefix = parse_cidr(t)
    except OptionError:
        raise OptionError(f"not an IP address, CIDR prefix or MAC address: {text!r}") from None
    return AddressSpec(text=t, kind="ip", hi=hi, lo=lo, prefix=prefix)


def _mix64(x: np.ndarray) -> np.ndarray:
    """64-bit finaliser (MurmurHash3 fmix64) on an array; kernels.classify_kernel._mix64 is the
    same per element in numba (the classify tests compare the remote keys they give)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x


@dataclass
class Mapping:
    """The resolved host/guest mapping; ``classify`` gives direction and guest per packet."""

    host: list[AddressSpec]
    guest_specs: list[tuple[str, list[AddressSpec]]]
    n_guests: int
    guest_names: list[str]
    explanation: str
    inferred: bool = False
    _flow_guest: dict[int, int] = field(default_factory=dict, repr=False)
    _spec_table: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {"host": [s.text for s in self.host],
                "guests": {name: [s.text for s in specs] for name, specs in self.guest_specs},
                "n_guests": self.n_guests, "guest_names": list(self.guest_names),
                "explanation": self.explanation, "inferred": self.inferred}

    def _any(self, specs: list[AddressSpec], chunk: PacketChunk, side: str) -> np.ndarray:
        m = np.zeros(len(chunk), bool)
        for s in specs:
            m |= s.match(chunk, side)
        return m

    def classify(self, chunk: PacketChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(direction int8: 0 rx, 1 tx, -1 neither; guest int32; remote key uint64) per packet.

        The remote key identifies the far end for the bridge's MAC table: its MAC, or (link types
        without MACs) a hash of its IP address. One numba pass over the chunk
        (pipeline.kernels.classify_kernel; :meth:`_classify_numpy` is the same in numpy).
        """
        from pipeline.kernels.classify_kernel import classify_kernel, spec_table

        n = len(chunk)
        if self._spec_table is None:
            self._spec_table = spec_table(self.host, self.guest_specs)
        direction = np.empty(n, np.int8)
        guest = np.empty(n, np.int32)
        remote_key = np.empty(n, np.uint64)
        classify_kernel(self._spec_table, bool(self.guest_specs), chunk.ip_version, chunk.src_ip_hi,
                        chunk.src_ip_lo, chunk.dst_ip_hi, chunk.dst_ip_lo, chunk.src_mac, chunk.dst_mac,
                        direction, guest, remote_key)
        if not self.guest_specs and self.n_guests > 1:
            guest = self._spread(chunk, direction == 1, direction == 0)
        return direction, guest, remote_key

    def _classify_numpy(self, chunk: PacketChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(direction int8: 0 rx, 1 tx, -1 neither; guest int32; remote key uint64) per packet.

        The remote key identifies the far end for the bridge's MAC table: its MAC, or (link types
        without MACs) a hash of its IP address.
        """
        n = len(chunk)
        direction = np.full(n, DIR_NONE, np.int8)
        guest = np.zeros(n, np.int32)
        if self.guest_specs:
            host_src = self._any(self.host, chunk, "src")
            host_dst = self._any(self.host, chunk, "dst")
            g_tx = np.full(n, -1, np.int32)
            g_rx = np.full(n, -1, np.int32)
            for gi in range(len(self.guest_specs) - 1, -1, -1):  # lower index wins on overlap
                _, specs = self.guest_specs[gi]
                s = self._any(specs, chunk, "src")
                d = self._any(specs, chunk, "dst")
                host_src |= s
                host_dst |= d
                g_tx[s] = gi
                g_rx[d] = gi
        else:
            host_src = self._any(self.host, chunk, "src")
            host_dst = self._any(self.host, chunk, "dst")
        direction[host_dst] = 0
        direction[host_src] = 1
        tx = direction == 1
        rx = direction == 0
        if self.guest_specs:
            guest = np.where(tx, np.maximum(g_tx, 0), np.where(rx, np.maximum(g_rx, 0), 0)).astype(np.int32)
        elif self.n_guests > 1:
            guest = self._spread(chunk, tx, rx)
        remote_mac = np.where(tx, chunk.dst_mac, chunk.src_mac)
        remote_hi = np.where(tx, chunk.dst_ip_hi, chunk.src_ip_hi)
        remote_lo = np.where(tx, chunk.dst_ip_lo, chunk.src_ip_lo)
        ip_key = (_mix64(remote_hi ^ _mix64(remote_lo)) >> np.uint64(4)) | np.uint64(1 << 60)
        remote_key = np.where(remote_mac != 0, remote_mac | np.uint64(1 << 61), ip_key)
        return direction, guest, remote_key.astype(np.uint64)

    def _spread(self, chunk: PacketChunk, tx: np.ndarray, rx: np.ndarray) -> np.ndarray:
        """Round-robin flows (remote IP, ports, protocol seen from the host) over n_guests."""
        n = len(chunk)
        r_hi = np.where(tx, chunk.dst_ip_hi, chunk.src_ip_hi)
        r_lo = np.where(tx, chunk.dst_ip_lo, chunk.src_ip_lo)
        l_port = np.where(tx, chunk.src_port, chunk.dst_port).astype(np.uint64)
        r_port = np.where(tx, chunk.dst_port, chunk.src_port).astype(np.uint64)
        key = _mix64(_mix64(r_hi) ^ r_lo ^ (l_port << np.uint64(16)) ^ (r_port << np.uint64(32))
                     ^ (chunk.ip_proto.astype(np.uint64) << np.uint64(48)))
        guest = np.zeros(n, np.int32)
        host = tx | rx
        if not host.any():
            return guest
        hk = key[host]
        uniq, first, inv = np.unique(hk, return_index=True, return_inverse=True)
        assigned = np.empty(len(uniq), np.int32)
        for j in np.argsort(first, kind="stable"):
            kj = int(uniq[j])
            g = self._flow_guest.get(kj)
            if g is None:
                g = len(self._flow_guest) % self.n_guests
                self._flow_guest[kj] = g
            assigned[j] = g
        guest[host] = assigned[inv]
        return guest


def infer_host(chunk: PacketChunk) -> tuple[AddressSpec, str]:
    """The address in the most packets of ``chunk`` (ties: most bytes, then most bytes received),
    with a one-line reason."""
    n = len(chunk)
    if n == 0:
        raise OptionError("cannot infer the modeled host: the trace has no packets (give --host)")
    ip = chunk.ip_version != 0
    if ip.any():
        hi = np.concatenate([chunk.src_ip_hi[ip], chunk.dst_ip_hi[ip]])
        lo = np.concatenate([chunk.src_ip_lo[ip], chunk.dst_ip_lo[ip]])
        wl = np.concatenate([chunk.wire_len[ip], chunk.wire_len[ip]]).astype(np.int64)
        as_dst = np.concatenate([np.zeros(int(ip.sum())), chunk.wire_len[ip].astype(np.float64)])
        # unique (hi, lo) rows in lexicographic order, as np.unique(axis=0) gives them, but by a
        # two-key lexsort: np.unique(axis=0) sorts structured rows and took ~0.2 s per 330k addresses
        order = np.lexsort((lo, hi))
        s_hi, s_lo = hi[order], lo[order]
        new = np.empty(len(order), np.bool_)
        new[0] = True
        new[1:] = (s_hi[1:] != s_hi[:-1]) | (s_lo[1:] != s_lo[:-1])
        inv = np.empty(len(order), np.int64)
        inv[order] = np.cumsum(new) - 1
        uniq = np.stack([s_hi[new], s_lo[new]], axis=1)
        pk = np.bincount(inv, minlength=len(uniq))
        by = np.bincount(inv, weights=wl, minlength=len(uniq))
        rx = np.bincount(inv, weights=as_dst, minlength=len(uniq))
        # ties (two hosts in every packet): the one receiving more bytes
        best = int(np.lexsort((-rx, -by, -pk))[0])
        text = format_ip(uniq[best, 0], uniq[best, 1])
        what = "IP address"
    else:
        macs = np.concatenate([chunk.src_mac, chunk.dst_mac])
        macs = macs[macs != 0]
        if len(macs) == 0:
            raise OptionError("cannot infer the modeled host: no IP addresses or MACs in the trace "
                              "(give --host)")
        wl = np.concatenate([chunk.wire_len, chunk.wire_len]).astype(np.int64)
        wl = wl[np.concatenate([chunk.src_mac, chunk.dst_mac]) != 0]
        uniq, inv = np.unique(macs, return_inverse=True)
        pk = np.bincount(inv, minlength=len(uniq))
        by = np.bincount(inv, weights=wl, minlength=len(uniq))
        best = int(np.lexsort((-by, -pk))[0])
        text = format_mac(uniq[best])
        what = "MAC address"
    spec = parse_address(text)
    share = int(pk[best])
    tie = " (tie broken by bytes received)" if len(pk) > 1 and np.sort(pk)[-2] == share else ""
    reason = (f"modeled host {text} inferred: the {what} in the most packets ({share:,} of the first "
              f"{n:,}, {100.0 * share / n:.1f}%){tie}; override with --host or --guest")
    return spec, reason


def resolve_mapping(hosts: list[str], guests: list[str], n_guests: int | None,
                    first_chunk: PacketChunk | None) -> Mapping:
    """Build the mapping from the user's options (inferring the host from ``first_chunk`` if none)."""
    host_specs = [parse_address(h) for h in hosts]
    guest_specs: list[tuple[str, list[AddressSpec]]] = []
    for g in guests:
        if "=" not in g:
            raise OptionError(f"--guest needs NAME=ADDR|CIDR|MAC, not {g!r}")
        name, addr = g.split("=", 1)
        name = name.strip()
        if not name:
            raise OptionError(f"--guest needs a name before '=': {g!r}")
        for existing, specs in guest_specs:
            if existing == name:
                specs.append(parse_address(addr))
                break
        else:
            guest_specs.append((name, [parse_address(addr)]))
    if n_guests is not None and n_guests < 1:
        raise OptionError(f"--guests must be >= 1, not {n_guests}")
    if guest_specs and n_guests is not None:
        raise OptionError("give either --guest NAME=ADDR or --guests N, not both")
    if guest_specs:
        names = [n for n, _ in guest_specs]
        expl = "guests " + ", ".join(f"{n}={'/'.join(s.text for s in sp)}" for n, sp in guest_specs)
        if host_specs:
            expl += "; host also " + ", ".join(s.text for s in host_specs) + f" (to {names[0]})"
        return Mapping(host=host_specs, guest_specs=guest_specs, n_guests=len(names), guest_names=names,
                       explanation=expl + " (given)")
    g = n_guests or 1
    names = [f"g{i}" for i in range(g)]
    spread = f", flows spread round-robin over {g} guests" if g > 1 else ""
    if host_specs:
        return Mapping(host=host_specs, guest_specs=[], n_guests=g, guest_names=names,
                       explanation="modeled host " + ", ".join(s.text for s in host_specs) + " (given)" + spread)
    if first_chunk is None:
        raise OptionError("cannot infer the modeled host without packets (give --host)")
    spec, reason = infer_host(first_chunk)
    return Mapping(host=[spec], guest_specs=[], n_guests=g, guest_names=names, explanation=reason + spread,
                   inferred=True)
