"""netstack against the Linux kernel over a TAP device in a network namespace (PEERS.md):
ARP, ICMP echo both ways (with fragmentation and reassembly), UDP echo with socat both ways,
and tshark checking every frame netstack wrote."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from peerkit import in_netns, tshark_problems

from netstack import Stack
from netstack.link import PcapLink, PcapWriter
from netstack.proto.ipv4.wire import build_header_into
from netstack.proto.tcp.wire import build_into as tcp_build_into
from netstack.proto.udp.wire import build_into
from netstack.testing import TapSandbox, require_program

pytestmark = pytest.mark.peers


def received(ping_output: str) -> int:
    match = re.search(r"(\d+) received", ping_output)
    assert match, ping_output
    return int(match.group(1))


async def test_kernel_pings_netstack(tap_stack: Stack, tap_netns: TapSandbox) -> None:
    require_program("ping")
    out = await in_netns(tap_netns, "ping", "-c", "5", "-i", "0.2", "-W", "2", "198.18.0.2")
    assert received(out) == 5
    assert tap_stack.stats()["icmp"]["echo_replies_sent"] >= 5


async def test_kernel_pings_netstack_with_fragments(
    tap_stack: Stack, tap_netns: TapSandbox
) -> None:
    require_program("ping")
    out = await in_netns(
        tap_netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "4000", "198.18.0.2"
    )
    assert received(out) == 3
    ipv4 = tap_stack.stats()["ipv4"]
    assert ipv4["reassembled"] >= 3  # the kernel's 4028-byte requests came in 3 pieces
    assert ipv4["fragments_sent"] >= 9  # and the replies went back the same way


async def test_netstack_pings_kernel(tap_stack: Stack, tap_netns: TapSandbox) -> None:
    for size in (56, 1472, 4000, 20000):
        rtt = await tap_stack.ping(tap_netns.kernel_ipv4, timeout=2.0, size=size)
        assert 0 < rtt < 2.0
    arp = dict((ip, state) for ip, _, state in tap_stack.arp_table())
    assert arp["198.18.0.1"] in ("reachable", "stale", "delay", "probe")


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def test_udp_echo_against_socat_server(tap_stack: Stack, tap_netns: TapSandbox) -> None:
    socat = require_program("socat")
    server = tap_netns.popen(socat, "-T", "10", "UDP4-RECVFROM:7007,fork", "PIPE")
    try:
        await asyncio.sleep(0.3)  # socat binds
        t, proto = await tap_stack.create_datagram_endpoint(
            Collector, remote_addr=("198.18.0.1", 7007)
        )
        for message in (b"hello kernel", bytes(range(256)) * 16):  # the second is fragmented
            t.sendto(message)
            data, addr = await asyncio.wait_for(proto.queue.get(), 5.0)
            assert data == message and addr == ("198.18.0.1", 7007)
        t.close()
    finally:
        server.kill()
        server.wait()


async def test_socat_client_against_netstack_server(
    tap_stack: Stack, tap_netns: TapSandbox
) -> None:
    socat = require_program("socat")
    await tap_stack.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
    for message in ("hello netstack", "x" * 3000):
        out = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", tap_netns.name, socat, "-T", "3", "-", "UDP4:198.18.0.2:7",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        reply, _ = await asyncio.wait_for(out.communicate(message.encode()), 10.0)
        assert reply.decode() == message
    assert tap_stack.stats()["udp"]["rx_packets"] >= 2


async def test_kernel_gets_port_unreachable(tap_stack: Stack, tap_netns: TapSandbox) -> None:
    socat = require_program("socat")
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", tap_netns.name, socat, "-T", "2", "-", "UDP4:198.18.0.2:9",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(b"closed port\n"), 10.0)
    assert b"Connection refused" in err  # the kernel turned our ICMP into ECONNREFUSED
    assert tap_stack.stats()["icmp"]["errors_sent"] >= 1


#: The two ends of the hand-made frames below.
SRC, DST = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])


def _sound_and_spoiled(
    capture: Path,
    l4_len: int,
    payload: bytes,
    proto: int,
    build_l4: Callable[[bytearray], None],
) -> None:
    """Write ``capture``: an IPv4 frame from :data:`SRC` to :data:`DST` carrying ``payload``
    behind a TCP or UDP header (``proto``) that ``build_l4`` writes, then the same frame
    with the transport checksum spoiled."""
    frame = bytearray(14 + 20 + l4_len + len(payload))
    frame[0:14] = bytes.fromhex("0200000000020200000000010800")
    frame[34 + l4_len :] = payload
    build_l4(frame)
    build_header_into(frame, 14, len(frame) - 14, 1, 0, 64, proto, SRC, DST)
    with PcapWriter(capture) as w:
        w.write(bytes(frame), 0.0)
        frame[34 + (16 if proto == 6 else 6)] ^= 0x55  # the TCP or UDP checksum
        w.write(bytes(frame), 1.0)


async def test_tshark_check_catches_bad_checksums(tmp_path: Path) -> None:
    """The check above can fail: a UDP datagram with a wrong checksum is reported."""
    tshark = require_program("tshark")
    capture = tmp_path / "check.pcap"

    def udp(f: bytearray) -> None:
        build_into(f, 34, 1000, 7, SRC, DST)

    _sound_and_spoiled(capture, 8, b"hello", 17, udp)
    problems = await tshark_problems(tshark, capture, "udp")
    assert len(problems.splitlines()) == 1, problems


#: The first 109 bytes of a segment of random test data that tshark's Thrift heuristic took
#: for a Thrift call, then found malformed (a jumbo-frame test failed on it once in CI).
LOOKS_LIKE_THRIFT = bytes.fromhex(
    "8221c4b5c7cc1f8b75136ae768c6e480bfeded5540bfab61333fe1c1d8f56b15923a8a8c362ad703fb99"
    "85b3fd1a49b704c6b9357c26a08bbead875f30d377bf499c0b6918bd1b9e3db05ecca631be2fefc91927"
    "31d42c56e810fd35b5966511a5a9aaf808629afed6d0f02cd3"
)


async def test_tshark_check_reads_tcp_payload_as_data(tmp_path: Path) -> None:
    """What a test's TCP stream carries is not a protocol tshark should parse: a sound segment
    whose bytes happen to look like a malformed Thrift call is no problem, one with a wrong
    checksum still is."""
    tshark = require_program("tshark")
    capture = tmp_path / "thrift.pcap"

    def tcp(f: bytearray) -> None:
        tcp_build_into(f, 34, 52976, 5202, 1, 1, 0x18, 1000, b"", SRC, DST)

    _sound_and_spoiled(capture, 20, LOOKS_LIKE_THRIFT, 6, tcp)
    problems = await tshark_problems(tshark, capture, "tcp")
    assert len(problems.splitlines()) == 1 and "CHECKSUM INCORRECT" in problems, problems


async def test_every_frame_decodes_in_tshark(tap_netns: TapSandbox, tmp_path: Path) -> None:
    tshark = require_program("tshark")
    require_program("ping")
    socat = require_program("socat")
    capture = tmp_path / "netstack.pcap"
    link = PcapLink(tap_netns.link, capture)
    async with await Stack.open(link, ipv4=tap_netns.stack_ipv4) as stack:
        await stack.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
        await in_netns(tap_netns, "ping", "-c", "2", "-i", "0.2", "-s", "3000", "198.18.0.2")
        await stack.ping("198.18.0.1", size=5000, timeout=2.0)
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", tap_netns.name, socat, "-T", "2", "-", "UDP4:198.18.0.2:7",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.wait_for(proc.communicate(b"y" * 2500), 10.0)
        t, _ = await stack.create_datagram_endpoint(Collector)
        t.sendto(b"to a closed port", ("198.18.0.1", 9))
        await asyncio.sleep(0.2)
        mac = str(stack.link.mac)
    nstat = await in_netns(tap_netns, "nstat", "-az")
    for counter in ("IpInHdrErrors", "IcmpInCsumErrors", "UdpInCsumErrors", "IpReasmFails"):
        match = re.search(rf"^{counter}\s+(\d+)", nstat, re.M)
        assert match is None or match.group(1) == "0", f"kernel counted {counter}"
    ours = f"eth.src == {mac}"
    problems = await tshark_problems(tshark, capture, ours)
    assert problems == "", f"tshark found problems:\n{problems}"
    count = await asyncio.create_subprocess_exec(
        tshark, "-n", "-r", str(capture), "-Y", ours,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    listed, _ = await asyncio.wait_for(count.communicate(), 60.0)
    lines = listed.decode().splitlines()
    assert len(lines) >= 10, "the capture should hold what netstack sent"
    text = listed.decode()
    for proto in ("ARP", "ICMP", "UDP", "IPv4"):
        assert proto in text, f"no {proto} frame from netstack in the capture"
