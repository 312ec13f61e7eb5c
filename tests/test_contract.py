"""One contract for :class:`netstack.Stack` and :class:`netstack.HostStack`
(:class:`netstack.NetworkStack`): the same public names with the same signatures and defaults,
and the same error for the same ICMP or ICMPv6 message about a ping.

``mypy --strict netstack`` checks that both classes satisfy the Protocol (netstack/_typecheck.py);
this module checks what mypy does not: that neither class grows a public name the other lacks,
that parameters have the same defaults, and what each stack does at run time with the same
bytes on the wire.

The error parity drives a real :class:`Stack` end to end -- it pings a scripted peer on a memory
link, and the peer answers the echo request with the ICMP message under test, followed by the
echo reply (so a message the stack ignores ends the ping with its reply, at once) -- and hands
the very same message to :class:`HostStack`'s reader of raw ICMP sockets.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from netstack import HostStack, NetworkStack, Stack, StackConfig
from netstack.contract import StackServer
from netstack.host import HostServer, _match_reply
from netstack.link import MemoryLink
from netstack.proto.arp.wire import ArpOp, ArpPacket
from netstack.proto.arp.wire import parse as arp_parse
from netstack.proto.checksum import checksum
from netstack.proto.ethernet.wire import ETHERNET_HEADER_LEN, EtherType
from netstack.proto.icmp.wire import IcmpType
from netstack.proto.icmpv6 import ndp
from netstack.proto.icmpv6.wire import Icmp6Type
from netstack.proto.icmpv6.wire import build as icmp6_build
from netstack.proto.ipv4.wire import IpProto, build_header_into
from netstack.proto.ipv6.addrconf import AddrconfConfig
from netstack.proto.ipv6.layer import IPv6Config
from netstack.proto.ipv6.wire import IPv6Header, NextHeader
from netstack.streams import Server

# -- the public names ---------------------------------------------------------------------------

#: Public on both classes with a signature that differs by design: Stack.open takes a link and
#: its addresses, HostStack.open nothing (the operating system has them).
DIFFERENT_BY_DESIGN = frozenset({"open"})


def members(protocol: type) -> set[str]:
    """The names a Protocol class declares: methods, properties and annotated attributes."""
    names = set(getattr(protocol, "__annotations__", {}))
    for klass in protocol.__mro__:
        if klass.__module__ == "netstack.contract":
            names |= {n for n in vars(klass) if not n.startswith("_") or n in DUNDERS}
    return names - {"__annotations__"}


DUNDERS = frozenset({"__aenter__", "__aexit__"})


def public(obj: object) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


async def test_both_stacks_have_every_name_of_the_contract() -> None:
    a_link, _ = MemoryLink.pair()
    contract = members(NetworkStack)
    assert {"create_connection", "start_server", "ping", "stats", "loop"} <= contract
    async with await Stack.open(a_link, ipv4="198.18.0.1/24") as stack, HostStack() as host:
        assert isinstance(stack, NetworkStack) and isinstance(host, NetworkStack)
        for name in contract:
            assert hasattr(stack, name) and hasattr(host, name), name
        # Whatever HostStack offers is part of the contract: it has nothing Stack lacks.
        # (Stack has more: its link, addresses, routes and layers, which a host stack leaves
        # to the operating system.)
        named = contract - DUNDERS
        assert public(host) - DIFFERENT_BY_DESIGN <= named
        assert public(stack) >= named | DIFFERENT_BY_DESIGN


def test_both_servers_have_every_name_of_the_contract() -> None:
    contract = members(StackServer)
    assert {"addresses", "port", "close", "wait_closed", "serve_forever"} <= contract
    for server in (Server, HostServer):
        for name in contract:
            assert hasattr(server, name), (server, name)
    assert public(HostServer) - {"servers"} <= contract
    assert public(Server) <= contract


POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD


def contract_methods(protocol: type) -> Iterator[tuple[str, Any]]:
    for name in sorted(members(protocol)):
        attr = inspect.getattr_static(protocol, name)
        if callable(attr):
            yield name, attr


@pytest.mark.parametrize(
    ("protocol", "implementations"),
    [(NetworkStack, (Stack, HostStack)), (StackServer, (Server, HostServer))],
    ids=["stack", "server"],
)
def test_same_parameters_and_defaults(protocol: type, implementations: tuple[type, ...]) -> None:
    """Every parameter the contract names is a parameter of both classes, of the same kind
    and with the same default (mypy checks the types, not the defaults); the positional
    parameters come in the same order."""
    checked = 0
    for name, declared in contract_methods(protocol):
        expected = inspect.signature(declared).parameters
        for impl in implementations:
            actual = inspect.signature(getattr(impl, name)).parameters
            positional = [p for p in actual if actual[p].kind <= POSITIONAL]
            wanted = [p for p in expected if expected[p].kind <= POSITIONAL]
            assert positional[: len(wanted)] == wanted, (impl.__name__, name)
            for param in expected.values():
                got = actual.get(param.name)
                assert got is not None, (impl.__name__, name, param.name)
                assert got.kind == param.kind, (impl.__name__, name, param.name)
                assert got.default == param.default, (impl.__name__, name, param.name)
            checked += 1
    assert checked >= 2 * 4


# -- the same ICMP message, the same error ------------------------------------------------------

OUR4, PEER4 = "198.18.0.1", "198.18.0.2"
OUR6, PEER6 = "fd00::1", "fd00::2"
PEER_MAC = bytes.fromhex("02000000aa02")
FAST = StackConfig(
    ipv6=IPv6Config(addrconf=AddrconfConfig(retrans_timer=0.02, max_rtr_solicitation_delay=0.01))
)

#: (type, code, rest) of every message tried: each error type with its codes (known and a few
#: unknown ones), and types that are no errors (ignored by both).
MESSAGES4 = [
    *((IcmpType.DEST_UNREACHABLE, code, 0) for code in range(17)),
    (IcmpType.DEST_UNREACHABLE, 4, 1400),  # fragmentation needed, with a next-hop MTU
    (IcmpType.SOURCE_QUENCH, 0, 0),
    (IcmpType.REDIRECT, 1, 0xC6120003),
    (IcmpType.TIME_EXCEEDED, 0, 0),
    (IcmpType.TIME_EXCEEDED, 1, 0),
    (IcmpType.PARAMETER_PROBLEM, 0, 0x14000000),
    (IcmpType.PARAMETER_PROBLEM, 1, 0),
    (IcmpType.PARAMETER_PROBLEM, 2, 0),
    (6, 0, 0),  # Alternate Host Address (deprecated): not an error
    (IcmpType.TIMESTAMP, 0, 0),
]
MESSAGES6 = [
    *((Icmp6Type.DEST_UNREACHABLE, code, 0) for code in range(9)),
    (Icmp6Type.PACKET_TOO_BIG, 0, 1280),
    (Icmp6Type.TIME_EXCEEDED, 0, 0),
    (Icmp6Type.TIME_EXCEEDED, 1, 0),
    *((Icmp6Type.PARAMETER_PROBLEM, code, 40) for code in range(4)),
    (5, 0, 0),  # an unassigned error type (RFC 4443 2.4 (a): passed to the upper layer)
    (127, 0, 0),
    (150, 0, 0),  # an unknown informational message (RFC 4443 2.4 (b): discarded)
]


def outcome(result: BaseException | bool | None) -> str:
    """What a ping came to, comparable between the stacks: the exception's class and errno, or
    "ignored" when the message changed nothing."""
    if isinstance(result, OSError):
        return f"{type(result).__name__}({result.errno})"
    assert result in (None, False), result
    return "ignored"


@dataclass
class Tried:
    """One message as the scripted peer sent it, and what Stack.ping made of it."""

    message: bytes  # the ICMP or ICMPv6 message, from its type on
    ident: int
    seq: int
    payload: bytes  # the echo data of the quoted request
    stack: str


class ScriptedPeer:
    """The far end of a memory link: answers address resolution for PEER4 and PEER6, and each
    echo request with the next message of a script, quoting the request, then the reply."""

    def __init__(self, link: MemoryLink) -> None:
        self.link = link
        self.script: list[tuple[int, int, int]] = []
        self.sent: list[tuple[bytes, int, int, bytes]] = []

    def on_frame(self, frame: memoryview) -> None:
        data = bytes(frame)
        src_mac = data[6:12]
        ethertype = int.from_bytes(data[12:14], "big")
        if ethertype == EtherType.ARP:
            request = arp_parse(data[ETHERNET_HEADER_LEN:])
            if request.op == ArpOp.REQUEST and request.tpa == ipaddress.ip_address(PEER4).packed:
                reply = ArpPacket(ArpOp.REPLY, PEER_MAC, request.tpa, request.sha, request.spa)
                self._send(src_mac, EtherType.ARP, reply.to_bytes())
        elif ethertype == EtherType.IPV4 and data[14 + 9] == IpProto.ICMP:
            packet = data[ETHERNET_HEADER_LEN:]
            hl = (packet[0] & 0x0F) * 4
            if packet[hl] == IcmpType.ECHO_REQUEST:
                self._answer4(src_mac, packet, hl)
        elif ethertype == EtherType.IPV6 and data[14 + 6] == NextHeader.ICMPV6:
            packet = data[ETHERNET_HEADER_LEN:]
            type_ = packet[40]
            target = packet[48:64]
            if type_ == Icmp6Type.NEIGHBOR_SOLICIT and target == ipaddress.ip_address(PEER6).packed:
                src = packet[8:24]
                advert = ndp.build_neighbor_advert(
                    target, src, target, PEER_MAC, router=False, solicited=True, override=True
                )
                self._send6(src_mac, target, src, advert)
            elif type_ == Icmp6Type.ECHO_REQUEST:
                self._answer6(src_mac, packet)

    def _send(self, dst_mac: bytes, ethertype: int, payload: bytes) -> None:
        self.link.transmit(dst_mac + PEER_MAC + ethertype.to_bytes(2, "big") + payload)

    def _send4(self, dst_mac: bytes, dst: bytes, message: bytes) -> None:
        frame = bytearray(20 + len(message))
        src = ipaddress.ip_address(PEER4).packed
        build_header_into(frame, 0, len(frame), 7, 0, 64, IpProto.ICMP, src, dst)
        frame[20:] = message
        self._send(dst_mac, EtherType.IPV4, bytes(frame))

    def _send6(self, dst_mac: bytes, src: bytes, dst: bytes, message: bytes) -> None:
        header = IPv6Header(0, 0, len(message), NextHeader.ICMPV6, 255, src, dst)
        self._send(dst_mac, EtherType.IPV6, header.to_bytes() + message)

    def _answer4(self, dst_mac: bytes, request: bytes, hl: int) -> None:
        type_, code, rest = self.script.pop(0)
        message = bytearray(struct.pack("!BBHI", type_, code, 0, rest) + request)
        struct.pack_into("!H", message, 2, checksum(message))
        echo = request[hl:]
        self.sent.append((bytes(message), *struct.unpack_from("!HH", echo, 4), echo[8:]))
        self._send4(dst_mac, request[12:16], bytes(message))
        reply = bytearray(echo)
        struct.pack_into("!BBH", reply, 0, IcmpType.ECHO_REPLY, 0, 0)
        struct.pack_into("!H", reply, 2, checksum(reply))
        self._send4(dst_mac, request[12:16], bytes(reply))

    def _answer6(self, dst_mac: bytes, request: bytes) -> None:
        type_, code, rest = self.script.pop(0)
        ours, theirs = request[24:40], request[8:24]
        message = icmp6_build(type_, code, rest, request, ours, theirs)
        echo = request[40:]
        self.sent.append((message, *struct.unpack_from("!HH", echo, 4), echo[8:]))
        self._send6(dst_mac, ours, theirs, message)
        reply = icmp6_build(Icmp6Type.ECHO_REPLY, 0, int.from_bytes(echo[4:8], "big"), echo[8:],
                            ours, theirs)  # fmt: skip
        self._send6(dst_mac, ours, theirs, reply)


async def stack_outcomes(v6: bool, messages: list[tuple[int, int, int]]) -> list[Tried]:
    stack_link, peer_link = MemoryLink.pair()
    peer = ScriptedPeer(peer_link)
    listening = asyncio.get_running_loop().create_task(peer_link.listen(peer.on_frame))
    tried: list[Tried] = []
    try:
        async with await Stack.open(
            stack_link, ipv4=f"{OUR4}/24", ipv6=f"{OUR6}/64" if v6 else None, config=FAST
        ) as stack:
            for message in messages:
                peer.script.append(message)
                try:
                    await stack.ping(PEER6 if v6 else PEER4, timeout=2.0)
                except OSError as exc:
                    result: BaseException | None = exc
                else:
                    result = None
                assert not peer.script, "the peer saw no echo request"
                sent, ident, seq, payload = peer.sent[-1]
                tried.append(Tried(sent, ident, seq, payload, outcome(result)))
    finally:
        await peer_link.disconnect()
        await listening
    return tried


def host_outcome(v6: bool, tried: Tried) -> str:
    """What HostStack's ping makes of the same message arriving on its raw ICMP socket (an
    IPv4 raw socket delivers the IP header as well)."""
    data = tried.message
    if not v6:
        outer = bytearray(20)
        src, dst = ipaddress.ip_address(PEER4).packed, ipaddress.ip_address(OUR4).packed
        build_header_into(outer, 0, 20 + len(data), 7, 0, 64, IpProto.ICMP, src, dst)
        data = bytes(outer) + data
    sender = (PEER6, 0, 0, 0) if v6 else (PEER4, 0)
    address = PEER6 if v6 else PEER4
    result = _match_reply(data, sender, True, v6, address, tried.ident, tried.seq, tried.payload)
    return outcome(result)


@pytest.mark.parametrize("v6", [False, True], ids=["icmp", "icmpv6"])
async def test_same_error_for_the_same_icmp_message(v6: bool) -> None:
    messages = MESSAGES6 if v6 else MESSAGES4
    tried = await stack_outcomes(v6, messages)
    on_stack = {m: t.stack for m, t in zip(messages, tried, strict=True)}
    on_host = {m: host_outcome(v6, t) for m, t in zip(messages, tried, strict=True)}
    assert on_host == on_stack
    # Not all alike: the table is exercised, errors and ignored messages both.
    assert "ignored" in on_stack.values()
    assert len(set(on_stack.values())) >= 5
