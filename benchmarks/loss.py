"""TCP loss recovery beside Linux: the same bulk transfer through a router that loses 2 % of
the packets it forwards, netstack as the sender and Linux as the sender (root only).

The setup (:func:`netstack.netns.open_tap_behind_router`): netstack on a TAP device
(198.18.0.2) whose kernel side is a router namespace (198.18.0.1), which forwards over a
veth pair to the kernel in a third namespace (198.18.1.2). An nftables rule in the router's
*forward* hook drops ``numgen random mod 100 < 2`` of the packets in both directions: real
network loss for both ends (neither sender sees a local error).

``tcp_loss`` (seconds, ``direction`` says which way; ``value`` = time from connected to the
receiver's EOF):

- ``netstack->kernel``: netstack's ``StreamWriter`` writes ``loss_bytes`` (then
  ``write_eof``) to ``tcppeer recvgaps`` in the far namespace.
- ``kernel->netstack``: ``tcppeer sendn`` sends ``loss_bytes`` to netstack's server.

Per line: ``timeouts`` (the sender's retransmission timeouts: for netstack, every
``TcpConnection._on_rto`` of a synchronized connection; for Linux, ``TcpExtTCPTimeouts``
of the far namespace), ``retransmits`` (netstack's count; Linux's ``RetransSegs``), and the
receiver's ``stalls`` (gaps of more than 0.1 s between two reads that returned data) with
their total ``stall_seconds``; ``router_drops`` what the rule dropped. netstack's own
``loss_probes``, ``fast_recoveries`` and ``undos`` when it reports them; Linux's
``TCPLossProbes``, ``TCPSackRecovery`` and ``TCPSpuriousRTOs`` / ``TCPLossUndo``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from netstack import Stack
from netstack.netns import (
    Namespace,
    open_tap_behind_router,
    router_drops,
    tap_unavailable_reason,
)
from netstack.proto.tcp.connection import SYNCHRONIZED, TcpConnection

from .common import Emitter, Settings, log
from .tcp import kernel_tcp_counters, ready_port, start_tcp_peer

__all__ = ["run_loss"]

FAR = "198.18.1.2"
NEAR = "198.18.0.2"
LOSS_PERCENT = 2
PORT = 9100
STALL = 0.1
CHUNK = 64 * 1024
READ = 1024 * 1024
_LINUX_EXTRA = ("TCPLossProbes", "TCPSackRecovery", "TCPSpuriousRTOs", "TCPLossUndo")


def _netstat(ns: Namespace) -> dict[str, int]:
    """TcpExt counters of /proc/net/netstat in ``ns``."""
    text = ns.run("cat", "/proc/net/netstat", timeout=5.0).stdout
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("TcpExt:")]
    if len(rows) < 2:
        return {}
    return {k: int(v) for k, v in zip(rows[0], rows[1], strict=False)}


class _TimeoutCounter:
    """Counts retransmission timeouts of synchronized netstack connections (works on any
    version of the machine, whether or not it counts them itself)."""

    def __init__(self) -> None:
        self.count = 0
        self._original = TcpConnection._on_rto

    def __enter__(self) -> _TimeoutCounter:
        original = self._original
        counter = self

        def counting(conn: TcpConnection, now: float) -> None:
            if conn.state in SYNCHRONIZED:
                counter.count += 1
            original(conn, now)

        TcpConnection._on_rto = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        TcpConnection._on_rto = self._original  # type: ignore[method-assign]


def _stack_extra(stack: Stack) -> dict[str, Any]:
    tcp = stack.stats()["tcp"]
    return {k: tcp[k] for k in ("loss_probes", "fast_recoveries", "undos") if k in tcp}


async def _netstack_sends(stack: Stack, far: Namespace, size: int) -> dict[str, Any]:
    peer = start_tcp_peer(far, "recvgaps", FAR, str(PORT), "300")
    try:
        await ready_port(peer)
        with _TimeoutCounter() as rto:
            before = stack.stats()["tcp"]
            reader, writer = await stack.open_connection(FAR, PORT)
            start = time.monotonic()
            chunk = bytes(CHUNK)
            left = size
            while left > 0:
                writer.write(chunk[: min(left, CHUNK)])
                left -= CHUNK
                await writer.drain()
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 300)
            seconds = time.monotonic() - start
            writer.close()
            result = await peer.json(30.0)
        after = stack.stats()["tcp"]
    finally:
        peer.kill()
    extra = {k: v - before.get(k, 0) for k, v in _stack_extra(stack).items()}
    return {
        "seconds": seconds,
        "bytes": result["bytes"],
        "timeouts": rto.count,
        "retransmits": after["retransmits"] - before["retransmits"],
        "stalls": result["stalls"],
        "stall_seconds": result["stall_seconds"],
        **extra,
    }


async def _kernel_sends(stack: Stack, far: Namespace, size: int) -> dict[str, Any]:
    got = {"bytes": 0, "stalls": 0, "stall_seconds": 0.0}
    done = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        last = time.monotonic()
        while data := await reader.read(READ):
            now = time.monotonic()
            if now - last > STALL:
                got["stalls"] += 1
                got["stall_seconds"] += now - last
            last = now
            got["bytes"] += len(data)
        writer.close()
        if not done.done():
            done.set_result(None)

    server = await stack.start_server(handle, port=PORT)
    snmp, ext = kernel_tcp_counters(far), _netstat(far)
    peer = start_tcp_peer(far, "sendn", NEAR, str(PORT), str(size))
    try:
        result = await peer.json(300.0)
        await asyncio.wait_for(done, 10.0)
    finally:
        peer.kill()
        server.close()
    snmp2, ext2 = kernel_tcp_counters(far), _netstat(far)
    return {
        "seconds": result["seconds"],
        "bytes": got["bytes"],
        "timeouts": ext2.get("TCPTimeouts", 0) - ext.get("TCPTimeouts", 0),
        "retransmits": snmp2.get("RetransSegs", 0) - snmp.get("RetransSegs", 0),
        "stalls": got["stalls"],
        "stall_seconds": round(got["stall_seconds"], 3),
        **{k: ext2.get(k, 0) - ext.get(k, 0) for k in _LINUX_EXTRA},
    }


async def run_loss(emit: Emitter, settings: Settings) -> None:
    size = (4 if settings.quick else 32) << 20
    repeats = 1 if settings.quick else 3
    reason = tap_unavailable_reason()
    if reason is not None:
        for direction in ("netstack->kernel", "kernel->netstack"):
            emit.skip("tcp_loss", "netstack-tap", "s", reason, direction=direction)
        return
    router, far = Namespace.create(), Namespace.create()
    try:
        link = open_tap_behind_router(router, far, loss_percent=LOSS_PERCENT)
        async with await Stack.open(link, ipv4=f"{NEAR}/24", gateway="198.18.0.1") as stack:
            await stack.ping(FAR, timeout=2.0)
            for direction, run, impl in (
                ("netstack->kernel", _netstack_sends, "netstack-sender"),
                ("kernel->netstack", _kernel_sends, "linux-sender"),
            ):
                for i in range(repeats):
                    log(f"tcp_loss {direction} {i + 1}/{repeats} ({size >> 20} MiB)")
                    drops = router_drops(router, far)
                    r = await run(stack, far, size)
                    emit.emit(
                        "tcp_loss", impl, round(r.pop("seconds"), 3), "s",
                        direction=direction, loss_percent=LOSS_PERCENT, size=size,
                        router_drops=router_drops(router, far) - drops, **r,
                    )  # fmt: skip
    finally:
        far.delete()
        router.delete()
