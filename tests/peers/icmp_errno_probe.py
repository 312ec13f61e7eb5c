"""Run inside a fresh network namespace (loopback up, as root): for each ICMP and ICMPv6
message given as JSON on stdin, what the Linux kernel reports on a connected UDP socket that
sent the datagram the message quotes.

The socket asks for every error with IP_RECVERR / IPV6_RECVERR (without it Linux reports only
the errors it deems hard), so the answer is the kernel's own conversion table. The message is
sent to the loopback address from a raw socket, quoting the socket's datagram; a second socket
receives that datagram, so the kernel itself sends no port unreachable. Prints JSON: for each
message the errno's name, or null when the socket heard of nothing.

Input: ``{"v4": [[type, code, rest], ...], "v6": [...]}``.
"""

from __future__ import annotations

import errno
import json
import socket
import struct
import sys

#: From linux/in.h and linux/in6.h (Python's socket module names neither).
IP_RECVERR = 11
IPV6_RECVERR = 25
LOOPBACK4 = socket.inet_pton(socket.AF_INET, "127.0.0.1")
LOOPBACK6 = socket.inet_pton(socket.AF_INET6, "::1")


def internet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def probe(v6: bool, type_: int, code: int, rest: int) -> str | None:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    host = "::1" if v6 else "127.0.0.1"
    with (
        socket.socket(family, socket.SOCK_DGRAM) as sink,
        socket.socket(family, socket.SOCK_DGRAM) as sock,
    ):
        sink.bind((host, 0))
        dport = sink.getsockname()[1]
        if v6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sock.bind((host, 0))
        sock.connect((host, dport))
        sock.send(b"x")
        udp = struct.pack("!HHHH", sock.getsockname()[1], dport, 9, 0) + b"x"
        if v6:
            quoted = struct.pack("!IHBB16s16s", 0x60000000, 9, 17, 64, LOOPBACK6, LOOPBACK6)
            message = struct.pack("!BBHI", type_, code, 0, rest) + quoted + udp
            proto = socket.IPPROTO_ICMPV6  # the kernel fills in the ICMPv6 checksum
        else:
            header = (0x45, 0, 29, 1, 0x4000, 64, 17, 0, LOOPBACK4, LOOPBACK4)
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", *header))
            struct.pack_into("!H", ip, 10, internet_checksum(bytes(ip)))
            raw = bytearray(struct.pack("!BBHI", type_, code, 0, rest) + ip + udp)
            struct.pack_into("!H", raw, 2, internet_checksum(bytes(raw)))
            message = bytes(raw)
            proto = socket.IPPROTO_ICMP
        with socket.socket(family, socket.SOCK_RAW, proto) as sender:
            sender.sendto(message, (host, 0))
        sock.settimeout(0.2)
        try:
            sock.recv(64)
        except TimeoutError:
            return None
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return "datagram"


def main() -> None:
    asked = json.load(sys.stdin)
    answers = {
        family: [probe(family == "v6", *message) for message in messages]
        for family, messages in asked.items()
    }
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
