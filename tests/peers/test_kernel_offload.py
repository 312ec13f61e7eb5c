"""TAP offloads against the Linux kernel (PEERS.md): with IFF_VNET_HDR, netstack hands the kernel
TCP super-segments with partial checksums and takes the kernel's super-segments, in both
families; what the wire carries is still MTU-sized frames with valid checksums (tshark on the
far side of a router whose veth computes checksums and segments in software, and the kernel's
own counters); with offloads switched off, the kernel sees only plain frames, which netstack's
link cuts from the same super-segments itself (software GSO) or TCP makes one by one, and the
transfer still works.

The rest of the TAP peer tests run with whatever ``TapLink.open`` defaults to: offloads on,
or off with ``NETSTACK_OFFLOAD=0`` (``make pytest-asyncio`` runs them so).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from netstack import Stack
from netstack.link import TapLink
from netstack.netns import Namespace, open_tap_behind_router, open_tap_in_namespace
from netstack.testing import require_net_admin, require_program

pytestmark = pytest.mark.peers

FAR = "198.18.1.2"
NEAR = "198.18.0.2"
MIB = 1 << 20
TIMEOUT = 60.0


BAD_CHECKSUM = 'ip.checksum.status == "Bad" || tcp.checksum.status == "Bad"'


async def tshark_fields(tshark: str, capture: Path, field: str, which: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        tshark, "-n", "-r", str(capture), "-o", "ip.check_checksum:TRUE",
        "-o", "tcp.check_checksum:TRUE", "-T", "fields", "-e", field, "-Y", which,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    return out.decode().split()


async def run_in(ns: Namespace, *argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns.name, *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def output(ns: Namespace, *argv: str) -> str:
    proc = await run_in(ns, *argv)
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, f"{argv}: {out.decode(errors='replace')}"
    return out.decode(errors="replace")


async def listening(ns: Namespace, port: int) -> None:
    async with asyncio.timeout(10.0):
        while not (await output(ns, "ss", "-Hltn", f"sport = :{port}")).strip():
            await asyncio.sleep(0.05)


async def counters(ns: Namespace) -> dict[str, int]:
    out = await output(ns, "nstat", "-az")
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)", out, re.M)}


async def send_to(stack: Stack, ns: Namespace, host: str, port: int, data: bytes,
                  sink: Path, timeout: float = TIMEOUT) -> None:  # fmt: skip
    """netstack sends ``data`` to socat in ``ns``, which writes it to ``sink``."""
    socat = require_program("socat")
    proc = await run_in(ns, socat, "-u", f"TCP6-LISTEN:{port},ipv6only=0,reuseaddr",
                        f"OPEN:{sink},creat,trunc")  # fmt: skip
    try:
        await listening(ns, port)
        reader, writer = await stack.open_connection(host, port)
        async with asyncio.timeout(timeout):
            for i in range(0, len(data), 256 * 1024):
                writer.write(data[i : i + 256 * 1024])
                await writer.drain()
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert hashlib.sha256(sink.read_bytes()).digest() == hashlib.sha256(data).digest()


async def receive_from(
    stack: Stack, ns: Namespace, host: str, source: Path, timeout: float = TIMEOUT
) -> bytes:
    """socat in ``ns`` sends ``source`` to netstack; what netstack received."""
    socat = require_program("socat")
    got = bytearray()
    done = asyncio.get_running_loop().create_future()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while chunk := await r.read(1 << 20):
            got.extend(chunk)
        w.close()
        done.set_result(None)

    server = await stack.start_server(handle, port=9301)
    target = f"TCP:{host}:9301" if ":" not in host else f"TCP6:[{host}]:9301"
    proc = await run_in(ns, socat, "-u", f"OPEN:{source}", target)
    try:
        async with asyncio.timeout(timeout):
            await done
            await proc.wait()
    finally:
        server.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return bytes(got)


@contextlib.asynccontextmanager
async def direct(
    offload: bool, gso: bool = True
) -> AsyncIterator[tuple[Stack, Namespace, TapLink]]:
    require_net_admin()
    ns = Namespace.create()
    try:
        link = open_tap_in_namespace(ns, offload=offload, gso=gso)
        async with await Stack.open(link, ipv4=f"{NEAR}/24", ipv6="fd00:198:18::2/64") as stack:
            await stack.ping("198.18.0.1", timeout=2.0)
            await stack.ping("fd00:198:18::1", timeout=2.0)
            yield stack, ns, link
    finally:
        ns.delete()


#: How the link is opened: offloads; none, with the link cutting TCP's super-segments
#: itself (software GSO, the default without offloads); none, with TCP cutting them.
MODES = {"offloads": (True, True), "soft-gso": (False, True), "plain": (False, False)}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("host", ["198.18.0.1", "fd00:198:18::1"], ids=["ipv4", "ipv6"])
async def test_bulk_both_ways_with_and_without_offloads(
    mode: str, host: str, tmp_path: Path
) -> None:
    offload, gso = MODES[mode]
    data = random.Random(7).randbytes(8 * MIB)
    source = tmp_path / "source"
    source.write_bytes(data)
    async with direct(offload, gso) as (stack, ns, link):
        assert bool(link.offloads) == offload
        local = NEAR if ":" not in host else "fd00:198:18::2"
        await send_to(stack, ns, host, 9300, data, tmp_path / "sink")
        got = await receive_from(stack, ns, local, source)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        stats = stack.stats()
        kernel = await counters(ns)
    tcp, eth = stats["tcp"], stats["ethernet"]
    if offload:
        # netstack sent super-segments, and the kernel sent it its own (GSO), with partial
        # checksums that netstack did not verify and the kernel completed.
        assert tcp["tx_super_segments"] > 0, tcp
        assert eth["rx_super"] > 0, eth
        assert eth["rx_offloaded"] > 0
    else:
        # Super-segments only to the link that cuts them itself; nothing unfinished back.
        assert (tcp["tx_super_segments"] > 0) == gso, tcp
        assert eth["rx_offloaded"] == 0
        # The kernel's wire-sized segments, read in batches, went up coalesced (GRO), and
        # its ACKs of a burst as one.
        assert tcp["gro_merged"] > 0, tcp
        assert tcp["acks_merged"] > 0, tcp
    assert not {k for k in eth["drops"] if k.startswith("offload")}, eth["drops"]
    assert "bad_checksum" not in tcp["drops"], tcp["drops"]
    for name in ("TcpInCsumErrors", "Ip6InHdrErrors", "IpInHdrErrors", "TcpInErrs"):
        assert kernel.get(name, 0) == 0, f"the kernel counted {name}: {kernel[name]}"


@pytest.mark.parametrize("mode", list(MODES))
async def test_the_wire_carries_mtu_sized_frames_with_valid_checksums(
    mode: str, tmp_path: Path
) -> None:
    """netstack's super-segments (or, without offloads, the frames its link cut from them,
    or TCP's own segments) cross a router to a veth that segments and checksums in software
    (gso_max_segs 1, tx checksumming off): tshark in the far namespace sees every frame at
    most 1514 bytes with valid IP and TCP checksums."""
    offload, gso = MODES[mode]
    require_net_admin()
    tshark = require_program("tshark")
    ethtool = require_program("ethtool")
    require_program("nft")
    router, far = Namespace.create(), Namespace.create()
    capture = tmp_path / "far.pcap"
    try:
        link = open_tap_behind_router(router, far, offload=offload, gso=gso)
        assert bool(link.offloads) == offload
        near_dev = (await output(router, "ip", "-o", "link", "show", "type", "veth")).split(":")[1]
        far_dev = (await output(far, "ip", "-o", "link", "show", "type", "veth")).split(":")[1]
        near_dev, far_dev = near_dev.strip().split("@")[0], far_dev.strip().split("@")[0]
        await output(router, ethtool, "-K", near_dev, "tx", "off")
        dump = await run_in(far, tshark, "-n", "-i", far_dev, "-w", str(capture),
                            "-f", "tcp port 9400")  # fmt: skip
        try:
            assert dump.stdout is not None
            async with asyncio.timeout(TIMEOUT):
                while b"Capturing on" not in await dump.stdout.readline():
                    pass
            async with await Stack.open(link, ipv4=f"{NEAR}/24", gateway="198.18.0.1") as stack:
                await stack.ping(FAR, timeout=2.0)
                data = random.Random(11).randbytes(4 * MIB)
                await send_to(stack, far, FAR, 9400, data, tmp_path / "sink")
                tcp = stack.stats()["tcp"]
                await asyncio.sleep(0.5)
        finally:
            dump.terminate()
            await asyncio.wait_for(dump.wait(), TIMEOUT)
        kernel = await counters(far)
    finally:
        far.delete()
        router.delete()
    assert (tcp["tx_super_segments"] > 0) == gso, tcp
    ours = f"ip.src == {NEAR}"
    # Checksums are the oracle (PEERS.md): tshark's heuristic dissectors find "malformed"
    # protocols in random payloads.
    bad = await tshark_fields(tshark, capture, "frame.number", f"{ours} && ({BAD_CHECKSUM})")
    assert bad == [], f"frames with bad checksums: {bad[:10]}"
    lengths = [int(x) for x in await tshark_fields(tshark, capture, "frame.len", ours)]
    # A capture may miss frames on a busy machine; what it holds must be right.
    assert len(lengths) > 4 * MIB // 1500 // 2
    assert max(lengths) <= 1514, max(lengths)
    assert kernel.get("TcpInCsumErrors", 0) == 0


UDP_GSO_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT: the kernel sends a UDP GSO train
for i in range(20):
    s.sendto(bytes([i]) * 3500, ("198.18.0.2", 9500))
"""


async def test_kernel_udp_segmentation_arrives_as_datagrams() -> None:
    """With USO (Linux 6.2+), the kernel may hand the TAP one UDP super-datagram for a
    ``UDP_SEGMENT`` send; netstack cuts it into the datagrams the sender meant."""
    async with direct(True) as (stack, ns, link):
        if not link.offloads.uso:
            pytest.skip("this kernel's tun has no UDP segmentation offload")
        got: list[bytes] = []
        complete = asyncio.Event()

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
                got.append(data)
                if len(got) == 80:
                    complete.set()

        transport, _ = await stack.create_datagram_endpoint(Receiver, local_addr=(NEAR, 9500))
        try:
            await output(ns, sys.executable, "-c", UDP_GSO_SENDER)
            async with asyncio.timeout(10.0):
                await complete.wait()
        finally:
            transport.close()
        eth = stack.stats()["ethernet"]
    # 3500 bytes in pieces of 1000: 1000, 1000, 1000, 500, twenty times.
    assert [len(d) for d in got] == [1000, 1000, 1000, 500] * 20
    assert got[::4] == [bytes([i]) * 1000 for i in range(20)]
    assert eth["rx_super"] > 0, eth
