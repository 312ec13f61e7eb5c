"""The stream conformance suite: what an ``asyncio.StreamReader``/``StreamWriter`` connection
must do, as async checks any transport can run (trio's ``check_two_way_stream`` is the
precedent). netstack runs it unchanged against every stream implementation it has or talks
to; a transport of your own runs it the same way::

    from netstack.testing.conformance import check_two_way_stream

    async def make_pair():
        ...  # connect two fresh ends of your transport
        return (client_reader, client_writer), (server_reader, server_writer)

    async def test_my_transport():
        await check_two_way_stream(make_pair)   # raises AssertionError naming the check

:func:`check_two_way_stream` runs every check that needs only connected pairs (sizes from
1 byte to 4 MiB both ways, readexactly beyond the reader's limit, byte-at-a-time writes,
writelines, the read helpers at EOF, half-close, EOF that repeats, drain() backpressure,
close and abort, writes after close, full duplex, ping-pong, peer and socket names, 50
connections at once). :func:`check_endpoints` runs those and the ones that need listening
servers (``Server.close()`` keeping accepted connections, ``serve_forever()`` cancelled,
refused connections), given a client and a server *endpoint*: anything with the two calls
netstack's ``Stack`` shares with asyncio::

    server = await endpoint.start_server(cb, host, port)      # server.addresses, close(), ...
    reader, writer = await endpoint.open_connection(host, port)

To run the checks one by one (one pytest test each, say), :data:`CHECKS`,
:data:`DIRECTIONAL_CHECKS` and :data:`DIRECTIONS` list them, :data:`LISTENING_CHECKS` those
that need endpoints, and :class:`Harness` is what each takes (:meth:`Harness.of_pairs` over a
factory of pairs). Every wait is bounded with ``asyncio.timeout``; no check asserts anything
about time.

netstack's own backends (``tests/streams/test_conformance.py``): netstack to netstack in
memory (IPv4, IPv6, netstack's TLS), HostStack on loopback (the operating system's sockets,
which also shows the checks agree with the kernel and asyncio), and netstack over TAP with the
Linux kernel as the peer, in both directions.

The remote peer
---------------
For TAP the far end runs in another network namespace, so it cannot hand us Python objects.
The reference peer is this very file run as ``python conformance.py agent`` inside the
namespace (``ip netns exec``; :meth:`Agent.argv` is the command). The *agent* is plain asyncio
on the kernel's sockets; it reads one JSON request per line on stdin (``listen``,
``connect``, ``read``, ``readexactly``, ``write``, ``write_eof``, ``drain``, ``abort``,
``serve_forever``, ..., bytes in base64) and answers per line on stdout, plus events (a
connection was accepted; the write buffer's size after each write). In the test process,
:class:`RemoteEndpoint`, :class:`RemoteServer`, :class:`RemoteReader` and
:class:`RemoteWriter` are proxies with the ``StreamReader``/``StreamWriter``/``Server``
methods the checks use, each call relayed to the agent. So every check runs byte for byte the
same code whichever end is the kernel: ``writer.write()`` on a proxy is a ``write()`` on a
kernel socket's asyncio transport in the namespace, and TCP segments between netstack and the
kernel cross the TAP device. A cancelled proxy call (a check's ``asyncio.timeout`` firing)
cancels the agent's operation too. Calls that are synchronous in asyncio (``write``,
``close``, ``abort``, ``server.close()``) are sent without waiting, in order; an error the
agent meets in one is kept and fails the test at teardown. Before it opens a connection the
harness waits until the agent has handled all of them (:meth:`Harness.settle`), so that a
server closed by a check is closed before the next connection attempt, as it is at once with
local sockets.

This module uses only the standard library (no netstack import), so the agent starts with
any Python.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import itertools
import json
import random
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "CHECKS",
    "DIRECTIONS",
    "DIRECTIONAL_CHECKS",
    "LISTENING_CHECKS",
    "Agent",
    "Harness",
    "Pair",
    "PairFactory",
    "RemoteEndpoint",
    "check_endpoints",
    "check_two_way_stream",
    "run_check",
    "run_suite",
]

#: The bound on one step of a check (a connect, a read, a drain ...).
STEP = 10.0
#: Sizes of single messages, 1 byte to 4 MiB, around segment and buffer boundaries.
SIZES = (1, 2, 7, 100, 536, 1460, 1461, 2920, 65535, 65536, 65537, 262144, 1 << 20, 4 << 20)
#: How long a drain() must stay pending to count as blocked (not a timing assertion: the
#: check only stops writing then, and verifies everything written arrives).
BLOCKED_AFTER = 0.5
#: A writer that gets this far without drain() ever blocking has no backpressure.
BACKPRESSURE_CAP = 64 << 20
#: The bound on readexactly(1 MiB), well above what 1 MiB takes on every backend, kept
#: short because a stalled stream waits all of it.
READEXACTLY_BOUND = 3.0
#: Connections of the concurrency check.
CONCURRENT = 50
#: Lines from the agent can carry a few MiB (base64).
LINE_LIMIT = 64 << 20
#: The bound on one whole check in :func:`check_two_way_stream` and :func:`check_endpoints`.
CHECK_TIMEOUT = 60.0

#: What :func:`check_two_way_stream` takes: an async callable returning the two ends of a
#: fresh connection, ``((client_reader, client_writer), (server_reader, server_writer))``.
PairFactory = Callable[[], Awaitable[tuple[tuple[Any, Any], tuple[Any, Any]]]]


# =============================================================================================
# The harness
# =============================================================================================
class Pair(NamedTuple):
    """Both ends of one connection; unpacks as ``(client_reader, client_writer,
    server_reader, server_writer)``."""

    client_reader: Any
    client_writer: Any
    server_reader: Any
    server_writer: Any

    def flow(self, direction: str) -> Flow:
        """The ends seen from the data's point of view: ``"c2s"`` or ``"s2c"``."""
        if direction == "c2s":
            return Flow(
                self.client_reader, self.client_writer, self.server_reader, self.server_writer
            )
        if direction == "s2c":
            return Flow(
                self.server_reader, self.server_writer, self.client_reader, self.client_writer
            )
        raise ValueError(f"unknown direction {direction!r}")


class Flow(NamedTuple):
    """Data goes from ``src_writer`` to ``dst_reader``; the other two go back."""

    src_reader: Any
    src_writer: Any
    dst_reader: Any
    dst_writer: Any


class Listening:
    """A server started by the harness, pairing each accepted connection with the client
    that made it (by the client's address)."""

    def __init__(self) -> None:
        self.server: Any = None
        #: The server's port, from ``server.addresses`` while it listened.
        self.port = 0
        self._accepts: dict[tuple[str, int], asyncio.Future[tuple[Any, Any]]] = {}

    def _slot(self, key: tuple[str, int]) -> asyncio.Future[tuple[Any, Any]]:
        fut = self._accepts.get(key)
        if fut is None:
            fut = self._accepts[key] = asyncio.get_running_loop().create_future()
        return fut

    def accepted(self, reader: Any, writer: Any) -> None:
        fut = self._slot(_addr(writer.get_extra_info("peername")))
        if not fut.done():
            fut.set_result((reader, writer))

    async def wait_for(self, client_writer: Any) -> tuple[Any, Any]:
        key = _addr(client_writer.get_extra_info("sockname"))
        fut = self._slot(key)
        try:
            async with asyncio.timeout(STEP):
                return await fut
        finally:
            self._accepts.pop(key, None)


@dataclass
class Harness:
    """What a check runs on: a client endpoint, a server endpoint, and addresses; or only a
    factory of connected pairs (:meth:`of_pairs`), for the checks that need no server."""

    name: str
    client: Any = None
    server: Any = None
    #: Where the client endpoint reaches the server endpoint.
    server_host: str | None = None
    #: The ``host`` the server endpoint listens on (None: every address).
    listen_host: str | None = None
    #: More keyword arguments for ``open_connection`` and ``start_server`` (``ssl=``...).
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    server_kwargs: dict[str, Any] = field(default_factory=dict)
    #: Makes connected pairs instead of the endpoints (see :meth:`of_pairs`).
    pairs: PairFactory | None = None
    _default: Listening | None = None
    _listenings: list[Listening] = field(default_factory=list)
    _writers: list[Any] = field(default_factory=list)
    _making: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def of_pairs(cls, make_pair: PairFactory, name: str = "pairs") -> Harness:
        """A harness whose connections come from ``make_pair`` (see :data:`PairFactory`);
        it runs every check but the :data:`LISTENING_CHECKS`."""
        return cls(name, pairs=make_pair)

    @property
    def has_endpoints(self) -> bool:
        """Whether the harness can listen (the :data:`LISTENING_CHECKS` need it)."""
        return self.client is not None and self.server is not None

    async def listen(self) -> Listening:
        """Start a fresh server on the server endpoint (an ephemeral port)."""
        if not self.has_endpoints:
            raise TypeError(f"harness {self.name!r} has no endpoints to listen on")
        listening = Listening()
        async with asyncio.timeout(STEP):
            listening.server = await self.server.start_server(
                listening.accepted, self.listen_host, 0, **self.server_kwargs
            )
        listening.port = int(listening.server.addresses[0][1])
        self._listenings.append(listening)
        return listening

    async def open(self, port: int) -> tuple[Any, Any]:
        """Connect the client endpoint to ``port`` on the server endpoint."""
        async with asyncio.timeout(STEP):
            await self.settle()
            reader, writer = await self.client.open_connection(
                self.server_host, port, **self.client_kwargs
            )
        self._writers.append(writer)
        return reader, writer

    async def settle(self) -> None:
        """Let every endpoint finish what it was told before: asyncio's synchronous calls
        (``server.close()``) take effect at once on local endpoints, but travel to an agent;
        a new connection must not overtake them."""
        for endpoint in (self.client, self.server):
            settle = getattr(endpoint, "settle", None)
            if settle is not None:
                await settle()

    async def connect(self, listening: Listening | None = None) -> Pair:
        """A connected pair: from the pair factory, else through ``listening`` or the
        harness's own server."""
        if self.pairs is not None and listening is None:
            # One call at a time, even when a check connects many at once: a factory that
            # takes the next accepted connection off a queue then pairs the right ends.
            async with self._making, asyncio.timeout(STEP):
                (reader, writer), (server_reader, server_writer) = await self.pairs()
            self._writers += [writer, server_writer]
            return Pair(reader, writer, server_reader, server_writer)
        if listening is None:
            if self._default is None:
                self._default = await self.listen()
            listening = self._default
        reader, writer = await self.open(listening.port)
        server_reader, server_writer = await listening.wait_for(writer)
        self._writers.append(server_writer)
        return Pair(reader, writer, server_reader, server_writer)

    async def aclose(self) -> None:
        """Abort every connection and close every server the harness made."""
        for writer in self._writers:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        for listening in self._listenings:
            with contextlib.suppress(Exception):
                listening.server.close()
        for listening in self._listenings:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await listening.server.wait_closed()
        self._writers.clear()
        self._listenings.clear()


def _addr(name: Any) -> tuple[str, int]:
    """``(host, port)`` of a socket name, the host normalized (IPv6 names have 4 parts)."""
    return (str(ipaddress.ip_address(name[0])), int(name[1]))


# =============================================================================================
# Helpers for checks
# =============================================================================================
def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(f"{seed}/{size}").randbytes(size)


async def _read_n(reader: Any, n: int, *, chunk: int = 65536) -> bytes:
    """``n`` bytes by reads of at most ``chunk`` (so the reader's own limits never matter)."""
    out = bytearray()
    while len(out) < n:
        piece = await reader.read(min(chunk, n - len(out)))
        if not piece:
            raise AssertionError(f"EOF after {len(out)} of {n} bytes")
        out += piece
    return bytes(out)


async def _read_to_eof(reader: Any) -> bytes:
    out = bytearray()
    while True:
        piece = await reader.read(65536)
        if not piece:
            return bytes(out)
        out += piece


async def _send(writer: Any, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _close(*writers: Any) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(STEP):
                await writer.wait_closed()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


async def _expect_refused(h: Harness, port: int) -> None:
    try:
        reader, writer = await h.open(port)
    except ConnectionRefusedError:
        return
    writer.transport.abort()
    raise AssertionError(f"connected to port {port}, where nothing should listen")


# =============================================================================================
# The checks
# =============================================================================================
Check = Callable[[Harness], Awaitable[None]]
DirectionalCheck = Callable[[Harness, str], Awaitable[None]]

#: Checks run once per harness.
CHECKS: list[Check] = []
#: Checks run once per harness and direction (``"c2s"``: client writes, server reads).
DIRECTIONAL_CHECKS: list[DirectionalCheck] = []
DIRECTIONS = ("c2s", "s2c")
#: The checks of :data:`CHECKS` that need a harness with endpoints (they start servers).
LISTENING_CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


def listening_check(fn: Check) -> Check:
    LISTENING_CHECKS.append(fn)
    return check(fn)


def directional(fn: DirectionalCheck) -> DirectionalCheck:
    DIRECTIONAL_CHECKS.append(fn)
    return fn


@directional
async def check_sizes(h: Harness, direction: str) -> None:
    """Messages of 1 byte to 4 MiB arrive whole and in order (sha256), each written at once,
    read in pieces while the writer drains."""
    pair = await h.connect()
    f = pair.flow(direction)
    for size in SIZES:
        data = _data(size)
        reading = asyncio.ensure_future(_read_n(f.dst_reader, size))
        try:
            async with asyncio.timeout(STEP):
                await _send(f.src_writer, data)
                got = await reading
        finally:
            reading.cancel()
        assert _digest(got) == _digest(data), f"{size} bytes arrived changed"
    f.src_writer.write_eof()
    async with asyncio.timeout(STEP):
        assert await f.dst_reader.read() == b""
    await _close(f.src_writer, f.dst_writer)


@directional
async def check_readexactly_beyond_limit(h: Harness, direction: str) -> None:
    """readexactly(n) for n far beyond the reader's limit (64 KiB) completes: asyncio's
    StreamReader then resumes the transport while it waits, and the transport must keep
    delivering."""
    pair = await h.connect()
    f = pair.flow(direction)
    size = 1 << 20
    data = _data(size, seed=1)
    f.src_writer.write(data)
    try:
        async with asyncio.timeout(READEXACTLY_BOUND):
            got = await f.dst_reader.readexactly(size)
    except TimeoutError:
        raise AssertionError(
            f"readexactly({size}) did not complete within {READEXACTLY_BOUND} s although all "
            f"{size} bytes were written; the reader: {f.dst_reader!r}"
        ) from None
    assert _digest(got) == _digest(data)
    async with asyncio.timeout(STEP):
        await f.src_writer.drain()
    await _close(f.src_writer, f.dst_writer)


@directional
async def check_byte_at_a_time(h: Harness, direction: str) -> None:
    """Many one-byte writes without drain, then one-byte writes each drained: every byte
    arrives, in order."""
    pair = await h.connect()
    f = pair.flow(direction)
    data = _data(2000, seed=2)
    for i in range(len(data)):
        f.src_writer.write(data[i : i + 1])
    async with asyncio.timeout(STEP):
        await f.src_writer.drain()
        assert await _read_n(f.dst_reader, len(data)) == data
    more = _data(200, seed=3)
    async with asyncio.timeout(STEP):
        for i in range(len(more)):
            await _send(f.src_writer, more[i : i + 1])
        assert await _read_n(f.dst_reader, len(more)) == more
    await _close(f.src_writer, f.dst_writer)


@directional
async def check_writelines(h: Harness, direction: str) -> None:
    """writelines() of bytes, bytearray, memoryview and empty pieces; write(b"") is a
    no-op."""
    pair = await h.connect()
    f = pair.flow(direction)
    big = _data(30000, seed=4)
    parts: list[Any] = [b"abc", bytearray(b"def"), memoryview(b"ghi"), b"", big]
    f.src_writer.write(b"")
    f.src_writer.writelines(parts)
    f.src_writer.write(b"")
    expected = b"abcdefghi" + big
    async with asyncio.timeout(STEP):
        await f.src_writer.drain()
        assert await f.dst_reader.readexactly(len(expected)) == expected
    await _close(f.src_writer, f.dst_writer)


@directional
async def check_read_helpers(h: Harness, direction: str) -> None:
    """readline, readuntil (also with the separator split across writes), readexactly, and
    what each does at EOF."""
    pair = await h.connect()
    f = pair.flow(direction)
    w, r = f.src_writer, f.dst_reader
    async with asyncio.timeout(STEP):
        await _send(w, b"alpha\nbe")
        await _send(w, b"ta\r\ngamma--E")
        assert await r.readline() == b"alpha\n"
        assert await r.readline() == b"beta\r\n"
        await _send(w, b"ND--delta")
        assert await r.readuntil(b"--END--") == b"gamma--END--"
        assert await r.readexactly(3) == b"del"
        await _send(w, b"x" * 10 + b"\n")
        assert await r.readexactly(2) == b"ta"
        assert await r.readuntil(b"\n") == b"x" * 10 + b"\n"
        await _send(w, b"tail without newline")
        w.write_eof()
        assert await r.readline() == b"tail without newline"
        assert await r.readline() == b""
        try:
            await r.readuntil(b"--")
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b""
        else:
            raise AssertionError("readuntil at EOF did not raise IncompleteReadError")
        try:
            await r.readexactly(1)
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b"" and exc.expected == 1
        else:
            raise AssertionError("readexactly at EOF did not raise IncompleteReadError")
    await _close(w, f.dst_writer)


@directional
async def check_readexactly_partial_at_eof(h: Harness, direction: str) -> None:
    """readexactly(n) with fewer than n bytes before EOF raises IncompleteReadError carrying
    what did arrive."""
    pair = await h.connect()
    f = pair.flow(direction)
    async with asyncio.timeout(STEP):
        await _send(f.src_writer, b"12345")
        f.src_writer.write_eof()
        try:
            await f.dst_reader.readexactly(10)
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b"12345" and exc.expected == 10
        else:
            raise AssertionError("readexactly(10) of 5 bytes and EOF did not raise")
    await _close(f.src_writer, f.dst_writer)


@directional
async def check_half_close(h: Harness, direction: str) -> None:
    """write_eof on one side: the other reads the data and EOF, can still write, and its
    data arrives; then both close."""
    pair = await h.connect()
    f = pair.flow(direction)
    assert f.src_writer.can_write_eof()
    request = _data(5000, seed=5)
    reply = _data(70000, seed=6)
    async with asyncio.timeout(STEP):
        await _send(f.src_writer, request)
        f.src_writer.write_eof()
        assert await _read_to_eof(f.dst_reader) == request
        await _send(f.dst_writer, reply)  # the half-closed connection still carries this
        assert await _read_n(f.src_reader, len(reply)) == reply
        f.dst_writer.write_eof()
        assert await f.src_reader.read() == b""
    await _close(f.src_writer, f.dst_writer)


@directional
async def check_eof_repeats(h: Harness, direction: str) -> None:
    """After the peer closes, read() returns b"" every time, and so does readline()."""
    pair = await h.connect()
    f = pair.flow(direction)
    async with asyncio.timeout(STEP):
        await _send(f.src_writer, b"last words")
        f.src_writer.close()
        assert await _read_to_eof(f.dst_reader) == b"last words"
        for _ in range(3):
            assert await f.dst_reader.read() == b""
            assert await f.dst_reader.read(10) == b""
            assert await f.dst_reader.readline() == b""
    await _close(f.src_writer, f.dst_writer)


@directional
async def check_drain_backpressure(h: Harness, direction: str) -> None:
    """A writer outpaces a reader that reads nothing: the write buffer grows past the low
    water mark and drain() blocks (so the connection does have finite buffers); once the
    reader reads, every byte arrives intact and drain() completes."""
    pair = await h.connect()
    f = pair.flow(direction)
    chunk = _data(1 << 16, seed=7)
    low, _high = f.src_writer.transport.get_write_buffer_limits()
    written = 0
    blocked: asyncio.Future[None] | None = None
    while written < BACKPRESSURE_CAP:
        f.src_writer.write(chunk)
        written += len(chunk)
        drain = asyncio.ensure_future(f.src_writer.drain())
        done, _ = await asyncio.wait({drain}, timeout=BLOCKED_AFTER)
        if not done:
            blocked = drain
            break
        drain.result()
    assert blocked is not None, (
        f"wrote {written} bytes to a peer that reads nothing and drain() never blocked"
    )
    buffered = f.src_writer.transport.get_write_buffer_size()
    assert buffered > low, f"drain() blocked with only {buffered} bytes buffered (low {low})"
    try:
        expected = hashlib.sha256()
        got = hashlib.sha256()
        async with asyncio.timeout(STEP * 3):
            for _ in range(written // len(chunk)):
                expected.update(chunk)
                got.update(await _read_n(f.dst_reader, len(chunk)))
            await blocked
        assert got.digest() == expected.digest(), "the data arrived changed"
    finally:
        blocked.cancel()
    await _close(f.src_writer, f.dst_writer)


@directional
async def check_close_and_wait_closed(h: Harness, direction: str) -> None:
    """close() right after write() still delivers the data, then EOF; wait_closed() returns
    on both sides."""
    pair = await h.connect()
    f = pair.flow(direction)
    data = _data(100000, seed=8)
    f.src_writer.write(data)
    f.src_writer.close()
    assert f.src_writer.is_closing()
    async with asyncio.timeout(STEP):
        await f.src_writer.wait_closed()
        assert await _read_to_eof(f.dst_reader) == data
        f.dst_writer.close()
        await f.dst_writer.wait_closed()


@directional
async def check_abort(h: Harness, direction: str) -> None:
    """abort() ends the connection: the peer's reads end with ConnectionResetError or EOF
    (either, as the platform does), and the aborting side's wait_closed() returns."""
    pair = await h.connect()
    f = pair.flow(direction)
    async with asyncio.timeout(STEP):
        await _send(f.src_writer, b"before")
        assert await f.dst_reader.readexactly(6) == b"before"
        f.src_writer.transport.abort()
        assert f.src_writer.is_closing()
        with contextlib.suppress(ConnectionError):
            await f.src_writer.wait_closed()
        try:
            rest = await _read_to_eof(f.dst_reader)
        except ConnectionResetError:
            pass
        else:
            assert rest == b"", rest
        f.dst_writer.close()
        with contextlib.suppress(ConnectionError):
            await f.dst_writer.wait_closed()


@directional
async def check_write_after_close(h: Harness, direction: str) -> None:
    """Writing after one's own close() does not raise and sends nothing; writing after the
    peer closed does not raise either."""
    pair = await h.connect()
    f = pair.flow(direction)
    f.src_writer.close()
    for _ in range(8):
        f.src_writer.write(b"too late")
    async with asyncio.timeout(STEP):
        assert await _read_to_eof(f.dst_reader) == b""
        # The peer is gone (closed); the other side may still write without an exception.
        f.dst_writer.write(b"to nobody")
        with contextlib.suppress(ConnectionError):
            await f.src_writer.wait_closed()
    f.dst_writer.close()
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(STEP):
            await f.dst_writer.wait_closed()


@check
async def check_full_duplex(h: Harness) -> None:
    """Both sides write 1 MiB at once while reading: no deadlock, both arrive intact."""
    pair = await h.connect()
    up, down = _data(1 << 20, seed=9), _data(1 << 20, seed=10)

    async with asyncio.timeout(STEP * 2):
        got = await asyncio.gather(
            _send(pair.client_writer, up),
            _send(pair.server_writer, down),
            _read_n(pair.server_reader, len(up)),
            _read_n(pair.client_reader, len(down)),
        )
    assert _digest(got[2]) == _digest(up) and _digest(got[3]) == _digest(down)
    await _close(pair.client_writer, pair.server_writer)


@check
async def check_ping_pong(h: Harness) -> None:
    """100 small requests, each answered before the next is sent (no stall between a write
    and its answer, e.g. from Nagle's algorithm meeting delayed ACKs)."""
    pair = await h.connect()
    async with asyncio.timeout(STEP):
        for i in range(100):
            request = b"%05d" % i + _data(95, seed=i)
            await _send(pair.client_writer, request)
            assert await pair.server_reader.readexactly(100) == request
            await _send(pair.server_writer, request[::-1])
            assert await pair.client_reader.readexactly(100) == request[::-1]
    await _close(pair.client_writer, pair.server_writer)


@check
async def check_extra_info(h: Harness) -> None:
    """peername and sockname agree between the ends and with the server's address."""
    pair = await h.connect()
    cw, sw = pair.client_writer, pair.server_writer
    assert _addr(cw.get_extra_info("sockname")) == _addr(sw.get_extra_info("peername"))
    assert _addr(cw.get_extra_info("peername")) == _addr(sw.get_extra_info("sockname"))
    host, port = _addr(cw.get_extra_info("peername"))
    if h.server_host is not None:
        assert host == str(ipaddress.ip_address(h.server_host))
    if h._default is not None:
        assert port == h._default.port
    assert cw.get_extra_info("no such thing", "dflt") == "dflt"
    await _close(cw, sw)


@check
async def check_many_connections(h: Harness) -> None:
    """50 connections at once, each carrying its own data both ways."""

    async def one(i: int) -> None:
        pair = await h.connect()
        data = _data(20000 + i, seed=100 + i)
        await _send(pair.client_writer, data)
        echoed = await _read_n(pair.server_reader, len(data))
        await _send(pair.server_writer, echoed[::-1])
        assert await _read_n(pair.client_reader, len(data)) == data[::-1]
        pair.client_writer.close()
        assert await pair.server_reader.read() == b""
        await _close(pair.client_writer, pair.server_writer)

    async with asyncio.timeout(STEP * 3):
        await asyncio.gather(*(one(i) for i in range(CONCURRENT)))


@listening_check
async def check_server_close_keeps_connections(h: Harness) -> None:
    """Server.close() stops accepting (a new connection is refused) while the connections
    it accepted go on both ways; wait_closed() returns once they are closed."""
    listening = await h.listen()
    pair = await h.connect(listening)
    server = listening.server
    server.close()
    await _expect_refused(h, listening.port)
    async with asyncio.timeout(STEP):
        await _send(pair.client_writer, b"still here?")
        assert await pair.server_reader.readexactly(11) == b"still here?"
        await _send(pair.server_writer, b"yes")
        assert await pair.client_reader.readexactly(3) == b"yes"
    await _close(pair.client_writer, pair.server_writer)
    async with asyncio.timeout(STEP):
        await server.wait_closed()
    assert not server.is_serving()


@listening_check
async def check_serve_forever_cancel(h: Harness) -> None:
    """serve_forever() serves until cancelled; cancelling raises CancelledError in the task,
    closes the server, and new connections are refused."""
    listening = await h.listen()
    server = listening.server
    task = asyncio.ensure_future(server.serve_forever())
    try:
        pair = await h.connect(listening)
        async with asyncio.timeout(STEP):
            await _send(pair.client_writer, b"ping")
            assert await pair.server_reader.readexactly(4) == b"ping"
        await _close(pair.client_writer, pair.server_writer)
        assert not task.done()
        task.cancel()
        try:
            async with asyncio.timeout(STEP):
                await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("serve_forever() returned instead of raising CancelledError")
    finally:
        task.cancel()
    assert not server.is_serving()
    await _expect_refused(h, listening.port)


@listening_check
async def check_connection_refused(h: Harness) -> None:
    """Connecting to a port nobody listens on raises ConnectionRefusedError, repeatedly."""
    listening = await h.listen()
    port = listening.port
    listening.server.close()
    async with asyncio.timeout(STEP):
        await listening.server.wait_closed()
    for _ in range(3):
        await _expect_refused(h, port)


# =============================================================================================
# Running the suite
# =============================================================================================
async def run_check(h: Harness, check: Callable[..., Awaitable[None]], *args: str) -> None:
    """One check on ``h``, bounded by :data:`CHECK_TIMEOUT`; a failure carries a note naming
    the check (and direction)."""
    what = " ".join([check.__name__, *args])
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check(h, *args)
    except BaseException as exc:
        exc.add_note(f"conformance check {what} on {h.name}")
        raise


async def run_suite(h: Harness) -> None:
    """Every check that ``h`` can run, in order, stopping at the first failure."""
    try:
        for one in CHECKS:
            if one in LISTENING_CHECKS and not h.has_endpoints:
                continue
            await run_check(h, one)
        for directional_check in DIRECTIONAL_CHECKS:
            for direction in DIRECTIONS:
                await run_check(h, directional_check, direction)
    finally:
        await h.aclose()


async def check_two_way_stream(make_pair: PairFactory, *, name: str = "pairs") -> None:
    """Run every check that needs only connected pairs on the connections ``make_pair``
    makes (a fresh one per call; a check may ask for many at once).

    Args:
        make_pair: an async callable returning ``((client_reader, client_writer),
            (server_reader, server_writer))``, two ends of one new connection, shaped like
            asyncio's ``StreamReader``/``StreamWriter``; the writer's ``transport`` needs
            ``abort()``, ``get_write_buffer_size()`` and ``get_write_buffer_limits()``. It is
            never called again before its previous call returned.
        name: what the failure notes call the transport.

    Raises:
        AssertionError: a check failed (a note names it); other exceptions of the stream
            (a ``TimeoutError`` from a step that never completed, say) come through as
            raised, with the same note.
    """
    await run_suite(Harness.of_pairs(make_pair, name))


async def check_endpoints(
    client: Any,
    server: Any,
    server_host: str,
    *,
    listen_host: str | None = None,
    client_kwargs: dict[str, Any] | None = None,
    server_kwargs: dict[str, Any] | None = None,
    name: str = "endpoints",
) -> None:
    """Run every check, servers included, with connections from ``client`` to ``server``.

    Args:
        client: what connects: ``await client.open_connection(host, port, **client_kwargs)``.
        server: what listens: ``await server.start_server(cb, listen_host, 0,
            **server_kwargs)``, a server with ``addresses``, ``close()``, ``wait_closed()``,
            ``serve_forever()`` and ``is_serving()``.
        server_host: the address at which ``client`` reaches ``server``.
        listen_host: the ``host`` to listen on (``None``: every address).
        client_kwargs: more keyword arguments for ``open_connection`` (``ssl=``...).
        server_kwargs: more keyword arguments for ``start_server``.
        name: what the failure notes call the transport.

    Raises:
        AssertionError: a check failed (a note names it).
    """
    await run_suite(
        Harness(
            name,
            client,
            server,
            server_host,
            listen_host,
            client_kwargs=dict(client_kwargs or {}),
            server_kwargs=dict(server_kwargs or {}),
        )  # fmt: skip
    )


# =============================================================================================
# The remote peer: proxies in the test process
# =============================================================================================
class AgentError(RuntimeError):
    """The agent failed, or raised an exception with no local counterpart."""


def _b64(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


_OS_ERRORS: dict[str, type[OSError]] = {
    cls.__name__: cls
    for cls in (
        OSError,
        ConnectionError,
        ConnectionResetError,
        ConnectionRefusedError,
        ConnectionAbortedError,
        BrokenPipeError,
        TimeoutError,
        PermissionError,
    )
}
_OTHER_ERRORS: dict[str, type[Exception]] = {"RuntimeError": RuntimeError, "ValueError": ValueError}


def _encode_error(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "args": [a for a in exc.args if isinstance(a, (str, int)) or a is None],
    }
    if isinstance(exc, asyncio.IncompleteReadError):
        out["partial"] = _b64(exc.partial)
        out["expected"] = exc.expected
    if isinstance(exc, asyncio.LimitOverrunError):
        out["consumed"] = exc.consumed
    return out


def _decode_error(err: dict[str, Any]) -> BaseException:
    kind = err["type"]
    if kind == "IncompleteReadError":
        return asyncio.IncompleteReadError(_unb64(err["partial"]), err["expected"])
    if kind == "LimitOverrunError":
        return asyncio.LimitOverrunError(err["message"], err["consumed"])
    if kind == "CancelledError":
        return asyncio.CancelledError()
    cls = _OS_ERRORS.get(kind) or _OTHER_ERRORS.get(kind)
    if cls is not None:
        return cls(*err["args"])
    return AgentError(f"agent raised {kind}: {err['message']}")


class Agent:
    """The test process's side of an agent: requests out, answers and events in."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.failures: list[str] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._servers: dict[int, RemoteServer] = {}
        self._early_accepts: dict[int, list[dict[str, Any]]] = {}
        self._conns: dict[int, _RemoteConn] = {}
        self._callbacks: set[asyncio.Task[Any]] = set()
        self._stderr = bytearray()
        self._reader = asyncio.ensure_future(self._read_loop())
        self._stderr_task = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(cls, argv: Sequence[str]) -> Agent:
        """Start an agent with ``argv`` (which runs ``python conformance.py agent``,
        e.g. under ``ip netns exec``) and wait until it is ready."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        agent = cls(proc)
        try:
            async with asyncio.timeout(STEP):
                await agent.call("hello")
        except BaseException:
            await agent.close()
            raise
        return agent

    @staticmethod
    def argv(python: str = sys.executable) -> list[str]:
        """The command that runs an agent (prefix it with ``ip netns exec NS``)."""
        return [python, "-u", __file__, "agent"]

    # -- the wire ----------------------------------------------------------------------------
    def _write(self, msg: dict[str, Any]) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing():
            raise AgentError(f"the agent is gone{self._stderr_note()}")
        stdin.write(json.dumps(msg).encode() + b"\n")

    def send(self, op: str, **args: Any) -> None:
        """A request whose success is not waited for (asyncio's synchronous calls)."""
        self._write({"id": None, "op": op, **args})

    async def call(self, op: str, **args: Any) -> Any:
        """A request and its answer; cancelling the caller cancels the agent's operation."""
        ident = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[ident] = fut
        self._write({"id": ident, "op": op, **args})
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if not fut.done():
                with contextlib.suppress(AgentError):
                    self.send("cancel", target=ident)
                # Wait for the agent to stop the operation, so none is left running.
                with contextlib.suppress(BaseException):
                    async with asyncio.timeout(STEP):
                        await fut
            raise
        finally:
            self._pending.pop(ident, None)

    async def _read_loop(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                line = await stdout.readline()
                if not line:
                    break
                self._dispatch(json.loads(line))
        except Exception as exc:  # a broken line, or a bug here: fail every waiter
            self.failures.append(f"reading the agent failed: {exc!r}")
        gone = AgentError(f"the agent exited{self._stderr_note()}")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(gone)

    async def _read_stderr(self) -> None:
        stderr = self.proc.stderr
        assert stderr is not None
        while chunk := await stderr.read(65536):
            self._stderr += chunk

    def _stderr_note(self) -> str:
        text = self._stderr.decode(errors="replace").strip()
        return f"; its stderr:\n{text}" if text else ""

    def _dispatch(self, msg: dict[str, Any]) -> None:
        event = msg.get("event")
        if event is None:
            fut = self._pending.get(msg["id"])
            if fut is None or fut.done():
                return
            if "error" in msg:
                fut.set_exception(_decode_error(msg["error"]))
            else:
                fut.set_result(msg.get("result"))
        elif event == "accepted":
            server = self._servers.get(msg["server"])
            if server is None:
                # The answer to "listen" is being delivered; its proxy comes next.
                self._early_accepts.setdefault(msg["server"], []).append(msg)
            else:
                self._accept(server, msg)
        elif event == "wbuf":
            conn = self._conns.get(msg["conn"])
            if conn is not None:
                conn.write_buffer_size = msg["size"]
        elif event == "failure":
            self.failures.append(msg["message"])

    def _register_server(self, server: RemoteServer) -> None:
        self._servers[server.sid] = server
        for msg in self._early_accepts.pop(server.sid, []):
            self._accept(server, msg)

    def _accept(self, server: RemoteServer, msg: dict[str, Any]) -> None:
        reader, writer = self._streams(msg["conn"], msg["info"])
        result = server.callback(reader, writer)
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(result)
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    def _streams(self, cid: int, info: dict[str, Any]) -> tuple[RemoteReader, RemoteWriter]:
        conn = _RemoteConn(self, cid, info)
        self._conns[cid] = conn
        return RemoteReader(conn), RemoteWriter(conn)

    async def close(self) -> None:
        """Ask the agent to exit (it aborts its connections); kill it if it does not."""
        with contextlib.suppress(Exception):
            if self.proc.stdin is not None and not self.proc.stdin.is_closing():
                self.proc.stdin.close()
        try:
            async with asyncio.timeout(5):
                returncode = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            self.failures.append("the agent did not exit when its input ended")
        else:
            if returncode != 0:
                self.failures.append(f"the agent exited with status {returncode}")
        for task in (self._reader, self._stderr_task, *self._callbacks):
            task.cancel()
        for task in (self._reader, self._stderr_task):
            with contextlib.suppress(BaseException):
                await task

    def check(self) -> None:
        """Raise if the agent reported a failure of a request nobody waited for."""
        if self.failures:
            raise AgentError("the agent failed: " + "; ".join(self.failures) + self._stderr_note())


class _RemoteConn:
    def __init__(self, agent: Agent, cid: int, info: dict[str, Any]) -> None:
        self.agent = agent
        self.cid = cid
        self.sockname = tuple(info["sockname"])
        self.peername = tuple(info["peername"])
        self.limits = tuple(info["limits"])
        self.write_buffer_size = 0
        self.closing = False


class RemoteReader:
    """The ``asyncio.StreamReader`` reads of a connection in the agent."""

    def __init__(self, conn: _RemoteConn) -> None:
        self._conn = conn

    async def _read(self, op: str, **args: Any) -> bytes:
        result = await self._conn.agent.call(op, conn=self._conn.cid, **args)
        return _unb64(result)

    async def read(self, n: int = -1) -> bytes:
        return await self._read("read", n=n)

    async def readexactly(self, n: int) -> bytes:
        return await self._read("readexactly", n=n)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        return await self._read("readuntil", sep=_b64(separator))

    async def readline(self) -> bytes:
        return await self._read("readline")


class RemoteTransport:
    """The transport calls checks make on a connection in the agent."""

    def __init__(self, conn: _RemoteConn) -> None:
        self._conn = conn

    def abort(self) -> None:
        self._conn.closing = True
        self._conn.agent.send("abort", conn=self._conn.cid)

    def close(self) -> None:
        self._conn.closing = True
        self._conn.agent.send("close", conn=self._conn.cid)

    def is_closing(self) -> bool:
        return self._conn.closing

    def get_write_buffer_size(self) -> int:
        """As of the agent's last write (it reports after each)."""
        return self._conn.write_buffer_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        low, high = self._conn.limits
        return int(low), int(high)

    def can_write_eof(self) -> bool:
        return True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self._conn.sockname
        if name == "peername":
            return self._conn.peername
        return default


class RemoteWriter:
    """The ``asyncio.StreamWriter`` of a connection in the agent."""

    def __init__(self, conn: _RemoteConn) -> None:
        self._conn = conn
        self.transport = RemoteTransport(conn)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._conn.agent.send("write", conn=self._conn.cid, data=_b64(data))

    def writelines(self, data: Sequence[bytes | bytearray | memoryview]) -> None:
        self._conn.agent.send("writelines", conn=self._conn.cid, parts=[_b64(d) for d in data])

    def write_eof(self) -> None:
        self._conn.agent.send("write_eof", conn=self._conn.cid)

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    async def wait_closed(self) -> None:
        await self._conn.agent.call("wait_closed", conn=self._conn.cid)

    async def drain(self) -> None:
        await self._conn.agent.call("drain", conn=self._conn.cid)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)


class RemoteServer:
    """An ``asyncio.Server`` in the agent."""

    def __init__(
        self, agent: Agent, sid: int, addresses: list[tuple[str, int]], callback: Any
    ) -> None:
        self.agent = agent
        self.sid = sid
        self.addresses = addresses
        self.callback = callback
        self._serving = True

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        self._serving = False
        self.agent.send("server_close", server=self.sid)

    async def wait_closed(self) -> None:
        await self.agent.call("server_wait_closed", server=self.sid)

    async def serve_forever(self) -> None:
        try:
            await self.agent.call("serve_forever", server=self.sid)
        finally:
            self._serving = False

    async def __aenter__(self) -> RemoteServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


class RemoteEndpoint:
    """An endpoint whose sockets are the agent's (the kernel of the agent's namespace)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def start_server(self, cb: Any, host: str | None = None, port: int = 0) -> RemoteServer:
        result = await self.agent.call("listen", host=host, port=port)
        addresses = [(str(a[0]), int(a[1])) for a in result["addresses"]]
        server = RemoteServer(self.agent, result["server"], addresses, cb)
        self.agent._register_server(server)
        return server

    async def settle(self) -> None:
        """Return once the agent has handled every request sent before (it handles them in
        order)."""
        await self.agent.call("hello")

    async def open_connection(
        self, host: str, port: int, *, local_port: int | None = None
    ) -> tuple[RemoteReader, RemoteWriter]:
        result = await self.agent.call("connect", host=host, port=port, local_port=local_port)
        return self.agent._streams(result["conn"], result["info"])


# =============================================================================================
# The agent: plain asyncio on the kernel's sockets, run as `python conformance.py agent`
# =============================================================================================
async def _agent_main() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    conns: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    servers: dict[int, asyncio.Server] = {}
    tasks: dict[int, asyncio.Task[None]] = {}
    ids = itertools.count(1)

    def emit(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg).encode() + b"\n")

    def info(writer: asyncio.StreamWriter) -> dict[str, Any]:
        transport = writer.transport
        return {
            "sockname": list(writer.get_extra_info("sockname"))[:2],
            "peername": list(writer.get_extra_info("peername"))[:2],
            "limits": list(transport.get_write_buffer_limits()),
        }

    def on_accept(sid: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            cid = next(ids)
            conns[cid] = (reader, writer)
            emit({"event": "accepted", "server": sid, "conn": cid, "info": info(writer)})

        return accepted

    async def run(msg: dict[str, Any]) -> Any:
        op = msg["op"]
        if op == "hello":
            return None
        if op == "listen":
            sid = next(ids)
            server = await asyncio.start_server(on_accept(sid), msg["host"], msg["port"])
            servers[sid] = server
            names = [list(s.getsockname())[:2] for s in server.sockets]
            return {"server": sid, "addresses": names}
        if op == "server_wait_closed":
            await servers[msg["server"]].wait_closed()
            return None
        if op == "serve_forever":
            await servers[msg["server"]].serve_forever()
            return None
        if op == "connect":
            local = ("0.0.0.0", msg["local_port"]) if msg.get("local_port") else None
            reader, writer = await asyncio.open_connection(
                msg["host"], msg["port"], local_addr=local
            )
            cid = next(ids)
            conns[cid] = (reader, writer)
            return {"conn": cid, "info": info(writer)}
        reader, writer = conns[msg["conn"]]
        if op == "read":
            return _b64(await reader.read(msg["n"]))
        if op == "readexactly":
            return _b64(await reader.readexactly(msg["n"]))
        if op == "readuntil":
            return _b64(await reader.readuntil(_unb64(msg["sep"])))
        if op == "readline":
            return _b64(await reader.readline())
        if op == "drain":
            await writer.drain()
            return None
        if op == "wait_closed":
            await writer.wait_closed()
            return None
        raise ValueError(f"unknown operation {op!r}")

    def run_now(msg: dict[str, Any]) -> None:
        op = msg["op"]
        if op == "cancel":
            task = tasks.get(msg["target"])
            if task is not None:
                task.cancel()
            return
        if op == "server_close":
            servers[msg["server"]].close()
            return
        reader, writer = conns[msg["conn"]]
        if op == "write":
            writer.write(_unb64(msg["data"]))
        elif op == "writelines":
            writer.writelines([_unb64(p) for p in msg["parts"]])
        elif op == "write_eof":
            writer.write_eof()
        elif op == "close":
            writer.close()
        elif op == "abort":
            # CPython 3.11: abort() after a close() that had to flush its buffer first raises
            # AttributeError (the transport already dropped its loop); it is closed anyway.
            with contextlib.suppress(AttributeError):
                writer.transport.abort()
        else:
            raise ValueError(f"unknown operation {op!r}")
        if op in ("write", "writelines"):
            size = writer.transport.get_write_buffer_size()
            emit({"event": "wbuf", "conn": msg["conn"], "size": size})

    async def answer(msg: dict[str, Any]) -> None:
        ident = msg["id"]
        try:
            result = await run(msg)
        except BaseException as exc:  # CancelledError too: it is an answer
            emit({"id": ident, "error": _encode_error(exc)})
        else:
            emit({"id": ident, "result": result})
        finally:
            tasks.pop(ident, None)

    while line := await stdin.readline():
        msg = json.loads(line)
        if msg["id"] is None:
            try:
                run_now(msg)
            except Exception as exc:
                emit({"event": "failure", "message": f"{msg['op']}: {exc!r}"})
        else:
            tasks[msg["id"]] = asyncio.ensure_future(answer(msg))
    for _, writer in conns.values():
        writer.transport.abort()
    for server in servers.values():
        server.close()
    for task in list(tasks.values()):
        task.cancel()
    await asyncio.sleep(0)


if __name__ == "__main__":
    if sys.argv[1:] != ["agent"]:
        sys.exit("usage: python conformance.py agent  (a stream peer driven over stdin/stdout)")
    asyncio.run(_agent_main())
