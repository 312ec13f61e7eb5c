"""Tests of netstack.proto.tcp.wire: TCP headers (RFC 9293 3.1) and their options (MSS,
RFC 9293 3.7.1; window scale and timestamps, RFC 7323; SACK, RFC 2018).

Fixed segments come from the tcpdump project's test captures (the corpus in
shared/pcaps/tcpdump), written out as hex from the first byte of the TCP header to the end of
the IPv4 payload, with the file and frame number; or were built by hand (198.18.0.0/15
addresses, RFC 2544), written to a pcap behind Ethernet and IPv4 headers with
netstack.link.pcap.PcapWriter and decoded by ``tshark -o tcp.check_checksum:TRUE
-o tcp.relative_sequence_numbers:FALSE -V``. The comments give tshark's reading.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import struct
from typing import NamedTuple

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netstack.errors import ParseError
from netstack.proto.tcp.wire import (
    TCP_HEADER_LEN,
    Flags,
    TcpHeader,
    TcpOptions,
    build_into,
    checksum_ok,
    emit_options,
    parse,
    parse_options,
)

SETTINGS = settings(max_examples=300, deadline=None)
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PARSE_REASONS = {"truncated", "bad_data_offset"}
OPTION_REASONS = {"bad_option"}
PROTO_TCP = 6


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
    """RFC 9293 3.1: source address, destination address, zero, protocol 6, TCP length."""
    return src + dst + struct.pack("!BBH", 0, PROTO_TCP, length)


def ref_checksum_holds(segment: bytes, src: bytes, dst: bytes) -> bool:
    return ref_sum(pseudo_header(src, dst, len(segment)) + segment) == 0xFFFF


class Fixed(NamedTuple):
    name: str
    segment: bytes  # from the TCP header to the end of the IPv4 payload
    src: bytes
    dst: bytes
    header: TcpHeader
    options: TcpOptions
    checksum_good: bool  # tshark's verdict on the captured checksum
    correct_checksum: int  # what tshark computes (equal to the field when good)


FIXED = [
    # tests/dns_tcp.pcap frame 1, a Linux SYN: 192.168.1.11:33779 -> 209.87.249.18:53,
    # "Sequence Number: 603899916", "Header Length: 40 bytes (10)", "Flags: 0x002 (SYN)",
    # "Window: 64240", "Checksum: 0x0c41 [correct]"; options "Maximum segment size: 1460
    # bytes", "SACK permitted", "Timestamps: TSval 2044906138, TSecr 0", NOP, "Window scale: 7".
    Fixed(
        "linux_syn",
        bytes.fromhex(
            "83f3003523fec80c00000000a002faf00c410000020405b40402080a79e2ca9a0000000001030307"
        ),
        ip("192.168.1.11"),
        ip("209.87.249.18"),
        TcpHeader(
            src_port=33779,
            dst_port=53,
            seq=603899916,
            ack=0,
            flags=Flags.SYN,
            window=64240,
            checksum=0x0C41,
            options=bytes.fromhex("020405b40402080a79e2ca9a0000000001030307"),
        ),
        TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts_val=2044906138, ts_ecr=0),
        True,
        0x0C41,
    ),
    # tests/dns_tcp.pcap frame 2, the SYN-ACK: 209.87.249.18:53 -> 192.168.1.11:33779,
    # "Sequence Number: 2043824403", "Acknowledgment Number: 603899917", "Header Length: 24
    # bytes (6)", "Flags: 0x012 (SYN, ACK)", "Window: 64240", "Checksum: 0xdded [correct]",
    # "Maximum segment size: 1460 bytes" and nothing else.
    Fixed(
        "mss_only_syn_ack",
        bytes.fromhex("003583f379d2491323fec80d6012faf0dded0000020405b4"),
        ip("209.87.249.18"),
        ip("192.168.1.11"),
        TcpHeader(
            src_port=53,
            dst_port=33779,
            seq=2043824403,
            ack=603899917,
            flags=Flags.SYN | Flags.ACK,
            window=64240,
            checksum=0xDDED,
            options=bytes.fromhex("020405b4"),
        ),
        TcpOptions(mss=1460),
        True,
        0xDDED,
    ),
    # tests/bgp-4byte-asn.pcap frame 6, a data segment as Linux sends them: 1.0.2.2:42741 ->
    # 1.0.2.1:179, "Sequence Number: 2331667507", "Acknowledgment Number: 3603708763",
    # "Header Length: 32 bytes (8)", "Flags: 0x018 (PSH, ACK)", "Window: 58", "Checksum:
    # 0xa6d1 [correct]", NOP, NOP, "Timestamps: TSval 667578586, TSecr 667578586", "TCP
    # Segment Len: 55" (a BGP OPEN).
    Fixed(
        "nop_nop_ts_data",
        bytes.fromhex(
            "a6f500b38afa6c33d6cc3b5b8018003aa6d100000101080a27ca70da27ca70da"
            "ffffffffffffffffffffffffffffffff003701045ba000b4000001011a021801"
            "040001000102004002c12c4104a4c46652450400010101"
        ),
        ip("1.0.2.2"),
        ip("1.0.2.1"),
        TcpHeader(
            src_port=42741,
            dst_port=179,
            seq=2331667507,
            ack=3603708763,
            flags=Flags.PSH | Flags.ACK,
            window=58,
            checksum=0xA6D1,
            options=bytes.fromhex("0101080a27ca70da27ca70da"),
        ),
        TcpOptions(ts_val=667578586, ts_ecr=667578586),
        True,
        0xA6D1,
    ),
    # tests/ssh.pcap frame 48: 223.132.53.222:22 -> 202.108.87.165:62146, "Sequence Number:
    # 2455222326", "Acknowledgment Number: 4082238874", "Header Length: 44 bytes (11)",
    # "Flags: 0x010 (ACK)", "Window: 340", "Checksum: 0xe1f3 [correct]"; fourteen NOPs (where
    # a middlebox blanked the timestamps) then "SACK 4082238970-4082238971".
    Fixed(
        "nops_one_sack_block",
        bytes.fromhex(
            "0016f2c29257b836f352059ab0100154e1f30000"
            "0101010101010101010101010101050af35205faf35205fb"
        ),
        ip("223.132.53.222"),
        ip("202.108.87.165"),
        TcpHeader(
            src_port=22,
            dst_port=62146,
            seq=2455222326,
            ack=4082238874,
            flags=Flags.ACK,
            window=340,
            checksum=0xE1F3,
            options=bytes.fromhex("0101010101010101010101010101050af35205faf35205fb"),
        ),
        TcpOptions(sack=((4082238970, 4082238971),)),
        True,
        0xE1F3,
    ),
    # tests/accecn_handshake.pcap frame 1: 31.133.146.248:16433 -> 66.228.43.12:80,
    # "Sequence Number: 1948076589", "Flags: 0x1c2 (SYN, ECE, CWR, AE)" ("Accurate ECN: Set",
    # the bit RFC 9293 lists as reserved), "Window: 65535", "Checksum: 0x209c incorrect,
    # should be 0xe443 (maybe caused by "TCP checksum offload"?)"; options MSS 1460, NOP,
    # "Window scale: 6", "SACK permitted", "Timestamps: TSval 112147477, TSecr 0" (not Linux's
    # order).
    Fixed(
        "accecn_syn_offloaded_checksum",
        bytes.fromhex(
            "40310050741d4a2d00000000a1c2ffff209c0000020405b4010303060402080a06af3c1500000000"
        ),
        ip("31.133.146.248"),
        ip("66.228.43.12"),
        TcpHeader(
            src_port=16433,
            dst_port=80,
            seq=1948076589,
            ack=0,
            flags=Flags.SYN | Flags.ECE | Flags.CWR | Flags.AE,
            window=65535,
            checksum=0x209C,
            options=bytes.fromhex("020405b4010303060402080a06af3c1500000000"),
        ),
        TcpOptions(mss=1460, wscale=6, sack_permitted=True, ts_val=112147477, ts_ecr=0),
        False,
        0xE443,
    ),
    # tests/accecn_handshake.pcap frame 2: 66.228.43.12:80 -> 31.133.146.248:16433,
    # "Sequence Number: 2972234643", "Acknowledgment Number: 1948076590", "Header Length: 52
    # bytes (13)", "Flags: 0x092 (SYN, ACK, CWR)", "Window: 65160", "Checksum: 0x22a8
    # [correct]"; options MSS 1460, "SACK permitted", "Timestamps: TSval 2783239876, TSecr
    # 112147477", "Experimental: Accurate ECN" ("Kind: RFC3692-style Experiment 2 (254)",
    # "Length: 13"), "Window scale: 7": the unknown option of odd length is skipped.
    Fixed(
        "accecn_syn_ack_experimental_option",
        bytes.fromhex(
            "00504031b128b393741d4a2ed092fe8822a80000"
            "020405b40402080aa5e4dec406af3c15fe0dacc0000001000000000000030307"
        ),
        ip("66.228.43.12"),
        ip("31.133.146.248"),
        TcpHeader(
            src_port=80,
            dst_port=16433,
            seq=2972234643,
            ack=1948076590,
            flags=Flags.SYN | Flags.ACK | Flags.CWR,
            window=65160,
            checksum=0x22A8,
            options=bytes.fromhex(
                "020405b40402080aa5e4dec406af3c15fe0dacc0000001000000000000030307"
            ),
        ),
        TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts_val=2783239876, ts_ecr=112147477),
        True,
        0x22A8,
    ),
    # tests/mptcp-v1.pcap frame 3 (Linux cooked capture): 10.0.1.1:33306 -> 10.0.2.1:10004,
    # "Sequence Number: 2180756990", "Acknowledgment Number: 791415662", "Flags: 0x010 (ACK)",
    # "Window: 256", "Checksum: 0x173c incorrect, should be 0xa53f"; NOP, NOP, "Timestamps:
    # TSval 464494241, TSecr 3275212179", "Multipath TCP (30)", "Length: 20" (Multipath
    # Capable), which netstack does not implement and skips.
    Fixed(
        "mptcp_capable_offloaded_checksum",
        bytes.fromhex(
            "821a271481fbb5fe2f2c0b6ed0100100173c0000"
            "0101080a1baf9ea1c337c5931e1401011fdb5df328bc3def29a6c86981ad933c"
        ),
        ip("10.0.1.1"),
        ip("10.0.2.1"),
        TcpHeader(
            src_port=33306,
            dst_port=10004,
            seq=2180756990,
            ack=791415662,
            flags=Flags.ACK,
            window=256,
            checksum=0x173C,
            options=bytes.fromhex(
                "0101080a1baf9ea1c337c5931e1401011fdb5df328bc3def29a6c86981ad933c"
            ),
        ),
        TcpOptions(ts_val=464494241, ts_ecr=3275212179),
        False,
        0xA53F,
    ),
    # By hand, laid out as Linux does: 198.18.0.2:80 -> 198.18.0.1:40000, "Sequence Number:
    # 1000001", "Acknowledgment Number: 2000001", "Header Length: 52 bytes (13)", "Flags:
    # 0x010 (ACK)", "Window: 501", "Checksum: 0xc9cc [correct]"; NOP, NOP, "Timestamps:
    # TSval 16909060, TSecr 168496141", NOP, NOP, "SACK 2001449-2002897 2004345-2005793".
    Fixed(
        "nop_nop_ts_two_sack_blocks",
        bytes.fromhex(
            "00509c40000f4241001e8481d01001f5c9cc0000"
            "0101080a010203040a0b0c0d01010512001e8a29001e8fd1001e9579001e9b21"
        ),
        ip("198.18.0.2"),
        ip("198.18.0.1"),
        TcpHeader(
            src_port=80,
            dst_port=40000,
            seq=1000001,
            ack=2000001,
            flags=Flags.ACK,
            window=501,
            checksum=0xC9CC,
            options=bytes.fromhex(
                "0101080a010203040a0b0c0d01010512001e8a29001e8fd1001e9579001e9b21"
            ),
        ),
        TcpOptions(
            sack=((2001449, 2002897), (2004345, 2005793)), ts_val=0x01020304, ts_ecr=0x0A0B0C0D
        ),
        True,
        0xC9CC,
    ),
    # By hand: 198.18.0.1:40000 -> 198.18.0.2:80, "Sequence Number: 2000001",
    # "Acknowledgment Number: 1000001", "Flags: 0x018 (PSH, ACK)", "Window: 502", "Checksum:
    # 0x4131 [correct]", NOP, NOP, "Timestamps: TSval 7, TSecr 8", data "hello".
    Fixed(
        "hello",
        bytes.fromhex("9c400050001e8481000f4241801801f6413100000101080a0000000700000008")
        + b"hello",
        ip("198.18.0.1"),
        ip("198.18.0.2"),
        TcpHeader(
            src_port=40000,
            dst_port=80,
            seq=2000001,
            ack=1000001,
            flags=Flags.PSH | Flags.ACK,
            window=502,
            checksum=0x4131,
            options=bytes.fromhex("0101080a0000000700000008"),
        ),
        TcpOptions(ts_val=7, ts_ecr=8),
        True,
        0x4131,
    ),
]

ids = [case.name for case in FIXED]


@pytest.mark.parametrize("case", FIXED, ids=ids)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_fixed_segment_parses(case: Fixed, kind: type) -> None:
    header, payload = parse(kind(case.segment))
    assert header == case.header
    assert isinstance(header.options, bytes)
    assert isinstance(payload, memoryview)
    assert header.header_length == TCP_HEADER_LEN + len(case.header.options)
    assert bytes(payload) == case.segment[header.header_length :]


@pytest.mark.parametrize("case", FIXED, ids=ids)
def test_fixed_segment_options(case: Fixed) -> None:
    assert parse_options(case.header.options) == case.options


@pytest.mark.parametrize("case", FIXED, ids=ids)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_fixed_segment_checksum(case: Fixed, kind: type) -> None:
    assert ref_checksum_holds(case.segment, case.src, case.dst) is case.checksum_good
    assert checksum_ok(kind(case.segment), case.src, case.dst) is case.checksum_good


@pytest.mark.parametrize("case", FIXED, ids=ids)
def test_fixed_segment_emits_back(case: Fixed) -> None:
    hl = case.header.header_length
    assert case.header.to_bytes() == case.segment[:hl]
    buf = bytearray(b"\xee" * (hl + 6))
    assert case.header.emit_into(buf, 2) == hl
    assert bytes(buf[2 : 2 + hl]) == case.segment[:hl]
    assert buf[:2] == b"\xee\xee" and buf[2 + hl :] == b"\xee" * 4


@pytest.mark.parametrize("case", FIXED, ids=ids)
def test_fixed_segment_rebuilt_with_build_into(case: Fixed) -> None:
    # build_into writes the checksum tshark computes, including for the two captures whose
    # senders left the checksum to offloading hardware.
    hl = case.header.header_length
    buf = bytearray(b"\xaa" * 3) + bytearray(b"\xbb" * hl) + bytearray(case.segment[hl:])
    h = case.header
    build_into(
        buf, 3, h.src_port, h.dst_port, h.seq, h.ack, h.flags, h.window, h.options, case.src,
        case.dst,
    )  # fmt: skip
    expected = case.segment[:16] + struct.pack("!H", case.correct_checksum) + case.segment[18:]
    assert bytes(buf[:3]) == b"\xaa" * 3
    assert bytes(buf[3:]) == expected
    assert checksum_ok(bytes(buf[3:]), case.src, case.dst)


# Options laid out as Linux lays them out come back from emit_options byte for byte.
LINUX_LAYOUT = {
    "linux_syn": {"mss": 1460, "sack_permitted": True, "timestamp": (2044906138, 0), "wscale": 7},
    "mss_only_syn_ack": {"mss": 1460},
    "nop_nop_ts_data": {"timestamp": (667578586, 667578586)},
    "nop_nop_ts_two_sack_blocks": {
        "timestamp": (0x01020304, 0x0A0B0C0D),
        "sack": ((2001449, 2002897), (2004345, 2005793)),
    },
    "hello": {"timestamp": (7, 8)},
}


@pytest.mark.parametrize("case", [c for c in FIXED if c.name in LINUX_LAYOUT], ids=lambda c: c.name)
def test_emit_options_lays_out_options_as_linux(case: Fixed) -> None:
    assert emit_options(**LINUX_LAYOUT[case.name]) == case.header.options  # type: ignore[arg-type]


def test_flags() -> None:
    syn = FIXED[0].header
    assert syn.flags == Flags.SYN and int(Flags.SYN) == 0x002
    accecn = FIXED[4].header
    assert accecn.flags == 0x1C2
    assert Flags(accecn.flags) & Flags.AE and not Flags(accecn.flags) & Flags.ACK
    assert [f.value for f in Flags] == [1 << i for i in range(9)]
    # The three bits above AE (reserved, RFC 9293 3.1) are kept and emitted as they came.
    reserved = syn._replace(flags=0xE02)
    data = reserved.to_bytes()
    assert data[12:14] == b"\xae\x02"
    assert parse(data)[0].flags == 0xE02


def test_checksum_depends_on_the_pseudo_header_and_every_byte() -> None:
    case = FIXED[2]
    assert not checksum_ok(case.segment, case.src, ip("1.0.2.3"))
    assert not checksum_ok(case.segment, ip("1.0.2.3"), case.dst)
    damaged = bytearray(case.segment)
    damaged[-1] ^= 0x01
    assert not checksum_ok(bytes(damaged), case.src, case.dst)
    # the length in the pseudo-header is the segment's: a cut segment fails
    assert not checksum_ok(case.segment[:-2], case.src, case.dst)


def test_checksum_field_of_zero_and_all_ones_both_hold() -> None:
    # Pick the last two payload bytes so that the rest sums to -0: the checksum then computes
    # to 0x0000, and its ones'-complement twin 0xFFFF (-0 for +0) must verify as well.
    case = FIXED[-1]
    data = bytearray(case.segment + b"\x00\x00\x00")  # "hello" + a pad: an even length
    data[16:18] = b"\x00\x00"
    partial = ref_sum(pseudo_header(case.src, case.dst, len(data)) + bytes(data))
    data[-2:] = struct.pack("!H", 0xFFFF - partial)
    assert ref_checksum_holds(bytes(data), case.src, case.dst)
    assert checksum_ok(bytes(data), case.src, case.dst)
    h = case.header
    build_into(
        data, 0, h.src_port, h.dst_port, h.seq, h.ack, h.flags, h.window, h.options, case.src,
        case.dst,
    )  # fmt: skip
    assert data[16:18] == b"\x00\x00"
    data[16:18] = b"\xff\xff"
    assert checksum_ok(bytes(data), case.src, case.dst)


# -- malformed headers -----------------------------------------------------------------------

HELLO = FIXED[-1].segment


def with_data_offset(data: bytes, words: int) -> bytes:
    return data[:12] + bytes([(words << 4) | (data[12] & 0x0F)]) + data[13:]


def parse_error(data: bytes) -> str:
    with pytest.raises(ParseError) as info:
        parse(data)
    return info.value.reason


@pytest.mark.parametrize("length", range(TCP_HEADER_LEN))
def test_shorter_than_a_header_is_truncated(length: int) -> None:
    assert parse_error(HELLO[:length]) == "truncated"


@pytest.mark.parametrize("words", range(5))
def test_data_offset_below_five(words: int) -> None:
    assert parse_error(with_data_offset(HELLO, words)) == "bad_data_offset"


@pytest.mark.parametrize("words", [11, 12, 15])
def test_data_offset_beyond_the_data_is_truncated(words: int) -> None:
    assert len(HELLO) == 37
    assert parse_error(with_data_offset(HELLO, words)) == "truncated"


def test_options_cut_short_are_truncated() -> None:
    syn = FIXED[0].segment  # data offset 10: 40 bytes of header
    assert parse_error(syn[:39]) == "truncated"
    header, payload = parse(syn)
    assert header.header_length == 40 and len(payload) == 0


def test_data_offset_up_to_the_data_is_all_header() -> None:
    header, payload = parse(with_data_offset(HELLO[:36], 9))
    assert header.header_length == 36 and len(header.options) == 16 and len(payload) == 0


def test_largest_header() -> None:
    options = bytes([1] * 39 + [0])
    header = TcpHeader(1, 2, 3, 4, Flags.ACK, 5, 6, 7, options)
    data = header.to_bytes()
    assert data[12] >> 4 == 15 and len(data) == 60
    assert parse(data)[0] == header
    assert parse_options(options) == TcpOptions()


def test_emit_rejects_unpadded_or_oversized_options() -> None:
    base = FIXED[0].header
    for options in (b"\x01", b"\x01\x01\x01", bytes(41), bytes(44)):
        with pytest.raises(ValueError):
            base._replace(options=options).to_bytes()


# -- options ---------------------------------------------------------------------------------

MSS_1460 = b"\x02\x04\x05\xb4"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (b"", TcpOptions()),
        (b"\x00\x00\x00\x00", TcpOptions()),
        (b"\x01\x01\x01\x01", TcpOptions()),
        # End of Option List stops the walk: nothing after it is read, not even nonsense.
        (b"\x00" + MSS_1460 + b"\x00\x00\x00", TcpOptions()),
        (MSS_1460 + b"\x00\x02\x01\xff", TcpOptions(mss=1460)),
        (MSS_1460 + b"\x00\x08\x0a\x00", TcpOptions(mss=1460)),
        (b"\x01\x00\x05\x03", TcpOptions()),
        # Unknown kinds with a sound length are skipped (RFC 9293 3.1).
        (b"\xfe\x04\x12\x34" + MSS_1460, TcpOptions(mss=1460)),
        (b"\x22\x02\x01\x01" + MSS_1460, TcpOptions(mss=1460)),  # TFO cookie request (34)
        # MD5 signature (19, RFC 2385), then window scale
        (b"\x13\x12" + bytes(16) + b"\x01\x03\x03\x05", TcpOptions(wscale=5)),
        (b"\x06\x06\x00\x00\x00\x00\x07\x06\x00\x00\x00\x00", TcpOptions()),  # echo, reply
        (b"\x1d\x04\x00\x00" + b"\x04\x02\x01\x01", TcpOptions(sack_permitted=True)),
        # The NOP NOP timestamp block on its own (the shortcut) and with anything else.
        (b"\x01\x01\x08\x0a" + bytes(4) + b"\xff" * 4, TcpOptions(ts_val=0, ts_ecr=0xFFFFFFFF)),
        (b"\x01\x01\x08\x0a" + bytes(8) + b"\x01\x01\x01\x01", TcpOptions(ts_val=0)),
        (b"\x08\x0a" + bytes(8) + b"\x01\x01", TcpOptions(ts_val=0)),
        (b"\x01\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x02\x00", TcpOptions(ts_val=1, ts_ecr=2)),
        # SACK with one to four blocks, values across the wrap.
        (b"\x01\x01\x05\x0a\xff\xff\xff\xf0\x00\x00\x00\x10", TcpOptions(sack=((0xFFFFFFF0, 16),))),
        (
            b"\x01\x01\x05\x22" + struct.pack("!8I", *range(1, 9)),
            TcpOptions(sack=((1, 2), (3, 4), (5, 6), (7, 8))),
        ),
        # Window scale as sent, whether or not it is above RFC 7323's 14 (the machine clamps).
        (b"\x01\x03\x03\x0e", TcpOptions(wscale=14)),
        (b"\x01\x03\x03\xff", TcpOptions(wscale=255)),
        (b"\x02\x04\x00\x00", TcpOptions(mss=0)),
        (b"\x02\x04\xff\xff", TcpOptions(mss=0xFFFF)),
    ],
)
def test_parse_options(options: bytes, expected: TcpOptions) -> None:
    assert parse_options(options) == expected


@pytest.mark.parametrize(
    "options",
    [
        b"\x02",  # a kind without its length byte
        b"\x01\x01\x01\x08",  # ... after NOPs
        MSS_1460 + b"\xfe",  # ... after a good option
        b"\x02\x00\x05\xb4",  # length 0
        b"\x02\x01\x05\xb4",  # length 1
        b"\xfe\x00\x00\x00",  # length 0 of an unknown kind
        b"\xfe\x01\x00\x00",  # length 1 of an unknown kind
        b"\x02\x04\x05",  # runs past the end
        b"\xfe\x08\x00\x00",  # an unknown kind running past the end
        b"\x08\x0a" + bytes(7),  # timestamps cut short
        b"\x01\x01\x05\x12" + bytes(8),  # two SACK blocks claimed, one there
        b"\x13\x28" + bytes(36),  # 40 bytes claimed in 38
        b"\x02\x03\x05\x01",  # MSS of length 3
        b"\x02\x05\x05\xb4\x00\x00\x00\x00",  # MSS of length 5
        b"\x02\x02\x01\x01",  # MSS of length 2
        b"\x03\x02\x01\x01",  # window scale of length 2
        b"\x03\x04\x07\x01",  # window scale of length 4
        b"\x04\x03\x00\x01",  # SACK-permitted of length 3
        b"\x04\x04\x00\x00",  # SACK-permitted of length 4
        b"\x05\x02\x01\x01",  # SACK of length 2 (no blocks)
        b"\x05\x06\x00\x00\x00\x00\x01\x01",  # SACK of length 6 (half a block)
        b"\x05\x0b" + bytes(9) + b"\x01",  # SACK of length 11
        b"\x05\x0b" + bytes(9),  # ... filling the area exactly
        b"\x08\x09" + bytes(7) + b"\x01\x01\x01",  # timestamps of length 9
        b"\x08\x0b" + bytes(9) + b"\x01",  # timestamps of length 11
        b"\x08\x08" + bytes(6),  # timestamps of length 8
        b"\x01\x01\x08\x0a" + bytes(4),  # the NOP NOP timestamp prefix, cut
    ],
)
def test_malformed_options(options: bytes) -> None:
    with pytest.raises(ParseError) as info:
        parse_options(options)
    assert info.value.reason == "bad_option"


# -- emit_options ----------------------------------------------------------------------------


def options_size(
    mss: int | None,
    wscale: int | None,
    sack_permitted: bool,
    timestamp: tuple[int, int] | None,
    sack: tuple[tuple[int, int], ...],
) -> int:
    """The bytes Linux's layout needs: MSS 4; timestamps 12 (2 of them NOPs or
    SACK-permitted); SACK-permitted alone 4; NOP + window scale 4; NOP NOP + SACK 4 + 8 a
    block."""
    size = 4 if mss is not None else 0
    size += 12 if timestamp is not None else 4 if sack_permitted else 0
    size += 4 if wscale is not None else 0
    size += 4 + 8 * len(sack) if sack else 0
    return size


def check_emit_options(
    mss: int | None,
    wscale: int | None,
    sack_permitted: bool,
    timestamp: tuple[int, int] | None,
    sack: tuple[tuple[int, int], ...],
) -> None:
    kwargs = {
        "mss": mss, "wscale": wscale, "sack_permitted": sack_permitted, "timestamp": timestamp,
        "sack": sack,
    }  # fmt: skip
    size = options_size(mss, wscale, sack_permitted, timestamp, sack)
    if size > 40:
        with pytest.raises(ValueError):
            emit_options(**kwargs)  # type: ignore[arg-type]
        return
    options = emit_options(**kwargs)  # type: ignore[arg-type]
    assert len(options) == size and len(options) % 4 == 0
    ts_val, ts_ecr = timestamp if timestamp is not None else (None, 0)
    assert parse_options(options) == TcpOptions(mss, wscale, sack_permitted, sack, ts_val, ts_ecr)
    # the area fits a header and comes back from the wire
    header = TcpHeader(1, 2, 3, 4, Flags.SYN, 5, options=options)
    assert parse_options(parse(header.to_bytes())[0].options) == parse_options(options)


EDGE_SACK = ((0xFFFFFFF0, 0x10), (1, 2), (0x7FFFFFFF, 0x80000000), (0, 0xFFFFFFFF), (5, 6))


@pytest.mark.parametrize(
    ("mss", "wscale", "sack_permitted", "timestamp", "blocks"),
    list(
        itertools.product(
            [None, 0xFFFF], [None, 14], [False, True], [None, (0xFFFFFFFF, 0)], range(6)
        )
    ),
)
def test_emit_options_every_combination(
    mss: int | None,
    wscale: int | None,
    sack_permitted: bool,
    timestamp: tuple[int, int] | None,
    blocks: int,
) -> None:
    check_emit_options(mss, wscale, sack_permitted, timestamp, EDGE_SACK[:blocks])


def test_emit_options_limits() -> None:
    # everything but SACK blocks, and two blocks: exactly 40 bytes
    full = emit_options(
        mss=1460, wscale=7, sack_permitted=True, timestamp=(1, 2), sack=((3, 4), (5, 6))
    )
    assert len(full) == 40
    # four blocks fit alone; five never do
    assert len(emit_options(sack=EDGE_SACK[:4])) == 36
    with pytest.raises(ValueError):
        emit_options(sack=EDGE_SACK)
    with pytest.raises(ValueError):
        emit_options(timestamp=(1, 2), sack=EDGE_SACK[:4])
    assert emit_options() == b""


u32 = st.integers(0, 0xFFFFFFFF)


@SETTINGS
@given(
    mss=st.none() | st.integers(0, 0xFFFF),
    wscale=st.none() | st.integers(0, 255),
    sack_permitted=st.booleans(),
    timestamp=st.none() | st.tuples(u32, u32),
    sack=st.lists(st.tuples(u32, u32), max_size=5).map(tuple),
)
def test_emit_options_then_parse_options(
    mss: int | None,
    wscale: int | None,
    sack_permitted: bool,
    timestamp: tuple[int, int] | None,
    sack: tuple[tuple[int, int], ...],
) -> None:
    check_emit_options(mss, wscale, sack_permitted, timestamp, sack)


# -- headers: round trips, build_into, garbage ---------------------------------------------

ports = st.integers(0, 0xFFFF)
padded_options = st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
headers = st.builds(
    TcpHeader,
    src_port=ports,
    dst_port=ports,
    seq=u32,
    ack=u32,
    flags=st.integers(0, 0xFFF),
    window=ports,
    checksum=ports,
    urgent=ports,
    options=padded_options,
)


@SETTINGS
@given(header=headers, payload=st.binary(max_size=64), offset=st.integers(0, 8))
def test_emit_then_parse_round_trips(header: TcpHeader, payload: bytes, offset: int) -> None:
    wire = header.to_bytes()
    assert len(wire) == header.header_length == TCP_HEADER_LEN + len(header.options)
    assert wire[12] >> 4 == header.header_length // 4
    buf = bytearray(b"\xee" * (offset + header.header_length + 2))
    assert header.emit_into(buf, offset) == header.header_length
    assert bytes(buf[offset : offset + header.header_length]) == wire
    assert bytes(buf[:offset]) == b"\xee" * offset and bytes(buf[-2:]) == b"\xee\xee"
    parsed, rest = parse(wire + payload)
    assert parsed == header
    assert bytes(rest) == payload


@SETTINGS
@given(
    header=headers,
    src=st.binary(min_size=4, max_size=4),
    dst=st.binary(min_size=4, max_size=4),
    payload=st.binary(max_size=200),
    offset=st.integers(0, 8),
    bit=st.integers(0, 100_000),
)
def test_build_into_then_checksum_ok(
    header: TcpHeader, src: bytes, dst: bytes, payload: bytes, offset: int, bit: int
) -> None:
    hl = header.header_length
    buf = bytearray(b"\xaa" * offset) + bytearray(b"\x55" * hl) + bytearray(payload)
    h = header
    build_into(
        buf, offset, h.src_port, h.dst_port, h.seq, h.ack, h.flags, h.window, h.options, src, dst
    )
    segment = bytes(buf[offset:])
    assert bytes(buf[:offset]) == b"\xaa" * offset
    parsed, rest = parse(segment)
    assert parsed == header._replace(checksum=parsed.checksum, urgent=0)
    assert bytes(rest) == payload
    assert ref_checksum_holds(segment, src, dst)
    assert checksum_ok(segment, src, dst)
    # A single-bit error anywhere is detected (a flip changes one word by ±2**k, never by a
    # multiple of 0xFFFF).
    damaged = bytearray(segment)
    bit %= 8 * len(damaged)
    damaged[bit // 8] ^= 1 << (bit % 8)
    assert not checksum_ok(bytes(damaged), src, dst)
    assert not ref_checksum_holds(bytes(damaged), src, dst)


def _check_parse(data: bytes) -> None:
    try:
        header, payload = parse(data)
    except ParseError as exc:
        assert exc.reason in PARSE_REASONS
        assert SNAKE_CASE.match(exc.reason)
        return
    assert TCP_HEADER_LEN <= header.header_length <= len(data)
    assert header.to_bytes() == data[: header.header_length]
    assert bytes(payload) == data[header.header_length :]
    assert 0 <= header.flags <= 0xFFF


@SETTINGS
@given(data=st.binary(max_size=80))
def test_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    _check_parse(data)


@SETTINGS
@given(words=st.integers(0, 15), data=st.binary(min_size=20, max_size=70))
@example(words=15, data=bytes(60))
@example(words=15, data=bytes(59))
def test_tcp_shaped_garbage_parses_or_raises_parse_error(words: int, data: bytes) -> None:
    data = with_data_offset(data, words)
    _check_parse(data)
    if words < 5:
        assert parse_error(data) == "bad_data_offset"
    elif 4 * words > len(data):
        assert parse_error(data) == "truncated"
    else:
        try:
            parse_options(parse(data)[0].options)
        except ParseError as exc:
            assert exc.reason in OPTION_REASONS


option_like = st.lists(
    st.one_of(
        st.sampled_from([b"\x00", b"\x01"]),
        st.tuples(st.integers(2, 255), st.integers(0, 12)).map(
            lambda kl: bytes([kl[0], kl[1]]) + bytes(range(max(kl[1] - 2, 0)))
        ),
        st.binary(max_size=4),
    ),
    max_size=10,
).map(b"".join)


@SETTINGS
@given(data=st.binary(max_size=44) | option_like)
@example(data=b"\x01\x01\x08\x0a" + bytes(8))
@example(data=b"\x05\x22" + bytes(32))
def test_option_garbage_parses_or_raises_parse_error(data: bytes) -> None:
    try:
        options = parse_options(data)
    except ParseError as exc:
        assert exc.reason in OPTION_REASONS
        return
    assert isinstance(options, TcpOptions)
    assert options.mss is None or 0 <= options.mss <= 0xFFFF
    assert options.wscale is None or 0 <= options.wscale <= 255
    assert len(options.sack) * 8 + 2 <= max(len(data), 2)
