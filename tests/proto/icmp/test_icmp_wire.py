"""Tests of netstack.proto.icmp.wire: ICMP for IPv4 (RFC 792, RFC 1191).

Fixed messages come from the tcpdump project's test captures (the corpus in
shared/pcaps/tcpdump), written out as hex from the byte after the IPv4 header, with the file and
frame number; or were built by hand from RFC 792's layouts (198.18.0.0/15 addresses, RFC 2544),
written to a pcap with netstack.link.pcap.PcapWriter and decoded by ``tshark -V``, which
reported every checksum "[correct]". The comments give tshark's reading.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.icmp.wire import (
    ICMP_HEADER_LEN,
    IcmpHeader,
    IcmpType,
    UnreachableCode,
    build_into,
    checksum_ok,
    parse,
)
from netstack.proto.ipv4.wire import parse_quoted

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
REASONS = {"truncated"}


def ref_checksum(data: bytes) -> int:
    """RFC 1071's word loop with end-around carry, complemented."""
    total = 0
    for i in range(0, len(data), 2):
        total += int.from_bytes(data[i : i + 2].ljust(2, b"\x00"), "big")
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# The datagram that a hand-built error below quotes: 198.18.0.1:40000 -> 198.18.0.2:7, UDP,
# total length 33, ident 1, DF, TTL 64; "Header Checksum: 0xaea3 [correct]", UDP length 13.
QUOTED_UDP = bytes.fromhex(
    "45000021000140004011aea3c6120001c6120002"  # IPv4 header
    "9c400007000d9392"  # UDP header: ports 40000 -> 7, length 13, checksum 0x9392
)


class Fixed(NamedTuple):
    name: str
    message: bytes  # the whole ICMP message: header and data
    header: IcmpHeader


FIXED = [
    # tests/dhcp-rfc4388.pcap frame 2: "Type: 8 (Echo (ping) request)", code 0,
    # "Checksum: 0xb7db [correct]", identifier 0x4024, sequence 0, 20 bytes of zero data.
    Fixed(
        "echo_request",
        bytes.fromhex("0800b7db40240000") + bytes(20),
        IcmpHeader(8, 0, 0xB7DB, 0x40240000),
    ),
    # tests/dhcp-rfc4388.pcap frame 6: "Type: 3 (Destination unreachable)", "Code: 1 (Host
    # unreachable)", "Checksum: 0xfcfe [correct]", quoting the whole 48-byte echo request of
    # frame 2 as it left the router (TTL 63, header checksum 0xbfcc).
    Fixed(
        "host_unreachable",
        bytes.fromhex("0301fcfe000000004500003061b440003f01bfcc0a2802030a1e04040800b7db40240000")
        + bytes(20),
        IcmpHeader(3, 1, 0xFCFE, 0),
    ),
    # By hand, 198.18.0.2 -> 198.18.0.1: "Type: 0 (Echo (ping) reply)", "Checksum: 0xf705
    # [correct]", identifier 0x4e53, sequence 1, data "netstack".
    Fixed(
        "echo_reply",
        bytes.fromhex("0000f7054e530001") + b"netstack",
        IcmpHeader(0, 0, 0xF705, 0x4E530001),
    ),
    # By hand, 198.18.0.2 -> 198.18.0.1: "Code: 3 (Port unreachable)", "Checksum: 0xcd15
    # [correct]", quoting the IPv4 header and the first 8 bytes of a UDP datagram.
    Fixed(
        "port_unreachable",
        bytes.fromhex("0303cd1500000000") + QUOTED_UDP,
        IcmpHeader(3, 3, 0xCD15, 0),
    ),
    # By hand, 198.18.0.254 -> 198.18.0.1: "Code: 4 (Fragmentation needed)", "MTU of next hop:
    # 1280" (RFC 1191 4), "Checksum: 0x843d [correct]", quoting a datagram to port 9.
    Fixed(
        "fragmentation_needed",
        bytes.fromhex("0304843d000005004500001c000340004011aea6c6120001c61200029c4000090008d76c"),
        IcmpHeader(3, 4, 0x843D, 1280),
    ),
    # By hand, 198.18.0.254 -> 198.18.0.1: "Type: 11 (Time-to-live exceeded)", "Code: 0 (Time to
    # live exceeded in transit)", "Checksum: 0xc518 [correct]".
    Fixed(
        "time_exceeded",
        bytes.fromhex("0b00c51800000000") + QUOTED_UDP,
        IcmpHeader(11, 0, 0xC518, 0),
    ),
    # By hand, 198.18.0.2 -> 198.18.0.1: "Type: 12 (Parameter problem)", "Pointer: 20",
    # "Checksum: 0x6c41 [correct]", quoting a 24-byte header whose option (type 0x44, length 1)
    # is too short.
    Fixed(
        "parameter_problem",
        bytes.fromhex(
            "0c006c411400000046000020000840004011699cc6120001c6120002440100009c4000070008d76e"
        ),
        IcmpHeader(12, 0, 0x6C41, 20 << 24),
    ),
]


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_fixed_message_parses(case: Fixed, kind: type) -> None:
    header, data = parse(kind(case.message))
    assert header == case.header
    assert isinstance(data, memoryview)
    assert bytes(data) == case.message[ICMP_HEADER_LEN:]
    assert checksum_ok(kind(case.message))
    assert ref_checksum(case.message) == 0


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_message_emits_back(case: Fixed) -> None:
    assert case.header.to_bytes() == case.message[:ICMP_HEADER_LEN]
    buf = bytearray(b"\xee" * 14)
    assert case.header.emit_into(buf, 3) == ICMP_HEADER_LEN
    assert bytes(buf[3:11]) == case.message[:ICMP_HEADER_LEN]
    assert buf[:3] == b"\xee" * 3 and buf[11:] == b"\xee" * 3


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_message_rebuilt_with_build_into(case: Fixed) -> None:
    buf = bytearray(2) + bytearray(case.message)
    buf[2 + 2 : 2 + 4] = b"\x00\x00"
    build_into(buf, 2, case.header.type, case.header.code, case.header.rest)
    assert bytes(buf[2:]) == case.message


def test_header_fields() -> None:
    by_name = {c.name: c.header for c in FIXED}
    echo = by_name["echo_request"]
    assert echo.type == IcmpType.ECHO_REQUEST and not echo.is_error
    assert (echo.ident, echo.sequence) == (0x4024, 0)
    reply = by_name["echo_reply"]
    assert reply.type == IcmpType.ECHO_REPLY and not reply.is_error
    assert (reply.ident, reply.sequence) == (0x4E53, 1)
    frag = by_name["fragmentation_needed"]
    assert frag.code == UnreachableCode.FRAGMENTATION_NEEDED and frag.next_hop_mtu == 1280
    assert by_name["port_unreachable"].code == UnreachableCode.PORT
    assert by_name["host_unreachable"].code == UnreachableCode.HOST
    assert by_name["parameter_problem"].pointer == 20
    for name in ("host_unreachable", "port_unreachable", "time_exceeded", "parameter_problem"):
        assert by_name[name].is_error


@pytest.mark.parametrize("case", [c for c in FIXED if c.header.is_error], ids=lambda c: c.name)
def test_error_data_is_a_quoted_datagram(case: Fixed) -> None:
    _, data = parse(case.message)
    quoted, rest = parse_quoted(data)
    assert quoted.to_bytes() == bytes(data[: quoted.header_length])
    assert len(rest) >= 8  # RFC 792: the header and at least 64 bits of data


def test_host_unreachable_quotes_the_echo_request() -> None:
    _, data = parse(FIXED[1].message)
    quoted, rest = parse_quoted(data)
    assert quoted.ttl == 63 and quoted.total_length == 48 and quoted.proto == 1
    echo, _ = parse(rest)
    assert echo == FIXED[0].header


def test_corrupted_message_fails_the_checksum() -> None:
    damaged = bytearray(FIXED[0].message)
    damaged[-1] ^= 0x01
    assert not checksum_ok(bytes(damaged))


# -- edge cases ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(ICMP_HEADER_LEN))
def test_shorter_than_eight_bytes_is_truncated(length: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(FIXED[0].message[:length])
    assert info.value.reason == "truncated"


def test_header_alone_has_empty_data() -> None:
    header, data = parse(FIXED[0].message[:ICMP_HEADER_LEN])
    assert header == FIXED[0].header
    assert len(data) == 0


def test_all_zero_message_checksum() -> None:
    # An echo reply with identifier, sequence and data all zero sums to +0; its checksum is
    # 0xFFFF (the complement), which still verifies.
    buf = bytearray(8)
    build_into(buf, 0, 0, 0, 0)
    assert bytes(buf) == bytes.fromhex("0000ffff00000000")
    assert checksum_ok(bytes(buf))


# -- hypothesis ------------------------------------------------------------------------------

icmp_headers = st.builds(
    IcmpHeader,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
)


@SETTINGS
@given(header=icmp_headers, data=st.binary(max_size=64), offset=st.integers(0, 8))
def test_emit_then_parse_round_trips(header: IcmpHeader, data: bytes, offset: int) -> None:
    wire = header.to_bytes()
    assert len(wire) == ICMP_HEADER_LEN
    buf = bytearray(offset + ICMP_HEADER_LEN)
    assert header.emit_into(buf, offset) == ICMP_HEADER_LEN
    assert bytes(buf[offset:]) == wire
    parsed, rest = parse(wire + data)
    assert parsed == header
    assert bytes(rest) == data
    assert parsed.ident << 16 | parsed.sequence == header.rest
    assert parsed.pointer == header.rest >> 24
    assert parsed.next_hop_mtu == header.rest & 0xFFFF


@SETTINGS
@given(
    type_=st.integers(0, 255),
    code=st.integers(0, 255),
    rest=st.integers(0, 0xFFFFFFFF),
    data=st.binary(max_size=100),
    offset=st.integers(0, 6),
    bit=st.integers(0, 10_000),
)
def test_build_into_then_checksum_ok(
    type_: int, code: int, rest: int, data: bytes, offset: int, bit: int
) -> None:
    buf = bytearray(b"\xaa" * offset) + bytearray(ICMP_HEADER_LEN) + bytearray(data)
    build_into(buf, offset, type_, code, rest)
    message = bytes(buf[offset:])
    assert checksum_ok(message)
    header, body = parse(message)
    assert (header.type, header.code, header.rest) == (type_, code, rest)
    assert bytes(body) == data
    zeroed = message[:2] + b"\x00\x00" + message[4:]
    assert header.checksum == ref_checksum(zeroed)
    # RFC 1071: every single-bit error changes the sum, so the checksum catches it.
    damaged = bytearray(message)
    bit %= 8 * len(damaged)
    damaged[bit // 8] ^= 1 << (bit % 8)
    assert not checksum_ok(bytes(damaged))


@SETTINGS
@given(data=st.binary(max_size=40))
def test_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    try:
        header, rest = parse(data)
    except ParseError as exc:
        assert exc.reason in REASONS
        assert SNAKE_CASE.match(exc.reason)
        return
    assert header.to_bytes() == data[:ICMP_HEADER_LEN]
    assert bytes(rest) == data[ICMP_HEADER_LEN:]
    assert isinstance(checksum_ok(data), bool)
