"""netstack's TCP against the Linux kernel over a TAP device in a network namespace (PEERS.md):
bulk data both ways with curl, ``python3 -m http.server`` and socat, HTTP keep-alive, 100
parallel connections from the kernel (also through SYN cookies), half-close both ways, a reset
from a closed port, iperf both ways, loss on the wire (fast retransmit after SACKed duplicate
ACKs, random loss both ways), and tshark and the kernel's counters checking every segment
netstack wrote."""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from peerkit import (
    HttpServer,
    body,
    finished,
    in_netns,
    peer,
    read_to_eof,
    sha256,
    tshark_count,
    tshark_problems,
    wait_listening,
)

from netstack import Stack
from netstack.link import MacAddress, PcapLink
from netstack.testing import TapSandbox, require_program

pytestmark = pytest.mark.peers

KERNEL = "198.18.0.1"
NETSTACK = "198.18.0.2"
MIB = 1024 * 1024
BULK = 10 * MIB
#: Bounds every exchange; far above what any of them needs.
TIMEOUT = 30.0


# -- running peers in the namespace ------------------------------------------------------------


async def kernel_counters(sandbox: TapSandbox) -> dict[str, int]:
    out = await in_netns(sandbox, "nstat", "-az")
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)", out, re.M)}


# -- netstack servers --------------------------------------------------------------------------
async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


class Discard:
    """A discard server: counts what each connection sent until its EOF."""

    def __init__(self) -> None:
        self.totals: asyncio.Queue[int] = asyncio.Queue()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = 0
        try:
            while chunk := await reader.read(256 * 1024):
                total += len(chunk)
            self.totals.put_nowait(total)
        finally:
            writer.close()


async def test_curl_downloads_10_mib(
    tap_stack: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    curl = require_program("curl")
    http = HttpServer()
    server = await tap_stack.start_server(http.handle, port=8080)
    out = tmp_path / "download"
    text = await in_netns(
        tap_netns, curl, "-sS", "--max-time", "25", "-o", str(out),
        "-w", "%{http_code} %{size_download}", f"http://{NETSTACK}:{server.port}/{BULK}",
    )  # fmt: skip
    assert text == f"200 {BULK}"
    assert sha256(out.read_bytes()) == sha256(body(BULK))
    assert http.connections == 1 and http.requests == 1
    assert not http.errors


async def test_curl_keep_alive_two_requests_one_connection(
    tap_stack: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    curl = require_program("curl")
    http = HttpServer()
    server = await tap_stack.start_server(http.handle, port=8080)
    base = f"http://{NETSTACK}:{server.port}"
    first, second = tmp_path / "first", tmp_path / "second"
    text = await in_netns(
        tap_netns, curl, "-sS", "--http1.1", "--max-time", "25",
        "-w", "%{http_code} %{size_download} %{num_connects}\n",
        "-o", str(first), f"{base}/100000",
        "-o", str(second), f"{base}/3000000",
    )  # fmt: skip
    # curl connects for the first transfer and reuses the connection for the second.
    assert text.splitlines() == ["200 100000 1", "200 3000000 0"]
    assert first.read_bytes() == body(100000)
    assert second.read_bytes() == body(3000000)
    assert http.connections == 1 and http.requests == 2
    assert not http.errors


# -- 2. netstack downloads from the kernel -----------------------------------------------------
async def connect_when_listening(
    stack: Stack, port: int, timeout: float = 10.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to the kernel, retrying while the peer program is still starting (refused)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await stack.open_connection(KERNEL, port)
            except ConnectionRefusedError:
                await asyncio.sleep(0.1)


async def test_netstack_downloads_10_mib_from_http_server(
    tap_stack: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    data = body(BULK, seed=7)
    (tmp_path / "file.bin").write_bytes(data)
    async with peer(
        tap_netns, sys.executable, "-m", "http.server", "8000",
        "--bind", KERNEL, "--directory", str(tmp_path),
    ):  # fmt: skip
        await wait_listening(tap_netns, 8000)
        reader, writer = await connect_when_listening(tap_stack, 8000)
        async with asyncio.timeout(TIMEOUT):
            writer.write(
                f"GET /file.bin HTTP/1.0\r\nHost: {KERNEL}:8000\r\n"
                "User-Agent: netstack-test\r\n\r\n".encode()
            )
            response = await read_to_eof(reader)  # HTTP/1.0: the server closes
            writer.close()
            await writer.wait_closed()
    head, sep, received = response.partition(b"\r\n\r\n")
    assert sep, response[:1000]
    assert head.split(b"\r\n", 1)[0].split()[1] == b"200", head
    length = re.search(rb"\r\nContent-Length: (\d+)(\r\n|$)", head, re.I)
    assert length is not None and int(length[1]) == BULK, head
    assert len(received) == BULK
    assert sha256(received) == sha256(data)


async def test_readexactly_more_than_the_stream_limit(
    tap_stack: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    """``StreamReader.readexactly(n)`` with ``n`` beyond the reader's buffer limit (64 KiB
    by default) is legal asyncio: the reader resumes the paused transport while it waits."""
    socat = require_program("socat")
    source = tmp_path / "source"
    data = body(MIB, seed=13)
    source.write_bytes(data)
    async with peer(tap_netns, socat, "-u", f"OPEN:{source}", "TCP-LISTEN:9003,reuseaddr"):
        await wait_listening(tap_netns, 9003)
        reader, writer = await connect_when_listening(tap_stack, 9003)
        try:
            async with asyncio.timeout(10.0):
                received = await reader.readexactly(MIB)
        except TimeoutError:
            transport: Any = writer.transport
            pytest.fail(
                f"readexactly({MIB}) hung: the reader is {reader!r} and the transport "
                f"{transport!r} is reading: {transport.is_reading()}"
            )
        assert received == data
        assert await reader.read() == b""
        writer.close()


# -- 3. netstack uploads to the kernel ---------------------------------------------------------
async def test_netstack_uploads_10_mib_to_socat(
    tap_stack: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    socat = require_program("socat")
    sink = tmp_path / "sink"
    data = body(BULK, seed=11)
    async with peer(
        tap_netns, socat, "-u", "TCP-LISTEN:9000,reuseaddr", f"OPEN:{sink},creat,trunc"
    ) as proc:
        await wait_listening(tap_netns, 9000)
        reader, writer = await connect_when_listening(tap_stack, 9000)
        async with asyncio.timeout(TIMEOUT):
            view = memoryview(data)
            for start in range(0, len(view), MIB):
                writer.write(view[start : start + MIB])
                await writer.drain()
            writer.write_eof()
            assert await reader.read() == b""  # socat closes once it has everything
            writer.close()
        await finished(proc)
    assert sha256(sink.read_bytes()) == sha256(data)


# -- 4. many connections from the kernel -------------------------------------------------------
CLIENTS = r"""
import asyncio, json, sys

async def one(i):
    message = (f"message {i} ".encode() * (1 + i * 37))[: 50 + i * 150]
    reader, writer = await asyncio.open_connection(sys.argv[1], int(sys.argv[2]))
    writer.write(message)
    await writer.drain()
    got = await reader.readexactly(len(message))
    writer.close()
    await writer.wait_closed()
    return got == message

async def main():
    n = int(sys.argv[3])
    results = await asyncio.wait_for(
        asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True), 25)
    ok = sum(1 for r in results if r is True)
    errors = sorted({repr(r) for r in results if r is not True})
    print(json.dumps({"ok": ok, "errors": errors}))

asyncio.run(main())
"""


@pytest.mark.parametrize("backlog", [128, 2], ids=["backlog", "syn-cookies"])
async def test_100_parallel_connections_from_kernel(
    tap_stack: Stack, tap_netns: TapSandbox, backlog: int
) -> None:
    """With a backlog of 2, most handshakes complete through SYN cookies, which the kernel
    must accept without the options a cookie cannot carry."""
    server = await tap_stack.start_server(echo, port=7, backlog=backlog)
    text = await in_netns(
        tap_netns, sys.executable, "-c", CLIENTS, NETSTACK, str(server.port), "100"
    )
    summary = json.loads(text.strip().splitlines()[-1])
    assert summary == {"ok": 100, "errors": []}
    tcp = tap_stack.stats()["tcp"]
    assert tcp["passive_opens"] == 100, tcp
    if backlog < 100:
        assert tcp["syn_cookies_accepted"] > 0, tcp
    assert tcp["resets_sent"] == 0, tcp


# -- 5. half-close both ways -------------------------------------------------------------------
async def test_netstack_half_closes_and_still_reads(
    tap_stack: Stack, tap_netns: TapSandbox
) -> None:
    socat = require_program("socat")
    data = body(200_000, seed=5)
    async with peer(
        tap_netns, socat, "-t", "5", "TCP-LISTEN:9001,reuseaddr", "SYSTEM:'cat; echo done'"
    ) as proc:
        await wait_listening(tap_netns, 9001)
        reader, writer = await connect_when_listening(tap_stack, 9001)
        async with asyncio.timeout(TIMEOUT):
            writer.write(data)
            writer.write_eof()  # cat sees EOF only from this FIN, then "done" follows
            reply = await read_to_eof(reader)
            writer.close()
        await finished(proc)
    assert reply == data + b"done\n"


async def test_kernel_half_closes_netstack_replies(
    tap_stack: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    socat = require_program("socat")
    got: list[bytes] = []

    async def reply_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await read_to_eof(reader)  # socat's FIN ends the request
            got.append(data)
            writer.write(f"{len(data)} {sha256(data)}\n".encode())
            await writer.drain()
        finally:
            writer.close()

    server = await tap_stack.start_server(reply_after_eof, port=9002)
    data = body(300_000, seed=9)
    source = tmp_path / "request"
    source.write_bytes(data)
    text = await in_netns(
        tap_netns, "sh", "-c",
        f"{socat} -t 5 - TCP:{NETSTACK}:{server.port},shut-down < {source}",
    )  # fmt: skip
    assert got == [data]
    assert text == f"{len(data)} {sha256(data)}\n"


# -- 6. a reset for a closed port --------------------------------------------------------------
async def test_closed_port_refuses_quickly(tap_stack: Stack) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        async with asyncio.timeout(5.0):
            await tap_stack.open_connection(KERNEL, 9999)
    assert time.monotonic() - start < 2.0  # one round trip, not the SYN retries
    # The stack stays usable: a second attempt is refused the same way.
    with pytest.raises(ConnectionRefusedError):
        async with asyncio.timeout(5.0):
            await tap_stack.open_connection(KERNEL, 9999)


# -- 7. tshark and the kernel's counters -------------------------------------------------------


async def test_every_tcp_segment_decodes_in_tshark(tap_netns: TapSandbox, tmp_path: Path) -> None:
    tshark = require_program("tshark")
    curl = require_program("curl")
    socat = require_program("socat")
    capture = tmp_path / "tcp.pcap"
    link = PcapLink(tap_netns.link, capture)
    async with await Stack.open(link, ipv4=tap_netns.stack_ipv4) as stack:
        mac = str(stack.link.mac)
        # The kernel downloads from netstack (curl, keep-alive, two requests).
        http = HttpServer()
        server = await stack.start_server(http.handle, port=8080)
        base = f"http://{NETSTACK}:{server.port}"
        await in_netns(
            tap_netns, curl, "-sS", "--http1.1", "--max-time", "20",
            "-o", "/dev/null", f"{base}/1000000", "-o", "/dev/null", f"{base}/10",
        )  # fmt: skip
        assert http.requests == 2 and not http.errors
        # netstack uploads to the kernel and half-closes.
        async with peer(
            tap_netns, socat, "-t", "5", "TCP-LISTEN:9001,reuseaddr", "SYSTEM:'cat; echo done'"
        ) as proc:
            await wait_listening(tap_netns, 9001)
            reader, writer = await connect_when_listening(stack, 9001)
            data = body(500_000, seed=3)
            async with asyncio.timeout(TIMEOUT):
                writer.write(data)
                writer.write_eof()
                assert await read_to_eof(reader) == data + b"done\n"
                writer.close()
            await finished(proc)
        # A refused connection.
        with pytest.raises(ConnectionRefusedError):
            async with asyncio.timeout(5.0):
                await stack.open_connection(KERNEL, 9999)
        await asyncio.sleep(0.2)  # the last ACKs
    counters = await kernel_counters(tap_netns)
    for counter in ("TcpInCsumErrors", "TcpInErrs", "IpInHdrErrors", "TcpExtTCPAbortOnData"):
        assert counters.get(counter, 0) == 0, f"kernel counted {counter}: {counters[counter]}"
    ours = f"eth.src == {mac}"
    problems = await tshark_problems(tshark, capture, ours)
    assert problems == "", f"tshark found problems:\n{problems}"
    assert await tshark_count(tshark, capture, f"{ours} && tcp") >= 100
    assert await tshark_count(tshark, capture, f"{ours} && tcp.flags.reset == 1") == 0


# -- 8. iperf both ways ------------------------------------------------------------------------
async def test_netstack_sends_to_iperf_server(tap_stack: Stack, tap_netns: TapSandbox) -> None:
    iperf = require_program("iperf")
    async with peer(tap_netns, iperf, "-s", "-p", "5001", "-y", "C") as proc:
        await wait_listening(tap_netns, 5001)
        reader, writer = await connect_when_listening(tap_stack, 5001)
        chunk = bytes(128 * 1024)  # iperf2 reads a zero header as "no options": plain data
        sent = 0
        deadline = asyncio.get_running_loop().time() + 3.0
        async with asyncio.timeout(10.0):
            while asyncio.get_running_loop().time() < deadline:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
        # The server prints one CSV line per finished connection: ...,interval,bytes,bits/s
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10.0)
    fields = line.decode().strip().split(",")
    assert len(fields) >= 9, line
    # iperf 2.1 leaves the 4-byte flags word it reads first out of its count.
    assert sent - int(fields[7]) in (0, 4), (line, sent)


async def test_iperf_client_sends_to_netstack(tap_stack: Stack, tap_netns: TapSandbox) -> None:
    iperf = require_program("iperf")
    sink = Discard()
    server = await tap_stack.start_server(sink.handle, port=5001)
    text = await in_netns(
        tap_netns, iperf, "-c", NETSTACK, "-p", str(server.port), "-t", "3", "-y", "C",
        timeout=20.0,
    )  # fmt: skip
    lines = [line for line in text.splitlines() if line.count(",") >= 8]
    assert lines, text
    transferred = int(lines[-1].split(",")[7])
    assert transferred > 0, text
    received = await asyncio.wait_for(sink.totals.get(), 10.0)
    assert received == transferred, text
    assert sink.totals.empty()  # one connection


# -- 9. loss on the wire -----------------------------------------------------------------------
Frame = bytes | bytearray | memoryview


def is_tcp(frame: Frame) -> bool:
    """An Ethernet frame carrying IPv4 (EtherType 0x0800) and in it TCP (protocol 6)."""
    return len(frame) > 34 and frame[12] == 0x08 and frame[13] == 0x00 and frame[23] == 6


class TcpFrame:
    """The fields of an Ethernet/IPv4/TCP frame these tests look at."""

    __slots__ = ("seq", "ack", "window", "payload_len", "sack")

    def __init__(self, frame: Frame) -> None:
        ihl = (frame[14] & 0x0F) * 4
        t = 14 + ihl
        offset = (frame[t + 12] >> 4) * 4
        self.seq = int.from_bytes(frame[t + 4 : t + 8], "big")
        self.ack = int.from_bytes(frame[t + 8 : t + 12], "big")
        self.window = int.from_bytes(frame[t + 14 : t + 16], "big")
        self.payload_len = int.from_bytes(frame[16:18], "big") - ihl - offset
        self.sack = False
        options, i = bytes(frame[t + 20 : t + offset]), 0
        while i < len(options) and options[i] != 0:  # kind 0: end of options
            if options[i] == 1:  # no-operation
                i += 1
                continue
            self.sack |= options[i] == 5
            if i + 1 >= len(options) or options[i + 1] < 2:
                break
            i += options[i + 1]

    @staticmethod
    def parse(frame: Frame) -> TcpFrame | None:
        if not is_tcp(frame) or len(frame) < 54:
            return None
        return TcpFrame(frame)


class FilterLink:
    """Wraps a link; ``drop_tx(frame)`` and ``drop_rx(frame)`` decide which frames the wire
    loses on the way out of and into netstack."""

    def __init__(
        self,
        link: Any,
        drop_tx: Callable[[Frame], bool],
        drop_rx: Callable[[memoryview], bool],
    ) -> None:
        self._link = link
        self._drop_tx = drop_tx
        self._drop_rx = drop_rx
        self.mac: MacAddress = link.mac
        self.mtu: int = link.mtu

    def transmit(self, frame: Frame) -> None:
        if not self._drop_tx(frame):
            self._link.transmit(frame)

    async def write(self, frame: Frame) -> None:
        self.transmit(frame)

    async def writev(self, parts: Sequence[Frame]) -> None:
        self.transmit(b"".join(parts))

    async def listen(self, on_frame: Callable[[memoryview], None]) -> None:
        def filtered(frame: memoryview) -> None:
            if not self._drop_rx(frame):
                on_frame(frame)

        await self._link.listen(filtered)

    def stats(self) -> Any:
        return self._link.stats()

    def reset_stats(self) -> None:
        self._link.reset_stats()

    async def disconnect(self) -> None:
        await self._link.disconnect()


class SegmentDropper:
    """Loses the n-th data segments netstack sends (first transmissions only) and counts,
    for each, the SACK-carrying duplicate ACKs the kernel sends before the retransmission."""

    def __init__(self, positions: set[int]) -> None:
        self.positions = positions
        self.sent = 0
        self.waiting: dict[int, list[int]] = {}  # seq of a lost segment -> windows of dupacks
        self.repaired: list[tuple[int, int, int]] = []  # (seq, dupacks, distinct windows)
        #: Lost segments that new data overtook after their third duplicate ACK: recovery
        #: did not start on it. (More than three may be counted on the wire before the
        #: retransmission when the kernel's ACKs arrive in one burst: the stack reads the
        #: burst, then sends, the retransmission first.)
        self.overtaken: set[int] = set()

    def drop_tx(self, frame: Frame) -> bool:
        tcp = TcpFrame.parse(frame)
        if tcp is None or tcp.payload_len <= 0:
            return False
        if tcp.seq in self.waiting:
            windows = self.waiting.pop(tcp.seq)
            self.repaired.append((tcp.seq, len(windows), len(set(windows))))
            return False
        self.overtaken.update(seq for seq, acks in self.waiting.items() if len(acks) >= 3)
        self.sent += 1
        if self.sent in self.positions:
            self.waiting[tcp.seq] = []
            return True
        return False

    def drop_rx(self, frame: memoryview) -> bool:
        tcp = TcpFrame.parse(frame)
        if tcp is not None and tcp.sack and tcp.ack in self.waiting:
            self.waiting[tcp.ack].append(tcp.window)
        return False


async def test_lost_segment_is_fast_retransmitted_after_sack_dupacks(
    tap_netns: TapSandbox, tmp_path: Path
) -> None:
    """RFC 6675 (2, 5): with SACK, every ACK that SACKs new data counts as a duplicate ACK,
    even when it also changes the advertised window (the kernel's grows while it autotunes its
    receive buffer); the third one, or IsLost(HighACK + 1), starts loss recovery. Waiting
    for the retransmission timer instead costs at least 200 ms per loss."""
    socat = require_program("socat")
    dropper = SegmentDropper({100, 200, 800})
    link = FilterLink(tap_netns.link, dropper.drop_tx, dropper.drop_rx)
    sink = tmp_path / "sink"
    data = body(4 * MIB, seed=17)
    async with (
        await Stack.open(link, ipv4=tap_netns.stack_ipv4) as stack,
        peer(tap_netns, socat, "-u", "TCP-LISTEN:9004,reuseaddr", f"OPEN:{sink},creat,trunc")
        as proc,
    ):  # fmt: skip
        await wait_listening(tap_netns, 9004)
        reader, writer = await connect_when_listening(stack, 9004)
        async with asyncio.timeout(TIMEOUT):
            writer.write(data)
            await writer.drain()
            writer.write_eof()
            assert await reader.read() == b""
            writer.close()
        await finished(proc)
    assert sha256(sink.read_bytes()) == sha256(data)
    assert len(dropper.repaired) == 3 and not dropper.waiting, dropper.repaired
    late = [(dupacks, windows) for seq, dupacks, windows in dropper.repaired
            if seq in dropper.overtaken]  # fmt: skip
    assert not late, (
        "lost segments retransmitted only after (SACK duplicate ACKs, distinct windows among "
        f"them): {late}; every repair: {dropper.repaired}"
    )


class RandomLoss:
    """Loses a seeded fraction of the TCP frames both ways."""

    def __init__(self, loss: float, seed: int) -> None:
        self.loss = loss
        self.rng = random.Random(seed)
        self.lost_tx = self.lost_rx = 0

    def drop_tx(self, frame: Frame) -> bool:
        if is_tcp(frame) and self.rng.random() < self.loss:
            self.lost_tx += 1
            return True
        return False

    def drop_rx(self, frame: memoryview) -> bool:
        if is_tcp(frame) and self.rng.random() < self.loss:
            self.lost_rx += 1
            return True
        return False


async def test_curl_both_ways_with_two_percent_loss(tap_netns: TapSandbox, tmp_path: Path) -> None:
    """Retransmission both ways against the kernel's SACK and fast retransmit: a download
    and an upload through a wire that loses 2% of the TCP frames in each direction. tshark
    checks what reached the wire, SACK blocks and retransmissions included."""
    curl = require_program("curl")
    tshark = require_program("tshark")
    loss = RandomLoss(0.02, seed=2544)
    capture = tmp_path / "lossy.pcap"  # what crossed the wire: inside the loss
    link = FilterLink(PcapLink(tap_netns.link, capture), loss.drop_tx, loss.drop_rx)
    size = 2 * MIB
    download, upload = tmp_path / "download", tmp_path / "upload"
    upload.write_bytes(body(size, seed=19))
    async with await Stack.open(link, ipv4=tap_netns.stack_ipv4) as stack:
        http = HttpServer()
        server = await stack.start_server(http.handle, port=8080)
        base = f"http://{NETSTACK}:{server.port}"
        text = await in_netns(
            tap_netns, curl, "-sS", "--max-time", "25", "-w", "%{http_code}\n",
            "-o", str(download), f"{base}/{size}",
        )  # fmt: skip
        assert text == "200\n"
        text = await in_netns(
            tap_netns, curl, "-sS", "--max-time", "25", "--data-binary", f"@{upload}",
            "-H", "Content-Type: application/octet-stream", f"{base}/upload",
        )  # fmt: skip
        assert text == sha256(upload.read_bytes())
        assert not http.errors
        retransmits = stack.stats()["tcp"]["retransmits"]
        mac = str(stack.link.mac)
    assert download.read_bytes() == body(size)
    assert loss.lost_tx > 0 and loss.lost_rx > 0
    assert retransmits > 0
    ours = f"eth.src == {mac}"
    problems = await tshark_problems(tshark, capture, ours)
    assert problems == "", f"tshark found problems:\n{problems}"
    # netstack told the kernel what it lost during the upload.
    assert await tshark_count(tshark, capture, f"{ours} && tcp.options.sack_le") > 0
