"""Tests of netstack.proto.ethernet.wire: Ethernet II headers with 802.1Q/802.1ad tags.

The fixed frames are real captures from the tcpdump project's test files (the corpus in
shared/pcaps/tcpdump), each written out as hex with the file and frame number it came from; the
field values in the comments are tshark's reading of the same frame (``tshark -r FILE -V``).
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.ethernet.wire import (
    ETHERNET_HEADER_LEN,
    MAX_TAGS,
    EthernetHeader,
    EtherType,
    VlanTag,
    emit_header,
    parse,
)

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
#: Every reason the Ethernet parser may give; a new one is an API change for the counters.
REASONS = {"truncated", "too_many_vlan_tags"}
TPIDS = (0x8100, 0x88A8, 0x9100)


def frame_hex(*lines: str) -> bytes:
    return bytes.fromhex("".join(lines))


class Fixed(NamedTuple):
    name: str
    frame: bytes
    header: EthernetHeader


FIXED = [
    # tests/dhcp-rfc4388.pcap frame 2 (62 bytes): 74:83:ef:07:d0:a9 <- a6:82:4b:c9:a1:a7,
    # type IPv4, an ICMP echo request 10.40.2.3 -> 10.30.4.4.
    Fixed(
        "untagged_ipv4",
        frame_hex(
            "7483ef07d0a9a6824bc9a1a708004500",
            "003061b440004001becc0a2802030a1e",
            "04040800b7db40240000000000000000",
            "0000000000000000000000000000",
        ),
        EthernetHeader(
            bytes.fromhex("7483ef07d0a9"), bytes.fromhex("a6824bc9a1a7"), EtherType.IPV4
        ),
    ),
    # tests/dhcp-rfc4388.pcap frame 7 (60 bytes): a6:82:4b:c9:a1:a7 -> 74:83:ef:07:d0:a9,
    # type ARP, "Who has 10.40.1.1? Tell 10.40.2.3", 18 bytes of padding.
    Fixed(
        "untagged_arp_padded",
        frame_hex(
            "7483ef07d0a9a6824bc9a1a708060001",
            "080006040001a6824bc9a1a70a280203",
            "0000000000000a280101000000000000",
            "000000000000000000000000",
        ),
        EthernetHeader(bytes.fromhex("7483ef07d0a9"), bytes.fromhex("a6824bc9a1a7"), EtherType.ARP),
    ),
    # tests/bfd_source_port_49152.pcap frame 1 (70 bytes): e4:6d:7f:54:b9:08 <-
    # 94:43:4d:c0:17:85, 802.1Q "PRI: 7, DEI: 0, ID: 11", type IPv4 (BFD over UDP).
    Fixed(
        "vlan_ipv4",
        frame_hex(
            "e46d7f54b90894434dc017858100e00b",
            "080045e000349d414000ff11b17e0b0b",
            "0b020b0b0b01c0000ec80020000020c8",
            "03188000000180000001000186a00001",
            "86a000000000",
        ),
        EthernetHeader(
            bytes.fromhex("e46d7f54b908"),
            bytes.fromhex("94434dc01785"),
            EtherType.IPV4,
            (VlanTag(0x8100, 0xE00B),),
        ),
    ),
    # tests/802.1ad_QinQ.pcap frame 1 (64 bytes): broadcast <- 00:20:d2:5a:fb:3f, 802.1ad
    # "ID: 200", then 802.1Q "ID: 2001", type ARP, "Who has 172.21.79.100? Tell
    # 172.21.79.97", padding and a 4-byte trailer.
    Fixed(
        "qinq_arp",
        frame_hex(
            "ffffffffffff0020d25afb3f88a800c8",
            "810007d1080600010800060400010020",
            "d25afb3fac154f61000000000000ac15",
            "4f640000000000000000000000000000",
        ),
        EthernetHeader(
            b"\xff" * 6,
            bytes.fromhex("0020d25afb3f"),
            EtherType.ARP,
            (VlanTag(0x88A8, 200), VlanTag(0x8100, 2001)),
        ),
    ),
]


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_fixed_frame_parses(case: Fixed, kind: type) -> None:
    header, payload = parse(kind(case.frame))
    assert header == case.header
    assert isinstance(header.dst, bytes) and isinstance(header.src, bytes)
    assert isinstance(payload, memoryview)
    assert bytes(payload) == case.frame[header.length :]
    assert header.length == ETHERNET_HEADER_LEN + 4 * len(case.header.tags)


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_frame_emits_back(case: Fixed) -> None:
    assert case.header.to_bytes() == case.frame[: case.header.length]
    buf = bytearray(b"\xee" * (case.header.length + 7))
    assert case.header.emit_into(buf, 3) == case.header.length
    assert bytes(buf[3 : 3 + case.header.length]) == case.frame[: case.header.length]
    assert buf[:3] == b"\xee" * 3 and buf[3 + case.header.length :] == b"\xee" * 4


def test_vlan_tag_fields() -> None:
    # tshark: "111. .... .... .... = Priority: 7", "...0 = DEI: 0", "ID: 11"
    tag = FIXED[2].header.tags[0]
    assert (tag.pcp, tag.dei, tag.vid) == (7, False, 11)
    outer, inner = FIXED[3].header.tags
    assert (outer.tpid, outer.pcp, outer.dei, outer.vid) == (EtherType.QINQ, 0, False, 200)
    assert (inner.tpid, inner.pcp, inner.dei, inner.vid) == (EtherType.VLAN, 0, False, 2001)
    assert VlanTag(0x8100, 0x1FFF).dei is True


def test_emit_header_writes_an_untagged_header() -> None:
    case = FIXED[0]
    buf = bytearray(len(case.frame))
    emit_header(buf, case.header.dst, case.header.src, case.header.ethertype)
    assert bytes(buf[:ETHERNET_HEADER_LEN]) == case.frame[:ETHERNET_HEADER_LEN]


# -- edge cases ------------------------------------------------------------------------------

DST = bytes.fromhex("020000000002")
SRC = bytes.fromhex("020000000001")


def tagged(tpids: list[int], inner: int, payload: bytes = b"") -> bytes:
    out = DST + SRC
    for i, tpid in enumerate(tpids):
        out += struct.pack("!HH", tpid, 100 + i)
    return out + struct.pack("!H", inner) + payload


@pytest.mark.parametrize("length", range(ETHERNET_HEADER_LEN))
def test_shorter_than_a_header_is_truncated(length: int) -> None:
    with pytest.raises(ParseError) as info:
        parse(FIXED[0].frame[:length])
    assert info.value.reason == "truncated"


def test_bare_header_has_an_empty_payload() -> None:
    header, payload = parse(FIXED[0].frame[:ETHERNET_HEADER_LEN])
    assert header == FIXED[0].header
    assert len(payload) == 0


@pytest.mark.parametrize("length", [14, 15, 16, 17])
def test_cut_vlan_tag_is_truncated(length: int) -> None:
    frame = tagged([0x8100], 0x0800)
    assert len(frame) == 18
    with pytest.raises(ParseError) as info:
        parse(frame[:length])
    assert info.value.reason == "truncated"


def test_cut_second_tag_is_truncated() -> None:
    frame = tagged([0x88A8, 0x8100], 0x0800)
    assert parse(frame)[0].ethertype == 0x0800
    for length in range(18, len(frame)):
        with pytest.raises(ParseError) as info:
            parse(frame[:length])
        assert info.value.reason == "truncated"


@pytest.mark.parametrize("tpid", TPIDS)
def test_each_tpid_is_a_tag(tpid: int) -> None:
    header, payload = parse(tagged([tpid], 0x0806, b"xyz"))
    assert header.tags == (VlanTag(tpid, 100),)
    assert header.ethertype == 0x0806
    assert bytes(payload) == b"xyz"


@pytest.mark.parametrize("count", range(1, MAX_TAGS + 1))
def test_up_to_max_tags_parse(count: int) -> None:
    tpids = [0x88A8] * (count - 1) + [0x8100]
    frame = tagged(tpids, 0x0800, b"data")
    header, payload = parse(frame)
    assert [t.tpid for t in header.tags] == tpids
    assert [t.tci for t in header.tags] == [100 + i for i in range(count)]
    assert bytes(payload) == b"data"
    assert header.to_bytes() + b"data" == frame


def test_too_many_tags() -> None:
    assert MAX_TAGS == 4
    with pytest.raises(ParseError) as info:
        parse(tagged([0x8100] * (MAX_TAGS + 1), 0x0800, b"data"))
    assert info.value.reason == "too_many_vlan_tags"


def test_ieee_802_3_length_field_is_passed_through() -> None:
    # An 802.3 frame carries a length (below 0x0600), here 0x0026 for a 38-byte LLC payload.
    frame = bytes.fromhex("0180c2000000") + SRC + b"\x00\x26" + b"\x42\x42\x03" + bytes(35)
    header, payload = parse(frame)
    assert header.ethertype == 0x0026
    assert header.tags == ()
    assert len(payload) == 38


# -- hypothesis ------------------------------------------------------------------------------

macs = st.binary(min_size=6, max_size=6)
tags = st.lists(
    st.builds(VlanTag, st.sampled_from(TPIDS), st.integers(0, 0xFFFF)), max_size=MAX_TAGS
).map(tuple)
inner_types = st.integers(0, 0xFFFF).filter(lambda t: t not in TPIDS)


@SETTINGS
@given(
    header=st.builds(EthernetHeader, macs, macs, inner_types, tags),
    payload=st.binary(max_size=64),
    offset=st.integers(0, 8),
)
def test_emit_then_parse_round_trips(header: EthernetHeader, payload: bytes, offset: int) -> None:
    wire = header.to_bytes()
    assert len(wire) == header.length
    buf = bytearray(offset + header.length)
    assert header.emit_into(buf, offset) == header.length
    assert bytes(buf[offset:]) == wire
    parsed, rest = parse(wire + payload)
    assert parsed == header
    assert bytes(rest) == payload


@SETTINGS
@given(tpid=st.integers(0, 0xFFFF), tci=st.integers(0, 0xFFFF))
def test_vlan_tag_fields_recompose_the_tci(tpid: int, tci: int) -> None:
    tag = VlanTag(tpid, tci)
    assert 0 <= tag.pcp <= 7 and 0 <= tag.vid <= 0xFFF
    assert (tag.pcp << 13) | (int(tag.dei) << 12) | tag.vid == tci


def _check_garbage(data: bytes) -> None:
    try:
        header, payload = parse(data)
    except ParseError as exc:
        assert exc.reason in REASONS
        assert SNAKE_CASE.match(exc.reason)
        return
    assert header.length + len(payload) == len(data)
    assert header.to_bytes() == data[: header.length]
    assert header.ethertype not in TPIDS


@SETTINGS
@given(data=st.binary(max_size=80))
def test_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    _check_garbage(data)


@SETTINGS
@given(
    head=st.binary(min_size=12, max_size=12),
    words=st.lists(
        st.one_of(st.sampled_from(TPIDS), st.integers(0, 0xFFFF)).map(lambda w: w.to_bytes(2)),
        max_size=14,
    ),
    cut=st.integers(0, 3),
)
def test_tag_shaped_garbage_parses_or_raises_parse_error(
    head: bytes, words: list[bytes], cut: int
) -> None:
    data = head + b"".join(words)
    _check_garbage(data[: max(0, len(data) - cut)])
