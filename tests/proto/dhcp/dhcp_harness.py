"""Helpers for the DHCP machine tests: addresses, a server with one pool, message builders, and
:class:`Wire`, which carries datagrams between client machines and a server machine with time
as a plain number (no event loop)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netstack.proto.dhcp.client import DhcpClient, DhcpClientConfig, Event, Outgoing, ProbeAddress
from netstack.proto.dhcp.server import DhcpServer, DhcpServerConfig, Pool, Reply
from netstack.proto.dhcp.wire import (
    BootOp,
    DhcpMessage,
    MessageType,
    OptionCode,
    build,
    encode_u32,
    parse,
)

SERVER_IP = ipaddress.IPv4Address("198.18.0.1").packed
NETWORK = ipaddress.IPv4Network("198.18.0.0/24")
ZERO = bytes(4)
BROADCAST = b"\xff\xff\xff\xff"


def ip(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def fmt(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


def mac(n: int) -> bytes:
    return bytes([2, 0, 0, 0, (n >> 8) & 0xFF, n & 0xFF])


def pool(start: str = "198.18.0.100", end: str = "198.18.0.199", **kw: Any) -> Pool:
    kw.setdefault("router", ipaddress.IPv4Address("198.18.0.1"))
    kw.setdefault("dns_servers", (ipaddress.IPv4Address("198.18.0.53"),))
    kw.setdefault("domain", "example.test")
    kw.setdefault("lease_time", 3600)
    return Pool(NETWORK, ipaddress.IPv4Address(start), ipaddress.IPv4Address(end), **kw)


def server(*, pools: tuple[Pool, ...] | None = None, **kw: Any) -> DhcpServer:
    return DhcpServer(SERVER_IP, DhcpServerConfig(pools=pools or (pool(),), **kw))


#: A client without the ARP check, for tests that are not about it.
NO_PROBE = DhcpClientConfig(arp_probe=False)
#: RFC 5227's probe timings shortened (the structure is what is tested).
QUICK_PROBE = DhcpClientConfig(probe_wait=0.1, probe_min=0.1, probe_max=0.2, announce_wait=0.2)


def client(config: DhcpClientConfig = NO_PROBE, n: int = 1, seed: int = 1) -> DhcpClient:
    return DhcpClient(mac(n), config, random.Random(seed))


def request(
    kind: MessageType,
    chaddr: bytes,
    *,
    xid: int = 0x1234,
    ciaddr: bytes = ZERO,
    giaddr: bytes = ZERO,
    flags: int = 0,
    requested: bytes | None = None,
    server_id: bytes | None = None,
    client_id: bytes | None = None,
    lease_time: int | None = None,
    options: dict[int, bytes] | None = None,
) -> DhcpMessage:
    """A client's message, as bytes-ready DhcpMessage."""
    opts: dict[int, bytes] = {OptionCode.MESSAGE_TYPE: bytes([kind])}
    if client_id is not None:
        opts[OptionCode.CLIENT_ID] = client_id
    if requested is not None:
        opts[OptionCode.REQUESTED_ADDRESS] = requested
    if server_id is not None:
        opts[OptionCode.SERVER_ID] = server_id
    if lease_time is not None:
        opts[OptionCode.LEASE_TIME] = encode_u32(lease_time)
    opts.update(options or {})
    return DhcpMessage(op=BootOp.REQUEST, xid=xid, chaddr=chaddr, options=opts, flags=flags,
                       ciaddr=ciaddr, giaddr=giaddr)  # fmt: skip


def reply(
    kind: MessageType,
    to: DhcpClient,
    *,
    yiaddr: str = "198.18.0.100",
    xid: int | None = None,
    chaddr: bytes | None = None,
    server_id: str | None = "198.18.0.1",
    lease_time: int | None = 3600,
    options: dict[int, bytes] | None = None,
) -> bytes:
    """A server's reply to ``to``'s current exchange, as bytes."""
    opts: dict[int, bytes] = {OptionCode.MESSAGE_TYPE: bytes([kind])}
    if server_id is not None:
        opts[OptionCode.SERVER_ID] = ip(server_id)
    if lease_time is not None and kind != MessageType.NAK:
        opts[OptionCode.LEASE_TIME] = encode_u32(lease_time)
    if kind != MessageType.NAK:
        opts[OptionCode.SUBNET_MASK] = ip("255.255.255.0")
    opts.update(options or {})
    msg = DhcpMessage(
        op=BootOp.REPLY,
        xid=to.xid if xid is None else xid,
        chaddr=to.mac if chaddr is None else chaddr,
        options=opts,
        yiaddr=ip(yiaddr) if kind != MessageType.NAK else ZERO,
    )
    return build(msg)


def sent(c: DhcpClient) -> list[tuple[DhcpMessage, Outgoing]]:
    return [(parse(out.payload), out) for out in c.datagrams_to_send()]


def events(c: DhcpClient) -> list[Event]:
    out = []
    while (e := c.next_event()) is not None:
        out.append(e)
    return out


def kind_of(msg: DhcpMessage) -> MessageType:
    assert msg.message_type is not None
    return MessageType(msg.message_type)


@dataclass
class Wire:
    """Client machines and a server machine on one link: every datagram a client sends goes
    to the server (unless ``server_up`` is False or ``drop`` says so), replies go to the client
    they are for; :meth:`advance` moves time through every deadline."""

    server: DhcpServer | None
    clients: list[DhcpClient]
    now: float = 0.0
    server_up: bool = True
    #: Addresses that another (invisible) host on the link uses: probes for them conflict.
    in_use: set[bytes] = field(default_factory=set)
    drop: Callable[[DhcpMessage], bool] | None = None
    log: list[tuple[float, str, DhcpMessage]] = field(default_factory=list)

    def run(self) -> None:
        moved = True
        while moved:
            moved = False
            for c in self.clients:
                for out in c.datagrams_to_send():
                    moved = True
                    msg = parse(out.payload)
                    self.log.append((self.now, c.mac.hex(":"), msg))
                    if self.server is None or not self.server_up:
                        continue
                    if self.drop is not None and self.drop(msg):
                        continue
                    for r in self.server.receive(out.payload, self.now):
                        self.deliver(r)
                for action in c.actions_to_send():
                    assert isinstance(action, ProbeAddress)
                    if action.ip in self.in_use:
                        moved = True
                        c.probe_result(action.ip, True, self.now)

    def deliver(self, r: Reply) -> None:
        msg = parse(r.payload)
        self.log.append((self.now, "server", msg))
        for c in self.clients:
            if r.broadcast or r.mac == c.mac or (c.lease and ip(c.lease.address) == r.dst):
                c.receive(r.payload, self.now)

    def poll_at(self) -> float | None:
        times = [c.poll_at() for c in self.clients]
        if self.server is not None:
            times.append(self.server.poll_at())
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def advance(self, until: float) -> None:
        self.run()
        while True:
            at = self.poll_at()
            if at is None or at > until:
                break
            self.now = max(self.now, at)
            for c in self.clients:
                c.handle_timeout(self.now)
            if self.server is not None:
                self.server.handle_timeout(self.now)
            self.run()
        self.now = max(self.now, until)

    def sent_by_clients(self, kind: MessageType) -> list[tuple[float, DhcpMessage]]:
        return [(t, m) for t, who, m in self.log if who != "server" and m.message_type == kind]
