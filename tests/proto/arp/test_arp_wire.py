"""Tests of netstack.proto.arp.wire: ARP packets (RFC 826).

The Ethernet/IPv4 packets are real captures from the tcpdump project's test files (the corpus
in shared/pcaps/tcpdump), written out as hex from the byte after the Ethernet header, with the
file and frame number; the field values in the comments are tshark's reading of the frame.
The packets with other address lengths are built by hand from RFC 826's layout.
"""

from __future__ import annotations

import ipaddress
import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.arp.wire import (
    ETH_IPV4_LEN,
    HTYPE_ETHERNET,
    PTYPE_IPV4,
    ArpOp,
    ArpPacket,
    parse,
)

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
REASONS = {"truncated"}

# tests/dhcp-rfc4388.pcap frame 7, from offset 14: "Who has 10.40.1.1? Tell 10.40.2.3",
# hardware type Ethernet (1), protocol IPv4, sizes 6/4, opcode request (1), sender
# a6:82:4b:c9:a1:a7, target MAC 00:00:00:00:00:00; followed by 18 bytes of Ethernet padding.
REQUEST = bytes.fromhex(
    "0001080006040001a6824bc9a1a70a2802030000000000000a280101000000000000000000000000000000000000"
)
# tests/dhcp-rfc4388.pcap frame 8, from offset 14: "10.40.1.1 is at 74:83:ef:07:d0:a9",
# opcode reply (2), target a6:82:4b:c9:a1:a7 / 10.40.2.3; no padding (a 42-byte frame).
REPLY = bytes.fromhex("0001080006040002 7483ef07d0a90a280101 a6824bc9a1a70a280203")


def ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def test_request_parses() -> None:
    assert len(REQUEST) == 46
    packet = parse(REQUEST)
    assert packet == ArpPacket(
        ArpOp.REQUEST,
        bytes.fromhex("a6824bc9a1a7"),
        ip("10.40.2.3"),
        bytes(6),
        ip("10.40.1.1"),
        HTYPE_ETHERNET,
        PTYPE_IPV4,
    )
    assert packet.is_ethernet_ipv4
    assert packet.length == ETH_IPV4_LEN == 28
    assert packet.to_bytes() == REQUEST[:28]  # the padding is not part of the packet


def test_reply_parses_and_emits_back() -> None:
    packet = parse(REPLY)
    assert packet.op == ArpOp.REPLY
    assert packet.sha == bytes.fromhex("7483ef07d0a9")
    assert packet.spa == ip("10.40.1.1")
    assert packet.tha == bytes.fromhex("a6824bc9a1a7")
    assert packet.tpa == ip("10.40.2.3")
    assert packet.to_bytes() == REPLY
    buf = bytearray(40)
    assert packet.emit_into(buf, 5) == 28
    assert bytes(buf[5:33]) == REPLY


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_any_buffer_type(kind: type) -> None:
    packet = parse(kind(REQUEST))
    assert packet == parse(REQUEST)
    for field in (packet.sha, packet.spa, packet.tha, packet.tpa):
        assert isinstance(field, bytes)


# -- other hardware and protocol lengths -----------------------------------------------------


def generic(
    htype: int, ptype: int, op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes
) -> bytes:
    return struct.pack("!HHBBH", htype, ptype, len(sha), len(spa), op) + sha + spa + tha + tpa


def test_infiniband_addresses() -> None:
    # RFC 4391 (IP over InfiniBand) 9.2: hardware type 32, 20-byte hardware addresses.
    sha = bytes(range(20))
    tha = bytes(range(100, 120))
    data = generic(32, 0x0800, 1, sha, ip("198.18.0.1"), tha, ip("198.18.0.2"))
    packet = parse(data + b"\x00" * 6)
    assert packet == ArpPacket(1, sha, ip("198.18.0.1"), tha, ip("198.18.0.2"), 32, 0x0800)
    assert not packet.is_ethernet_ipv4
    assert packet.length == 8 + 2 * (20 + 4) == len(data)
    assert packet.to_bytes() == data


def test_ethernet_with_a_longer_protocol_address() -> None:
    data = generic(1, 0x86DD, 2, b"\x02" * 6, b"\x20" * 16, b"\x04" * 6, b"\x30" * 16)
    packet = parse(data)
    assert (len(packet.sha), len(packet.spa), len(packet.tha), len(packet.tpa)) == (6, 16, 6, 16)
    assert not packet.is_ethernet_ipv4
    assert packet.to_bytes() == data


def test_zero_length_addresses() -> None:
    data = struct.pack("!HHBBH", 1, 0x0800, 0, 0, 1)
    packet = parse(data)
    assert (packet.sha, packet.spa, packet.tha, packet.tpa) == (b"", b"", b"", b"")
    assert packet.length == 8
    assert packet.to_bytes() == data


def test_ethernet_hardware_with_wrong_protocol_type_is_not_ethernet_ipv4() -> None:
    packet = parse(REQUEST[:2] + b"\x86\xdd" + REQUEST[4:])
    assert packet.ptype == 0x86DD and len(packet.spa) == 4
    assert not packet.is_ethernet_ipv4


# -- truncation ------------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(ETH_IPV4_LEN))
def test_cut_ethernet_ipv4_packet_is_truncated(length: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(REQUEST[:length])
    assert info.value.reason == "truncated"


def test_address_lengths_beyond_the_data_are_truncated() -> None:
    data = generic(32, 0x0800, 1, bytes(20), bytes(4), bytes(20), bytes(4))
    for length in range(len(data)):
        with pytest.raises(ParseError) as info:
            parse(data[:length])
        assert info.value.reason == "truncated"
    # the largest lengths need 8 + 2 * (255 + 255) bytes
    with pytest.raises(ParseError) as info:
        parse(struct.pack("!HHBBH", 1, 0x0800, 255, 255, 1) + bytes(1000))
    assert info.value.reason == "truncated"
    assert parse(struct.pack("!HHBBH", 1, 0x0800, 255, 255, 1) + bytes(1020)).length == 1028


# -- hypothesis ------------------------------------------------------------------------------


@st.composite
def packets(draw: st.DrawFn) -> ArpPacket:
    hln = draw(st.one_of(st.just(6), st.integers(0, 32)))
    pln = draw(st.one_of(st.just(4), st.integers(0, 32)))
    return ArpPacket(
        draw(st.integers(0, 0xFFFF)),
        draw(st.binary(min_size=hln, max_size=hln)),
        draw(st.binary(min_size=pln, max_size=pln)),
        draw(st.binary(min_size=hln, max_size=hln)),
        draw(st.binary(min_size=pln, max_size=pln)),
        draw(st.one_of(st.just(HTYPE_ETHERNET), st.integers(0, 0xFFFF))),
        draw(st.one_of(st.just(PTYPE_IPV4), st.integers(0, 0xFFFF))),
    )


@SETTINGS
@given(packet=packets(), padding=st.binary(max_size=20), offset=st.integers(0, 8))
def test_emit_then_parse_round_trips(packet: ArpPacket, padding: bytes, offset: int) -> None:
    wire = packet.to_bytes()
    assert len(wire) == packet.length == 8 + 2 * (len(packet.sha) + len(packet.spa))
    buf = bytearray(offset + packet.length)
    assert packet.emit_into(buf, offset) == packet.length
    assert bytes(buf[offset:]) == wire
    assert parse(wire + padding) == packet
    expected = (packet.htype == 1 and packet.ptype == 0x0800 and len(packet.sha) == 6) and len(
        packet.spa
    ) == 4
    assert packet.is_ethernet_ipv4 is expected


def _check_garbage(data: bytes) -> None:
    try:
        packet = parse(data)
    except ParseError as exc:
        assert exc.reason in REASONS
        assert SNAKE_CASE.match(exc.reason)
        return
    assert packet.length <= len(data)
    assert packet.to_bytes() == data[: packet.length]


@SETTINGS
@given(data=st.binary(max_size=80))
def test_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    _check_garbage(data)


@SETTINGS
@given(
    hln=st.integers(0, 255),
    pln=st.integers(0, 255),
    rest=st.binary(max_size=120),
    head=st.binary(min_size=4, max_size=4),
    op=st.binary(min_size=2, max_size=2),
)
def test_length_shaped_garbage_parses_or_raises_parse_error(
    hln: int, pln: int, rest: bytes, head: bytes, op: bytes
) -> None:
    _check_garbage(head + bytes([hln, pln]) + op + rest)
