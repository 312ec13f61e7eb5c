"""Tests of netstack.proto.checksum: the Internet checksum (RFC 1071) and the pseudo-headers.

Every function is compared with a deliberately plain reference: RFC 1071 section 4.1's loop
over 16-bit big-endian words, an odd last byte padded with a zero on the right, every carry
folded back in ("end-around carry"). The reference keeps the ones'-complement distinction
between +0 (0x0000, only for all-zero input) and -0 (0xFFFF, any non-zero sum that is a
multiple of 0xFFFF), so the tests also pin down which of the two the library returns.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netstack.proto.checksum import (
    checksum,
    checksum_pseudo,
    mod_ffff,
    ones_sum,
    pseudo_header_sum,
    pseudo_header_sum6,
    verify,
    verify_pseudo,
)

# -- the reference ---------------------------------------------------------------------------


def ref_sum(data: bytes, initial: int = 0) -> int:
    """The RFC 1071 ones'-complement sum of ``data`` plus ``initial``, in 0..0xFFFF."""
    total = initial
    padded = bytes(data) + b"\x00" if len(data) % 2 else bytes(data)
    for i in range(0, len(padded), 2):
        total += (padded[i] << 8) | padded[i + 1]
        while total > 0xFFFF:
            total = (total & 0xFFFF) + (total >> 16)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ref_checksum(data: bytes, initial: int = 0) -> int:
    """The complement of the reference sum, as a 16-bit field value."""
    return ~ref_sum(data, initial) & 0xFFFF


def ref_verify(data: bytes, initial: int = 0) -> bool:
    """A message with its checksum in place sums to all ones (-0)."""
    return ref_sum(data, initial) == 0xFFFF


def swap16(data: bytes) -> bytes:
    """Swap the two bytes of every 16-bit word (``data`` has even length)."""
    out = bytearray(data)
    out[0::2], out[1::2] = data[1::2], data[0::2]
    return bytes(out)


# Data biased towards the corners of ones'-complement arithmetic: empty, all zeros (+0),
# all ones (-0), and runs that carry on every addition.
data_strategy = st.one_of(
    st.binary(max_size=300),
    st.integers(0, 64).map(lambda n: b"\x00" * n),
    st.integers(0, 64).map(lambda n: b"\xff" * n),
    st.lists(st.sampled_from([b"\x00", b"\xff", b"\x80", b"\x01", b"\xfe"]), max_size=64).map(
        b"".join
    ),
)
initial_strategy = st.one_of(
    st.just(0),
    st.integers(0, 0xFFFF),
    st.sampled_from([0xFFFF, 0x10000, 0x1FFFE, 0xFFFF * 3]),
    st.integers(0, 2**40),
)
buffer_kind = st.sampled_from([bytes, bytearray, memoryview])

SETTINGS = settings(max_examples=400, deadline=None)


# -- against the reference -------------------------------------------------------------------


@SETTINGS
@given(data=data_strategy, initial=initial_strategy, kind=buffer_kind)
@example(data=b"", initial=0, kind=bytes)
@example(data=b"\xff\xff", initial=0, kind=bytes)
@example(data=b"\x00\x00", initial=0xFFFF, kind=bytes)
def test_ones_sum_matches_reference(data: bytes, initial: int, kind: type) -> None:
    got = ones_sum(kind(data), initial)
    # ones_sum reduces modulo 0xFFFF, so -0 (0xFFFF) comes back as 0.
    assert 0 <= got <= 0xFFFE
    assert got == ref_sum(data, initial) % 0xFFFF


@SETTINGS
@given(data=data_strategy, initial=initial_strategy, kind=buffer_kind)
@example(data=b"", initial=0, kind=bytes)
@example(data=b"\xff\xff", initial=0, kind=bytes)
@example(data=b"\x00\x00", initial=0xFFFF, kind=bytes)
@example(data=b"\xff", initial=0xFF, kind=bytes)
def test_checksum_matches_reference(data: bytes, initial: int, kind: type) -> None:
    assert checksum(kind(data), initial) == ref_checksum(data, initial)


@SETTINGS
@given(data=data_strategy, initial=initial_strategy, kind=buffer_kind)
@example(data=b"", initial=0, kind=bytes)
@example(data=b"\xff\xff", initial=0, kind=bytes)
@example(data=b"\x00\x00", initial=0, kind=bytes)
@example(data=b"", initial=0xFFFF, kind=bytes)
def test_verify_matches_reference(data: bytes, initial: int, kind: type) -> None:
    assert verify(kind(data), initial) is ref_verify(data, initial)


@SETTINGS
@given(
    prefix=st.binary(max_size=100).map(lambda b: b[: len(b) & ~1]),
    suffix=data_strategy,
    initial=initial_strategy,
)
def test_a_stored_checksum_verifies(prefix: bytes, suffix: bytes, initial: int) -> None:
    # The checksum field sits at an even offset, as it does in every header that has one.
    value = checksum(prefix + b"\x00\x00" + suffix, initial)
    assert verify(prefix + struct.pack("!H", value) + suffix, initial)


@SETTINGS
@given(data=data_strategy, initial=initial_strategy)
def test_odd_length_is_padded_with_a_zero_on_the_right(data: bytes, initial: int) -> None:
    if len(data) % 2 == 0:
        data += b"\x5a"
    # RFC 1071 4.1: "Add left-over byte, if any" as the high half of a word.
    assert checksum(data, initial) == checksum(data + b"\x00", initial)
    assert ones_sum(data, initial) == ones_sum(data + b"\x00", initial)
    assert verify(data, initial) is verify(data + b"\x00", initial)


@SETTINGS
@given(data=st.binary(max_size=200).map(lambda b: b[: len(b) & ~1]))
def test_sum_is_byte_order_independent(data: bytes) -> None:
    # RFC 1071 2.(B): summing byte-swapped words gives the byte-swapped sum.
    total = ones_sum(data)
    swapped_total = ((total & 0xFF) << 8) | (total >> 8)
    assert ones_sum(swap16(data)) == swapped_total % 0xFFFF


@SETTINGS
@given(
    first=st.binary(max_size=150).map(lambda b: b[: len(b) & ~1]),
    second=data_strategy,
    initial=initial_strategy,
)
def test_sums_of_parts_add_up(first: bytes, second: bytes, initial: int) -> None:
    # RFC 1071 2.(C): the sum is associative, so a message can be summed in pieces (this is
    # how the pseudo-header sum is fed in as ``initial``).
    whole = first + second
    partial = ones_sum(first, initial)
    assert ones_sum(whole, initial) == ones_sum(second, partial)
    # ones_sum folds -0 to +0, so the checksums agree up to the two zeros (0x0000, 0xFFFF).
    assert checksum(whole, initial) % 0xFFFF == checksum(second, partial) % 0xFFFF


# -- the RFC 1071 example and special values -------------------------------------------------

# RFC 1071 section 3, "Numerical Examples": the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 in
# normal order (2ddf0 with the carry 2 added back) and to f2dd in swapped order.
RFC1071_EXAMPLE = bytes.fromhex("0001f203f4f5f6f7")


def test_rfc1071_numerical_example() -> None:
    assert ref_sum(RFC1071_EXAMPLE) == 0xDDF2
    assert ones_sum(RFC1071_EXAMPLE) == 0xDDF2
    assert ones_sum(swap16(RFC1071_EXAMPLE)) == 0xF2DD
    assert checksum(RFC1071_EXAMPLE) == 0x220D  # ~0xddf2
    assert verify(RFC1071_EXAMPLE + bytes.fromhex("220d"))
    assert not verify(RFC1071_EXAMPLE + bytes.fromhex("220c"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xFFFF),  # +0 complemented
        (b"\x00", 0xFFFF),
        (b"\x00\x00\x00\x00", 0xFFFF),
        (b"\xff\xff", 0x0000),  # -0 complemented
        (b"\xff\xff\xff\xff", 0x0000),
        (b"\x00\x01", 0xFFFE),
        (b"\xff\xfe\x00\x01", 0x0000),  # 0xfffe + 1 = 0xffff (-0)
        (b"\x80\x00\x80\x00", 0xFFFE),  # 0x10000 folds to 1
        (b"\x01", 0xFEFF),  # odd byte is the high half of a word
    ],
)
def test_checksum_special_values(data: bytes, expected: int) -> None:
    assert ref_checksum(data) == expected
    assert checksum(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", False),  # +0 is not all ones
        (b"\x00\x00", False),
        (b"\xff\xff", True),
        (b"\x00\x00\xff\xff", True),
        (b"\xff\xfe\x00\x01", True),
        (b"\xff", False),  # 0xff00
    ],
)
def test_verify_special_values(data: bytes, expected: bool) -> None:
    assert ref_verify(data) is expected
    assert verify(data) is expected


# -- known packets ---------------------------------------------------------------------------

# The IPv4 header of frame 2 of tcpdump's tests/dhcp-rfc4388.pcap (an echo request from
# 10.40.2.3 to 10.30.4.4); tshark reports "Header Checksum: 0xbecc [correct]".
IPV4_ECHO_HEADER = bytes.fromhex("4500003061b440004001becc0a2802030a1e0404")
# The IPv4 header that textbooks use as the checksum example (192.168.0.1 -> 192.168.0.199,
# UDP, total length 0x73, checksum 0xb861), here with its checksum field zeroed; a pcap holding
# it with 0xb861 filled in decodes in tshark as "Header Checksum: 0xb861 [correct]".
IPV4_TEXTBOOK_HEADER = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
# Frame 1 of tcpdump's tests/dns_udp.pcap: a DNS query 192.168.1.11:43966 -> 209.87.249.18:53,
# "Checksum: 0x7824 [correct]" in tshark with UDP checksum validation on.
DNS_QUERY_IP = bytes.fromhex(
    "45000054"
    "59cd0000401194aec0a8010bd157f912"
    "abbe003500407824593401200001"
    "00000000000103777777077463706475"
    "6d70036f726700000100010000291000"
    "00000000000c000a000842f5d00996f9"
    "0b13"
)
# Frame 2 of tests/dhcp-rfc4388.pcap from the IPv4 payload on: an ICMP echo request with
# 20 zero bytes of data, "Checksum: 0xb7db [correct]".
ICMP_ECHO = bytes.fromhex("0800b7db40240000") + bytes(20)


def _with_field(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("!H", value) + data[offset + 2 :]


def test_known_ipv4_header_checksum() -> None:
    assert verify(IPV4_ECHO_HEADER)
    assert checksum(_with_field(IPV4_ECHO_HEADER, 10, 0)) == 0xBECC
    assert checksum(IPV4_TEXTBOOK_HEADER) == 0xB861
    assert verify(_with_field(IPV4_TEXTBOOK_HEADER, 10, 0xB861))
    assert not verify(_with_field(IPV4_TEXTBOOK_HEADER, 10, 0xB862))


def test_known_udp_checksum_with_pseudo_header() -> None:
    src, dst = DNS_QUERY_IP[12:16], DNS_QUERY_IP[16:20]
    datagram = DNS_QUERY_IP[20:]
    assert len(datagram) == 64
    initial = pseudo_header_sum(src, dst, 17, len(datagram))
    assert verify(datagram, initial)
    assert checksum(_with_field(datagram, 6, 0), initial) == 0x7824
    assert not verify(datagram, pseudo_header_sum(src, dst, 17, len(datagram) + 2))


def test_known_icmp_checksum() -> None:
    assert verify(ICMP_ECHO)
    assert checksum(_with_field(ICMP_ECHO, 2, 0)) == 0xB7DB


# -- pseudo-headers --------------------------------------------------------------------------


@SETTINGS
@given(
    src=st.binary(min_size=4, max_size=4),
    dst=st.binary(min_size=4, max_size=4),
    proto=st.integers(0, 255),
    # A real pseudo-header's length counts at least the transport header, so it is never 0.
    length=st.integers(1, 0xFFFF),
    segment=data_strategy,
)
@example(src=b"\xff\xff\x00\x00", dst=b"\x00" * 4, proto=0, length=8, segment=b"")
@example(src=b"\xff" * 4, dst=b"\xff" * 4, proto=17, length=8, segment=b"\x00" * 8)
def test_pseudo_header_sum_matches_reference(
    src: bytes, dst: bytes, proto: int, length: int, segment: bytes
) -> None:
    # RFC 768: source, destination, a zero byte, the protocol, the UDP length.
    pseudo = src + dst + struct.pack("!BBH", 0, proto, length)
    got = pseudo_header_sum(src, dst, proto, length)
    assert got % 0xFFFF == ref_sum(pseudo) % 0xFFFF
    assert checksum(segment, got) == ref_checksum(pseudo + segment)
    assert verify(segment, got) is ref_verify(pseudo + segment)


@SETTINGS
@given(
    src=st.binary(min_size=16, max_size=16),
    dst=st.binary(min_size=16, max_size=16),
    next_header=st.integers(0, 255),
    length=st.integers(1, 2**32 - 1),
    segment=data_strategy,
)
@example(src=bytes(16), dst=bytes(16), next_header=58, length=0x10000, segment=b"")
def test_pseudo_header_sum6_matches_reference(
    src: bytes, dst: bytes, next_header: int, length: int, segment: bytes
) -> None:
    # RFC 8200 8.1: source, destination, a 32-bit length, three zero bytes, next header.
    pseudo = src + dst + struct.pack("!I3xB", length, next_header)
    got = pseudo_header_sum6(src, dst, next_header, length)
    assert got % 0xFFFF == ref_sum(pseudo) % 0xFFFF
    assert checksum(segment, got) == ref_checksum(pseudo + segment)
    assert verify(segment, got) is ref_verify(pseudo + segment)


@SETTINGS
@given(data=st.one_of(st.binary(max_size=300), st.binary(min_size=200, max_size=70_000)))
@example(data=b"\xff" * 65535)
@example(data=b"\xff" * 241)  # the first size folded
def test_mod_ffff_is_the_remainder(data: bytes) -> None:
    """The folding remainder of packet-sized integers, jumbo frames and 64 KiB ones."""
    for value in (int.from_bytes(data, "little"), int.from_bytes(data, "big")):
        assert mod_ffff(value) == value % 0xFFFF


# -- checksum and verify with the pseudo-header in one call -----------------------------------
@SETTINGS
@given(
    data=data_strategy,
    family=st.sampled_from([4, 16]),
    addresses=st.binary(min_size=32, max_size=32),
    proto=st.sampled_from([6, 17, 58]),
    kind=buffer_kind,
)
@example(data=b"", family=4, addresses=bytes(32), proto=17, kind=bytes)
@example(data=b"\xff\xff", family=16, addresses=b"\xff" * 32, proto=17, kind=bytes)
def test_pseudo_header_in_one_call_matches_the_two_calls(
    data: bytes, family: int, addresses: bytes, proto: int, kind: type
) -> None:
    src, dst = addresses[:family], addresses[16 : 16 + family]
    if family == 4:
        initial = pseudo_header_sum(src, dst, proto, len(data))
    else:
        initial = pseudo_header_sum6(src, dst, proto, len(data))
    assert checksum_pseudo(kind(data), src, dst, proto) == checksum(data, initial)
    assert verify_pseudo(kind(data), src, dst, proto) is verify(data, initial)
    assert checksum_pseudo(kind(data), src, dst, proto) == ref_checksum(data, initial)
