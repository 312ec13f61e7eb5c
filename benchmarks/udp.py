"""UDP over a memory link against UDP through the kernel's loopback, both on asyncio's
datagram API and on the same event loop.

``udp_rate`` (datagrams/s, one way): a sender calls ``transport.sendto(payload, addr)`` in a
loop and awaits ``asyncio.sleep(0)`` after every ``yield_every`` datagrams so that the
receiver runs; the receiver's ``DatagramProtocol.datagram_received`` counts. Only received
datagrams count: ``value`` is datagrams received per second of sending (datagrams still in
flight when sending stops are counted after a short drain). Before the timed repeats, a short
sweep over ``yield_every`` in 1, 4, 16, 64 picks the batch that delivers most for that
implementation (the same procedure for both), because the best batch differs: asyncio's
selector transport reads one datagram per readiness event, so on the kernel path a batch
larger than one overflows the socket buffer, while netstack's memory link hands over every
queued frame in one callback. The sweep's rates are in the line (``sweep``).

``udp_echo`` (round trips/s): one request in flight at a time; the client sends, the echo
server's ``datagram_received`` sends the same bytes back, the client's ``datagram_received``
completes a future the client awaits, and then it sends the next.

Implementations (``impl``):

- ``netstack-memory``: two :class:`netstack.Stack` instances, 198.18.0.1/24 and
  198.18.0.2/24, joined by ``MemoryLink.pair()``; sender and receiver run on the same loop.
- ``kernel-asyncio-loopback``: ``loop.create_datagram_endpoint`` sockets on 127.0.0.1, the
  kernel's UDP over the loopback interface, on the same loop type in the same process. On
  asyncio's own loop its receive side reads with ``recvfrom(256 KiB)``, whose cost depends on
  the allocator's state; ``recvfrom_256k_penalty_us`` in those lines says what it was in
  that run (see :func:`recvfrom_penalty`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from netstack import Stack
from netstack.link import MemoryLink

from .common import Emitter, Settings, deadline_loop, log, repeat_async, summarize

__all__ = ["Endpoints", "kernel_loopback", "netstack_memory", "run_udp"]

IMPL_NETSTACK = "netstack-memory"
IMPL_KERNEL = "kernel-asyncio-loopback"
PAYLOADS = (64, 1400)
SWEEP = (1, 4, 16, 64)
#: No repeat sends more than this many datagrams, whatever its duration.
MAX_DATAGRAMS = 20_000_000
#: How long the receiver may take to catch up after sending stops.
DRAIN_SECONDS = 0.2


class Counter(asyncio.DatagramProtocol):
    """Counts received datagrams and bytes."""

    def __init__(self) -> None:
        self.datagrams = 0
        self.bytes = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        self.bytes += len(data)


class Echo(asyncio.DatagramProtocol):
    """Sends every datagram back where it came from."""

    transport: asyncio.DatagramTransport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class EchoClient(asyncio.DatagramProtocol):
    """Completes ``waiter`` with ``time.perf_counter()`` when a reply arrives, i.e. in the
    receive callback, before the waiting task wakes up (as :meth:`Stack.ping` does)."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future[float] | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(time.perf_counter())


@dataclass
class Endpoints:
    """A sender and a receiver (which counts), or a client and an echo server."""

    sender: asyncio.DatagramTransport
    receiver: Any  # the receiver's protocol: Counter or Echo
    client: Any  # the sender's protocol
    address: tuple[str, int]  # where the sender sends


EndpointsFactory = Callable[[Callable[[], Any], Callable[[], Any]], Any]


@asynccontextmanager
async def netstack_memory(
    receiver_factory: Callable[[], Any], client_factory: Callable[[], Any]
) -> AsyncIterator[Endpoints]:
    """Two stacks on a memory cable; the receiver listens on 198.18.0.2:9000."""
    a_link, b_link = MemoryLink.pair()
    async with AsyncExitStack() as stack:
        a = await Stack.open(a_link, ipv4="198.18.0.1/24")
        stack.push_async_callback(a.close)
        b = await Stack.open(b_link, ipv4="198.18.0.2/24")
        stack.push_async_callback(b.close)
        rx_transport, receiver = await b.create_datagram_endpoint(
            receiver_factory, local_addr=("198.18.0.2", 9000)
        )
        stack.callback(rx_transport.close)
        tx_transport, client = await a.create_datagram_endpoint(
            client_factory, local_addr=("198.18.0.1", 0)
        )
        stack.callback(tx_transport.close)
        await a.ping("198.18.0.2")  # resolves ARP both ways before anything is timed
        yield Endpoints(tx_transport, receiver, client, ("198.18.0.2", 9000))


@asynccontextmanager
async def kernel_loopback(
    receiver_factory: Callable[[], Any], client_factory: Callable[[], Any]
) -> AsyncIterator[Endpoints]:
    """Two asyncio datagram endpoints on 127.0.0.1 (kernel sockets)."""
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        rx_transport, receiver = await loop.create_datagram_endpoint(
            receiver_factory, local_addr=("127.0.0.1", 0)
        )
        stack.callback(rx_transport.close)
        address = rx_transport.get_extra_info("sockname")[:2]
        tx_transport, client = await loop.create_datagram_endpoint(
            client_factory, local_addr=("127.0.0.1", 0)
        )
        stack.callback(tx_transport.close)
        yield Endpoints(tx_transport, receiver, client, address)
        await asyncio.sleep(0)  # let connection_lost run before the loop moves on


def recvfrom_penalty(rounds: int = 2000) -> float:
    """Microseconds that one ``recvfrom(256 KiB)`` costs more than a ``recvfrom(2 KiB)`` of
    the same small datagram in this process now (blocking loopback sockets).

    asyncio's selector transports read with ``max_size = 256 * 1024``; a bytes object that
    large is at glibc's mmap threshold, and depending on the allocator's state each read can
    map and unmap the buffer (python/cpython#85451 describes the regime). The penalty is
    reported beside the ``kernel-asyncio-loopback`` lines on the asyncio loop, because it
    moves them by a factor of two or more from one process to the next.
    """
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        addr = a.getsockname()
        payload = bytes(64)
        cost = {}
        for size in (2048, 256 * 1024):
            start = time.perf_counter()
            for _ in range(rounds):
                b.sendto(payload, addr)
                a.recvfrom(size)
            cost[size] = (time.perf_counter() - start) / rounds
        return round((cost[256 * 1024] - cost[2048]) * 1e6, 2)
    finally:
        a.close()
        b.close()


def kernel_fields(impl: str, loop: str | None) -> dict[str, Any]:
    """Extra fields of a line: the recvfrom penalty for asyncio's own loop (see above)."""
    if impl == IMPL_KERNEL and loop == "asyncio":
        return {"recvfrom_256k_penalty_us": recvfrom_penalty()}
    return {}


IMPLS: dict[str, EndpointsFactory] = {
    IMPL_NETSTACK: netstack_memory,
    IMPL_KERNEL: kernel_loopback,
}


# -- one-way rate -----------------------------------------------------------------------------
async def _drain(counter: Counter) -> None:
    """Let the receiver take what is still in flight: until the count stops moving for a
    few loop turns, at most :data:`DRAIN_SECONDS`."""
    end = time.perf_counter() + DRAIN_SECONDS
    last, still = -1, 0
    while time.perf_counter() < end and still < 20:
        await asyncio.sleep(0)
        if counter.datagrams == last:
            still += 1
            if still % 5 == 0:
                await asyncio.sleep(0.001)  # a socket may only report readable later
        else:
            last, still = counter.datagrams, 0


async def blast(
    ep: Endpoints, payload: bytes, yield_every: int, seconds: float
) -> tuple[int, int, float]:
    """Send for ``seconds``; returns (sent, received, seconds spent sending)."""
    counter: Counter = ep.receiver
    sendto = ep.sender.sendto
    addr = ep.address
    batch = range(yield_every)
    before = counter.datagrams
    sent = 0
    start = time.perf_counter()
    end = start + seconds
    while sent < MAX_DATAGRAMS:
        for _ in batch:
            sendto(payload, addr)
        sent += yield_every
        await asyncio.sleep(0)
        if time.perf_counter() >= end:
            break
    elapsed = time.perf_counter() - start
    await _drain(counter)
    return sent, counter.datagrams - before, elapsed


async def measure_rate(
    factory: EndpointsFactory, payload_len: int, settings: Settings
) -> dict[str, Any]:
    payload = bytes(payload_len)
    async with factory(Counter, asyncio.DatagramProtocol) as ep:
        sweep: dict[str, float] = {}
        for k in SWEEP:
            _, received, elapsed = await blast(ep, payload, k, settings.sweep_seconds)
            sweep[str(k)] = round(received / elapsed, 1)
        best = max(SWEEP, key=lambda k: sweep[str(k)])
        runs = await repeat_async(
            lambda: blast(ep, payload, best, settings.seconds), settings.repeats
        )
    sent_total = sum(sent for sent, _, _ in runs)
    received_total = sum(received for _, received, _ in runs)
    rates = [received / elapsed for _, received, elapsed in runs]
    return {
        "summary": summarize(rates),
        "yield_every": best,
        "sweep": sweep,
        "sent": sent_total,
        "received": received_total,
        "loss": round(1 - received_total / sent_total, 4) if sent_total else None,
    }


# -- request/response -------------------------------------------------------------------------
def _round_trip(ep: Endpoints, payload: bytes) -> Callable[[], Awaitable[float]]:
    """A step that sends one request and waits for its echo; it returns the round-trip
    time, from just before ``sendto`` to the client's ``datagram_received``."""
    loop = asyncio.get_running_loop()
    client: EchoClient = ep.client
    sendto = ep.sender.sendto
    addr = ep.address

    async def step() -> float:
        waiter = client.waiter = loop.create_future()
        sent = time.perf_counter()
        sendto(payload, addr)
        received: float = await asyncio.wait_for(waiter, 1.0)
        return received - sent

    return step


async def echo_round_trips(ep: Endpoints, payload: bytes, seconds: float) -> tuple[int, float]:
    """Sequential echo round trips for ``seconds``; returns (round trips, seconds)."""
    return await deadline_loop(_round_trip(ep, payload), count=MAX_DATAGRAMS, seconds=seconds)


async def echo_rtts(ep: Endpoints, payload: bytes, count: int, seconds: float) -> list[float]:
    """Round-trip times of ``count`` sequential echoes (at most ``seconds`` in all)."""
    step = _round_trip(ep, payload)
    rtts: list[float] = []

    async def timed() -> None:
        rtts.append(await step())

    await deadline_loop(timed, count=count, seconds=seconds)
    return rtts


async def measure_echo(
    factory: EndpointsFactory, payload_len: int, settings: Settings
) -> dict[str, Any]:
    payload = bytes(payload_len)
    async with factory(Echo, EchoClient) as ep:
        await echo_round_trips(ep, payload, settings.sweep_seconds)  # warm up
        runs = await repeat_async(
            lambda: echo_round_trips(ep, payload, settings.seconds), settings.repeats
        )
    return {
        "summary": summarize([n / elapsed for n, elapsed in runs]),
        "round_trips": sum(n for n, _ in runs),
    }


# -- the group --------------------------------------------------------------------------------
async def run_udp(emit: Emitter, settings: Settings, names: set[str]) -> None:
    """``udp_rate`` and ``udp_echo`` for both implementations (those in ``names``)."""
    if "udp_rate" in names:
        for payload in PAYLOADS:
            for impl, factory in IMPLS.items():
                log(f"udp_rate {impl} payload {payload} on {emit.loop}")
                r = await measure_rate(factory, payload, settings)
                emit.emit_summary(
                    "udp_rate",
                    impl,
                    "datagrams/s",
                    r.pop("summary"),
                    payload=payload,
                    seconds=settings.seconds,
                    **r,
                    **kernel_fields(impl, emit.loop),
                )
    if "udp_echo" in names:
        for payload in PAYLOADS:
            for impl, factory in IMPLS.items():
                log(f"udp_echo {impl} payload {payload} on {emit.loop}")
                r = await measure_echo(factory, payload, settings)
                emit.emit_summary(
                    "udp_echo",
                    impl,
                    "round trips/s",
                    r.pop("summary"),
                    payload=payload,
                    seconds=settings.seconds,
                    **r,
                    **kernel_fields(impl, emit.loop),
                )
