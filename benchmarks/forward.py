"""netstack as a router: the forwarding rate between two memory links, and TCP throughput
between two kernel namespaces through netstack over TAP beside the kernel routing the same
between veth pairs, in the same run.

``forward_rate`` (packets/s): a router :class:`netstack.Stack` with two interfaces on
``MemoryLink.pair()`` links, ``forwarding = True``. The far end of the first link injects
prebuilt Ethernet frames (IPv4 UDP, 198.18.1.2 -> 198.18.2.2, TTL 64) of 64 and 1500 bytes on
the wire (``size``), in batches of ``BATCH`` with ``asyncio.sleep(0)`` between them (the memory
link hands a turn's queued frames to the router in one callback); the far end of the second
link counts the frames that come out (the next hop's MAC is a static ARP entry, so no host
stack's work is timed). ``value``: frames out per second of sending. Each forwarded frame is
one copy of the datagram, a TTL decrement with an incremental checksum, the route lookup (a
cached dict hit) and the Ethernet header.

``forward_tcp`` (Mbit/s): ``tcppeer source`` in namespace A sends to ``tcppeer sink`` in
namespace B for ``tcp_seconds``. ``netstack-router-tap``: A and B each on a TAP device whose
other end is one netstack stack forwarding between them. ``kernel-router-veth``: A and B each
joined by a veth pair to a third namespace R with ``net.ipv4.ip_forward=1``: the kernel's own
forwarding, the reference. Each also with ``nat`` ``masquerade``: netstack with
``stack.nat.masquerade()`` on B's interface, the kernel with an nftables ``masquerade`` rule
on R's device towards B (connection tracking and source NAT on every segment).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import struct
import time
from collections.abc import Iterator
from typing import Any

from netstack import Stack
from netstack.link import MemoryLink
from netstack.netns import Namespace, open_tap_in_namespace
from netstack.proto.checksum import checksum

from .common import Emitter, Settings, log, summarize
from .tcp import start_tcp_peer

__all__ = ["run_forward"]

BATCH = 256
SIZES = (64, 1500)
SRC = bytes([198, 18, 1, 2])
DST = bytes([198, 18, 2, 2])
B_MAC = b"\x02\x00\x00\x00\x02\x02"
A_MAC = b"\x02\x00\x00\x00\x01\x02"


def _frame(dst_mac: bytes, size: int) -> bytes:
    """An Ethernet frame of ``size`` bytes holding an IPv4 UDP datagram."""
    ip_len = size - 14
    udp_len = ip_len - 20
    header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 1, 0x4000, 64, 17, 0,
                                   SRC, DST))  # fmt: skip
    c = checksum(header)
    header[10:12] = c.to_bytes(2, "big")
    udp = struct.pack("!HHHH", 40000, 9, udp_len, 0) + bytes(udp_len - 8)
    return dst_mac + A_MAC + b"\x08\x00" + bytes(header) + udp


async def _forward_rate(size: int, seconds: float) -> dict[str, Any]:
    a_end, r1 = MemoryLink.pair(mtu=1500)
    r2, b_end = MemoryLink.pair(mtu=1500)
    router = await Stack.open(r1, ipv4="198.18.1.1/24")
    count = 0

    def on_b(frame: memoryview) -> None:
        nonlocal count
        if frame[12:14] == b"\x08\x00":  # IPv4 (not the router's ARP announcements)
            count += 1

    listener = asyncio.get_running_loop().create_task(b_end.listen(on_b))
    try:
        iface = await router.add_interface(r2, ipv4="198.18.2.1/24")
        iface.arp.cache.add_static(DST, B_MAC, router.loop.time())
        router.forwarding = True
        frame = _frame(bytes.fromhex(router.interfaces[0].mac.replace(":", "")), size)
        transmit = a_end.transmit
        await asyncio.sleep(0)
        sent = 0
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            for _ in range(BATCH):
                transmit(frame)
            sent += BATCH
            await asyncio.sleep(0)
        elapsed = time.perf_counter() - start
        for _ in range(10):
            await asyncio.sleep(0)
        fwd = router.stats()["forward"]
        return {"sent": sent, "received": count, "seconds": elapsed,
                "forwarded": fwd["forwarded4"], "drops": fwd["drops"]}  # fmt: skip
    finally:
        await router.close()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
        await b_end.disconnect()
        await a_end.disconnect()


@contextlib.contextmanager
def _namespaces(n: int) -> Iterator[list[Namespace]]:
    made: list[Namespace] = []
    try:
        for _ in range(n):
            made.append(Namespace.create())
        yield made
    finally:
        for ns in reversed(made):
            ns.delete()


async def _tcp_between(a: Namespace, b: Namespace, seconds: float) -> dict[str, Any]:
    sink = start_tcp_peer(b, "sink", "0.0.0.0", "5201", str(seconds + 20))
    try:
        await sink.line(10.0)  # "ready"
        source = start_tcp_peer(a, "source", "198.18.2.10", "5201", str(seconds))
        try:
            sent = await source.json(seconds + 30)
        finally:
            source.kill()
        got = await sink.json(30.0)
    finally:
        sink.kill()
    return {"bytes": got["bytes"], "seconds": sent["seconds"]}


async def _netstack_router_tcp(seconds: float, nat: bool = False) -> dict[str, Any]:
    with _namespaces(2) as (a, b):
        link_a = open_tap_in_namespace(a, kernel_ipv4="198.18.1.10/24", kernel_ipv6=None)
        link_b = open_tap_in_namespace(b, kernel_ipv4="198.18.2.10/24", kernel_ipv6=None)
        a.ip("route", "add", "default", "via", "198.18.1.1")
        b.ip("route", "add", "default", "via", "198.18.2.1")
        router = await Stack.open(link_a, ipv4="198.18.1.1/24")
        try:
            uplink = await router.add_interface(link_b, ipv4="198.18.2.1/24")
            if nat:
                router.nat.masquerade(uplink)
            router.forwarding = True
            return await _tcp_between(a, b, seconds)
        finally:
            await router.close()


async def _kernel_router_tcp(seconds: float, nat: bool = False) -> dict[str, Any]:
    with _namespaces(3) as (a, r, b):
        pid = os.getpid()
        for ns, side, net in ((a, "a", 1), (b, "b", 2)):
            dev, rdev = f"fw{pid}{side}"[:15], f"fw{pid}r{side}"[:15]
            ns.ip("link", "add", dev, "type", "veth", "peer", "name", rdev, "netns", r.name)
            ns.ip("addr", "add", f"198.18.{net}.10/24", "dev", dev)
            r.ip("addr", "add", f"198.18.{net}.1/24", "dev", rdev)
            ns.ip("link", "set", dev, "up")
            r.ip("link", "set", rdev, "up")
            ns.ip("route", "add", "default", "via", f"198.18.{net}.1")
        r.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", timeout=5.0)
        if nat:
            out = f"fw{pid}rb"[:15]
            r.run("nft", "-f", "-", input=(
                "table ip nat {\n chain post {\n  type nat hook postrouting priority 100;\n"
                f"  oifname \"{out}\" masquerade\n }}\n}}\n"
            ), timeout=10.0)  # fmt: skip
        return await _tcp_between(a, b, seconds)


async def run_forward(emit: Emitter, settings: Settings, names: set[str]) -> None:
    if "forward_rate" in names:
        for size in SIZES:
            runs = [await _forward_rate(size, settings.seconds) for _ in range(settings.repeats)]
            rates = [r["received"] / r["seconds"] for r in runs]
            emit.emit_summary("forward_rate", "netstack-router-memory", "packets/s",
                              summarize(rates), size=size, frame_bytes=size,
                              lost=sum(r["sent"] - r["received"] for r in runs),
                              drops=runs[-1]["drops"])  # fmt: skip
            log(f"forward_rate {size} B: {rates}")
    if "forward_tcp" in names:
        from netstack.netns import have_net_admin

        if not have_net_admin():
            for impl in ("netstack-router-tap", "kernel-router-veth"):
                emit.skip("forward_tcp", impl, "Mbit/s", "needs CAP_NET_ADMIN")
            return
        import shutil

        setups = [("netstack-router-tap", "off", _netstack_router_tcp),
                  ("kernel-router-veth", "off", _kernel_router_tcp),
                  ("netstack-router-tap", "masquerade",
                   functools.partial(_netstack_router_tcp, nat=True))]  # fmt: skip
        if shutil.which("nft") is not None:
            setups.append(
                (
                    "kernel-router-veth",
                    "masquerade",
                    functools.partial(_kernel_router_tcp, nat=True),
                )
            )
        else:
            emit.skip("forward_tcp", "kernel-router-veth", "Mbit/s",
                      "nft is not installed (Debian: nftables)", nat="masquerade")  # fmt: skip
        for impl, nat, fn in setups:
            rates = []
            for _ in range(settings.tcp_repeats):
                r = await fn(settings.tcp_seconds)
                rates.append(r["bytes"] * 8 / r["seconds"] / 1e6)
            emit.emit_summary("forward_tcp", impl, "Mbit/s", summarize(rates), nat=nat)
            log(f"forward_tcp {impl} nat {nat}: {rates}")
