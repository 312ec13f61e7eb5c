"""Round-trip times on one machine: netstack's ICMP echo over a memory link against the
kernel, in microseconds (``value`` is the median; ``p99`` and the rest are in the line).

Implementations (``impl``) and precisely what each number is:

- ``netstack-memory`` (``proto`` icmp): :meth:`netstack.Stack.ping` from 198.18.0.1 to
  198.18.0.2 over ``MemoryLink.pair()``, back to back. Timed by ``Stack.ping`` itself with
  ``time.perf_counter``: from just before the echo request is built to the moment the reply
  is matched in the receive callback (the awaiting task's wake-up is not included). Both
  stacks share the loop; each direction costs one loop turn (the memory link delivers in a
  callback).
- ``netstack-memory`` (``proto`` udp): a UDP echo over the same pair with asyncio's datagram
  API, timed the same way (just before ``sendto`` to the client's ``datagram_received``).
- ``kernel-asyncio-loopback`` (``proto`` udp): the same UDP echo through the kernel over
  127.0.0.1 with ``loop.create_datagram_endpoint``. This is the comparison for netstack's
  ping: asyncio has no ICMP endpoint, and the kernel's unprivileged ICMP "ping sockets" are
  off unless ``net.ipv4.ping_group_range`` admits the caller's group (it is ``1 0``,
  nobody, by default), so there is no comparable ICMP path for an asyncio program; UDP
  echo is the nearest equivalent: one datagram each way through the kernel and one
  user-space handler on the far side, where netstack's ping has none.
- ``kernel-veth`` (``proto`` icmp, root only): iputils ``ping -c 200 -i 0.002`` from one
  namespace to another over a veth pair: kernel to kernel, the echo answered inside the
  kernel, the reply time-stamped by the kernel on receipt. Per-reply times are parsed from
  ping's output (three decimals of a millisecond); ``ping_summary_ms`` is its own rtt line.
"""

from __future__ import annotations

from typing import Any

from netstack import Stack
from netstack.link import MemoryLink

from .common import Emitter, Settings, deadline_loop, log, rtt_summary, veth_unavailable_reason
from .sandbox import KERNEL_B, ping, veth_pair
from .udp import Echo, EchoClient, echo_rtts, kernel_fields, kernel_loopback, netstack_memory

__all__ = ["run_ping"]

#: Round trips before timing starts.
WARMUP = 50
#: Bytes of echo data: ping's default 56, and the same for the UDP echoes.
SIZE = 56
#: No RTT series may take longer than this.
MAX_SECONDS = 10.0


async def netstack_ping_rtts(count: int) -> list[float]:
    a_link, b_link = MemoryLink.pair()
    async with (
        await Stack.open(a_link, ipv4="198.18.0.1/24") as a,
        await Stack.open(b_link, ipv4="198.18.0.2/24"),
    ):
        for _ in range(WARMUP):
            await a.ping("198.18.0.2", size=SIZE)
        rtts: list[float] = []

        async def step() -> None:
            rtts.append(await a.ping("198.18.0.2", size=SIZE))

        await deadline_loop(step, count=count, seconds=MAX_SECONDS)
        return rtts


async def udp_echo_rtts(factory: Any, count: int) -> list[float]:
    payload = bytes(SIZE)
    async with factory(Echo, EchoClient) as ep:
        await echo_rtts(ep, payload, WARMUP, MAX_SECONDS)
        return await echo_rtts(ep, payload, count, MAX_SECONDS)


async def run_ping(emit: Emitter, settings: Settings, *, with_veth: bool) -> None:
    bench, unit = "ping_rtt", "us"
    log(f"ping_rtt netstack-memory on {emit.loop}")
    rtts = await netstack_ping_rtts(settings.pings)
    emit.emit_summary(
        bench,
        "netstack-memory",
        unit,
        rtt_summary(rtts),
        proto="icmp",
        size=SIZE,
        what="Stack.ping() over MemoryLink.pair(), back to back",
    )
    for impl, factory, what in (
        ("netstack-memory", netstack_memory, "UDP echo over MemoryLink.pair(), asyncio API"),
        ("kernel-asyncio-loopback", kernel_loopback, "UDP echo over 127.0.0.1, asyncio API"),
    ):
        log(f"ping_rtt {impl} udp echo on {emit.loop}")
        rtts = await udp_echo_rtts(factory, settings.pings)
        emit.emit_summary(
            bench,
            impl,
            unit,
            rtt_summary(rtts),
            proto="udp",
            size=SIZE,
            what=what,
            **kernel_fields(impl, emit.loop),
        )
    if not with_veth:
        return
    count = 200 if not settings.quick else 100
    interval = 0.002
    reason = veth_unavailable_reason()
    if reason is not None:
        emit.skip(bench, "kernel-veth", unit, reason, proto="icmp", loop=None)
        return
    log("ping_rtt kernel-veth (iputils ping between two namespaces)")
    with veth_pair() as pair:
        result = await ping(pair.a, KERNEL_B, count, interval)
    emit.emit_summary(
        bench,
        "kernel-veth",
        unit,
        rtt_summary(result.rtts),
        proto="icmp",
        size=SIZE,
        what=f"iputils ping -c {count} -i {interval} between two namespaces over veth",
        transmitted=result.transmitted,
        received=result.received,
        ping_summary_ms=result.summary_ms,
        loop=None,
    )
