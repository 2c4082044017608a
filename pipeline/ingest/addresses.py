"""IP addresses and MACs as held in the packet columns: formatting, parsing, CIDR matching.

Column layout (:mod:`pipeline.ingest.columns`): an IP address is a 128-bit value split into two
big-endian uint64 halves ``(hi, lo)``; IPv4 is IPv4-mapped (``::ffff:a.b.c.d``: ``hi == 0``,
``lo == 0x0000FFFF_aabbccdd``), so one CIDR test works for both families: an IPv4 ``/n`` is the
128-bit prefix ``/(96 + n)``. A MAC is a 48-bit value in a uint64, first octet most significant.
Used by ``pipeline inspect`` (hosts, top flows), reports, and the host/guest address mapping.
The array functions are vectorised with numpy (formatting works on the distinct values only).
"""

from __future__ import annotations

import ipaddress
import re

import numpy as np

from pipeline.errors import OptionError

_MASK64 = (1 << 64) - 1
_V4_MAPPED_LO_PREFIX = 0xFFFF << 32
_V4_PREFIX_OFFSET = 96          # IPv4 /n == 128-bit /(96 + n) in the mapped space


# --- IP addresses -----------------------------------------------------------------------------------

def is_ipv4_mapped(hi: np.ndarray | int, lo: np.ndarray | int) -> np.ndarray | bool:
    """True where ``(hi, lo)`` is an IPv4-mapped address (how IPv4 is held in the columns)."""
    if isinstance(hi, np.ndarray) or isinstance(lo, np.ndarray):
        hi = np.asarray(hi, dtype=np.uint64)
        lo = np.asarray(lo, dtype=np.uint64)
        return (hi == 0) & ((lo >> np.uint64(32)) == np.uint64(0xFFFF))
    return int(hi) == 0 and (int(lo) >> 32) == 0xFFFF


def format_ip(hi: int, lo: int) -> str:
    """``(hi, lo)`` -> ``"192.0.2.1"`` for IPv4-mapped values, else compressed IPv6 (``"2001:db8::1"``)."""
    hi, lo = int(hi), int(lo)
    if is_ipv4_mapped(hi, lo):
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address((hi << 64) | lo))


def format_ips(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Vectorised :func:`format_ip`: an object array of strings, formatting each distinct address once."""
    hi = np.asarray(hi, dtype=np.uint64)
    lo = np.asarray(lo, dtype=np.uint64)
    if hi.shape != lo.shape:
        raise ValueError("format_ips: hi and lo differ in shape")
    if hi.size == 0:
        return np.empty(hi.shape, dtype=object)
    pairs = np.stack([hi.ravel(), lo.ravel()], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    names = np.array([format_ip(h, v) for h, v in uniq], dtype=object)
    return names[inverse.reshape(-1)].reshape(hi.shape)


def parse_ip(text: str) -> tuple[int, int]:
    """``"192.0.2.1"`` / ``"2001:db8::1"`` -> ``(hi, lo)`` as held in the columns.

    Raises :class:`~pipeline.errors.OptionError` (one line) when ``text`` is not an address.
    """
    try:
        addr = ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise OptionError(f"not an IPv4 or IPv6 address: {text!r}") from None
    value = (_V4_MAPPED_LO_PREFIX | int(addr)) if addr.version == 4 else int(addr)
    return value >> 64, value & _MASK64


def parse_cidr(text: str) -> tuple[int, int, int]:
    """An address or CIDR (``"10.0.0.0/8"``, ``"2001:db8::/32"``, ``"192.0.2.7"``) ->
    ``(hi, lo, prefix_len)`` on the 128-bit space (IPv4 ``/n`` -> ``96 + n``; a bare address is a
    ``/128``). Host bits below the prefix are cleared (``10.1.2.3/8`` means ``10.0.0.0/8``).

    Raises :class:`~pipeline.errors.OptionError` on anything else.
    """
    raw = str(text).strip()
    try:
        net = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise OptionError(f"not an address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32): {text!r}") from None
    if net.version == 4:
        value = _V4_MAPPED_LO_PREFIX | int(net.network_address)
        prefix = _V4_PREFIX_OFFSET + net.prefixlen
    else:
        value = int(net.network_address)
        prefix = net.prefixlen
    return value >> 64, value & _MASK64, prefix


def prefix_masks(prefix_len: int) -> tuple[int, int]:
    """Masks ``(mask_hi, mask_lo)`` selecting the top ``prefix_len`` (0..128) bits."""
    if not 0 <= int(prefix_len) <= 128:
        raise OptionError(f"prefix length {prefix_len} is outside 0..128")
    mask = ((1 << 128) - 1) ^ ((1 << (128 - int(prefix_len))) - 1)
    return mask >> 64, mask & _MASK64


def match_cidr(hi: np.ndarray, lo: np.ndarray, cidr: str | tuple[int, int, int]) -> np.ndarray:
    """Boolean array: which ``(hi, lo)`` addresses lie in ``cidr`` (a string for
    :func:`parse_cidr`, or its ``(hi, lo, prefix_len)`` result). An IPv4 CIDR matches only
    IPv4 addresses; an IPv6 ``::/0`` matches everything."""
    net_hi, net_lo, prefix = parse_cidr(cidr) if isinstance(cidr, str) else cidr
    mask_hi, mask_lo = prefix_masks(prefix)
    hi = np.asarray(hi, dtype=np.uint64)
    lo = np.asarray(lo, dtype=np.uint64)
    return (((hi & np.uint64(mask_hi)) == np.uint64(net_hi & mask_hi))
            & ((lo & np.uint64(mask_lo)) == np.uint64(net_lo & mask_lo)))


# --- MACs --------------------------------------------------------------------------------------------

_MAC_RE = re.compile(r"^(?:[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}"
                     r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}|[0-9a-f]{12})$")


def format_mac(value: int) -> str:
    """48-bit MAC value -> ``"aa:bb:cc:dd:ee:ff"``."""
    return ":".join(f"{b:02x}" for b in int(value).to_bytes(6, "big"))


def format_macs(values: np.ndarray) -> np.ndarray:
    """Vectorised :func:`format_mac`: an object array of strings, formatting each distinct MAC once."""
    v = np.asarray(values, dtype=np.uint64)
    if v.size == 0:
        return np.empty(v.shape, dtype=object)
    uniq, inverse = np.unique(v.ravel(), return_inverse=True)
    names = np.array([format_mac(x) for x in uniq], dtype=object)
    return names[inverse.reshape(-1)].reshape(v.shape)


def parse_mac(text: str) -> int:
    """``"aa:bb:cc:dd:ee:ff"``, ``"aa-bb-..."``, ``"aabb.ccdd.eeff"`` or ``"aabbccddeeff"`` -> int.

    Raises :class:`~pipeline.errors.OptionError` on anything else.
    """
    raw = str(text).strip().lower()
    if not _MAC_RE.match(raw):
        raise OptionError(f"not a MAC address (e.g. 02:00:00:00:00:01): {text!r}")
    return int(re.sub(r"[:.\-]", "", raw), 16)
