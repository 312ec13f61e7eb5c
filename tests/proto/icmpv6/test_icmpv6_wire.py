"""Tests of netstack.proto.icmpv6.wire: the ICMPv6 header, checksum and quoted packet (RFC 4443).

The fixed messages were assembled by hand from RFC 4443's layouts (2001:db8::/32 addresses, RFC
3849), their checksums worked out with the RFC 1071 loop below over the RFC 8200 8.1
pseudo-header, then written to a pcap and decoded by ``tshark -V``, which reported every
ICMPv6 checksum "[correct]". The comments give tshark's reading.
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.icmpv6.wire import (
    ICMPV6_HEADER_LEN,
    ICMPV6_NEXT_HEADER,
    IPV6_MIN_MTU,
    Icmp6Header,
    Icmp6Type,
    ParameterProblemCode6,
    TimeExceededCode6,
    UnreachableCode6,
    build,
    build_into,
    checksum_ok,
    error_body,
    parse,
    parse_quoted,
)

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def ref_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 1071's word loop with end-around carry, over the RFC 8200 8.1 pseudo-header (source,
    destination, 32-bit length, three zero bytes, Next Header 58) and the message."""
    data = src + dst + len(message).to_bytes(4, "big") + b"\x00\x00\x00\x3a" + message
    total = 0
    for i in range(0, len(data), 2):
        total += int.from_bytes(data[i : i + 2].ljust(2, b"\x00"), "big")
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


A1 = addr("2001:db8::1")
A2 = addr("2001:db8::2")
ROUTER = addr("2001:db8:ff::1")

# 2001:db8::1 port 40000 -> 2001:db8::2 port 7: "Payload Length: 13", "Next Header: UDP (17)",
# "Hop Limit: 64"; UDP length 13, checksum 0xc445, data "hello".
QUOTED_UDP = (
    bytes.fromhex(
        "60000000000d1140"
        "20010db8000000000000000000000001"
        "20010db8000000000000000000000002"
        "9c400007000dc445"
    )
    + b"hello"
)
# The first 60 bytes of a 1500-byte packet: "Payload Length: 1460", "Next Header: TCP (6)", and
# the 20-byte header of a SYN from port 50000 to 443.
QUOTED_TCP = bytes.fromhex(
    "6000000005b40640"
    "20010db8000000000000000000000001"
    "20010db8000000000000000000000002"
    "c35001bb000000010000000050022000" "00000000"
)  # fmt: skip
# "Next Header: 253" (RFC 3692 experimentation), "Payload Length: 8", 8 bytes of data.
QUOTED_253 = bytes.fromhex(
    "600000000008fd40"
    "20010db8000000000000000000000001"
    "20010db8000000000000000000000002"
    "deadbeefdeadbeef"
)


class Fixed(NamedTuple):
    name: str
    src: bytes
    dst: bytes
    message: bytes  # the whole ICMPv6 message
    header: Icmp6Header


FIXED = [
    # 2001:db8::1 -> 2001:db8::2: "Echo (ping) request id=0x1234, seq=1", "Checksum: 0x5765
    # [correct]", data "netstack".
    Fixed(
        "echo_request",
        A1,
        A2,
        bytes.fromhex("8000576512340001") + b"netstack",
        Icmp6Header(128, 0, 0x5765, 0x12340001),
    ),
    # The reply: "Echo (ping) reply id=0x1234, seq=1", "Checksum: 0x5665 [correct]".
    Fixed(
        "echo_reply",
        A2,
        A1,
        bytes.fromhex("8100566512340001") + b"netstack",
        Icmp6Header(129, 0, 0x5665, 0x12340001),
    ),
    # 2001:db8::2 -> 2001:db8::1: "Destination Unreachable (Port unreachable)", "Checksum:
    # 0x31e0 [correct]", quoting the whole UDP datagram.
    Fixed(
        "port_unreachable",
        A2,
        A1,
        bytes.fromhex("010431e000000000") + QUOTED_UDP,
        Icmp6Header(1, 4, 0x31E0, 0),
    ),
    # 2001:db8:ff::1 -> 2001:db8::1: "Packet Too Big", "MTU: 1280", "Checksum: 0x9f95
    # [correct]", quoting the start of a TCP packet.
    Fixed(
        "packet_too_big",
        ROUTER,
        A1,
        bytes.fromhex("02009f9500000500") + QUOTED_TCP,
        Icmp6Header(2, 0, 0x9F95, 1280),
    ),
    # 2001:db8:ff::1 -> 2001:db8::1: "Time Exceeded (hop limit exceeded in transit)",
    # "Checksum: 0x2ee6 [correct]".
    Fixed(
        "time_exceeded",
        ROUTER,
        A1,
        bytes.fromhex("03002ee600000000") + QUOTED_UDP,
        Icmp6Header(3, 0, 0x2EE6, 0),
    ),
    # 2001:db8::2 -> 2001:db8::1: "Parameter Problem (unrecognized Next Header type
    # encountered)", "Pointer: 6" (the Next Header field), "Checksum: 0xac17 [correct]".
    Fixed(
        "parameter_problem",
        A2,
        A1,
        bytes.fromhex("0401ac1700000006") + QUOTED_253,
        Icmp6Header(4, 1, 0xAC17, 6),
    ),
]
ERRORS = [c for c in FIXED if c.header.is_error]


def test_enum_values() -> None:
    # RFC 4443 2.1, 3, 4; RFC 4861 4; RFC 2710 3; RFC 3810 5.
    assert [int(t) for t in Icmp6Type] == [1, 2, 3, 4, 128, 129, 130, 131, 132] + [
        133, 134, 135, 136, 137, 143
    ]  # fmt: skip
    assert [int(c) for c in UnreachableCode6] == list(range(7))
    assert UnreachableCode6.PORT == 4 and UnreachableCode6.ADDRESS == 3
    assert TimeExceededCode6.REASSEMBLY == 1
    assert ParameterProblemCode6.UNRECOGNIZED_NEXT_HEADER == 1
    assert ICMPV6_HEADER_LEN == 8 and ICMPV6_NEXT_HEADER == 58 and IPV6_MIN_MTU == 1280


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_fixed_message_parses(case: Fixed, kind: type) -> None:
    header, body = parse(kind(case.message))
    assert header == case.header
    assert isinstance(body, memoryview)
    assert bytes(body) == case.message[ICMPV6_HEADER_LEN:]
    assert checksum_ok(kind(case.message), case.src, case.dst)
    assert ref_checksum(case.src, case.dst, case.message) == 0


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_message_emits_back(case: Fixed) -> None:
    assert case.header.to_bytes() == case.message[:ICMPV6_HEADER_LEN]
    buf = bytearray(b"\xee" * 14)
    assert case.header.emit_into(buf, 3) == ICMPV6_HEADER_LEN
    assert bytes(buf[3:11]) == case.message[:ICMPV6_HEADER_LEN]
    assert buf[:3] == b"\xee" * 3 and buf[11:] == b"\xee" * 3


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_message_rebuilt(case: Fixed) -> None:
    h = case.header
    body = case.message[ICMPV6_HEADER_LEN:]
    assert build(h.type, h.code, h.rest, body, case.src, case.dst) == case.message
    assert build(h.type, h.code, h.rest, memoryview(body), case.src, case.dst) == case.message
    # build_into at an offset, over a header area holding garbage.
    buf = bytearray(b"\x55" * 5) + bytearray(b"\xff" * 8) + bytearray(body)
    build_into(buf, 5, h.type, h.code, h.rest, case.src, case.dst)
    assert bytes(buf[5:]) == case.message and buf[:5] == b"\x55" * 5


def test_header_fields() -> None:
    by_name = {c.name: c.header for c in FIXED}
    echo = by_name["echo_request"]
    assert echo.type == Icmp6Type.ECHO_REQUEST and not echo.is_error
    assert (echo.ident, echo.sequence) == (0x1234, 1)
    assert by_name["echo_reply"].type == Icmp6Type.ECHO_REPLY
    assert by_name["port_unreachable"].code == UnreachableCode6.PORT
    assert by_name["packet_too_big"].mtu == 1280
    assert by_name["time_exceeded"].code == TimeExceededCode6.HOP_LIMIT
    assert by_name["parameter_problem"].pointer == 6
    for name in ("port_unreachable", "packet_too_big", "time_exceeded", "parameter_problem"):
        assert by_name[name].is_error


def test_mtu_and_pointer_use_all_32_bits() -> None:
    # RFC 4443 3.2 and 3.4: both fields are 32 bits wide, unlike ICMPv4's.
    header = Icmp6Header(2, 0, 0, 0x00012345)
    assert header.mtu == 0x12345
    assert Icmp6Header(4, 0, 0, 0x00010002).pointer == 0x10002
    assert Icmp6Header(127, 0, 0, 0).is_error and not Icmp6Header(128, 0, 0, 0).is_error


# -- checksum --------------------------------------------------------------------------------


def test_checksum_covers_the_pseudo_header() -> None:
    case = FIXED[0]
    assert not checksum_ok(case.message, addr("2001:db8::3"), case.dst)
    assert not checksum_ok(case.message + b"\x00\x00", case.src, case.dst)  # length counts


def test_corrupted_message_fails_the_checksum() -> None:
    damaged = bytearray(FIXED[0].message)
    damaged[-1] ^= 0x01
    assert not checksum_ok(bytes(damaged), FIXED[0].src, FIXED[0].dst)


def test_odd_length_message_checksum() -> None:
    message = build(Icmp6Type.ECHO_REQUEST, 0, 7, b"abc", A1, A2)
    assert len(message) == 11
    assert checksum_ok(message, A1, A2)
    assert ref_checksum(A1, A2, message) == 0


# -- quoted packets --------------------------------------------------------------------------


def test_port_unreachable_quotes_the_udp_datagram() -> None:
    _, body = parse(FIXED[2].message)
    src, dst, next_header, payload = parse_quoted(body)
    assert (src, dst, next_header) == (A1, A2, 17)
    assert bytes(payload) == QUOTED_UDP[40:]
    assert bytes(payload[:4]) == bytes.fromhex("9c400007")  # ports 40000 -> 7
    assert isinstance(payload, memoryview)


def test_quote_shorter_than_its_payload_length() -> None:
    # RFC 4443 2.4(c) cuts long packets: the payload is what was quoted.
    _, body = parse(FIXED[3].message)
    quoted = parse_quoted(body)
    assert quoted.next_header == 6
    assert len(quoted.payload) == 20 < 1460


def test_quote_longer_than_its_payload_length_is_cut() -> None:
    # Bytes beyond Payload Length (RFC 4884 padding and extensions) are not the packet's.
    quoted = parse_quoted(QUOTED_253 + bytes(88) + b"extension")
    assert quoted.next_header == 253
    assert bytes(quoted.payload) == b"\xde\xad\xbe\xef" * 2


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c.name)
def test_every_error_quotes_an_ipv6_packet(case: Fixed) -> None:
    _, body = parse(case.message)
    quoted = parse_quoted(body)
    assert quoted.src == A1 and quoted.dst == A2


@pytest.mark.parametrize("length", [0, 1, 8, 39])
def test_quote_shorter_than_a_header_is_truncated(length: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_quoted(QUOTED_UDP[:length])
    assert info.value.reason == "truncated"


@pytest.mark.parametrize("first", [0x00, 0x40, 0x45, 0x70, 0xF0])
def test_quote_of_another_version(first: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_quoted(bytes([first]) + QUOTED_UDP[1:])
    assert info.value.reason == "bad_version"


# -- error bodies ----------------------------------------------------------------------------


def test_error_body_keeps_a_small_packet_whole() -> None:
    assert error_body(QUOTED_UDP) == QUOTED_UDP
    assert error_body(memoryview(QUOTED_UDP)) == QUOTED_UDP


def test_error_body_fits_the_minimum_mtu() -> None:
    # RFC 4443 2.4(c): the error packet (IPv6 header + ICMPv6 header + body) <= 1280 bytes.
    big = QUOTED_TCP + bytes(1500)
    body = error_body(big)
    assert len(body) == 1280 - 40 - 8
    assert body == big[: len(body)]
    message = build(Icmp6Type.PACKET_TOO_BIG, 0, 1280, body, ROUTER, A1)
    assert 40 + len(message) == IPV6_MIN_MTU
    assert len(error_body(big, limit=100)) == 100
    assert error_body(big, limit=0) == b""


def test_error_body_rejects_a_negative_limit() -> None:
    with pytest.raises(ValueError):
        error_body(QUOTED_UDP, limit=-1)


# -- edge cases ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(ICMPV6_HEADER_LEN))
def test_shorter_than_eight_bytes_is_truncated(length: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(FIXED[0].message[:length])
    assert info.value.reason == "truncated"


def test_header_alone_has_empty_body() -> None:
    header, body = parse(FIXED[0].message[:ICMPV6_HEADER_LEN])
    assert header == FIXED[0].header
    assert len(body) == 0


# -- hypothesis ------------------------------------------------------------------------------

addresses = st.binary(min_size=16, max_size=16)
headers = st.builds(
    Icmp6Header,
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
)


@SETTINGS
@given(header=headers, body=st.binary(max_size=64), offset=st.integers(0, 8))
def test_emit_then_parse_round_trips(header: Icmp6Header, body: bytes, offset: int) -> None:
    wire = header.to_bytes()
    assert len(wire) == ICMPV6_HEADER_LEN
    buf = bytearray(offset + ICMPV6_HEADER_LEN)
    assert header.emit_into(buf, offset) == ICMPV6_HEADER_LEN
    assert bytes(buf[offset:]) == wire
    parsed, rest = parse(wire + body)
    assert parsed == header
    assert bytes(rest) == body
    assert parsed.ident << 16 | parsed.sequence == header.rest
    assert parsed.mtu == parsed.pointer == header.rest
    assert parsed.is_error == (header.type < 128)


@SETTINGS
@given(
    type_=st.integers(0, 255),
    code=st.integers(0, 255),
    rest=st.integers(0, 0xFFFFFFFF),
    body=st.binary(max_size=100),
    src=addresses,
    dst=addresses,
    bit=st.integers(0, 10_000),
)
def test_build_then_checksum_ok(
    type_: int, code: int, rest: int, body: bytes, src: bytes, dst: bytes, bit: int
) -> None:
    message = build(type_, code, rest, body, src, dst)
    assert checksum_ok(message, src, dst)
    header, parsed_body = parse(message)
    assert (header.type, header.code, header.rest) == (type_, code, rest)
    assert bytes(parsed_body) == body
    zeroed = message[:2] + b"\x00\x00" + message[4:]
    checksum = ref_checksum(src, dst, zeroed)
    assert header.checksum == checksum
    # RFC 1071: every single-bit error changes the sum, so the checksum catches it.
    damaged = bytearray(message)
    bit %= 8 * len(damaged)
    damaged[bit // 8] ^= 1 << (bit % 8)
    assert not checksum_ok(bytes(damaged), src, dst)


@SETTINGS
@given(data=st.binary(max_size=80))
def test_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    for function in (parse, parse_quoted):
        try:
            function(data)
        except ParseError as exc:
            assert exc.reason in {"truncated", "bad_version"}
            assert SNAKE_CASE.match(exc.reason)
    assert isinstance(checksum_ok(data, A1, A2), bool)


@SETTINGS
@given(
    src=addresses,
    dst=addresses,
    next_header=st.integers(0, 255),
    payload_length=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=64),
)
def test_quoted_header_fields_round_trip(
    src: bytes, dst: bytes, next_header: int, payload_length: int, payload: bytes
) -> None:
    packet = (
        bytes.fromhex("6abcdef0")
        + payload_length.to_bytes(2, "big")
        + bytes([next_header, 7])
        + src
        + dst
        + payload
    )
    quoted = parse_quoted(packet)
    assert (quoted.src, quoted.dst, quoted.next_header) == (src, dst, next_header)
    assert bytes(quoted.payload) == payload[:payload_length]
