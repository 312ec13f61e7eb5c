"""Tests of netstack.proto.dhcp.wire: DHCP messages (RFC 2131 2), options (RFC 2132), long and
overloaded options (RFC 3396, RFC 2132 9.3), classless static routes (RFC 3442) and client
identifiers (RFC 4361).

The fixed messages are assembled by hand from RFC 2131's figure 1, field by field, with the
option bytes of RFC 2132; each is parsed and emitted back byte for byte.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.dhcp.wire import (
    BOOTP_MIN_LEN,
    MAGIC_COOKIE,
    DhcpMessage,
    MessageType,
    OptionCode,
    build,
    client_id,
    decode_classless_routes,
    decode_ip,
    decode_ips,
    decode_text,
    decode_u16,
    decode_u32,
    duid_ll,
    encode_classless_routes,
    encode_ips,
    encode_u16,
    encode_u32,
    mask_to_prefix,
    parse,
    prefix_to_mask,
)

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
REASONS = {
    "truncated",
    "bad_hlen",
    "bad_magic_cookie",
    "truncated_option",
    "bad_overload",
    "bad_message_type",
}
MAC = bytes.fromhex("00053c0497b2")


def ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def fixed(
    op: int,
    xid: str,
    flags: str,
    *,
    ciaddr: str = "00000000",
    yiaddr: str = "00000000",
    giaddr: str = "00000000",
    sname: bytes = b"",
    file: bytes = b"",
) -> bytes:
    """The 236 bytes before the cookie, written out in RFC 2131 figure 1's order."""
    return (
        bytes([op, 1, 6, 0])  # op, htype Ethernet, hlen 6, hops 0
        + bytes.fromhex(xid)
        + bytes.fromhex("0000" + flags)  # secs 0, flags
        + bytes.fromhex(ciaddr + yiaddr + "00000000" + giaddr)  # ciaddr yiaddr siaddr giaddr
        + MAC
        + bytes(10)  # chaddr is 16 bytes
        + sname.ljust(64, b"\x00")
        + file.ljust(128, b"\x00")
    )


# A DHCPDISCOVER: broadcast flag, options Message Type (53) DISCOVER, Client Identifier (61)
# type 1 + MAC, Requested IP Address (50) 192.168.1.100, Parameter Request List (55)
# 1 3 15 6, End; padded to 300 bytes.
DISCOVER_OPTIONS = bytes.fromhex(
    "350101" "3d070100053c0497b2" "3204c0a80164" "370401030f06" "ff"
)  # fmt: skip
DISCOVER = fixed(1, "3903f326", "8000") + MAGIC_COOKIE + DISCOVER_OPTIONS
DISCOVER = DISCOVER + bytes(BOOTP_MIN_LEN - len(DISCOVER))

# A DHCPACK, unicast: yiaddr 192.168.1.100, options 53 ACK, 54 192.168.1.1, 51 86400 s,
# 1 255.255.255.0, 3 192.168.1.1, 6 192.168.1.1 and 9.9.9.9, 15 "example.org", End.
ACK_OPTIONS = bytes.fromhex(
    "350105" "3604c0a80101" "330400015180" "0104ffffff00" "0304c0a80101"
    "0608c0a8010109090909" "0f0b" + b"example.org".hex() + "ff"
)  # fmt: skip
ACK = fixed(2, "3903f326", "0000", yiaddr="c0a80164") + MAGIC_COOKIE + ACK_OPTIONS
ACK = ACK + bytes(BOOTP_MIN_LEN - len(ACK))


def test_discover_parses() -> None:
    assert len(DISCOVER) == 300
    msg = parse(DISCOVER)
    assert msg.op == 1 and msg.htype == 1 and msg.hlen == 6 and msg.hops == 0
    assert msg.xid == 0x3903F326
    assert msg.broadcast and msg.flags == 0x8000
    assert msg.chaddr == MAC
    assert msg.ciaddr == msg.yiaddr == msg.siaddr == msg.giaddr == bytes(4)
    assert msg.sname == b"" and msg.file == b""
    assert msg.message_type == MessageType.DISCOVER
    assert list(msg.options) == [53, 61, 50, 55]
    assert msg.options[OptionCode.CLIENT_ID] == b"\x01" + MAC
    assert decode_ip(msg.options[OptionCode.REQUESTED_ADDRESS]) == ip("192.168.1.100")
    assert msg.options[OptionCode.PARAMETER_REQUEST_LIST] == bytes([1, 3, 15, 6])


def test_discover_emits_back() -> None:
    assert build(parse(DISCOVER)) == DISCOVER


def test_discover_built_from_fields() -> None:
    msg = DhcpMessage(
        op=1,
        xid=0x3903F326,
        chaddr=MAC,
        flags=0x8000,
        options={
            53: bytes([MessageType.DISCOVER]),
            61: b"\x01" + MAC,
            50: ip("192.168.1.100"),
            55: bytes([1, 3, 15, 6]),
        },
    )
    assert build(msg) == DISCOVER


def test_ack_parses_and_emits() -> None:
    msg = parse(ACK)
    assert msg.op == 2 and not msg.broadcast
    assert msg.message_type == MessageType.ACK
    assert msg.yiaddr == ip("192.168.1.100")
    assert decode_u32(msg.options[OptionCode.LEASE_TIME]) == 86400
    assert mask_to_prefix(msg.options[OptionCode.SUBNET_MASK]) == 24
    assert decode_ips(msg.options[OptionCode.DNS_SERVERS]) == [ip("192.168.1.1"), ip("9.9.9.9")]
    assert decode_text(msg.options[OptionCode.DOMAIN_NAME]) == "example.org"
    assert build(msg) == ACK


def test_message_type_is_emitted_first() -> None:
    msg = DhcpMessage(options={54: ip("10.0.0.1"), 53: b"\x02"})
    data = build(msg)
    assert data[240:243] == b"\x35\x01\x02"
    assert data[243:249] == b"\x36\x04" + ip("10.0.0.1")


def test_pad_options_are_skipped() -> None:
    padded = fixed(1, "00000001", "0000") + MAGIC_COOKIE + bytes.fromhex("00 00 350103 00 ff")
    msg = parse(padded)
    assert msg.options == {53: b"\x03"}


def test_options_may_end_without_end() -> None:
    # A message that stops right after its last option is still understood.
    data = fixed(1, "00000001", "0000") + MAGIC_COOKIE + bytes.fromhex("350101")
    assert parse(data).options == {53: b"\x01"}


def test_sname_and_file_keep_their_text() -> None:
    data = fixed(2, "00000001", "0000", sname=b"boot-server", file=b"pxelinux.0")
    msg = parse(data + MAGIC_COOKIE + b"\xff")
    assert msg.sname == b"boot-server" and msg.file == b"pxelinux.0"
    assert build(msg)[:236] == data


# -- RFC 3396: long and split options; option overload (RFC 2132 9.3) ---------------------------


def test_long_option_is_split_and_joined() -> None:
    value = bytes(range(256)) + bytes(range(44))  # 300 bytes
    data = build(DhcpMessage(options={53: b"\x01", 43: value}))
    # RFC 3396 6: consecutive instances of at most 255 bytes.
    at = 243
    assert data[at : at + 2] == b"\x2b\xff" and data[at + 2 : at + 257] == value[:255]
    assert data[at + 257 : at + 259] == b"\x2b\x2d" and data[at + 259 : at + 304] == value[255:]
    assert parse(data).options[43] == value


def test_repeated_options_are_concatenated_in_order() -> None:
    options = bytes.fromhex("3501050304c0a801010f036578610304c0a801020f026d70 ff")
    msg = parse(fixed(2, "00000001", "0000") + MAGIC_COOKIE + options)
    assert decode_ips(msg.options[3]) == [ip("192.168.1.1"), ip("192.168.1.2")]
    assert msg.options[15] == b"examp"


@pytest.mark.parametrize(
    ("overload", "expect"),
    [(1, ["192.168.1.1", "192.168.1.2"]), (2, ["192.168.1.1", "192.168.1.3"]),
     (3, ["192.168.1.1", "192.168.1.2", "192.168.1.3"])],
)  # fmt: skip
def test_overloaded_fields_hold_options(overload: int, expect: list[str]) -> None:
    # RFC 3396 5: options field first, then file, then sname.
    file_opts = bytes.fromhex("0304c0a80102330400000e10ff")
    sname_opts = bytes.fromhex("0304c0a80103ff")
    head = fixed(2, "00000001", "0000", sname=sname_opts, file=file_opts)
    options = bytes.fromhex(f"350102 3401{overload:02x} 0304c0a80101 ff")
    msg = parse(head + MAGIC_COOKIE + options)
    assert [str(ipaddress.IPv4Address(a)) for a in decode_ips(msg.options[3])] == expect
    assert OptionCode.OVERLOAD not in msg.options
    assert (51 in msg.options) == bool(overload & 1)
    assert msg.file == (b"" if overload & 1 else file_opts.rstrip(b"\x00"))
    assert msg.sname == (b"" if overload & 2 else sname_opts)


@pytest.mark.parametrize("value", ["00", "04", "0102"])
def test_bad_overload_is_refused(value: str) -> None:
    options = bytes.fromhex(f"350102 34{len(value) // 2:02x}{value} ff")
    with pytest.raises(ParseError) as info:
        parse(fixed(2, "00000001", "0000") + MAGIC_COOKIE + options)
    assert info.value.reason == "bad_overload"


# -- malformed messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated"),
        (DISCOVER[:239], "truncated"),
        (DISCOVER[:236] + b"\x63\x82\x53\x64" + DISCOVER[240:], "bad_magic_cookie"),
        (DISCOVER[:2] + b"\x11" + DISCOVER[3:], "bad_hlen"),
        (DISCOVER[:240] + bytes.fromhex("350101 3d"), "truncated_option"),
        (DISCOVER[:240] + bytes.fromhex("350101 3d0501020304"), "truncated_option"),
        (DISCOVER[:240] + bytes.fromhex("35020101 ff"), "bad_message_type"),
    ],
)
def test_malformed_messages(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(data)
    assert info.value.reason == reason


def test_build_refuses_bad_fields() -> None:
    with pytest.raises(ValueError):
        build(DhcpMessage(sname=b"x" * 65))
    with pytest.raises(ValueError):
        build(DhcpMessage(options={255: b"x"}))
    with pytest.raises(ValueError):
        build(DhcpMessage(xid=1 << 32))
    with pytest.raises(ValueError):
        build(DhcpMessage(ciaddr=b"\x01"))


# -- option values -----------------------------------------------------------------------------

# RFC 3442's table of destination descriptors.
RFC3442_DESCRIPTORS = [
    ("0.0.0.0", 0, "00"),
    ("10.0.0.0", 8, "080a"),
    ("10.0.0.0", 24, "180a0000"),
    ("10.17.0.0", 16, "100a11"),
    ("10.27.129.0", 24, "180a1b81"),
    ("10.229.0.128", 25, "190ae50080"),
    ("10.198.122.47", 32, "200ac67a2f"),
]


@pytest.mark.parametrize(("network", "width", "descriptor"), RFC3442_DESCRIPTORS)
def test_rfc3442_descriptors(network: str, width: int, descriptor: str) -> None:
    router = ip("192.168.1.1")
    value = bytes.fromhex(descriptor) + router
    assert decode_classless_routes(value) == [(ip(network), width, router)]
    assert encode_classless_routes([(ip(network), width, router)]) == value


def test_classless_routes_list() -> None:
    value = bytes.fromhex("00 c0a80101180a0000 c0a80102")
    assert decode_classless_routes(value) == [
        (ip("0.0.0.0"), 0, ip("192.168.1.1")),
        (ip("10.0.0.0"), 24, ip("192.168.1.2")),
    ]


def test_classless_route_host_bits_are_cleared() -> None:
    # 10.17.255.255/16 is sent as its significant octets, 10.17: nothing else survives.
    [(dest, width, _)] = decode_classless_routes(bytes.fromhex("0c0a11 01020304"))
    assert (dest, width) == (ip("10.16.0.0"), 12)


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "truncated_route"), ("00c0a801", "truncated_route"),
     ("21 0a000000 00 c0a80101", "bad_route_width"), ("00c0a80101 18", "truncated_route")],
)  # fmt: skip
def test_bad_classless_routes(value: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        decode_classless_routes(bytes.fromhex(value))
    assert info.value.reason == reason


def test_address_lists() -> None:
    assert decode_ips(encode_ips([ip("1.2.3.4"), ip("5.6.7.8")])) == [ip("1.2.3.4"), ip("5.6.7.8")]
    for bad in (b"", b"\x01\x02\x03", b"\x01" * 5):
        with pytest.raises(ParseError):
            decode_ips(bad)
    with pytest.raises(ParseError):
        decode_ip(b"\x01\x02")


def test_integers() -> None:
    assert decode_u32(encode_u32(86400)) == 86400
    assert decode_u16(encode_u16(1500)) == 1500
    for fn, n in ((decode_u32, 3), (decode_u16, 3)):
        with pytest.raises(ParseError):
            fn(bytes(n))


@pytest.mark.parametrize("prefix", [0, 1, 8, 23, 24, 31, 32])
def test_masks(prefix: int) -> None:
    assert mask_to_prefix(prefix_to_mask(prefix)) == prefix


def test_non_contiguous_mask_is_refused() -> None:
    with pytest.raises(ParseError) as info:
        mask_to_prefix(ip("255.0.255.0"))
    assert info.value.reason == "bad_subnet_mask"


def test_text_drops_a_trailing_nul() -> None:
    assert decode_text(b"example.org\x00") == "example.org"
    assert decode_text(b"caf\xe9") == "caf\ufffd"


def test_rfc4361_client_identifier() -> None:
    # RFC 4361 6.1: type 255, a 4-byte IAID, then the DUID (here a DUID-LL, RFC 8415 11.4).
    cid = client_id(0x0497B2, duid_ll(MAC))
    assert cid == bytes.fromhex("ff 000497b2 0003 0001 00053c0497b2")
    with pytest.raises(ValueError):
        client_id(1 << 32, b"")


# -- properties ----------------------------------------------------------------------------

addresses = st.binary(min_size=4, max_size=4)
option_codes = st.integers(1, 254).filter(lambda c: c not in (52, 53))


@st.composite
def messages(draw: st.DrawFn) -> DhcpMessage:
    hlen = draw(st.integers(0, 16))
    options = draw(st.dictionaries(option_codes, st.binary(max_size=600), max_size=8))
    if draw(st.booleans()):
        options = {53: bytes([draw(st.integers(0, 255))]), **options}
    return DhcpMessage(
        op=draw(st.integers(0, 255)),
        xid=draw(st.integers(0, 2**32 - 1)),
        chaddr=draw(st.binary(min_size=hlen, max_size=hlen)),
        options=options,
        htype=draw(st.integers(0, 255)),
        hlen=hlen,
        hops=draw(st.integers(0, 255)),
        secs=draw(st.integers(0, 65535)),
        flags=draw(st.integers(0, 65535)),
        ciaddr=draw(addresses),
        yiaddr=draw(addresses),
        siaddr=draw(addresses),
        giaddr=draw(addresses),
        sname=draw(st.binary(max_size=64)).rstrip(b"\x00"),
        file=draw(st.binary(max_size=128)).rstrip(b"\x00"),
    )


@SETTINGS
@given(messages())
def test_build_parse_round_trip(msg: DhcpMessage) -> None:
    data = build(msg)
    assert len(data) >= BOOTP_MIN_LEN
    again = parse(data)
    assert again == msg
    assert build(again) == data


@SETTINGS
@given(st.lists(st.tuples(addresses, st.integers(0, 32), addresses), min_size=1, max_size=8))
def test_classless_routes_round_trip(routes: list[tuple[bytes, int, bytes]]) -> None:
    def masked(dest: bytes, width: int) -> bytes:
        return (
            int.from_bytes(dest, "big") & int.from_bytes(prefix_to_mask(width), "big")
        ).to_bytes(4, "big")

    value = encode_classless_routes(routes)
    assert decode_classless_routes(value) == [(masked(d, w), w, r) for d, w, r in routes]


def _only_parse_errors(data: bytes) -> None:
    try:
        parse(data)
    except ParseError as exc:
        assert exc.reason in REASONS and SNAKE_CASE.match(exc.reason)


@SETTINGS
@given(st.binary(max_size=600))
def test_garbage_raises_only_parse_error(data: bytes) -> None:
    _only_parse_errors(data)


@SETTINGS
@given(st.binary(max_size=400))
def test_garbage_options_raise_only_parse_error(options: bytes) -> None:
    _only_parse_errors(DISCOVER[:240] + options)


@SETTINGS
@given(st.binary(max_size=64), st.binary(max_size=128), st.integers(0, 255))
def test_garbage_overloaded_fields_raise_only_parse_error(
    sname: bytes, file: bytes, overload: int
) -> None:
    head = fixed(2, "00000001", "0000", sname=sname, file=file)
    _only_parse_errors(head + MAGIC_COOKIE + bytes([52, 1, overload, 255]))


@SETTINGS
@given(st.binary(max_size=300))
def test_option_decoders_raise_only_parse_error(value: bytes) -> None:
    for decode in (decode_ip, decode_ips, decode_u16, decode_u32, mask_to_prefix,
                   decode_classless_routes, decode_text):  # fmt: skip
        try:
            decode(value)
        except ParseError as exc:
            assert SNAKE_CASE.match(exc.reason)
