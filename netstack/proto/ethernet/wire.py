"""Ethernet II frame headers, with IEEE 802.1Q / 802.1ad VLAN tags.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                  Destination MAC (6 octets)                   |
    +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                               |                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
    |                    Source MAC (6 octets)                      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     EtherType / TPID          |  [PCP|DEI|VID  if tagged]     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

An EtherType below 0x0600 is an IEEE 802.3 length (an LLC frame), which a host speaking the
IP family ignores (RFC 894 covers IP over Ethernet II only). The frame check sequence is not
part of what links hand over.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from ...errors import ParseError

__all__ = [
    "ETHERNET_HEADER_LEN",
    "EtherType",
    "EthernetHeader",
    "VlanTag",
    "parse",
    "emit_header",
]

ETHERNET_HEADER_LEN = 14
_HEADER = struct.Struct("!6s6sH")
_TAG = struct.Struct("!HH")


class EtherType(IntEnum):
    IPV4 = 0x0800
    ARP = 0x0806
    VLAN = 0x8100  # IEEE 802.1Q customer tag
    QINQ = 0x88A8  # IEEE 802.1ad service tag
    IPV6 = 0x86DD


#: EtherTypes below this are 802.3 length fields.
MIN_ETHERTYPE = 0x0600
_TPIDS = (EtherType.VLAN, EtherType.QINQ, 0x9100)


class VlanTag(NamedTuple):
    """One 802.1Q tag: its TPID and the Tag Control Information."""

    tpid: int
    tci: int

    @property
    def pcp(self) -> int:
        return self.tci >> 13

    @property
    def dei(self) -> bool:
        return bool(self.tci & 0x1000)

    @property
    def vid(self) -> int:
        return self.tci & 0x0FFF


class EthernetHeader(NamedTuple):
    """An Ethernet II header; ``ethertype`` is the inner type after any VLAN tags."""

    dst: bytes
    src: bytes
    ethertype: int
    tags: tuple[VlanTag, ...] = ()

    @property
    def length(self) -> int:
        return ETHERNET_HEADER_LEN + 4 * len(self.tags)

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header (tags included) at ``offset``; returns the bytes written."""
        if self.tags:
            _HEADER.pack_into(buf, offset, self.dst, self.src, self.tags[0].tpid)
            pos = offset + 12
            for i, tag in enumerate(self.tags):
                nxt = self.tags[i + 1].tpid if i + 1 < len(self.tags) else self.ethertype
                _TAG.pack_into(buf, pos + 2, tag.tci, nxt)
                pos += 4
            return self.length
        _HEADER.pack_into(buf, offset, self.dst, self.src, self.ethertype)
        return ETHERNET_HEADER_LEN

    def to_bytes(self) -> bytes:
        buf = bytearray(self.length)
        self.emit_into(buf)
        return bytes(buf)


#: At most this many stacked tags are parsed (802.1ad QinQ uses two).
MAX_TAGS = 4


def parse(frame: bytes | bytearray | memoryview) -> tuple[EthernetHeader, memoryview]:
    """Split a frame into its header and payload.

    Raises:
        ParseError: shorter than a header, a truncated or too deeply stacked VLAN tag.
    """
    if len(frame) < ETHERNET_HEADER_LEN:
        raise ParseError("truncated", f"{len(frame)} bytes is shorter than an Ethernet header")
    dst, src, ethertype = _HEADER.unpack_from(frame, 0)
    if ethertype not in _TPIDS:
        return EthernetHeader(dst, src, ethertype), memoryview(frame)[ETHERNET_HEADER_LEN:]
    tags: list[VlanTag] = []
    pos = 12
    while ethertype in _TPIDS:
        if len(tags) == MAX_TAGS:
            raise ParseError("too_many_vlan_tags")
        if len(frame) < pos + 6:
            raise ParseError("truncated", "VLAN tag cut short")
        tci, inner = _TAG.unpack_from(frame, pos + 2)
        tags.append(VlanTag(ethertype, tci))
        ethertype = inner
        pos += 4
    return EthernetHeader(dst, src, ethertype, tuple(tags)), memoryview(frame)[pos + 2 :]


def emit_header(buf: bytearray, dst: bytes, src: bytes, ethertype: int) -> None:
    """Write an untagged header at the start of ``buf`` (the per-packet send path)."""
    _HEADER.pack_into(buf, 0, dst, src, ethertype)
