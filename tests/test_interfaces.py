"""A stack with several interfaces, on in-memory links: two subnets, a host on each, reached
with TCP, UDP and ping over IPv4 and IPv6 (link-local addresses with their scope too), by the
right interface and from the right source address; routes by longest prefix and metric, a
default route per interface; answers out of the interface the question came in on; removing
an interface; and the errors bad input gets.

The topology: ``a`` has eth0 on net 1 (198.18.1.1/24, fd00:1::1/64) and eth1 on net 2
(198.18.2.1/24, fd00:2::1/64); ``b`` is on net 1 (.2), ``c`` on net 2 (.2).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from netstack import NoRouteError, Stack, StackConfig
from netstack.link import MemoryLink
from netstack.proto.ipv6.addrconf import AddrconfConfig
from netstack.proto.ipv6.layer import IPv6Config

#: DAD and router solicitation on a memory link need not wait the RFC's seconds.
FAST = StackConfig(
    ipv6=IPv6Config(
        addrconf=AddrconfConfig(retrans_timer=0.05, max_rtr_solicitation_delay=0.02,
                                rtr_solicitation_interval=0.2)
    )
)  # fmt: skip


@dataclass
class Nets:
    a: Stack
    b: Stack
    c: Stack


@pytest.fixture
async def nets() -> AsyncIterator[Nets]:
    a1, b1 = MemoryLink.pair()
    a2, c2 = MemoryLink.pair()
    a = await Stack.open(a1, ipv4="198.18.1.1/24", ipv6="fd00:1::1/64", config=FAST)
    b = await Stack.open(b1, ipv4="198.18.1.2/24", ipv6="fd00:1::2/64", config=FAST)
    c = await Stack.open(c2, ipv4="198.18.2.2/24", ipv6="fd00:2::2/64", config=FAST)
    try:
        await a.add_interface(a2, ipv4="198.18.2.1/24", ipv6="fd00:2::1/64")
        yield Nets(a, b, c)
    finally:
        for stack in (a, b, c):
            await stack.close()


def link_local(stack: Stack, interface: str = "eth0") -> str:
    return next(
        str(x.ip)
        for x in stack.interface(interface).addresses
        if x.version == 6 and x.ip.is_link_local
    )


def tx(stack: Stack, interface: str) -> int:
    """Frames sent out of one interface of ``stack``."""
    return int(stack.stats()["interfaces"][interface]["link"]["tx_packets"])


async def peer_of_tcp(server: Stack, client: Stack, host: str, port: int) -> tuple[str, ...]:
    """Connect from ``client`` to ``server`` at ``host`` and return the address the server
    saw the connection come from."""
    seen: asyncio.Future[tuple[str, ...]] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(writer.get_extra_info("peername"))
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    srv = await server.start_server(handle, port=port)
    try:
        reader, writer = await client.open_connection(host, port)
        writer.write(b"hello")
        assert await asyncio.wait_for(reader.read(100), 5) == b"hello"
        writer.close()
        return await asyncio.wait_for(seen, 5)
    finally:
        srv.close()


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[object, ...]]] = asyncio.Queue()
        self.errors: list[Exception] = []

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


async def udp_source(sender: Stack, receiver: Stack, dst: str, bind: str) -> tuple[object, ...]:
    """Send one datagram from ``sender`` to ``dst`` and return the address ``receiver`` saw
    it come from."""
    t, proto = await receiver.create_datagram_endpoint(Collector, local_addr=(bind, 9999))
    s, _ = await sender.create_datagram_endpoint(asyncio.DatagramProtocol)
    try:
        s.sendto(b"ping", (dst, 9999))
        data, addr = await asyncio.wait_for(proto.queue.get(), 5)
        assert data == b"ping"
        return addr
    finally:
        s.close()
        t.close()


# -- reaching both nets --------------------------------------------------------------------------


async def test_interfaces_listed(nets: Nets) -> None:
    a = nets.a
    eth0, eth1 = a.interfaces
    assert (eth0.name, eth0.index, eth1.name, eth1.index) == ("eth0", 1, "eth1", 2)
    assert eth0.link is a.link and eth0.mac == a.mac and eth1.mac != eth0.mac
    assert eth1.mtu == 1500
    assert [str(x) for x in eth1.addresses if x.version == 4] == ["198.18.2.1/24"]
    assert {str(x) for x in eth1.addresses if x.version == 6 and not x.ip.is_link_local} == {
        "fd00:2::1/64"
    }
    # The stack's addresses: IPv4 first, each with its interface.
    assert [(str(x), x.interface) for x in a.addresses if x.version == 4] == [  # type: ignore[union-attr]
        ("198.18.1.1/24", "eth0"),
        ("198.18.2.1/24", "eth1"),
    ]
    # Each interface has a link-local address of its own.
    assert link_local(a, "eth0") != link_local(a, "eth1")
    assert a.interface("eth1") is eth1 and a.interface(2) is eth1


@pytest.mark.parametrize("family", [4, 6])
async def test_tcp_udp_ping_reach_both_nets(nets: Nets, family: int) -> None:
    a, b, c = nets.a, nets.b, nets.c
    b_ip, c_ip = ("198.18.1.2", "198.18.2.2") if family == 4 else ("fd00:1::2", "fd00:2::2")
    a_ip1, a_ip2 = ("198.18.1.1", "198.18.2.1") if family == 4 else ("fd00:1::1", "fd00:2::1")
    wild = "0.0.0.0" if family == 4 else "::"
    before0, before1 = tx(a, "eth0"), tx(a, "eth1")
    # ping, out of the interface of each net
    assert await a.ping(b_ip, timeout=5) > 0
    after0, after1 = tx(a, "eth0"), tx(a, "eth1")
    assert after0 > before0 and after1 == before1
    assert await a.ping(c_ip, timeout=5) > 0
    assert tx(a, "eth1") > after1 and tx(a, "eth0") == after0
    # TCP: each host sees the address of a on its own net
    assert (await peer_of_tcp(b, a, b_ip, 7001))[0] == a_ip1
    assert (await peer_of_tcp(c, a, c_ip, 7002))[0] == a_ip2
    # UDP: likewise, source chosen by the outgoing interface
    assert (await udp_source(a, b, b_ip, wild))[0] == a_ip1
    assert (await udp_source(a, c, c_ip, wild))[0] == a_ip2
    # and the other way: the hosts reach a's address on their net
    assert (await peer_of_tcp(a, b, a_ip1, 7003))[0] == b_ip
    assert (await peer_of_tcp(a, c, a_ip2, 7004))[0] == c_ip
    assert await b.ping(a_ip1, timeout=5) > 0 and await c.ping(a_ip2, timeout=5) > 0


async def test_route_picks_interface_and_source(nets: Nets) -> None:
    a = nets.a
    for dst, src, iface in (
        ("198.18.1.2", "198.18.1.1", 1),
        ("198.18.2.2", "198.18.2.1", 2),
        ("fd00:1::2", "fd00:1::1", 1),
        ("fd00:2::2", "fd00:2::1", 2),
    ):
        route = a.ip.route(ipaddress.ip_address(dst).packed)
        assert route.src == ipaddress.ip_address(src).packed
        assert route.iface is not None and route.iface.index == iface
    # Routes carry their interface's name.
    connected = {(str(r.network), r.interface) for r in a.routes if r.gateway is None}
    assert ("198.18.1.0/24", "eth0") in connected and ("198.18.2.0/24", "eth1") in connected
    assert ("fd00:2::/64", "eth1") in connected and ("fe80::/64", "eth1") in connected


async def test_link_local_needs_and_takes_a_scope(nets: Nets) -> None:
    a, b, c = nets.a, nets.b, nets.c
    b_ll, c_ll = link_local(b), link_local(c)
    with pytest.raises(NoRouteError, match="link-local"):
        await a.ping(b_ll, timeout=2)
    with pytest.raises(ValueError, match="interface"):
        await a.ping(f"{b_ll}%eth7", timeout=2)
    assert await a.ping(f"{b_ll}%eth0", timeout=5) > 0
    assert await a.ping(f"{c_ll}%2", timeout=5) > 0
    # The wrong interface: nobody there has that address.
    with pytest.raises(OSError):
        await a.ping(f"{c_ll}%eth0", timeout=1.5)
    # TCP to a link-local address with its zone; the server sees a's link-local source, and
    # each side's addresses carry the scope id of its interface.
    seen = await peer_of_tcp(c, a, f"{c_ll}%eth1", 7010)
    assert seen == (link_local(a, "eth1"), seen[1], 0, 1)
    srv = await c.start_server(lambda r, w: None, port=7011)
    _, writer = await a.open_connection(f"{c_ll}%eth1", 7011)
    assert writer.get_extra_info("peername") == (c_ll, 7011, 0, 2)
    assert writer.get_extra_info("sockname")[3] == 2
    writer.close()
    srv.close()
    # UDP with the scope id of a 4-tuple; a datagram from a link-local source arrives with
    # its interface as the scope id.
    t, at_a = await a.create_datagram_endpoint(Collector, local_addr=("::", 9998))
    s, at_b = await b.create_datagram_endpoint(Collector, local_addr=("::", 0))
    try:
        s.sendto(b"to a", (link_local(a, "eth0"), 9998))
        data, addr = await asyncio.wait_for(at_a.queue.get(), 5)
        assert data == b"to a" and addr[0] == b_ll and addr[3] == 1
        t.sendto(b"back", (b_ll, addr[1], 0, 1))
        data, addr = await asyncio.wait_for(at_b.queue.get(), 5)
        assert data == b"back" and addr[0] == link_local(a, "eth0")
        t.sendto(b"lost", (b_ll, addr[1]))  # no scope: which link?
        assert isinstance(at_a.errors[-1], NoRouteError)
    finally:
        s.close()
        t.close()


async def test_answers_leave_by_the_interface_asked_on(nets: Nets) -> None:
    """Echo replies go out of the interface the request came in on: to a link-local peer
    (which only that link reaches) and where the routing table would pick another way."""
    a, b, c = nets.a, nets.b, nets.c
    assert await b.ping(link_local(a, "eth0"), timeout=5) > 0
    assert await c.ping(link_local(a, "eth1"), timeout=5) > 0
    # a's own traffic to c goes via b now (a longer prefix), but c's ping is answered on
    # net 2, where it came from: b sees none of it.
    a.add_route("198.18.2.2/32", gateway="198.18.1.2", interface="eth0")
    route = a.ip.route(ipaddress.ip_address("198.18.2.2").packed)
    assert route.next_hop == ipaddress.ip_address("198.18.1.2").packed
    b_rx = b.stats()["ipv4"]["rx_packets"]
    assert await c.ping("198.18.2.1", timeout=5) > 0
    assert b.stats()["ipv4"]["rx_packets"] == b_rx


async def test_arp_answers_only_for_the_interface_addresses(nets: Nets) -> None:
    """Each interface answers ARP for its own addresses (Linux's arp_ignore=1)."""
    a, b = nets.a, nets.b
    before = a.stats()["interfaces"]["eth0"]["arp"]["replies_sent"]
    b.add_route("198.18.2.0/24", interface="eth0")  # b thinks net 2 is on its link
    with pytest.raises(OSError) as failed:
        await b.ping("198.18.2.1", timeout=10)
    assert failed.value.errno == errno.EHOSTUNREACH  # b's ARP went unanswered
    assert a.stats()["interfaces"]["eth0"]["arp"]["replies_sent"] == before
    assert a.stats()["interfaces"]["eth0"]["arp"]["requests_received"] >= 1


# -- routes: longest prefix, metric, a default route per interface --------------------------------


async def test_default_route_per_interface_and_metric(nets: Nets) -> None:
    a, b, c = nets.a, nets.b, nets.c
    far = ipaddress.ip_address("203.0.113.9").packed
    far6 = ipaddress.ip_address("2001:db8::9").packed
    a.add_route("0.0.0.0/0", gateway="198.18.1.2", interface="eth0", metric=10)
    a.add_route("0.0.0.0/0", gateway="198.18.2.2", interface=a.interfaces[1], metric=5)
    a.add_route("::/0", gateway="fd00:1::2", metric=5)
    a.add_route("::/0", gateway=f"{link_local(c)}%eth1", metric=1)
    assert a.ip.route(far).next_hop == ipaddress.ip_address("198.18.2.2").packed
    assert a.ip.route(far).src == ipaddress.ip_address("198.18.2.1").packed
    assert a.ip.route(far6).iface.index == 2  # type: ignore[union-attr]
    assert a.ip.route(far6).src == ipaddress.ip_address("fd00:2::1").packed
    # A datagram to somewhere far goes to c (which is no router: it drops it).
    s, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol)
    s.sendto(b"far away", ("203.0.113.9", 9))
    s.sendto(b"far away", ("2001:db8::9", 9))
    for _ in range(100):
        if c.stats()["ipv4"]["drops"].get("not_for_us") and c.stats()["ipv6"]["drops"].get(
            "not_for_us"
        ):
            break
        await asyncio.sleep(0.02)
    assert c.stats()["ipv4"]["drops"]["not_for_us"] == 1
    assert c.stats()["ipv6"]["drops"]["not_for_us"] == 1
    assert "not_for_us" not in b.stats()["ipv4"]["drops"]
    s.close()
    # The lower metric removed, the other default takes over; a longer prefix beats both.
    a.remove_route("0.0.0.0/0", gateway="198.18.2.2", interface="eth1")
    assert a.ip.route(far).next_hop == ipaddress.ip_address("198.18.1.2").packed
    a.add_route("203.0.113.0/24", gateway="198.18.2.2", metric=100)
    assert a.ip.route(far).next_hop == ipaddress.ip_address("198.18.2.2").packed
    defaults = [
        (r.interface, r.metric) for r in a.routes if str(r.network) in ("0.0.0.0/0", "::/0")
    ]
    assert ("eth0", 10) in defaults and ("eth1", 1) in defaults


# -- removing an interface ------------------------------------------------------------------------


async def test_remove_interface(nets: Nets) -> None:
    a, c = nets.a, nets.c
    eth1 = a.interfaces[1]
    # A connection through eth1, open while it goes.
    lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    class Client(asyncio.Protocol):
        def connection_lost(self, exc: BaseException | None) -> None:
            lost.set_result(exc)

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    srv = await c.start_server(hold, port=7020)
    transport, _ = await a.create_connection(Client, "198.18.2.2", 7020)
    await a.remove_interface(eth1)
    exc = await asyncio.wait_for(lost, 5)
    assert isinstance(exc, OSError) and exc.errno == errno.ENETDOWN
    assert transport.is_closing()
    assert eth1.removed and a.interfaces == [a.interface("eth0")]
    assert all(x.interface == "eth0" for x in a.addresses)  # type: ignore[union-attr]
    assert all(r.interface in ("eth0", None) for r in a.routes)
    assert "198.18.2.0/24" not in {str(r.network) for r in a.routes}
    assert "eth1" not in a.stats()["interfaces"]
    with pytest.raises(NoRouteError):
        await a.ping("198.18.2.2", timeout=1)
    with pytest.raises(OSError):
        await a.open_connection("fd00:2::2", 7020)
    # b's net still works; eth1's link was disconnected; the last interface stays.
    assert await a.ping("198.18.1.2", timeout=5) > 0
    with pytest.raises(ValueError, match="not an interface"):
        await a.remove_interface(eth1)
    with pytest.raises(ValueError, match="one interface"):
        await a.remove_interface("eth0")
    srv.close()
    # A new interface gets a new index; the name is free again.
    x, _ = MemoryLink.pair()
    again = await a.add_interface(x, ipv4="198.18.2.1/24", name="eth1")
    assert again.index == 3 and a.scope_id("eth1") == 3


# -- bad input ------------------------------------------------------------------------------------


async def test_bad_input(nets: Nets) -> None:
    a, b = nets.a, nets.b
    link, _ = MemoryLink.pair()
    # Addresses that overlap another interface's, or one the stack has already.
    with pytest.raises(ValueError, match="overlaps"):
        await a.add_interface(link, ipv4="198.18.1.77/24")
    with pytest.raises(ValueError, match="overlaps"):
        await a.add_interface(link, ipv4="198.18.0.1/16")
    with pytest.raises(ValueError, match="already"):
        a.add_address("198.18.2.1/24", interface="eth0")
    with pytest.raises(ValueError, match="overlaps"):
        a.add_address("fd00:1::9/64", interface="eth1")
    # The failed add_interface left nothing behind, and the link is still the caller's.
    assert [i.name for i in a.interfaces] == ["eth0", "eth1"]
    third = await a.add_interface(link, ipv4="198.18.3.1/24")
    assert third.index == 3 and third.name == "eth2"
    await a.remove_interface(third)
    link, _ = MemoryLink.pair()
    # The link of an interface, a name in use, a name that is a number.
    with pytest.raises(ValueError, match="already"):
        await a.add_interface(a.link)
    with pytest.raises(ValueError, match="called"):
        await a.add_interface(link, name="eth1")
    with pytest.raises(ValueError, match="name"):
        await a.add_interface(link, name="7")
    with pytest.raises(TypeError):
        await a.add_interface(object())  # type: ignore[arg-type]
    # Routes to an interface not on the stack, or not of the network's family.
    with pytest.raises(ValueError, match="not an interface"):
        a.add_route("198.18.9.0/24", gateway="198.18.1.2", interface="eth9")
    with pytest.raises(ValueError, match="not an interface"):
        a.add_route("198.18.9.0/24", gateway="198.18.1.2", interface=b.interfaces[0])
    with pytest.raises(ValueError, match="not an interface"):
        a.add_route("198.18.9.0/24", interface=42)
    with pytest.raises(ValueError, match="family"):
        a.add_route("198.18.9.0/24", gateway="fd00:1::2")
    with pytest.raises(ValueError, match="link-local"):
        a.add_route("fd00:9::/64", gateway="fe80::1")
    with pytest.raises(ValueError, match="metric"):
        a.add_route("198.18.9.0/24", gateway="198.18.1.2", metric=-1)
    with pytest.raises(ValueError, match="not a network"):
        a.add_route("198.18.9.1/24", gateway="198.18.1.2")
    with pytest.raises(ValueError, match="no route"):
        a.remove_route("198.18.9.0/24", gateway="198.18.1.2")
    # Zones that name no interface.
    with pytest.raises(ValueError):
        await a.open_connection("fe80::1%eth5", 80)
    s, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol, family=socket.AF_INET6)
    with pytest.raises(ValueError):
        s.sendto(b"x", ("fe80::1", 9, 0, 77))
    s.close()
    await link.disconnect()


async def test_one_interface_stack_keeps_its_shapes() -> None:
    """What a one-interface stack reports is what it always did, and the interfaces are
    there to look at."""
    a_link, b_link = MemoryLink.pair()
    async with (
        await Stack.open(a_link, ipv4="198.18.0.1/24", gateway="198.18.0.2") as a,
        await Stack.open(b_link, ipv4="198.18.0.2/24") as b,
    ):
        assert await a.ping("198.18.0.2") > 0
        stats = a.stats()
        assert list(stats) == [
            "link", "ethernet", "arp", "ipv4", "icmp", "ipv6", "icmpv6", "udp", "tcp", "forward",
            "radv", "stack",
            "interfaces",
        ]  # fmt: skip
        assert stats["interfaces"]["eth0"]["link"] == stats["link"]
        assert stats["interfaces"]["eth0"]["arp"] == stats["arp"]
        net, gw, src = a.routes[1]  # the routes are still 3-tuples
        assert (str(net), str(gw), src) == ("0.0.0.0/0", "198.18.0.2", None)
        assert a.routes[0].interface == "eth0" and a.routes[1].interface is None
        assert [i.name for i in a.interfaces] == ["eth0"]
        assert a.interfaces[0].stats()["arp"]["requests_sent"] == 1
        assert b.interfaces[0].addresses == b.addresses


async def test_stats_sum_over_interfaces(nets: Nets) -> None:
    a = nets.a
    assert await a.ping("198.18.1.2", timeout=5) > 0
    assert await a.ping("198.18.2.2", timeout=5) > 0
    stats = a.stats()
    per = stats["interfaces"]
    for layer in ("ethernet", "arp"):
        for counter in ("tx_packets", "rx_packets"):
            assert stats[layer][counter] == sum(i[layer][counter] for i in per.values())
    assert stats["link"]["tx_packets"] == sum(i["link"]["tx_packets"] for i in per.values())
    assert per["eth1"]["ipv6"]["enabled"] and per["eth1"]["ipv6"]["mtu"] == 1500
    a.reset_stats()
    assert a.stats()["interfaces"]["eth1"]["link"]["tx_packets"] == 0
