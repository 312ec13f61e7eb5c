"""UDP through whole stacks on in-memory links: asyncio's DatagramTransport/Protocol shape,
binding, demultiplexing, errors, broadcast, and the ICMP that UDP causes."""

from __future__ import annotations

import asyncio
import errno
import random

import pytest

import netstack
from netstack import AddressInUseError, ClosedError, Stack
from netstack.link import MemoryLink


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.errors: list[Exception] = []
        self.made = 0
        self.lost: list[Exception | None] = []
        self.error_event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)
        self.error_event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)

    async def get(self, timeout: float = 2.0) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.datagrams.get(), timeout)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def test_echo_round_trip_and_names(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    server, _ = await b.create_datagram_endpoint(Echo, local_addr=("198.18.0.2", 7))
    transport, client = await a.create_datagram_endpoint(Collector, local_addr=("0.0.0.0", 0))
    assert isinstance(transport, asyncio.DatagramTransport)
    assert client.made == 1
    host, port = transport.get_extra_info("sockname")
    assert host == "0.0.0.0" and 49152 <= port <= 65535
    assert transport.get_extra_info("peername") is None
    assert server.get_extra_info("sockname") == ("198.18.0.2", 7)
    transport.sendto(b"hello", ("198.18.0.2", 7))
    data, addr = await client.get()
    assert data == b"hello" and addr == ("198.18.0.2", 7)
    transport.close()
    assert transport.is_closing()
    await asyncio.sleep(0)
    assert client.lost == [None]


async def test_connected_endpoint_filters_and_sends_without_address(
    network: netstack.testing.Network,
) -> None:
    a = await network.host("198.18.0.1/24")
    b = await network.host("198.18.0.2/24")
    c = await network.host("198.18.0.3/24")
    listener, got = await a.create_datagram_endpoint(Collector, local_addr=(None, 5000))
    conn_b, _ = await b.create_datagram_endpoint(
        Collector, local_addr=("0.0.0.0", 6000), remote_addr=("198.18.0.1", 5000)
    )
    assert conn_b.get_extra_info("sockname") == ("198.18.0.2", 6000)
    assert conn_b.get_extra_info("peername") == ("198.18.0.1", 5000)
    conn_b.sendto(b"from b")
    assert await got.get() == (b"from b", ("198.18.0.2", 6000))
    with pytest.raises(ValueError, match="Invalid address"):
        conn_b.sendto(b"x", ("198.18.0.3", 5000))
    # Only the connected peer's datagrams reach a connected endpoint.
    _, b_conn_proto = conn_b, conn_b.get_protocol()
    other, _ = await c.create_datagram_endpoint(Collector, local_addr=("0.0.0.0", 5000))
    other.sendto(b"stranger", ("198.18.0.2", 6000))
    listener.sendto(b"peer", ("198.18.0.2", 6000))
    assert isinstance(b_conn_proto, Collector)
    assert await b_conn_proto.get() == (b"peer", ("198.18.0.1", 5000))
    await asyncio.sleep(0.05)
    assert b_conn_proto.datagrams.empty()


async def test_binding_to_specific_addresses(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    b.add_address("198.18.0.3/24")
    # Two specific addresses may share a port (like Linux without SO_REUSEADDR).
    _, on_2 = await b.create_datagram_endpoint(Collector, local_addr=("198.18.0.2", 4000))
    _, on_3 = await b.create_datagram_endpoint(Collector, local_addr=("198.18.0.3", 4000))
    sender, _ = await a.create_datagram_endpoint(Collector)
    sender.sendto(b"for .3", ("198.18.0.3", 4000))
    sender.sendto(b"for .2", ("198.18.0.2", 4000))
    assert (await on_3.get())[0] == b"for .3"
    assert (await on_2.get())[0] == b"for .2"
    assert on_2.datagrams.empty() and on_3.datagrams.empty()


async def test_bind_conflicts(stack_pair: tuple[Stack, Stack]) -> None:
    a, _ = stack_pair
    await a.create_datagram_endpoint(Collector, local_addr=("0.0.0.0", 53))
    with pytest.raises(AddressInUseError) as info:
        await a.create_datagram_endpoint(Collector, local_addr=("198.18.0.1", 53))
    assert isinstance(info.value, OSError) and info.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as not_ours:
        await a.create_datagram_endpoint(Collector, local_addr=("198.18.0.9", 54))
    assert not_ours.value.errno == errno.EADDRNOTAVAIL


async def test_ephemeral_ports_are_random_and_unique(stack_pair: tuple[Stack, Stack]) -> None:
    a, _ = stack_pair
    ports = []
    for _ in range(50):
        t, _p = await a.create_datagram_endpoint(Collector)
        ports.append(t.get_extra_info("sockname")[1])
    assert len(set(ports)) == 50
    assert all(49152 <= p <= 65535 for p in ports)
    assert ports != sorted(ports)  # RFC 6056: not sequential


@pytest.mark.parametrize(
    "local_addr, remote_addr, error",
    [
        (("0.0.0.0", 70000), None, ValueError),
        (("0.0.0.0", -1), None, ValueError),
        (("not an address", 1), None, ValueError),
        (None, ("198.18.0.2", 0), ValueError),
        (None, ("198.18.0.256", 1), ValueError),
        ("198.18.0.1:53", None, ValueError),
    ],
)
async def test_bad_addresses_raise_at_the_call(
    stack_pair: tuple[Stack, Stack], local_addr: object, remote_addr: object, error: type
) -> None:
    a, _ = stack_pair
    with pytest.raises(error):
        await a.create_datagram_endpoint(
            Collector,
            local_addr=local_addr,  # type: ignore[arg-type]
            remote_addr=remote_addr,  # type: ignore[arg-type]
        )


async def test_sendto_misuse(stack_pair: tuple[Stack, Stack]) -> None:
    a, _ = stack_pair
    t, _ = await a.create_datagram_endpoint(Collector)
    with pytest.raises(TypeError):
        t.sendto("text, not bytes", ("198.18.0.2", 9))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        t.sendto(b"x", ("198.18.0.2", 65536))
    with pytest.raises(ValueError):
        t.sendto(b"x")  # no address, not connected
    t.close()
    with pytest.raises(ClosedError):
        t.sendto(b"x", ("198.18.0.2", 9))


async def test_network_errors_reach_error_received(stack_pair: tuple[Stack, Stack]) -> None:
    a, _ = stack_pair
    t, proto = await a.create_datagram_endpoint(Collector)
    t.sendto(b"x" * 65508, ("198.18.0.2", 9))  # one byte over 65 535 - 28
    t.sendto(b"x", ("203.0.113.1", 9))  # no gateway: no route
    t.sendto(b"x", ("198.18.0.255", 9))  # broadcast without allow_broadcast
    assert [e.errno for e in proto.errors] == [  # type: ignore[attr-defined]
        errno.EMSGSIZE,
        errno.ENETUNREACH,
        errno.EACCES,
    ]


async def test_port_unreachable(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    t, proto = await a.create_datagram_endpoint(Collector, remote_addr=("198.18.0.2", 9999))
    t.sendto(b"anyone?")
    await asyncio.wait_for(proto.error_event.wait(), 2.0)
    assert isinstance(proto.errors[0], ConnectionRefusedError)
    assert b.stats()["icmp"]["errors_sent"] == 1
    assert b.stats()["udp"]["no_port"] == 1
    # An unconnected endpoint is not told (as with Linux sockets without IP_RECVERR).
    t2, proto2 = await a.create_datagram_endpoint(Collector)
    t2.sendto(b"anyone?", ("198.18.0.2", 9999))
    await asyncio.sleep(0.05)
    assert proto2.errors == []


async def test_icmp_errors_are_rate_limited(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    await a.ping("198.18.0.2")  # resolved first: the ARP queue would hold only 128
    t, _ = await a.create_datagram_endpoint(Collector)
    for _ in range(200):
        t.sendto(b"x", ("198.18.0.2", 9999))
    await asyncio.sleep(0.1)
    icmp = b.stats()["icmp"]
    assert icmp["errors_sent"] + icmp["errors_rate_limited"] == 200
    assert icmp["errors_rate_limited"] > 0
    assert icmp["errors_sent"] <= b.config.icmp.error_burst + 100 * 0.2


async def test_broadcast_reaches_every_host(network: netstack.testing.Network) -> None:
    hosts = [await network.host() for _ in range(4)]
    receivers = []
    for h in hosts[1:]:
        _, proto = await h.create_datagram_endpoint(Collector, local_addr=("0.0.0.0", 6789))
        receivers.append(proto)
    sender, _ = await hosts[0].create_datagram_endpoint(Collector, allow_broadcast=True)
    sender.sendto(b"to all", ("198.18.0.255", 6789))
    sender.sendto(b"to everyone", ("255.255.255.255", 6789))
    for proto in receivers:
        assert (await proto.get())[0] == b"to all"
        assert (await proto.get())[0] == b"to everyone"
    # Nobody answers a broadcast to a closed port with ICMP (RFC 1122 3.2.2).
    sender.sendto(b"closed", ("198.18.0.255", 6790))
    await asyncio.sleep(0.05)
    assert all(h.stats()["icmp"]["errors_sent"] == 0 for h in hosts)


async def test_datagram_to_self(stack_pair: tuple[Stack, Stack]) -> None:
    a, _ = stack_pair
    _, server = await a.create_datagram_endpoint(Collector, local_addr=("0.0.0.0", 7))
    client, _ = await a.create_datagram_endpoint(Collector)
    client.sendto(b"loop", ("198.18.0.1", 7))
    client.sendto(b"lo", ("127.0.0.1", 7))
    assert (await server.get())[0] == b"loop"
    assert (await server.get()) == (b"lo", ("127.0.0.1", client.get_extra_info("sockname")[1]))
    assert a.stats()["link"]["tx_packets"] == 1  # only the gratuitous ARP left the host


async def test_large_datagrams_fragment_and_reassemble(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    await b.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
    t, proto = await a.create_datagram_endpoint(Collector, remote_addr=("198.18.0.2", 7))
    blob = random.Random(1).randbytes(60000)
    t.sendto(blob)
    data, _ = await proto.get()
    assert data == blob
    sent = a.stats()["ipv4"]
    assert sent["fragments_sent"] == -(-60008 // 1480)  # ceil: 41 fragments of 1480 bytes
    assert b.stats()["ipv4"]["reassembled"] == 1
    t.sendto(b"y" * 65507)  # the largest datagram IPv4 can carry
    data, _ = await proto.get()
    assert data == b"y" * 65507


async def test_protocol_exceptions_do_not_break_the_stack(
    stack_pair: tuple[Stack, Stack],
) -> None:
    a, b = stack_pair
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))

    class Broken(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            raise RuntimeError("application bug")

    await b.create_datagram_endpoint(Broken, local_addr=("0.0.0.0", 7))
    t, _ = await a.create_datagram_endpoint(Collector)
    t.sendto(b"boom", ("198.18.0.2", 7))
    await asyncio.sleep(0.05)
    assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)
    assert await a.ping("198.18.0.2") > 0  # b still works
    assert b.stats()["stack"]["internal_errors"] == 0


async def test_close_closes_endpoints() -> None:
    a_link, b_link = MemoryLink.pair()
    stack = await Stack.open(a_link, ipv4="198.18.0.1/24")
    t, proto = await stack.create_datagram_endpoint(Collector)
    await stack.close()
    assert t.is_closing() and proto.lost == [None]
    assert a_link.closed
    with pytest.raises(ClosedError):
        await stack.create_datagram_endpoint(Collector)
    with pytest.raises(ClosedError):
        await stack.ping("198.18.0.2")
    await stack.close()  # twice is fine


async def test_a_packed_receiver_takes_datagrams_and_answers_by_packed_address(
    stack_pair: tuple[Stack, Stack],
) -> None:
    from netstack.drivers.udp import DatagramTransport

    a, b = stack_pair
    server, protocol = await b.create_datagram_endpoint(Collector, local_addr=("0.0.0.0", 7))
    assert isinstance(server, DatagramTransport)
    heard: list[tuple[bytes, bytes, int, int]] = []

    def receiver(data: memoryview, src: bytes, port: int, ifindex: int) -> None:
        heard.append((bytes(data), src, port, ifindex))
        server.sendto_packed(b"re: " + data, src, port)

    server.set_packed_receiver(receiver)
    client, replies = await a.create_datagram_endpoint(Collector, local_addr=("0.0.0.0", 0))
    port = client.get_extra_info("sockname")[1]
    client.sendto(b"one", ("198.18.0.2", 7))
    assert await replies.get() == (b"re: one", ("198.18.0.2", 7))
    assert heard == [(b"one", bytes([198, 18, 0, 1]), port, heard[0][3])]
    assert protocol.datagrams.empty()
    # None gives the datagrams back to the protocol.
    server.set_packed_receiver(None)
    client.sendto(b"two", ("198.18.0.2", 7))
    assert await protocol.get() == (b"two", ("198.18.0.1", port))
    assert len(heard) == 1
    # A connected endpoint sends to its peer only.
    connected, _ = await a.create_datagram_endpoint(Collector, remote_addr=("198.18.0.2", 7))
    connected.sendto_packed(b"three", bytes([198, 18, 0, 2]), 7)  # type: ignore[attr-defined]
    assert (await protocol.get())[0] == b"three"
    with pytest.raises(ValueError):
        connected.sendto_packed(b"x", bytes([198, 18, 0, 2]), 8)  # type: ignore[attr-defined]
    server.close()
    with pytest.raises(ClosedError):
        server.sendto_packed(b"x", bytes([198, 18, 0, 1]), port)
