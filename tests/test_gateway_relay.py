"""The user-mode gateway (netstack.gateway) and the stack's catch-all facility on memory links.

The "host" here is itself a netstack stack (``host``, 198.18.5.2) on a memory link to a server
stack (``server``, 198.18.5.1): the gateway's flows leave through ``host`` exactly as they
leave through :class:`netstack.HostStack` in the peer test. The guest is a netstack stack that
takes its address from the gateway's DHCP server.

    guest (DHCP: 10.0.2.100) --mem-- gateway 10.0.2.2 (DNS 10.0.2.3)
                                      | host = Stack 198.18.5.2 --mem-- server 198.18.5.1

Covered: TCP to an address the gateway does not have, accepted only after the host's connect
succeeded, bytes both ways with sha256, half-close each way; a refused connect is a reset for
the guest; a host that never answers is ICMP host unreachable (EHOSTUNREACH); UDP relayed
with the reply's source the original destination; DNS through the gateway's address; ping
answered only when the host's ping was; a port forward from the host into the guest; flow
control (a slow reader on one side pauses the other); table bounds (TCP flows and UDP flows)
counted; idle UDP flows time out; the catch-all costs a host nothing (no handler, same path).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

import netstack.gateway
from netstack import Stack, StackConfig
from netstack.gateway import Gateway, GatewayLimits, PortForward
from netstack.link import Impairment, MemoryLink
from netstack.proto.checksum import checksum
from netstack.proto.dhcp.client import DhcpClientConfig

SERVER = "198.18.5.1"
#: The DHCP client's conflict probe (RFC 5227) shortened.
QUICK = StackConfig(
    dhcp=DhcpClientConfig(probe_wait=0.02, probe_min=0.02, probe_max=0.05, announce_wait=0.05)
)


@dataclass
class World:
    gw: Gateway
    guest: Stack
    host: Stack
    server: Stack


@pytest.fixture
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    limits = getattr(request, "param", None) or GatewayLimits(connect_timeout=1.0)
    g_link, gw_link = MemoryLink.pair()
    h_link, s_link = MemoryLink.pair()
    server = await Stack.open(s_link, ipv4=f"{SERVER}/24")
    host = await Stack.open(h_link, ipv4="198.18.5.2/24")
    gw = await netstack.gateway.start(
        gw_link, host=host, dns_servers=[SERVER], ipv6=None, limits=limits,
        forwards=["tcp:2222:22", "udp:5353:53"],
    )  # fmt: skip
    guest = await Stack.open(g_link, dhcp=True, config=QUICK)
    try:
        yield World(gw, guest, host, server)
    finally:
        await guest.close()
        await gw.close()
        await host.close()
        await server.close()


async def test_guest_configured_by_dhcp(world: World) -> None:
    assert [str(a) for a in world.guest.addresses if a.version == 4] == ["10.0.2.100/24"]
    assert world.guest.dhcp is not None and world.guest.dhcp.lease is not None
    assert [str(s) for s in world.guest.dhcp.lease.dns_servers] == ["10.0.2.3"]
    assert str(world.guest.dhcp.lease.router) == "10.0.2.2"


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.write_eof()
    await writer.drain()
    writer.close()


async def test_tcp_relayed_both_ways_with_half_close(world: World) -> None:
    seen: list[tuple[str, int]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername"))
        await echo(reader, writer)

    await world.server.start_server(handler, SERVER, 7)
    payload = os.urandom(3_000_000)
    reader, writer = await world.guest.open_connection(SERVER, 7)
    assert writer.get_extra_info("peername")[0] == SERVER

    async def send() -> None:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()  # the guest's FIN: the server sees EOF, and still answers

    sender = asyncio.create_task(send())
    got = await asyncio.wait_for(reader.read(), 30)  # until the server's FIN came across
    await sender
    writer.close()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
    # The server saw the host stack's address, not the guest's.
    assert seen == [("198.18.5.2", seen[0][1])]
    stats = world.gw.stats()
    assert stats["tcp_flows"] == 1 and stats["tcp_half_closes"] == 2, stats
    assert stats["tcp_bytes_out"] == stats["tcp_bytes_in"] == len(payload)


async def test_server_half_close_reaches_the_guest(world: World) -> None:
    """The server sends and shuts down its side first; the guest still sends after that."""
    got: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"banner\n")
        writer.write_eof()
        got.append(await reader.read())
        writer.close()

    await world.server.start_server(handler, SERVER, 8)
    reader, writer = await world.guest.open_connection(SERVER, 8)
    assert await asyncio.wait_for(reader.read(), 10) == b"banner\n"
    writer.write(b"after your FIN")
    writer.write_eof()
    await writer.drain()
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [b"after your FIN"]
    writer.close()


async def test_syn_answered_only_after_the_host_connected(world: World) -> None:
    """No SYN-ACK before the host's connect succeeds: a refused port is a reset."""
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(world.guest.open_connection(SERVER, 9), 10)
    stats = world.gw.stats()
    assert stats["tcp_connect_failed"] == 1 and stats["tcp_flows"] == 0, stats
    assert stats["tcp_pending"] == 0 and stats["tcp_open"] == 0


async def test_unreachable_host_is_icmp_host_unreachable(world: World) -> None:
    # 198.18.5.9 is on the host's network and nobody answers ARP for it: the host's connect
    # does not complete within connect_timeout, and the guest hears ICMP host unreachable
    # (netstack's TCP takes it as a soft error, RFC 5461, and tries again: the kernel
    # gives up at once, as the peer test shows).
    guest_icmp = world.guest.stats()["icmp"]["errors_received"]
    with pytest.raises((OSError, TimeoutError)):
        await asyncio.wait_for(world.guest.open_connection("198.18.5.9", 80), 4)
    stats = world.gw.stats()
    assert stats["tcp_connect_timeouts"] >= 1 and stats["tcp_flows"] == 0, stats
    assert stats["stack"]["icmp"]["errors_sent"] >= 1
    assert world.guest.stats()["icmp"]["errors_received"] > guest_icmp


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait((data, addr))


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data.upper() + f" from {addr[0]}".encode(), addr)  # type: ignore[attr-defined]


async def test_udp_relayed_with_the_original_source(world: World) -> None:
    await world.server.create_datagram_endpoint(Echo, local_addr=(SERVER, 7))
    await world.server.create_datagram_endpoint(Echo, local_addr=(SERVER, 8))
    transport, proto = await world.guest.create_datagram_endpoint(
        Collect, local_addr=("0.0.0.0", 4000)
    )
    transport.sendto(b"one", (SERVER, 7))
    transport.sendto(b"two", (SERVER, 8))  # the same guest port: the same mapping
    answers = {await asyncio.wait_for(proto.got.get(), 10) for _ in range(2)}
    assert answers == {
        (b"ONE from 198.18.5.2", (SERVER, 7)),
        (b"TWO from 198.18.5.2", (SERVER, 8)),
    }
    stats = world.gw.stats()
    assert stats["udp_flows"] == 1 and stats["udp_open"] == 1, stats
    transport.close()


async def test_dns_through_the_gateway(world: World) -> None:
    zone = (
        "$ORIGIN host.test.\n$TTL 60\n@ IN SOA ns h 1 60 60 60 60\n@ IN NS ns\nns IN A 198.18.5.1\n"
    )
    await netstack.dns.serve(world.server, zone)
    assert await world.guest.resolve("ns.host.test") == ["198.18.5.1"]
    stats = world.gw.stats()
    assert stats["dns_queries"] >= 1 and stats["dns_answers"] >= 1, stats


async def test_ping_answered_only_when_the_host_was(world: World) -> None:
    assert await world.guest.ping(SERVER, timeout=5) > 0
    with pytest.raises(TimeoutError):
        await world.guest.ping("198.18.5.9", timeout=4)
    stats = world.gw.stats()
    assert stats["echo_replies"] == 1 and stats["echo_unanswered"] == 1, stats


async def test_port_forward_into_the_guest(world: World) -> None:
    await world.guest.start_server(echo, port=22)
    reader, writer = await world.server.open_connection("198.18.5.2", 2222)
    writer.write(b"hello guest")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 10) == b"hello guest"
    writer.close()
    # UDP: a host sender's datagrams reach the guest's port 53, answers come back.
    await world.guest.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 53))
    transport, proto = await world.server.create_datagram_endpoint(
        Collect, remote_addr=("198.18.5.2", 5353)
    )
    transport.sendto(b"q")
    data, _ = await asyncio.wait_for(proto.got.get(), 10)
    assert data.startswith(b"Q from 10.0.2.2")
    transport.close()


async def test_flow_control_pauses_the_other_side(world: World) -> None:
    """The guest does not read: the gateway stops reading the server, whose writes then
    wait in its own buffer, instead of the gateway buffering everything."""
    sent = asyncio.Event()
    wrote = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal wrote
        chunk = b"x" * 65536
        try:
            for _ in range(200):  # 13 MB, far more than every buffer on the way
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), 2)
                wrote += len(chunk)
        except (TimeoutError, ConnectionError):
            pass
        sent.set()
        writer.close()

    await world.server.start_server(handler, SERVER, 10)
    reader, writer = await world.guest.open_connection(SERVER, 10)
    reader._transport.pause_reading()  # type: ignore[attr-defined]
    await asyncio.wait_for(sent.wait(), 30)
    assert wrote < 100 * 65536, wrote  # the server was held back
    assert world.gw.stats()["tcp_pauses"] >= 1
    writer.close()


@pytest.mark.parametrize(
    "world", [GatewayLimits(max_tcp_flows=2, max_udp_flows=2, udp_timeout=0.5)], indirect=True
)
async def test_tables_are_bounded(world: World) -> None:
    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    await world.server.start_server(hold, SERVER, 11)
    kept = [await world.guest.open_connection(SERVER, 11) for _ in range(2)]
    with pytest.raises(ConnectionRefusedError):
        await world.guest.open_connection(SERVER, 11)
    assert world.gw.stats()["tcp_refused_full"] == 1
    for _, w in kept:
        w.close()
    # UDP: three guest ports, two flows kept; the oldest evicted, then all time out.
    await world.server.create_datagram_endpoint(Echo, local_addr=(SERVER, 7))
    for port in (4001, 4002, 4003):
        transport, proto = await world.guest.create_datagram_endpoint(
            Collect, local_addr=("0.0.0.0", port)
        )
        transport.sendto(b"x", (SERVER, 7))
        await asyncio.wait_for(proto.got.get(), 10)
        transport.close()
    stats = world.gw.stats()
    assert stats["udp_flows"] == 3 and stats["udp_flows_evicted"] == 1 and stats["udp_open"] == 2
    for _ in range(300):
        if world.gw.stats()["udp_open"] == 0:
            break
        await asyncio.sleep(0.01)
    assert world.gw.stats()["udp_timeouts"] == 2


def test_port_forward_text() -> None:
    assert PortForward.parse("tcp:8080:80") == PortForward("tcp", 8080, 80)
    assert PortForward.parse("udp:[::1]:53:10.0.2.100:5353") == PortForward(
        "udp", 53, 5353, "::1", "10.0.2.100"
    )
    for bad in ("tcp:80", "sctp:1:2", "tcp:0:80", "tcp:x:80", "tcp:1.2.3:1:4.5.6.7:2"):
        with pytest.raises(ValueError):
            PortForward.parse(bad)


async def test_no_catch_all_means_a_host() -> None:
    """Without handlers the stack answers a SYN to a closed port with a reset and drops
    datagrams to other addresses, as before; with them, it takes both."""
    a_link, b_link = MemoryLink.pair()
    async with (
        await Stack.open(a_link, ipv4="198.18.0.1/24") as a,
        await Stack.open(b_link, ipv4="198.18.0.2/24") as b,
    ):
        a.add_route("0.0.0.0/0", gateway="198.18.0.2")
        with pytest.raises(ConnectionRefusedError):
            await a.open_connection("198.18.0.2", 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(a.open_connection("198.18.9.9", 1), 0.5)
        assert b.stats()["ipv4"]["drops"].get("not_for_us", 0) >= 1
        caught: list[tuple[bytes, int]] = []

        def on_syn(request: object, now: float) -> bool:
            caught.append(request.local)  # type: ignore[attr-defined]
            b.refuse_caught(request)  # type: ignore[arg-type]
            return True

        b.catch_all(tcp=on_syn)
        with pytest.raises(ConnectionRefusedError):
            await a.open_connection("198.18.9.9", 1)
        assert caught == [(bytes([198, 18, 9, 9]), 1)]
        assert b.stats()["tcp"]["syns_caught"] == 1
        b.catch_all()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(a.open_connection("198.18.9.9", 2), 0.5)


def ipv4_datagram(src: bytes, dst: bytes, proto: int, payload: bytes) -> bytes:
    total = 20 + len(payload)
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, proto, 0,
                                   src, dst))  # fmt: skip
    struct.pack_into("!H", header, 10, checksum(header))
    return bytes(header) + payload


def transport(src: bytes, dst: bytes, proto: int, segment: bytearray, at: int) -> bytes:
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    struct.pack_into("!H", segment, at, checksum(pseudo + segment))
    return ipv4_datagram(src, dst, proto, bytes(segment))


@pytest.mark.parametrize(
    "world",
    [GatewayLimits(connect_timeout=0.5, max_pending=8, max_udp_flows=8, max_pings=4)],
    indirect=True,
)
async def test_floods_and_garbage_are_bounded_and_counted(world: World) -> None:
    """SYNs to many addresses, datagrams from many ports, echo requests, and mangled copies
    of them (seeded): every table stays within its bound, what did not fit is counted,
    nothing raises, and the gateway relays again afterwards."""
    rng = random.Random(4787)
    guest_mac = bytes.fromhex(world.guest.interfaces[0].mac.replace(":", ""))
    gw_mac = bytes.fromhex(world.gw.stack.interfaces[0].mac.replace(":", ""))
    src = bytes([10, 0, 2, 100])
    inject = world.guest.interfaces[0].link.transmit  # type: ignore[attr-defined]
    # The host has a way out (to the server, which forwards nothing): its connects to those
    # addresses wait until connect_timeout, so the connects in progress pile up.
    world.host.add_route("0.0.0.0/0", gateway=SERVER)
    frames = []
    for i in range(600):
        dst = bytes([198, 18, rng.randrange(6, 250), rng.randrange(1, 255)])
        kind = i % 3
        if kind == 0:
            seg = bytearray(struct.pack("!HHIIHHHH", 40000 + i, 80, rng.getrandbits(32), 0,
                                        (5 << 12) | 0x02, 65535, 0, 0))  # fmt: skip
            datagram = transport(src, dst, 6, seg, 16)
        elif kind == 1:
            body = b"x" * rng.randrange(0, 64)
            seg = bytearray(struct.pack("!HHHH", 20000 + i, 9, 8 + len(body), 0) + body)
            datagram = transport(src, dst, 17, seg, 6)
        else:
            icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 7, i) + b"ping")
            struct.pack_into("!H", icmp, 2, checksum(icmp))
            datagram = ipv4_datagram(src, dst, 1, bytes(icmp))
        frame = bytearray(gw_mac + guest_mac + b"\x08\x00" + datagram)
        if i % 5 == 0:
            for _ in range(rng.randrange(1, 4)):
                frame[rng.randrange(14, len(frame))] = rng.randrange(256)
        frames.append(frame)
    for i, frame in enumerate(frames):
        inject(frame)
        if i % 20 == 0:
            await asyncio.sleep(0)
            stats = world.gw.stats()
            assert stats["tcp_pending"] <= 8 and stats["udp_open"] <= 8
            assert stats["pings_in_flight"] <= 4
    await asyncio.sleep(1.5)  # the connects time out
    stats = world.gw.stats()
    assert stats["tcp_refused_pending"] > 0, stats
    assert stats["udp_flows_evicted"] > 0 and stats["echo_dropped"] > 0, stats
    assert stats["internal_errors"] == 0 and stats["stack"]["stack"]["internal_errors"] == 0
    assert stats["tcp_pending"] == 0 and stats["tcp_open"] == 0
    # And it still relays.
    await world.server.create_datagram_endpoint(Echo, local_addr=(SERVER, 7))
    t, proto = await world.guest.create_datagram_endpoint(Collect, local_addr=("0.0.0.0", 4100))
    t.sendto(b"again", (SERVER, 7))
    data, _ = await asyncio.wait_for(proto.got.get(), 10)
    assert data.startswith(b"AGAIN")
    t.close()


async def test_port_forward_from_host_sockets_keeps_an_early_eof() -> None:
    """The host side is the operating system's (HostStack, on 127.0.0.1 only): a client that
    writes and half-closes at once, before the gateway's connection into the guest exists,
    still has its bytes and its EOF carried into the guest (uvloop reads an accepted
    connection before its protocol could pause it)."""
    import socket

    with socket.socket() as probe:  # a free port on the loopback for the forward
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A slow cable to the guest: the client's bytes and FIN reach the host socket long
    # before the gateway's connection into the guest is made.
    g_link, gw_link = MemoryLink.pair(impairment=Impairment(delay=0.1, seed=1))
    gw = await netstack.gateway.start(
        gw_link, ipv6=None, dhcp=False, forwards=[f"tcp:127.0.0.1:{port}:7"]
    )
    guest = await Stack.open(g_link, ipv4="10.0.2.100/24", gateway="10.0.2.2")
    try:
        await guest.start_server(echo, port=7)
        for data in (b"early bytes", b"", b"x" * 100_000):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), 10) == data
            writer.close()
        assert gw.stats()["forward_connections"] == 3
    finally:
        await guest.close()
        await gw.close()
