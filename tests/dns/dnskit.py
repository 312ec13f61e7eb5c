"""Zones and raw exchanges shared by the DNS tests: queries built with dnspython, sent over a
netstack UDP endpoint or TCP connection without the resolver in the way."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.message

SERVER = "198.18.0.2"

BIG_TXT = [f'"{i:02d}' + "x" * 197 + '"' for i in range(10)]  # about 2 kB
MEDIUM_TXT = [f'"{i:02d}' + "y" * 197 + '"' for i in range(4)]  # about 850 bytes

ZONE: dict[str, Any] = {
    "example.test.": {
        "@": [
            ("SOA", "ns admin 2024010101 3600 600 86400 60"),
            ("NS", "ns"),
            ("MX", "10 mail"),
            ("TXT", '"v=spf1 -all"'),
        ],
        "ns": [("A", "198.18.0.2")],
        "mail": [("A", "198.18.0.25"), ("AAAA", "fd00::25")],
        "www": [("CNAME", "web")],
        "web": [("A", "198.18.0.80"), ("AAAA", "fd00::80")],
        "alias": [("CNAME", "www")],  # a chain: alias -> www -> web
        "v4only": [("A", "198.18.0.4")],
        "_http._tcp": [("SRV", "0 5 80 web")],
        "big": [("TXT", t) for t in BIG_TXT],
        "medium": [("TXT", t) for t in MEDIUM_TXT],
        "a.b": [("A", "198.18.0.11")],  # b.example.test. is an empty non-terminal
        "*.wild": [("A", "198.18.0.42")],
        "sub": [("NS", "ns.sub")],  # a delegation, with glue below it
        "ns.sub": [("A", "198.18.0.53")],
        "loop1": [("CNAME", "loop2")],
        "loop2": [("CNAME", "loop1")],
        "outside": [("CNAME", "host.elsewhere.invalid.")],
        "many": [("A", f"198.18.1.{i}") for i in range(1, 41)],
        "mx-many": [("MX", "10 many")],
        "short-ttl": [("A", "198.18.0.5", 1)],
    },
    "0.18.198.in-addr.arpa.": {
        "@": [("SOA", "ns.example.test. admin.example.test. 1 3600 600 86400 30")],
        "80": [("PTR", "web.example.test.")],
    },
}


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))


async def udp_wire(stack: Any, wire: bytes, *, host: str = SERVER, port: int = 53,
                   timeout: float = 2.0) -> bytes:  # fmt: skip
    """Send ``wire`` over UDP and return the first datagram back."""
    transport, proto = await stack.create_datagram_endpoint(Collector, remote_addr=(host, port))
    try:
        transport.sendto(wire)
        data, _ = await asyncio.wait_for(proto.queue.get(), timeout)
        return bytes(data)
    finally:
        transport.close()


async def udp_query(stack: Any, query: dns.message.Message, **kwargs: Any) -> dns.message.Message:
    data = await udp_wire(stack, query.to_wire(), **kwargs)
    return dns.message.from_wire(data)


async def udp_silence(stack: Any, wire: bytes, *, wait: float = 0.3, port: int = 53) -> bool:
    """True when nothing comes back to ``wire`` within ``wait`` seconds."""
    try:
        await udp_wire(stack, wire, timeout=wait, port=port)
    except TimeoutError:
        return True
    return False


async def tcp_query(stack: Any, *queries: dns.message.Message) -> list[dns.message.Message]:
    """Send every query on one TCP connection (in one write: pipelined) and read as many
    length-prefixed answers."""
    reader, writer = await stack.open_connection(SERVER, 53)
    try:
        writer.write(b"".join(q.to_wire(prepend_length=True) for q in queries))
        out = []
        for _ in queries:
            size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 5.0), "big")
            out.append(dns.message.from_wire(await reader.readexactly(size)))
        return out
    finally:
        writer.close()
