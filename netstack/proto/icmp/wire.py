"""ICMP for IPv4 (RFC 792).

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     Type      |     Code      |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  rest of header: identifier + sequence number (echo), unused  |
    |  or next-hop MTU (RFC 1191, unreachable), pointer (param. prob.)|
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  data: echo payload, or the offending IP header + 64 bits      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The checksum covers the whole ICMP message (no pseudo-header).
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from ...errors import ParseError
from ..checksum import checksum, verify

__all__ = [
    "ICMP_HEADER_LEN",
    "IcmpHeader",
    "IcmpType",
    "TimeExceededCode",
    "UnreachableCode",
    "build_into",
    "checksum_ok",
    "parse",
]

_HEADER = struct.Struct("!BBHI")
_CHECKSUM = struct.Struct("!H")
ICMP_HEADER_LEN = 8


class IcmpType(IntEnum):
    ECHO_REPLY = 0
    DEST_UNREACHABLE = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAMETER_PROBLEM = 12
    TIMESTAMP = 13
    TIMESTAMP_REPLY = 14


class UnreachableCode(IntEnum):
    """Destination Unreachable codes (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1)."""

    NET = 0
    HOST = 1
    PROTOCOL = 2
    PORT = 3
    FRAGMENTATION_NEEDED = 4
    SOURCE_ROUTE_FAILED = 5
    NET_UNKNOWN = 6
    HOST_UNKNOWN = 7
    HOST_ISOLATED = 8
    NET_PROHIBITED = 9
    HOST_PROHIBITED = 10
    NET_TOS = 11
    HOST_TOS = 12
    ADMIN_PROHIBITED = 13
    PRECEDENCE_VIOLATION = 14
    PRECEDENCE_CUTOFF = 15


class TimeExceededCode(IntEnum):
    """Time Exceeded codes (RFC 792)."""

    TTL = 0
    REASSEMBLY = 1


#: Types whose data is the IP header and first 8 bytes of the datagram that caused them.
ERROR_TYPES = frozenset(
    {
        IcmpType.DEST_UNREACHABLE,
        IcmpType.SOURCE_QUENCH,
        IcmpType.REDIRECT,
        IcmpType.TIME_EXCEEDED,
        IcmpType.PARAMETER_PROBLEM,
    }
)


class IcmpHeader(NamedTuple):
    """The fixed 8 bytes. ``rest`` is the 32-bit "rest of header" field."""

    type: int
    code: int
    checksum: int
    rest: int = 0

    @property
    def ident(self) -> int:
        """Echo identifier."""
        return self.rest >> 16

    @property
    def sequence(self) -> int:
        """Echo sequence number."""
        return self.rest & 0xFFFF

    @property
    def next_hop_mtu(self) -> int:
        """Next-hop MTU of a "fragmentation needed" message (RFC 1191 4)."""
        return self.rest & 0xFFFF

    @property
    def pointer(self) -> int:
        """Parameter problem: octet where the error was found."""
        return self.rest >> 24

    @property
    def is_error(self) -> bool:
        return self.type in ERROR_TYPES

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header as it is (checksum field included); returns 8."""
        _HEADER.pack_into(buf, offset, self.type, self.code, self.checksum, self.rest)
        return ICMP_HEADER_LEN

    def to_bytes(self) -> bytes:
        buf = bytearray(ICMP_HEADER_LEN)
        self.emit_into(buf)
        return bytes(buf)


def parse(data: bytes | bytearray | memoryview) -> tuple[IcmpHeader, memoryview]:
    """Split an ICMP message into header and data.

    Raises:
        ParseError: shorter than 8 bytes.
    """
    if len(data) < ICMP_HEADER_LEN:
        raise ParseError("truncated", f"ICMP message of {len(data)} bytes")
    return IcmpHeader(*_HEADER.unpack_from(data, 0)), memoryview(data)[ICMP_HEADER_LEN:]


def checksum_ok(message: bytes | bytearray | memoryview) -> bool:
    """True when the checksum over the whole message holds."""
    return verify(message)


def build_into(buf: bytearray, offset: int, type_: int, code: int, rest: int) -> None:
    """Write a header at ``offset`` and checksum everything from ``offset`` to the end."""
    _HEADER.pack_into(buf, offset, type_, code, 0, rest)
    _CHECKSUM.pack_into(buf, offset + 2, checksum(memoryview(buf)[offset:]))
