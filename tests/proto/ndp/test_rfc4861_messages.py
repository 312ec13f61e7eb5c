"""RFC 4861 Neighbor Discovery messages and options (with RFC 8106 RDNSS/DNSSL): parsing, the
message checks of 6.1, 7.1 and 8.1, the IP-level checks of :func:`ndp.validate_ip`, and the
builders.

Fixed messages come from the tcpdump project's test captures (the corpus in
shared/pcaps/tcpdump), written out as hex from the byte after the IPv6 headers, with the file and
frame; or were assembled by hand from RFC 4861 4 (2001:db8::/32 and fe80::/64 addresses, RFC
3849; MACs 00:00:5e:00:53:xx, RFC 7042 2.1.2), their checksums worked out with an RFC 1071
loop, then written to a pcap and decoded by ``tshark -V``, which reported every checksum
"[correct]". The comments give tshark's reading.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.icmpv6.wire import Icmp6Header, Icmp6Type, checksum_ok, parse
from netstack.proto.ndp import wire as ndp
from netstack.proto.ndp.wire import (
    INFINITE_LIFETIME,
    Dnssl,
    NdpOptionType,
    NeighborAdvert,
    NeighborSolicit,
    PrefixInfo,
    Rdnss,
    Redirect,
    RouterAdvert,
    RouterSolicit,
    build_neighbor_advert,
    build_neighbor_solicit,
    build_redirect,
    build_router_advert,
    build_router_solicit,
    iter_options,
    parse_neighbor_advert,
    parse_neighbor_solicit,
    parse_redirect,
    parse_router_advert,
    parse_router_solicit,
    validate_ip,
)

SETTINGS = settings(max_examples=200, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
REASONS = {
    "bad_code",
    "truncated",
    "bad_option_length",
    "bad_prefix_length",
    "bad_domain_name",
    "multicast_target",
    "multicast_destination",
    "bad_target",
}


def addr(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


UNSPECIFIED = bytes(16)
ALL_NODES = addr("ff02::1")
ALL_ROUTERS = addr("ff02::2")
A1 = addr("2001:db8::1")
A2 = addr("2001:db8::2")
LL1 = addr("fe80::1")
LL2 = addr("fe80::2")
MAC1 = mac("00:00:5e:00:53:01")
MAC2 = mac("00:00:5e:00:53:02")

PARSERS: dict[int, Callable[[Icmp6Header, Any], ndp.NdpMessage]] = {
    Icmp6Type.ROUTER_SOLICIT: parse_router_solicit,
    Icmp6Type.ROUTER_ADVERT: parse_router_advert,
    Icmp6Type.NEIGHBOR_SOLICIT: parse_neighbor_solicit,
    Icmp6Type.NEIGHBOR_ADVERT: parse_neighbor_advert,
    Icmp6Type.REDIRECT: parse_redirect,
}


def parse_message(message: bytes) -> ndp.NdpMessage:
    header, body = parse(message)
    return PARSERS[header.type](header, body)


class Fixed(NamedTuple):
    name: str
    src: bytes
    dst: bytes
    message: bytes
    parsed: ndp.NdpMessage


# 2001:db8::1 -> 2001:db8::2, 53 bytes quoted in the Redirect below (UDP, ports 40000 -> 7).
REDIRECTED = bytes.fromhex(
    "60000000000d114020010db800000000000000000000000120010db8000000000000000000000002"
    "9c400007000dc445"
)

FIXED = [
    # By hand, 2001:db8::1 -> ff02::1:ff00:2 (the target's solicited-node group): "Neighbor
    # Solicitation for 2001:db8::2 from 00:00:5e:00:53:01", "Checksum: 0x6d26 [correct]".
    Fixed(
        "ns",
        A1,
        addr("ff02::1:ff00:2"),
        bytes.fromhex(
            "87006d2600000000" "20010db8000000000000000000000002" "010100005e005301"
        ),
        NeighborSolicit(A2, MAC1, None),
    ),
    # By hand, duplicate address detection from :: to ff02::1:ff00:1: "Neighbor Solicitation
    # for 2001:db8::1", "Checksum: 0x4ced [correct]".
    Fixed(
        "ns_dad",
        UNSPECIFIED,
        addr("ff02::1:ff00:1"),
        bytes.fromhex("87004ced00000000" "20010db8000000000000000000000001"),
        NeighborSolicit(A1),
    ),
    # icmpv6-ns-nonce.pcap frame 1, :: -> ff02::1:ffe1:f: "Neighbor Solicitation for
    # fe80::546f:f7ff:fee1:f", "Checksum: 0x566e [correct]", "Nonce: 6069604c0aaa".
    Fixed(
        "ns_nonce",
        UNSPECIFIED,
        addr("ff02::1:ffe1:f"),
        bytes.fromhex(
            "8700566e00000000" "fe80000000000000546ff7fffee1000f" "0e016069604c0aaa"
        ),
        NeighborSolicit(addr("fe80::546f:f7ff:fee1:f"), None, bytes.fromhex("6069604c0aaa")),
    ),
    # By hand, 2001:db8::2 -> 2001:db8::1: "Neighbor Advertisement 2001:db8::2 (sol, ovr) is
    # at 00:00:5e:00:53:02", "Checksum: 0xdb70 [correct]".
    Fixed(
        "na_solicited",
        A2,
        A1,
        bytes.fromhex(
            "8800db7060000000" "20010db8000000000000000000000002" "020100005e005302"
        ),
        NeighborAdvert(False, True, True, A2, MAC2),
    ),
    # By hand, fe80::1 -> ff02::1: "Neighbor Advertisement fe80::1 (rtr, ovr) is at
    # 00:00:5e:00:53:01", "Checksum: 0x289a [correct]".
    Fixed(
        "na_unsolicited",
        LL1,
        ALL_NODES,
        bytes.fromhex(
            "8800289aa0000000" "fe800000000000000000000000000001" "020100005e005301"
        ),
        NeighborAdvert(True, False, True, LL1, MAC1),
    ),
    # By hand, fe80::2 -> ff02::2: "Router Solicitation from 00:00:5e:00:53:02", "Checksum:
    # 0xcb29 [correct]".
    Fixed(
        "rs",
        LL2,
        ALL_ROUTERS,
        bytes.fromhex("8500cb2900000000" "010100005e005302"),
        RouterSolicit(MAC2),
    ),
    # By hand, fe80::1 -> ff02::1: "Cur hop limit: 64", "Other configuration: Set", "Router
    # lifetime (s): 1800", "Reachable time (ms): 30000", "Retrans timer (ms): 1000"; options
    # "Source link-layer address : 00:00:5e:00:53:01", "MTU : 1500", "Prefix information :
    # 2001:db8:0:1::/64" (L, A, valid 86400, preferred 14400), "Recursive DNS Server
    # 2001:db8::53" (lifetime 1800), "DNS Search List Option example.net" (lifetime 1800,
    # padding); "Checksum: 0xccad [correct]".
    Fixed(
        "ra",
        LL1,
        ALL_NODES,
        bytes.fromhex(
            "8600ccad40400708" "00007530000003e8"
            "010100005e005301"
            "05010000000005dc"
            "030440c000015180000038400000000020010db8000000010000000000000000"
            "190300000000070820010db8000000000000000000000053"
            "1f03000000000708076578616d706c65036e657400000000"
        ),
        RouterAdvert(
            64, False, True, 1800, 30000, 1000, MAC1, 1500,
            (PrefixInfo(addr("2001:db8:0:1::"), 64, True, True, 86400, 14400),),
            (Rdnss(1800, (addr("2001:db8::53"),)),),
            (Dnssl(1800, ("example.net",)),),
        ),
    ),
    # icmpv6.pcap frame 1, fe80::b299:28ff:fec8:d66c -> ff02::1: "Cur hop limit: 64", "Flags:
    # 0x20, Home Agent", "Router lifetime (s): 15"; "Prefix information :
    # 2222:3333:4444:5555:6600::/72" (L, A, valid 2592000, preferred 604800), "Recursive DNS
    # Server abcd::efef 1234:5678::1" (lifetime 5), "DNS Search List Option example.com
    # example.org dom1.dom2.tld" (lifetime 5), "MTU : 100", "Source link-layer address :
    # b0:99:28:c8:d6:6c", then "Advertisement Interval" (7) and "Home Agent Information" (8),
    # which are not known here and skipped; "Checksum: 0x2401 [correct]".
    Fixed(
        "ra_tcpdump",
        addr("fe80::b299:28ff:fec8:d66c"),
        ALL_NODES,
        bytes.fromhex(
            "860024014020000f0000000000000000"
            "030448c000278d0000093a800000000022223333444455556600000000000000"
            "1905000000000005abcd000000000000000000000000efef12345678000000000000000000000001"
            "1f07000000000005076578616d706c6503636f6d00076578616d706c65036f72670004646f6d3104"
            "646f6d3203746c640000000000000000"
            "0501000000000064"
            "0101b09928c8d66c"
            "0701000000001388"
            "08010000c351000f"
        ),
        RouterAdvert(
            64, False, False, 15, 0, 0, mac("b0:99:28:c8:d6:6c"), 100,
            (PrefixInfo(addr("2222:3333:4444:5555:6600::"), 72, True, True, 2592000, 604800),),
            (Rdnss(5, (addr("abcd::efef"), addr("1234:5678::1"))),),
            (Dnssl(5, ("example.com", "example.org", "dom1.dom2.tld")),),
        ),
    ),
    # icmpv6_opt24.pcap frame 1, fe80::16cf:92ff:fe87:23d6 -> ff02::1: "Cur hop limit: 0",
    # "Managed address configuration: Set", "Other configuration: Set", "Router lifetime (s):
    # 0"; "Source link-layer address : 14:cf:92:87:23:d6", "MTU : 1500", "Prefix information
    # : fd8d:4fb3:5b2e::/64" (L, A, 7200, 1800), "Route Information" (24, skipped),
    # "Recursive DNS Server fd8d:4fb3:5b2e::1" (1800), "DNS Search List Option lan" (1800);
    # "Checksum: 0x6882 [correct]".
    Fixed(
        "ra_route_info",
        addr("fe80::16cf:92ff:fe87:23d6"),
        ALL_NODES,
        bytes.fromhex(
            "8600688200c000000000000000000000"
            "010114cf928723d6"
            "05010000000005dc"
            "030440c000001c200000070800000000fd8d4fb35b2e00000000000000000000"
            "1802300000001c20fd8d4fb35b2e0000"
            "1903000000000708fd8d4fb35b2e00000000000000000001"
            "1f02000000000708036c616e00000000"
        ),
        RouterAdvert(
            0, True, True, 0, 0, 0, mac("14:cf:92:87:23:d6"), 1500,
            (PrefixInfo(addr("fd8d:4fb3:5b2e::"), 64, True, True, 7200, 1800),),
            (Rdnss(1800, (addr("fd8d:4fb3:5b2e::1"),)),),
            (Dnssl(1800, ("lan",)),),
        ),
    ),
    # By hand, fe80::1 -> 2001:db8::1: "Redirect is at 00:00:5e:00:53:02", "Target Address:
    # fe80::2", "Destination Address: 2001:db8:1::5", "Redirected header" of length 7 (48
    # bytes of the UDP packet above), "Checksum: 0x3977 [correct]".
    Fixed(
        "redirect",
        LL1,
        A1,
        bytes.fromhex(
            "8900397700000000"
            "fe800000000000000000000000000002"
            "20010db8000100000000000000000005"
            "020100005e005302"
            "0407000000000000"
        )
        + REDIRECTED[:48],
        Redirect(LL2, addr("2001:db8:1::5"), MAC2),
    ),
]  # fmt: skip
BY_NAME = {c.name: c for c in FIXED}


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
@pytest.mark.parametrize("kind", [bytes, memoryview])
def test_fixed_message_parses(case: Fixed, kind: type) -> None:
    header, body = parse(kind(case.message))
    assert checksum_ok(case.message, case.src, case.dst)
    assert PARSERS[header.type](header, body) == case.parsed
    assert validate_ip(header.type, 255, case.src, case.dst, case.parsed) is None


BUILT: dict[str, Callable[[], bytes]] = {
    "ns": lambda: build_neighbor_solicit(A1, addr("ff02::1:ff00:2"), A2, MAC1),
    "ns_dad": lambda: build_neighbor_solicit(UNSPECIFIED, addr("ff02::1:ff00:1"), A1, None),
    "ns_nonce": lambda: build_neighbor_solicit(
        UNSPECIFIED,
        addr("ff02::1:ffe1:f"),
        addr("fe80::546f:f7ff:fee1:f"),
        None,
        bytes.fromhex("6069604c0aaa"),
    ),
    "na_solicited": lambda: build_neighbor_advert(
        A2, A1, A2, MAC2, router=False, solicited=True, override=True
    ),
    "na_unsolicited": lambda: build_neighbor_advert(
        LL1, ALL_NODES, LL1, MAC1, router=True, solicited=False, override=True
    ),
    "rs": lambda: build_router_solicit(LL2, ALL_ROUTERS, MAC2),
    "ra": lambda: build_router_advert(
        LL1,
        ALL_NODES,
        other=True,
        reachable_time=30000,
        retrans_timer=1000,
        source_mac=MAC1,
        mtu=1500,
        prefixes=[PrefixInfo(addr("2001:db8:0:1::"), 64, True, True, 86400, 14400)],
        rdnss=[Rdnss(1800, (addr("2001:db8::53"),))],
        dnssl=[Dnssl(1800, ("example.net",))],
    ),
    "redirect": lambda: build_redirect(LL1, A1, LL2, addr("2001:db8:1::5"), MAC2, REDIRECTED[:48]),
}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_builders_give_the_fixed_bytes(name: str) -> None:
    assert BUILT[name]() == BY_NAME[name].message


def test_option_types() -> None:
    assert [int(t) for t in NdpOptionType] == [1, 2, 3, 4, 5, 14, 24, 25, 31]
    assert INFINITE_LIFETIME == 0xFFFFFFFF


def test_iter_options_yields_values_without_type_and_length() -> None:
    _, body = parse(BY_NAME["ra_tcpdump"].message)
    options = [(t, bytes(v)) for t, v in iter_options(body[8:])]
    assert [t for t, _ in options] == [3, 25, 31, 5, 1, 7, 8]
    assert [len(v) + 2 for _, v in options] == [32, 40, 56, 8, 8, 8, 8]
    assert options[4][1] == mac("b0:99:28:c8:d6:6c")
    assert list(iter_options(b"")) == []


# -- RFC 4861 6.1, 7.1, 8.1: checks on the message itself -----------------------------------

NDP_TYPES = sorted(PARSERS)
# The least ICMP length of each (RFC 4861 6.1.1, 6.1.2, 7.1.1, 7.1.2, 8.1), header included.
MIN_LENGTH = {133: 8, 134: 16, 135: 24, 136: 24, 137: 40}


def minimal(type_: int, code: int = 0) -> bytes:
    body = bytes(MIN_LENGTH[type_] - 8)
    if type_ in (135, 136):
        body = A2
    elif type_ == 137:
        body = LL2 + A2
    return Icmp6Header(type_, code, 0, 0).to_bytes() + body


def reason_of(message: bytes) -> str:
    with pytest.raises(ParseError) as info:
        parse_message(message)
    assert SNAKE_CASE.match(info.value.reason)
    return info.value.reason


@pytest.mark.parametrize("type_", NDP_TYPES)
def test_minimal_messages_parse(type_: int) -> None:
    parse_message(minimal(type_))


@pytest.mark.parametrize("type_", NDP_TYPES)
@pytest.mark.parametrize("code", [1, 255])
def test_code_must_be_zero(type_: int, code: int) -> None:
    assert reason_of(minimal(type_, code)) == "bad_code"


@pytest.mark.parametrize("type_", [t for t in NDP_TYPES if MIN_LENGTH[t] > 8])
def test_shorter_than_the_least_length_is_truncated(type_: int) -> None:
    for length in range(8, MIN_LENGTH[type_]):
        assert reason_of(minimal(type_)[:length]) == "truncated"


@pytest.mark.parametrize("type_", NDP_TYPES)
@pytest.mark.parametrize(
    "options",
    [
        bytes.fromhex("0100"),  # length 0 (RFC 4861 4.6: discard the packet)
        bytes.fromhex("010100005e005301 0700"),  # a later option of length 0
        bytes.fromhex("0102000000000000"),  # 16 bytes claimed, 8 present
        bytes.fromhex("010100005e005301 07"),  # one byte left over
        bytes.fromhex("ff"),
    ],
    ids=["zero", "later_zero", "overrun", "leftover", "lone_byte"],
)
def test_bad_option_lengths_drop_the_message(type_: int, options: bytes) -> None:
    assert reason_of(minimal(type_) + options) == "bad_option_length"


def test_unknown_options_are_skipped() -> None:
    # RFC 4861 4.6, 9: receivers MUST silently ignore options they do not recognize.
    unknown = bytes.fromhex("c8020102030405060708090a0b0c0d0e")
    for type_ in NDP_TYPES:
        assert parse_message(minimal(type_) + unknown) == parse_message(minimal(type_))


def test_options_meant_for_other_messages_are_ignored() -> None:
    # RFC 4861 4.6.1: a target link-layer address option in a solicitation is ignored (and a
    # source one in an advertisement); a prefix option outside an RA too (4.6.2).
    tlla = bytes.fromhex("020100005e005301")
    prefix = bytes.fromhex("030440c0000151800000384000000000") + addr("2001:db8:0:1::")
    assert parse_message(minimal(135) + tlla + prefix) == NeighborSolicit(A2)
    assert parse_message(minimal(136) + bytes.fromhex("010100005e005301")) == NeighborAdvert(
        False, False, False, A2
    )
    assert parse_message(minimal(133) + tlla) == RouterSolicit()


def test_first_link_layer_address_counts() -> None:
    two = bytes.fromhex("010100005e005301 010100005e005302")
    assert parse_message(minimal(135) + two) == NeighborSolicit(A2, MAC1)
    assert parse_message(minimal(133) + two) == RouterSolicit(MAC1)


@pytest.mark.parametrize("type_", [133, 134, 135])
def test_source_link_layer_option_must_hold_a_mac(type_: int) -> None:
    # RFC 2464 8: length 1 on Ethernet; 16 bytes is some other link's address.
    assert reason_of(minimal(type_) + b"\x01\x02" + bytes(14)) == "bad_option_length"


@pytest.mark.parametrize("type_", [136, 137])
def test_target_link_layer_option_must_hold_a_mac(type_: int) -> None:
    assert reason_of(minimal(type_) + b"\x02\x02" + bytes(14)) == "bad_option_length"


@pytest.mark.parametrize("type_", [135, 136])
@pytest.mark.parametrize("target", ["ff02::1", "ff02::1:ff00:2", "ff05::1:3"])
def test_multicast_target(type_: int, target: str) -> None:
    # RFC 4861 7.1.1, 7.1.2: the Target Address is not a multicast address.
    message = Icmp6Header(type_, 0, 0, 0).to_bytes() + addr(target)
    assert reason_of(message) == "multicast_target"


def test_redirect_to_a_multicast_destination() -> None:
    # RFC 4861 8.1: the ICMP Destination Address is not multicast.
    message = Icmp6Header(137, 0, 0, 0).to_bytes() + LL2 + addr("ff0e::101")
    assert reason_of(message) == "multicast_destination"


def test_redirect_target_is_link_local_or_the_destination() -> None:
    # RFC 4861 8.1: link-local when redirected to a router, else the destination itself.
    header = Icmp6Header(137, 0, 0, 0).to_bytes()
    assert reason_of(header + A1 + A2) == "bad_target"
    assert parse_message(header + A2 + A2) == Redirect(A2, A2)
    assert parse_message(header + addr("febf::1") + A2) == Redirect(addr("febf::1"), A2)
    assert reason_of(header + addr("fec0::1") + A2) == "bad_target"


# -- option contents -------------------------------------------------------------------------


def ra_with(option_hex: str) -> bytes:
    return minimal(134) + bytes.fromhex(option_hex)


PREFIX_BODY = "40c0000151800000384000000000" + "20010db8000000010000000000000000"


@pytest.mark.parametrize(
    "option_hex",
    [
        "0303" + PREFIX_BODY[:44],  # a prefix option of length 3
        "0305" + PREFIX_BODY + "0000000000000000",  # ... of length 5
        "0502000000000500" + "0000000000000000",  # an MTU option of length 2
        "1901000000000708",  # RDNSS of length 1 (RFC 8106 5.1: 3 or more)
        "1902000000000708" + "0000000000000000",  # ... of length 2, not 1 + 2n
        "1904000000000708" + "00" * 24,  # ... of length 4, even
        "1f01000000000708",  # DNSSL of length 1 (RFC 8106 5.2: 2 or more)
    ],
    ids=["prefix_3", "prefix_5", "mtu_2", "rdnss_1", "rdnss_2", "rdnss_4", "dnssl_1"],
)
def test_known_option_of_the_wrong_length(option_hex: str) -> None:
    assert reason_of(ra_with(option_hex)) == "bad_option_length"


def test_prefix_length_above_128() -> None:
    # RFC 4861 4.6.2: "The value ranges from 0 to 128".
    assert reason_of(ra_with("0304" + "81" + PREFIX_BODY[2:])) == "bad_prefix_length"
    parsed = parse_message(ra_with("0304" + "80" + PREFIX_BODY[2:]))
    assert isinstance(parsed, RouterAdvert) and parsed.prefixes[0].prefix_len == 128


def test_prefix_bits_beyond_the_length_are_zeroed() -> None:
    # RFC 4861 4.6.2: reserved bits after the prefix length are ignored by the receiver.
    option = "0304" + "30c0000151800000384000000000" + "20010db8abcdef01ffffffffffffffff"
    parsed = parse_message(ra_with(option))
    assert isinstance(parsed, RouterAdvert)
    assert parsed.prefixes[0].prefix == addr("2001:db8:abcd::")
    zero = parse_message(ra_with("0304" + "00c0000151800000384000000000" + "ff" * 16))
    assert isinstance(zero, RouterAdvert) and zero.prefixes[0].prefix == bytes(16)


def test_prefix_flags_and_infinite_lifetimes() -> None:
    option = "0304" + "4000ffffffffffffffff00000000" + "20010db8000000020000000000000000"
    parsed = parse_message(ra_with(option))
    assert isinstance(parsed, RouterAdvert)
    assert parsed.prefixes == (
        PrefixInfo(addr("2001:db8:0:2::"), 64, False, False, INFINITE_LIFETIME, 0xFFFFFFFF),
    )


def test_several_prefix_rdnss_and_dnssl_options_are_kept_in_order() -> None:
    message = build_router_advert(
        LL1,
        ALL_NODES,
        prefixes=[
            PrefixInfo(addr("2001:db8:0:1::"), 64, True, True, 10, 5),
            PrefixInfo(addr("2001:db8:0:2::"), 64, True, False, 20, 0),
        ],
        rdnss=[Rdnss(1, (A1,)), Rdnss(2, (A2, A1, LL1))],
        dnssl=[Dnssl(3, ("a.example",)), Dnssl(4, ("b.example", "c"))],
    )
    parsed = parse_message(message)
    assert isinstance(parsed, RouterAdvert)
    assert [p.valid_lifetime for p in parsed.prefixes] == [10, 20]
    assert parsed.rdnss == (Rdnss(1, (A1,)), Rdnss(2, (A2, A1, LL1)))
    assert parsed.dnssl == (Dnssl(3, ("a.example",)), Dnssl(4, ("b.example", "c")))


def test_first_mtu_option_counts() -> None:
    parsed = parse_message(ra_with("05010000000005dc 0501000000000500"))
    assert isinstance(parsed, RouterAdvert) and parsed.mtu == 1500


@pytest.mark.parametrize(
    "names_hex",
    [
        "076578616d706c65c00c000000000000",  # a compression pointer (RFC 8106 5.2: MUST NOT)
        "076578616d706c6540616161616161",  # a label length of 64 (reserved type)
        "0f6578616d706c65",  # a label that runs past the option
        "076578616d706c65",  # no terminating zero
        "03e282ac00000000",  # not ASCII
        "03612e6200000000",  # a dot inside a label
    ],
    ids=["pointer", "label_64", "overrun", "unterminated", "non_ascii", "dot"],
)
def test_bad_domain_names(names_hex: str) -> None:
    names = bytes.fromhex(names_hex)
    units = (8 + len(names) + 7) // 8
    option = bytes([31, units, 0, 0, 0, 0, 0, 9]) + names.ljust(units * 8 - 8, b"\x00")
    assert reason_of(minimal(134) + option) == "bad_domain_name"


def test_domain_name_longer_than_255_bytes() -> None:
    # RFC 1035 2.3.4: 255 octets at most, length bytes and the root included.
    names = (bytes([63]) + b"a" * 63) * 4 + b"\x00"  # 257 bytes
    units = (8 + len(names) + 7) // 8
    option = bytes([31, units, 0, 0, 0, 0, 0, 9]) + names.ljust(units * 8 - 8, b"\x00")
    assert reason_of(minimal(134) + option) == "bad_domain_name"
    ok = (bytes([63]) + b"a" * 63) * 3 + bytes([61]) + b"a" * 61 + b"\x00"  # 255 bytes
    parsed = parse_message(ra_with("1f21000000000009") + ok.ljust(256, b"\x00"))
    assert isinstance(parsed, RouterAdvert) and len(parsed.dnssl[0].domains[0]) == 253


def test_dnssl_padding_ends_the_names() -> None:
    # "a", "b", then padding (whose bytes the receiver does not look at).
    parsed = parse_message(ra_with("1f02000000000009 016100 016200 00ff"))
    assert isinstance(parsed, RouterAdvert)
    assert parsed.dnssl == (Dnssl(9, ("a", "b")),)


# -- RFC 4861 6.1, 7.1, 8.1: checks that need the IP header ---------------------------------


@pytest.mark.parametrize("case", FIXED, ids=lambda c: c.name)
@pytest.mark.parametrize("hop_limit", [0, 1, 64, 254])
def test_hop_limit_must_be_255(case: Fixed, hop_limit: int) -> None:
    # The packet could not possibly have been forwarded by a router.
    header, _ = parse(case.message)
    assert validate_ip(header.type, hop_limit, case.src, case.dst, case.parsed) == "bad_hop_limit"


def test_solicitation_from_unspecified_carries_no_source_link_layer_address() -> None:
    # RFC 4861 6.1.1 and 7.1.1.
    ns = NeighborSolicit(A1, MAC1)
    solicited_node = addr("ff02::1:ff00:1")
    assert validate_ip(135, 255, UNSPECIFIED, solicited_node, ns) == "slla_from_unspecified"
    assert validate_ip(135, 255, A2, solicited_node, ns) is None
    rs = RouterSolicit(MAC1)
    assert validate_ip(133, 255, UNSPECIFIED, ALL_ROUTERS, rs) == "slla_from_unspecified"
    assert validate_ip(133, 255, UNSPECIFIED, ALL_ROUTERS, RouterSolicit()) is None
    assert validate_ip(133, 255, LL1, ALL_ROUTERS, rs) is None


@pytest.mark.parametrize("dst", ["ff02::1", "ff02::1:fe00:1", "ff05::1:ff00:1", "2001:db8::1"])
def test_solicitation_from_unspecified_goes_to_a_solicited_node_group(dst: str) -> None:
    # RFC 4861 7.1.1: from the unspecified address, only to a solicited-node group.
    ns = NeighborSolicit(A1)
    assert validate_ip(135, 255, UNSPECIFIED, addr(dst), ns) == "dad_not_solicited_node"
    assert validate_ip(135, 255, A2, addr(dst), ns) is None


def test_solicited_advertisement_not_to_multicast() -> None:
    # RFC 4861 7.1.2: to a multicast destination the Solicited flag is zero.
    solicited = NeighborAdvert(False, True, True, A2, MAC2)
    assert validate_ip(136, 255, A2, ALL_NODES, solicited) == "solicited_to_multicast"
    assert validate_ip(136, 255, A2, A1, solicited) is None
    unsolicited = solicited._replace(solicited=False)
    assert validate_ip(136, 255, A2, ALL_NODES, unsolicited) is None


@pytest.mark.parametrize("name", ["ra", "redirect"])
@pytest.mark.parametrize("src", ["2001:db8::1", "::", "fec0::1", "ff02::1"])
def test_router_messages_come_from_link_local(name: str, src: str) -> None:
    # RFC 4861 6.1.2 and 8.1: the IP source is link-local.
    case = BY_NAME[name]
    header, _ = parse(case.message)
    reason = validate_ip(header.type, 255, addr(src), case.dst, case.parsed)
    assert reason == "source_not_link_local"
    assert validate_ip(header.type, 255, addr("febf::ffff"), case.dst, case.parsed) is None


def test_validate_ip_wants_the_message_of_its_type() -> None:
    with pytest.raises(ValueError):
        validate_ip(136, 255, A1, A2, NeighborSolicit(A2))
    with pytest.raises(ValueError):
        validate_ip(128, 255, A1, A2, RouterSolicit())


# -- builders --------------------------------------------------------------------------------


def test_builders_reject_what_cannot_be_encoded() -> None:
    bad_calls: list[Callable[[], bytes]] = [
        lambda: build_neighbor_solicit(A1, A2, A2[:15], None),
        lambda: build_neighbor_solicit(A1, A2, A2, MAC1[:5]),
        lambda: build_neighbor_solicit(A1, A2, A2, None, b"12345"),  # nonce shorter than 6
        lambda: build_neighbor_solicit(A1, A2, A2, None, b"1234567"),  # not 8-byte units
        lambda: build_neighbor_advert(
            A1, A2, A2, b"", router=False, solicited=False, override=False
        ),
        lambda: build_router_solicit(LL1, ALL_ROUTERS, MAC1 + b"\x00"),
        lambda: build_router_advert(LL1, ALL_NODES, cur_hop_limit=256),
        lambda: build_router_advert(LL1, ALL_NODES, router_lifetime=65536),
        lambda: build_router_advert(LL1, ALL_NODES, source_mac=b"\x01"),
        lambda: build_router_advert(
            LL1, ALL_NODES, prefixes=[PrefixInfo(A1, 129, True, True, 1, 1)]
        ),
        lambda: build_router_advert(
            LL1, ALL_NODES, prefixes=[PrefixInfo(A1[:8], 64, True, True, 1, 1)]
        ),
        lambda: build_router_advert(LL1, ALL_NODES, rdnss=[Rdnss(1, ())]),
        lambda: build_router_advert(LL1, ALL_NODES, rdnss=[Rdnss(1, (A1,) * 128)]),
        lambda: build_router_advert(LL1, ALL_NODES, rdnss=[Rdnss(1, (A1[:4],))]),
        lambda: build_router_advert(LL1, ALL_NODES, dnssl=[Dnssl(1, ())]),
        lambda: build_router_advert(LL1, ALL_NODES, dnssl=[Dnssl(1, (".",))]),
        lambda: build_router_advert(LL1, ALL_NODES, dnssl=[Dnssl(1, ("a..b",))]),
        lambda: build_router_advert(LL1, ALL_NODES, dnssl=[Dnssl(1, ("a" * 64,))]),
        lambda: build_router_advert(LL1, ALL_NODES, dnssl=[Dnssl(1, ("bücher.example",))]),
        lambda: build_router_advert(LL1, ALL_NODES, dnssl=[Dnssl(1, (("a" * 60 + ".") * 5,))]),
        lambda: build_router_advert(LL1, ALL_NODES, dnssl=[Dnssl(1, ("a" * 60,) * 40)]),
        lambda: build_redirect(LL1, A1, LL2[:8], A2),
    ]
    for call in bad_calls:
        with pytest.raises(ValueError):
            call()


def test_dnssl_trailing_dot_and_padding() -> None:
    # RFC 8106 5.2: names end in a zero octet; the option is zero-padded to 8 bytes.
    message = build_router_advert(LL1, ALL_NODES, dnssl=[Dnssl(60, ("example.org.",))])
    option = bytes.fromhex("1f030000 0000003c 076578616d706c65036f726700 000000")
    assert message[16:] == option
    parsed = parse_message(message)
    assert isinstance(parsed, RouterAdvert) and parsed.dnssl == (Dnssl(60, ("example.org",)),)


def test_builder_zeroes_prefix_bits_beyond_the_length() -> None:
    # RFC 4861 4.6.2: "MUST be initialized to zero by the sender".
    message = build_router_advert(
        LL1, ALL_NODES, prefixes=[PrefixInfo(addr("2001:db8:1:2:3::4"), 48, True, True, 1, 1)]
    )
    assert message[-16:] == addr("2001:db8:1::")


def test_redirected_header_keeps_the_redirect_within_1280_bytes() -> None:
    # RFC 4861 8.2: as much of the forwarded packet as fits the minimum MTU.
    big = REDIRECTED[:40] + bytes(2000)
    message = build_redirect(LL1, A1, LL2, addr("2001:db8:1::5"), MAC2, big)
    assert 40 + len(message) <= 1280 and 40 + len(message) > 1280 - 8
    parsed = parse_message(message)
    assert parsed == Redirect(LL2, addr("2001:db8:1::5"), MAC2)
    _, body = parse(message)
    options = dict((t, bytes(v)) for t, v in iter_options(body[32:]))
    assert options[4][6:46] == REDIRECTED[:40]
    odd = build_redirect(LL1, A1, A2, A2, None, b"x" * 13)  # padded to 16 bytes of data
    assert len(odd) == 8 + 32 + 8 + 16 and odd[-3:] == bytes(3)
    assert checksum_ok(odd, LL1, A1)


# -- hypothesis ------------------------------------------------------------------------------

addresses = st.binary(min_size=16, max_size=16)
unicast = addresses.filter(lambda a: a[0] != 0xFF)
macs = st.binary(min_size=6, max_size=6)
u32 = st.integers(0, 0xFFFFFFFF)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
domains = st.lists(labels, min_size=1, max_size=5).map(".".join)


@SETTINGS
@given(
    src=addresses,
    dst=addresses,
    target=unicast,
    source_mac=st.none() | macs,
    nonce=st.none() | st.integers(0, 4).flatmap(lambda n: st.binary(min_size=6 + 8 * n,
                                                                    max_size=6 + 8 * n)),
)  # fmt: skip
def test_neighbor_solicit_round_trips(
    src: bytes, dst: bytes, target: bytes, source_mac: bytes | None, nonce: bytes | None
) -> None:
    message = build_neighbor_solicit(src, dst, target, source_mac, nonce)
    assert checksum_ok(message, src, dst)
    assert parse_message(message) == NeighborSolicit(target, source_mac, nonce)


@SETTINGS
@given(
    src=addresses,
    dst=addresses,
    target=unicast,
    target_mac=st.none() | macs,
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_neighbor_advert_round_trips(
    src: bytes,
    dst: bytes,
    target: bytes,
    target_mac: bytes | None,
    flags: tuple[bool, bool, bool],
) -> None:
    router, solicited, override = flags
    message = build_neighbor_advert(
        src, dst, target, target_mac, router=router, solicited=solicited, override=override
    )
    assert checksum_ok(message, src, dst)
    assert parse_message(message) == NeighborAdvert(router, solicited, override, target, target_mac)


@SETTINGS
@given(src=addresses, dst=addresses, source_mac=st.none() | macs)
def test_router_solicit_round_trips(src: bytes, dst: bytes, source_mac: bytes | None) -> None:
    message = build_router_solicit(src, dst, source_mac)
    assert checksum_ok(message, src, dst)
    assert parse_message(message) == RouterSolicit(source_mac)


def _masked(prefix: bytes, length: int) -> bytes:
    keep = ((1 << length) - 1) << (128 - length)
    return (int.from_bytes(prefix, "big") & keep).to_bytes(16, "big")


prefix_infos = st.builds(
    PrefixInfo, addresses, st.integers(0, 128), st.booleans(), st.booleans(), u32, u32
)


@SETTINGS
@given(
    src=addresses,
    dst=addresses,
    hop=st.integers(0, 255),
    managed=st.booleans(),
    other=st.booleans(),
    lifetime=st.integers(0, 0xFFFF),
    reachable=u32,
    retrans=u32,
    source_mac=st.none() | macs,
    mtu=st.none() | u32,
    prefixes=st.lists(prefix_infos, max_size=3),
    rdnss=st.lists(st.builds(Rdnss, u32, st.lists(addresses, min_size=1, max_size=4).map(tuple)),
                   max_size=2),
    dnssl=st.lists(st.builds(Dnssl, u32, st.lists(domains, min_size=1, max_size=4).map(tuple)),
                   max_size=2),
)  # fmt: skip
def test_router_advert_round_trips(
    src: bytes,
    dst: bytes,
    hop: int,
    managed: bool,
    other: bool,
    lifetime: int,
    reachable: int,
    retrans: int,
    source_mac: bytes | None,
    mtu: int | None,
    prefixes: list[PrefixInfo],
    rdnss: list[Rdnss],
    dnssl: list[Dnssl],
) -> None:
    message = build_router_advert(
        src, dst, cur_hop_limit=hop, managed=managed, other=other, router_lifetime=lifetime,
        reachable_time=reachable, retrans_timer=retrans, source_mac=source_mac, mtu=mtu,
        prefixes=prefixes, rdnss=rdnss, dnssl=dnssl,
    )  # fmt: skip
    assert checksum_ok(message, src, dst)
    assert len(message) % 8 == 0  # every option is whole 8-byte units
    expected = RouterAdvert(
        hop, managed, other, lifetime, reachable, retrans, source_mac, mtu,
        tuple(p._replace(prefix=_masked(p.prefix, p.prefix_len)) for p in prefixes),
        tuple(rdnss), tuple(dnssl),
    )  # fmt: skip
    assert parse_message(message) == expected


@SETTINGS
@given(
    src=addresses,
    dst=addresses,
    destination=unicast,
    router=st.booleans(),
    target_mac=st.none() | macs,
    redirected=st.binary(max_size=1400),
)
def test_redirect_round_trips(
    src: bytes,
    dst: bytes,
    destination: bytes,
    router: bool,
    target_mac: bytes | None,
    redirected: bytes,
) -> None:
    target = LL2 if router else destination
    message = build_redirect(src, dst, target, destination, target_mac, redirected)
    assert checksum_ok(message, src, dst)
    assert 40 + len(message) <= 1280
    assert parse_message(message) == Redirect(target, destination, target_mac)


@SETTINGS
@given(
    type_=st.sampled_from(NDP_TYPES),
    code=st.sampled_from([0, 0, 0, 1]),
    rest=u32,
    body=st.binary(max_size=120),
)
def test_garbage_parses_or_raises_parse_error(
    type_: int, code: int, rest: int, body: bytes
) -> None:
    header = Icmp6Header(type_, code, 0, rest)
    try:
        message = PARSERS[type_](header, body)
    except ParseError as exc:
        assert exc.reason in REASONS
        assert SNAKE_CASE.match(exc.reason)
        return
    for hop_limit in (255, 1):
        reason = validate_ip(type_, hop_limit, A1, ALL_NODES, message)
        assert reason is None or SNAKE_CASE.match(reason)


@SETTINGS
@given(
    type_=st.sampled_from(NDP_TYPES),
    options=st.lists(
        st.tuples(st.sampled_from([1, 2, 3, 4, 5, 14, 24, 25, 31, 200]), st.binary(max_size=40)),
        max_size=6,
    ),
)
def test_garbage_options_parse_or_raise_parse_error(
    type_: int, options: list[tuple[int, bytes]]
) -> None:
    # Options of the known types with arbitrary contents, in whole 8-byte units.
    data = b"".join(
        bytes([t, (len(v) + 2 + 7) // 8]) + v.ljust((len(v) + 2 + 7) // 8 * 8 - 2, b"\x00")
        for t, v in options
    )
    try:
        parse_message(minimal(type_) + data)
    except ParseError as exc:
        assert exc.reason in REASONS


@SETTINGS
@given(data=st.binary(max_size=64))
def test_iter_options_on_garbage(data: bytes) -> None:
    try:
        options = list(iter_options(data))
    except ParseError as exc:
        assert exc.reason == "bad_option_length"
        return
    assert sum(len(v) + 2 for _, v in options) == len(data)
