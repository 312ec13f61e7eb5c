"""TCP segments (RFC 9293 3.1) and their options: MSS (RFC 9293 3.7.1), window scale and
timestamps (RFC 7323), SACK-permitted and SACK blocks (RFC 2018).

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          Source Port          |       Destination Port        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                        Sequence Number                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                    Acknowledgment Number                      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Data |       |C|E|U|A|P|R|S|F|                               |
    | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
    |       |       |R|E|G|K|H|T|N|N|                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           Checksum            |         Urgent Pointer        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           [Options]                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

``flags`` keeps the 12 bits after Data Offset (the 4 reserved bits included, so a segment
emits back to the same bytes). The checksum covers the IPv4 or IPv6 pseudo-header.
"""

from __future__ import annotations

import struct
from enum import IntFlag
from typing import NamedTuple

from ...errors import ParseError
from ..checksum import checksum, pseudo_header_sum, verify
from ..wire import fast_new

__all__ = [
    "NO_OPTIONS",
    "TCP_HEADER_LEN",
    "Flags",
    "TcpHeader",
    "TcpOptions",
    "build_into",
    "checksum_ok",
    "emit_options",
    "parse",
    "parse_options",
]

_HEADER = struct.Struct("!HHIIHHHH")
_CHECKSUM = struct.Struct("!H")
_TS = struct.Struct("!II")
_NOP_NOP_TS = b"\x01\x01\x08\x0a"
TCP_HEADER_LEN = 20
PROTO_TCP = 6
MAX_OPTIONS = 40


class Flags(IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80
    AE = 0x100  # RFC 9768 (AccECN); the other reserved bits have no name


class OptionKind:
    EOL = 0
    NOP = 1
    MSS = 2
    WSCALE = 3
    SACK_PERMITTED = 4
    SACK = 5
    TIMESTAMP = 8


class TcpHeader(NamedTuple):
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int
    checksum: int = 0
    urgent: int = 0
    options: bytes = b""

    @property
    def header_length(self) -> int:
        return TCP_HEADER_LEN + len(self.options)

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header as it is (checksum included); returns its length."""
        n = len(self.options)
        if n % 4 or n > MAX_OPTIONS:
            raise ValueError("TCP options are padded to 4 bytes and at most 40 bytes long")
        offset_flags = ((5 + n // 4) << 12) | (self.flags & 0x0FFF)
        _HEADER.pack_into(
            buf, offset, self.src_port, self.dst_port, self.seq, self.ack, offset_flags,
            self.window, self.checksum, self.urgent,
        )  # fmt: skip
        if n:
            buf[offset + TCP_HEADER_LEN : offset + TCP_HEADER_LEN + n] = self.options
        return TCP_HEADER_LEN + n

    def to_bytes(self) -> bytes:
        buf = bytearray(self.header_length)
        self.emit_into(buf)
        return bytes(buf)


def parse(data: bytes | bytearray | memoryview) -> tuple[TcpHeader, memoryview]:
    """Split a segment into header and payload.

    Raises:
        ParseError: shorter than 20 bytes, or a Data Offset below 5 or beyond the data.
    """
    if len(data) < TCP_HEADER_LEN:
        raise ParseError("truncated", f"TCP segment of {len(data)} bytes")
    sport, dport, seq, ack, off_flags, window, csum, urgent = _HEADER.unpack_from(data, 0)
    hl = (off_flags >> 12) << 2
    if hl < TCP_HEADER_LEN:
        raise ParseError("bad_data_offset", f"data offset {hl >> 2}")
    if hl > len(data):
        raise ParseError("truncated", f"header of {hl} bytes in {len(data)}")
    view = memoryview(data)
    options = bytes(view[TCP_HEADER_LEN:hl]) if hl > TCP_HEADER_LEN else b""
    header = TcpHeader(sport, dport, seq, ack, off_flags & 0x0FFF, window, csum, urgent, options)
    return header, view[hl:]


def checksum_ok(segment: bytes | bytearray | memoryview, src: bytes, dst: bytes) -> bool:
    """True when the checksum over the IPv4 pseudo-header and segment holds."""
    return verify(segment, pseudo_header_sum(src, dst, PROTO_TCP, len(segment)))


class TcpOptions(NamedTuple):
    """The options netstack understands; unknown ones are skipped (RFC 9293 3.1: "a TCP
    implementation MUST ignore without error any option it does not implement")."""

    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack: tuple[tuple[int, int], ...] = ()
    ts_val: int | None = None
    ts_ecr: int = 0


NO_OPTIONS = TcpOptions()
_new_options = fast_new(TcpOptions, "mss wscale sack_permitted sack ts_val ts_ecr")


def parse_options(options: bytes) -> TcpOptions:
    """Read the option area.

    Raises:
        ParseError: an option with a missing or impossible length, or running past the area
            (RFC 9293 3.1: a segment with malformed options may be dropped).
    """
    if not options:
        return NO_OPTIONS
    if len(options) == 12 and options[:4] == _NOP_NOP_TS:
        # What nearly every segment of an established connection carries.
        ts_val, ts_ecr = _TS.unpack_from(options, 4)
        return _new_options((None, None, False, (), ts_val, ts_ecr))
    mss = wscale = ts_val = None
    ts_ecr = 0
    sack_permitted = False
    sack: tuple[tuple[int, int], ...] = ()
    i, n = 0, len(options)
    while i < n:
        kind = options[i]
        if kind == OptionKind.EOL:
            break
        if kind == OptionKind.NOP:
            i += 1
            continue
        if i + 1 >= n:
            raise ParseError("bad_option", f"option {kind} without a length")
        length = options[i + 1]
        if length < 2 or i + length > n:
            raise ParseError("bad_option", f"option {kind} with length {length}")
        body = options[i + 2 : i + length]
        if kind == OptionKind.MSS:
            if length != 4:
                raise ParseError("bad_option", f"MSS option of length {length}")
            mss = (body[0] << 8) | body[1]
        elif kind == OptionKind.WSCALE:
            if length != 3:
                raise ParseError("bad_option", f"window scale option of length {length}")
            wscale = body[0]
        elif kind == OptionKind.SACK_PERMITTED:
            if length != 2:
                raise ParseError("bad_option", f"SACK-permitted option of length {length}")
            sack_permitted = True
        elif kind == OptionKind.SACK:
            if (length - 2) % 8 or length == 2:
                raise ParseError("bad_option", f"SACK option of length {length}")
            values = struct.unpack(f"!{(length - 2) // 4}I", body)
            sack = tuple(zip(values[0::2], values[1::2], strict=True))
        elif kind == OptionKind.TIMESTAMP:
            if length != 10:
                raise ParseError("bad_option", f"timestamp option of length {length}")
            ts_val, ts_ecr = _TS.unpack_from(body, 0)
        i += length
    return TcpOptions(mss, wscale, sack_permitted, sack, ts_val, ts_ecr)


def emit_options(
    *,
    mss: int | None = None,
    wscale: int | None = None,
    sack_permitted: bool = False,
    timestamp: tuple[int, int] | None = None,
    sack: tuple[tuple[int, int], ...] = (),
) -> bytes:
    """The option area for these options, padded with NOPs to a multiple of 4, laid out
    as Linux does (which middleboxes expect): MSS, SACK-permitted+timestamps, NOP+window
    scale, NOP NOP + SACK blocks.

    Raises:
        ValueError: more than fits in 40 bytes.
    """
    out = bytearray()
    if mss is not None:
        out += struct.pack("!BBH", OptionKind.MSS, 4, mss)
    if timestamp is not None:
        if sack_permitted:
            out += bytes((OptionKind.SACK_PERMITTED, 2))
        else:
            out += b"\x01\x01"
        out += struct.pack("!BBII", OptionKind.TIMESTAMP, 10, timestamp[0], timestamp[1])
    elif sack_permitted:
        out += bytes((OptionKind.NOP, OptionKind.NOP, OptionKind.SACK_PERMITTED, 2))
    if wscale is not None:
        out += bytes((OptionKind.NOP, OptionKind.WSCALE, 3, wscale))
    if sack:
        out += b"\x01\x01" + bytes((OptionKind.SACK, 2 + 8 * len(sack)))
        for left, right in sack:
            out += struct.pack("!II", left, right)
    if len(out) > MAX_OPTIONS:
        raise ValueError(f"{len(out)} bytes of options exceed 40")
    return bytes(out)


def build_into(
    buf: bytearray,
    offset: int,
    src_port: int,
    dst_port: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    options: bytes,
    src: bytes,
    dst: bytes,
    *,
    urgent: int = 0,
) -> None:
    """Write a header (with ``options`` and the ``urgent`` pointer field) at ``offset`` for
    the payload that follows it to the end of ``buf``, and its checksum over the IPv4
    pseudo-header (the send path)."""
    n = len(options)
    _HEADER.pack_into(
        buf, offset, src_port, dst_port, seq, ack, ((5 + (n >> 2)) << 12) | flags, window, 0,
        urgent,
    )  # fmt: skip
    if n:
        buf[offset + TCP_HEADER_LEN : offset + TCP_HEADER_LEN + n] = options
    length = len(buf) - offset
    c = checksum(memoryview(buf)[offset:], pseudo_header_sum(src, dst, PROTO_TCP, length))
    _CHECKSUM.pack_into(buf, offset + 16, c)
