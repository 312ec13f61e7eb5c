"""Many DHCP clients at once against netstack's DHCP server (``dhcp_leases``).

The server is :func:`netstack.dhcp.serve` on a netstack stack; the clients are not stacks (a
thousand stacks on a switch would measure the switch's broadcast flooding) but one raw end of
a memory link that builds each client's DISCOVER and REQUEST itself (RFC 2131 3.1: distinct
``chaddr`` and ``xid``, from 0.0.0.0:68 to 255.255.255.255:67) and reads the OFFERs and ACKs
the server sends back. ``window`` exchanges are in flight at a time; a lease counts when its
ACK arrives.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import netstack.dhcp
from netstack import Stack
from netstack.link import MemoryLink
from netstack.proto.checksum import checksum
from netstack.proto.dhcp.wire import DhcpMessage, MessageType, OptionCode, build, parse

__all__ = ["leases_per_second"]

BROADCAST_MAC = b"\xff" * 6
_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")


def _frame(mac: bytes, payload: bytes) -> bytes:
    """Ethernet, IPv4 (0.0.0.0 -> 255.255.255.255) and UDP (68 -> 67) around ``payload``."""
    udp = _UDP.pack(68, 67, 8 + len(payload), 0) + payload  # UDP checksum 0: none (RFC 768)
    header = bytearray(_IP.pack(0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), b"\xff" * 4))
    struct.pack_into("!H", header, 10, checksum(header))
    return BROADCAST_MAC + mac + b"\x08\x00" + bytes(header) + udp


def _message(kind: int, xid: int, mac: bytes, **extra: bytes) -> bytes:
    options = {OptionCode.MESSAGE_TYPE: bytes((kind,))}
    for code, value in extra.items():
        options[OptionCode[code]] = value
    return build(DhcpMessage(xid=xid, chaddr=mac, options=dict(options)))


async def leases_per_second(
    clients: int, *, window: int = 50, leases_path: str | None = None
) -> tuple[float, dict[str, Any]]:
    """Leases granted per second to ``clients`` clients, ``window`` in flight at once; with
    ``leases_path`` the server keeps its lease database in that file (written atomically,
    with an fsync, after every change)."""
    server_link, client_link = MemoryLink.pair()
    if clients > 1700:
        raise ValueError("the pool holds 1792 addresses")
    async with await Stack.open(server_link, ipv4="198.18.0.1/16") as stack:
        server = await netstack.dhcp.serve(
            stack, pool="198.18.1.0-198.18.7.255", lease_time=3600, leases_path=leases_path
        )
        waiting: dict[int, asyncio.Future[bytes]] = {}
        loop = asyncio.get_running_loop()

        def on_frame(frame: memoryview) -> None:
            data = bytes(frame)
            if len(data) < 42 or data[12:14] != b"\x08\x00" or data[23] != 17:
                return
            ihl = (data[14] & 0x0F) * 4
            try:
                msg = parse(data[14 + ihl + 8 :])
            except ValueError:
                return
            fut = waiting.pop(msg.xid, None)
            if fut is not None and not fut.done():
                fut.set_result(data[14 + ihl + 8 :])

        listening = asyncio.create_task(client_link.listen(on_frame))
        await asyncio.sleep(0)

        async def exchange(kind: int, xid: int, mac: bytes, **extra: bytes) -> Any:
            fut: asyncio.Future[bytes] = loop.create_future()
            waiting[xid] = fut
            await client_link.write(_frame(mac, _message(kind, xid, mac, **extra)))
            return parse(await asyncio.wait_for(fut, 5.0))

        granted = 0
        naks = 0

        async def one(i: int) -> None:
            nonlocal granted, naks
            mac = bytes((0x02, 0x10, 0, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))
            xid = 0x10000000 + i
            offer = await exchange(MessageType.DISCOVER, xid, mac)
            ack = await exchange(
                MessageType.REQUEST, xid, mac, REQUESTED_ADDRESS=offer.yiaddr,
                SERVER_ID=offer.options[OptionCode.SERVER_ID],
            )  # fmt: skip
            if ack.options.get(OptionCode.MESSAGE_TYPE) == bytes((MessageType.ACK,)):
                granted += 1
            else:
                naks += 1

        semaphore = asyncio.Semaphore(window)

        async def limited(i: int) -> None:
            async with semaphore:
                await one(i)

        start = time.perf_counter()
        await asyncio.gather(*(limited(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
        listening.cancel()
        leases = len(server.leases)
        stats = server.stats()
        server.close()
    return granted / elapsed, {"granted": granted, "naks": naks, "server_leases": leases,
                               "seconds": round(elapsed, 3),
                               "server_drops": stats.get("drops", {})}  # fmt: skip
