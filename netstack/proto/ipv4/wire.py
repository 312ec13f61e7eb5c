"""IPv4 headers (RFC 791 3.1), with options kept as raw bytes.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version|  IHL  |Type of Service|          Total Length         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Identification        |Flags|      Fragment Offset    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Time to Live |    Protocol   |         Header Checksum       |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       Source Address                          |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Destination Address                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Options                    |    Padding    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

``parse`` checks structure only (version, lengths); the header checksum is checked by
:func:`checksum_ok`, so that a capture with a bad checksum can still be read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from enum import IntEnum
from typing import NamedTuple

from ...errors import ParseError
from ..checksum import checksum
from ..wire import fast_new

__all__ = [
    "IPV4_HEADER_LEN",
    "IPv4Header",
    "IpProto",
    "build_header_into",
    "checksum_ok",
    "fill_checksum",
    "iter_options",
    "new_ipv4_header",
    "parse",
    "parse_quoted",
]

_HEADER = struct.Struct("!BBHHHBBH4s4s")
_CHECKSUM = struct.Struct("!H")
IPV4_HEADER_LEN = 20
MAX_PACKET = 65535

FLAG_DF = 0x4000  # don't fragment, in the 16-bit flags/offset field
FLAG_MF = 0x2000  # more fragments
OFFSET_MASK = 0x1FFF


class IpProto(IntEnum):
    ICMP = 1
    IGMP = 2
    TCP = 6
    UDP = 17
    IPV6_ICMP = 58


class IPv4Header(NamedTuple):
    """An IPv4 header. ``flags_fragment`` is the raw 16-bit flags/offset field."""

    tos: int
    total_length: int
    ident: int
    flags_fragment: int
    ttl: int
    proto: int
    checksum: int
    src: bytes
    dst: bytes
    options: bytes = b""

    @property
    def header_length(self) -> int:
        return IPV4_HEADER_LEN + len(self.options)

    @property
    def payload_length(self) -> int:
        return self.total_length - IPV4_HEADER_LEN - len(self.options)

    @property
    def dont_fragment(self) -> bool:
        return bool(self.flags_fragment & FLAG_DF)

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags_fragment & FLAG_MF)

    @property
    def fragment_offset(self) -> int:
        """Offset of this fragment's data in the datagram, in bytes."""
        return (self.flags_fragment & OFFSET_MASK) << 3

    @property
    def is_fragment(self) -> bool:
        return bool(self.flags_fragment & (FLAG_MF | OFFSET_MASK))

    @property
    def dscp(self) -> int:
        return self.tos >> 2

    @property
    def ecn(self) -> int:
        return self.tos & 3

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header exactly as it is (checksum field included); returns its length.
        Use :func:`fill_checksum` or :func:`build_header_into` for a fresh checksum."""
        n = len(self.options)
        if n % 4 or n > 40:
            raise ValueError("IPv4 options are padded to 4 bytes and at most 40 bytes long")
        _HEADER.pack_into(
            buf, offset, 0x40 | (5 + n // 4), self.tos, self.total_length, self.ident,
            self.flags_fragment, self.ttl, self.proto, self.checksum, self.src, self.dst,
        )  # fmt: skip
        if n:
            buf[offset + IPV4_HEADER_LEN : offset + IPV4_HEADER_LEN + n] = self.options
        return IPV4_HEADER_LEN + n

    def to_bytes(self) -> bytes:
        buf = bytearray(self.header_length)
        self.emit_into(buf)
        return bytes(buf)


#: The per-packet constructor (no field checks): ``new_ipv4_header((tos, total, ...))``.
new_ipv4_header = fast_new(
    IPv4Header, "tos total_length ident flags_fragment ttl proto checksum src dst options"
)


def parse(data: bytes | bytearray | memoryview) -> tuple[IPv4Header, memoryview]:
    """Parse an IPv4 header; the payload view ends at Total Length (link padding cut off).

    Raises:
        ParseError: truncated, not version 4, IHL below 5, or a Total Length that is shorter
            than the header or longer than the data.
    """
    if len(data) < IPV4_HEADER_LEN:
        raise ParseError("truncated", f"{len(data)} bytes is shorter than an IPv4 header")
    ver_ihl, tos, total, ident, ff, ttl, proto, csum, src, dst = _HEADER.unpack_from(data, 0)
    if ver_ihl >> 4 != 4:
        raise ParseError("bad_version", f"version {ver_ihl >> 4}")
    hl = (ver_ihl & 0x0F) << 2
    if hl < IPV4_HEADER_LEN:
        raise ParseError("bad_header_length", f"IHL {hl >> 2}")
    if total < hl:
        raise ParseError("bad_total_length", f"total length {total} < header length {hl}")
    if total > len(data):
        raise ParseError("truncated", f"total length {total} > {len(data)} bytes received")
    view = memoryview(data)
    options = bytes(view[IPV4_HEADER_LEN:hl]) if hl > IPV4_HEADER_LEN else b""
    return (
        IPv4Header(tos, total, ident, ff, ttl, proto, csum, src, dst, options),
        view[hl:total],
    )


def checksum_ok(data: bytes | bytearray | memoryview) -> bool:
    """True when the header at the start of ``data`` is whole and has a correct checksum
    (RFC 791); False for anything shorter than its IHL says."""
    if not data:
        return False
    hl = (data[0] & 0x0F) << 2
    if hl < IPV4_HEADER_LEN or len(data) < hl:
        return False
    return checksum(data[:hl]) == 0


def fill_checksum(buf: bytearray | memoryview, offset: int = 0) -> None:
    """Compute and store the header checksum of the header at ``offset``."""
    hl = (buf[offset] & 0x0F) << 2
    _CHECKSUM.pack_into(buf, offset + 10, 0)
    _CHECKSUM.pack_into(buf, offset + 10, checksum(buf[offset : offset + hl]))


def build_header_into(
    buf: bytearray,
    offset: int,
    total_length: int,
    ident: int,
    flags_fragment: int,
    ttl: int,
    proto: int,
    src: bytes,
    dst: bytes,
    tos: int = 0,
) -> None:
    """Write an option-less header with its checksum (the per-packet send path)."""
    _HEADER.pack_into(
        buf, offset, 0x45, tos, total_length, ident, flags_fragment, ttl, proto, 0, src, dst
    )
    _CHECKSUM.pack_into(buf, offset + 10, checksum(memoryview(buf)[offset : offset + 20]))


class IPv4Option(NamedTuple):
    kind: int
    data: bytes


#: Option kinds that are one byte long (RFC 791: End of Option List, No Operation).
_OPT_EOL = 0
_OPT_NOP = 1


def iter_options(options: bytes) -> Iterator[IPv4Option]:
    """Walk the options area (RFC 791 3.1, "Options").

    Raises:
        ParseError: an option whose length byte is missing, below 2, or runs past the area.
    """
    i = 0
    n = len(options)
    while i < n:
        kind = options[i]
        if kind == _OPT_EOL:
            return
        if kind == _OPT_NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise ParseError("bad_option", f"option {kind} without a length")
        length = options[i + 1]
        if length < 2 or i + length > n:
            raise ParseError("bad_option", f"option {kind} with length {length}")
        yield IPv4Option(kind, bytes(options[i + 2 : i + length]))
        i += length


def parse_quoted(data: bytes | bytearray | memoryview) -> tuple[IPv4Header, memoryview]:
    """Parse the start of a datagram quoted inside an ICMP error (RFC 792: the header and
    at least 64 bits of data), where Total Length may exceed what was quoted.

    Raises:
        ParseError: truncated, not version 4, or IHL below 5.
    """
    if len(data) < IPV4_HEADER_LEN:
        raise ParseError("truncated", f"quoted datagram of {len(data)} bytes")
    ver_ihl, tos, total, ident, ff, ttl, proto, csum, src, dst = _HEADER.unpack_from(data, 0)
    hl = (ver_ihl & 0x0F) << 2
    if ver_ihl >> 4 != 4 or hl < IPV4_HEADER_LEN:
        raise ParseError("bad_header", "quoted datagram is not IPv4")
    if len(data) < hl:
        raise ParseError("truncated", "quoted header cut short")
    view = memoryview(data)
    options = bytes(view[IPV4_HEADER_LEN:hl]) if hl > IPV4_HEADER_LEN else b""
    end = min(len(data), max(total, hl))
    return IPv4Header(tos, total, ident, ff, ttl, proto, csum, src, dst, options), view[hl:end]
