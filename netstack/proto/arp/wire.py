"""ARP packets (RFC 826), as carried in Ethernet frames of type 0x0806.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |    Hardware type (ar$hrd)     |    Protocol type (ar$pro)     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | HLEN (ar$hln) | PLEN (ar$pln) |       Operation (ar$op)       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  sender hardware address (HLEN), sender protocol address (PLEN),
    |  target hardware address (HLEN), target protocol address (PLEN)
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Any hardware/protocol pair parses (the address lengths are in the packet); the stack acts only
on Ethernet (1) / IPv4 (0x0800) with lengths 6 and 4. Bytes after the addresses (Ethernet
padding) are not part of the packet.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from ...errors import ParseError

__all__ = ["ArpOp", "ArpPacket", "HTYPE_ETHERNET", "PTYPE_IPV4", "ETH_IPV4_LEN", "parse"]

_FIXED = struct.Struct("!HHBBH")
_ETH_IPV4 = struct.Struct("!HHBBH6s4s6s4s")

HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
#: Length of an Ethernet/IPv4 ARP packet.
ETH_IPV4_LEN = 28


class ArpOp(IntEnum):
    REQUEST = 1
    REPLY = 2


class ArpPacket(NamedTuple):
    """An ARP packet; for Ethernet/IPv4 the addresses are 6 and 4 bytes."""

    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes
    htype: int = HTYPE_ETHERNET
    ptype: int = PTYPE_IPV4

    @property
    def is_ethernet_ipv4(self) -> bool:
        return (
            self.htype == HTYPE_ETHERNET
            and self.ptype == PTYPE_IPV4
            and len(self.sha) == 6
            and len(self.spa) == 4
        )

    @property
    def length(self) -> int:
        return 8 + 2 * (len(self.sha) + len(self.spa))

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the packet at ``offset``; returns its length."""
        hln, pln = len(self.sha), len(self.spa)
        if len(self.tha) != hln or len(self.tpa) != pln or hln > 255 or pln > 255:
            raise ValueError("sender and target addresses must have matching lengths")
        if hln == 6 and pln == 4:
            _ETH_IPV4.pack_into(
                buf, offset, self.htype, self.ptype, 6, 4, self.op,
                self.sha, self.spa, self.tha, self.tpa,
            )  # fmt: skip
            return ETH_IPV4_LEN
        _FIXED.pack_into(buf, offset, self.htype, self.ptype, hln, pln, self.op)
        pos = offset + 8
        for part in (self.sha, self.spa, self.tha, self.tpa):
            buf[pos : pos + len(part)] = part
            pos += len(part)
        return pos - offset

    def to_bytes(self) -> bytes:
        buf = bytearray(self.length)
        self.emit_into(buf)
        return bytes(buf)


def parse(data: bytes | bytearray | memoryview) -> ArpPacket:
    """Parse an ARP packet.

    Raises:
        ParseError: fewer bytes than the header and its address lengths need.
    """
    if len(data) >= ETH_IPV4_LEN:
        fields = _ETH_IPV4.unpack_from(data, 0)
        if fields[2] == 6 and fields[3] == 4:
            htype, ptype, _, _, op, sha, spa, tha, tpa = fields
            return ArpPacket(op, sha, spa, tha, tpa, htype, ptype)
    if len(data) < 8:
        raise ParseError("truncated", f"ARP packet of {len(data)} bytes")
    htype, ptype, hln, pln, op = _FIXED.unpack_from(data, 0)
    end = 8 + 2 * (hln + pln)
    if len(data) < end:
        raise ParseError("truncated", f"ARP addresses need {end} bytes, got {len(data)}")
    view = bytes(data[8:end])
    sha = view[:hln]
    spa = view[hln : hln + pln]
    tha = view[hln + pln : 2 * hln + pln]
    tpa = view[2 * hln + pln :]
    return ArpPacket(op, sha, spa, tha, tpa, htype, ptype)
