"""Tests of netstack.proto.ipv6.wire: the fixed header (RFC 8200 3), the Fragment header
(RFC 8200 4.5) and the walk over the extension-header chain (RFC 8200 4-4.6, RFC 2711,
RFC 5095, RFC 6946).

Fixed packets come from the tcpdump project's test captures (the corpus in
shared/pcaps/tcpdump), written out as hex from the IPv6 header, with the file and frame
number; or were built by hand from RFC 8200's diagrams (2001:db8::/32 addresses, RFC 3849),
written to a pcap (link type 101, raw IP) with netstack.link.pcap.PcapWriter and decoded by
``tshark -o udp.check_checksum:TRUE -V``. The comments give tshark's reading.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from typing import Any, NamedTuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.ipv6.wire import (
    FRAGMENT_HEADER_LEN,
    IPV6_HEADER_LEN,
    MIN_MTU,
    Chain,
    FragmentHeader,
    IPv6Header,
    NextHeader,
    ParameterProblem,
    ProblemCode,
    build_fragment_header_into,
    build_header_into,
    parse,
    parse_fragment_header,
    unrecognized_next_header,
    walk,
)

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PARSE_REASONS = {"truncated", "bad_version", "jumbogram"}
WALK_REASONS = {
    "truncated_extension",
    "bad_option_length",
    "too_many_headers",
    "hop_by_hop_not_first",
    "unknown_option",
    "unrecognized_routing_type",
}
KNOWN = frozenset({NextHeader.TCP, NextHeader.UDP, NextHeader.ICMPV6})

HBH, ROUTING, FRAGMENT, DEST = 0, 43, 44, 60
TCP, UDP, ICMPV6, NO_NEXT = 6, 17, 58, 59


def ip(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def ref_checksum(data: bytes) -> int:
    """RFC 1071's word loop with end-around carry, complemented."""
    total = 0
    for i in range(0, len(data), 2):
        total += int.from_bytes(data[i : i + 2].ljust(2, b"\x00"), "big")
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: bytes, dst: bytes, nh: int, length: int) -> bytes:
    """RFC 8200 8.1: source, destination, 32-bit upper-layer length, 3 zeros, Next Header."""
    return src + dst + struct.pack("!I3xB", length, nh)


class Fixed(NamedTuple):
    name: str
    packet: bytes  # from the IPv6 header to the end of the frame
    header: IPv6Header
    chain: Chain


DOC1, DOC2 = ip("2001:db8::1"), ip("2001:db8::2")

FIXED = [
    # By hand: 2001:db8::1 -> 2001:db8::2, "Traffic Class: 0x00", "Flow Label: 0x00000",
    # "Payload Length: 16", "Next Header: ICMPv6 (58)", "Hop Limit: 64"; "Echo (ping) request
    # (128)", "Checksum: 0x8075 [correct]", "Identifier: 0x1234", "Sequence: 1", data abcdefgh.
    Fixed(
        "echo_request",
        bytes.fromhex(
            "6000000000103a40" + "20010db8000000000000000000000001"
            "20010db8000000000000000000000002" + "800080751234000161626364" + "65666768"
        ),
        IPv6Header(0, 0, 16, ICMPV6, 64, DOC1, DOC2),
        Chain(ICMPV6, 0, None, -1, False, 6),
    ),
    # By hand: "Traffic Class: 0xb8 (DSCP: EF PHB, ECN: Not-ECT)", "Flow Label: 0xabcde",
    # "Payload Length: 26", "Next Header: Destination Options for IPv6 (60)", "Hop Limit: 255";
    # Destination Options (Next Header 44, Length 0, "PadN", length 4); "Fragment Header for
    # IPv6" (Next header UDP, "Offset: 0", "More Fragments: No", "Identification:
    # 0x00005eed": an atomic fragment); UDP 4000 -> 9, "Length: 10", "Checksum: 0x2c53
    # [correct]", payload "hi".
    Fixed(
        "dest_opts_atomic_fragment_udp",
        bytes.fromhex(
            "6b8abcde001a3cff" + "20010db8000000000000000000000001"
            "20010db8000000000000000000000002" + "2c00010400000000" + "1100000000005eed"
            "0fa00009000a2c53" + "6869"
        ),
        IPv6Header(0xB8, 0xABCDE, 26, DEST, 255, DOC1, DOC2),
        Chain(UDP, 16, None, -1, False, 48),
    ),
    # By hand: the first of two fragments of an echo request: "Payload Length: 24", "Next
    # Header: Fragment Header for IPv6 (44)"; Fragment header "Next header: ICMPv6 (58)",
    # "Offset: 0 (0 bytes)", "More Fragments: Yes", "Identification: 0x1234abcd"; then 16
    # bytes of the echo request (tshark, reassembling with the second: "Checksum: 0x9f97
    # [correct]").
    Fixed(
        "first_fragment",
        bytes.fromhex(
            "6000000000182c40" + "20010db8000000000000000000000001"
            "20010db8000000000000000000000002" + "3a0000011234abcd"
            "80009f9700070001" + "0001020304050607"
        ),
        IPv6Header(0, 0, 24, FRAGMENT, 64, DOC1, DOC2),
        Chain(ICMPV6, 8, FragmentHeader(ICMPV6, 0, True, 0x1234ABCD), 0, False, 40),
    ),
    # By hand: the second fragment: "Offset: 2 (16 bytes)", "More Fragments: No".
    Fixed(
        "last_fragment",
        bytes.fromhex(
            "6000000000182c40" + "20010db8000000000000000000000001"
            "20010db8000000000000000000000002" + "3a0000101234abcd"
            "08090a0b0c0d0e0f1011121314151617"
        ),
        IPv6Header(0, 0, 24, FRAGMENT, 64, DOC1, DOC2),
        Chain(ICMPV6, 8, FragmentHeader(ICMPV6, 16, False, 0x1234ABCD), 0, False, 40),
    ),
    # tests/icmpv6.pcap frame 2: fe80::215:17ff:fecc:e546 -> ff02::16, "Payload Length: 36",
    # "Next Header: IPv6 Hop-by-Hop Option (0)", "Hop Limit: 1"; Hop-by-Hop (Next Header
    # ICMPv6, Length 0) with "Router Alert: MLD (0)" and "PadN" (length 0); "Multicast
    # Listener Report Message v2", "Checksum: 0x1fc5 [correct]".
    Fixed(
        "mld_report_router_alert",
        bytes.fromhex(
            "6000000000240001" + "fe80000000000000021517fffecce546"
            "ff020000000000000000000000000016" + "3a00050200000100"
            "8f001fc50000000104000000ff0200000000000000000db811223344"
        ),
        IPv6Header(0, 0, 36, HBH, 1, ip("fe80::215:17ff:fecc:e546"), ip("ff02::16")),
        Chain(ICMPV6, 8, None, -1, True, 40),
    ),
]


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_fixed_packet_parses(case: Fixed, kind: type) -> None:
    header, payload = parse(kind(case.packet))
    assert header == case.header
    assert isinstance(header.src, bytes) and isinstance(header.dst, bytes)
    assert isinstance(payload, memoryview)
    assert bytes(payload) == case.packet[IPV6_HEADER_LEN:]
    assert len(payload) == header.payload_length


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_packet_emits_back(case: Fixed) -> None:
    assert case.header.to_bytes() == case.packet[:IPV6_HEADER_LEN]
    buf = bytearray(b"\xee" * (IPV6_HEADER_LEN + 6))
    assert case.header.emit_into(buf, 2) == IPV6_HEADER_LEN
    assert bytes(buf[2 : 2 + IPV6_HEADER_LEN]) == case.packet[:IPV6_HEADER_LEN]
    assert buf[:2] == b"\xee\xee" and buf[2 + IPV6_HEADER_LEN :] == b"\xee" * 4
    h = case.header
    built = bytearray(IPV6_HEADER_LEN + 3)
    build_header_into(built, 3, h.payload_length, h.next_header, h.hop_limit, h.src, h.dst,
                      h.traffic_class, h.flow_label)  # fmt: skip
    assert bytes(built[3:]) == case.packet[:IPV6_HEADER_LEN]


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
def test_fixed_packet_walks(case: Fixed) -> None:
    header, payload = parse(case.packet)
    multicast = header.dst[0] == 0xFF
    assert walk(header.next_header, payload, multicast, known_upper=KNOWN) == case.chain


def test_hand_built_checksums_hold() -> None:
    echo = FIXED[0].packet
    assert ref_checksum(pseudo_header(DOC1, DOC2, ICMPV6, 16) + echo[40:]) == 0
    udp = FIXED[1].packet[56:]
    assert ref_checksum(pseudo_header(DOC1, DOC2, UDP, len(udp)) + udp) == 0
    whole = FIXED[2].packet[48:] + FIXED[3].packet[48:]
    assert ref_checksum(pseudo_header(DOC1, DOC2, ICMPV6, len(whole)) + whole) == 0


def test_header_properties() -> None:
    h = FIXED[1].header
    assert (h.dscp, h.ecn) == (46, 0)  # EF
    assert h._replace(traffic_class=0x03).ecn == 3
    assert NextHeader(h.next_header) is NextHeader.DEST_OPTS
    assert (IPV6_HEADER_LEN, FRAGMENT_HEADER_LEN, MIN_MTU) == (40, 8, 1280)


def test_corpus_router_advert_without_extension_headers() -> None:
    # tests/icmpv6.pcap frame 1: fe80::b299:28ff:fec8:d66c -> ff02::1, "Payload Length: 176",
    # "Next Header: ICMPv6 (58)", "Hop Limit: 255", "Router Advertisement" (the first 16
    # bytes of it here, with the rest zeros: only the IPv6 layer is under test).
    packet = bytes.fromhex(
        "6000000000b03aff" + "fe80000000000000b29928fffec8d66c"
        "ff020000000000000000000000000001" + "860024014020000f0000000000000000"
    ) + bytes(160)
    header, payload = parse(packet)
    assert header == IPv6Header(
        0, 0, 176, ICMPV6, 255, ip("fe80::b299:28ff:fec8:d66c"), ip("ff02::1")
    )
    assert walk(ICMPV6, payload, True, known_upper=KNOWN) == Chain(ICMPV6, 0, None, -1, False, 6)


def test_link_padding_is_cut_off() -> None:
    header, payload = parse(FIXED[0].packet + bytes(10))
    assert header.payload_length == 16 and len(payload) == 16


# -- malformed fixed headers -----------------------------------------------------------------

ECHO = FIXED[0].packet


def with_byte(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1 :]


def with_plen(data: bytes, plen: int) -> bytes:
    return data[:4] + struct.pack("!H", plen) + data[6:]


def parse_error(data: bytes) -> str:
    with pytest.raises(ParseError) as info:
        parse(data)
    return info.value.reason


@pytest.mark.parametrize("length", range(IPV6_HEADER_LEN))
def test_shorter_than_a_header_is_truncated(length: int) -> None:
    assert parse_error(ECHO[:length]) == "truncated"


@pytest.mark.parametrize("version", [0, 4, 5, 7, 15])
def test_wrong_version(version: int) -> None:
    assert parse_error(with_byte(ECHO, 0, version << 4)) == "bad_version"


def test_ipv4_header_is_bad_version() -> None:
    # tests/dhcp-rfc4388.pcap frame 2 (an IPv4 echo request), padded to 48 bytes.
    ipv4 = bytes.fromhex("4500003061b440004001becc0a2802030a1e04040800b7db40240000") + bytes(20)
    assert parse_error(ipv4) == "bad_version"


@pytest.mark.parametrize("plen", [17, 100, 0xFFFF])
def test_payload_length_beyond_the_data_is_truncated(plen: int) -> None:
    assert parse_error(with_plen(ECHO, plen)) == "truncated"


def test_payload_length_zero_is_an_empty_payload() -> None:
    for nh in (ICMPV6, NO_NEXT, UDP, DEST):
        header, payload = parse(with_byte(with_plen(ECHO, 0), 6, nh))
        assert header.payload_length == 0 and len(payload) == 0


def test_payload_length_zero_with_hop_by_hop_is_a_jumbogram() -> None:
    # RFC 2675: Payload Length 0 and a Hop-by-Hop header carrying the Jumbo Payload option.
    jumbo = with_byte(with_plen(ECHO, 0), 6, HBH) + bytes.fromhex("3a00c204000186a0")
    assert parse_error(jumbo) == "jumbogram"


def test_emit_rejects_fields_that_do_not_fit() -> None:
    h = FIXED[0].header
    for bad in (
        h._replace(traffic_class=256),
        h._replace(traffic_class=-1),
        h._replace(flow_label=1 << 20),
        h._replace(flow_label=-1),
        h._replace(src=bytes(15)),
        h._replace(dst=bytes(17)),
    ):
        with pytest.raises(ValueError):
            bad.to_bytes()


# -- Fragment header (RFC 8200 4.5) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # the fixed fragments above
        ("3a0000011234abcd", FragmentHeader(ICMPV6, 0, True, 0x1234ABCD)),
        ("3a0000101234abcd", FragmentHeader(ICMPV6, 16, False, 0x1234ABCD)),
        # offset 8191 units (65528 bytes), M set, ident all ones
        ("11 00 ff f9 ffffffff", FragmentHeader(UDP, 65528, True, 0xFFFFFFFF)),
        # offset 185 units (1480 bytes), last, TCP
        ("06 00 05 c8 00000001", FragmentHeader(TCP, 1480, False, 1)),
    ],
)
def test_fragment_header_fixed(raw: str, expected: FragmentHeader) -> None:
    data = bytes.fromhex(raw.replace(" ", ""))
    assert parse_fragment_header(data) == expected
    assert parse_fragment_header(b"\xaa" * 3 + data, 3) == expected
    assert expected.to_bytes() == data
    buf = bytearray(12)
    assert expected.emit_into(buf, 2) == FRAGMENT_HEADER_LEN
    assert bytes(buf[2:10]) == data
    buf = bytearray(8)
    build_fragment_header_into(buf, 0, *expected)
    assert bytes(buf) == data


def test_fragment_header_reserved_bits_are_ignored() -> None:
    # RFC 8200 4.5: Reserved and Res are "ignored on reception".
    data = bytes.fromhex("3aff001700000009")  # Reserved 0xff, offset 2 units, Res 11, M 1
    assert parse_fragment_header(data) == FragmentHeader(ICMPV6, 16, True, 9)


@pytest.mark.parametrize("length", range(8))
def test_fragment_header_truncated(length: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_fragment_header(bytes(length))
    assert info.value.reason == "truncated"
    with pytest.raises(ParseError):
        parse_fragment_header(bytes(8 + length), length + 1)


def test_fragment_header_bad_arguments() -> None:
    with pytest.raises(ValueError):
        parse_fragment_header(bytes(16), -1)
    for offset in (1, 7, 65529, 65536, -8):
        with pytest.raises(ValueError):
            build_fragment_header_into(bytearray(8), 0, UDP, offset, True, 1)
        with pytest.raises(ValueError):
            FragmentHeader(UDP, offset, False, 1).to_bytes()


fragment_headers = st.builds(
    FragmentHeader,
    next_header=st.integers(0, 255),
    offset=st.integers(0, 8191).map(lambda units: units * 8),
    more=st.booleans(),
    ident=st.integers(0, 0xFFFFFFFF),
)


@SETTINGS
@given(fragment=fragment_headers, at=st.integers(0, 9), tail=st.binary(max_size=8))
def test_fragment_header_round_trips(fragment: FragmentHeader, at: int, tail: bytes) -> None:
    data = bytes(at) + fragment.to_bytes() + tail
    assert parse_fragment_header(data, at) == fragment
    assert parse_fragment_header(memoryview(data), at) == fragment


@SETTINGS
@given(data=st.binary(max_size=16), at=st.integers(0, 16))
def test_fragment_header_garbage(data: bytes, at: int) -> None:
    try:
        fragment = parse_fragment_header(data, at)
    except ParseError as exc:
        assert exc.reason == "truncated"
        assert at + 8 > len(data)
    else:
        assert fragment.offset % 8 == 0 and 0 <= fragment.offset <= 65528
        assert FragmentHeader.to_bytes(fragment)[0] == data[at]


# -- the chain walk (RFC 8200 4) -------------------------------------------------------------


def options_header(nh: int, options: bytes) -> bytes:
    """A Hop-by-Hop or Destination Options header holding ``options``, padded to 8n bytes
    with Pad1 or PadN (RFC 8200 4.2)."""
    pad = -(2 + len(options)) % 8
    if pad == 1:
        options += b"\x00"
    elif pad:
        options += bytes([1, pad - 2]) + bytes(pad - 2)
    return bytes([nh, (2 + len(options)) // 8 - 1]) + options


def routing_header(nh: int, routing_type: int, segments_left: int, addresses: int = 1) -> bytes:
    """A Routing header with ``addresses`` 16-byte slots after 4 reserved bytes (type 0's
    layout, RFC 5095 / RFC 2460 4.4)."""
    return bytes([nh, 2 * addresses, routing_type, segments_left]) + bytes(4 + 16 * addresses)


def fragment_header(nh: int, offset: int, more: bool, ident: int = 0x55) -> bytes:
    return FragmentHeader(nh, offset, more, ident).to_bytes()


UDP_HEADER = bytes.fromhex("0fa00009000800ff")


def problem(next_header: int, payload: bytes, multicast: bool = False, **kw: Any) -> ParseError:
    with pytest.raises(ParseError) as info:
        walk(next_header, payload, multicast, known_upper=KNOWN, **kw)
    return info.value


def test_no_extension_headers() -> None:
    assert walk(UDP, UDP_HEADER, False, known_upper=KNOWN) == Chain(UDP, 0, None, -1, False, 6)


def test_known_upper_is_checked_first() -> None:
    payload = options_header(UDP, b"") + UDP_HEADER
    assert walk(DEST, payload, False, known_upper={DEST}) == Chain(DEST, 0, None, -1, False, 6)


@pytest.mark.parametrize(
    "nh",
    [NO_NEXT, NextHeader.ESP, NextHeader.AH, NextHeader.MOBILITY, NextHeader.HIP,
     NextHeader.SHIM6, NextHeader.EXP1, NextHeader.EXP2, 4, 41, 132, 255],
)  # fmt: skip
def test_walk_stops_at_anything_it_does_not_process(nh: int) -> None:
    payload = options_header(nh, b"") + bytes(16)
    assert walk(DEST, payload, False, known_upper=KNOWN) == Chain(nh, 8, None, -1, False, 40)
    assert walk(nh, payload, False, known_upper=KNOWN) == Chain(nh, 0, None, -1, False, 6)


def test_no_next_header_ignores_what_follows() -> None:
    # RFC 8200 4.7: octets after a header whose Next Header is 59 are ignored.
    payload = options_header(NO_NEXT, b"") + b"\xff" * 11
    assert walk(DEST, payload, False, known_upper=KNOWN).upper == NO_NEXT


def test_unrecognized_next_header_points_at_the_octet_that_named_it() -> None:
    # RFC 8200 4: code 1, "the offset of the unrecognized value within the original packet".
    chain = walk(132, bytes(8), False, known_upper=KNOWN)
    exc = unrecognized_next_header(chain)
    assert (exc.code, exc.pointer, exc.send_icmp) == (1, 6, True)
    payload = options_header(DEST, b"") + routing_header(132, 0, 0) + bytes(8)
    chain = walk(HBH, payload, False, known_upper=KNOWN)
    assert chain == Chain(132, 32, None, -1, False, 48)
    exc = unrecognized_next_header(chain, payload)
    assert isinstance(exc, ParameterProblem) and isinstance(exc, ParseError)
    assert (exc.code, exc.pointer) == (ProblemCode.UNRECOGNIZED_NEXT_HEADER, 48)
    assert exc.reason == "unrecognized_next_header"


def test_a_long_chain_in_the_recommended_order() -> None:
    # RFC 8200 4.1: Hop-by-Hop, Destination Options, Routing, Fragment, Destination Options.
    payload = (
        options_header(DEST, b"\x05\x02\x00\x00")  # Router Alert
        + options_header(ROUTING, b"")
        + routing_header(FRAGMENT, 0, 0)
        + fragment_header(DEST, 0, False)
        + options_header(TCP, b"\x00" * 5)
        + bytes(20)
    )
    chain = walk(HBH, payload, False, known_upper=KNOWN)
    assert chain == Chain(TCP, 56, None, -1, True, 40 + 48)


# RFC 8200 4.2: the action bits of an unknown Option Type, in both options headers.


@pytest.mark.parametrize("header_type", [HBH, DEST])
@pytest.mark.parametrize("multicast", [False, True])
def test_unknown_option_00_is_skipped(header_type: int, multicast: bool) -> None:
    payload = options_header(UDP, bytes.fromhex("1e03aabbcc")) + UDP_HEADER
    chain = walk(header_type, payload, multicast, known_upper=KNOWN)
    assert chain == Chain(UDP, 8, None, -1, False, 40)


@pytest.mark.parametrize("header_type", [HBH, DEST])
@pytest.mark.parametrize(
    ("kind", "multicast", "send_icmp"),
    [
        (0x7E, False, False),  # 01: discard the packet, nothing else
        (0x7E, True, False),
        (0xBE, False, True),  # 10: discard and send code 2, multicast or not
        (0xBE, True, True),
        (0xFE, False, True),  # 11: discard and send code 2, only to a non-multicast destination
        (0xFE, True, False),
        (0xC2, False, True),  # Jumbo Payload (RFC 2675), not supported: action 11
        (0xC9, True, False),  # Home Address (RFC 6275), not supported: action 11
    ],
)
def test_unknown_option_action_bits(
    header_type: int, kind: int, multicast: bool, send_icmp: bool
) -> None:
    # Pad1, PadN of 3, then the unknown option at payload offset 2 + 1 + 3 = 6.
    payload = options_header(UDP, b"\x00\x01\x01\x00" + bytes([kind, 2, 0, 0])) + UDP_HEADER
    exc = problem(header_type, payload, multicast)
    assert isinstance(exc, ParameterProblem)
    assert exc.reason == "unknown_option"
    assert exc.code == ProblemCode.UNRECOGNIZED_OPTION == 2
    assert exc.pointer == 40 + 6  # "pointing to the unrecognized Option Type"
    assert exc.send_icmp is send_icmp


def test_unknown_option_in_a_later_header_points_into_it() -> None:
    payload = routing_header(DEST, 0, 0) + options_header(UDP, b"\x80\x00") + UDP_HEADER
    exc = problem(ROUTING, payload)
    assert isinstance(exc, ParameterProblem)
    assert (exc.code, exc.pointer) == (2, 40 + 24 + 2)


def test_options_are_processed_in_order() -> None:
    # RFC 8200 4.2: strictly in order; a skipped option before a discarding one is passed,
    # and the first discarding option decides.
    payload = options_header(UDP, b"\x3f\x00" + b"\x7f\x00" + b"\xbf\x00") + UDP_HEADER
    exc = problem(DEST, payload)
    assert isinstance(exc, ParameterProblem)
    assert (exc.pointer, exc.send_icmp) == (44, False)


def test_router_alert_in_hop_by_hop() -> None:
    # RFC 2711 2.1: type 5, length 2; value 0 is MLD.
    for value in (b"\x00\x00", b"\x00\x02", b"\xff\xff"):
        payload = options_header(ICMPV6, b"\x05\x02" + value) + bytes(8)
        chain = walk(HBH, payload, True, known_upper=KNOWN)
        assert chain == Chain(ICMPV6, 8, None, -1, True, 40)


def test_router_alert_is_a_hop_by_hop_option_only() -> None:
    # In a Destination Options header type 5 is just an unknown option with action 00.
    payload = options_header(ICMPV6, b"\x05\x02\x00\x00") + bytes(8)
    chain = walk(DEST, payload, True, known_upper=KNOWN)
    assert chain == Chain(ICMPV6, 8, None, -1, False, 40)
    # ... so its length is not checked there either.
    payload = options_header(ICMPV6, b"\x05\x00") + bytes(8)
    assert not walk(DEST, payload, True, known_upper=KNOWN).router_alert


@pytest.mark.parametrize("length", [0, 1, 3, 4])
def test_router_alert_with_a_wrong_length(length: int) -> None:
    payload = options_header(ICMPV6, bytes([5, length]) + bytes(length)) + bytes(8)
    assert problem(HBH, payload).reason == "bad_option_length"


def test_padding_only_headers() -> None:
    for options in (b"\x00" * 6, b"\x01\x04\x00\x00\x00\x00", b"\x00\x01\x03\x00\x00\x00"):
        payload = bytes([UDP, 0]) + options + UDP_HEADER
        assert walk(DEST, payload, False, known_upper=KNOWN) == Chain(UDP, 8, None, -1, False, 40)


def test_a_largest_options_header_of_pad1() -> None:
    # Hdr Ext Len 255: 2048 bytes, all Pad1 after the first two.
    payload = bytes([UDP, 255]) + bytes(2046) + UDP_HEADER
    assert walk(DEST, payload, False, known_upper=KNOWN).offset == 2048


@pytest.mark.parametrize(
    ("nh", "options"),
    [
        (DEST, b"\x01\x05\x00\x00\x00\x00"),  # PadN of 7 bytes in 6
        (DEST, b"\x00\x00\x00\x00\x00\x1e"),  # an option type in the last byte: no length
        (HBH, b"\x1e\x05\x00\x00\x00\x00"),  # an unknown option (action 00) of 7 bytes in 6
        (HBH, b"\x01\x00\x01\x00\x05\x03"),  # a Router Alert of 5 bytes in the last 2
    ],
)
def test_option_overrunning_its_header(nh: int, options: bytes) -> None:
    payload = bytes([UDP, 0]) + options + UDP_HEADER
    assert problem(nh, payload).reason == "bad_option_length"


# RFC 8200 4.4, RFC 5095 3: the Routing header at a host.


@pytest.mark.parametrize("routing_type", [0, 2, 3, 4, 253])
def test_routing_header_with_segments_left_zero_is_ignored(routing_type: int) -> None:
    payload = routing_header(UDP, routing_type, 0) + UDP_HEADER
    assert walk(ROUTING, payload, False, known_upper=KNOWN) == Chain(UDP, 24, None, -1, False, 40)


@pytest.mark.parametrize("routing_type", [0, 2, 3, 4, 253])
@pytest.mark.parametrize("segments_left", [1, 2, 255])
def test_routing_header_with_segments_left(routing_type: int, segments_left: int) -> None:
    payload = options_header(ROUTING, b"") + routing_header(UDP, routing_type, segments_left, 2)
    exc = problem(DEST, payload + UDP_HEADER)
    assert isinstance(exc, ParameterProblem)
    assert exc.reason == "unrecognized_routing_type"
    # code 0, "pointing to the unrecognized Routing Type": 40 + 8 + 2
    assert (exc.code, exc.pointer, exc.send_icmp) == (0, 50, True)


def test_corpus_type_0_routing_headers() -> None:
    # tests/ipv6-routing-header.pcap frames 1 and 2: "Routing Header for IPv6 (Source Route)",
    # "Type: Source Route (0)", "Segments Left: 1" and "2", then ICMPv6 echo requests.
    for raw in (
        "6000000000202b04220000000000024402123ffffeae22f7220000000000024000020000000000043a0200"
        "0100000000220000000000021000020000000000048000d3ab00000000",
        "6000000000302b05220000000000024402123ffffeae22f7220000000000021100020000000000023a0400"
        "0200000000220000000000021000020000000000042200000000000240000200000000000480"
        "00d37b00000000",
    ):
        header, payload = parse(bytes.fromhex(raw))
        exc = problem(header.next_header, bytes(payload))
        assert isinstance(exc, ParameterProblem)
        assert (exc.code, exc.pointer) == (0, 42)
        # with Segments Left 0 it would be skipped to the ICMPv6 header
        zeroed = bytearray(payload)
        zeroed[3] = 0
        chain = walk(ROUTING, zeroed, False, known_upper=KNOWN)
        assert (chain.upper, chain.offset) == (ICMPV6, len(payload) - 8)


# RFC 8200 4, 4.1: Hop-by-Hop only straight after the fixed header.


def test_hop_by_hop_after_another_header() -> None:
    payload = options_header(HBH, b"") + options_header(UDP, b"") + UDP_HEADER
    exc = problem(DEST, payload)
    assert isinstance(exc, ParameterProblem)
    assert exc.reason == "hop_by_hop_not_first"
    # code 1, pointing at the Next Header field that named it (the Destination Options')
    assert (exc.code, exc.pointer, exc.send_icmp) == (1, 40, True)


def test_hop_by_hop_twice() -> None:
    payload = options_header(HBH, b"") + options_header(UDP, b"") + UDP_HEADER
    exc = problem(HBH, payload)
    assert isinstance(exc, ParameterProblem) and (exc.code, exc.pointer) == (1, 40)


def test_hop_by_hop_after_an_atomic_fragment() -> None:
    payload = fragment_header(HBH, 0, False) + options_header(UDP, b"") + UDP_HEADER
    exc = problem(FRAGMENT, payload)
    assert isinstance(exc, ParameterProblem) and (exc.code, exc.pointer) == (1, 40)


def test_hop_by_hop_not_allowed_in_a_reassembled_fragmentable_part() -> None:
    payload = options_header(UDP, b"") + UDP_HEADER
    exc = problem(HBH, payload, hop_by_hop_allowed=False)
    assert isinstance(exc, ParameterProblem) and (exc.code, exc.pointer) == (1, 6)
    chain = walk(DEST, payload, False, known_upper=KNOWN, hop_by_hop_allowed=False)
    assert chain.upper == UDP


# RFC 8200 4.5, RFC 6946: fragments.


def test_atomic_fragment_is_skipped() -> None:
    payload = fragment_header(UDP, 0, False, ident=7) + UDP_HEADER
    assert walk(FRAGMENT, payload, False, known_upper=KNOWN) == Chain(UDP, 8, None, -1, False, 40)


def test_atomic_fragment_with_reserved_bits_is_still_atomic() -> None:
    payload = bytes.fromhex("11ff000600000007") + UDP_HEADER  # Res 11, M 0, offset 0
    assert walk(FRAGMENT, payload, False, known_upper=KNOWN).fragment is None


def test_two_atomic_fragments_then_a_real_one() -> None:
    payload = (
        fragment_header(FRAGMENT, 0, False)
        + fragment_header(FRAGMENT, 0, False)
        + fragment_header(UDP, 8, True, ident=9)
        + bytes(8)
    )
    chain = walk(FRAGMENT, payload, False, known_upper=KNOWN)
    assert chain == Chain(UDP, 24, FragmentHeader(UDP, 8, True, 9), 16, False, 56)


@pytest.mark.parametrize(("offset", "more"), [(0, True), (8, True), (8, False), (65528, False)])
def test_fragment_stops_the_walk(offset: int, more: bool) -> None:
    per_fragment = options_header(ROUTING, b"\x05\x02\x00\x00") + routing_header(FRAGMENT, 0, 0)
    payload = per_fragment + fragment_header(DEST, offset, more, ident=0xABCDEF01) + bytes(16)
    chain = walk(HBH, payload, False, known_upper=KNOWN)
    assert chain == Chain(
        DEST, 40, FragmentHeader(DEST, offset, more, 0xABCDEF01), 32, True, 40 + 32
    )


def test_fragment_with_nothing_after_it() -> None:
    payload = fragment_header(UDP, 16, False)
    chain = walk(FRAGMENT, payload, False, known_upper=KNOWN)
    assert chain.fragment is not None and chain.offset == len(payload) == 8


# Limits and truncation.


def test_too_many_headers() -> None:
    nine = b"".join(options_header(DEST, b"") for _ in range(8)) + options_header(UDP, b"")
    assert problem(DEST, nine + UDP_HEADER).reason == "too_many_headers"
    eight = nine[8:]
    assert walk(DEST, eight + UDP_HEADER, False, known_upper=KNOWN).offset == 64
    assert walk(DEST, nine + UDP_HEADER, False, known_upper=KNOWN, max_headers=9).offset == 72
    assert problem(DEST, eight + UDP_HEADER, max_headers=7).reason == "too_many_headers"


def test_atomic_fragments_count_as_headers() -> None:
    payload = b"".join(fragment_header(FRAGMENT, 0, False) for _ in range(8))
    payload += fragment_header(UDP, 0, False) + UDP_HEADER
    assert problem(FRAGMENT, payload).reason == "too_many_headers"


@pytest.mark.parametrize(
    ("nh", "payload"),
    [
        (DEST, b""),
        (DEST, b"\x11"),  # no Hdr Ext Len
        (DEST, b"\x11\x00\x01\x04\x00\x00\x00"),  # 7 of 8 bytes
        (HBH, b"\x11\x01" + bytes(13)),  # 15 of 16 bytes
        (ROUTING, routing_header(UDP, 0, 0)[:23]),
        (FRAGMENT, fragment_header(UDP, 8, True)[:7]),
        (FRAGMENT, b""),
        (DEST, options_header(FRAGMENT, b"") + b"\x11\x00\x00"),
        (DEST, bytes([DEST, 255]) + bytes(2045)),  # 2047 of 2048 bytes
    ],
)
def test_truncated_extension_header(nh: int, payload: bytes) -> None:
    assert problem(nh, payload).reason == "truncated_extension"


def test_pointers_of_problems_are_inside_the_packet() -> None:
    payload = options_header(DEST, b"") + options_header(UDP, b"\xc0\x00") + UDP_HEADER
    exc = problem(HBH, payload)
    assert isinstance(exc, ParameterProblem)
    assert 40 <= exc.pointer < 40 + len(payload)


# -- hypothesis: valid chains, header round trips, garbage -----------------------------------


@st.composite
def chains(draw: st.DrawFn) -> tuple[int, bytes, int, int, bool]:
    """A valid chain of up to 8 processed headers that ends at an upper layer: (first next
    header, payload, upper, upper offset, router alert)."""
    kinds = draw(st.lists(st.sampled_from([HBH, DEST, ROUTING, FRAGMENT]), max_size=8))
    # Hop-by-Hop only first.
    kinds = [k for i, k in enumerate(kinds) if k != HBH or i == 0]
    upper = draw(st.sampled_from([TCP, UDP, ICMPV6, NO_NEXT, 132]))
    parts = []
    alert = False
    for i, kind in enumerate(kinds):
        nh = kinds[i + 1] if i + 1 < len(kinds) else upper
        if kind == FRAGMENT:
            parts.append(fragment_header(nh, 0, False, ident=draw(st.integers(0, 2**32 - 1))))
        elif kind == ROUTING:
            rtype = draw(st.integers(0, 255))
            parts.append(routing_header(nh, rtype, 0, draw(st.integers(0, 3))))
        else:
            options = b""
            for _ in range(draw(st.integers(0, 3))):
                choice = draw(st.integers(0, 3))
                if choice == 0:
                    options += b"\x00"
                elif choice == 1:
                    n = draw(st.integers(0, 6))
                    options += bytes([1, n]) + bytes(n)
                elif choice == 2 and kind == HBH:
                    options += b"\x05\x02\x00\x00"
                    alert = True
                else:  # unknown, action 00
                    data = draw(st.binary(max_size=6))
                    options += bytes([draw(st.integers(2, 0x3F)) | 0x02, len(data)]) + data
            parts.append(options_header(nh, options))
    first = kinds[0] if kinds else upper
    offset = sum(len(p) for p in parts)
    return first, b"".join(parts) + draw(st.binary(max_size=20)), upper, offset, alert


@SETTINGS
@given(chain=chains(), multicast=st.booleans())
def test_valid_chains_walk_to_their_upper_layer(
    chain: tuple[int, bytes, int, int, bool], multicast: bool
) -> None:
    first, payload, upper, offset, alert = chain
    result = walk(first, payload, multicast, known_upper=KNOWN)
    assert (result.upper, result.offset, result.router_alert) == (upper, offset, alert)
    assert result.fragment is None and result.fragment_at == -1
    if offset:
        assert payload[result.next_header_pointer - 40] == upper
    else:
        assert (first, result.next_header_pointer) == (upper, 6)
    assert walk(first, memoryview(payload), multicast, known_upper=KNOWN) == result


headers = st.builds(
    IPv6Header,
    traffic_class=st.integers(0, 255),
    flow_label=st.integers(0, 0xFFFFF),
    payload_length=st.integers(0, 0xFFFF),
    next_header=st.integers(0, 255),
    hop_limit=st.integers(0, 255),
    src=st.binary(min_size=16, max_size=16),
    dst=st.binary(min_size=16, max_size=16),
)


@SETTINGS
@given(header=headers, offset=st.integers(0, 8), padding=st.binary(max_size=8))
def test_emit_then_parse_round_trips(header: IPv6Header, offset: int, padding: bytes) -> None:
    header = header._replace(payload_length=header.payload_length % 200)
    if header.payload_length == 0 and header.next_header == HBH:
        header = header._replace(next_header=ICMPV6)  # a jumbogram: not supported
    payload = bytes(range(256))[: header.payload_length]
    wire = header.to_bytes()
    assert len(wire) == IPV6_HEADER_LEN and wire[0] >> 4 == 6
    buf = bytearray(offset + IPV6_HEADER_LEN)
    assert header.emit_into(buf, offset) == IPV6_HEADER_LEN
    assert bytes(buf[offset:]) == wire
    built = bytearray(offset + IPV6_HEADER_LEN)
    h = header
    build_header_into(built, offset, h.payload_length, h.next_header, h.hop_limit, h.src,
                      h.dst, h.traffic_class, h.flow_label)  # fmt: skip
    assert bytes(built[offset:]) == wire
    parsed, rest = parse(wire + payload + padding)
    assert parsed == header
    assert bytes(rest) == payload


def _check_parse(data: bytes) -> None:
    try:
        header, payload = parse(data)
    except ParseError as exc:
        assert exc.reason in PARSE_REASONS and SNAKE_CASE.match(exc.reason)
    else:
        assert header.to_bytes() == data[:IPV6_HEADER_LEN]
        assert IPV6_HEADER_LEN + header.payload_length <= len(data)
        assert len(payload) == header.payload_length


@SETTINGS
@given(data=st.binary(max_size=80))
def test_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    _check_parse(data)


@SETTINGS
@given(
    first=st.integers(0x60, 0x6F), plen=st.integers(0, 60), rest=st.binary(min_size=35, max_size=90)
)
@example(first=0x60, plen=0, rest=bytes(35))
def test_ipv6_shaped_garbage_parses_or_raises_parse_error(
    first: int, plen: int, rest: bytes
) -> None:
    _check_parse(bytes([first]) + rest[:3] + struct.pack("!H", plen) + rest[3:])


def _check_walk(nh: int, payload: bytes, multicast: bool, max_headers: int = 8) -> None:
    try:
        chain = walk(nh, payload, multicast, known_upper=KNOWN, max_headers=max_headers)
    except ParameterProblem as exc:
        assert exc.reason in WALK_REASONS
        assert exc.code in (0, 1, 2)
        assert 0 <= exc.pointer < 40 + len(payload)
        assert exc.send_icmp or exc.code == 2
    except ParseError as exc:
        assert exc.reason in WALK_REASONS
    else:
        assert 0 <= chain.offset <= len(payload)
        if chain.fragment is None:
            assert chain.fragment_at == -1
        else:
            assert chain.offset == chain.fragment_at + 8
            assert chain.next_header_pointer == 40 + chain.fragment_at
            assert chain.fragment.offset % 8 == 0
            assert (chain.fragment.offset, chain.fragment.more) != (0, False)
        if chain.next_header_pointer == 6:
            assert chain.upper == nh
        else:
            assert payload[chain.next_header_pointer - 40] == chain.upper


@SETTINGS
@given(
    nh=st.sampled_from([HBH, DEST, ROUTING, FRAGMENT, UDP, 255]),
    payload=st.binary(max_size=96),
    multicast=st.booleans(),
)
def test_walk_garbage_returns_or_raises_parse_error(
    nh: int, payload: bytes, multicast: bool
) -> None:
    _check_walk(nh, payload, multicast)


@st.composite
def chain_shaped(draw: st.DrawFn) -> tuple[int, bytes]:
    """Garbage that looks like a chain: small Hdr Ext Lens and next headers drawn from the
    extension headers, so the walk goes deep."""
    out = b""
    for _ in range(draw(st.integers(0, 10))):
        nh = draw(st.sampled_from([HBH, DEST, ROUTING, FRAGMENT, UDP, NO_NEXT]))
        length = draw(st.integers(0, 2))
        body = draw(st.binary(min_size=6 + 8 * length, max_size=6 + 8 * length))
        out += bytes([nh, length]) + body
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return draw(st.sampled_from([HBH, DEST, ROUTING, FRAGMENT])), out


@SETTINGS
@given(case=chain_shaped(), multicast=st.booleans(), max_headers=st.integers(0, 10))
def test_walk_chain_shaped_garbage(
    case: tuple[int, bytes], multicast: bool, max_headers: int
) -> None:
    _check_walk(case[0], case[1], multicast, max_headers)
