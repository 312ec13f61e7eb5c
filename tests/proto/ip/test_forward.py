"""The forwarding path's pure parts, without a stack: martian addresses (RFC 1812 5.3.7,
RFC 3927 2.7, RFC 4291), the incremental checksum of a TTL decrement (RFC 1624), fragmenting a
built datagram (RFC 791 3.2, RFC 1812 5.2.6) and the reset that answers a rejected segment
(RFC 9293 3.10.7.1)."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given
from hypothesis import strategies as st

from netstack.proto.checksum import checksum, pseudo_header_sum, pseudo_header_sum6, verify
from netstack.proto.ip.forward import Forwarder, martian4, martian6, tcp_reset_for
from netstack.proto.ipv4.fragment import datagram4, fragment4
from netstack.proto.ipv4.wire import FLAG_DF, FLAG_MF, parse


def v4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def v6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def test_martians4() -> None:
    for bad in ("0.1.2.3", "127.0.0.1", "169.254.3.4", "224.0.0.1", "240.0.0.1",
                "255.255.255.255"):  # fmt: skip
        assert martian4(v4(bad)), bad
    for good in ("198.18.0.1", "10.0.0.1", "169.253.0.1", "223.255.255.255"):
        assert not martian4(v4(good)), good


def test_martians6() -> None:
    for bad in ("fe80::1", "febf::1", "::", "::1", "::ffff:1.2.3.4", "ff02::1", "ff0e::1"):
        assert martian6(v6(bad)), bad
    for good in ("fd00::1", "2001:db8::1", "fec0::1", "::2"):
        assert not martian6(v6(good)), good


def header(ttl: int, proto: int = 17, total: int = 28, flags: int = 0,
           options: bytes = b"") -> bytearray:  # fmt: skip
    hlen = 20 + len(options)
    buf = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | (hlen >> 2), 0, total, 7, flags, ttl,
                                proto, 0, v4("198.18.1.2"), v4("198.18.2.2")))  # fmt: skip
    buf += options
    c = checksum(buf)
    buf[10:12] = c.to_bytes(2, "big")
    return buf


@given(st.integers(2, 255), st.integers(0, 255), st.integers(20, 65535))
def test_ttl_decrement_keeps_the_checksum_right(ttl: int, proto: int, total: int) -> None:
    frame = bytearray(14) + header(ttl, proto, total)
    Forwarder._ttl4(frame, ttl)
    assert frame[14 + 8] == ttl - 1
    assert verify(frame[14:34])


def test_fragment4_pieces_reassemble_and_keep_copied_options() -> None:
    # An option with the copy flag (type 0x94, Router Alert-like, 4 bytes) and one without
    # (type 0x07 Record Route, 7 bytes + EOL pad).
    options = bytes((0x94, 4, 0, 0)) + bytes((7, 7, 4)) + bytes(4) + b"\x00"
    payload = bytes(range(256)) * 12  # 3072 bytes
    dg = header(64, total=20 + len(options) + len(payload), options=options) + payload
    frames = fragment4(memoryview(dg), 1280)
    assert len(frames) == 3
    got = bytearray()
    for i, frame in enumerate(frames):
        ip = frame[14:]
        h, data = parse(ip)
        assert verify(ip[: h.header_length])
        assert len(ip) <= 1280
        assert h.ident == 7 and h.ttl == 64
        assert bool(h.flags_fragment & FLAG_MF) == (i < 2)
        assert (h.flags_fragment & 0x1FFF) * 8 == len(got)
        assert h.options.startswith(bytes((0x94, 4))) and (i == 0) == (7 in h.options[4:5])
        got += data
    assert got == payload


def test_fragment4_of_a_fragment_continues_its_offset_and_mf() -> None:
    payload = bytes(2000)
    dg = header(9, total=20 + len(payload), flags=FLAG_MF | 100) + payload
    frames = fragment4(memoryview(dg), 1000)
    offsets = [((f[20] << 8 | f[21]) & 0x1FFF) for f in frames]
    assert offsets[0] == 100 and all(f[20] & 0x20 for f in frames)  # MF kept on the last
    assert not any(f[20] & 0x40 for f in frames)


def test_datagram4_is_a_whole_datagram() -> None:
    h, _ = parse(header(5, total=28) + bytes(8))
    whole = datagram4(h._replace(flags_fragment=FLAG_DF | FLAG_MF | 3), b"x" * 100)
    h2, data = parse(whole)
    assert h2.total_length == 120 and data == b"x" * 100
    assert h2.flags_fragment == FLAG_DF and verify(whole[:20])


def tcp4(flags: int, seq: int = 1000, ack: int = 0, data: bytes = b"") -> bytearray:
    seg = struct.pack("!HHIIBBHHH", 40000, 80, seq, ack, 5 << 4, flags, 1000, 0, 0) + data
    return header(64, 6, 20 + len(seg)) + seg


def test_reset_for_a_syn_acknowledges_it() -> None:
    dg = tcp4(0x02, seq=1000)
    rst = tcp_reset_for(dg, 20, False)
    assert rst is not None
    sport, dport, seq, ack, _, flags = struct.unpack_from("!HHIIBB", rst)
    assert (sport, dport, seq, ack, flags) == (80, 40000, 0, 1001, 0x14)
    assert verify(rst, pseudo_header_sum(v4("198.18.2.2"), v4("198.18.1.2"), 6, 20))


def test_reset_for_an_ack_takes_its_number_and_never_answers_a_reset() -> None:
    rst = tcp_reset_for(tcp4(0x18, seq=5, ack=777, data=b"hello"), 20, False)
    assert rst is not None
    _, _, seq, ack, _, flags = struct.unpack_from("!HHIIBB", rst)
    assert (seq, ack, flags) == (777, 0, 0x04)
    assert tcp_reset_for(tcp4(0x04), 20, False) is None
    assert tcp_reset_for(header(64, 6, 24) + bytes(4), 20, False) is None  # too short


def test_reset6_checksum() -> None:
    seg = struct.pack("!HHIIBBHHH", 1, 2, 10, 0, 5 << 4, 0x02, 0, 0, 0)
    src, dst = v6("fd00:1::2"), v6("fd00:2::2")
    pkt = bytearray(struct.pack("!IHBB16s16s", 0x60000000, len(seg), 6, 64, src, dst)) + seg
    rst = tcp_reset_for(pkt, 40, True)
    assert rst is not None
    assert verify(rst, pseudo_header_sum6(dst, src, 6, 20))
