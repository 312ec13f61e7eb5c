"""Jumbo frames on memory links: every layer at MTU 9000 and 65520, IPv4 and IPv6, and two
ends whose MTUs differ (the MSS each side offers clamps what the other sends, RFC 9293
3.7.1; a datagram too big for the far end's link is lost there, as on a real wire). The
same over TAP against the kernel is in tests/peers/test_kernel_jumbo.py."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket

import pytest

from netstack import Stack
from netstack.link import MemoryLink, Switch

A4, B4 = "198.18.0.1", "198.18.0.2"
A6, B6 = "fd00:198:18::1", "fd00:198:18::2"
BULK = 4 * 1024 * 1024
TIMEOUT = 30.0
FAMILIES = [pytest.param((A4, B4), id="ipv4"), pytest.param((A6, B6), id="ipv6")]


def _payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


async def _open(link_a: MemoryLink, link_b: MemoryLink) -> tuple[Stack, Stack]:
    a = await Stack.open(link_a, ipv4=f"{A4}/24", ipv6=f"{A6}/64")
    b = await Stack.open(link_b, ipv4=f"{B4}/24", ipv6=f"{B6}/64")
    return a, b


def _mss(writer: asyncio.StreamWriter) -> int:
    mss: int = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    return mss


async def _bulk(sender: Stack, receiver: Stack, host: str, data: bytes) -> tuple[bytes, int, int]:
    """``data`` from ``sender`` to a server on ``receiver`` at ``host``; what the server
    read, and the MSS of the sending and the receiving connection."""
    got: asyncio.Future[tuple[bytes, int]] = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await reader.read()
        got.set_result((body, _mss(writer)))
        writer.close()

    server = await receiver.start_server(sink, host, 0)
    port = server.addresses[0][1]
    try:
        reader, writer = await sender.open_connection(host, port)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        body, server_mss = await asyncio.wait_for(got, TIMEOUT)
        client_mss = _mss(writer)
        writer.close()
    finally:
        server.close()
    return body, client_mss, server_mss


@pytest.mark.parametrize("mtu", [9000, 65520])
@pytest.mark.parametrize("family", FAMILIES)
async def test_tcp_bulk_both_ways_in_jumbo_segments(mtu: int, family: tuple[str, str]) -> None:
    a_link, b_link = MemoryLink.pair(mtu=mtu)
    a, b = await _open(a_link, b_link)
    ip_header = 20 if "." in family[0] else 40
    try:
        data = _payload(BULK)
        for sender, receiver, host in ((a, b, family[1]), (b, a, family[0])):
            before = sender.link.stats().as_dict()
            body, client_mss, server_mss = await _bulk(sender, receiver, host, data)
            assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
            # Both ends offered the whole MTU less the headers (timestamps come off).
            assert mtu - ip_header - 20 - 12 <= client_mss <= mtu - ip_header - 20
            assert server_mss == client_mss
            after = sender.link.stats().as_dict()
            frames = after["tx_packets"] - before["tx_packets"]
            # The data went in frames near the MTU: fewer than twice the full-sized count
            # (the ACKs the sender also sends are few: the receiver ACKs, not the sender).
            assert frames < 2 * BULK // client_mss + 50, (frames, client_mss)
            assert (after["tx_bytes"] - before["tx_bytes"]) / frames > mtu / 2
        # Retransmissions are not asserted on: a loop starved by a busy machine may let a
        # retransmission timer fire before the ACK is read, with nothing lost.
    finally:
        await b.close()
        await a.close()


class _Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)


class _Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.got.put_nowait(data)


@pytest.mark.parametrize("mtu", [9000, 65520])
@pytest.mark.parametrize("family", FAMILIES)
async def test_udp_and_ping_fill_a_jumbo_frame(mtu: int, family: tuple[str, str]) -> None:
    """A datagram as big as the MTU allows goes in one frame, unfragmented; one above it in
    fragments; both arrive whole. Ping of the largest unfragmented size too."""
    a_link, b_link = MemoryLink.pair(mtu=mtu)
    a, b = await _open(a_link, b_link)
    ip_header = 20 if "." in family[0] else 40
    try:
        # The largest unfragmented echo request; it also resolves the neighbour both ways.
        assert await a.ping(family[1], size=mtu - ip_header - 8, timeout=5.0) > 0
        await b.create_datagram_endpoint(_Echo, local_addr=(family[1], 7))
        transport, proto = await a.create_datagram_endpoint(_Collect, local_addr=(family[0], 0))
        largest = min(mtu - ip_header - 8, 65507 if ip_header == 20 else 65527)
        for size in (largest, 16000, 65000):
            if ip_header == 40 and size > 65527:
                continue
            data = _payload(size)
            before = a.link.stats().tx_packets
            transport.sendto(data, (family[1], 7))
            assert await asyncio.wait_for(proto.got.get(), TIMEOUT) == data
            frames = a.link.stats().tx_packets - before
            if size <= mtu - ip_header - 8:
                assert frames == 1, (size, frames)
            else:
                assert frames > 1, (size, frames)
        transport.close()
    finally:
        await b.close()
        await a.close()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mtus", [(65520, 1500), (1500, 65520), (9000, 1500), (65520, 9000)])
async def test_mss_clamps_when_the_two_ends_mtus_differ(
    mtus: tuple[int, int], family: tuple[str, str]
) -> None:
    """Two hosts on one switch whose ports have different MTUs: each end sends segments the
    other's MSS allows, so nothing bigger than the smaller MTU ever reaches the wire."""
    switch = Switch(mtu=max(mtus))
    a_link, b_link = switch.port(mtu=mtus[0]), switch.port(mtu=mtus[1])
    a, b = await _open(a_link, b_link)
    ip_header = 20 if "." in family[0] else 40
    small = min(mtus)
    try:
        data = _payload(BULK // 2)
        # (Frames flooded before the second host listened are dropped as "no listener".)
        dropped = [(x.stats().rx_dropped, x.stats().tx_dropped) for x in (a_link, b_link)]
        for sender, receiver, host in ((a, b, family[1]), (b, a, family[0])):
            body, client_mss, server_mss = await _bulk(sender, receiver, host, data)
            assert body == data
            assert client_mss == server_mss <= small - ip_header - 20
            assert client_mss >= small - ip_header - 20 - 12
        # Nothing was too big for the far end's port. (Retransmissions are not counted here:
        # on a starved loop a timer may fire before an ACK is read, with nothing lost.)
        assert [(x.stats().rx_dropped, x.stats().tx_dropped) for x in (a_link, b_link)] == dropped
    finally:
        await b.close()
        await a.close()
