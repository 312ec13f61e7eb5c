"""netstack on a TAP device against the Linux kernel, and the kernel against itself over a
veth pair for comparison. Root only; without it each line says ``skipped``.

The sandbox: :func:`netstack.netns.open_tap_in_namespace` puts the kernel's side of a TAP
device into a fresh namespace as 198.18.0.1/24; netstack's :class:`~netstack.Stack` holds the
other end as 198.18.0.2/24. The comparison is two fresh namespaces joined by a veth pair,
198.18.0.1/24 and 198.18.0.2/24. The kernel-side UDP sender and receiver are the same small
Python programs (:mod:`benchmarks.peer`) in both setups.

``tap_udp_rate`` (datagrams/s; ``direction`` says which way):

- ``netstack->kernel``, impl ``netstack-tap``: netstack's ``transport.sendto`` in a loop
  (``asyncio.sleep(0)`` every :data:`YIELD_EVERY` datagrams) to a ``peer.py recv`` in the
  namespace, which counts what reaches its socket. ``value`` = datagrams the kernel-side
  receiver counted / seconds netstack spent sending. ``sent`` is what netstack handed to the
  device, ``kernel_rx_packets`` what the kernel's interface counted.
- ``kernel->netstack``, impl ``netstack-tap``: ``peer.py send`` in the namespace blasts UDP
  at 198.18.0.2:9000 as fast as one Python thread can (no rate limit); netstack's
  ``DatagramProtocol`` counts. ``value`` = datagrams netstack delivered / seconds the sender
  sent; ``sent`` and ``kernel_tx_dropped`` (frames the TAP queue dropped because netstack did
  not read them in time) show the offered load and where the rest went.
- ``kernel->kernel``, impl ``kernel-veth``: ``peer.py send`` in one namespace to ``peer.py
  recv`` in the other; ``value`` = received / seconds sent. The ceiling of the two Python
  peers themselves, so both TAP directions are measured against it.

``tap_ping_rtt`` (microseconds; median in ``value``, p99 in the line; ``interval`` is the
gap between echo requests, 10 ms and 2 ms for every direction, since on an idle machine the
wake-up from that gap is part of what is measured):

- ``netstack->kernel``, ``netstack-tap``: :meth:`Stack.ping` to 198.18.0.1, timed by
  ``Stack.ping`` (request built to reply matched); also back to back (``interval`` 0).
- ``kernel->netstack``, ``netstack-tap``: iputils ``ping -i INTERVAL`` in the namespace to
  198.18.0.2; netstack answers in user space, on the event loop.
- ``kernel->kernel``, ``kernel-veth``: the same ``ping`` between the veth namespaces.

ARP is resolved before anything is timed (a ping each way).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from netstack import Stack
from netstack.link import TapLink
from netstack.netns import Namespace, open_tap_in_namespace, tap_unavailable_reason

from .common import Emitter, Settings, log, rtt_summary, summarize, veth_unavailable_reason
from .peer import STOP
from .sandbox import (
    KERNEL6_A,
    KERNEL6_B,
    KERNEL_A,
    KERNEL_B,
    interface_counters,
    ping,
    start_peer,
    veth_pair,
)
from .udp import Counter

__all__ = ["run_tap", "run_veth"]

PORT = 9000
PAYLOADS = (64, 1400)
#: netstack's sender yields to the loop after this many datagrams.
YIELD_EVERY = 64
#: Echo requests are sent this often (``ping -i``), in every direction; netstack's own
#: pings also run back to back.
PING_INTERVALS = (0.01, 0.002)
MAX_DATAGRAMS = 20_000_000
STARTUP_TIMEOUT = 10.0


@dataclass
class TapSandbox:
    ns: Namespace
    link: TapLink
    stack: Stack


@asynccontextmanager
async def tap_sandbox(offload: bool | None = None) -> AsyncIterator[TapSandbox]:
    """A namespace with the kernel at 198.18.0.1/24 and fd00:198:18::1/64 on a TAP device
    and netstack at 198.18.0.2/24 and fd00:198:18::2/64 on its other end; all of it removed
    on the way out. ``offload``: the TAP link's offloads (``TapLink.open``'s default when
    ``None``)."""
    async with AsyncExitStack() as exits:
        ns = Namespace.create()
        exits.callback(ns.delete)  # runs last: after the stack has closed the device
        link = open_tap_in_namespace(
            ns, kernel_ipv4=f"{KERNEL_A}/24", kernel_ipv6=f"{KERNEL6_A}/64", offload=offload
        )
        exits.callback(link.close)
        stack = await Stack.open(link, ipv4=f"{KERNEL_B}/24", ipv6=f"{KERNEL6_B}/64")
        exits.push_async_callback(stack.close)
        await stack.ping(KERNEL_A, timeout=2.0)  # ARP both ways
        await stack.ping(KERNEL6_A, timeout=2.0)  # and neighbour discovery
        yield TapSandbox(ns, link, stack)


# -- netstack -> kernel -----------------------------------------------------------------------
async def _netstack_to_kernel_once(
    box: TapSandbox, payload: bytes, seconds: float
) -> dict[str, Any]:
    peer = start_peer(box.ns, "recv", KERNEL_A, str(PORT), str(seconds + 10.0))
    try:
        await peer.line(STARTUP_TIMEOUT)  # "ready"
        transport, _ = await box.stack.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(KERNEL_B, 0)
        )
        try:
            before = interface_counters(box.ns, box.link.name)
            sendto = transport.sendto
            addr = (KERNEL_A, PORT)
            batch = range(YIELD_EVERY)
            sent = 0
            start = time.perf_counter()
            end = start + seconds
            while sent < MAX_DATAGRAMS:
                for _ in batch:
                    sendto(payload, addr)
                sent += YIELD_EVERY
                await asyncio.sleep(0)
                if time.perf_counter() >= end:
                    break
            elapsed = time.perf_counter() - start
            await asyncio.sleep(0.05)
            after = interface_counters(box.ns, box.link.name)
            for _ in range(5):
                sendto(STOP, addr)
                await asyncio.sleep(0.02)
            result = await peer.json(timeout=5.0)
        finally:
            transport.close()
    finally:
        peer.kill()
    return {
        "rate": result["received"] / elapsed,
        "sent": sent,
        "received": result["received"],
        "kernel_rx_packets": after["rx_packets"] - before["rx_packets"],
    }


# -- kernel -> netstack -----------------------------------------------------------------------
async def _kernel_to_netstack_once(
    box: TapSandbox, counter: Counter, size: int, seconds: float
) -> dict[str, Any]:
    before = interface_counters(box.ns, box.link.name)
    start_count = counter.datagrams
    peer = start_peer(box.ns, "send", KERNEL_B, str(PORT), str(seconds), str(size))
    try:
        result = await peer.json(timeout=seconds + STARTUP_TIMEOUT)
    finally:
        peer.kill()
    await asyncio.sleep(0.05)  # what the TAP queue still holds
    after = interface_counters(box.ns, box.link.name)
    received = counter.datagrams - start_count
    return {
        "rate": received / result["seconds"],
        "sent": result["sent"],
        "send_errors": result["errors"],
        "sent_rate": round(result["sent"] / result["seconds"], 1),
        "received": received,
        "kernel_tx_dropped": after["tx_dropped"] - before["tx_dropped"],
    }


def _totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the counters of the repeats; the rates go into the summary."""
    out: dict[str, Any] = {}
    for key in runs[0]:
        if key in ("rate", "sent_rate"):
            continue
        out[key] = sum(r[key] for r in runs)
    if "sent_rate" in runs[0]:
        out["sent_rate"] = summarize([r["sent_rate"] for r in runs])["value"]
    if out.get("sent"):
        out["loss"] = round(1 - out["received"] / out["sent"], 4)
    return out


async def _ping_rtts(stack: Stack, count: int, interval: float) -> list[float]:
    rtts: list[float] = []
    deadline = time.perf_counter() + 10.0 + count * interval
    while len(rtts) < count and time.perf_counter() < deadline:
        rtts.append(await stack.ping(KERNEL_A, timeout=1.0))
        await asyncio.sleep(interval)
    return rtts


async def run_tap(emit: Emitter, settings: Settings, names: set[str]) -> None:
    """The netstack-on-TAP lines (``tap_udp_rate``, ``tap_ping_rtt``)."""
    reason = tap_unavailable_reason()
    if reason is not None:
        for bench, unit in (("tap_udp_rate", "datagrams/s"), ("tap_ping_rtt", "us")):
            if bench in names:
                for direction in ("netstack->kernel", "kernel->netstack"):
                    emit.skip(bench, "netstack-tap", unit, reason, direction=direction)
        return
    async with tap_sandbox() as box:
        if "tap_udp_rate" in names:
            for size in PAYLOADS:
                log(f"tap_udp_rate netstack->kernel payload {size} on {emit.loop}")
                payload = bytes(size)
                runs = [
                    await _netstack_to_kernel_once(box, payload, settings.tap_seconds)
                    for _ in range(settings.repeats)
                ]
                emit.emit_summary(
                    "tap_udp_rate",
                    "netstack-tap",
                    "datagrams/s",
                    summarize([r["rate"] for r in runs]),
                    direction="netstack->kernel",
                    payload=size,
                    seconds=settings.tap_seconds,
                    yield_every=YIELD_EVERY,
                    **_totals(runs),
                )
            transport, counter = await box.stack.create_datagram_endpoint(
                Counter, local_addr=(KERNEL_B, PORT)
            )
            try:
                for size in PAYLOADS:
                    log(f"tap_udp_rate kernel->netstack payload {size} on {emit.loop}")
                    runs = [
                        await _kernel_to_netstack_once(box, counter, size, settings.tap_seconds)
                        for _ in range(settings.repeats)
                    ]
                    emit.emit_summary(
                        "tap_udp_rate",
                        "netstack-tap",
                        "datagrams/s",
                        summarize([r["rate"] for r in runs]),
                        direction="kernel->netstack",
                        payload=size,
                        seconds=settings.tap_seconds,
                        **_totals(runs),
                    )
            finally:
                transport.close()
        if "tap_ping_rtt" in names:
            for interval in (*PING_INTERVALS, 0.0):
                log(f"tap_ping_rtt netstack->kernel interval {interval} on {emit.loop}")
                rtts = await _ping_rtts(box.stack, settings.tap_pings, interval)
                every = f"one every {interval} s" if interval else "back to back"
                emit.emit_summary(
                    "tap_ping_rtt",
                    "netstack-tap",
                    "us",
                    rtt_summary(rtts),
                    direction="netstack->kernel",
                    interval=interval,
                    what=f"Stack.ping() to the kernel over TAP, {every}",
                )
            for interval in PING_INTERVALS:
                log(f"tap_ping_rtt kernel->netstack interval {interval} on {emit.loop}")
                result = await ping(box.ns, KERNEL_B, settings.tap_pings, interval)
                emit.emit_summary(
                    "tap_ping_rtt",
                    "netstack-tap",
                    "us",
                    rtt_summary(result.rtts),
                    direction="kernel->netstack",
                    interval=interval,
                    what=f"iputils ping -i {interval} from the kernel to netstack over TAP",
                    transmitted=result.transmitted,
                    received=result.received,
                    ping_summary_ms=result.summary_ms,
                )


async def run_veth(emit: Emitter, settings: Settings, names: set[str]) -> None:
    """The kernel-to-kernel comparison lines for the TAP measurements (no event loop is
    involved on either side, so ``loop`` is null)."""
    reason = veth_unavailable_reason()
    if reason is not None:
        for bench, unit in (("tap_udp_rate", "datagrams/s"), ("tap_ping_rtt", "us")):
            if bench in names:
                emit.skip(bench, "kernel-veth", unit, reason, direction="kernel->kernel", loop=None)
        return
    with veth_pair() as pair:
        if "tap_udp_rate" in names:
            for size in PAYLOADS:
                log(f"tap_udp_rate kernel-veth payload {size}")
                runs = []
                for _ in range(settings.repeats):
                    receiver = start_peer(
                        pair.b, "recv", KERNEL_B, str(PORT), str(settings.tap_seconds + 10.0)
                    )
                    try:
                        await receiver.line(STARTUP_TIMEOUT)
                        sender = start_peer(
                            pair.a, "send", KERNEL_B, str(PORT), str(settings.tap_seconds),
                            str(size), "--stop",
                        )  # fmt: skip
                        try:
                            sent = await sender.json(settings.tap_seconds + STARTUP_TIMEOUT)
                        finally:
                            sender.kill()
                        got = await receiver.json(timeout=5.0)
                    finally:
                        receiver.kill()
                    runs.append(
                        {
                            "rate": got["received"] / sent["seconds"],
                            "sent": sent["sent"],
                            "received": got["received"],
                        }
                    )
                emit.emit_summary(
                    "tap_udp_rate",
                    "kernel-veth",
                    "datagrams/s",
                    summarize([r["rate"] for r in runs]),
                    direction="kernel->kernel",
                    payload=size,
                    seconds=settings.tap_seconds,
                    loop=None,
                    **_totals(runs),
                )
        if "tap_ping_rtt" in names:
            for interval in PING_INTERVALS:
                log(f"tap_ping_rtt kernel-veth interval {interval}")
                result = await ping(pair.a, KERNEL_B, settings.tap_pings, interval)
                emit.emit_summary(
                    "tap_ping_rtt",
                    "kernel-veth",
                    "us",
                    rtt_summary(result.rtts),
                    direction="kernel->kernel",
                    interval=interval,
                    what=f"iputils ping -i {interval} between two namespaces over veth",
                    transmitted=result.transmitted,
                    received=result.received,
                    ping_summary_ms=result.summary_ms,
                    loop=None,
                )
