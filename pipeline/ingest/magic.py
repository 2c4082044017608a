"""Capture-file magic numbers and format sniffing, without numpy or numba.

Kept apart from :mod:`pipeline.ingest.framing` (whose numba kernels cost ~0.15 s of imports) so that
``pipeline batch`` can find captures by their magic bytes (:mod:`pipeline.batch.discover`) while the
fork server, not the coordinator, pays for numba. Magic values (the specifications
:mod:`pipeline.ingest.framing` cites): pcap's file-header magic, usec and nsec variants, read in
either byte order; pcapng's Section Header Block type, the same in either byte order.
"""

from __future__ import annotations

import struct

PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A


def sniff_format(head: bytes) -> str | None:
    """``"pcap"``, ``"pcapng"`` or None from the first 4 bytes (either byte order)."""
    if len(head) < 4:
        return None
    le = struct.unpack("<I", head[:4])[0]
    be = struct.unpack(">I", head[:4])[0]
    if le in (PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC) or be in (PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC):
        return "pcap"
    if le == PCAPNG_SHB:
        return "pcapng"
    return None
