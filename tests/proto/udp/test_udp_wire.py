"""Tests of netstack.proto.udp.wire: UDP headers (RFC 768).

Fixed datagrams come from the tcpdump project's test captures (the corpus in
shared/pcaps/tcpdump), written out as hex with the file and frame number; or were built by hand
from RFC 768's layout (198.18.0.0/15 addresses, RFC 2544), written to a pcap with
netstack.link.pcap.PcapWriter and decoded by ``tshark -o udp.check_checksum:TRUE -V``. The
comments give tshark's reading.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.udp.wire import UDP_HEADER_LEN, UdpHeader, build_into, checksum_ok, parse

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
REASONS = {"truncated", "bad_length"}


def ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ref_sum(data: bytes) -> int:
    """RFC 1071's word loop with end-around carry (not complemented)."""
    total = 0
    for i in range(0, len(data), 2):
        total += int.from_bytes(data[i : i + 2].ljust(2, b"\x00"), "big")
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    """RFC 768: source address, destination address, zero, protocol 17, UDP length."""
    return src + dst + struct.pack("!BBH", 0, 17, length)


class Fixed(NamedTuple):
    name: str
    datagram: bytes  # from the UDP header to the end of the IPv4 payload
    src: bytes
    dst: bytes
    header: UdpHeader


FIXED = [
    # tests/dns_udp.pcap frame 1: 192.168.1.11:43966 -> 209.87.249.18:53, "Length: 64",
    # "Checksum: 0x7824 [correct]", a DNS query for www.tcpdump.org A with an OPT record.
    Fixed(
        "dns_query",
        bytes.fromhex(
            "abbe003500407824"
            "593401200001000000000001037777770774637064756d70036f72670000010001"
            "000029100000000000000c000a000842f5d00996f90b13"
        ),
        ip("192.168.1.11"),
        ip("209.87.249.18"),
        UdpHeader(43966, 53, 64, 0x7824),
    ),
    # tests/bfd_source_port_49152.pcap frame 1: 11.11.11.2:49152 -> 11.11.11.1:3784,
    # "Length: 32", "Checksum: 0x0000 [zero-value ignored]" (no checksum), a BFD control packet.
    Fixed(
        "bfd_no_checksum",
        bytes.fromhex("c0000ec80020000020c803188000000180000001000186a0000186a000000000"),
        ip("11.11.11.2"),
        ip("11.11.11.1"),
        UdpHeader(49152, 3784, 32, 0),
    ),
    # By hand: 198.18.0.1:40000 -> 198.18.0.2:7, "Length: 13", "Checksum: 0x9392 [correct]",
    # data "hello".
    Fixed(
        "hello",
        bytes.fromhex("9c400007000d9392") + b"hello",
        ip("198.18.0.1"),
        ip("198.18.0.2"),
        UdpHeader(40000, 7, 13, 0x9392),
    ),
]


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_fixed_datagram_parses(case: Fixed, kind: type) -> None:
    header, payload = parse(kind(case.datagram))
    assert header == case.header
    assert isinstance(payload, memoryview)
    assert bytes(payload) == case.datagram[UDP_HEADER_LEN:]
    assert checksum_ok(kind(case.datagram), case.src, case.dst)


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_datagram_emits_back(case: Fixed) -> None:
    assert case.header.to_bytes() == case.datagram[:UDP_HEADER_LEN]
    buf = bytearray(b"\xee" * 13)
    assert case.header.emit_into(buf, 1) == UDP_HEADER_LEN
    assert bytes(buf[1:9]) == case.datagram[:UDP_HEADER_LEN]
    assert buf[:1] == b"\xee" and buf[9:] == b"\xee" * 4


@pytest.mark.parametrize("case", [c for c in FIXED if c.header.checksum], ids=lambda c: c.name)
def test_fixed_datagram_rebuilt_with_build_into(case: Fixed) -> None:
    buf = bytearray(3) + bytearray(case.datagram)
    buf[3:11] = bytes(8)
    build_into(buf, 3, case.header.src_port, case.header.dst_port, case.src, case.dst)
    assert bytes(buf[3:]) == case.datagram


def test_checksum_depends_on_the_pseudo_header() -> None:
    dns = FIXED[0]
    assert ref_sum(pseudo_header(dns.src, dns.dst, 64) + dns.datagram) == 0xFFFF
    assert not checksum_ok(dns.datagram, dns.src, ip("209.87.249.19"))
    damaged = bytearray(dns.datagram)
    damaged[-1] ^= 0x10
    assert not checksum_ok(bytes(damaged), dns.src, dns.dst)
    # a zero checksum means "none computed" (RFC 768), whatever the data
    bfd = FIXED[1]
    assert checksum_ok(bfd.datagram[:-1] + b"\x01", bfd.src, bfd.dst)


# -- edge cases ------------------------------------------------------------------------------

HELLO = FIXED[2].datagram


def with_length(data: bytes, length: int) -> bytes:
    return data[:4] + struct.pack("!H", length) + data[6:]


@pytest.mark.parametrize("size", range(UDP_HEADER_LEN))
def test_shorter_than_a_header_is_truncated(size: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(HELLO[:size])
    assert info.value.reason == "truncated"


@pytest.mark.parametrize("length", [0, 1, 7])
def test_length_below_eight(length: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(with_length(HELLO, length))
    assert info.value.reason == "bad_length"


@pytest.mark.parametrize("length", [14, 100, 0xFFFF])
def test_length_beyond_the_data_is_truncated(length: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(with_length(HELLO, length))
    assert info.value.reason == "truncated"


def test_length_eight_is_an_empty_datagram() -> None:
    header, payload = parse(with_length(HELLO, 8))
    assert header.length == 8 and len(payload) == 0


def test_data_after_length_is_cut_off() -> None:
    # IPv4 may carry more than the UDP length (link padding kept by a sloppy sender).
    header, payload = parse(HELLO + b"\x00\x00\x00")
    assert header.length == 13
    assert bytes(payload) == b"hello"
    header, payload = parse(with_length(HELLO, 10))
    assert bytes(payload) == b"he"


def test_computed_zero_is_sent_as_all_ones() -> None:
    # RFC 768: "If the computed checksum is zero, it is transmitted as all ones". Pick the
    # last two data bytes so that everything else sums to -0; the checksum then computes to 0.
    src, dst = ip("198.18.0.1"), ip("198.18.0.2")
    data = bytearray(bytes.fromhex("9c400007000c0000") + b"ab" + b"\x00\x00")
    partial = ref_sum(pseudo_header(src, dst, len(data)) + bytes(data))
    data[-2:] = struct.pack("!H", 0xFFFF - partial)
    assert ref_sum(pseudo_header(src, dst, len(data)) + bytes(data)) == 0xFFFF
    build_into(data, 0, 40000, 7, src, dst)
    assert data[6:8] == b"\xff\xff"
    assert checksum_ok(bytes(data), src, dst)


# -- hypothesis ------------------------------------------------------------------------------

addresses = st.binary(min_size=4, max_size=4)
ports = st.integers(0, 0xFFFF)


@SETTINGS
@given(
    src_port=ports,
    dst_port=ports,
    checksum=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=64),
    padding=st.binary(max_size=16),
    offset=st.integers(0, 8),
)
def test_emit_then_parse_round_trips(
    src_port: int, dst_port: int, checksum: int, payload: bytes, padding: bytes, offset: int
) -> None:
    header = UdpHeader(src_port, dst_port, UDP_HEADER_LEN + len(payload), checksum)
    wire = header.to_bytes()
    assert len(wire) == UDP_HEADER_LEN
    buf = bytearray(offset + UDP_HEADER_LEN)
    assert header.emit_into(buf, offset) == UDP_HEADER_LEN
    assert bytes(buf[offset:]) == wire
    parsed, rest = parse(wire + payload + padding)
    assert parsed == header
    assert bytes(rest) == payload


@SETTINGS
@given(
    src_port=ports,
    dst_port=ports,
    src=addresses,
    dst=addresses,
    payload=st.binary(max_size=200),
    offset=st.integers(0, 8),
    bit=st.integers(0, 10_000),
)
def test_build_into_then_checksum_ok(
    src_port: int, dst_port: int, src: bytes, dst: bytes, payload: bytes, offset: int, bit: int
) -> None:
    buf = bytearray(b"\xaa" * offset) + bytearray(UDP_HEADER_LEN) + bytearray(payload)
    build_into(buf, offset, src_port, dst_port, src, dst)
    datagram = bytes(buf[offset:])
    header, rest = parse(datagram)
    assert header.src_port == src_port and header.dst_port == dst_port
    assert header.length == len(datagram)
    assert bytes(rest) == payload
    assert header.checksum != 0  # zero is reserved for "no checksum"
    assert checksum_ok(datagram, src, dst)
    assert ref_sum(pseudo_header(src, dst, len(datagram)) + datagram) == 0xFFFF
    # A single-bit error anywhere but in a checksum that would then read zero is detected.
    damaged = bytearray(datagram)
    bit %= 8 * len(damaged)
    damaged[bit // 8] ^= 1 << (bit % 8)
    if damaged[6:8] != b"\x00\x00":
        assert not checksum_ok(bytes(damaged), src, dst)


@SETTINGS
@given(data=st.binary(max_size=40))
def test_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    try:
        header, rest = parse(data)
    except ParseError as exc:
        assert exc.reason in REASONS
        assert SNAKE_CASE.match(exc.reason)
        return
    assert UDP_HEADER_LEN <= header.length <= len(data)
    assert header.to_bytes() == data[:UDP_HEADER_LEN]
    assert bytes(rest) == data[UDP_HEADER_LEN : header.length]


@SETTINGS
@given(length=st.integers(0, 48), data=st.binary(min_size=8, max_size=40))
def test_length_shaped_garbage_parses_or_raises_parse_error(length: int, data: bytes) -> None:
    data = with_length(data, length)
    try:
        header, rest = parse(data)
    except ParseError as exc:
        assert exc.reason == ("bad_length" if length < 8 else "truncated")
        return
    assert header.length == length and len(rest) == length - UDP_HEADER_LEN
