"""Datagrams for the netfilter machine tests, built with netstack's own wire codecs, and a
checksum check that shares no code with the one under test (a plain RFC 1071 loop)."""

from __future__ import annotations

import ipaddress

from netstack.proto.icmp import wire as icmp
from netstack.proto.icmpv6 import wire as icmp6
from netstack.proto.ipv4 import wire as ip4
from netstack.proto.ipv6 import wire as ip6
from netstack.proto.tcp import wire as tcp
from netstack.proto.udp import wire as udp

SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def a(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def _ip(src: str, dst: str, proto: int, body: bytearray, ident: int = 1, ff: int = 0) -> bytearray:
    d = bytearray(20) + body
    ip4.build_header_into(d, 0, len(d), ident, ff, 64, proto, a(src), a(dst))
    return d


def udp4(src: str, sport: int, dst: str, dport: int, payload: bytes = b"hello") -> bytearray:
    body = bytearray(8) + payload
    udp.build_into(body, 0, sport, dport, a(src), a(dst))
    return _ip(src, dst, 17, body)


def tcp4(src: str, sport: int, dst: str, dport: int, flags: int, payload: bytes = b"",
         seq: int = 1000, ack: int = 0, window: int = 65535,
         options: bytes = b"") -> bytearray:  # fmt: skip
    body = bytearray(20 + len(options)) + payload
    tcp.build_into(body, 0, sport, dport, seq, ack, flags, window, options, a(src), a(dst))
    return _ip(src, dst, 6, body)


def echo4(src: str, dst: str, ident: int, seq: int = 1, reply: bool = False) -> bytearray:
    body = bytearray(8) + b"ping-data"
    icmp.build_into(body, 0, 0 if reply else 8, 0, ident << 16 | seq)
    return _ip(src, dst, 1, body)


def icmp_error4(src: str, dst: str, quoted: bytes, type_: int = 3, code: int = 3) -> bytearray:
    body = bytearray(8) + quoted
    icmp.build_into(body, 0, type_, code, 0)
    return _ip(src, dst, 1, body)


def udp6(src: str, sport: int, dst: str, dport: int, payload: bytes = b"hi") -> bytearray:
    body = bytearray(8) + payload
    length = len(body)
    body[0:8] = udp.UdpHeader(sport, dport, length, 0).to_bytes()
    from netstack.proto.checksum import checksum, pseudo_header_sum6

    c = checksum(body, pseudo_header_sum6(a(src), a(dst), 17, length)) or 0xFFFF
    body[6:8] = c.to_bytes(2, "big")
    d = bytearray(40) + body
    ip6.build_header_into(d, 0, len(body), 17, 64, a(src), a(dst))
    return d


def echo6(src: str, dst: str, ident: int, reply: bool = False) -> bytearray:
    body = bytearray(8) + b"six"
    icmp6.build_into(body, 0, 129 if reply else 128, 0, ident << 16 | 1, a(src), a(dst))
    d = bytearray(40) + body
    ip6.build_header_into(d, 0, len(body), 58, 64, a(src), a(dst))
    return d


# -- the independent check ---------------------------------------------------------------------


def ones_sum(data: bytes) -> int:
    """RFC 1071 4.1's loop: 16-bit words with end-around carry."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def sums_ok(d: bytes) -> bool:
    """Every checksum of an IPv4 datagram holds: the header's, and the transport's (TCP,
    UDP unless zero, ICMP), and inside an ICMP error the quoted header's."""
    d = bytes(d)
    ihl = (d[0] & 15) * 4
    if ones_sum(d[:ihl]) != 0xFFFF:
        return False
    total = int.from_bytes(d[2:4], "big")
    body = d[ihl:total]
    proto = d[9]
    pseudo = d[12:20] + bytes([0, proto]) + len(body).to_bytes(2, "big")
    if proto == 6:
        return ones_sum(pseudo + body) == 0xFFFF
    if proto == 17:
        return body[6:8] == b"\0\0" or ones_sum(pseudo + body) == 0xFFFF
    if proto == 1:
        if ones_sum(body) != 0xFFFF:
            return False
        if body[0] in (3, 4, 5, 11, 12):
            inner = body[8:]
            ihl2 = (inner[0] & 15) * 4
            return ones_sum(inner[:ihl2]) == 0xFFFF
    return True


def fields(d: bytes) -> tuple[str, int, str, int]:
    """(source, source port, destination, destination port) of an IPv4 TCP/UDP datagram."""
    ihl = (d[0] & 15) * 4
    return (
        str(ipaddress.ip_address(bytes(d[12:16]))),
        int.from_bytes(d[ihl : ihl + 2], "big"),
        str(ipaddress.ip_address(bytes(d[16:20]))),
        int.from_bytes(d[ihl + 2 : ihl + 4], "big"),
    )
