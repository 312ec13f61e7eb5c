"""Tests of netstack.proto.ipv4.wire: IPv4 headers (RFC 791 3.1) and their options.

Fixed datagrams come from the tcpdump project's test captures (the corpus in
shared/pcaps/tcpdump), written out as hex from the byte after the Ethernet header, with the file
and frame number; or were built by hand from RFC 791's diagram (198.18.0.0/15 addresses,
RFC 2544), written to a pcap with netstack.link.pcap.PcapWriter and decoded by
``tshark -o ip.check_checksum:TRUE -V``. The comments give tshark's reading.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from typing import NamedTuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.ipv4.wire import (
    IPV4_HEADER_LEN,
    IpProto,
    IPv4Header,
    IPv4Option,
    build_header_into,
    checksum_ok,
    fill_checksum,
    iter_options,
    parse,
    parse_quoted,
)

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PARSE_REASONS = {"truncated", "bad_version", "bad_header_length", "bad_total_length"}
QUOTED_REASONS = {"truncated", "bad_header"}
OPTION_REASONS = {"bad_option"}


def ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ref_checksum(data: bytes) -> int:
    """RFC 1071's word loop with end-around carry, complemented."""
    total = 0
    for i in range(0, len(data), 2):
        total += int.from_bytes(data[i : i + 2].ljust(2, b"\x00"), "big")
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Fixed(NamedTuple):
    name: str
    datagram: bytes  # from the IPv4 header to the end of the frame (link padding included)
    header: IPv4Header


FIXED = [
    # tests/dhcp-rfc4388.pcap frame 2: 10.40.2.3 -> 10.30.4.4, IHL 5, DSCP 0, total length 48,
    # ident 0x61b4, DF, TTL 64, ICMP, "Header Checksum: 0xbecc [correct]".
    Fixed(
        "icmp_echo",
        bytes.fromhex("4500003061b440004001becc0a2802030a1e04040800b7db40240000") + bytes(20),
        IPv4Header(0, 48, 0x61B4, 0x4000, 64, 1, 0xBECC, ip("10.40.2.3"), ip("10.30.4.4")),
    ),
    # tests/dns_udp.pcap frame 1: 192.168.1.11 -> 209.87.249.18, total length 84,
    # ident 0x59cd, no flags, TTL 64, UDP, "0x94ae [correct]".
    Fixed(
        "udp_dns",
        bytes.fromhex(
            "4500005459cd0000401194aec0a8010bd157f912"
            "abbe003500407824593401200001000000000001037777770774637064756d70"
            "036f72670000010001000029100000000000000c000a000842f5d00996f90b13"
        ),
        IPv4Header(0, 84, 0x59CD, 0, 64, 17, 0x94AE, ip("192.168.1.11"), ip("209.87.249.18")),
    ),
    # tests/IGMP_V1.pcap frame 3: 192.168.1.3 -> 239.255.255.250, IHL 6 (24 bytes), total
    # length 32, ident 0x4ef7, TTL 1, IGMP, "0x243b [correct]", "Options: (4 bytes), Router
    # Alert" (type 148, length 4, value 0).
    Fixed(
        "igmp_router_alert",
        bytes.fromhex("460000204ef700000102243bc0a80103effffffa940400001200fe04effffffa"),
        IPv4Header(
            0,
            32,
            0x4EF7,
            0,
            1,
            2,
            0x243B,
            ip("192.168.1.3"),
            ip("239.255.255.250"),
            bytes.fromhex("94040000"),
        ),
    ),
    # By hand: 198.18.0.1 -> 198.18.0.2, IHL 8, total length 40, ident 10, DF, TTL 64, ICMP
    # echo request; "Options: (12 bytes), Record Route" (type 7, length 11, pointer 4, two
    # empty slots) then "End of Options List (EOL)"; "Header Checksum: 0xa098 [correct]".
    Fixed(
        "record_route",
        bytes.fromhex(
            "48000028000a40004001a098c6120001c6120002070b040000000000000000000800f7fc00010002"
        ),
        IPv4Header(
            0,
            40,
            10,
            0x4000,
            64,
            1,
            0xA098,
            ip("198.18.0.1"),
            ip("198.18.0.2"),
            bytes.fromhex("070b04000000000000000000"),
        ),
    ),
    # By hand: 198.18.0.1 -> 198.18.0.2, IHL 7, total length 36, ident 11, TTL 1, IGMP, four
    # NOPs then Router Alert; "Header Checksum: 0x959f [correct]"; 8 zero bytes of payload.
    Fixed(
        "nops_router_alert",
        bytes.fromhex("47000024000b00000102959fc6120001c61200020101010194040000") + bytes(8),
        IPv4Header(
            0,
            36,
            11,
            0,
            1,
            2,
            0x959F,
            ip("198.18.0.1"),
            ip("198.18.0.2"),
            bytes.fromhex("0101010194040000"),
        ),
    ),
]

EXPECTED_OPTIONS = {
    "icmp_echo": [],
    "udp_dns": [],
    "igmp_router_alert": [IPv4Option(148, b"\x00\x00")],
    "record_route": [IPv4Option(7, bytes.fromhex("04") + bytes(8))],
    "nops_router_alert": [IPv4Option(148, b"\x00\x00")],
}


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_fixed_datagram_parses(case: Fixed, kind: type) -> None:
    header, payload = parse(kind(case.datagram))
    assert header == case.header
    assert isinstance(header.src, bytes) and isinstance(header.options, bytes)
    assert isinstance(payload, memoryview)
    assert bytes(payload) == case.datagram[header.header_length : header.total_length]
    assert header.payload_length == len(payload)
    assert checksum_ok(case.datagram)
    assert ref_checksum(case.datagram[: header.header_length]) == 0


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_datagram_emits_back(case: Fixed) -> None:
    hl = case.header.header_length
    assert case.header.to_bytes() == case.datagram[:hl]
    buf = bytearray(b"\xee" * (hl + 6))
    assert case.header.emit_into(buf, 2) == hl
    assert bytes(buf[2 : 2 + hl]) == case.datagram[:hl]
    assert buf[:2] == b"\xee\xee" and buf[2 + hl :] == b"\xee" * 4


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_datagram_options(case: Fixed) -> None:
    assert list(iter_options(case.header.options)) == EXPECTED_OPTIONS[case.name]


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_datagram_parse_quoted_agrees(case: Fixed) -> None:
    header, payload = parse_quoted(case.datagram)
    assert header == case.header
    assert bytes(payload) == case.datagram[header.header_length : header.total_length]


def test_header_properties() -> None:
    echo = FIXED[0].header
    assert echo.dont_fragment and not echo.more_fragments and not echo.is_fragment
    assert echo.fragment_offset == 0
    assert echo.proto == IpProto.ICMP
    assert (echo.dscp, echo.ecn) == (0, 0)
    # tests/bfd_source_port_49152.pcap: "Differentiated Services Field: 0xe0 (DSCP: CS7)"
    assert (echo._replace(tos=0xE0).dscp, echo._replace(tos=0xE0).ecn) == (56, 0)
    assert echo._replace(tos=0x03).ecn == 3
    fragment = echo._replace(flags_fragment=0x2000 | 185)
    assert fragment.more_fragments and fragment.is_fragment and not fragment.dont_fragment
    assert fragment.fragment_offset == 185 * 8 == 1480
    last = echo._replace(flags_fragment=185)
    assert last.is_fragment and not last.more_fragments
    assert FIXED[2].header.header_length == 24 and FIXED[2].header.payload_length == 8


def test_link_padding_is_cut_off() -> None:
    # tests/dhcp-rfc4388.pcap frame 2 as if padded by a link: the payload ends at Total Length.
    header, payload = parse(FIXED[0].datagram + b"\x00" * 12)
    assert header.total_length == 48
    assert len(payload) == 28


# -- malformed headers -----------------------------------------------------------------------

ECHO = FIXED[0].datagram


def with_byte(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1 :]


def with_total(data: bytes, total: int) -> bytes:
    return data[:2] + struct.pack("!H", total) + data[4:]


def parse_error(data: bytes) -> str:
    with pytest.raises(ParseError) as info:
        parse(data)
    return info.value.reason


@pytest.mark.parametrize("length", range(IPV4_HEADER_LEN))
def test_shorter_than_a_header_is_truncated(length: int) -> None:
    assert parse_error(ECHO[:length]) == "truncated"


@pytest.mark.parametrize("version", [0, 1, 5, 6, 7, 15])
def test_wrong_version(version: int) -> None:
    assert parse_error(with_byte(ECHO, 0, (version << 4) | 5)) == "bad_version"


def test_ipv6_header_is_bad_version() -> None:
    # An IPv6 header (version 6) with payload length 8, next header UDP, hop limit 64.
    ipv6 = bytes.fromhex("6000000000081140") + bytes(32) + bytes(8)
    assert parse_error(ipv6) == "bad_version"


@pytest.mark.parametrize("ihl", [0, 1, 2, 3, 4])
def test_ihl_below_five(ihl: int) -> None:
    assert parse_error(with_byte(ECHO, 0, 0x40 | ihl)) == "bad_header_length"


@pytest.mark.parametrize("total", [0, 1, 19])
def test_total_length_below_the_minimum_header(total: int) -> None:
    assert parse_error(with_total(ECHO, total)) == "bad_total_length"


def test_total_length_below_a_header_with_options() -> None:
    igmp = FIXED[2].datagram  # IHL 6: 24 bytes of header
    assert parse_error(with_total(igmp, 23)) == "bad_total_length"
    header, payload = parse(with_total(igmp, 24))
    assert header.options == bytes.fromhex("94040000") and len(payload) == 0


def test_total_length_equal_to_the_header_is_an_empty_datagram() -> None:
    header, payload = parse(with_total(ECHO, 20))
    assert header.total_length == 20 and len(payload) == 0


@pytest.mark.parametrize("total", [49, 60, 0xFFFF])
def test_total_length_beyond_the_data_is_truncated(total: int) -> None:
    assert parse_error(with_total(ECHO, total)) == "truncated"


def test_options_beyond_the_data_are_truncated() -> None:
    # IHL 15 (60 bytes) with total length 60 but only 40 bytes received.
    data = with_total(with_byte(ECHO, 0, 0x4F), 60)[:40]
    assert parse_error(data) == "truncated"


def test_largest_header() -> None:
    options = bytes([1] * 39 + [0])
    header = IPv4Header(0, 60, 1, 0, 64, 17, 0, ip("198.18.0.1"), ip("198.18.0.2"), options)
    data = header.to_bytes()
    assert data[0] == 0x4F and len(data) == 60
    assert parse(data)[0] == header
    assert list(iter_options(options)) == []


def test_emit_rejects_unpadded_or_oversized_options() -> None:
    base = FIXED[0].header
    for options in (b"\x01", b"\x01\x01\x01", bytes(44)):
        with pytest.raises(ValueError):
            base._replace(options=options).to_bytes()


# -- parse_quoted ----------------------------------------------------------------------------

# The datagram quoted by tests/dhcp-rfc4388.pcap frame 6 ("Destination unreachable (Host
# unreachable)"): its header says 48 bytes, of which 28 are quoted here (header + 64 bits).
QUOTED = bytes.fromhex("4500003061b440003f01bfcc0a2802030a1e04040800b7db40240000")


def test_parse_quoted_accepts_a_cut_datagram() -> None:
    with pytest.raises(ParseError) as info:
        parse(QUOTED)
    assert info.value.reason == "truncated"
    header, payload = parse_quoted(QUOTED)
    assert header.total_length == 48 and header.ttl == 63
    assert (header.src, header.dst) == (ip("10.40.2.3"), ip("10.30.4.4"))
    assert checksum_ok(QUOTED)
    assert bytes(payload) == bytes.fromhex("0800b7db40240000")


def test_parse_quoted_stops_at_total_length() -> None:
    header, payload = parse_quoted(FIXED[0].datagram + b"\xaa" * 10)
    assert len(payload) == 28


def test_parse_quoted_with_total_length_below_header() -> None:
    header, payload = parse_quoted(with_total(QUOTED, 3))
    assert header.total_length == 3
    assert len(payload) == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (QUOTED[:19], "truncated"),
        (with_byte(QUOTED, 0, 0x65), "bad_header"),  # version 6
        (with_byte(QUOTED, 0, 0x44), "bad_header"),  # IHL 4
        (with_byte(QUOTED, 0, 0x40), "bad_header"),  # IHL 0
        (with_byte(QUOTED, 0, 0x46)[:23], "truncated"),  # IHL 6, 23 bytes
        (with_byte(QUOTED, 0, 0x4F), "truncated"),  # IHL 15, 28 bytes
    ],
)
def test_parse_quoted_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_quoted(data)
    assert info.value.reason == reason


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (b"", []),
        (b"\x00\x00\x00\x00", []),
        (b"\x00\x07\x01", []),  # nothing after End of Option List is read
        (b"\x00\xff", []),
        (b"\x01\x01\x01\x01", []),
        (b"\x01\x94\x04\x00\x00\x00\x00\x00", [IPv4Option(148, b"\x00\x00")]),
        (b"\x94\x04\x00\x00", [IPv4Option(148, b"\x00\x00")]),
        (b"\x82\x02\x01\x00", [IPv4Option(130, b"")]),  # Security, length 2, NOP, EOL
        (
            # Loose Source and Record Route (131) with one address, a NOP, then Internet
            # Timestamp (68) with pointer 5 and one empty 4-byte slot.
            bytes.fromhex("8307040a000001014408050000000000"),
            [
                IPv4Option(131, bytes.fromhex("040a000001")),
                IPv4Option(68, bytes.fromhex("050000000000")),
            ],
        ),
    ],
)
def test_iter_options(options: bytes, expected: list[IPv4Option]) -> None:
    assert list(iter_options(options)) == expected


@pytest.mark.parametrize(
    "options",
    [
        b"\x94",  # a kind without its length byte
        b"\x01\x01\x01\x07",  # ... after NOPs
        b"\x94\x00\x00\x00",  # length 0
        b"\x94\x01\x00\x00",  # length 1 (below the two bytes of kind and length)
        b"\x94\x05\x00\x00",  # runs past the area
        b"\x07\x28" + bytes(36),  # 40 bytes claimed in 38
        b"\x94\x04\x00\x00\x07",  # a good option, then a cut one
    ],
)
def test_iter_options_bad_length(options: bytes) -> None:
    with pytest.raises(ParseError) as info:
        list(iter_options(options))
    assert info.value.reason == "bad_option"


# -- checksums -------------------------------------------------------------------------------

headers = st.builds(
    IPv4Header,
    tos=st.integers(0, 255),
    total_length=st.integers(0, 0xFFFF),
    ident=st.integers(0, 0xFFFF),
    flags_fragment=st.integers(0, 0xFFFF),
    ttl=st.integers(0, 255),
    proto=st.integers(0, 255),
    checksum=st.integers(0, 0xFFFF),
    src=st.binary(min_size=4, max_size=4),
    dst=st.binary(min_size=4, max_size=4),
    options=st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
)


@SETTINGS
@given(header=headers, offset=st.integers(0, 6), bit=st.integers(0, 8 * 60 - 1))
def test_fill_checksum_then_checksum_ok(header: IPv4Header, offset: int, bit: int) -> None:
    buf = bytearray(offset) + bytearray(header.to_bytes()) + bytearray(b"tail")
    fill_checksum(buf, offset)
    data = bytes(buf[offset:])
    hl = header.header_length
    assert checksum_ok(data)
    assert ref_checksum(data[:hl]) == 0
    zeroed = data[:10] + b"\x00\x00" + data[12:hl]
    assert struct.unpack_from("!H", data, 10)[0] == ref_checksum(zeroed)
    # RFC 1071: any single-bit error is detected (it changes the sum by +-2**k, never 0xFFFF).
    bit %= 8 * hl
    if bit >= 8:  # flipping a version/IHL bit changes the header's length instead
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert not checksum_ok(bytes(damaged))


@SETTINGS
@given(
    total_length=st.integers(20, 0xFFFF),
    ident=st.integers(0, 0xFFFF),
    flags_fragment=st.integers(0, 0xFFFF),
    ttl=st.integers(0, 255),
    proto=st.integers(0, 255),
    src=st.binary(min_size=4, max_size=4),
    dst=st.binary(min_size=4, max_size=4),
    tos=st.integers(0, 255),
    offset=st.integers(0, 6),
)
def test_build_header_into(
    total_length: int,
    ident: int,
    flags_fragment: int,
    ttl: int,
    proto: int,
    src: bytes,
    dst: bytes,
    tos: int,
    offset: int,
) -> None:
    buf = bytearray(offset + total_length)
    build_header_into(buf, offset, total_length, ident, flags_fragment, ttl, proto, src, dst, tos)
    data = bytes(buf[offset:])
    assert checksum_ok(data)
    header, payload = parse(data)
    assert header == IPv4Header(
        tos, total_length, ident, flags_fragment, ttl, proto, header.checksum, src, dst
    )
    assert header.checksum == ref_checksum(data[:10] + b"\x00\x00" + data[12:20])
    assert len(payload) == total_length - 20


def test_checksum_ok_rejects_a_known_bad_checksum() -> None:
    assert not checksum_ok(with_byte(ECHO, 11, 0xCD))  # 0xbecd instead of 0xbecc


# -- hypothesis round trips and garbage ------------------------------------------------------


@st.composite
def datagrams(draw: st.DrawFn) -> tuple[IPv4Header, bytes]:
    options = draw(st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)))
    payload = draw(st.binary(max_size=64))
    header = IPv4Header(
        tos=draw(st.integers(0, 255)),
        total_length=IPV4_HEADER_LEN + len(options) + len(payload),
        ident=draw(st.integers(0, 0xFFFF)),
        flags_fragment=draw(st.integers(0, 0xFFFF)),
        ttl=draw(st.integers(0, 255)),
        proto=draw(st.integers(0, 255)),
        checksum=draw(st.integers(0, 0xFFFF)),
        src=draw(st.binary(min_size=4, max_size=4)),
        dst=draw(st.binary(min_size=4, max_size=4)),
        options=options,
    )
    return header, payload


@SETTINGS
@given(datagram=datagrams(), padding=st.binary(max_size=16), offset=st.integers(0, 8))
def test_emit_then_parse_round_trips(
    datagram: tuple[IPv4Header, bytes], padding: bytes, offset: int
) -> None:
    header, payload = datagram
    wire = header.to_bytes()
    assert len(wire) == header.header_length
    buf = bytearray(offset + header.header_length)
    assert header.emit_into(buf, offset) == header.header_length
    assert bytes(buf[offset:]) == wire
    parsed, rest = parse(wire + payload + padding)
    assert parsed == header
    assert bytes(rest) == payload
    # a quoted copy, cut anywhere after the header, gives the same header
    cut = len(wire) + len(payload) // 2
    quoted, quoted_rest = parse_quoted((wire + payload)[:cut])
    assert quoted == header
    assert bytes(quoted_rest) == payload[: cut - len(wire)]


options_lists = st.lists(
    st.one_of(
        st.just(IPv4Option(1, b"")),  # NOP, not yielded
        st.builds(
            IPv4Option, st.integers(2, 255), st.binary(max_size=12)
        ),  # any other kind carries a length
    ),
    max_size=6,
)


@SETTINGS
@given(options=options_lists, eol=st.booleans(), trailer=st.binary(max_size=8))
def test_encoded_options_iterate_back(options: list[IPv4Option], eol: bool, trailer: bytes) -> None:
    encoded = b"".join(
        bytes([o.kind]) if o.kind == 1 else bytes([o.kind, 2 + len(o.data)]) + o.data
        for o in options
    )
    if eol:
        encoded += b"\x00" + trailer
    assert list(iter_options(encoded)) == [o for o in options if o.kind != 1]


def _check_parse(data: bytes) -> None:
    try:
        header, payload = parse(data)
    except ParseError as exc:
        assert exc.reason in PARSE_REASONS
        assert SNAKE_CASE.match(exc.reason)
    else:
        assert IPV4_HEADER_LEN <= header.header_length <= header.total_length <= len(data)
        assert header.to_bytes() == data[: header.header_length]
        assert len(payload) == header.total_length - header.header_length
    try:
        quoted, rest = parse_quoted(data)
    except ParseError as exc:
        assert exc.reason in QUOTED_REASONS
        assert SNAKE_CASE.match(exc.reason)
    else:
        assert quoted.to_bytes() == data[: quoted.header_length]
        assert quoted.header_length + len(rest) <= len(data)


@SETTINGS
@given(data=st.binary(max_size=80))
def test_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    _check_parse(data)


@SETTINGS
@given(
    ver_ihl=st.integers(0x40, 0x4F),
    total=st.integers(0, 100),
    rest=st.binary(min_size=18, max_size=90),
)
@example(ver_ihl=0x45, total=20, rest=bytes(18))
@example(ver_ihl=0x4F, total=60, rest=bytes(58))
def test_ipv4_shaped_garbage_parses_or_raises_parse_error(
    ver_ihl: int, total: int, rest: bytes
) -> None:
    data = bytes([ver_ihl, rest[0]]) + struct.pack("!H", total) + rest[1:]
    _check_parse(data)


@SETTINGS
@given(data=st.binary(max_size=48))
def test_option_garbage_iterates_or_raises_parse_error(data: bytes) -> None:
    try:
        found = list(iter_options(data))
    except ParseError as exc:
        assert exc.reason in OPTION_REASONS
        return
    assert sum(2 + len(o.data) for o in found) <= len(data)
    assert all(o.kind not in (0, 1) for o in found)
