"""Micro benchmarks: nanoseconds per call of the per-packet building blocks, with ``timeit``.

What is timed (each case one JSON line, ``bench`` "micro", ``case`` naming it, ``unit``
"ns/call"; ``value`` is the median of the timeit repeats, each the mean over ``number``
calls; the loop around the statement, a few ns, is included):

- ``<header>.parse`` and ``<header>.emit`` for the wire modules of Ethernet, ARP, IPv4, ICMP
  and UDP, on the kind of packet the stack handles per datagram (a 64-byte UDP payload, a
  56-byte echo). ``emit`` is what the send path calls: ``emit_header`` for Ethernet,
  ``ArpPacket.emit_into``, and ``build_header_into`` / ``build_into`` for IPv4, ICMP and UDP,
  which include the checksum. ``checksum_ok`` cases verify a received header or datagram.
- ``checksum.<n>``: :func:`netstack.proto.checksum.checksum` over 20, 1460 and 65 507 bytes.
- impl ``python-struct``: the bare ``struct.Struct.unpack_from`` of the same header, the floor
  a parser built on ``struct`` cannot beat; the gap is the header object and the checks.
- ``stack.udp_rx``: one UDP datagram (64 and 1400 bytes of payload) from the link's frame
  callback up to a ``DatagramProtocol.datagram_received`` (Ethernet, IPv4, UDP, checksums,
  demultiplexing, the ``bytes`` copy and address formatting), with no event loop turn in
  between.
- ``stack.udp_tx``: one ``DatagramTransport.sendto`` (64 and 1400 bytes) down to the link's
  ``transmit`` (route lookup, ARP cache hit, three headers, two checksums).

Both ``stack`` cases use a link that drops what it is given, so only netstack's own code is
timed; they bound the datagram rates of the ``udp`` benchmarks from above.
"""

from __future__ import annotations

import asyncio
import struct
import time
import timeit
from typing import Any

from netstack import Stack
from netstack.link import BaseLink, MacAddress
from netstack.proto import checksum as checksum_mod
from netstack.proto.arp import wire as arp
from netstack.proto.ethernet import wire as ethernet
from netstack.proto.icmp import wire as icmp
from netstack.proto.ipv4 import wire as ipv4
from netstack.proto.ipv6 import wire as ipv6
from netstack.proto.tcp import wire as tcp
from netstack.proto.udp import wire as udp

from .common import Emitter, Settings, log, summarize

__all__ = ["run_micro"]

SRC_MAC = b"\x02\x00\x00\x00\x00\x01"
DST_MAC = b"\x02\x00\x00\x00\x00\x02"
SRC_IP = bytes([198, 18, 0, 1])
DST_IP = bytes([198, 18, 0, 2])
UDP_PAYLOAD = 64
#: Seconds of untimed work before the first case.
WARMUP_SECONDS = 0.3
#: Payloads of the ``stack`` cases: the ``udp`` benchmarks' sizes.
STACK_PAYLOADS = (64, 1400)
ECHO_DATA = 56


def _time_statement(
    stmt: str, namespace: dict[str, Any], settings: Settings
) -> tuple[list[float], int]:
    """ns per execution of ``stmt``: calibrated so one repeat takes about
    ``settings.micro_target`` seconds, then ``settings.micro_repeats`` repeats."""
    timer = timeit.Timer(stmt, globals=namespace)
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= settings.micro_target / 5 or number >= 10_000_000:
            break
        number *= 10
    number = max(1, int(number * settings.micro_target / max(elapsed, 1e-9)))
    runs = timer.repeat(repeat=settings.micro_repeats, number=number)
    return [r / number * 1e9 for r in runs], number


def _udp_datagram(size: int = UDP_PAYLOAD) -> bytes:
    """A whole Ethernet frame: IPv4, UDP, ``size`` bytes of payload, checksums correct."""
    headroom = ethernet.ETHERNET_HEADER_LEN + ipv4.IPV4_HEADER_LEN
    frame = bytearray(headroom + udp.UDP_HEADER_LEN + size)
    frame[headroom + udp.UDP_HEADER_LEN :] = bytes(i & 0xFF for i in range(size))
    udp.build_into(frame, headroom, 40000, 9000, SRC_IP, DST_IP)
    total = len(frame) - ethernet.ETHERNET_HEADER_LEN
    ipv4.build_header_into(
        frame, ethernet.ETHERNET_HEADER_LEN, total, 1, 0, 64, ipv4.IpProto.UDP, SRC_IP, DST_IP
    )
    ethernet.emit_header(frame, DST_MAC, SRC_MAC, ethernet.EtherType.IPV4)
    return bytes(frame)


def _echo_request() -> bytes:
    message = bytearray(icmp.ICMP_HEADER_LEN + ECHO_DATA)
    message[icmp.ICMP_HEADER_LEN :] = bytes(range(ECHO_DATA))
    icmp.build_into(message, 0, icmp.IcmpType.ECHO_REQUEST, 0, (0x1234 << 16) | 1)
    return bytes(message)


def _wire_cases() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(case, impl, statement, namespace) for every wire-format case."""
    frame = _udp_datagram()
    eth_view = memoryview(frame)
    ip_view = eth_view[ethernet.ETHERNET_HEADER_LEN :]
    udp_view = ip_view[ipv4.IPV4_HEADER_LEN :]
    arp_pkt = arp.ArpPacket(arp.ArpOp.REQUEST, SRC_MAC, SRC_IP, b"\x00" * 6, DST_IP)
    arp_view = memoryview(arp_pkt.to_bytes())
    echo = _echo_request()
    echo_view = memoryview(echo)
    ip6_view = memoryview(
        ipv6.IPv6Header(0, 0, 8 + UDP_PAYLOAD, ipv4.IpProto.UDP, 64, bytes(16), bytes(16))
        .to_bytes() + bytes(8 + UDP_PAYLOAD)
    )  # fmt: skip
    tcp_segment = bytearray(20 + 12 + UDP_PAYLOAD)
    ts_options = tcp.emit_options(timestamp=(123456, 654321))  # what nearly every segment has
    tcp.build_into(tcp_segment, 0, 40000, 80, 1, 2, 0x18, 65535, ts_options, SRC_IP, DST_IP)
    tcp_view = memoryview(tcp_segment)

    eth_buf = bytearray(len(frame))
    arp_buf = bytearray(arp.ETH_IPV4_LEN)
    ip_buf = bytearray(frame)
    icmp_buf = bytearray(echo)
    udp_buf = bytearray(frame)
    udp_offset = ethernet.ETHERNET_HEADER_LEN + ipv4.IPV4_HEADER_LEN

    ns: dict[str, Any] = {
        "ethernet": ethernet,
        "arp": arp,
        "ipv4": ipv4,
        "icmp": icmp,
        "udp": udp,
        "ipv6": ipv6,
        "tcp": tcp,
        "ip6_view": ip6_view,
        "tcp_view": tcp_view,
        "ts_options": ts_options,
        "ip6_struct": struct.Struct("!IHBB16s16s"),
        "tcp_struct": struct.Struct("!HHIIHHHH"),
        "eth_view": eth_view,
        "ip_view": ip_view,
        "udp_view": udp_view,
        "arp_view": arp_view,
        "arp_pkt": arp_pkt,
        "echo_view": echo_view,
        "eth_buf": eth_buf,
        "arp_buf": arp_buf,
        "ip_buf": ip_buf,
        "icmp_buf": icmp_buf,
        "udp_buf": udp_buf,
        "udp_offset": udp_offset,
        "ip_total": len(frame) - ethernet.ETHERNET_HEADER_LEN,
        "SRC_MAC": SRC_MAC,
        "DST_MAC": DST_MAC,
        "SRC_IP": SRC_IP,
        "DST_IP": DST_IP,
        "ETH_IPV4": ethernet.EtherType.IPV4,
        "PROTO_UDP": ipv4.IpProto.UDP,
        "ECHO_REQUEST": icmp.IcmpType.ECHO_REQUEST,
        "eth_struct": struct.Struct("!6s6sH"),
        "arp_struct": struct.Struct("!HHBBH6s4s6s4s"),
        "ip_struct": struct.Struct("!BBHHHBBH4s4s"),
        "icmp_struct": struct.Struct("!BBHI"),
        "udp_struct": struct.Struct("!HHHH"),
    }
    netstack = "netstack"  # the impl names
    base = "python-struct"
    return [
        ("ethernet.parse", netstack, "ethernet.parse(eth_view)", ns),
        ("ethernet.parse", base, "eth_struct.unpack_from(eth_view, 0)", ns),
        (
            "ethernet.emit",
            netstack,
            "ethernet.emit_header(eth_buf, DST_MAC, SRC_MAC, ETH_IPV4)",
            ns,
        ),
        ("arp.parse", netstack, "arp.parse(arp_view)", ns),
        ("arp.parse", base, "arp_struct.unpack_from(arp_view, 0)", ns),
        ("arp.emit", netstack, "arp_pkt.emit_into(arp_buf, 0)", ns),
        ("ipv4.parse", netstack, "ipv4.parse(ip_view)", ns),
        ("ipv4.parse", base, "ip_struct.unpack_from(ip_view, 0)", ns),
        ("ipv4.checksum_ok", netstack, "ipv4.checksum_ok(ip_view)", ns),
        (
            "ipv4.emit",
            netstack,
            "ipv4.build_header_into(ip_buf, 14, ip_total, 1, 0, 64, PROTO_UDP, SRC_IP, DST_IP)",
            ns,
        ),
        ("icmp.parse", netstack, "icmp.parse(echo_view)", ns),
        ("icmp.parse", base, "icmp_struct.unpack_from(echo_view, 0)", ns),
        ("icmp.checksum_ok", netstack, "icmp.checksum_ok(echo_view)", ns),
        ("icmp.emit", netstack, "icmp.build_into(icmp_buf, 0, ECHO_REQUEST, 0, 0x12340001)", ns),
        ("udp.parse", netstack, "udp.parse(udp_view)", ns),
        ("udp.parse", base, "udp_struct.unpack_from(udp_view, 0)", ns),
        ("udp.checksum_ok", netstack, "udp.checksum_ok(udp_view, SRC_IP, DST_IP)", ns),
        (
            "udp.emit",
            netstack,
            "udp.build_into(udp_buf, udp_offset, 40000, 9000, SRC_IP, DST_IP)",
            ns,
        ),
        ("ipv6.parse", netstack, "ipv6.parse(ip6_view)", ns),
        ("ipv6.parse", base, "ip6_struct.unpack_from(ip6_view, 0)", ns),
        ("tcp.parse", netstack, "tcp.parse(tcp_view)", ns),
        ("tcp.parse", base, "tcp_struct.unpack_from(tcp_view, 0)", ns),
        ("tcp.parse_options", netstack, "tcp.parse_options(ts_options)", ns),
    ]


def _checksum_cases() -> list[tuple[str, str, str, dict[str, Any]]]:
    cases = []
    for n in (20, 1460, 65507):
        data = bytes(i & 0xFF for i in range(n))
        ns = {"checksum": checksum_mod.checksum, "data": data}
        cases.append((f"checksum.{n}", "netstack", "checksum(data)", ns))
    return cases


class _NullLink(BaseLink):
    """A link that drops every frame it is given and lets the benchmark inject frames."""

    def transmit(self, frame: bytes | bytearray) -> None:
        self._check_frame(len(frame))
        self._stats.tx_packets += 1

    def inject(self, frame: bytes) -> None:
        self._deliver(frame)


class _Count(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.n = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.n += 1


async def _stack_cases(settings: Settings) -> list[tuple[str, int, list[float], int]]:
    link = _NullLink(mac=MacAddress(DST_MAC))
    stack = await Stack.open(link, ipv4="198.18.0.2/24")
    try:
        # An ARP request from 198.18.0.1 for this host puts 198.18.0.1 into the cache, so
        # the send path below finds its neighbour without resolving it.
        request = arp.ArpPacket(arp.ArpOp.REQUEST, SRC_MAC, SRC_IP, b"\x00" * 6, DST_IP)
        arp_frame = bytearray(ethernet.ETHERNET_HEADER_LEN + arp.ETH_IPV4_LEN)
        request.emit_into(arp_frame, ethernet.ETHERNET_HEADER_LEN)
        ethernet.emit_header(arp_frame, b"\xff" * 6, SRC_MAC, ethernet.EtherType.ARP)
        link.inject(bytes(arp_frame))
        if not any(ip == "198.18.0.1" and mac for ip, mac, _ in stack.arp_table()):
            raise RuntimeError("the ARP request did not create a neighbour entry")

        rx_transport, counter = await stack.create_datagram_endpoint(
            _Count, local_addr=("0.0.0.0", 9000)
        )
        tx_transport, _ = await stack.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("0.0.0.0", 40000)
        )
        out = []
        for size in STACK_PAYLOADS:
            ns: dict[str, Any] = {
                "inject": link.inject,
                "frame": _udp_datagram(size),
                "sendto": tx_transport.sendto,
                "payload": bytes(size),
                "addr": ("198.18.0.1", 9000),
            }
            before = counter.n
            samples, number = _time_statement("inject(frame)", ns, settings)
            if counter.n - before < number:
                raise RuntimeError(f"only {counter.n - before} of {number}+ were delivered")
            out.append(("stack.udp_rx", size, samples, number))
            before = link.stats().tx_packets
            samples, number = _time_statement("sendto(payload, addr)", ns, settings)
            if link.stats().tx_packets - before < number:
                raise RuntimeError("datagrams sent by sendto() did not reach the link")
            out.append(("stack.udp_tx", size, samples, number))
        rx_transport.close()
        tx_transport.close()
        return out
    finally:
        await stack.close()


def run_micro(emit: Emitter, settings: Settings) -> None:
    """Run every micro case and emit one line each (``loop`` null: no event loop involved,
    except for the ``stack`` cases, which run on asyncio's loop without turning it)."""
    log("micro: wire formats and checksums")
    cases = [*_wire_cases(), *_checksum_cases()]
    # Untimed: a CPU coming out of idle (and a cold interpreter) makes the first case slow.
    _, _, stmt, ns = cases[0]
    timer = timeit.Timer(stmt, globals=ns)
    end = time.perf_counter() + WARMUP_SECONDS
    while time.perf_counter() < end:
        timer.timeit(1000)
    for case, impl, stmt, ns in cases:
        samples, number = _time_statement(stmt, ns, settings)
        emit.emit_summary(
            "micro",
            impl,
            "ns/call",
            summarize(samples),
            case=case,
            number=number,
            statement=stmt,
            loop=None,
        )
    log("micro: the stack's per-datagram paths")
    for case, size, samples, number in asyncio.run(_stack_cases(settings)):
        emit.emit_summary(
            "micro",
            "netstack",
            "ns/call",
            summarize(samples),
            case=case,
            number=number,
            payload=size,
            loop=None,
        )
