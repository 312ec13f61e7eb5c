"""asyncio parity of netstack's TCP transports and of the ``create_*`` methods, on asyncio's
loop and on uvloop (the suite runs on each), on netstack's stack and, where it applies, on
HostStack:

- ``loop.sendfile(transport, file)`` (asyncio's fallback accepts netstack's transports, plain
  and TLS) and the transport's own ``sendfile``, which any loop can run;
- server-side ``StreamWriter.start_tls`` with either TLS engine, and ``loop.start_tls``;
- keyword arguments as asyncio takes them: an unknown one is a TypeError, the ones asyncio
  accepts are honoured or refused with a clear error;
- ``happy_eyeballs_delay`` and ``interleave``: RFC 8305 address racing;
- what an IPv6 listener's ``Server.sockets`` report.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import test_stack_tls
from test_stack_tls import ENGINES, Pki, client_config, server_config

from netstack import HostStack, Stack, StackConfig
from netstack.link import MemoryLink
from netstack.proto.ipv6.addrconf import AddrconfConfig
from netstack.proto.ipv6.layer import IPv6Config

#: The bound on each step of a test.
STEP = 20.0

#: Duplicate address detection on a memory link need not wait the RFC's seconds.
FAST = StackConfig(
    ipv6=IPv6Config(addrconf=AddrconfConfig(retrans_timer=0.05, max_rtr_solicitation_delay=0.02))
)
A4, B4, A6, B6 = "198.18.0.1", "198.18.0.2", "fd00::1", "fd00::2"
#: Addresses routed to the other stack, which is no router and drops what is not its own
#: without a word: a SYN sent there is never answered (a black hole).
HOLE4, HOLE6 = "198.19.99.1", "fd00:99::1"


def on_uvloop() -> bool:
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


@pytest.fixture
async def dual() -> AsyncIterator[tuple[Stack, Stack]]:
    """Two stacks with IPv4 and IPv6; ``a`` routes the black holes through ``b``."""
    a_link, b_link = MemoryLink.pair()
    a = await Stack.open(a_link, ipv4=f"{A4}/24", ipv6=f"{A6}/64", config=FAST)
    b = await Stack.open(b_link, ipv4=f"{B4}/24", ipv6=f"{B6}/64", config=FAST)
    a.add_route("198.19.99.0/24", B4)
    a.add_route("fd00:99::/64", B6)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


#: The TLS test PKI of test_stack_tls (a module-scoped fixture: server.test, 198.18.0.2).
pki = test_stack_tls.pki


class Collect(asyncio.Protocol):
    """Keeps what arrives; ``done`` when the peer closed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.done = asyncio.get_running_loop().create_future()
        self.made = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.data))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.data))


# -- sendfile ---------------------------------------------------------------------------------


def make_file(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path, data


async def fetch(stack: Any, host: str, port: int, ssl_: Any = None) -> bytes:
    """Ask for the file, read everything until the server closes, say goodbye."""
    kw = {"ssl": ssl_, "server_hostname": "server.test"} if ssl_ is not None else {}
    reader, writer = await stack.open_connection(host, port, limit=2**23, **kw)
    writer.write(b"GET\n")
    got = await reader.readuntil(b"END\n")
    writer.write(b"bye\n")
    await writer.drain()
    assert await reader.read() == b"ok\n"
    writer.close()
    return got[:-4]


def file_server(path: Path, send: Any, results: list[Any]) -> Any:
    """A handler that sends ``path`` with ``send(writer, file)`` between a request and a
    goodbye, so the stream must read and write as before around the transfer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b"GET\n"
        with path.open("rb") as f:
            sent = await send(writer, f)
            results.append((sent, f.tell()))
        writer.write(b"END\n")
        await writer.drain()
        assert await reader.readline() == b"bye\n"
        writer.write(b"ok\n")
        await writer.drain()
        writer.close()

    return handle


async def loop_sendfile(writer: asyncio.StreamWriter, f: Any) -> int:
    return await asyncio.get_running_loop().sendfile(writer.transport, f)


@pytest.mark.parametrize("size", [0, 1, 70_001, 3_000_017])
async def test_loop_sendfile_on_a_netstack_transport(
    stack_pair: tuple[Stack, Stack], tmp_path: Path, size: int
) -> None:
    """asyncio's ``loop.sendfile`` takes a netstack transport (its fallback: the file in
    chunks, paced by the transport's flow control); before, it raised "sendfile is not
    supported", which cut aiohttp's FileResponse short. uvloop implements ``loop.sendfile``
    for no transport at all, its own included (NotImplementedError, which aiohttp catches):
    a netstack transport answers the same there."""
    a, b = stack_pair
    path, data = make_file(tmp_path, size)
    if on_uvloop():
        async with HostStack() as host:
            reader, writer = await host.open_connection(*await kernel_listener(host))
            for transport in (writer.transport, await plain_transport(a, b)):
                with path.open("rb") as f, pytest.raises(NotImplementedError):
                    await asyncio.get_running_loop().sendfile(transport, f)
            writer.close()
        return
    results: list[Any] = []
    server = await b.start_server(file_server(path, loop_sendfile, results), port=8080)
    async with asyncio.timeout(STEP):
        assert await fetch(a, B4, 8080) == data
    assert results == [(size, size)]  # sent, and the file's position after it
    server.close()


async def kernel_listener(host: HostStack) -> tuple[str, int]:
    server = await host.start_server(lambda r, w: None, "127.0.0.1", 0)
    return "127.0.0.1", server.port


async def plain_transport(a: Stack, b: Stack) -> asyncio.BaseTransport:
    await b.create_server(Collect, B4, 9999)
    transport, _ = await a.create_connection(Collect, B4, 9999)
    return transport


@pytest.mark.parametrize("offset, count", [(0, None), (10, None), (10, 500_000), (3, 1)])
async def test_transport_sendfile_on_any_loop(
    stack_pair: tuple[Stack, Stack], tmp_path: Path, offset: int, count: int | None
) -> None:
    """The transport's own ``sendfile`` (what ``loop.sendfile`` does for it, on any event
    loop): from ``offset``, ``count`` bytes or to the end, the file's position after what
    was sent."""
    a, b = stack_pair
    path, data = make_file(tmp_path, 1_000_003)

    async def send(writer: asyncio.StreamWriter, f: Any) -> int:
        transport: Any = writer.transport
        return int(await transport.sendfile(f, offset, count))

    results: list[Any] = []
    server = await b.start_server(file_server(path, send, results), port=8080)
    async with asyncio.timeout(STEP):
        got = await fetch(a, B4, 8080)
    end = len(data) if count is None else offset + count
    assert got == data[offset:end]
    assert results == [(end - offset, end)]
    server.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_loop_sendfile_over_tls(
    stack_pair: tuple[Stack, Stack], tmp_path: Path, pki: Pki, engine: str
) -> None:
    """``loop.sendfile`` on the transport a TLS server hands its application, with either
    engine (asyncio's fallback encrypts the chunks; a netstack TLS transport qualifies as
    asyncio's own SSL transport does)."""
    if on_uvloop():
        pytest.skip("uvloop implements loop.sendfile for no transport (see the test above)")
    a, b = stack_pair
    path, data = make_file(tmp_path, 600_001)
    results: list[Any] = []
    server = await b.start_server(
        file_server(path, loop_sendfile, results), port=8443, ssl=server_config(engine, pki)
    )
    async with asyncio.timeout(STEP):
        assert await fetch(a, B4, 8443, client_config(engine, pki)) == data
    assert results == [(len(data), len(data))]
    server.close()


@pytest.mark.parametrize("how", ["loop", "transport"])
async def test_sendfile_to_a_peer_that_goes_away(
    stack_pair: tuple[Stack, Stack], tmp_path: Path, how: str
) -> None:
    """The peer resets the connection in the middle of a transfer: sendfile raises a
    ConnectionError instead of waiting for a window that never opens."""
    if how == "loop" and on_uvloop():
        pytest.skip("uvloop implements loop.sendfile for no transport")
    a, b = stack_pair
    path, _ = make_file(tmp_path, 4_000_000)
    outcome: asyncio.Future[BaseException | int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport: Any = writer.transport
        with path.open("rb") as f:
            try:
                if how == "loop":
                    sent = await asyncio.get_running_loop().sendfile(transport, f)
                else:
                    sent = await transport.sendfile(f)
            except ConnectionError as exc:
                outcome.set_result(exc)
            else:
                outcome.set_result(sent)

    server = await b.start_server(handle, port=8080)
    async with asyncio.timeout(STEP):
        reader, writer = await a.open_connection(B4, 8080)
        await reader.readexactly(100_000)  # the transfer is under way; the window stays shut
        writer.transport.abort()
        assert isinstance(await outcome, ConnectionError)
    server.close()


# -- start_tls --------------------------------------------------------------------------------


async def starttls_dialogue(
    server_stack: Any, client_stack: Any, host: str, pki: Pki, engine: str
) -> None:
    """STARTTLS as an SMTP server does it, with asyncio's own ``writer.start_tls`` on the
    server's side (the writer ``start_server`` hands the callback)."""
    done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def smtp_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            assert await reader.readline() == b"STARTTLS\n"
            writer.write(b"220 go ahead\n")
            await writer.drain()
            await writer.start_tls(server_config(engine, pki))
            line = await reader.readline()
            writer.write(b"secret: " + line)
            await writer.drain()
            done.set_result(writer.get_extra_info("cipher"))
            writer.close()
        except BaseException as exc:
            done.set_exception(exc)
            raise

    server = await server_stack.start_server(smtp_like, host, 0)
    async with asyncio.timeout(STEP):
        reader, writer = await client_stack.open_connection(host, server.port)
        writer.write(b"STARTTLS\n")
        assert await reader.readline() == b"220 go ahead\n"
        await writer.start_tls(client_config(engine, pki), server_hostname="server.test")
        writer.write(b"over tls\n")
        assert await reader.readline() == b"secret: over tls\n"
        assert (await done)[1] == "TLSv1.3"
        writer.close()
    server.close()


@pytest.mark.parametrize("engine", ENGINES)
async def test_server_side_writer_start_tls(
    stack_pair: tuple[Stack, Stack], pki: Pki, engine: str
) -> None:
    """The server's ``writer.start_tls(context)`` upgrades a netstack connection on either
    loop and with either engine (uvloop's ``loop.start_tls``, which asyncio's StreamWriter
    calls, refuses every transport but its own, and every loop's refuses a TLSConfig)."""
    a, b = stack_pair
    await starttls_dialogue(b, a, B4, pki, engine)


@pytest.mark.parametrize("engine", ENGINES)
async def test_server_side_writer_start_tls_on_hoststack(pki: Pki, engine: str) -> None:
    """The same on the operating system's TCP (HostStack): a TLSConfig too."""
    async with HostStack() as host:
        await starttls_dialogue(host, host, "127.0.0.1", pki, engine)


async def test_loop_start_tls_on_a_netstack_transport(
    stack_pair: tuple[Stack, Stack], pki: Pki
) -> None:
    """asyncio's ``loop.start_tls`` upgrades a netstack transport, server side, as it does
    its own."""
    if on_uvloop():
        pytest.skip(
            "uvloop's loop.start_tls takes only uvloop's transports (netstack.use routes it)"
        )
    a, b = stack_pair
    loop = asyncio.get_running_loop()
    upgraded: asyncio.Future[asyncio.Transport] = loop.create_future()
    server_protocol = Collect()

    class Plain(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.pause_reading()  # type: ignore[attr-defined]  # the ClientHello waits
            upgraded.set_result(transport)  # type: ignore[arg-type]

    await b.create_server(Plain, B4, 4433)
    async with asyncio.timeout(STEP):
        transport_task = asyncio.ensure_future(
            a.create_connection(
                Collect, B4, 4433, ssl=client_config("openssl", pki), server_hostname="server.test"
            )  # fmt: skip
        )
        plain = await upgraded
        tls = await loop.start_tls(plain, server_protocol, server_config("openssl", pki),
                                   server_side=True)  # fmt: skip
        client, client_protocol = await transport_task
        client.write(b"hello")
        while bytes(server_protocol.data) != b"hello":
            await asyncio.sleep(0.01)
        tls.write(b"hi")
        tls.close()
        assert await client_protocol.done == b"hi"
        assert tls.get_extra_info("cipher")[1] == "TLSv1.3"
        client.close()


# -- keyword arguments ------------------------------------------------------------------------


async def call(stack: Any, method: str, **kwargs: Any) -> Any:
    """``method`` of ``stack`` with what it needs besides ``kwargs``."""
    if method == "create_connection":
        return await stack.create_connection(Collect, "127.0.0.1", 9, **kwargs)
    if method == "open_connection":
        return await stack.open_connection("127.0.0.1", 9, **kwargs)
    if method == "create_server":
        return await stack.create_server(Collect, "127.0.0.1", 0, **kwargs)
    if method == "start_server":
        return await stack.start_server(lambda r, w: None, "127.0.0.1", 0, **kwargs)
    assert method == "create_datagram_endpoint"
    return await stack.create_datagram_endpoint(
        asyncio.DatagramProtocol, ("127.0.0.1", 0), **kwargs
    )


METHODS = [
    "create_connection",
    "open_connection",
    "create_server",
    "start_server",
    "create_datagram_endpoint",
]


@pytest.fixture(params=["netstack", "host"])
async def any_stack(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """netstack's stack (with 127.0.0.1 as its address, so the calls match) or the host's."""
    if request.param == "host":
        async with HostStack() as host:
            yield host
        return
    a_link, _ = MemoryLink.pair()
    async with await Stack.open(a_link, ipv4="127.0.0.1/8") as stack:
        yield stack


@pytest.mark.parametrize("method", METHODS)
async def test_unknown_keyword_is_a_type_error(any_stack: Any, method: str) -> None:
    """As asyncio's: a keyword the method does not know is a TypeError naming it, raised
    before anything happens (before, netstack dropped it without a word)."""
    with pytest.raises(TypeError, match="happy_eyeballs"):
        await call(any_stack, method, happy_eyeballs=0.25)  # a misspelling
    if isinstance(any_stack, Stack):
        assert any_stack.stats()["tcp"]["active_opens"] == 0
        assert not any_stack._servers and not any_stack._endpoints


@pytest.mark.parametrize("method", ["create_connection", "create_server"])
@pytest.mark.parametrize("name", ["ssl_handshake_timeout", "ssl_shutdown_timeout"])
async def test_tls_timeouts_without_tls_are_refused(any_stack: Any, method: str, name: str) -> None:
    """asyncio refuses a TLS timeout without ``ssl=`` (ValueError); so does netstack."""
    with pytest.raises(ValueError, match=f"{name} is only meaningful with ssl"):
        await call(any_stack, method, **{name: 5.0})


@pytest.mark.parametrize("method", ["create_connection", "create_server"])
async def test_bad_proto_and_flags_are_refused(any_stack: Any, method: str) -> None:
    """``proto`` other than TCP's, and getaddrinfo flags netstack cannot honour, are refused
    with a clear error (asyncio's loop fails them in getaddrinfo)."""
    if method == "create_connection":
        with pytest.raises((ValueError, OSError)):
            await call(any_stack, method, proto=socket.IPPROTO_UDP)
    else:  # asyncio's create_server takes no proto at all
        with pytest.raises(TypeError, match="proto"):
            await call(any_stack, method, proto=socket.IPPROTO_TCP)
    if isinstance(any_stack, Stack):
        with pytest.raises(ValueError, match="AI_V4MAPPED"):
            await call(any_stack, method, flags=socket.AI_V4MAPPED, family=socket.AF_INET6)


async def test_datagram_endpoint_keywords(stack_pair: tuple[Stack, Stack]) -> None:
    """``create_datagram_endpoint`` takes asyncio's ``reuse_address`` (``True`` refused, as
    asyncio refuses it), ``proto`` (UDP's only) and ``flags``."""
    a, _ = stack_pair
    local = (A4, 0)
    with pytest.raises(ValueError, match="reuse_address"):
        await a.create_datagram_endpoint(asyncio.DatagramProtocol, local, reuse_address=True)
    with pytest.raises(socket.gaierror):
        await a.create_datagram_endpoint(asyncio.DatagramProtocol, local, proto=socket.IPPROTO_TCP)
    with pytest.raises(socket.gaierror):
        await a.create_datagram_endpoint(asyncio.DatagramProtocol, local, flags=1 << 20)
    transport, _ = await a.create_datagram_endpoint(
        asyncio.DatagramProtocol, local, reuse_address=False, proto=socket.IPPROTO_UDP,
        flags=socket.AI_PASSIVE,
    )  # fmt: skip
    transport.close()


async def test_numeric_host_flag(dual: tuple[Stack, Stack]) -> None:
    """``flags=AI_NUMERICHOST``: a name is not looked up (getaddrinfo's EAI_NONAME)."""
    a, b = dual
    a.dns.hosts["b.test"] = [B4]
    await b.create_server(Collect, B4, 80)
    with pytest.raises(socket.gaierror):
        await a.create_connection(Collect, "b.test", 80, flags=socket.AI_NUMERICHOST)
    transport, _ = await a.create_connection(Collect, B4, 80, flags=socket.AI_NUMERICHOST)
    transport.close()


async def test_asyncio_keywords_are_accepted(dual: tuple[Stack, Stack], pki: Pki) -> None:
    """What asyncio's ``create_connection`` / ``create_server`` accept, netstack accepts:
    the TLS timeouts with ``ssl=``, ``proto=IPPROTO_TCP``, ``all_errors``, ``keep_alive``
    (Python 3.13's name for SO_KEEPALIVE on a server's connections)."""
    a, b = dual
    server = await b.create_server(
        Collect, B4, 443, ssl=server_config("openssl", pki), ssl_handshake_timeout=5.0,
        ssl_shutdown_timeout=5.0, keep_alive=True, flags=socket.AI_PASSIVE,
    )  # fmt: skip
    async with asyncio.timeout(STEP):
        transport, protocol = await a.create_connection(
            Collect, B4, 443, ssl=client_config("openssl", pki), server_hostname="server.test",
            ssl_handshake_timeout=5.0, ssl_shutdown_timeout=5.0, proto=socket.IPPROTO_TCP,
            all_errors=True, happy_eyeballs_delay=0.25, interleave=1,
        )  # fmt: skip
        assert transport.get_extra_info("cipher") is not None
        transport.close()
    (conn,) = [c for c in b.tcp.connections.values() if c.local[1] == 443]
    assert conn.config.keepalive
    server.close()


async def test_hoststack_honours_netstack_keywords() -> None:
    """netstack's own ``nodelay`` and ``keepalive`` work on HostStack too (socket options of
    the connection), instead of the loop refusing them."""
    async with HostStack() as host, asyncio.timeout(STEP):
        server = await host.create_server(Collect, "127.0.0.1", 0, keepalive=True)
        transport, _ = await host.create_connection(
            Collect, "127.0.0.1", server.port, nodelay=True, keepalive=True
        )
        sock = transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        transport.close()
        with pytest.raises(ValueError, match="congestion"):
            await host.create_connection(Collect, "127.0.0.1", server.port, congestion="nope")


# -- RFC 8305: address racing -----------------------------------------------------------------


def test_interleave_families() -> None:
    """RFC 8305 (4): the other family moves up after "First Address Family Count" addresses
    of the first; the order within a family stays."""
    from netstack.happy_eyeballs import interleave

    six = ["fd00::1", "fd00::2", "fd00::3"]
    four = ["198.18.0.1", "198.18.0.2"]

    def fam(a: str) -> int:
        return socket.AF_INET6 if ":" in a else socket.AF_INET

    assert interleave(six + four, 1, fam) == [
        "fd00::1", "198.18.0.1", "fd00::2", "198.18.0.2", "fd00::3",
    ]  # fmt: skip
    assert interleave(six + four, 2, fam) == [
        "fd00::1", "fd00::2", "198.18.0.1", "fd00::3", "198.18.0.2",
    ]  # fmt: skip
    assert interleave(four + six, 1, fam) == [
        "198.18.0.1", "fd00::1", "198.18.0.2", "fd00::2", "fd00::3",
    ]  # fmt: skip
    assert interleave(six + four, 9, fam) == six + four
    assert interleave(six, 1, fam) == six
    assert interleave([], 1, fam) == []
    with pytest.raises(ValueError):
        interleave(six, 0, fam)


async def test_happy_eyeballs_races_past_a_black_hole(dual: tuple[Stack, Stack]) -> None:
    """RFC 8305 (5): with ``happy_eyeballs_delay``, the next address is tried while the first
    attempt still waits (here for ever: a black hole), and the first to connect wins; the
    others are abandoned, and only one protocol is made. (The name's IPv4 address comes
    first: RFC 6724's policy table ranks IPv4 above unique local IPv6 addresses.)"""
    a, b = dual
    a.dns.hosts["dual.test"] = [HOLE4, B6]
    assert await a.resolve("dual.test") == [HOLE4, B6]
    server = await b.create_server(Collect, None, 8080)
    made: list[Collect] = []

    def factory() -> Collect:
        made.append(Collect())
        return made[-1]

    async with asyncio.timeout(STEP):
        transport, protocol = await a.create_connection(
            factory, "dual.test", 8080, happy_eyeballs_delay=0.05
        )
    assert transport.get_extra_info("peername") == (B6, 8080, 0, 0)
    assert made == [protocol] and protocol.made == 1
    await asyncio.sleep(0)
    # The black hole's attempt is gone.
    assert [c.remote for c in a.tcp.connections.values()] == [(ip(B6), 8080)]
    transport.close()
    server.close()


def ip(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


async def test_without_happy_eyeballs_addresses_are_tried_in_turn(
    dual: tuple[Stack, Stack],
) -> None:
    """Without ``happy_eyeballs_delay`` (asyncio's default), an attempt waits for the one
    before it to fail: here it never does. Cancelling abandons the attempt."""
    a, b = dual
    a.dns.hosts["dual.test"] = [HOLE4, B6]
    await b.create_server(Collect, None, 8080)
    task = asyncio.ensure_future(a.create_connection(Collect, "dual.test", 8080))
    await asyncio.sleep(0.3)
    assert not task.done()
    assert [c.remote for c in a.tcp.connections.values()] == [(ip(HOLE4), 8080)]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert not a.tcp.connections


async def test_interleave_orders_the_attempts(dual: tuple[Stack, Stack]) -> None:
    """The attempts follow the interleaved order: the first that connects wins. The name's
    addresses are two IPv4 ones and an IPv6 one, in that order (RFC 6724); ``b`` listens on
    the second IPv4 address and on the IPv6 one."""
    a, b = dual
    b.add_address("198.18.0.3/24")
    a.dns.hosts["multi.test"] = [B4, "198.18.0.3", B6]
    await b.create_server(Collect, ["198.18.0.3", B6], 8080)

    async def winner(**kw: Any) -> str:
        async with asyncio.timeout(STEP):
            transport, _ = await a.create_connection(Collect, "multi.test", 8080, **kw)
        transport.close()
        return str(transport.get_extra_info("peername")[0])

    assert await winner() == "198.18.0.3"  # 198.18.0.2 refused, then 198.18.0.3
    assert await winner(interleave=1) == B6  # 198.18.0.2, then fd00::2
    assert await winner(interleave=2) == "198.18.0.3"
    # With happy eyeballs and no interleave given, interleave is 1 (asyncio's default); a
    # refusal starts the next attempt at once, long before the delay is up.
    assert await winner(happy_eyeballs_delay=STEP) == B6


async def test_every_attempt_fails(dual: tuple[Stack, Stack]) -> None:
    """Every address refuses: the error asyncio raises (the one error when they agree), and
    with ``all_errors=True`` an ExceptionGroup of each attempt's error."""
    a, _ = dual
    a.dns.hosts["dual.test"] = [B6, B4]
    async with asyncio.timeout(STEP):
        with pytest.raises(ConnectionRefusedError):
            await a.create_connection(Collect, "dual.test", 8080, happy_eyeballs_delay=0.05)
        with pytest.raises(ExceptionGroup) as info:
            await a.create_connection(Collect, "dual.test", 8080, all_errors=True)
    assert [type(e) for e in info.value.exceptions] == [ConnectionRefusedError] * 2
    assert not a.tcp.connections


@pytest.mark.parametrize("value", [-1.0, "0.25"])
async def test_bad_happy_eyeballs_delay(dual: tuple[Stack, Stack], value: Any) -> None:
    a, _ = dual
    with pytest.raises((ValueError, TypeError)):
        await a.create_connection(Collect, B4, 80, happy_eyeballs_delay=value)


async def test_hoststack_happy_eyeballs(monkeypatch: pytest.MonkeyPatch) -> None:
    """HostStack honours ``happy_eyeballs_delay``, ``interleave`` and ``all_errors`` on
    either loop (uvloop's create_connection takes none of them): a name whose IPv6 address
    refuses and whose IPv4 address listens."""
    async with HostStack() as host, asyncio.timeout(STEP):
        server = await host.create_server(Collect, "127.0.0.1", 0)
        port = server.port
        real = host.loop.getaddrinfo

        async def getaddrinfo(name: Any, *args: Any, **kw: Any) -> Any:
            if name == "dual.test":
                stream = socket.SOCK_STREAM
                return [
                    (socket.AF_INET6, stream, 6, "", ("::1", port, 0, 0)),
                    (socket.AF_INET, stream, 6, "", ("127.0.0.1", port)),
                ]
            return await real(name, *args, **kw)

        monkeypatch.setattr(host.loop, "getaddrinfo", getaddrinfo)
        transport, _ = await host.create_connection(
            Collect, "dual.test", port, happy_eyeballs_delay=0.05, interleave=1
        )
        assert transport.get_extra_info("peername") == ("127.0.0.1", port)
        transport.close()
        server.close()
        await server.wait_closed()
        with pytest.raises(ExceptionGroup) as info:
            await host.create_connection(Collect, "dual.test", port, all_errors=True)
        assert all(isinstance(e, ConnectionRefusedError) for e in info.value.exceptions)
        assert len(info.value.exceptions) == 2


# -- Server.sockets ---------------------------------------------------------------------------


async def test_ipv6_listener_sockets(dual: tuple[Stack, Stack]) -> None:
    """An IPv6 listener's socket says AF_INET6 and gives a 4-tuple name, as asyncio's."""
    _, b = dual
    server = await b.create_server(Collect, B6, 0)
    (sock,) = server.sockets
    assert sock.family == socket.AF_INET6
    assert sock.getsockname() == (B6, server.port, 0, 0)
    both = await b.create_server(Collect, None, 0)
    names = {s.family: s.getsockname() for s in both.sockets}
    assert names == {
        socket.AF_INET: ("0.0.0.0", both.port),
        socket.AF_INET6: ("::", both.port, 0, 0),
    }
    assert both.addresses == [("0.0.0.0", both.port), ("::", both.port)]  # netstack's own


async def test_ipv6_listener_sockets_on_hoststack() -> None:
    async with HostStack() as host:
        server = await host.create_server(Collect, "::1", 0)
        (sock,) = server.sockets
        assert sock.family == socket.AF_INET6
        assert sock.getsockname() == ("::1", server.port, 0, 0)


# -- pause_reading ----------------------------------------------------------------------------


async def test_pause_reading_in_connection_made_holds_the_first_data(
    stack_pair: tuple[Stack, Stack],
) -> None:
    """asyncio's promise: no ``data_received`` after ``pause_reading()`` returns, also for
    data that came in the same burst as the handshake's last ACK (before, a server that
    paused in ``connection_made`` -- what ``loop.start_tls`` does -- still got the client's
    first bytes, and asyncio's TLS lost its ClientHello)."""
    a, b = stack_pair
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    paused: asyncio.Future[asyncio.Transport] = loop.create_future()

    class PausedAtOnce(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.pause_reading()  # type: ignore[attr-defined]
            paused.set_result(transport)  # type: ignore[arg-type]

        def data_received(self, data: bytes) -> None:
            got.append(data)

    await b.create_server(PausedAtOnce, B4, 7)
    async with asyncio.timeout(STEP):
        _, writer = await a.open_connection(B4, 7)
        writer.write(b"first bytes")
        transport = await paused
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert got == []
        transport.resume_reading()
        while not got:
            await asyncio.sleep(0.01)
    assert b"".join(got) == b"first bytes"
    writer.close()
