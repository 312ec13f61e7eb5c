"""What a connection costs the stack: acknowledgements carried by the answer a frame woke."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
