"""What a connection costs the stack: acknowledgements carried by the answer a frame woke,
and received data handed to asyncio's stream reader without a copy of netstack's own (the
reader's is the only one), intact also when the link reuses its receive buffer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from netstack import Stack
from netstack.link import MemoryLink
from netstack.proto.tcp.wire import Flags

A, B = "198.18.0.1", "198.18.0.2"


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Stack, Stack, MemoryLink, MemoryLink]]:
    a_link, b_link = MemoryLink.pair()
    a = await Stack.open(a_link, ipv4=f"{A}/24")
    b = await Stack.open(b_link, ipv4=f"{B}/24")
    try:
        await a.ping(B)
        yield a, b, a_link, b_link
    finally:
        await a.close()
        await b.close()


def _sent_segments(stack: Stack) -> list[tuple[int, int]]:
    """Records (flags, payload length) of every segment ``stack`` sends from now on."""
    sent: list[tuple[int, int]] = []
    tcp = stack.tcp
    transmit = tcp._transmit

    def recording(route, sport, dport, seg, now):  # type: ignore[no-untyped-def]
        sent.append((seg.flags, len(seg.payload)))
        transmit(route, sport, dport, seg, now)

    tcp._transmit = recording  # type: ignore[method-assign]
    return sent


async def test_answer_woken_by_a_burst_carries_its_ack(
    pair: tuple[Stack, Stack, MemoryLink, MemoryLink],
) -> None:
    """A burst that starts with a pure ACK and ends with a request: the server's answer,
    written by the handler the request woke, acknowledges the request; no pure ACK goes
    before it (the burst's first frame used to schedule the ACK flush ahead of the
    handler)."""
    a, b, _, b_link = pair
    answered = asyncio.Event()
    go = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await go.wait()
        writer.write(b"hello")  # the client's stack acknowledges it with a pure ACK
        request = await reader.readexactly(5)
        writer.write(request.upper())
        answered.set()
        await reader.read()
        writer.close()

    server = await b.start_server(handler, B, 7)
    reader, writer = await a.open_connection(B, 7)
    for _ in range(5):
        await asyncio.sleep(0)  # the handshake's last ACK reaches the server
    # Hold what reaches the server, then deliver the client's pure ACK of the greeting and
    # its request in one burst, as a kernel peer's quick ACK and its next segment often
    # arrive.
    held: list[bytes | bytearray] = []
    enqueue = b_link._enqueue
    b_link._enqueue = held.append  # type: ignore[method-assign]
    go.set()
    for _ in range(5):
        await asyncio.sleep(0)  # the greeting arrives, nobody reads yet: a pure ACK
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
    writer.write(b"abcde")
    for _ in range(5):
        await asyncio.sleep(0)
    b_link._enqueue = enqueue  # type: ignore[method-assign]
    assert len(held) == 2
    sent = _sent_segments(b)
    for frame in held:
        enqueue(frame)
    await asyncio.wait_for(answered.wait(), 5)
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"ABCDE"
    for _ in range(5):
        await asyncio.sleep(0)
    pure_acks = [s for s in sent if s == (Flags.ACK, 0)]
    assert sent and sent[0] == (Flags.ACK | Flags.PSH, 5), sent
    assert not pure_acks, sent
    writer.close()
    server.close()


def _reuse_receive_buffer(link: MemoryLink) -> None:
    """Make ``link`` deliver every frame as a view of one buffer, overwritten after each
    callback (what a link reading into a reused buffer does)."""
    buf = bytearray(65536)
    deliver: Callable[[memoryview], None] = link._deliver  # type: ignore[assignment]

    def from_reused(frame: bytes | bytearray | memoryview) -> None:
        n = len(frame)
        buf[:n] = frame
        deliver(memoryview(buf)[:n])
        buf[:n] = b"\xee" * n

    link._deliver = from_reused  # type: ignore[method-assign]


async def test_stream_reader_gets_the_segment_itself(
    pair: tuple[Stack, Stack, MemoryLink, MemoryLink],
) -> None:
    """asyncio's StreamReaderProtocol is handed the received segment's view (its reader's
    copy is the only one); the data arrives intact from a link that reuses its buffer."""
    a, b, a_link, b_link = pair
    _reuse_receive_buffer(a_link)
    _reuse_receive_buffer(b_link)
    fed: list[type] = []
    payload = bytes(range(256)) * 400

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        feed = reader.feed_data

        def recording(data: bytes) -> None:
            fed.append(type(data))
            feed(data)

        reader.feed_data = recording  # type: ignore[method-assign]
        writer.write(await reader.readexactly(len(payload)))
        writer.close()

    server = await b.start_server(handler, B, 7)
    reader, writer = await a.open_connection(B, 7)
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 10) == payload
    assert fed and set(fed) == {memoryview}
    writer.close()
    server.close()


class _Keeper(asyncio.Protocol):
    """Keeps every object data_received is given."""

    def __init__(self) -> None:
        self.chunks: list[object] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)


async def test_protocol_that_keeps_its_data_gets_bytes(
    pair: tuple[Stack, Stack, MemoryLink, MemoryLink],
) -> None:
    """Any other protocol gets bytes of its own (as from asyncio's transports), also data
    held while reading was paused, whatever the link does with its buffer afterwards."""
    a, b, a_link, b_link = pair
    _reuse_receive_buffer(a_link)
    _reuse_receive_buffer(b_link)
    keeper = _Keeper()
    server = await b.create_server(lambda: keeper, B, 9)
    transport, _ = await a.create_connection(asyncio.Protocol, B, 9)
    while keeper.transport is None:
        await asyncio.sleep(0.01)
    first = bytes(range(200))
    transport.write(first)
    while sum(len(c) for c in keeper.chunks) < len(first):  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
    keeper.transport.pause_reading()
    second = bytes(range(255, 55, -1)) * 30
    transport.write(second)
    await asyncio.sleep(0.1)
    keeper.transport.resume_reading()
    total = len(first) + len(second)
    for _ in range(500):
        if sum(len(c) for c in keeper.chunks) >= total:  # type: ignore[arg-type]
            break
        await asyncio.sleep(0.01)
    assert all(type(c) is bytes for c in keeper.chunks)
    assert b"".join(keeper.chunks) == first + second  # type: ignore[arg-type]
    transport.close()
    server.close()
