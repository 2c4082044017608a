"""LINKTYPE_ values: names, and which ones the field decoder understands.

One declarative table shared by framing (names in :class:`~pipeline.ingest.reader.TraceInfo`) and
the field decoder (``pipeline.ingest.decode`` takes the numeric constants from here).

Values and names follow the tcpdump.org link-layer header types registry
(https://www.tcpdump.org/linktypes.html) and libpcap's ``pcap/dlt.h``. Note the raw-IP mess:
LINKTYPE_RAW is 101 in files, but some writers store the platform DLT_RAW value verbatim
(12 on most BSDs/Linux, 14 on OpenBSD); all three mean "packet starts with an IPv4 or IPv6 header".

Packets of a link type the decoder does not handle are still framed and kept as rows (with
``ip_version == 0``); the reader counts them and reports them once in the trace's warnings.
"""

from __future__ import annotations

# --- numeric constants (the decoder imports these) -------------------------------------------
LINKTYPE_NULL = 0            # BSD loopback: 4-byte host-order address family, then IP
LINKTYPE_ETHERNET = 1        # DLT_EN10MB: Ethernet II / 802.3, 802.1Q / 802.1ad tags
LINKTYPE_RAW_12 = 12         # DLT_RAW as written verbatim by BSD/Linux: raw IPv4/IPv6
LINKTYPE_RAW_14 = 14         # DLT_RAW as written verbatim by OpenBSD: raw IPv4/IPv6
LINKTYPE_RAW = 101           # LINKTYPE_RAW: raw IPv4/IPv6 (version nibble decides)
LINKTYPE_LOOP = 108          # OpenBSD loopback: 4-byte network-order address family, then IP
LINKTYPE_LINUX_SLL = 113     # Linux cooked capture v1 (16-byte header, protocol at offset 14)
LINKTYPE_IPV4 = 228          # raw IPv4 only
LINKTYPE_IPV6 = 229          # raw IPv6 only
LINKTYPE_LINUX_SLL2 = 276    # Linux cooked capture v2 (20-byte header, protocol at offset 0)

#: LINKTYPE value -> registry name (without the LINKTYPE_ prefix). Every link type seen in the
#: shared test captures plus common ones; unknown values are shown as ``LINKTYPE_<n>``.
LINKTYPE_NAMES: dict[int, str] = {
    0: "NULL",
    1: "EN10MB",
    3: "AX25",
    6: "IEEE802_5",
    7: "ARCNET_BSD",
    8: "SLIP",
    9: "PPP",
    10: "FDDI",
    12: "RAW",
    14: "RAW",
    50: "PPP_HDLC",
    51: "PPP_ETHER",
    100: "ATM_RFC1483",
    101: "RAW",
    104: "C_HDLC",
    105: "IEEE802_11",
    107: "FRELAY",
    108: "LOOP",
    113: "LINUX_SLL",
    114: "LTALK",
    117: "PFLOG",
    119: "PRISM_HEADER",
    122: "IP_OVER_FC",
    123: "SUNATM",
    127: "IEEE802_11_RADIO",
    129: "ARCNET_LINUX",
    138: "APPLE_IP_OVER_IEEE1394",
    139: "MTP2_WITH_PHDR",
    140: "MTP2",
    141: "MTP3",
    142: "SCCP",
    143: "DOCSIS",
    144: "LINUX_IRDA",
    147: "USER0",
    163: "IEEE802_11_AVS",
    165: "BACNET_MS_TP",
    166: "PPP_PPPD",
    169: "GPRS_LLC",
    177: "LINUX_LAPD",
    187: "BLUETOOTH_HCI_H4",
    189: "USB_LINUX",
    192: "PPI",
    195: "IEEE802_15_4_WITHFCS",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    209: "IPMB_LINUX",
    215: "IEEE802_15_4_NONASK_PHY",
    220: "USB_LINUX_MMAPPED",
    224: "FC_2",
    227: "CAN_SOCKETCAN",
    228: "IPV4",
    229: "IPV6",
    230: "IEEE802_15_4_NOFCS",
    235: "DVB_CI",
    239: "NFLOG",
    240: "NETANALYZER",
    247: "INFINIBAND",
    249: "USBPCAP",
    251: "BLUETOOTH_LE_LL",
    253: "NETLINK",
    254: "BLUETOOTH_LINUX_MONITOR",
    256: "BLUETOOTH_LE_LL_WITH_PHDR",
    263: "IEEE802_15_4_TAP",
    264: "DISPLAYPORT_AUX",
    266: "NORDIC_BLE",
    270: "ETW",
    272: "ZWAVE_R1_R2",
    274: "USB_2_0",
    276: "LINUX_SLL2",
    279: "EBHSCR",
    281: "VPP_DISPATCH",
    290: "AUERSWALD_LOG",
}

#: Link types the field decoder handles (``pipeline.ingest.decode``); others are framed, counted,
#: reported once, and kept as rows with ``ip_version == 0``.
SUPPORTED_LINKTYPES: frozenset[int] = frozenset({
    LINKTYPE_NULL,
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW_12,
    LINKTYPE_RAW_14,
    LINKTYPE_RAW,
    LINKTYPE_LOOP,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL2,
})

#: pcap file header link-type field: the link type is the low 16 bits; bits 16-25 are reserved
#: (must be zero: libpcap's LT_RESERVED1), bit 26 says an FCS length is present, bits 28-31 give
#: it (draft-ietf-opsawg-pcap section 4).
PCAP_LINKTYPE_MASK = 0x0000FFFF
PCAP_LINKTYPE_RESERVED_MASK = 0x03FF0000
PCAP_LINKTYPE_FCS_PRESENT = 0x04000000


def linktype_name(linktype: int) -> str:
    """Registry name of ``linktype`` (``"EN10MB"``), or ``"LINKTYPE_<n>"`` when unassigned/unknown."""
    return LINKTYPE_NAMES.get(int(linktype), f"LINKTYPE_{int(linktype)}")


def linktype_label(linktype: int) -> str:
    """Name with the number, as capinfos/the manifest print it: ``"EN10MB(1)"``."""
    return f"{linktype_name(linktype)}({int(linktype)})"


def is_supported(linktype: int) -> bool:
    """True when the field decoder understands packets of this link type."""
    return int(linktype) in SUPPORTED_LINKTYPES
