"""Multicast Listener Discovery messages: MLDv2 (RFC 3810 5) and MLDv1 (RFC 2710 3).

Query (type 130), after the ICMPv6 header's first word (Maximum Response Code, Reserved)::

    +---------------------------------------------------------------+
    |                 Multicast Address (16 bytes)                  |
    +-------+-+-----+---------------+-------------------------------+
    | Resv  |S| QRV |     QQIC      |     Number of Sources (N)     |    MLDv2 only
    +-------+-+-----+---------------+-------------------------------+
    |                 Source Address [1..N] (16 bytes each)         |
    +---------------------------------------------------------------+

An MLDv1 query ends after the Multicast Address (24 bytes in all); an MLDv2 query is 28 bytes
or more (RFC 3810 8.1). An MLDv1 Report (type 131) and Done (type 132) have the MLDv1 query's
layout, Maximum Response Delay 0 (RFC 2710 3.4).

Version 2 Report (type 143): the header's word is Reserved (16) and the Number of Multicast
Address Records (16); then the records::

    +---------------+---------------+-------------------------------+
    |  Record Type  |  Aux Data Len |     Number of Sources (N)     |
    +---------------+---------------+-------------------------------+
    |                 Multicast Address (16 bytes)                  |
    +---------------------------------------------------------------+
    |                 Source Address [1..N] (16 bytes each)         |
    +---------------------------------------------------------------+
    |                 Auxiliary Data (Aux Data Len 32-bit words)    |
    +---------------------------------------------------------------+
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import IntEnum
from typing import NamedTuple, TypeAlias

from ...errors import ParseError
from ..icmpv6.wire import ICMPV6_HEADER_LEN, Icmp6Header, Icmp6Type, build_into

__all__ = [
    "MLDV2_ROUTERS",
    "GroupRecord",
    "MldQuery",
    "RecordType",
    "build_query",
    "build_report",
    "build_v1",
    "decode_mrc",
    "decode_qqic",
    "encode_mrc",
    "encode_qqic",
    "parse_query",
    "parse_report",
    "parse_v1",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

#: ff02::16, where MLDv2 Reports go (RFC 3810 5.2.14).
MLDV2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")

_QUERY_V2 = struct.Struct("!16sBBH")  # Multicast Address, Resv|S|QRV, QQIC, Number of Sources
_RECORD = struct.Struct("!BBH16s")  # Record Type, Aux Data Len, Number of Sources, address
_V1_QUERY_BODY = 16  # RFC 2710 3: 24 bytes in all
_V2_QUERY_BODY = _QUERY_V2.size  # RFC 3810 8.1: 28 bytes or more

_MRC_LINEAR = 0x8000  # RFC 3810 5.1.3: codes below are the delay itself
_MRC_MAX = (0x1FFF) << 10  # mant 0xFFF, exp 7
_QQIC_LINEAR = 0x80  # RFC 3810 5.1.9
_QQIC_MAX = (0x1F) << 10  # mant 0xF, exp 7


class RecordType(IntEnum):
    """Multicast Address Record types (RFC 3810 5.2.12)."""

    MODE_IS_INCLUDE = 1
    MODE_IS_EXCLUDE = 2
    CHANGE_TO_INCLUDE = 3
    CHANGE_TO_EXCLUDE = 4
    ALLOW_NEW_SOURCES = 5
    BLOCK_OLD_SOURCES = 6


class MldQuery(NamedTuple):
    """A Multicast Listener Query.

    ``max_response_delay`` and ``qqic`` are decoded to seconds (RFC 3810 5.1.3, 5.1.9; RFC
    2710 3.4 for version 1, in milliseconds there). ``group`` is ``::`` in a General Query. A
    version 1 query carries no S flag, QRV, QQIC or sources: they read False, 0, 0.0 and ().
    """

    max_response_delay: float
    group: bytes
    version: int
    suppress: bool
    qrv: int
    qqic: float
    sources: tuple[bytes, ...]


class GroupRecord(NamedTuple):
    """A Multicast Address Record of a Version 2 Report (RFC 3810 5.2.4)."""

    type: int
    group: bytes
    sources: tuple[bytes, ...] = ()


# -- the exponential codes -------------------------------------------------------------------


def decode_mrc(code: int) -> int:
    """The Maximum Response Delay in milliseconds of a Maximum Response Code (RFC 3810
    5.1.3): below 32768 the code itself, else ``(mant | 0x1000) << (exp + 3)`` from
    ``|1| exp (3) | mant (12)|``."""
    if code < _MRC_LINEAR:
        return code
    return ((code & 0xFFF) | 0x1000) << (((code >> 12) & 7) + 3)


def encode_mrc(milliseconds: int) -> int:
    """The Maximum Response Code for a delay in milliseconds (RFC 3810 5.1.3), rounded down to
    what the code can hold; delays beyond the largest (8387584 ms) give the largest code.

    Raises:
        ValueError: a negative delay.
    """
    if milliseconds < 0:
        raise ValueError(f"negative delay {milliseconds}")
    if milliseconds < _MRC_LINEAR:
        return milliseconds
    if milliseconds >= _MRC_MAX:
        return 0xFFFF
    exp = milliseconds.bit_length() - 16  # (mant | 0x1000) has 13 bits, shifted by exp + 3
    return 0x8000 | exp << 12 | ((milliseconds >> (exp + 3)) & 0xFFF)


def decode_qqic(code: int) -> int:
    """The Querier's Query Interval in seconds of a QQIC (RFC 3810 5.1.9): below 128 the code
    itself, else ``(mant | 0x10) << (exp + 3)`` from ``|1| exp (3) | mant (4)|``."""
    if code < _QQIC_LINEAR:
        return code
    return ((code & 0xF) | 0x10) << (((code >> 4) & 7) + 3)


def encode_qqic(seconds: int) -> int:
    """The QQIC for an interval in seconds (RFC 3810 5.1.9), rounded down to what the code can
    hold; intervals beyond the largest (31744 s) give the largest code.

    Raises:
        ValueError: a negative interval.
    """
    if seconds < 0:
        raise ValueError(f"negative interval {seconds}")
    if seconds < _QQIC_LINEAR:
        return seconds
    if seconds >= _QQIC_MAX:
        return 0xFF
    exp = seconds.bit_length() - 8  # (mant | 0x10) has 5 bits, shifted by exp + 3
    return 0x80 | exp << 4 | ((seconds >> (exp + 3)) & 0xF)


# -- queries ---------------------------------------------------------------------------------


def parse_query(header: Icmp6Header, body: Buffer) -> MldQuery:
    """A Multicast Listener Query (type 130) of either version, told apart by length (RFC
    3810 8.1). The Code and Reserved fields are ignored (RFC 3810 5.1.1, 5.1.4), and so are
    bytes after the last source (5.1.12).

    Raises:
        ParseError: ``truncated`` (shorter than 24 bytes, or fewer sources than Number of
            Sources says) or ``bad_length`` (25 to 27 bytes, which RFC 3810 8.1 says to
            ignore).
    """
    size = len(body)
    code = header.rest >> 16
    if size == _V1_QUERY_BODY:
        # RFC 2710 3.4: Maximum Response Delay in milliseconds.
        return MldQuery(code / 1000, bytes(body), 1, False, 0, 0.0, ())
    if size < _V1_QUERY_BODY:
        raise ParseError("truncated", f"MLD query of {size + ICMPV6_HEADER_LEN} bytes")
    if size < _V2_QUERY_BODY:
        raise ParseError("bad_length", f"MLD query of {size + ICMPV6_HEADER_LEN} bytes")
    group, flags, qqic, count = _QUERY_V2.unpack_from(body, 0)
    end = _V2_QUERY_BODY + 16 * count
    if end > size:
        raise ParseError("truncated", f"{count} sources do not fit the MLD query")
    view = memoryview(body)
    sources = tuple(bytes(view[i : i + 16]) for i in range(_V2_QUERY_BODY, end, 16))
    return MldQuery(
        decode_mrc(code) / 1000,
        group,
        2,
        bool(flags & 0x08),  # RFC 3810 5.1.7: S
        flags & 0x07,  # RFC 3810 5.1.8: QRV
        float(decode_qqic(qqic)),
        sources,
    )


def build_query(
    src: bytes,
    dst: bytes,
    *,
    max_response_delay: float = 10.0,
    group: bytes = bytes(16),
    version: int = 2,
    suppress: bool = False,
    qrv: int = 2,
    qqic: float = 125.0,
    sources: Iterable[bytes] = (),
) -> bytes:
    """A Multicast Listener Query, for tests and scripted routers.

    ``max_response_delay`` (seconds) is rounded to milliseconds and, for version 2, encoded
    with :func:`encode_mrc`; ``qqic`` (seconds) with :func:`encode_qqic`. A version 1 query
    (RFC 2710 3) has only the delay and ``group``.

    Raises:
        ValueError: a version other than 1 or 2, a delay that version 1 cannot carry, a QRV
            outside 0..7, an address not 16 bytes, or more than 65535 sources.
    """
    milliseconds = round(max_response_delay * 1000)
    if len(group) != 16:
        raise ValueError(f"group must be 16 bytes, not {len(group)}")
    buf = bytearray(ICMPV6_HEADER_LEN)
    buf += group
    if version == 1:
        if not 0 <= milliseconds <= 0xFFFF:
            raise ValueError(f"an MLDv1 query cannot carry a delay of {milliseconds} ms")
        code = milliseconds
    elif version == 2:
        if not 0 <= qrv <= 7:
            raise ValueError(f"QRV {qrv} is not 0..7")
        code = encode_mrc(milliseconds)
        listed = list(sources)
        if len(listed) > 0xFFFF or any(len(s) != 16 for s in listed):
            raise ValueError("sources must be at most 65535 addresses of 16 bytes")
        buf += struct.pack(
            "!BBH", (0x08 if suppress else 0) | qrv, encode_qqic(int(qqic)), len(listed)
        )
        for source in listed:
            buf += source
    else:
        raise ValueError(f"MLD version {version} is not 1 or 2")
    build_into(buf, 0, Icmp6Type.MLD_QUERY, 0, code << 16, src, dst)
    return bytes(buf)


# -- reports ---------------------------------------------------------------------------------


def build_report(src: bytes, records: Iterable[GroupRecord]) -> bytes:
    """A Version 2 Multicast Listener Report (RFC 3810 5.2) to ff02::16 (5.2.14), checksum
    filled for that destination. Records carry no auxiliary data (5.2.10). The caller keeps the
    report within the link MTU (5.2.15).

    Raises:
        ValueError: an address not 16 bytes, or more than 65535 records or sources.
    """
    buf = bytearray(ICMPV6_HEADER_LEN)
    count = 0
    for record in records:
        if len(record.group) != 16 or any(len(s) != 16 for s in record.sources):
            raise ValueError("group and source addresses must be 16 bytes")
        if len(record.sources) > 0xFFFF:
            raise ValueError(f"{len(record.sources)} sources in one record")
        buf += _RECORD.pack(record.type, 0, len(record.sources), record.group)
        for source in record.sources:
            buf += source
        count += 1
    if count > 0xFFFF:
        raise ValueError(f"{count} records in one report")
    build_into(buf, 0, Icmp6Type.MLDV2_REPORT, 0, count, src, MLDV2_ROUTERS)
    return bytes(buf)


def parse_report(header: Icmp6Header, body: Buffer) -> tuple[GroupRecord, ...]:
    """The records of a Version 2 Report (type 143), as many as the header's Number of
    Multicast Address Records says; auxiliary data is skipped (RFC 3810 5.2.10) and so are
    bytes after the last record (5.2.11).

    Raises:
        ParseError: ``truncated``, a record that runs past the message.
    """
    view = memoryview(body)
    size = len(view)
    records: list[GroupRecord] = []
    pos = 0
    for _ in range(header.rest & 0xFFFF):
        if pos + _RECORD.size > size:
            raise ParseError("truncated", f"record {len(records)} runs past the report")
        type_, aux_words, count, group = _RECORD.unpack_from(view, pos)
        start = pos + _RECORD.size
        end = start + 16 * count
        pos = end + 4 * aux_words
        if pos > size:
            raise ParseError("truncated", f"record {len(records)} runs past the report")
        sources = tuple(bytes(view[i : i + 16]) for i in range(start, end, 16))
        records.append(GroupRecord(type_, group, sources))
    return tuple(records)


# -- MLDv1 Report and Done (RFC 2710 3) ----------------------------------------------------------


def build_v1(type_: int, src: bytes, dst: bytes, group: bytes) -> bytes:
    """An MLDv1 Report (type 131, sent to ``group`` itself) or Done (type 132, sent to
    ff02::2), RFC 2710 3 and 5; checksum filled for ``src`` and ``dst``.

    Raises:
        ValueError: a type other than 131 or 132, or an address not 16 bytes.
    """
    if type_ not in (Icmp6Type.MLD_REPORT, Icmp6Type.MLD_DONE):
        raise ValueError(f"ICMPv6 type {type_} is not an MLDv1 Report or Done")
    if len(group) != 16:
        raise ValueError(f"group must be 16 bytes, not {len(group)}")
    buf = bytearray(ICMPV6_HEADER_LEN)
    buf += group
    build_into(buf, 0, type_, 0, 0, src, dst)  # RFC 2710 3.4: Maximum Response Delay 0
    return bytes(buf)


def parse_v1(header: Icmp6Header, body: Buffer) -> bytes:
    """The Multicast Address of an MLDv1 Report or Done; bytes after it are ignored (RFC
    2710 3.7 leaves room for future versions).

    Raises:
        ParseError: ``truncated``, shorter than 24 bytes.
    """
    if len(body) < _V1_QUERY_BODY:
        raise ParseError("truncated", f"MLDv1 message of {len(body) + ICMPV6_HEADER_LEN} bytes")
    return bytes(memoryview(body)[:_V1_QUERY_BODY])
