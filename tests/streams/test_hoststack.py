"""HostStack beyond the stream conformance suite: ping (datagram and raw ICMP sockets, and
the error without either), UDP on loopback, servers' ``addresses``, ``local_port``,
``stats()``, ``close()``, and one application run unchanged on netstack and on the host."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
import types
from typing import Any

import pytest

import netstack
import netstack.host
from netstack import HostStack, Stack
from netstack.link import MemoryLink
from netstack.testing import require_net_admin

STEP = 10.0


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.read())
    await writer.drain()
    writer.close()


async def round_trip(stack: Any, host: str, port: int, data: bytes) -> bytes:
    async with asyncio.timeout(STEP):
        reader, writer = await stack.open_connection(host, port)
        writer.write(data)
        writer.write_eof()
        got = await reader.read()
        writer.close()
        await writer.wait_closed()
    return bytes(got)


# -- ping ---------------------------------------------------------------------------------------
async def test_ping_loopback() -> None:
    async with HostStack() as host:
        try:
            async with asyncio.timeout(STEP):
                rtt = await host.ping("127.0.0.1", timeout=2.0, size=1000)
        except PermissionError as exc:
            pytest.skip(f"this process may open no ICMP socket: {exc}")
        assert rtt > 0
        assert host.stats()["pings_sent"] == host.stats()["pings_answered"] == 1


async def test_ping_ipv6_loopback() -> None:
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback address here")
    async with HostStack() as host:
        try:
            async with asyncio.timeout(STEP):
                assert await host.ping("::1", timeout=2.0) > 0
        except PermissionError as exc:
            pytest.skip(f"this process may open no ICMP socket: {exc}")


PING_SCRIPT = """
import asyncio, errno, socket
from netstack import HostStack
from netstack.host import _icmp_socket

async def main():
    sock, raw = _icmp_socket(socket.AF_INET)
    sock.close()
    print("raw" if raw else "datagram")
    async with HostStack() as host:
        for size in (0, 56, 1472, 9000):
            assert await host.ping("127.0.0.1", timeout=2.0, size=size) > 0
        print("answered")
        try:
            await host.ping("198.18.0.9", timeout=0.5)  # no route in an empty namespace
        except TimeoutError:
            print("timeout")
        except OSError as exc:
            print("error", errno.errorcode.get(exc.errno, exc.errno))

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("ping_group_range", "kind"), [("0 2147483647", "datagram"), ("1 0", "raw")]
)
def test_ping_socket_kinds_in_namespace(ping_group_range: str, kind: str) -> None:
    """In a fresh namespace (root), with ``net.ipv4.ping_group_range`` set for it alone:
    the unprivileged datagram socket when the range allows it, else the raw one."""
    require_net_admin()
    from netstack.netns import Namespace

    with Namespace.create() as ns:
        ns.run("sysctl", "-q", "-w", f"net.ipv4.ping_group_range={ping_group_range}")
        proc = ns.run(sys.executable, "-c", PING_SCRIPT, check=False, timeout=STEP * 2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.split()
    assert lines[:2] == [kind, "answered"], proc.stdout
    assert lines[2:] == ["error", "ENETUNREACH"], proc.stdout


async def test_ping_without_any_icmp_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.socket

    def no_icmp(family: int = -1, type: int = -1, proto: int = -1, fileno: Any = None) -> Any:
        if proto in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6):
            raise PermissionError(errno.EPERM, "Operation not permitted")
        return real(family, type, proto, fileno)

    fake = types.SimpleNamespace(**vars(socket))
    fake.socket = no_icmp
    monkeypatch.setattr(netstack.host, "socket", fake)  # only netstack.host sees it
    async with HostStack() as host:
        with pytest.raises(PermissionError, match="ping_group_range") as info:
            await host.ping("127.0.0.1")
        assert info.value.errno == errno.EPERM


async def test_ping_bad_arguments() -> None:
    host = await HostStack.open()
    for size in (-1, 65508, 1.5, True):
        with pytest.raises(ValueError):
            await host.ping("127.0.0.1", size=size)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await host.ping("127.0.0.1", timeout=0)
    await host.close()
    with pytest.raises(netstack.ClosedError):
        await host.ping("127.0.0.1")


# -- UDP ----------------------------------------------------------------------------------------
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        # (CPython 3.11's datagram transport does not subclass asyncio.DatagramTransport.)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))


async def test_datagram_echo_on_loopback() -> None:
    async with HostStack() as host:
        server, _ = await host.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        port = server.get_extra_info("sockname")[1]
        connected, replies = await host.create_datagram_endpoint(
            Collector, remote_addr=("127.0.0.1", port)
        )
        for payload in (b"x", bytes(range(256)) * 4, bytes(60000)):
            connected.sendto(payload)
            async with asyncio.timeout(STEP):
                data, addr = await replies.queue.get()
            assert data == payload and addr[:2] == ("127.0.0.1", port)
        # netstack's meaning of a local host of None: every (IPv4) address, not loopback only.
        unbound, more = await host.create_datagram_endpoint(Collector, local_addr=(None, 0))
        assert unbound.get_extra_info("sockname")[0] == "0.0.0.0"
        unbound.sendto(b"to the echo", ("127.0.0.1", port))
        async with asyncio.timeout(STEP):
            assert (await more.queue.get())[0] == b"to the echo"
        assert host.stats()["datagram_endpoints"] == 3
    assert server.is_closing() and connected.is_closing() and unbound.is_closing()


# -- TCP servers and connections ----------------------------------------------------------------
async def test_server_addresses() -> None:
    async with HostStack() as host:
        one = await host.start_server(echo, "127.0.0.1", 0)
        assert isinstance(one, netstack.host.HostServer)
        port = one.addresses[0][1]
        assert one.addresses == [("127.0.0.1", port)] and one.port == port
        assert one.sockets[0].getsockname()[:2] == ("127.0.0.1", port)
        assert one.is_serving() and one.get_loop() is asyncio.get_running_loop()
        assert await round_trip(host, "127.0.0.1", port, b"one") == b"one"

        # Every address: one port for IPv4 and IPv6 alike, unlike asyncio's one per family.
        every = await host.start_server(echo)
        hosts = {h for h, _ in every.addresses}
        assert {p for _, p in every.addresses} == {every.port}
        assert "0.0.0.0" in hosts and hosts <= {"0.0.0.0", "::"}
        assert await round_trip(host, "127.0.0.1", every.addresses[0][1], b"v4") == b"v4"
        if "::" in hosts:
            assert await round_trip(host, "::1", every.port, b"v6") == b"v6"

        one.close()
        async with asyncio.timeout(STEP):
            await one.wait_closed()
        assert not one.is_serving()
        assert one.addresses == [("127.0.0.1", port)]  # kept, as netstack's Server does
        with pytest.raises(ConnectionRefusedError):
            await round_trip(host, "127.0.0.1", port, b"")
        assert host.stats()["servers"] == 1


async def test_serve_forever_on_every_address() -> None:
    async with HostStack() as host:
        server = await host.start_server(echo)
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert await round_trip(host, "127.0.0.1", server.port, b"hi") == b"hi"
        with pytest.raises(RuntimeError):
            await server.serve_forever()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(STEP):
                await task
        assert not server.is_serving()


async def test_local_port() -> None:
    seen: asyncio.Queue[tuple[str, int]] = asyncio.Queue()

    async def note_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.put_nowait(writer.get_extra_info("peername"))
        writer.close()

    async with HostStack() as host:
        server = await host.start_server(note_peer, "127.0.0.1", 0)
        with socket.socket() as probe:  # a port free a moment ago
            probe.bind(("127.0.0.1", 0))
            local = probe.getsockname()[1]
        async with asyncio.timeout(STEP):
            _, writer = await host.open_connection("127.0.0.1", server.port, local_port=local)
            assert writer.get_extra_info("sockname")[1] == local
            assert (await seen.get())[1] == local
        writer.close()
        with pytest.raises(ValueError):
            await host.open_connection(
                "127.0.0.1", server.port, local_port=local, local_addr=("127.0.0.1", 0)
            )


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport  # (uvloop's transports do not subclass asyncio's)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Client(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= 5:
            self.done.set_result(None)


async def test_protocols_and_stats() -> None:
    async with HostStack() as host:
        server = await host.create_server(EchoProtocol, "127.0.0.1", 0)
        async with asyncio.timeout(STEP):
            transport, client = await host.create_connection(Client, "127.0.0.1", server.port)
            transport.write(b"hello")
            await client.done
        assert client.received == b"hello"
        with pytest.raises(ConnectionRefusedError):
            await host.create_connection(Client, "127.0.0.1", _closed_port())
        with pytest.raises(ValueError, match="SSLContext"):
            await host.create_connection(Client, "127.0.0.1", server.port, ssl=object())
        stats = host.stats()
        assert stats["connections_opened"] == 1
        assert stats["connections_accepted"] == 1
        assert stats["connections_failed"] == 1
        assert stats["servers_started"] == stats["servers"] == 1
        transport.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_close_ends_everything() -> None:
    host = await HostStack.open()
    server = await host.start_server(echo, "127.0.0.1", 0)
    udp, _ = await host.create_datagram_endpoint(Collector, local_addr=("127.0.0.1", 0))
    async with asyncio.timeout(STEP):
        reader, writer = await host.open_connection("127.0.0.1", server.port)
        writer.write(b"unanswered")
        await writer.drain()
    other = HostStack()  # a second, independent stack keeps working
    await host.close()
    assert host.closed
    assert writer.transport.is_closing() and udp.is_closing() and not server.is_serving()
    async with asyncio.timeout(STEP):
        assert await reader.read() == b""  # aborted here: the reader sees the end
    with pytest.raises(ConnectionRefusedError):
        await other.open_connection("127.0.0.1", server.port)
    with pytest.raises(netstack.ClosedError):
        await host.open_connection("127.0.0.1", server.port)
    with pytest.raises(netstack.ClosedError):
        await host.start_server(echo)
    await host.close()  # twice is fine
    await other.close()


async def test_close_after_connections_closed_themselves() -> None:
    """close() after a connection whose close() had to flush its buffer first (asyncio
    transports raise from abort() then)."""
    host = HostStack()
    received: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.set_result(len(await reader.read()))
        writer.close()

    server = await host.start_server(slow_reader, "127.0.0.1", 0)
    async with asyncio.timeout(STEP):
        _, writer = await host.open_connection("127.0.0.1", server.port)
        writer.write(bytes(16 << 20))  # more than the socket takes at once: buffered
        writer.close()
        assert await received == 16 << 20
        await writer.wait_closed()
    await host.close()
    assert host.closed


# -- one application, two stacks ----------------------------------------------------------------
async def application(stack: Any, address: str) -> bytes:
    """Code written once against the shared interface: serve, connect to oneself, talk."""

    async def upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(line.upper())
        await writer.drain()
        writer.close()

    server = await stack.start_server(upper, address, 0)
    async with server:
        async with asyncio.timeout(STEP):
            reader, writer = await stack.open_connection(address, server.addresses[0][1])
            writer.write(b"written once\n")
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
    return bytes(reply)


async def test_same_application_on_both_stacks() -> None:
    async with HostStack() as host:
        assert await application(host, "127.0.0.1") == b"WRITTEN ONCE\n"
    a_link, b_link = MemoryLink.pair()
    async with (
        await Stack.open(a_link, ipv4="198.18.0.1/24") as a,
        await Stack.open(b_link, ipv4="198.18.0.2/24"),
    ):
        assert await application(a, "198.18.0.1") == b"WRITTEN ONCE\n"


def test_exported() -> None:
    assert netstack.HostStack is HostStack
    assert "HostStack" in netstack.__all__


def test_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError):  # like Stack, it belongs to a running event loop
        HostStack()


async def test_resolve_uses_the_operating_system() -> None:
    async with HostStack() as host:
        assert await host.resolve("127.0.0.1") == ["127.0.0.1"]
        # /etc/hosts only: no query may leave the machine.
        assert "127.0.0.1" in await host.resolve("localhost", family=socket.AF_INET)


async def test_dns_server_on_hoststack() -> None:
    """netstack's DNS server on the operating system's sockets answers over UDP and TCP, on
    either event loop (uvloop's TCP transports are not asyncio.Transport instances)."""
    import dns.asyncquery
    import dns.message

    from netstack.dns import serve

    zone = {"host.test.": {"@": [("SOA", "ns.host.test. admin.host.test. 1 3600 600 86400 60")],
                           "www": [("A", "198.18.0.80")]}}  # fmt: skip
    async with HostStack() as host, asyncio.timeout(STEP):
        server = await serve(host, zone, 0, host="127.0.0.1")
        try:
            query = dns.message.make_query("www.host.test.", "A")
            for ask in (dns.asyncquery.udp, dns.asyncquery.tcp):
                answer = await ask(query, "127.0.0.1", port=server.port, timeout=5)
                assert [str(rr) for rrset in answer.answer for rr in rrset] == ["198.18.0.80"]
        finally:
            server.close()
