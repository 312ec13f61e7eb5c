"""Jumbo frames against the Linux kernel over TAP (PEERS.md): the TAP device's MTU raised to
9000 and 65520, TCP both ways and ping of the largest unfragmented size both ways, IPv4 and
IPv6; then netstack at 65520 talking through routers to a kernel whose path has a 1500-byte
link in the middle, so that path MTU discovery has to work in both directions (RFC 1191's
"fragmentation needed" and RFC 8201's Packet Too Big to netstack, the same to the kernel for
what it sends), and to a kernel on a 1500-byte link, whose MSS clamps what netstack sends."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import pathlib
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import pytest
from peerkit import body, in_netns, tshark_count, tshark_problems

from netstack import Stack
from netstack.link import PcapLink, TapLink
from netstack.netns import Namespace, open_tap_in_namespace
from netstack.testing import TapSandbox, require_net_admin, require_program

pytestmark = pytest.mark.peers

TIMEOUT = 30.0
BULK = 8 * 1024 * 1024
K4, N4 = "198.18.0.1", "198.18.0.2"
K6, N6 = "fd00:198:18::1", "fd00:198:18::2"
FAMILIES = [pytest.param("ipv4", id="ipv4"), pytest.param("ipv6", id="ipv6")]

#: Kernel-side helpers, run with ``python3 -c`` in a namespace. ``SEND``: connect to
#: HOST PORT, send BYTES (the same bytes as peerkit.body), half-close, wait for EOF.
#: ``RECV``: listen on HOST PORT, accept one connection, print the bytes' count and SHA-256
#: and the connection's TCP_MAXSEG.
SEND = """
import random, socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = random.Random(2544).randbytes(size)
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.create_connection((host, port), timeout=30)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
"""
RECV = """
import hashlib, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
l = socket.socket(fam, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((host, port))
l.listen(1)
print('ready', flush=True)
l.settimeout(30)
c, _ = l.accept()
c.settimeout(30)
h, n = hashlib.sha256(), 0
while d := c.recv(1 << 20):
    h.update(d)
    n += len(d)
mss = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
c.close()
print(n, h.hexdigest(), mss, flush=True)
"""


def _addrs(family: str) -> tuple[str, str]:
    return (K4, N4) if family == "ipv4" else (K6, N6)


def _mss(writer: asyncio.StreamWriter) -> int:
    mss: int = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    return mss


class _Sink:
    """A netstack server that reads each connection to EOF and queues (sha256, count, mss)."""

    def __init__(self) -> None:
        self.done: asyncio.Queue[tuple[str, int, int]] = asyncio.Queue()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        h, n = hashlib.sha256(), 0
        try:
            while chunk := await reader.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
            self.done.put_nowait((h.hexdigest(), n, _mss(writer)))
        finally:
            writer.close()


async def kernel_to_netstack(ns: Namespace, stack: Stack, host: str, size: int) -> tuple[int, int]:
    """The kernel in ``ns`` sends ``size`` bytes to netstack's server on ``host``; checks
    them; returns (the kernel's MSS, netstack's)."""
    sink = _Sink()
    server = await stack.start_server(sink, host, 5201)
    try:
        out = await ns.arun(
            sys.executable, "-I", "-c", SEND, host, "5201", str(size), timeout=TIMEOUT * 2
        )
        assert out.returncode == 0, out.stderr
        digest, count, netstack_mss = await asyncio.wait_for(sink.done.get(), TIMEOUT)
    finally:
        server.close()
    assert (count, digest) == (size, hashlib.sha256(body(size)).hexdigest())
    return int(out.stdout.split()[-1]), netstack_mss


async def netstack_to_kernel(ns: Namespace, stack: Stack, host: str, size: int) -> tuple[int, int]:
    """netstack sends ``size`` bytes to a kernel server on ``host`` in ``ns``; checks them;
    returns (netstack's MSS at the end, the kernel's)."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns.name, sys.executable, "-I", "-c", RECV, host, "5202",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        assert line.strip() == b"ready", line
        reader, writer = await stack.open_connection(host, 5202)
        data = body(size)
        writer.write(data)
        await asyncio.wait_for(writer.drain(), TIMEOUT * 2)
        writer.write_eof()
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT * 2)
        netstack_mss = _mss(writer)
        writer.close()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    count, digest, kernel_mss = line.split()
    assert (int(count), digest.decode()) == (size, hashlib.sha256(data).hexdigest())
    return netstack_mss, int(kernel_mss)


@asynccontextmanager
async def jumbo_tap(
    mtu: int, capture: pathlib.Path | None = None
) -> AsyncIterator[tuple[Namespace, TapLink, Stack]]:
    """The kernel at 198.18.0.1/24 and fd00:198:18::1/64 on a TAP device of MTU ``mtu``,
    netstack at .2 on the other end (recording what it sends and receives in ``capture``)."""
    require_net_admin()
    ns = Namespace.create()
    try:
        link = open_tap_in_namespace(ns, mtu=mtu)
        assert link.mtu == mtu
        wire = PcapLink(link, capture) if capture is not None else link
        async with await Stack.open(wire, ipv4=f"{N4}/24", ipv6=f"{N6}/64") as stack:
            yield ns, link, stack
    finally:
        ns.delete()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mtu", [9000, 65520])
async def test_tcp_both_ways_at_jumbo_mtu(mtu: int, family: str, tmp_path: pathlib.Path) -> None:
    tshark = require_program("tshark")
    kernel, local = _addrs(family)
    headers = 40 if family == "ipv4" else 60
    capture = tmp_path / "jumbo.pcap"
    async with jumbo_tap(mtu, capture) as (ns, link, stack):
        await stack.ping(kernel, timeout=5.0)
        rx0 = stack.stats()["link"]
        kernel_mss, netstack_mss = await kernel_to_netstack(ns, stack, local, BULK)
        rx1 = stack.stats()["link"]
        # Both MSSs near the MTU less the headers (and 12 bytes of timestamps at most).
        assert mtu - headers - 12 <= kernel_mss <= mtu - headers, kernel_mss
        assert mtu - headers - 12 <= netstack_mss <= mtu - headers, netstack_mss
        # The kernel's data came in frames near the MTU (not 1500-byte ones).
        frames = rx1["rx_packets"] - rx0["rx_packets"]
        assert (rx1["rx_bytes"] - rx0["rx_bytes"]) / frames > mtu / 2, frames

        netstack_mss, kernel_mss = await netstack_to_kernel(ns, stack, kernel, BULK)
        rx2 = stack.stats()["link"]
        assert mtu - headers - 12 <= netstack_mss <= mtu - headers, netstack_mss
        frames = rx2["tx_packets"] - rx1["tx_packets"]
        assert (rx2["tx_bytes"] - rx1["tx_bytes"]) / frames > mtu / 2, frames
        mac = stack.link.mac
    # Every jumbo frame netstack wrote has valid IP and TCP checksums (tshark, PEERS.md).
    ours = f"eth.src == {mac}"
    assert await tshark_problems(tshark, capture, ours) == ""
    big = await tshark_count(tshark, capture, f"{ours} && frame.len > {mtu - 100}")
    assert big > BULK // mtu // 2, big


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mtu", [9000, 65520])
async def test_ping_of_the_largest_unfragmented_size_both_ways(mtu: int, family: str) -> None:
    require_program("ping")
    kernel, local = _addrs(family)
    size = mtu - (28 if family == "ipv4" else 48)
    async with jumbo_tap(mtu) as (ns, link, stack):
        frags = "fragments_sent"
        ip = stack.stats()[family]
        assert await stack.ping(kernel, size=size, timeout=5.0) > 0
        assert stack.stats()[family][frags] == ip[frags]
        flag = "-4" if family == "ipv4" else "-6"
        # -M do: the kernel may not fragment either.
        out = await in_netns(
            TapSandbox(ns, link), "ping", flag, "-n", "-c", "3", "-i", "0.2", "-W", "2",
            "-M", "do", "-s", str(size), local,
        )  # fmt: skip
        assert " 0% packet loss" in out, out
        assert stack.stats()[family]["fragments_received"] == ip["fragments_received"]
        # One byte more does not fit, and the kernel says so rather than sending it.
        proc = await ns.arun(
            "ping", flag, "-n", "-c", "1", "-W", "1", "-M", "do", "-s", str(size + 1), local,
            timeout=TIMEOUT, check=False,
        )  # fmt: skip
        assert proc.returncode != 0 and "message too long" in proc.stderr, proc


UDP_CLIENT = """
import random, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(5)
for size in map(int, sys.argv[3:]):
    data = random.Random(size).randbytes(size)
    s.sendto(data, (host, port))
    echo, _ = s.recvfrom(70000)
    assert echo == data, (size, len(echo))
print('ok', flush=True)
"""


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self.transport.sendto(data, addr)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mtu", [9000, 65520])
async def test_udp_datagrams_up_to_64k_both_ways(mtu: int, family: str) -> None:
    """The kernel sends UDP datagrams of one frame and of several fragments to netstack's
    echo server; netstack sends them back, fragmenting those larger than the MTU."""
    kernel, local = _addrs(family)
    headers = 28 if family == "ipv4" else 48
    largest = 65507 if family == "ipv4" else 65527
    sizes = sorted({mtu - headers, 20000, largest})
    async with jumbo_tap(mtu) as (ns, link, stack):
        await stack.ping(kernel, timeout=5.0)
        transport, _ = await stack.create_datagram_endpoint(_UdpEcho, local_addr=(local, 7007))
        try:
            before = stack.stats()[family]
            out = await ns.arun(sys.executable, "-I", "-c", UDP_CLIENT, local, "7007",
                                *map(str, sizes), timeout=TIMEOUT)  # fmt: skip
            assert out.stdout.strip() == "ok", out
            after = stack.stats()[family]
            # One frame for the datagram that fits; fragments for the others, both ways.
            fragmented = sum(1 for n in sizes if n > mtu - headers)
            assert after["reassembled"] - before["reassembled"] == fragmented
            assert after["fragmented"] - before["fragmented"] == fragmented
        finally:
            transport.close()


# -- mixed MTUs: routers in between ------------------------------------------------------------
@dataclass
class Path:
    """netstack on a TAP device (MTU 65520) to router ``r1``; ``r1`` to ``r2`` over a veth
    pair of MTU ``narrow``; ``r2`` to the ``far`` kernel over a veth pair of MTU ``far_mtu``
    (the far kernel's own MTU)."""

    r1: Namespace
    r2: Namespace
    far: Namespace
    link: TapLink
    far4: str = "198.18.2.2"
    far6: str = "fd00:198:18:2::2"


def _veth(a: Namespace, b: Namespace, tag: str, mtu: int) -> tuple[str, str]:
    name_a, name_b = f"nsj{os.getpid()}{tag}a"[:15], f"nsj{os.getpid()}{tag}b"[:15]
    a.ip("link", "add", name_a, "mtu", str(mtu), "type", "veth",
         "peer", "name", name_b, "mtu", str(mtu), "netns", b.name)  # fmt: skip
    a.ip("link", "set", name_a, "up")
    b.ip("link", "set", name_b, "up")
    return name_a, name_b


@contextmanager
def routed_path(narrow: int, far_mtu: int) -> Iterator[Path]:
    """Three namespaces, routed: 198.18.0.0/24 (TAP) - r1 - 198.18.1.0/24 (``narrow``) - r2 -
    198.18.2.0/24 (``far_mtu``) - far; the same with fd00:198:18:N::/64."""
    require_net_admin()
    made: list[Namespace] = []
    try:
        r1, r2, far = (Namespace.create() for _ in range(3))
        made += [r1, r2, far]
        link = open_tap_in_namespace(r1, kernel_ipv4="198.18.0.1/24",
                                     kernel_ipv6="fd00:198:18::1/64", mtu=65520)  # fmt: skip
        mid_a, mid_b = _veth(r1, r2, "m", narrow)
        end_a, end_b = _veth(r2, far, "e", far_mtu)
        for ns, dev, v4, v6 in (
            (r1, mid_a, "198.18.1.1/24", "fd00:198:18:1::1/64"),
            (r2, mid_b, "198.18.1.2/24", "fd00:198:18:1::2/64"),
            (r2, end_a, "198.18.2.1/24", "fd00:198:18:2::1/64"),
            (far, end_b, "198.18.2.2/24", "fd00:198:18:2::2/64"),
        ):
            ns.ip("addr", "add", v4, "dev", dev)
            ns.ip("-6", "addr", "add", v6, "dev", dev, "nodad")
        for ns in (r1, r2):
            ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            ns.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        r1.ip("route", "add", "198.18.2.0/24", "via", "198.18.1.2")
        r1.ip("-6", "route", "add", "fd00:198:18:2::/64", "via", "fd00:198:18:1::2")
        r2.ip("route", "add", "198.18.0.0/24", "via", "198.18.1.1")
        r2.ip("-6", "route", "add", "fd00:198:18::/64", "via", "fd00:198:18:1::1")
        far.ip("route", "add", "default", "via", "198.18.2.1")
        far.ip("-6", "route", "add", "default", "via", "fd00:198:18:2::1")
        yield Path(r1, r2, far, link)
    finally:
        for ns in reversed(made):
            ns.delete()


@asynccontextmanager
async def stack_on(path: Path) -> AsyncIterator[Stack]:
    async with await Stack.open(path.link, ipv4=f"{N4}/24", gateway=K4, ipv6=f"{N6}/64") as stack:
        stack.add_route("fd00:198:18::/48", gateway=K6)
        await stack.ping(K4, timeout=5.0)
        await stack.ping(K6, timeout=5.0)
        yield stack


@pytest.mark.parametrize("family", FAMILIES)
async def test_path_mtu_discovery_through_a_narrow_middle_link(family: str) -> None:
    """netstack (65520) and the far kernel (65520) each offer a 65 KB MSS, but the link
    between the routers carries 1500: netstack's first big segments come back as ICMP
    "fragmentation needed" (IPv4, DF set) or Packet Too Big (IPv6) from r1, and netstack
    must shrink its segments and resend; the kernel does the same for what it sends."""
    with routed_path(narrow=1500, far_mtu=65520) as path:
        far = path.far4 if family == "ipv4" else path.far6
        local = N4 if family == "ipv4" else N6
        headers = 40 if family == "ipv4" else 60
        async with stack_on(path) as stack:
            icmp = "icmp" if family == "ipv4" else "icmpv6"
            errors0 = stack.stats()[icmp]["errors_received"]
            netstack_mss, kernel_mss = await netstack_to_kernel(path.far, stack, far, BULK)
            # The far kernel offered its 65 KB MSS; the path lowered netstack's.
            assert kernel_mss > 60000, kernel_mss
            assert netstack_mss <= 1500 - headers, netstack_mss
            assert stack.stats()[icmp]["errors_received"] > errors0
            if family == "ipv6":
                assert stack.stats()["icmpv6"]["packet_too_big_received"] > 0
            # The path MTU is remembered for the destination (RFC 1191 5, RFC 8201 5.2):
            # a second connection sends what fits from its first segment, no ICMP needed.
            errors1 = stack.stats()[icmp]["errors_received"]
            netstack_mss, _ = await netstack_to_kernel(path.far, stack, far, BULK)
            assert netstack_mss <= 1500 - headers, netstack_mss
            assert stack.stats()[icmp]["errors_received"] == errors1
            # And the other way: the kernel learns the path from r2 and sends what fits;
            # netstack's SYN-ACK already offers the MSS of the path it knows.
            kernel_mss, netstack_mss = await kernel_to_netstack(path.far, stack, local, BULK)
            assert netstack_mss <= 1500 - headers, netstack_mss


@pytest.mark.parametrize("family", FAMILIES)
async def test_mss_clamps_to_a_kernel_on_a_narrow_link(family: str) -> None:
    """The far kernel's own link is 1500 bytes: its SYN's MSS clamps netstack's segments
    from the start (no ICMP needed), and big datagrams take the path MTU: IPv4 fragments at
    the router, IPv6 after a Packet Too Big (netstack then fragments itself, RFC 8201)."""
    with routed_path(narrow=1500, far_mtu=1500) as path:
        far = path.far4 if family == "ipv4" else path.far6
        local = N4 if family == "ipv4" else N6
        headers = 40 if family == "ipv4" else 60
        async with stack_on(path) as stack:
            netstack_mss, kernel_mss = await netstack_to_kernel(path.far, stack, far, BULK)
            assert 1500 - headers - 12 <= netstack_mss <= 1500 - headers
            kernel_mss, _ = await kernel_to_netstack(path.far, stack, local, BULK)
            assert 1500 - headers - 12 <= kernel_mss <= 1500 - headers
            # An echo request bigger than the path: IPv4 routers fragment it; IPv6's send a
            # Packet Too Big, which fails that ping as on Linux (EMSGSIZE), and the next
            # leaves netstack in fragments that fit the path.
            errors: list[OSError] = []
            rtt = None
            for _ in range(3):
                try:
                    rtt = await stack.ping(far, size=8000, timeout=2.0)
                    break
                except OSError as exc:
                    errors.append(exc)
            assert rtt is not None, errors
            if family == "ipv6":
                assert [e.errno for e in errors] == [errno.EMSGSIZE]
                assert stack.stats()["ipv6"]["fragments_sent"] > 0
            else:
                assert errors == []
