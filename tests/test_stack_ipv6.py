"""IPv6 through whole stacks on in-memory links: addresses and DAD, neighbour discovery, ping
(also fragmented), UDP and TCP over IPv6, dual-stack servers, SLAAC from a scripted router,
Packet Too Big, and garbage on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import ipaddress
import random
import socket
from collections.abc import AsyncIterator

import dns.name
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netstack import AddressInUseError, Stack, StackConfig
from netstack.link import Impairment, MemoryLink, Switch
from netstack.proto.ethernet.wire import EtherType
from netstack.proto.icmpv6.wire import Icmp6Type, build, parse
from netstack.proto.ipv6.addrconf import AddrconfConfig
from netstack.proto.ipv6.addressing import ALL_NODES, multicast_mac, solicited_node
from netstack.proto.ipv6.layer import IPv6Config
from netstack.proto.ipv6.wire import IPv6Header, NextHeader
from netstack.proto.mld import wire as mld
from netstack.proto.ndp import wire as ndp

#: DAD and router solicitation on a memory link need not wait the RFC's seconds.
FAST = StackConfig(
    ipv6=IPv6Config(
        addrconf=AddrconfConfig(retrans_timer=0.05, max_rtr_solicitation_delay=0.02,
                                rtr_solicitation_interval=0.2)
    )
)  # fmt: skip
A6, B6 = "fd00::1", "fd00::2"


@pytest.fixture
async def pair6() -> AsyncIterator[tuple[Stack, Stack]]:
    a_link, b_link = MemoryLink.pair()
    a = await Stack.open(a_link, ipv4="198.18.0.1/24", ipv6=f"{A6}/64", config=FAST)
    b = await Stack.open(b_link, ipv4="198.18.0.2/24", ipv6=f"{B6}/64", config=FAST)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def link_local(stack: Stack) -> str:
    return next(str(a.ip) for a in stack.addresses if a.version == 6 and a.ip.is_link_local)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_addresses_and_states(pair6: tuple[Stack, Stack]) -> None:
    a, _ = pair6
    v6 = [x for x in a.addresses if x.version == 6]
    assert {x.origin for x in v6} == {"link-local", "static"}  # type: ignore[union-attr]
    assert all(x.state == "preferred" for x in v6)
    assert ipaddress.IPv6Interface(f"{A6}/64") in v6
    assert str(a.addresses[0]) == "198.18.0.1/24"  # IPv4 first, unchanged


async def test_ping_global_and_link_local_both_ways(pair6: tuple[Stack, Stack]) -> None:
    a, b = pair6
    assert await a.ping(B6) > 0
    assert await b.ping(A6) > 0
    assert await a.ping(link_local(b)) > 0
    assert await b.ping(f"{link_local(a)}%eth0") > 0
    # The neighbour cache learnt each other through NS/NA.
    assert a.stats()["ipv6"]["neighbours"] >= 1
    assert a.stats()["ipv6"]["ndp_sent"] >= 1


async def test_reset_stats_clears_every_layer(pair6: tuple[Stack, Stack]) -> None:
    """``reset_stats()`` zeroes the counters of every layer ``stats()`` reports, IPv6 and
    ICMPv6 as well as the IPv4 family."""
    a, _ = pair6
    assert await a.ping(B6) > 0
    assert await a.ping("198.18.0.2") > 0
    counters = {
        "ethernet": ("rx_packets", "tx_packets"),
        "arp": ("rx_packets", "tx_packets"),
        "ipv4": ("rx_packets", "tx_packets"),
        "icmp": ("echo_requests_sent", "echo_replies_received"),
        "ipv6": ("rx_packets", "tx_packets", "ndp_sent"),
        "icmpv6": ("echo_requests_sent", "echo_replies_received"),
    }
    before = a.stats()
    for layer, names in counters.items():
        assert all(before[layer][name] > 0 for name in names), (layer, before[layer])
    a.reset_stats()
    after = a.stats()
    for layer, names in counters.items():
        assert {name: after[layer][name] for name in names} == dict.fromkeys(names, 0), layer
        assert after[layer]["drops"] == {}, layer
    assert after["link"]["rx_packets"] == after["link"]["tx_packets"] == 0


async def test_fragmented_ping_and_udp(pair6: tuple[Stack, Stack]) -> None:
    a, b = pair6
    assert await a.ping(B6, size=4000) > 0
    assert b.stats()["ipv6"]["reassembled"] >= 1
    assert a.stats()["ipv6"]["fragments_sent"] >= 3
    got: asyncio.Future[tuple[bytes, tuple[object, ...]]] = (
        asyncio.get_running_loop().create_future()
    )

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.set_result((data, addr))

    server, _ = await b.create_datagram_endpoint(Sink, local_addr=("::", 5353))
    client, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=(B6, 5353))
    blob = random.Random(1).randbytes(20000)
    client.sendto(blob)
    data, addr = await asyncio.wait_for(got, 5)
    assert data == blob
    assert addr == (A6, client.get_extra_info("sockname")[1], 0, 0)
    assert server.get_extra_info("sockname") == ("::", 5353, 0, 0)
    client.close()
    server.close()


async def test_udp_port_unreachable_over_ipv6(pair6: tuple[Stack, Stack]) -> None:
    a, b = pair6
    errors: asyncio.Queue[Exception] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def error_received(self, exc: Exception) -> None:
            errors.put_nowait(exc)

    transport, _ = await a.create_datagram_endpoint(Client, remote_addr=(B6, 9))
    transport.sendto(b"anyone?")
    exc = await asyncio.wait_for(errors.get(), 5)
    assert isinstance(exc, ConnectionRefusedError)
    assert b.stats()["icmpv6"]["errors_sent"] == 1
    transport.close()


async def test_dual_stack_udp_endpoint(pair6: tuple[Stack, Stack]) -> None:
    a, b = pair6
    seen: asyncio.Queue[tuple[bytes, tuple[object, ...]]] = asyncio.Queue()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            seen.put_nowait((data, addr))

    server, _ = await b.create_datagram_endpoint(Sink, local_addr=(None, 6000))
    assert server.get_extra_info("sockname") == ("::", 6000, 0, 0)
    c4, _ = await a.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("198.18.0.2", 6000)
    )
    c6, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=(B6, 6000))
    c4.sendto(b"four")
    c6.sendto(b"six")
    got = {(await asyncio.wait_for(seen.get(), 5))[0] for _ in range(2)}
    assert got == {b"four", b"six"}
    with pytest.raises(AddressInUseError):
        await b.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("::", 6000))
    for t in (server, c4, c6):
        t.close()


async def test_tcp_over_ipv6_and_dual_stack_server(pair6: tuple[Stack, Stack]) -> None:
    a, b = pair6
    server = await b.start_server(echo, port=8080)
    assert sorted(server.addresses) == [("0.0.0.0", 8080), ("::", 8080)]
    blob = random.Random(6).randbytes(1 << 20)
    for host in (B6, "198.18.0.2", link_local(b)):
        reader, writer = await a.open_connection(host, 8080)
        peer = writer.get_extra_info("peername")
        if ":" in host:
            # A link-local address carries the scope id of its interface, as a socket's does.
            scope = a.interfaces[0].index if host.startswith("fe80:") else 0
            assert peer == (host, 8080, 0, scope)
            assert len(writer.get_extra_info("sockname")) == 4
        else:
            assert peer == (host, 8080)
        writer.write(blob)
        writer.write_eof()
        back = await asyncio.wait_for(reader.read(-1), 20)
        assert hashlib.sha256(back).digest() == hashlib.sha256(blob).digest()
        writer.close()
        await writer.wait_closed()
    # TCP sized its segments for IPv6 (MSS 1440): nothing was fragmented.
    assert a.stats()["ipv6"]["fragments_sent"] == 0
    assert b.stats()["ipv6"]["fragments_sent"] == 0
    server.close()


async def test_ipv6_only_server_and_refused(pair6: tuple[Stack, Stack]) -> None:
    a, b = pair6
    server = await b.start_server(echo, host="::", port=8081)
    assert server.addresses == [("::", 8081)]
    with pytest.raises(ConnectionRefusedError):
        await a.open_connection("198.18.0.2", 8081)
    with pytest.raises(ConnectionRefusedError):
        await a.open_connection(B6, 8082)
    with pytest.raises(OSError) as info:
        await b.start_server(echo, host="fd00::99", port=1)
    assert info.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(ValueError):
        await a.open_connection(B6, 8081, family=socket.AF_INET)
    server.close()


async def test_tcp_over_ipv6_under_loss() -> None:
    net = Switch()
    imp = Impairment(loss=0.03, reorder=0.03, duplicate=0.01, seed=66)
    a = await Stack.open(net.port(impairment=imp), ipv6="fd00::a/64", config=FAST)
    b = await Stack.open(net.port(impairment=imp), ipv6="fd00::b/64", config=FAST)
    try:
        server = await b.start_server(echo, host="::", port=7)
        reader, writer = await a.open_connection("fd00::b", 7)
        blob = random.Random(7).randbytes(512 * 1024)
        writer.write(blob)
        writer.write_eof()
        back = await asyncio.wait_for(reader.read(-1), 60)
        assert back == blob
        writer.close()
        server.close()
    finally:
        await a.close()
        await b.close()


async def test_duplicate_static_address_is_refused() -> None:
    net = Switch()
    a = await Stack.open(net.port(), ipv6="fd00::7/64", config=FAST)
    try:
        with pytest.raises(AddressInUseError):
            await Stack.open(net.port(), ipv6="fd00::7/64", config=FAST)
        assert a.addresses[-1].state == "preferred"
    finally:
        await a.close()


class ScriptedRouter:
    """The far end of a memory link, playing an IPv6 router: answers Router Solicitations
    with a Router Advertisement and counts what it saw."""

    MAC = bytes.fromhex("02000000aa01")
    LL = ipaddress.IPv6Address("fe80::1").packed

    def __init__(
        self, link: MemoryLink, prefix: str, rdnss: str, mtu: int | None = None,
        dnssl: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.link = link
        self.prefix = ipaddress.IPv6Network(prefix)
        self.rdnss = ipaddress.IPv6Address(rdnss).packed
        self.mtu = mtu
        self.dnssl = dnssl
        self.solicitations = 0
        self.mld_reports = 0
        self.mld_v1: list[bytes] = []
        self.frames: list[bytes] = []

    def advert(
        self, router_lifetime: int = 1800, valid: int = 3600, preferred: int = 1800,
        dnssl_lifetime: int = 600,
    ) -> bytes:  # fmt: skip
        msg = ndp.build_router_advert(
            self.LL, ALL_NODES,
            router_lifetime=router_lifetime,
            source_mac=self.MAC,
            mtu=self.mtu,
            prefixes=(
                ndp.PrefixInfo(self.prefix.network_address.packed, 64, True, True, valid,
                               preferred),
            ),
            rdnss=(ndp.Rdnss(600, (self.rdnss,)),),
            dnssl=(ndp.Dnssl(dnssl_lifetime, self.dnssl),) if self.dnssl else (),
        )  # fmt: skip
        header = IPv6Header(0, 0, len(msg), NextHeader.ICMPV6, 255, self.LL, ALL_NODES)
        eth = multicast_mac(ALL_NODES) + self.MAC + EtherType.IPV6.to_bytes(2, "big")
        return eth + header.to_bytes() + msg

    def query(self, max_response_delay: float = 0.1, version: int = 2) -> bytes:
        """An MLDv2 (or MLDv1, RFC 2710 3) general query (RFC 3810 5.1): hop limit 1, with a
        Router Alert."""
        msg = mld.build_query(
            self.LL, ALL_NODES, max_response_delay=max_response_delay, version=version
        )
        hbh = bytes((NextHeader.ICMPV6, 0, 5, 2, 0, 0, 1, 0))
        header = IPv6Header(0, 0, len(hbh) + len(msg), NextHeader.HOP_BY_HOP, 1, self.LL,
                            ALL_NODES)  # fmt: skip
        eth = multicast_mac(ALL_NODES) + self.MAC + EtherType.IPV6.to_bytes(2, "big")
        return eth + header.to_bytes() + hbh + msg

    def on_frame(self, frame: memoryview) -> None:
        data = bytes(frame)
        self.frames.append(data)
        if data[12:14] != b"\x86\xdd":
            return
        nh = data[14 + 6]
        if nh == NextHeader.ICMPV6 and data[54] == Icmp6Type.ROUTER_SOLICIT:
            self.solicitations += 1
            asyncio.get_running_loop().create_task(self.link.write(self.advert()))
        elif nh == NextHeader.HOP_BY_HOP and data[62] == Icmp6Type.MLDV2_REPORT:
            self.mld_reports += 1
        elif nh == NextHeader.HOP_BY_HOP and data[62] in (Icmp6Type.MLD_REPORT, Icmp6Type.MLD_DONE):
            self.mld_v1.append(data)


async def test_slaac_from_a_router_advertisement() -> None:
    host_link, router_link = MemoryLink.pair()
    router = ScriptedRouter(router_link, "fd00:1:2:3::/64", "fd00::53", mtu=1400)
    listening = asyncio.create_task(router_link.listen(router.on_frame))
    stack = await Stack.open(host_link, ipv6="auto", config=FAST)
    try:
        async with asyncio.timeout(5):
            while not any(
                a.version == 6 and a.origin == "slaac" and a.state == "preferred"
                for a in stack.addresses
            ):  # type: ignore[union-attr]
                await asyncio.sleep(0.02)
        slaac = next(a for a in stack.addresses if a.version == 6 and a.origin == "slaac")  # type: ignore[union-attr]
        assert slaac.ip in router.prefix and slaac.network.prefixlen == 64
        assert router.solicitations >= 1
        assert router.mld_reports >= 1  # the solicited-node groups were reported (RFC 3810)
        assert stack.dns_servers == ["fd00::53"]
        assert stack.ipv6.mtu == 1400
        # Off-link destinations go to the router (its MAC, learnt from the RA).
        gateways = [r.gateway for r in stack.routes if r.network == ipaddress.IPv6Network("::/0")]
        assert gateways == [ipaddress.IPv6Address("fe80::1")]
        route = stack.ipv6.route(ipaddress.IPv6Address("2001:db8::1").packed)
        assert route.next_hop == ScriptedRouter.LL and route.src == slaac.ip.packed
        # A new advertisement with router lifetime 0 removes the default router.
        await router_link.write(router.advert(router_lifetime=0))
        async with asyncio.timeout(2):
            while any(r.network.prefixlen == 0 and r.network.version == 6 for r in stack.routes):
                await asyncio.sleep(0.02)
    finally:
        await stack.close()
        listening.cancel()


async def test_dnssl_reaches_the_resolver_search_list() -> None:
    # RFC 8106 5.3.1: the host copies the DNS Search List into the resolver's configuration;
    # here that is stack.dns.search, beside any domain the user put there.
    host_link, router_link = MemoryLink.pair()
    router = ScriptedRouter(
        router_link, "fd00:1:2:3::/64", "fd00::53", dnssl=("corp.test", "lab.corp.test")
    )
    stack = await Stack.open(host_link, ipv6="auto", config=FAST)
    stack.dns.search.append("mine.test")  # the resolver exists before the RA comes
    listening = asyncio.create_task(router_link.listen(router.on_frame))
    try:
        await router_link.write(router.advert())
        async with asyncio.timeout(5):
            while len(stack.dns.search) < 3:
                await asyncio.sleep(0.02)
        assert stack.dns.search == ["mine.test", "corp.test", "lab.corp.test"]
        assert stack.dns._candidates("host")[:3] == [
            dns.name.from_text(f"host.{d}.") for d in stack.dns.search
        ]
        # The same list again changes nothing; lifetime 0 withdraws the router's domains
        # (RFC 8106 5.2) and leaves the user's.
        await router_link.write(router.advert())
        await asyncio.sleep(0.05)
        assert stack.dns.search == ["mine.test", "corp.test", "lab.corp.test"]
        await router_link.write(router.advert(dnssl_lifetime=0))
        async with asyncio.timeout(5):
            while len(stack.dns.search) > 1:
                await asyncio.sleep(0.02)
        assert stack.dns.search == ["mine.test"]
    finally:
        await stack.close()
        listening.cancel()


async def test_dnssl_learnt_before_the_resolver_is_made() -> None:
    host_link, router_link = MemoryLink.pair()
    router = ScriptedRouter(router_link, "fd00:1:2:3::/64", "fd00::53", dnssl=("corp.test",))
    listening = asyncio.create_task(router_link.listen(router.on_frame))
    stack = await Stack.open(host_link, ipv6="auto", config=FAST)
    try:
        async with asyncio.timeout(5):
            while not stack.ipv6.addrconf.search_domains:
                await asyncio.sleep(0.02)
        assert stack._resolver is None
        assert stack.dns.search == ["corp.test"]
    finally:
        await stack.close()
        listening.cancel()


async def _router_and_host(
    config: StackConfig,
) -> tuple[Stack, ScriptedRouter, MemoryLink, asyncio.Task[None]]:
    host_link, router_link = MemoryLink.pair()
    router = ScriptedRouter(router_link, "fd00:1:2:3::/64", "fd00::53")
    listening = asyncio.create_task(router_link.listen(router.on_frame))
    stack = await Stack.open(host_link, ipv6="auto", config=config)
    async with asyncio.timeout(5):
        while not stack.ipv6.addrconf.default_routers(0.0):
            await asyncio.sleep(0.02)
    return stack, router, router_link, listening


def _frame_from_router(message: bytes, dst: bytes, mac: bytes, hop_limit: int = 255) -> bytes:
    header = IPv6Header(0, 0, len(message), NextHeader.ICMPV6, hop_limit, ScriptedRouter.LL, dst)
    return mac + ScriptedRouter.MAC + b"\x86\xdd" + header.to_bytes() + message


@pytest.mark.parametrize("accept", [False, True])
async def test_redirects_only_when_accepted(accept: bool) -> None:
    config = dataclasses.replace(FAST, ipv6=dataclasses.replace(FAST.ipv6, accept_redirects=accept))
    stack, router, router_link, listening = await _router_and_host(config)
    try:
        far = ipaddress.IPv6Address("2001:db8::1").packed
        better = ipaddress.IPv6Address("fe80::2").packed
        assert stack.ipv6.route(far).next_hop == ScriptedRouter.LL
        mine = next(a.ip.packed for a in stack.addresses if a.version == 6)
        msg = ndp.build_redirect(
            ScriptedRouter.LL, mine, better, far, bytes.fromhex("020000000002")
        )
        stack._on_frame(memoryview(_frame_from_router(msg, mine, stack.ethernet.mac)))
        expected = better if accept else ScriptedRouter.LL
        assert stack.ipv6.route(far).next_hop == expected
        drops = stack.stats()["ipv6"]["drops"]
        assert ("ndp_redirect_ignored" in drops) is not accept
        # A Redirect from anyone but the current first hop is never believed (RFC 4861 8.1).
        other = ipaddress.IPv6Address("2001:db8::2").packed
        forged = ndp.build_redirect(better, mine, better, other)
        header = IPv6Header(0, 0, len(forged), NextHeader.ICMPV6, 255, better, mine)
        frame = stack.ethernet.mac + bytes(6) + b"\x86\xdd" + header.to_bytes() + forged
        stack._on_frame(memoryview(frame))
        assert stack.ipv6.route(other).next_hop == ScriptedRouter.LL
    finally:
        await stack.close()
        listening.cancel()


async def test_parameter_problems_and_time_exceeded(pair6: tuple[Stack, Stack]) -> None:
    a, b = pair6
    a_ip = ipaddress.IPv6Address(A6).packed
    b_ip = ipaddress.IPv6Address(B6).packed
    errors = b.stats()["icmpv6"]["errors_sent"]

    def inject(next_header: int, payload: bytes) -> None:
        header = IPv6Header(0, 0, len(payload), next_header, 64, a_ip, b_ip)
        frame = b.ethernet.mac + a.ethernet.mac + b"\x86\xdd" + header.to_bytes() + payload
        b._on_frame(memoryview(frame))

    # A Destination Options header with an unknown option whose action bits are 10:
    # discard and send Parameter Problem code 2 (RFC 8200 4.2).
    inject(NextHeader.DEST_OPTS, bytes((NextHeader.NO_NEXT, 0, 0x9E, 4, 0, 0, 0, 0)))
    # An upper-layer protocol nobody handles: code 1 (RFC 8200 4).
    inject(200, bytes(8))
    # An unknown option with action 00 is skipped: no error.
    inject(NextHeader.DEST_OPTS, bytes((NextHeader.NO_NEXT, 0, 0x1E, 4, 0, 0, 0, 0)))
    assert b.stats()["icmpv6"]["errors_sent"] == errors + 2
    # The first fragment of a datagram whose rest never comes: Time Exceeded code 1 after the
    # reassembly timeout (shortened here), RFC 8200 4.5.
    b.ipv6.reassembler.config = dataclasses.replace(b.ipv6.reassembler.config, timeout=0.2)
    icmp = build(Icmp6Type.ECHO_REQUEST, 0, 1, bytes(1024), a_ip, b_ip)
    fragment = bytes((NextHeader.ICMPV6, 0, 0, 1)) + (77).to_bytes(4, "big") + icmp[:1024]
    inject(NextHeader.FRAGMENT, fragment)
    async with asyncio.timeout(3):
        while b.stats()["icmpv6"]["errors_sent"] < errors + 3:
            await asyncio.sleep(0.05)
    assert b.stats()["ipv6"]["reassembling"] == 0


@contextlib.asynccontextmanager
async def mld_host() -> AsyncIterator[tuple[Stack, ScriptedRouter, MemoryLink]]:
    """A stack at fd00::5/64 behind a scripted router, once its unsolicited MLDv2 reports
    and their repetition are over."""
    host_link, router_link = MemoryLink.pair()
    router = ScriptedRouter(router_link, "fd00:1:2:3::/64", "fd00::53")
    listening = asyncio.create_task(router_link.listen(router.on_frame))
    stack = await Stack.open(host_link, ipv6="fd00::5/64", config=FAST)
    try:
        await asyncio.sleep(1.2)
        yield stack, router, router_link
    finally:
        await stack.close()
        listening.cancel()


async def test_mld_general_query_is_answered() -> None:
    async with mld_host() as (stack, router, router_link):
        before = router.mld_reports
        await router_link.write(router.query(max_response_delay=0.1))
        async with asyncio.timeout(2):
            while router.mld_reports == before:
                await asyncio.sleep(0.01)
        report = router.frames[-1]
        records = mld.parse_report(*parse(memoryview(report)[62:]))
        groups = {ipaddress.IPv6Address(r.group) for r in records}
        # Both solicited-node groups (link-local and fd00::5), never all-nodes (RFC 3810 6).
        assert ipaddress.IPv6Address("ff02::1:ff00:5") in groups
        assert ipaddress.IPv6Address("ff02::1") not in groups
        assert all(r.type == mld.RecordType.MODE_IS_EXCLUDE for r in records)


def _mld_v1(frame: bytes) -> tuple[int, str, str, str, int]:
    """(ICMPv6 type, IPv6 destination, the Multicast Address field, Ethernet destination,
    hop limit) of an MLDv1 message behind its 8-byte Router Alert Hop-by-Hop header."""
    icmp = frame[62:]
    assert len(icmp) == 24  # RFC 2710 3
    group = str(ipaddress.IPv6Address(icmp[8:24]))
    return icmp[0], str(ipaddress.IPv6Address(frame[38:54])), group, frame[:6].hex(":"), frame[21]


async def test_mldv1_query_is_answered_in_mldv1_compatibility_mode() -> None:
    # RFC 3810 8.2.1: an MLDv1 Query puts the host in MLDv1 compatibility mode: MLDv1 Reports
    # (type 131) to each group's own address, Done (type 132) to all routers, no MLDv2.
    async with mld_host() as (stack, router, router_link):
        v2_before = router.mld_reports
        await router_link.write(router.query(max_response_delay=0.1, version=1))
        async with asyncio.timeout(2):
            while len(router.mld_v1) < 3:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        reports = sorted(_mld_v1(f) for f in router.mld_v1)
        # The solicited-node group of every address (link-local, fd00::5, the SLAAC one from
        # the router's prefix), never all-nodes.
        groups = sorted(
            {str(ipaddress.IPv6Address(solicited_node(a.ip.packed)))
             for a in stack.addresses if a.version == 6}
        )  # fmt: skip
        assert "ff02::1:ff00:5" in groups and len(groups) == 3
        assert reports == sorted(
            (Icmp6Type.MLD_REPORT, g, g, multicast_mac(ipaddress.IPv6Address(g).packed).hex(":"), 1)
            for g in groups
        )
        assert stack.stats()["ipv6"]["mld_version"] == 1
        # A new group is reported with MLDv1 too, and a group left with a Done.
        router.mld_v1.clear()
        stack.add_address("fd00::6/64")
        async with asyncio.timeout(2):
            while not router.mld_v1:
                await asyncio.sleep(0.01)
        assert _mld_v1(router.mld_v1[0])[:3] == (
            Icmp6Type.MLD_REPORT, "ff02::1:ff00:6", "ff02::1:ff00:6"
        )  # fmt: skip
        router.mld_v1.clear()
        stack.remove_address("fd00::6")
        async with asyncio.timeout(2):
            while not router.mld_v1:
                await asyncio.sleep(0.01)
        assert _mld_v1(router.mld_v1[0])[:3] == (Icmp6Type.MLD_DONE, "ff02::2", "ff02::1:ff00:6")
        assert router.mld_reports == v2_before  # not one MLDv2 report since the query


async def test_packet_too_big_lowers_the_path_mtu(pair6: tuple[Stack, Stack]) -> None:
    a, b = pair6
    a_ip = ipaddress.IPv6Address(A6).packed
    b_ip = ipaddress.IPv6Address(B6).packed
    # A Packet Too Big (MTU 1280) from b about a datagram a sent it.
    quoted = IPv6Header(0, 0, 1400, NextHeader.UDP, 64, a_ip, b_ip).to_bytes() + bytes(64)
    msg = build(Icmp6Type.PACKET_TOO_BIG, 0, 1280, quoted, b_ip, a_ip)
    header = IPv6Header(0, 0, len(msg), NextHeader.ICMPV6, 64, b_ip, a_ip)
    frame = a.ethernet.mac + b.ethernet.mac + b"\x86\xdd" + header.to_bytes() + msg
    a._on_frame(memoryview(frame))
    assert a.ipv6.path_mtu(b_ip) == 1280
    assert await a.ping(B6, size=1400) > 0
    assert a.stats()["ipv6"]["fragments_sent"] >= 2
    # A PTB below the IPv6 minimum never lowers it further (RFC 8201 5).
    a._on_frame(memoryview(frame[:58] + b"\x00\x00\x01\x00" + frame[62:]))
    assert a.ipv6.path_mtu(b_ip) == 1280


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=200))
async def test_garbage_ipv6_is_dropped_not_raised(pair6: tuple[Stack, Stack], junk: bytes) -> None:
    a, b = pair6
    frame = a.ethernet.mac + b.ethernet.mac + b"\x86\xdd" + b"\x60" + junk
    a._on_frame(memoryview(frame))
    frame = multicast_mac(ALL_NODES) + b.ethernet.mac + b"\x86\xdd" + junk
    a._on_frame(memoryview(frame))
    assert a.internal_errors == 0
