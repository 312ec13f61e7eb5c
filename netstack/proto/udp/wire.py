"""UDP headers (RFC 768).

::

     0      7 8     15 16    23 24    31
    +--------+--------+--------+--------+
    |     Source      |   Destination   |
    |      Port       |      Port       |
    +--------+--------+--------+--------+
    |                 |                 |
    |     Length      |    Checksum     |
    +--------+--------+--------+--------+
    |          data octets ...
    +---------------- ...

The checksum covers a pseudo-header (source and destination address, protocol, UDP length),
the header and the data. Over IPv4 a zero checksum means "none computed"; a computed zero is
sent as 0xFFFF (RFC 768, "If the computed checksum is zero, it is transmitted as all ones").
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ...errors import ParseError
from ..checksum import checksum_pseudo, verify_pseudo

__all__ = ["HEADER", "UDP_HEADER_LEN", "UdpHeader", "build_into", "checksum_ok", "parse"]

_HEADER = struct.Struct("!HHHH")
#: Source port, destination port, length, checksum: for a layer that reads the fields inline.
HEADER = _HEADER
UDP_HEADER_LEN = 8
PROTO_UDP = 17


class UdpHeader(NamedTuple):
    src_port: int
    dst_port: int
    length: int
    checksum: int = 0

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header as it is (checksum field included); returns 8."""
        _HEADER.pack_into(buf, offset, self.src_port, self.dst_port, self.length, self.checksum)
        return UDP_HEADER_LEN

    def to_bytes(self) -> bytes:
        buf = bytearray(UDP_HEADER_LEN)
        self.emit_into(buf)
        return bytes(buf)


def parse(data: bytes | bytearray | memoryview) -> tuple[UdpHeader, memoryview]:
    """Split a UDP datagram into header and data (data ends at the Length field).

    Raises:
        ParseError: truncated, or a Length below 8 or beyond the data.
    """
    if len(data) < UDP_HEADER_LEN:
        raise ParseError("truncated", f"UDP datagram of {len(data)} bytes")
    src, dst, length, csum = _HEADER.unpack_from(data, 0)
    if length < UDP_HEADER_LEN:
        raise ParseError("bad_length", f"UDP length {length}")
    if length > len(data):
        raise ParseError("truncated", f"UDP length {length} > {len(data)} bytes")
    return UdpHeader(src, dst, length, csum), memoryview(data)[UDP_HEADER_LEN:length]


def checksum_ok(datagram: bytes | bytearray | memoryview, src: bytes, dst: bytes) -> bool:
    """True when the checksum holds or is absent (zero) over IPv4; False for fewer bytes
    than a header."""
    if len(datagram) < UDP_HEADER_LEN:
        return False
    if datagram[6] == 0 and datagram[7] == 0:
        return True
    return verify_pseudo(datagram, src, dst, PROTO_UDP)


def build_into(
    buf: bytearray, offset: int, src_port: int, dst_port: int, src: bytes, dst: bytes
) -> None:
    """Write a header at ``offset`` for the data that follows it to the end of ``buf``,
    with its checksum over the IPv4 pseudo-header."""
    length = len(buf) - offset
    # The header's words (its checksum field zero) and the rest of the pseudo-header's
    # length added as numbers: the header is then written once, checksum and all.
    c = checksum_pseudo(
        memoryview(buf)[offset + UDP_HEADER_LEN :], src, dst, PROTO_UDP,
        src_port + dst_port + length + UDP_HEADER_LEN,
    )  # fmt: skip
    _HEADER.pack_into(buf, offset, src_port, dst_port, length, c or 0xFFFF)
