"""Receive coalescing from the frame: once TCP holds the first full-sized segment of a burst
(software GRO), the frames that continue it are matched against the first frame's headers
and appended before the Ethernet and IPv4 layers, as a driver's GRO works. These tests feed
a real burst (one stack's first flight to another over a memory link) in one batch, as it
is or with one frame changed, and check that what is merged this way is exactly what the
layers would have accepted, and is counted as they count it."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from test_interfaces import FAST

from netstack import Stack
from netstack.link import MemoryLink
from netstack.proto.ip.hooks import Hook, Verdict

DATA = bytes(range(256)) * 80  # 20 KiB: the first flight (ten segments) and the rest
PORT = 7000


@dataclass
class Burst:
    a: Stack
    b: Stack
    v6: bool
    frames: list[bytes]
    received: bytearray
    done: asyncio.Event
    ip_calls: list[int]
    release: Callable[[list[bytes]], None]
    plug: Callable[[], None]


@pytest.fixture(params=["ipv4", "ipv6"])
async def burst(request: pytest.FixtureRequest) -> AsyncIterator[Burst]:
    """``a`` has written DATA to ``b``; its first flight is held in ``frames`` (not yet
    delivered), ``release`` hands frames to ``b``'s link as one batch; what ``a`` sends
    meanwhile waits until ``plug`` joins the cable again. ``ip_calls[0]`` counts the
    TCP datagrams ``b``'s IP layer took."""
    v6 = request.param == "ipv6"
    la, lb = MemoryLink.pair()
    a = await Stack.open(la, ipv4="198.18.0.1/24", ipv6="fd00::1/64", config=FAST)
    b = await Stack.open(lb, ipv4="198.18.0.2/24", ipv6="fd00::2/64", config=FAST)
    server_ip = "fd00::2" if v6 else "198.18.0.2"
    received = bytearray()
    done = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)
        done.set()
        writer.close()

    server = await b.start_server(sink, server_ip, PORT)
    try:
        reader, writer = await a.open_connection(server_ip, PORT)
        await asyncio.sleep(0.05)  # the handshake's last ACK is through
        deliver = la._peer
        assert deliver is not None
        pending: list[bytes] = []
        la._peer = lambda frame, meta=None: pending.append(bytes(frame))
        writer.write(DATA)
        writer.write_eof()
        frames = pending[:]
        del pending[:]
        assert len(frames) >= 8 and all(len(f) == 1514 for f in frames[:8])

        ip_calls = [0]
        eth = b.ethernet
        ethertype = 0x86DD if v6 else 0x0800
        ip_receive = eth.handlers[ethertype]

        def counting(datagram: memoryview, *args: object) -> None:
            # TCP only: a neighbour discovery or MLD message may be on its way meanwhile.
            if datagram[6 if v6 else 9] == 6:
                ip_calls[0] += 1
            ip_receive(datagram, *args)  # type: ignore[arg-type]

        eth.handlers[ethertype] = counting

        def release(batch: list[bytes]) -> None:
            for frame in batch:
                lb._receive(frame)

        def plug() -> None:
            la._peer = deliver
            release(pending)

        yield Burst(a, b, v6, frames, received, done, ip_calls, release, plug)
        writer.close()
    finally:
        server.close()
        await a.close()
        await b.close()


def _ip_checksum(frame: bytearray) -> None:
    frame[24:26] = b"\0\0"
    s = sum(struct.unpack("!10H", frame[14:34]))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    frame[24:26] = (0xFFFF - s).to_bytes(2, "big")


def _counts(burst: Burst) -> tuple[int, int, int, int]:
    b = burst.b
    stats = b.stats()
    ip = b.ipv6 if burst.v6 else b.ipv4
    return (b.ethernet.rx_packets, ip.rx_packets, stats["tcp"]["rx_segments"],
            stats["tcp"]["gro_merged"])  # fmt: skip


async def _finish(burst: Burst) -> None:
    burst.plug()
    async with asyncio.timeout(10):
        await burst.done.wait()
    assert burst.received == DATA


async def test_a_burst_goes_up_through_the_ip_layer_once(burst: Burst) -> None:
    first = burst.frames[:8]  # full-sized, none with PSH
    eth, ip, segments, merged = _counts(burst)
    burst.release(first)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert burst.ip_calls[0] == 1  # the first; the other seven merged from their frames
    # Counted as if each had gone the whole way up.
    assert _counts(burst) == (eth + 8, ip + 8, segments + 8, merged + 7)
    burst.release(burst.frames[8:])
    await _finish(burst)


@pytest.mark.parametrize(
    ("change", "drop"),
    [
        # A payload byte: the TCP checksum is wrong; TCP drops and counts it.
        (lambda f: f.__setitem__(200, f[200] ^ 0x40), ("tcp", "bad_checksum")),
        # The IPv4 header checksum is wrong; the IPv4 layer drops and counts it.
        (lambda f: f.__setitem__(25, f[25] ^ 0x01), ("ipv4", "bad_checksum")),
    ],
)
async def test_a_frame_with_a_bad_checksum_is_not_merged_but_dropped_and_counted(
    burst: Burst, change: Callable[[bytearray], None], drop: tuple[str, str]
) -> None:
    if burst.v6 and drop[0] == "ipv4":
        pytest.skip("IPv6 has no header checksum")
    frames = [bytearray(f) for f in burst.frames]
    change(frames[3])
    layer, reason = drop
    before = burst.b.stats()[layer]["drops"].get(reason, 0)
    burst.release([bytes(f) for f in frames])
    await _finish(burst)  # the sender resends the dropped one
    assert burst.b.stats()[layer]["drops"].get(reason, 0) == before + 1
    assert burst.ip_calls[0] >= 3  # the first, the bad one, and the one after it


async def test_a_frame_unlike_the_first_goes_the_whole_way_up(burst: Burst) -> None:
    """Another TTL or hop limit (a valid datagram all the same): not the first frame's
    headers, so the layers see it, and TCP still coalesces it; the frames after it merge
    again."""
    frames = [bytearray(f) for f in burst.frames[:8]]
    if burst.v6:
        frames[3][21] -= 1
    else:
        frames[3][22] -= 1
        _ip_checksum(frames[3])
    burst.release([bytes(f) for f in frames])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert burst.ip_calls[0] == 2
    assert burst.b.stats()["tcp"]["gro_merged"] >= 7
    burst.release(burst.frames[8:])
    await _finish(burst)


async def test_packet_hooks_see_every_datagram(burst: Burst) -> None:
    seen: list[int] = []

    class Count:
        def run(self, hook: Hook, datagram: bytearray, ingress: int | None,
                egress: int | None, now: float) -> Verdict:  # fmt: skip
            if hook is Hook.INPUT and datagram[6 if burst.v6 else 9] == 6:
                seen.append(len(datagram))
            return Verdict.ACCEPT

    burst.b.packet_hooks = Count()
    burst.release(burst.frames[:8])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(seen) == burst.ip_calls[0] >= 8  # each datagram the IP layer took, none merged
    burst.release(burst.frames[8:])
    await _finish(burst)
