"""``netstack.use(stack)``: the running loop's network methods reach a netstack stack inside the
block and in every task, server and connection made there; outside, the loop is untouched and
its methods are put back once nothing runs under a switch any more. On both event loops (the
suite runs once on each).

Plain asyncio code only: ``asyncio.open_connection`` / ``start_server`` /
``loop.create_datagram_endpoint`` / ``loop.getaddrinfo`` / ``loop.sock_connect`` +
``create_connection(sock=...)`` (what aiohappyeyeballs does), on in-memory stacks; the same on
a HostStack over the loopback; and the bad arguments, which must raise what asyncio raises.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import gc
import inspect
import os
import select
import socket
import ssl
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohappyeyeballs
import pytest

import netstack
from netstack import HostStack, NetworkStack, Stack
from netstack.switch import PATCHED, active_stack, unpatched
from netstack.testing import Network

#: The bound on each step of a test.
STEP = 10.0

A, B, C = "198.18.0.1", "198.18.0.2", "198.18.0.3"


def patched(loop: asyncio.AbstractEventLoop) -> set[str]:
    """The switch's methods still on the loop instance."""
    return {name for name in PATCHED if name in vars(loop)}


async def settle() -> None:
    """Let the callbacks already scheduled run (connection_lost, frames in flight)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def eventually_restored(loop: asyncio.AbstractEventLoop) -> None:
    """The loop gets its own methods back once nothing made under a switch is left; the
    callbacks already scheduled (frames, connection_lost) may hold one for a few turns, and
    a timer made under it (``asyncio.timeout``'s, even cancelled) until its time: so the
    tests that check this bound themselves from outside their blocks."""
    async with asyncio.timeout(STEP):
        while patched(loop):
            gc.collect()
            await asyncio.sleep(0.01)


@pytest.fixture
async def trio(network: Network) -> AsyncIterator[tuple[Stack, Stack, Stack]]:
    """Three stacks on one switch, each knowing the others by name."""
    stacks = [await network.host(f"{ip}/24") for ip in (A, B, C)]
    for stack in stacks:
        stack.dns.hosts.update({"a.test": [A], "b.test": [B], "c.test": [C]})
    yield stacks[0], stacks[1], stacks[2]


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """OpenSSL contexts: c.test's server, and a client trusting its CA."""
    from netstack.tls import certs

    ca, ca_key = certs.make_ca("use test CA")
    cert, key = certs.issue(ca, ca_key, "c.test", dns_names=["c.test"])
    certs.write_pem(tmp_path / "ca.pem", ca)
    certs.write_pem(tmp_path / "c.pem", cert)
    certs.write_pem(tmp_path / "c.key", None, key)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "c.key")
    return server_ctx, ssl.create_default_context(cafile=tmp_path / "ca.pem")


async def who(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Tells the client the address it came from, as the server saw it."""
    writer.write(f"{writer.get_extra_info('peername')[0]}\n".encode())
    await writer.drain()
    writer.close()


async def ask(host: str, port: int) -> str:
    """The server's answer (the caller bounds the time)."""
    reader, writer = await asyncio.open_connection(host, port)
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line.decode().strip()


# -- the plain asyncio calls -------------------------------------------------------------------
async def test_streams_through_the_loop(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    loop = asyncio.get_running_loop()
    assert patched(loop) == set()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    with netstack.use(b) as chosen:
        assert chosen is b and active_stack() is b
        server = await asyncio.start_server(echo, "198.18.0.2", 7)
        assert server.sockets[0].getsockname() == (B, 7)
    async with asyncio.timeout(STEP):
        with netstack.use(a):
            reader, writer = await asyncio.open_connection(B, 7)
            writer.write(b"over netstack\n")
            assert await reader.readline() == b"over netstack\n"
            assert writer.get_extra_info("peername") == (B, 7)
            assert writer.get_extra_info("sockname")[0] == A
            assert writer.get_extra_info("stack") is a
            writer.close()
            await writer.wait_closed()
    assert a.stats()["tcp"]["tx_segments"] > 0
    server.close()
    await server.wait_closed()
    assert active_stack() is None
    await eventually_restored(loop)


async def test_datagrams_through_the_loop(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transport.sendto(data.upper(), addr)

    got: asyncio.Future[tuple[bytes, Any]] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.set_result((data, addr))

    with netstack.use(b):
        server, _ = await loop.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 9))
    async with asyncio.timeout(STEP):
        with netstack.use(a):
            client, _ = await loop.create_datagram_endpoint(Client, remote_addr=(B, 9))
            assert client.get_extra_info("sockname")[0] == A
            client.sendto(b"hello")
            assert await got == (b"HELLO", (B, 9))
    assert b.stats()["udp"]["rx_packets"] >= 1
    client.close()
    server.close()
    await eventually_restored(loop)


async def test_getaddrinfo_answers_from_the_stack(stack_pair: tuple[Stack, Stack]) -> None:
    a, _ = stack_pair
    loop = asyncio.get_running_loop()
    a.dns.hosts["server.test"] = [B, "fd00::2"]
    stream = socket.SOCK_STREAM
    with netstack.use(a):
        infos = await loop.getaddrinfo("server.test", 80, type=stream)
        # IPv4 first: the stack has no IPv6 source address for fd00::2 (RFC 6724 6).
        assert infos == [
            (socket.AF_INET, stream, socket.IPPROTO_TCP, "", (B, 80)),
            (socket.AF_INET6, stream, socket.IPPROTO_TCP, "", ("fd00::2", 80, 0, 0)),
        ]
        # aiohttp's flags: only the families the stack has an address of.
        only4 = await loop.getaddrinfo("server.test", "http", type=stream,
                                       flags=socket.AI_ADDRCONFIG)  # fmt: skip
        assert [i[4] for i in only4] == [(B, 80)]
        six = await loop.getaddrinfo("server.test", 5, family=socket.AF_INET6, type=stream)
        assert [i[4] for i in six] == [("fd00::2", 5, 0, 0)]
        kinds = [(i[1], i[2]) for i in await loop.getaddrinfo(B, None)]
        assert kinds == [(socket.SOCK_STREAM, 6), (socket.SOCK_DGRAM, 17), (socket.SOCK_RAW, 0)]
        passive = await loop.getaddrinfo(None, 8080, type=stream, flags=socket.AI_PASSIVE)
        assert [i[4][0] for i in passive] == ["0.0.0.0", "::"]
        canon = await loop.getaddrinfo("server.test", 1, type=stream, flags=socket.AI_CANONNAME)
        assert canon[0][3] == "server.test"
        # Errors: gaierror with glibc's codes.
        for call, code in [
            (loop.getaddrinfo("nosuch.test", 80), None),  # no server: EAI_AGAIN
            (loop.getaddrinfo("server.test", 80, flags=socket.AI_NUMERICHOST), socket.EAI_NONAME),
            (loop.getaddrinfo(B, 80, family=socket.AF_INET6), socket.EAI_ADDRFAMILY),
            (loop.getaddrinfo(B, "no-such-service"), socket.EAI_SERVICE),
            (loop.getaddrinfo(B, 70000), socket.EAI_SERVICE),
            (loop.getaddrinfo(B, 80, family=socket.AF_UNIX), socket.EAI_FAMILY),
            (loop.getaddrinfo(B, 80, type=socket.SOCK_STREAM, proto=17), socket.EAI_SOCKTYPE),
        ]:
            with pytest.raises(socket.gaierror) as info:
                await call
            if code is not None:
                assert info.value.errno == code, info.value
        with pytest.raises(OSError):
            await loop.getaddrinfo(B, 1.5)  # neither int nor str, as socket.getaddrinfo
        assert await loop.getnameinfo((B, 80)) == ("server.test", "http")
        assert await loop.getnameinfo((B, 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) == (
            B, "80",
        )  # fmt: skip
        assert await loop.getnameinfo((C, 53), socket.NI_DGRAM) == (C, "domain")
        assert await loop.getnameinfo(("127.0.0.1", 1)) == ("localhost", "tcpmux")
        with pytest.raises(socket.gaierror):
            await loop.getnameinfo((C, 80), socket.NI_NAMEREQD)
    # Outside the block the operating system answers again: it has never heard of the name.
    assert "server.test" not in {i[3] for i in await loop.getaddrinfo("127.0.0.1", 80)}


# -- scope: two stacks, nesting, tasks, servers --------------------------------------------------
async def test_two_stacks_in_one_loop_each_serve_their_code(
    trio: tuple[Stack, Stack, Stack],
) -> None:
    """Two tasks at once, each under its own stack, reach the same server; the server's
    handlers run under the server's stack (where it was started), not under the sender's."""
    a, b, c = trio
    c.dns.hosts["self.test"] = [C]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answered by c's host table: the handler runs under c, even after the block ended
        # and though the frames came from a task under a or b.
        infos = await asyncio.get_running_loop().getaddrinfo("self.test", 1)
        writer.write(f"{writer.get_extra_info('peername')[0]} {infos[0][4][0]}\n".encode())
        await writer.drain()
        writer.close()

    with netstack.use(c):
        server = await asyncio.start_server(handler, port=7)

    async def client(stack: Stack) -> str:
        with netstack.use(stack):
            await asyncio.sleep(0)  # both tasks are inside their blocks at once
            return await ask("c.test", 7)

    async with asyncio.timeout(STEP):
        assert await asyncio.gather(client(a), client(b)) == [f"{A} {C}", f"{B} {C}"]
    server.close()


async def test_nesting_and_tasks_created_inside(trio: tuple[Stack, Stack, Stack]) -> None:
    a, b, c = trio
    with netstack.use(c):
        server = await asyncio.start_server(who, port=7)
    loop = asyncio.get_running_loop()
    release = asyncio.Event()

    async def later() -> str:
        await release.wait()
        return await ask(C, 7)

    async with asyncio.timeout(STEP):
        with netstack.use(a):
            assert await ask(C, 7) == A
            with netstack.use(b):
                assert active_stack() is b
                assert await ask(C, 7) == B
                task = asyncio.create_task(later())  # made under b: stays on b
            assert active_stack() is a
            assert await ask(C, 7) == A
        assert active_stack() is None
        release.set()
        assert await task == B  # after both blocks ended
    del task
    server.close()
    await server.wait_closed()
    await eventually_restored(loop)


async def test_loop_restored_after_exit_also_on_exception(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    loop = asyncio.get_running_loop()
    originals = {name: getattr(loop, name) for name in PATCHED if hasattr(loop, name)}
    with pytest.raises(ConnectionRefusedError), netstack.use(a):  # refused at once
        assert patched(loop) == set(originals)
        # The loop's own, run outside the switch.
        assert (
            inspect.unwrap(unpatched(loop, "create_connection")) == originals["create_connection"]
        )
        await asyncio.open_connection(B, 1)  # nothing listens: the stack's refusal
    await eventually_restored(loop)
    assert {name: getattr(loop, name) for name in originals} == originals

    with pytest.raises(KeyError):
        async with netstack.use(a):
            raise KeyError("inside")
    await eventually_restored(loop)
    # One use object, entered twice.
    switch = netstack.use(b)
    with switch, switch:
        assert active_stack() is b
    await eventually_restored(loop)


async def test_outside_the_block_the_loop_is_the_loops(stack_pair: tuple[Stack, Stack]) -> None:
    """While one task is inside a block, another outside it gets the loop's own network
    (the loopback here, nothing leaves the machine)."""
    a, _ = stack_pair
    loop = asyncio.get_running_loop()
    inside = asyncio.Event()
    done = asyncio.Event()

    async def in_block() -> None:
        with netstack.use(a):
            inside.set()
            await done.wait()

    task = asyncio.create_task(in_block())
    await inside.wait()
    assert patched(loop)
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    try:
        assert server.sockets[0].fileno() >= 0  # an operating-system socket
        infos = await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        assert ("127.0.0.1", 80) in [i[4][:2] for i in infos]
    finally:
        server.close()
        done.set()
        await task
    del task
    await eventually_restored(loop)


async def test_entering_needs_the_stacks_loop() -> None:
    with pytest.raises(TypeError):
        netstack.use(object())  # type: ignore[arg-type]

    class Elsewhere(HostStack):
        pass

    host = Elsewhere()
    host.loop = asyncio.new_event_loop()  # type: ignore[misc]
    try:
        with pytest.raises(RuntimeError), netstack.use(host):
            pass
    finally:
        host.loop.close()


async def test_context_of_the_server_not_of_the_sender(trio: tuple[Stack, Stack, Stack]) -> None:
    """netstack's transports call their protocols in the context that made them, as asyncio's
    do: a server's in the server creator's, a client connection's in the connector's, and a
    datagram endpoint's in its creator's; frames from another task do not bring theirs."""
    a, _, c = trio
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="none")
    seen: list[tuple[str, str]] = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            seen.append(("server made", var.get()))
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            seen.append(("server data", var.get()))
            self.transport.write(data)

    class Client(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            seen.append(("client data", var.get()))

    var.set("server")
    server = await c.create_server(Recorder, port=7)
    var.set("client")
    transport, _ = await a.create_connection(Client, C, 7)
    var.set("changed later")
    transport.write(b"x")
    async with asyncio.timeout(STEP):
        while len(seen) < 3:
            await asyncio.sleep(0.01)
    assert seen == [("server made", "server"), ("server data", "server"),
                    ("client data", "client")]  # fmt: skip
    transport.close()
    server.close()


# -- sockets: sock_connect + create_connection(sock=), and what is refused -----------------------
async def test_sock_connect_then_create_connection(trio: tuple[Stack, Stack, Stack]) -> None:
    """What aiohttp's connector does: aiohappyeyeballs makes a socket and calls
    loop.sock_connect, then loop.create_connection(sock=...) takes it over."""
    a, _, c = trio
    greeted = asyncio.Event()

    async def greeter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Speaks first: the greeting arrives before create_connection takes the socket.
        writer.write(b"hello from c\n")
        await writer.drain()
        greeted.set()
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    with netstack.use(c):
        server = await asyncio.start_server(greeter, port=21)
    loop = asyncio.get_running_loop()
    with netstack.use(a):
        infos = await loop.getaddrinfo("c.test", 21, type=socket.SOCK_STREAM)
        sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=0.25)
        await greeted.wait()
        reader = asyncio.StreamReader()
        proto = asyncio.StreamReaderProtocol(reader)
        transport, _ = await loop.create_connection(lambda: proto, sock=sock)
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
        async with asyncio.timeout(STEP):
            assert await reader.readline() == b"hello from c\n"
            writer.write(b"and back\n")
            assert await reader.readline() == b"AND BACK\n"
        assert transport.get_extra_info("peername") == (C, 21)
        assert transport.get_extra_info("sockname")[0] == A
        writer.close()
        # The same socket again, or any other, is refused: it carries no netstack connection.
        with pytest.raises(ValueError):
            await loop.create_connection(asyncio.Protocol, sock=sock)
        other = socket.socket()
        with pytest.raises(ValueError):
            await loop.create_connection(asyncio.Protocol, sock=other)
        other.close()
        # Refused, as the kernel would refuse it.
        refused = socket.socket()
        refused.setblocking(False)
        with pytest.raises(ConnectionRefusedError):
            await loop.sock_connect(refused, (C, 1))
        refused.close()
    server.close()


async def test_sock_connect_over_tls(
    trio: tuple[Stack, Stack, Stack], tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    a, _, c = trio
    server_ctx, client_ctx = tls
    with netstack.use(c):
        server = await asyncio.start_server(who, port=443, ssl=server_ctx)
    loop = asyncio.get_running_loop()
    with netstack.use(a):
        infos = await loop.getaddrinfo("c.test", 443, type=socket.SOCK_STREAM)
        sock = await aiohappyeyeballs.start_connection(infos)
        reader = asyncio.StreamReader()
        proto = asyncio.StreamReaderProtocol(reader)
        async with asyncio.timeout(STEP):
            transport, _ = await loop.create_connection(
                lambda: proto, sock=sock, ssl=client_ctx, server_hostname="c.test"
            )
            assert transport.get_extra_info("peercert") is not None
            assert await reader.readline() == f"{A}\n".encode()
        transport.close()
    server.close()


async def test_placeholder_collected_unused_ends_its_connection(
    trio: tuple[Stack, Stack, Stack],
) -> None:
    """A socket sock_connect connected and nobody took (a happy-eyeballs loser): its netstack
    connection is reset when the socket object goes."""
    a, _, c = trio
    ended = asyncio.Event()

    async def waits(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with pytest.raises(ConnectionResetError):
            await reader.read()
        ended.set()

    with netstack.use(c):
        server = await asyncio.start_server(waits, port=8)
    loop = asyncio.get_running_loop()
    with netstack.use(a):
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, (C, 8))
        sock.close()
        del sock
        gc.collect()
    async with asyncio.timeout(STEP):
        await ended.wait()
    server.close()


async def test_socket_calls_that_would_bypass_the_stack_are_refused(
    trio: tuple[Stack, Stack, Stack],
) -> None:
    a, _, c = trio
    with netstack.use(c):
        server = await asyncio.start_server(who, port=7)
    loop = asyncio.get_running_loop()
    with netstack.use(a):
        sock = socket.socket()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("c.test", 7))
        with pytest.raises(NotImplementedError, match="create_connection"):
            await loop.sock_recv(sock, 10)
        with pytest.raises(NotImplementedError):
            await loop.sock_sendall(sock, b"x")
        with pytest.raises(OSError) as info:
            await loop.sock_connect(sock, ("c.test", 7))
        assert info.value.errno == errno.EISCONN
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        with pytest.raises(NotImplementedError, match="create_datagram_endpoint"):
            await loop.sock_sendto(udp, b"x", (C, 9))
        udp.close()
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
        transport.close()
        # Unix-domain sockets are not network: they stay the loop's.
        left, right = socket.socketpair()
        left.setblocking(False)
        right.setblocking(False)
        await loop.sock_sendall(left, b"local")
        assert await loop.sock_recv(right, 10) == b"local"
        left.close()
        right.close()
    server.close()


async def test_datagram_socket_connected_then_handed_over(trio: tuple[Stack, Stack, Stack]) -> None:
    a, _, c = trio
    loop = asyncio.get_running_loop()
    got: asyncio.Future[tuple[bytes, Any]] = loop.create_future()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            got.set_result((data, addr))

    with netstack.use(c):
        sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=(C, 9))
    with netstack.use(a):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        await loop.sock_connect(udp, ("c.test", 9))
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=udp)
        assert transport.get_extra_info("peername") == (C, 9)
        transport.sendto(b"via a placeholder")
        async with asyncio.timeout(STEP):
            data, addr = await got
        assert data == b"via a placeholder" and addr[0] == A
        transport.close()
    sink.close()


async def test_create_server_on_a_bound_socket(trio: tuple[Stack, Stack, Stack]) -> None:
    """create_server(sock=...): the stack listens at the socket's address and port."""
    a, _, c = trio
    listening = socket.socket()
    listening.bind(("0.0.0.0", 0))
    port = listening.getsockname()[1]
    loop = asyncio.get_running_loop()
    with netstack.use(c):
        server = await asyncio.start_server(who, sock=listening)
        assert server.sockets[0].getsockname() == ("0.0.0.0", port)
    async with asyncio.timeout(STEP):
        with netstack.use(a):
            assert await ask(C, port) == A
    assert listening.fileno() >= 0  # the server owns it, as asyncio's would
    server.close()
    await server.wait_closed()
    assert listening.fileno() == -1  # closed with the server that took its place
    await eventually_restored(loop)


# -- socket options through get_extra_info("socket") --------------------------------------------
async def test_socket_options_reach_the_connection(stack_pair: tuple[Stack, Stack]) -> None:
    a, b = stack_pair
    server = await b.start_server(who, port=7)
    with netstack.use(a):
        reader, writer = await asyncio.open_connection(B, 7)
    sock = writer.get_extra_info("socket")
    conn = writer.get_extra_info("connection")
    assert (sock.family, sock.type, sock.proto) == (socket.AF_INET, socket.SOCK_STREAM, 6)
    assert sock.getpeername() == (B, 7) and sock.getsockname()[0] == A
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # what aiohttp does
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, (4).to_bytes(4, "little"))
    assert conn.config.nodelay and conn.config.keepalive
    assert (conn.config.keepalive_idle, conn.config.keepalive_count) == (30, 4)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == conn.mss
    assert a.config.tcp.nodelay is False  # the stack's default is untouched
    # What netstack does not have is an error, never a silent no-op.
    with pytest.raises(OSError) as info:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    assert info.value.errno == errno.ENOPROTOOPT and "SO_SNDBUF" not in str(info.value)
    with pytest.raises(ValueError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 0)
    # No socket descriptor: what fileno() gives is no socket, refused as one.
    with pytest.raises(OSError) as info:
        socket.socket(fileno=sock.fileno())
    assert info.value.errno == errno.ENOTSOCK
    assert not stat.S_ISSOCK(os.fstat(sock.fileno()).st_mode)
    with pytest.raises(OSError):
        sock.dup()
    assert not hasattr(sock, "send") and not hasattr(sock, "close")
    writer.close()
    server.close()


def readable(fd: int) -> bool:
    """What httpcore asks of an idle pooled connection (``poll`` with no wait)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


async def test_descriptor_polls_as_a_socket_would(stack_pair: tuple[Stack, Stack]) -> None:
    """``get_extra_info("socket").fileno()`` is a descriptor that polls readable when a read
    would return at once, as a kernel socket's does under asyncio: data held while reading
    is paused (anyio pauses between reads), the end of the stream, a loss; and -1 once the
    transport is closed. httpcore keeps a pooled connection only if it is not readable."""
    a, b = stack_pair
    peers: list[asyncio.StreamWriter] = []

    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    server = await b.start_server(keep, port=7)
    async with asyncio.timeout(STEP):
        reader, writer = await a.open_connection(B, 7)
        while not peers:
            await asyncio.sleep(0.01)
        sock = writer.get_extra_info("socket")
        fd = sock.fileno()
        assert fd >= 0 and sock.fileno() == fd and not readable(fd)
        writer.transport.pause_reading()
        peers[0].write(b"while paused")
        while not readable(fd):
            await asyncio.sleep(0.01)
        writer.transport.resume_reading()
        assert await reader.readexactly(12) == b"while paused"
        assert not readable(fd)
        peers[0].write(b"while reading")
        assert await reader.readexactly(13) == b"while reading"
        assert not readable(fd)
        peers[0].close()
        assert await reader.read() == b""
        assert readable(fd)  # the end of the stream stays readable
        writer.close()
        await writer.wait_closed()
        assert sock.fileno() == -1
    server.close()


async def test_datagram_socket_options(stack_pair: tuple[Stack, Stack]) -> None:
    a, _ = stack_pair
    transport, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(A, 0))
    sock = transport.get_extra_info("socket")
    assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_DGRAM)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    with pytest.raises(OSError):
        sock.getpeername()  # not connected
    with pytest.raises(OSError):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 5)
    transport.close()


# -- start_tls on the loop ------------------------------------------------------------------------
async def test_writer_start_tls_both_sides(
    trio: tuple[Stack, Stack, Stack], tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """asyncio's own StreamWriter.start_tls (loop.start_tls underneath) on both sides of a
    netstack connection, on either loop (uvloop's own start_tls takes only its transports)."""
    a, _, c = trio
    server_ctx, client_ctx = tls

    async def starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"STARTTLS\n"
        writer.write(b"GO\n")
        await writer.drain()
        await writer.start_tls(server_ctx)
        writer.write(b"secret " + await reader.readline())
        await writer.drain()
        writer.close()

    with netstack.use(c):
        server = await asyncio.start_server(starttls, port=25)
    with netstack.use(a):
        async with asyncio.timeout(STEP):
            reader, writer = await asyncio.open_connection("c.test", 25)
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"GO\n"
            await writer.start_tls(client_ctx, server_hostname="c.test")
            assert writer.get_extra_info("ssl_object") is not None
            writer.write(b"hello\n")
            assert await reader.readline() == b"secret hello\n"
        writer.close()
    server.close()


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
async def test_loop_sendfile_under_the_switch(
    trio: tuple[Stack, Stack, Stack],
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
    tmp_path: Path,
    secure: bool,
) -> None:
    """``loop.sendfile(transport, file)`` on a netstack transport (plain, and the one an
    OpenSSL server hands its application) on either loop: uvloop implements it for no
    transport of its own, the switch sends the file in chunks as asyncio's fallback does;
    ``fallback=False`` is refused as asyncio refuses it."""
    a, _, c = trio
    server_ctx, client_ctx = tls
    data = os.urandom(300_001)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    sent: list[int] = []

    async def serve_file(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        with path.open("rb") as f:
            with pytest.raises(RuntimeError, match="fallback is disabled"):
                await loop.sendfile(writer.transport, f, fallback=False)
            sent.append(await loop.sendfile(writer.transport, f, 1, len(data) - 1))
            sent.append(f.tell())
        writer.close()

    with netstack.use(c):
        server = await asyncio.start_server(serve_file, port=80, ssl=server_ctx if secure else None)
    with netstack.use(a):
        async with asyncio.timeout(STEP):
            reader, writer = await asyncio.open_connection(
                "c.test", 80, ssl=client_ctx if secure else None
            )
            assert await reader.read() == data[1:]
            writer.close()
    assert sent == [len(data) - 1, len(data)]
    server.close()


# -- HostStack under the switch -------------------------------------------------------------------
async def test_host_stack_under_the_switch() -> None:
    """The loop's own network, through the HostStack's methods (its stats count them); the
    socket path aiohttp takes stays the loop's. Loopback only."""
    loop = asyncio.get_running_loop()
    async with HostStack() as host, asyncio.timeout(STEP):
        with netstack.use(host):
            server = await asyncio.start_server(who, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            assert await ask("127.0.0.1", port) == "127.0.0.1"
            infos = await loop.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM)
            sock = await aiohappyeyeballs.start_connection(infos)
            transport, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
            assert transport.get_extra_info("socket").fileno() >= 0  # a real socket
            transport.close()
            got: asyncio.Future[bytes] = loop.create_future()

            class Sink(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: Any) -> None:
                    got.set_result(data)

            sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
            sender, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=sink.get_extra_info("sockname")
            )
            sender.sendto(b"over the loopback")
            assert await got == b"over the loopback"
            sender.close()
            sink.close()
        stats = host.stats()
        assert stats["servers_started"] == 1 and stats["connections_opened"] >= 1
        assert stats["datagram_endpoints"] == 2
        server.close()
    # uvloop's transports keep the context they were made in while they exist, closed or not.
    del server, transport, sender, sink
    await eventually_restored(loop)


async def test_host_stack_inside_a_netstack_switch(stack_pair: tuple[Stack, Stack]) -> None:
    """A HostStack called by name inside ``netstack.use(stack)`` still reaches the loop's own
    network: asyncio's ``create_connection`` looks up ``self.getaddrinfo`` and
    ``self.sock_connect`` (also in happy eyeballs' racing tasks), which must not be the
    switch's. What runs in the host's connections is the host's (the context that made them).
    Loopback only."""
    a, _ = stack_pair
    loop = asyncio.get_running_loop()
    seen: list[NetworkStack | None] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(active_stack())
        writer.write(b"host")
        await writer.drain()
        writer.close()

    async with HostStack() as host, asyncio.timeout(STEP):
        with netstack.use(a):
            server = await host.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            for target, extra in (("127.0.0.1", {}), ("localhost", {"happy_eyeballs_delay": 0.25})):
                reader, writer = await host.open_connection(target, port, **extra)
                assert writer.get_extra_info("socket").fileno() >= 0
                assert await reader.read() == b"host"
                writer.close()
            assert "127.0.0.1" in await host.resolve("localhost")  # the system's, not a's
            assert active_stack() is a  # the block's own code still has the switch
            server.close()
    assert seen == [None, None]
    del server, reader, writer
    await eventually_restored(loop)


# -- bad arguments: what asyncio raises ---------------------------------------------------------
def bad_calls(
    loop: asyncio.AbstractEventLoop, tcp: socket.socket, udp: socket.socket
) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    """Calls asyncio refuses before any I/O, each with the exception type it raises."""
    p = asyncio.Protocol
    ctx = ssl.create_default_context()
    lo = "127.0.0.1"
    return [
        ("TypeError", lambda: loop.create_connection(p, lo, 1, no_such_option=1)),
        ("TypeError", lambda: loop.create_connection(p, lo, 1, 2)),
        ("ValueError", lambda: loop.create_connection(p, lo, 1, server_hostname="x")),
        ("ValueError", lambda: loop.create_connection(p, lo, 1, ssl_handshake_timeout=1)),
        ("ValueError", lambda: loop.create_connection(p, ssl=ctx, sock=tcp)),
        ("ValueError", lambda: loop.create_connection(p, lo, 1, sock=tcp)),
        ("ValueError", lambda: loop.create_connection(p)),
        ("ValueError", lambda: loop.create_connection(p, sock=udp)),
        ("TypeError", lambda: loop.create_server(p, lo, 0, bogus=True)),
        ("TypeError", lambda: loop.create_server(p, lo, 0, ssl=True)),
        ("ValueError", lambda: loop.create_server(p, lo, 0, ssl_handshake_timeout=1)),
        ("ValueError", lambda: loop.create_server(p, lo, 0, sock=tcp)),
        ("ValueError", lambda: loop.create_server(p)),
        ("ValueError", lambda: loop.create_server(p, sock=udp)),
        ("TypeError", lambda: loop.create_datagram_endpoint(p, nonsense=1)),
        ("ValueError", lambda: loop.create_datagram_endpoint(p, sock=tcp)),
        ("ValueError", lambda: loop.create_datagram_endpoint(p, sock=udp, family=2)),
        ("ValueError", lambda: loop.create_datagram_endpoint(p)),
        ("TypeError", lambda: loop.create_datagram_endpoint(p, local_addr="x:1")),
        # Removed in Python 3.11.
        ("TypeError", lambda: loop.create_datagram_endpoint(p, (lo, 0), reuse_address=True)),
        ("TypeError", lambda: loop.getaddrinfo(lo)),
        ("TypeError", lambda: loop.getaddrinfo(lo, 80, 2)),
        ("TypeError", lambda: loop.sock_connect(tcp)),
    ]


@pytest.mark.parametrize("index", range(len(bad_calls(None, None, None))))  # type: ignore[arg-type]
async def test_bad_arguments_raise_what_asyncio_raises(
    stack_pair: tuple[Stack, Stack], index: int
) -> None:
    a, _ = stack_pair
    loop = asyncio.get_running_loop()
    tcp = socket.socket()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        expected, call = bad_calls(loop, tcp, udp)[index]
        if not type(loop).__module__.startswith("uvloop"):
            # The expectation is asyncio's own (uvloop's checks differ here and there; under
            # the switch both loops behave as asyncio's).
            with pytest.raises(BaseException) as outside:  # noqa: B017 -- compared below
                await call()
            assert type(outside.value).__name__ == expected, outside.value
        with netstack.use(a), pytest.raises(BaseException) as inside:  # noqa: B017
            await call()
        assert type(inside.value).__name__ == expected, inside.value
    finally:
        tcp.close()
        udp.close()
