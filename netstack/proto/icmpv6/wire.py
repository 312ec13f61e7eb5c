"""ICMP for IPv6 (RFC 4443): the common header, the checksum and the quoted packet of errors.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     Type      |     Code      |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  "rest": identifier + sequence number (echo, 4.1/4.2), MTU      |
    |  (packet too big, 3.2), pointer (parameter problem, 3.4),      |
    |  unused (3.1, 3.3), or the first word of an NDP/MLD message     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  body: echo data, the invoking packet of an error, or the      |
    |  rest of an NDP/MLD message                                    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Types below 128 are errors, the others informational (RFC 4443 2.1). The checksum covers the
IPv6 pseudo-header with Next Header 58 and the whole message (RFC 4443 2.3, RFC 8200 8.1).
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from ...errors import ParseError
from ..checksum import checksum, pseudo_header_sum6, verify

__all__ = [
    "ICMPV6_HEADER_LEN",
    "ICMPV6_NEXT_HEADER",
    "IPV6_MIN_MTU",
    "Icmp6Header",
    "Icmp6Type",
    "ParameterProblemCode6",
    "QuotedPacket",
    "TimeExceededCode6",
    "UnreachableCode6",
    "build",
    "build_into",
    "checksum_ok",
    "error_body",
    "parse",
    "parse_quoted",
]

_HEADER = struct.Struct("!BBHI")
_CHECKSUM = struct.Struct("!H")
# The fixed IPv6 header (RFC 8200 3): version/traffic class/flow label, payload length, next
# header, hop limit, source, destination.
_IPV6 = struct.Struct("!IHBB16s16s")

ICMPV6_HEADER_LEN = 8
#: The Next Header value of ICMPv6 (RFC 4443 1), also the pseudo-header's.
ICMPV6_NEXT_HEADER = 58
#: The minimum link MTU of IPv6 (RFC 8200 5), the size no error message may exceed.
IPV6_MIN_MTU = 1280
_IPV6_HEADER_LEN = 40


class Icmp6Type(IntEnum):
    DEST_UNREACHABLE = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAMETER_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    MLD_QUERY = 130
    MLD_REPORT = 131
    MLD_DONE = 132
    ROUTER_SOLICIT = 133
    ROUTER_ADVERT = 134
    NEIGHBOR_SOLICIT = 135
    NEIGHBOR_ADVERT = 136
    REDIRECT = 137
    MLDV2_REPORT = 143


class UnreachableCode6(IntEnum):
    """Destination Unreachable codes (RFC 4443 3.1)."""

    NO_ROUTE = 0
    ADMIN_PROHIBITED = 1
    BEYOND_SCOPE = 2
    ADDRESS = 3
    PORT = 4
    SOURCE_POLICY = 5
    REJECT_ROUTE = 6


class TimeExceededCode6(IntEnum):
    """Time Exceeded codes (RFC 4443 3.3)."""

    HOP_LIMIT = 0
    REASSEMBLY = 1


class ParameterProblemCode6(IntEnum):
    """Parameter Problem codes (RFC 4443 3.4; 3 from RFC 7112 6)."""

    ERRONEOUS_HEADER = 0
    UNRECOGNIZED_NEXT_HEADER = 1
    UNRECOGNIZED_OPTION = 2
    INCOMPLETE_HEADER_CHAIN = 3


class Icmp6Header(NamedTuple):
    """The fixed 8 bytes. ``rest`` is the 32-bit word after the checksum."""

    type: int
    code: int
    checksum: int
    rest: int = 0

    @property
    def ident(self) -> int:
        """Echo identifier (RFC 4443 4.1)."""
        return self.rest >> 16

    @property
    def sequence(self) -> int:
        """Echo sequence number (RFC 4443 4.1)."""
        return self.rest & 0xFFFF

    @property
    def mtu(self) -> int:
        """Packet Too Big: the MTU of the next-hop link, all 32 bits (RFC 4443 3.2)."""
        return self.rest

    @property
    def pointer(self) -> int:
        """Parameter Problem: the octet offset of the error, all 32 bits (RFC 4443 3.4)."""
        return self.rest

    @property
    def is_error(self) -> bool:
        """Error messages have types 0..127 (RFC 4443 2.1)."""
        return self.type < 128

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header as it is (checksum field included); returns 8."""
        _HEADER.pack_into(buf, offset, self.type, self.code, self.checksum, self.rest)
        return ICMPV6_HEADER_LEN

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.type, self.code, self.checksum, self.rest)


class QuotedPacket(NamedTuple):
    """The start of the packet quoted in an ICMPv6 error (see :func:`parse_quoted`)."""

    src: bytes
    dst: bytes
    next_header: int
    payload: memoryview


def parse(data: bytes | bytearray | memoryview) -> tuple[Icmp6Header, memoryview]:
    """Split an ICMPv6 message into its 8-byte header and the body after it.

    Raises:
        ParseError: ``truncated``, shorter than 8 bytes.
    """
    if len(data) < ICMPV6_HEADER_LEN:
        raise ParseError("truncated", f"ICMPv6 message of {len(data)} bytes")
    return Icmp6Header(*_HEADER.unpack_from(data, 0)), memoryview(data)[ICMPV6_HEADER_LEN:]


def checksum_ok(message: bytes | bytearray | memoryview, src: bytes, dst: bytes) -> bool:
    """True when the checksum of ``message`` (the whole ICMPv6 message) holds for a packet
    from ``src`` to ``dst`` (RFC 4443 2.3: pseudo-header with Next Header 58)."""
    return verify(message, pseudo_header_sum6(src, dst, ICMPV6_NEXT_HEADER, len(message)))


def build_into(
    buf: bytearray, offset: int, type_: int, code: int, rest: int, src: bytes, dst: bytes
) -> None:
    """Finish a message that occupies ``buf[offset:]`` and whose body is already in place:
    write the 8-byte header and the checksum for a packet from ``src`` to ``dst``."""
    _HEADER.pack_into(buf, offset, type_, code, 0, rest)
    initial = pseudo_header_sum6(src, dst, ICMPV6_NEXT_HEADER, len(buf) - offset)
    _CHECKSUM.pack_into(buf, offset + 2, checksum(memoryview(buf)[offset:], initial))


def build(
    type_: int,
    code: int,
    rest: int,
    body: bytes | bytearray | memoryview,
    src: bytes,
    dst: bytes,
) -> bytes:
    """A complete ICMPv6 message, checksum filled for a packet from ``src`` to ``dst``."""
    buf = bytearray(ICMPV6_HEADER_LEN)
    buf += body
    build_into(buf, 0, type_, code, rest, src, dst)
    return bytes(buf)


def error_body(
    invoking: bytes | bytearray | memoryview,
    limit: int = IPV6_MIN_MTU - _IPV6_HEADER_LEN - ICMPV6_HEADER_LEN,
) -> bytes:
    """The body of an error message: as much of the invoking packet (from its IPv6 header on)
    as fits in ``limit`` bytes.

    RFC 4443 2.4(c): an error includes as much of the invoking packet as possible without the
    error packet exceeding the minimum IPv6 MTU; the default ``limit`` leaves room for a
    40-byte IPv6 header and the 8-byte ICMPv6 header in 1280 bytes. Pass a smaller limit when
    the error carries extension headers.

    Raises:
        ValueError: ``limit`` is negative.
    """
    if limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    return bytes(invoking[:limit])


def parse_quoted(body: bytes | bytearray | memoryview) -> QuotedPacket:
    """The invoking packet quoted in an error message (RFC 4443 3.1-3.4: "as much of invoking
    packet as possible"): source, destination and Next Header of its fixed header, and the
    bytes after those 40 (cut to its Payload Length when the quote holds more, as the padding
    of RFC 4884 extensions does).

    Extension headers are not walked: ``next_header`` may name one, and ``payload`` then
    starts with it.

    Raises:
        ParseError: ``truncated`` (fewer than 40 bytes) or ``bad_version`` (not IPv6).
    """
    if len(body) < _IPV6_HEADER_LEN:
        raise ParseError("truncated", f"quoted packet of {len(body)} bytes")
    first, payload_length, next_header, _, src, dst = _IPV6.unpack_from(body, 0)
    if first >> 28 != 6:
        raise ParseError("bad_version", f"quoted packet of version {first >> 28}")
    view = memoryview(body)
    return QuotedPacket(
        src, dst, next_header, view[_IPV6_HEADER_LEN : _IPV6_HEADER_LEN + payload_length]
    )
