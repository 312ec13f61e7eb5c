"""Whole stacks on in-memory networks: ARP resolution and expiry, ping, routing, loss, and
hostile frames from a raw peer."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netstack
from netstack import Stack, StackConfig
from netstack.link import Impairment, MemoryLink
from netstack.proto.arp.wire import ArpOp, ArpPacket
from netstack.proto.checksum import checksum
from netstack.proto.ipv4.wire import IPv4Header
from netstack.proto.neighbour.cache import NeighbourConfig


class RawPeer:
    """The far end of a cable, driven by hand: records frames, sends crafted ones."""

    def __init__(self, link: MemoryLink) -> None:
        self.link = link
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(link.listen(self._on_frame))

    def _on_frame(self, frame: memoryview) -> None:
        self.frames.put_nowait(bytes(frame))

    async def next(self, ethertype: int | None = None, timeout: float = 2.0) -> bytes:
        while True:
            frame = await asyncio.wait_for(self.frames.get(), timeout)
            if ethertype is None or struct.unpack_from("!H", frame, 12)[0] == ethertype:
                return frame

    def send(self, frame: bytes) -> None:
        self.link.transmit(frame)

    async def close(self) -> None:
        await self.link.disconnect()
        await self.task


def ipv4_frame(
    dst_mac: bytes, src_mac: bytes, src: str, dst: str, proto: int, payload: bytes, **kw: int
) -> bytes:
    header = IPv4Header(
        tos=0,
        total_length=20 + len(payload),
        ident=kw.get("ident", 1),
        flags_fragment=kw.get("flags_fragment", 0),
        ttl=64,
        proto=proto,
        checksum=0,
        src=bytes(map(int, src.split("."))),
        dst=bytes(map(int, dst.split("."))),
    )
    raw = bytearray(header.to_bytes())
    struct.pack_into("!H", raw, 10, checksum(raw))
    return dst_mac + src_mac + b"\x08\x00" + bytes(raw) + payload


@pytest.fixture
async def raw_and_stack() -> tuple[RawPeer, Stack]:  # type: ignore[misc]
    a_link, b_link = MemoryLink.pair()
    peer = RawPeer(b_link)
    stack = await Stack.open(a_link, ipv4="198.18.0.1/24")
    yield peer, stack
    await stack.close()
    await peer.close()


async def test_first_packet_waits_for_arp(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    assert a.arp_table() == []
    rtt = await a.ping("198.18.0.2")
    assert rtt > 0
    assert a.arp_table() == [("198.18.0.2", b.mac, "reachable")]
    # b learnt a from its request (RFC 826: the target adds the sender).
    assert [ip for ip, _, _ in b.arp_table()] == ["198.18.0.1"]
    assert a.stats()["arp"]["requests_sent"] == 1
    assert a.stats()["ipv4"]["drops"] == {}


async def test_arp_entries_expire() -> None:
    config = StackConfig(arp=NeighbourConfig(reachable_time=0.05, stale_time=0.1))
    a_link, b_link = MemoryLink.pair()
    async with (
        await Stack.open(a_link, ipv4="198.18.0.1/24", config=config) as a,
        await Stack.open(b_link, ipv4="198.18.0.2/24") as b,
    ):
        await a.ping("198.18.0.2")
        assert a.arp_table()[0][2] == "reachable"
        await asyncio.sleep(0.08)
        assert a.arp_table()[0][2] == "stale"
        await asyncio.sleep(0.15)
        assert a.arp_table() == []
        await a.ping("198.18.0.2")  # resolved again
        assert a.stats()["arp"]["requests_sent"] == 2
        assert b.stats()["arp"]["replies_sent"] == 2


async def test_unanswered_arp_fails_the_ping() -> None:
    config = StackConfig(arp=NeighbourConfig(retrans_time=0.02, max_requests=3))
    a_link, _ = MemoryLink.pair()
    async with await Stack.open(a_link, ipv4="198.18.0.1/24", config=config) as a:
        with pytest.raises(OSError) as info:
            await a.ping("198.18.0.77", timeout=2.0)
        assert info.value.errno == errno.EHOSTUNREACH
        assert a.stats()["arp"]["requests_sent"] == 3
        assert a.stats()["arp"]["drops"]["unresolved"] == 1


async def test_ping_timeout_and_sizes(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    for size in (0, 1, 56, 1472, 1473, 4000, 65507):
        assert await a.ping("198.18.0.2", size=size) > 0
    b.link.impairment = Impairment(loss=1.0)  # type: ignore[attr-defined]
    with pytest.raises(TimeoutError):
        await a.ping("198.18.0.2", timeout=0.05)
    with pytest.raises(ValueError):
        await a.ping("198.18.0.2", size=65508)
    with pytest.raises(socket.gaierror):  # a name, and no name server to ask
        await a.ping("example.invalid")


async def test_ping_own_addresses(stack_pair: tuple[Stack, Stack]) -> None:
    a, _ = stack_pair
    assert await a.ping("198.18.0.1") > 0
    assert await a.ping("127.0.0.1") > 0


async def test_gateway_routing(network: netstack.testing.Network) -> None:
    router = await network.host("198.18.0.1/24")
    host = await network.host("198.18.0.2/24", gateway="198.18.0.1")
    routes = host.routes
    assert [str(r.network) for r in routes] == ["198.18.0.0/24", "0.0.0.0/0"]
    assert str(routes[1].gateway) == "198.18.0.1"
    t, _ = await host.create_datagram_endpoint(asyncio.DatagramProtocol)
    t.sendto(b"far away", ("203.0.113.9", 9))
    await asyncio.sleep(0.05)
    # Sent to the router's MAC (it is not a router, so it drops it).
    assert host.arp_table()[0][:2] == ("198.18.0.1", router.mac)
    assert router.stats()["ipv4"]["drops"] == {"not_for_us": 1}
    with pytest.raises(ValueError):
        host.set_gateway("203.0.113.1")  # not on any of its networks
    host.set_gateway(None)
    assert [str(r.network) for r in host.routes] == ["198.18.0.0/24"]


async def test_open_misuse() -> None:
    link, _ = MemoryLink.pair()
    for bad in ("198.18.0.1", "198.18.0.0/24", "198.18.0.255/24", "300.1.1.1/24", "nonsense"):
        if bad == "198.18.0.1":
            continue  # a bare address is a /32, which is valid
        with pytest.raises(ValueError):
            await Stack.open(link, ipv4=bad)
    with pytest.raises(ValueError):
        await Stack.open(link, ipv4="198.18.0.1/24", gateway="10.0.0.1")
    for bad6 in ("198.18.0.1/24", "nonsense", "ff02::1/64", "::/64"):
        with pytest.raises(ValueError):
            await Stack.open(link, ipv6=bad6)
    with pytest.raises(TypeError):
        await Stack.open(object())  # type: ignore[arg-type]


async def test_address_conflict_is_detected(network: netstack.testing.Network) -> None:
    a = await network.host("198.18.0.7/24")
    b = await network.host("198.18.0.7/24")  # announces an address a holds
    await asyncio.sleep(0.01)
    assert a.stats()["arp"]["conflicts"] >= 1
    assert b.stats()["arp"]["conflicts"] >= 1  # a defended its address


async def test_udp_under_twenty_percent_loss(network: netstack.testing.Network) -> None:
    impairment = Impairment(loss=0.2, seed=20)
    server = await network.host("198.18.0.1/24", impairment=impairment)
    client = await network.host("198.18.0.2/24")

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    await server.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
    replies: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            replies.put_nowait(data)

    t, _ = await client.create_datagram_endpoint(Client, remote_addr=("198.18.0.1", 7))
    got = set()
    for i in range(100):
        message = f"request {i}".encode()
        for _attempt in range(20):  # the application retries, as UDP applications must
            t.sendto(message)
            try:
                reply = await asyncio.wait_for(replies.get(), 0.05)
            except TimeoutError:
                continue
            got.add(reply)
            if reply == message:
                break
    assert {f"request {i}".encode() for i in range(100)} <= got
    lost = server.link.impairment_stats()["tx"].lost  # type: ignore[attr-defined]
    assert lost > 0


async def test_hostile_frames_are_counted_not_raised(
    raw_and_stack: tuple[RawPeer, Stack],
) -> None:
    peer, stack = raw_and_stack
    mac = stack.link.mac
    me = peer.link.mac
    frames = [
        b"\x00" * 5,  # runt
        mac + me,  # no EtherType
        mac + me + b"\x00\x40" + b"llc",  # 802.3 length field
        mac + me + b"\x81\x00\x00\x05\x08\x00" + b"\x45" * 20,  # VLAN-tagged
        mac + me + b"\x08\x00" + b"\x45\x00",  # truncated IPv4
        mac + me + b"\x08\x00" + b"\x46" + b"\x00" * 19,  # IHL 6, truncated
        mac + me + b"\x08\x06" + b"\x00\x01",  # truncated ARP
        ipv4_frame(mac, me, "198.18.0.2", "198.18.0.1", 17, b"\x00\x01\x00\x07\x00\x03\x00\x00"),
        ipv4_frame(mac, me, "224.0.0.9", "198.18.0.1", 17, b"\x00" * 8),  # multicast source
        ipv4_frame(mac, me, "198.18.0.2", "198.18.0.99", 17, b"\x00" * 8),  # not for us
        ipv4_frame(mac, me, "198.18.0.2", "198.18.0.1", 1, b"\x08"),  # short ICMP
        ipv4_frame(mac, me, "198.18.0.2", "198.18.0.1", 1, b"\x08\x00\x00\x00" + b"\x00" * 4),
        ipv4_frame(b"\x02" * 6, me, "198.18.0.2", "198.18.0.1", 17, b""),  # other MAC
    ]
    bad_checksum = bytearray(ipv4_frame(mac, me, "198.18.0.2", "198.18.0.1", 17, b"\x00" * 8))
    bad_checksum[24] ^= 0xFF
    frames.append(bytes(bad_checksum))
    for frame in frames:
        if len(frame) >= 14:
            peer.send(frame)
        else:
            with pytest.raises(netstack.LinkError):
                peer.send(frame)
    await asyncio.sleep(0.01)
    s = stack.stats()
    assert s["stack"]["internal_errors"] == 0
    drops = {f"{layer}.{r}" for layer, c in s.items() if "drops" in c for r in c["drops"]}
    expected = {
        "ethernet.ieee802_3_llc",
        "ethernet.vlan_tagged",
        "ethernet.not_for_us",
        "ipv4.truncated",
        "ipv4.bad_source",
        "ipv4.not_for_us",
        "ipv4.bad_checksum",
        "arp.truncated",
        "udp.bad_length",
        "icmp.truncated",
        "icmp.bad_checksum",
    }
    assert expected <= drops, expected - drops


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=200), proto=st.sampled_from([1, 6, 17, 99]))
async def test_random_datagrams_never_raise(
    raw_and_stack: tuple[RawPeer, Stack], payload: bytes, proto: int
) -> None:
    peer, stack = raw_and_stack
    mac = stack.link.mac
    peer.send(ipv4_frame(mac, peer.link.mac, "198.18.0.2", "198.18.0.1", proto, payload))
    await asyncio.sleep(0)
    assert stack.stats()["stack"]["internal_errors"] == 0


async def test_fragment_flood_is_bounded(raw_and_stack: tuple[RawPeer, Stack]) -> None:
    peer, stack = raw_and_stack
    mac = stack.link.mac
    rng = random.Random(5)
    for i in range(500):  # first fragments of 500 datagrams that never complete
        frag = ipv4_frame(
            mac, peer.link.mac, "198.18.0.2", "198.18.0.1", 17, rng.randbytes(1000),
            ident=i, flags_fragment=0x2000,
        )  # fmt: skip
        peer.send(frag)
        if i % 50 == 0:
            await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    ipv4 = stack.stats()["ipv4"]
    limits = stack.config.ipv4.reassembly
    assert ipv4["reassembling"] <= limits.max_datagrams
    assert ipv4["reassembly_bytes"] <= limits.max_bytes
    assert ipv4["drops"]["reassembly_evicted"] >= 500 - limits.max_datagrams


async def test_arp_reply_to_a_request_from_a_raw_peer(raw_and_stack: tuple[RawPeer, Stack]) -> None:
    peer, stack = raw_and_stack
    me = peer.link.mac
    request = ArpPacket(
        ArpOp.REQUEST, me, bytes([198, 18, 0, 2]), b"\x00" * 6, bytes([198, 18, 0, 1])
    )
    peer.send(b"\xff" * 6 + me + b"\x08\x06" + request.to_bytes())
    while True:
        reply = await peer.next(0x0806)
        if reply[:6] == me:
            break
    packet = ArpPacket(*struct.unpack_from("!H6s4s6s4s", reply, 20))
    assert packet.op == ArpOp.REPLY
    assert packet.sha == stack.link.mac and packet.spa == bytes([198, 18, 0, 1])
    assert packet.tha == me and packet.tpa == bytes([198, 18, 0, 2])
