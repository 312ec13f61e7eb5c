"""Forwarding on memory links, both families: host A -- router -- host B.

``a`` is 198.18.1.2/24, fd00:1::2/64 on net 1 with the router (.1, ::1) as its gateway; ``b``
is 198.18.2.2/24, fd00:2::2/64 on net 2, likewise; the router has an interface on each and
``forwarding = True``. Covered: TCP, UDP and ping through the router; TTL / Hop Limit expiry
answered by Time Exceeded from the router; a smaller MTU on net 2 (IPv4 fragmented without DF,
"fragmentation needed" with DF, IPv6 Packet Too Big and the host's path MTU); martians and
link-local addresses not forwarded; a host (forwarding off) forwards nothing; the ICMP error
rate limit; the packet hooks at the five points with their verdicts (DROP, REJECT_ICMP,
REJECT_RESET); Router Advertisements configuring a SLAAC host through the router.
"""

from __future__ import annotations

import asyncio
import errno
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from test_interfaces import FAST

from netstack import Stack, StackConfig
from netstack.link import MemoryLink
from netstack.link.base import FrameMeta
from netstack.proto.checksum import checksum
from netstack.proto.ip.hooks import Hook, Verdict
from netstack.proto.ipv6.layer import IPv6Config


@dataclass
class Net:
    a: Stack
    r: Stack
    b: Stack
    links: list[MemoryLink] = field(default_factory=list)


async def make_net(mtu2: int = 1500, offload: bool = False) -> Net:
    a1, r1 = MemoryLink.pair(offload=offload)
    r2, b2 = MemoryLink.pair(mtu=mtu2, offload=offload)
    a = await Stack.open(a1, ipv4="198.18.1.2/24", gateway="198.18.1.1", ipv6="fd00:1::2/64",
                         config=FAST)  # fmt: skip
    r = await Stack.open(r1, ipv4="198.18.1.1/24", ipv6="fd00:1::1/64", config=FAST)
    b = await Stack.open(b2, ipv4="198.18.2.2/24", gateway="198.18.2.1", ipv6="fd00:2::2/64",
                         config=FAST)  # fmt: skip
    await r.add_interface(r2, ipv4="198.18.2.1/24", ipv6="fd00:2::1/64")
    a.add_route("::/0", "fd00:1::1")
    b.add_route("::/0", "fd00:2::1")
    r.forwarding = True
    return Net(a, r, b, [a1, r1, r2, b2])


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    n = await make_net()
    try:
        yield n
    finally:
        for s in (n.a, n.r, n.b):
            await s.close()


@pytest.fixture
async def small_mtu_net() -> AsyncIterator[Net]:
    n = await make_net(mtu2=1280)
    try:
        yield n
    finally:
        for s in (n.a, n.r, n.b):
            await s.close()


async def echo_server(stack: Stack) -> int:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await stack.start_server(handle, port=7)
    return 7 if server else 0


@pytest.mark.parametrize("dst", ["198.18.2.2", "fd00:2::2"])
async def test_ping_and_tcp_through_the_router(net: Net, dst: str) -> None:
    assert await net.a.ping(dst, timeout=2) > 0
    await echo_server(net.b)
    reader, writer = await net.a.open_connection(dst, 7)
    payload = bytes(range(256)) * 400
    writer.write(payload)
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    assert got == payload
    writer.close()
    fwd = net.r.stats()["forward"]
    assert fwd["forwarded4" if "." in dst else "forwarded6"] > 10


@pytest.mark.parametrize("dst", ["198.18.2.2", "fd00:2::2"])
async def test_a_router_forwards_what_the_wire_carries_with_offloads(dst: str) -> None:
    """Links with (virtual) offloads everywhere: the hosts exchange super-segments with partial
    checksums, the router takes them as the wire's frames (cut, checksums complete) and sends
    none, so nothing bigger than the MTU is forwarded or refused as too big."""
    n = await make_net(offload=True)
    try:
        await echo_server(n.b)
        reader, writer = await n.a.open_connection(dst, 7)
        payload = bytes(range(256)) * 2000
        writer.write(payload)
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(len(payload)), 10) == payload
        writer.close()
        assert n.a.stats()["tcp"]["tx_super_segments"] > 0  # the hosts still offload
        assert n.r.stats()["tcp"]["tx_super_segments"] == 0
        fwd = n.r.stats()["forward"]
        assert fwd["forwarded4" if "." in dst else "forwarded6"] > len(payload) // 1500
        assert not any("too_big" in reason or "mtu" in reason for reason in fwd["drops"])
        n.r.forwarding = False  # a host again: offloads back
        assert n.r.interfaces[0].ethernet.offloads
    finally:
        for s in (n.a, n.r, n.b):
            await s.close()


async def test_a_host_does_not_forward(net: Net) -> None:
    net.r.forwarding = False
    with pytest.raises(TimeoutError):
        await net.a.ping("198.18.2.2", timeout=0.3)
    assert net.r.stats()["ipv4"]["drops"].get("not_for_us", 0) >= 1
    assert net.r.stats()["forward"]["forwarded4"] == 0


@pytest.mark.parametrize("dst", ["198.18.2.2", "fd00:2::2"])
async def test_ttl_expiry_answered_with_time_exceeded(net: Net, dst: str) -> None:
    """RFC 1812 5.3.1, RFC 4443 3.3: a TTL / Hop Limit of 1 does not cross the router, which
    says so with Time Exceeded from its address on A's link (what traceroute reads)."""
    family_v4 = "." in dst
    # A UDP datagram with TTL 1 through the IP layer directly.
    a = net.a
    now = a.loop.time()
    payload = b"\x12\x34\x00\x07\x00\x0c\x00\x00" + b"ttl!"
    if family_v4:
        route = a.ipv4.route(bytes([198, 18, 2, 2]))
        frame = bytearray(34) + payload
        a.ipv4.output(frame, route, 17, now, ttl=1)
    else:
        import ipaddress

        route6 = a.ipv6.route(ipaddress.IPv6Address(dst).packed)
        frame = bytearray(54) + payload
        a.ipv6.output(frame, route6, 17, now, hop_limit=1)
    await asyncio.sleep(0.1)
    fwd = net.r.stats()["forward"]
    assert fwd["time_exceeded"] == 1
    icmp = net.r.stats()["icmp" if family_v4 else "icmpv6"]
    assert icmp["errors_sent"] == 1
    # A received it (from the router's address on its link).
    assert a.stats()["icmp" if family_v4 else "icmpv6"]["errors_received"] == 1
    assert net.b.stats()["udp"]["rx_packets"] == 0


async def test_ipv4_fragmented_without_df_and_refused_with_df(small_mtu_net: Net) -> None:
    net = small_mtu_net
    got: list[bytes] = []

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append(data)

    await net.b.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 9000))
    transport, _ = await net.a.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("198.18.2.2", 9000)
    )
    transport.sendto(b"x" * 1400)  # fits net 1 (1500), not net 2 (1280): fragmented there
    for _ in range(50):
        if got:
            break
        await asyncio.sleep(0.02)
    assert got == [b"x" * 1400]
    fwd = net.r.stats()["forward"]
    assert fwd["fragmented"] == 1 and fwd["fragments_sent"] == 2
    # With DF (TCP sets it): "fragmentation needed" with the MTU of net 2, and TCP lowers
    # its segments (RFC 1191), so a bulk transfer still gets through.
    await echo_server(net.b)
    reader, writer = await net.a.open_connection("198.18.2.2", 7)
    payload = b"y" * 20000
    writer.write(payload)
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 10) == payload
    writer.close()
    assert net.r.stats()["forward"]["too_big"] >= 0  # MSS may have avoided it entirely


async def test_ipv4_df_too_big_gets_fragmentation_needed(small_mtu_net: Net) -> None:
    net = small_mtu_net
    a = net.a
    route = a.ipv4.route(bytes([198, 18, 2, 2]))
    frame = bytearray(34) + b"\x12\x34\x23\x28" + struct.pack("!H", 1408) + b"\0\0" + bytes(1400)
    a.ipv4.output(frame, route, 17, a.loop.time(), df=True)
    await asyncio.sleep(0.1)
    assert net.r.stats()["forward"]["too_big"] == 1
    assert net.r.stats()["forward"]["drops"]["fragmentation_needed"] == 1
    assert a.stats()["icmp"]["errors_received"] == 1


async def test_ipv6_packet_too_big_lowers_the_path_mtu(small_mtu_net: Net) -> None:
    net = small_mtu_net
    with pytest.raises(OSError) as info:
        await net.a.ping("fd00:2::2", size=1400, timeout=2)
    assert info.value.errno == errno.EMSGSIZE  # the router's Packet Too Big
    assert net.r.stats()["forward"]["too_big"] == 1
    import ipaddress

    dst = ipaddress.IPv6Address("fd00:2::2").packed
    assert net.a.ipv6.path_mtu(dst, net.a.loop.time()) == 1280
    # Now the host fragments at the source and the ping gets through.
    assert await net.a.ping("fd00:2::2", size=1400, timeout=2) > 0


def mac(stack: Stack) -> bytes:
    """The first interface's MAC as 6 bytes."""
    return bytes.fromhex(stack.interfaces[0].mac.replace(":", ""))


def ipv4_frame(dst_mac: bytes, src_mac: bytes, src: bytes, dst: bytes, ttl: int = 64) -> bytes:
    udp = b"\x12\x34\x00\x07\x00\x0c\x00\x00ping"
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, ttl, 17, 0,
                                   src, dst))  # fmt: skip
    c = checksum(header)
    header[10:12] = c.to_bytes(2, "big")
    return dst_mac + src_mac + b"\x08\x00" + bytes(header) + udp


def ipv6_frame(dst_mac: bytes, src_mac: bytes, src: bytes, dst: bytes, hlim: int = 64) -> bytes:
    udp = b"\x12\x34\x00\x07\x00\x0c\x00\x00ping"
    header = struct.pack("!IHBB16s16s", 0x60000000, len(udp), 17, hlim, src, dst)
    return dst_mac + src_mac + b"\x86\xdd" + header + udp


async def test_martians_and_link_local_are_not_forwarded(net: Net) -> None:
    """RFC 1812 5.3.7, RFC 3927 2.7, RFC 4291 2.5.6: counted drops, nothing reaches B."""
    import ipaddress

    rmac, amac = mac(net.r), mac(net.a)
    b4 = bytes([198, 18, 2, 2])
    bad4 = [
        (bytes([0, 1, 2, 3]), b4, "martian_source"),
        (bytes([127, 0, 0, 1]), b4, "martian_source"),
        (bytes([169, 254, 1, 1]), b4, "martian_source"),
        (bytes([198, 18, 1, 2]), bytes([127, 0, 0, 9]), "martian_destination"),
        (bytes([198, 18, 1, 2]), bytes([169, 254, 9, 9]), "martian_destination"),
        (bytes([198, 18, 1, 2]), bytes([240, 0, 0, 1]), "martian_destination"),
    ]
    inject = net.links[0].transmit  # a's side of the cable to the router
    for src, dst, _ in bad4:
        inject(bytearray(ipv4_frame(rmac, amac, src, dst)))
    b6 = ipaddress.IPv6Address("fd00:2::2").packed
    a6 = ipaddress.IPv6Address("fd00:1::2").packed
    ll = ipaddress.IPv6Address("fe80::99").packed
    inject(bytearray(ipv6_frame(rmac, amac, ll, b6)))
    inject(bytearray(ipv6_frame(rmac, amac, a6, ipaddress.IPv6Address("fe80::2").packed)))
    inject(bytearray(ipv6_frame(rmac, amac, ipaddress.IPv6Address("::ffff:1.2.3.4").packed, b6)))
    inject(bytearray(ipv6_frame(rmac, amac, bytes(15) + b"\x01", b6)))
    # A truncated IPv4 header and garbage: counted, never raised.
    inject(bytearray(rmac + amac + b"\x08\x00" + b"\x45\x00\x00"))
    inject(bytearray(rmac + amac + b"\x86\xdd" + b"\x60" + bytes(10)))
    await asyncio.sleep(0.1)
    drops = net.r.stats()["forward"]["drops"]
    assert drops["martian_source"] == 3 + 3
    assert drops["martian_destination"] == 3 + 1
    assert net.b.stats()["udp"]["rx_packets"] == 0
    assert net.r.stats()["stack"]["internal_errors"] == 0


async def test_icmp_errors_are_rate_limited(net: Net) -> None:
    """RFC 1812 4.3.2.8: a flood of TTL-1 datagrams gets at most the bucket's burst of Time
    Exceeded messages."""
    rmac, amac = mac(net.r), mac(net.a)
    inject = net.links[0].transmit
    for _ in range(200):
        inject(bytearray(ipv4_frame(rmac, amac, bytes([198, 18, 1, 2]), bytes([198, 18, 2, 2]),
                                    ttl=1)))  # fmt: skip
    await asyncio.sleep(0.2)
    icmp = net.r.stats()["icmp"]
    burst = net.r.icmp.config.error_burst
    assert net.r.stats()["forward"]["time_exceeded"] == 200
    assert icmp["errors_sent"] <= burst + 5
    assert icmp["errors_rate_limited"] >= 200 - burst - 5


class Recorder:
    """A test hook object: records every call, answers with a verdict per (hook, proto)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Hook, int | None, int | None, int]] = []
        self.verdicts: dict[tuple[Hook, int], Verdict] = {}

    def run(self, hook: Hook, datagram: bytearray, ingress: int | None, egress: int | None,
            now: float) -> Verdict:  # fmt: skip
        assert isinstance(datagram, bytearray)
        proto = datagram[9] if datagram[0] >> 4 == 4 else datagram[6]
        self.calls.append((hook, ingress, egress, proto))
        return self.verdicts.get((hook, proto), Verdict.ACCEPT)

    def points(self) -> set[Hook]:
        return {c[0] for c in self.calls}


@pytest.mark.parametrize("dst", ["198.18.2.2", "fd00:2::2"])
async def test_hooks_see_forwarded_and_local_traffic(net: Net, dst: str) -> None:
    rec = Recorder()
    net.r.packet_hooks = rec
    assert net.r.packet_hooks is rec
    assert await net.a.ping(dst, timeout=2) > 0
    assert {Hook.PREROUTING, Hook.FORWARD, Hook.POSTROUTING} <= rec.points()
    forward = [c for c in rec.calls if c[0] == Hook.FORWARD]
    assert forward[0][1] == 1 and forward[0][2] == 2  # in on eth0, out of eth1
    rec.calls.clear()
    # The router's own ping: OUTPUT, POSTROUTING out; PREROUTING, INPUT for the reply.
    assert await net.r.ping(dst, timeout=2) > 0
    assert rec.points() == {Hook.OUTPUT, Hook.POSTROUTING, Hook.PREROUTING, Hook.INPUT}
    net.r.packet_hooks = None
    assert net.r.ipv4.hooks is None and net.r.ipv6.hooks is None


@pytest.mark.parametrize("dst", ["198.18.2.2", "fd00:2::2"])
async def test_hook_verdicts(net: Net, dst: str) -> None:
    rec = Recorder()
    net.r.packet_hooks = rec
    v4 = "." in dst
    icmp_proto = 1 if v4 else 58
    # DROP: the ping times out, counted.
    rec.verdicts[(Hook.FORWARD, icmp_proto)] = Verdict.DROP
    with pytest.raises(TimeoutError):
        await net.a.ping(dst, timeout=0.3)
    assert net.r.stats()["forward"]["hook_dropped"] >= 1
    # REJECT_ICMP: the ping fails at once with "administratively prohibited".
    rec.verdicts[(Hook.FORWARD, icmp_proto)] = Verdict.REJECT_ICMP
    with pytest.raises(OSError) as info:
        await net.a.ping(dst, timeout=2)
    assert not isinstance(info.value, TimeoutError)
    # REJECT_RESET for TCP: the connection is refused by the router's reset.
    await echo_server(net.b)
    rec.verdicts[(Hook.FORWARD, 6)] = Verdict.REJECT_RESET
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(net.a.open_connection(dst, 7), 5)
    assert net.r.stats()["forward"]["hook_rejected"] >= 2
    # INPUT DROP for the router's own TCP port: nothing reaches its server.
    del rec.verdicts[(Hook.FORWARD, 6)]
    rec.verdicts[(Hook.INPUT, 6)] = Verdict.REJECT_RESET
    await echo_server(net.r)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(net.a.open_connection("198.18.1.1" if v4 else "fd00:1::1", 7), 5)


async def test_router_advertisements_configure_a_slaac_host() -> None:
    """RFC 4861 6.2, RFC 4862, RFC 8106: a host with ipv6="auto" behind the router learns
    its address, default route, MTU and DNS server from the router's advertisements, and
    reaches the other side."""
    a1, r1 = MemoryLink.pair()
    r2, b2 = MemoryLink.pair()
    r = await Stack.open(r1, ipv4="198.18.1.1/24", ipv6="fd00:1::1/64", config=FAST)
    b = await Stack.open(b2, ipv6="fd00:2::2/64", config=FAST)
    a = None
    try:
        await r.add_interface(r2, ipv6="fd00:2::1/64")
        b.add_route("::/0", "fd00:2::1")
        r.forwarding = True
        r.advertise("eth0", dns=["fd00:1::53"], mtu=1400)
        a = await Stack.open(a1, ipv6="auto", config=FAST)
        stack = a

        def slaac_ready() -> bool:
            configured = any(
                str(x).startswith("fd00:1:") and getattr(x, "state", "") == "preferred"
                for x in stack.addresses
            )
            return configured and any(str(r.network) == "::/0" for r in stack.routes)

        for _ in range(100):
            if slaac_ready():
                break
            await asyncio.sleep(0.05)
        assert slaac_ready(), (a.addresses, a.routes)
        assert "fd00:1::53" in a.ipv6_dns_servers
        assert a.ipv6.interface(0).mtu == 1400
        assert await a.ping("fd00:2::2", timeout=2) > 0
        assert r.stats()["radv"]["adverts_sent"] >= 1
    finally:
        for s in (a, r, b):
            if s is not None:
                await s.close()


async def test_mangled_traffic_is_counted_never_raised(net: Net) -> None:
    """Forwarded traffic is untrusted: valid frames with random bytes changed, truncated or
    extended, both families, fragments among them (seeded). The router never fails, and
    every IPv4 frame it forwards to B has a correct header checksum."""
    import random

    from netstack.proto.checksum import verify

    rng = random.Random(1812)
    rmac, amac = mac(net.r), mac(net.a)
    a4, b4 = bytes([198, 18, 1, 2]), bytes([198, 18, 2, 2])
    import ipaddress

    a6 = ipaddress.IPv6Address("fd00:1::2").packed
    b6 = ipaddress.IPv6Address("fd00:2::2").packed
    seen: list[bytes] = []
    b_link = net.links[3]
    original = b_link._deliver  # type: ignore[attr-defined]

    def spy(frame: memoryview) -> None:
        seen.append(bytes(frame))
        original(frame)

    b_link._deliver = spy  # type: ignore[attr-defined]
    inject = net.links[0].transmit
    for i in range(600):
        base = bytearray(
            ipv4_frame(rmac, amac, a4, b4) if i % 2 else ipv6_frame(rmac, amac, a6, b6)
        )
        if i % 7 == 0 and i % 2:
            base[14 + 6] = 0x20 | rng.randrange(0, 0x20)  # MF and an offset: a fragment
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(14, len(base))
            base[at] = rng.randrange(256)
        if rng.random() < 0.2:
            base = base[: rng.randrange(14, len(base))]
        elif rng.random() < 0.2:
            base += rng.randbytes(rng.randrange(1, 40))
        inject(base)
        if i % 50 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.2)
    assert net.r.stats()["stack"]["internal_errors"] == 0
    assert net.r.stats()["forward"]["forwarded4"] + net.r.stats()["forward"]["forwarded6"] > 0
    assert any(f[12:14] == b"\x08\x00" for f in seen)
    for frame in seen:
        if frame[12:14] == b"\x08\x00":
            hlen = (frame[14] & 0x0F) * 4
            assert verify(frame[14 : 14 + hlen])


@pytest.mark.parametrize("redirects", [False, True])
async def test_redirects_only_when_asked(redirects: bool) -> None:
    """RFC 1812 5.2.7.2, RFC 4861 8.2: a datagram that leaves by the interface it came in
    on, from a source on that link, prompts a Redirect only with ``send_redirects``; it is
    forwarded either way."""
    from netstack.link import Switch

    switch = Switch()
    a = await Stack.open(switch.port(), ipv4="198.18.1.2/24", ipv6="fd00:1::2/64", config=FAST)
    r = await Stack.open(switch.port(), ipv4="198.18.1.1/24", ipv6="fd00:1::1/64", config=FAST)
    c = await Stack.open(switch.port(), ipv4="198.18.1.3/24", ipv6="fd00:1::3/64", config=FAST)
    try:
        await c.add_interface(MemoryLink.pair()[0], ipv4="198.18.7.1/24", ipv6="fd00:7::1/64")
        a.add_route("198.18.7.0/24", "198.18.1.1")
        a.add_route("fd00:7::/64", "fd00:1::1")
        r.add_route("198.18.7.0/24", "198.18.1.3")
        r.add_route("fd00:7::/64", "fd00:1::3")
        r.forwarding = True
        r.send_redirects = redirects
        assert r.send_redirects is redirects
        for dst in ("198.18.7.1", "fd00:7::1"):
            assert await a.ping(dst, timeout=2) > 0
        fwd = r.stats()["forward"]
        assert fwd["forwarded4"] >= 1 and fwd["forwarded6"] >= 1
        assert fwd["redirects_sent"] == (2 if redirects else 0)
    finally:
        for s in (a, r, c):
            await s.close()


async def test_masquerade_port_forward_and_filter_through_the_router(net: Net) -> None:
    """The router's NAT and filter on its forwarding path (stack.nat / stack.filter are the
    packet hooks the forwarder calls): a inside, b outside. b sees a's connections from the
    router's outside address; a port forward on that address reaches a; a rule rejecting a
    port answers with a reset, and rules replaced at run time keep the tracked flows."""
    from netstack.proto.netfilter import Rule

    outside = net.r.interfaces[1]
    net.r.nat.masquerade(outside)
    seen: list[str] = []

    async def who(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername")[0])
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    await net.b.start_server(who, port=80)
    await net.a.start_server(who, port=8000)
    async with asyncio.timeout(10):
        reader, writer = await net.a.open_connection("198.18.2.2", 80)
        writer.write(b"out\n")
        assert await reader.readline() == b"out\n"
        assert seen == ["198.18.2.1"]  # masqueraded to the router's outside address
        net.r.nat.forward_port("tcp", 8080, to=("198.18.1.2", 8000), on=outside)
        r2, w2 = await net.b.open_connection("198.18.2.1", 8080)
        w2.write(b"in\n")
        assert await r2.readline() == b"in\n"
        assert seen[-1] == "198.18.2.2"
        net.r.filter.rules = [Rule("reject", chain="forward", proto="tcp", dport=81)]
        with pytest.raises(ConnectionRefusedError):
            await net.a.open_connection("198.18.2.2", 81)
    stats = net.r.stats()["netfilter"]
    assert stats["nat"]["mappings"] >= 1 and stats["conntrack"]["flows"] >= 2
    assert net.r.filter.counters()[0]["packets"] >= 1
    writer.close()
    w2.close()


async def test_unsolicited_syn_to_the_nat_is_held_then_answered_rfc5382_req4(net: Net) -> None:
    """A connection attempt from outside to the masqueraded address, on a port no mapping
    has: the router's own TCP does not refuse it at once (RFC 5382 REQ-4: not for 6
    seconds, so a simultaneous open can still happen); once the hold is over (the router's
    timer moved on by hand here) ICMP Port Unreachable refuses it."""
    net.r.nat.masquerade(net.r.interfaces[1])
    nf = net.r.netfilter
    async with asyncio.timeout(10):
        attempt = asyncio.ensure_future(net.b.open_connection("198.18.2.1", 20000))
        while nf.stats()["syns_held"] == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert not attempt.done()  # no reset came back
        assert net.r.stats()["tcp"]["tx_segments"] == 0
        nf.handle_timeout(net.r.loop.time() + 6.0)
        assert nf.stats()["syns_answered"] == 1
        with pytest.raises(OSError) as refused:
            await attempt
    assert refused.value.errno == errno.ECONNREFUSED


async def test_fragments_before_their_first_pass_the_nat(net: Net) -> None:
    """A datagram whose first fragment reaches the NAT last (RFC 4787 REQ-14): the later
    fragments wait for it, then all are translated, and the far end reassembles it (from the
    router's outside address); its answer, fragmented out of order too, comes back."""
    net.r.nat.masquerade(net.r.interfaces[1])
    got: list[tuple[bytes, str]] = []

    def first_last(link: MemoryLink) -> None:
        """The link delivers a fragmented datagram's first fragment after its last one."""
        transmit = link._peer
        assert transmit is not None
        held: list[bytes] = []

        def reordered(frame: bytes | bytearray, meta: FrameMeta | None = None) -> None:
            ip = bytes(frame[14:34])
            is_v4_fragment = frame[12:14] == b"\x08\x00" and ip[6:8] != b"\x40\x00" and (
                int.from_bytes(ip[6:8], "big") & 0x3FFF
            )  # fmt: skip
            if is_v4_fragment and int.from_bytes(ip[6:8], "big") & 0x1FFF == 0:
                held.append(bytes(frame))  # the first fragment: later
                return
            transmit(frame)
            if is_v4_fragment and not int.from_bytes(ip[6:8], "big") & 0x2000:
                for f in held:
                    transmit(f)
                held.clear()

        link._peer = reordered

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append((data, addr[0]))
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append((data, addr[0]))

    first_last(net.links[0])  # a's frames to the router
    first_last(net.links[3])  # b's frames to the router
    await net.b.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 9000))
    transport, _ = await net.a.create_datagram_endpoint(Sink, remote_addr=("198.18.2.2", 9000))
    payload = bytes(range(256)) * 12  # 3072 bytes: three fragments each way
    transport.sendto(payload)
    async with asyncio.timeout(10):
        while len(got) < 2:
            await asyncio.sleep(0.02)
    assert got == [(payload, "198.18.2.1"), (payload, "198.18.2.2")]
    nf = net.r.stats()["netfilter"]
    assert nf["fragments_held"] == 4 and nf["fragments_released"] == 4
    assert "fragment_without_flow" not in nf["drops"]
    transport.close()


@pytest.mark.parametrize("absent", ["198.18.2.99", "fd00:2::99"])
async def test_a_next_hop_that_never_answers_is_host_unreachable(absent: str) -> None:
    """RFC 1812 5.2.7.1 (4.3.3.1's code 1): a datagram for a host on an attached network that
    does not answer ARP is answered with Host Unreachable once the router gives up (IPv6:
    Address Unreachable, RFC 4861 7.2.2); counted in the router's drops."""
    from netstack.proto.neighbour.cache import NeighbourConfig

    quick = NeighbourConfig(retrans_time=0.05, max_requests=3)
    a1, r1 = MemoryLink.pair()
    r2, _nobody = MemoryLink.pair()
    ipv6 = IPv6Config(neighbour=quick, addrconf=FAST.ipv6.addrconf)
    router_config = StackConfig(arp=quick, ipv6=ipv6)
    a = await Stack.open(a1, ipv4="198.18.1.2/24", gateway="198.18.1.1", ipv6="fd00:1::2/64",
                         config=FAST)  # fmt: skip
    r = await Stack.open(r1, ipv4="198.18.1.1/24", ipv6="fd00:1::1/64", config=router_config)
    try:
        await r.add_interface(r2, ipv4="198.18.2.1/24", ipv6="fd00:2::1/64")
        a.add_route("::/0", "fd00:1::1")
        r.forwarding = True
        async with asyncio.timeout(10):
            with pytest.raises(OSError) as unreachable:
                await a.ping(absent, timeout=5)
        assert unreachable.value.errno == errno.EHOSTUNREACH, unreachable.value
        fwd = r.stats()["forward"]
        assert fwd["unresolved"] == 1 and fwd["drops"]["next_hop_unresolved"] == 1, fwd
        # The router's own datagrams to it still fail its own transports only.
        with pytest.raises(OSError):
            await r.ping(absent, timeout=5)
        assert r.stats()["forward"]["unresolved"] == 1
    finally:
        await a.close()
        await r.close()


@pytest.mark.parametrize("mode", ["off", "loose", "strict"])
async def test_reverse_path_filtering_rfc3704(net: Net, mode: str) -> None:
    """Datagrams with a spoofed source come in from net 1: one from net 2's prefix (the way
    back leaves by the other interface: strict refuses it), one from a prefix the router has
    no route to (loose refuses it too), and a true one; each refusal a counted drop."""
    from netstack.proto.ipv4 import wire as ip4
    from netstack.proto.udp import wire as udp

    got: list[str] = []

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.append(addr[0])

    await net.b.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 9000))
    with pytest.raises(ValueError):
        net.r.rp_filter = "sometimes"
    net.r.rp_filter = mode
    assert net.r.rp_filter == mode
    router_mac = bytes(net.r.interfaces[0].link.mac)
    a_mac = bytes(net.a.interfaces[0].link.mac)

    def spoofed(src: str) -> bytes:
        s, d = bytes(map(int, src.split("."))), bytes([198, 18, 2, 2])
        body = bytearray(8) + src.encode()
        udp.build_into(body, 0, 5000, 9000, s, d)
        datagram = bytearray(20) + body
        ip4.build_header_into(datagram, 0, len(datagram), 7, 0, 64, 17, s, d)
        return router_mac + a_mac + b"\x08\x00" + bytes(datagram)

    async with asyncio.timeout(10):
        await net.a.ping("198.18.2.2")  # every neighbour resolved
        for src in ("198.18.2.50", "198.19.7.7", "198.18.1.2"):
            net.links[0].transmit(spoofed(src))
        while "198.18.1.2" not in got:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
    fwd = net.r.stats()["forward"]
    expected = {
        "off": ["198.18.2.50", "198.19.7.7", "198.18.1.2"],
        "loose": ["198.18.2.50", "198.18.1.2"],
        "strict": ["198.18.1.2"],
    }[mode]
    assert got == expected, (got, fwd)
    assert fwd["rpf_dropped"] == 3 - len(expected)
    if mode != "off":
        assert fwd["drops"][f"rpf_{mode}"] == 3 - len(expected)
