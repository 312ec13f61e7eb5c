"""netstack's loss recovery (RACK-TLP, PRR, D-SACK, undo) against the Linux kernel, through a
router namespace that drops 2 % of what it forwards (an nftables ``numgen random`` rule in
its forward hook: PEERS.md), both ways; every byte is checked."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from netstack import Stack
from netstack.netns import Namespace, open_tap_behind_router, router_drops
from netstack.testing import require_net_admin, require_program

pytestmark = pytest.mark.peers

FAR = "198.18.1.2"
NEAR = "198.18.0.2"
MIB = 1 << 20
TIMEOUT = 120.0


@contextlib.asynccontextmanager
async def routed(loss_percent: int) -> AsyncIterator[tuple[Stack, Namespace, Namespace]]:
    require_net_admin()
    require_program("nft")
    router, far = Namespace.create(), Namespace.create()
    try:
        link = open_tap_behind_router(router, far, loss_percent=loss_percent)
        async with await Stack.open(link, ipv4=f"{NEAR}/24", gateway="198.18.0.1") as stack:
            await stack.ping(FAR, timeout=2.0)
            yield stack, router, far
    finally:
        far.delete()
        router.delete()


async def run_in(ns: Namespace, *argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns.name, *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def listening(ns: Namespace, port: int) -> None:
    async with asyncio.timeout(10.0):
        while True:
            proc = await run_in(ns, "ss", "-Hltn", f"sport = :{port}")
            out, _ = await proc.communicate()
            if out.strip():
                return
            await asyncio.sleep(0.05)


async def test_both_ways_through_a_router_losing_two_percent(tmp_path: Path) -> None:
    socat = require_program("socat")
    data = random.Random(8985).randbytes(4 * MIB)
    sink, source = tmp_path / "sink", tmp_path / "source"
    source.write_bytes(data)
    async with routed(2) as (stack, router, far):
        # netstack sends: the kernel writes what it receives to a file.
        proc = await run_in(far, socat, "-u", "TCP-LISTEN:9200,reuseaddr", f"OPEN:{sink},creat")
        await listening(far, 9200)
        reader, writer = await stack.open_connection(FAR, 9200)
        async with asyncio.timeout(TIMEOUT):
            for i in range(0, len(data), 256 * 1024):
                writer.write(data[i : i + 256 * 1024])
                await writer.drain()
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await proc.wait()
        sent_stats = stack.stats()["tcp"]
        # The kernel sends: netstack receives.
        got = bytearray()
        done = asyncio.get_running_loop().create_future()

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while chunk := await r.read(1 << 20):
                got.extend(chunk)
            w.close()
            done.set_result(None)

        server = await stack.start_server(handle, port=9201)
        proc = await run_in(far, socat, "-u", f"OPEN:{source}", f"TCP:{NEAR}:9201")
        async with asyncio.timeout(TIMEOUT):
            await done
            await proc.wait()
        server.close()
        drops = router_drops(router)
        received_stats = stack.stats()["tcp"]
    assert hashlib.sha256(sink.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert drops > 0
    # As sender, netstack lost segments and repaired them in fast recovery (RACK marks,
    # PRR paces); as receiver it reported its holes and any duplicates.
    assert sent_stats["retransmits"] > 0 and sent_stats["fast_recoveries"] > 0, sent_stats
    assert received_stats["rx_segments"] > sent_stats["rx_segments"]
