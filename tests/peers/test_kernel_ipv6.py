"""netstack's IPv6 against the Linux kernel over a TAP device in a network namespace (PEERS.md):
the kernel's ``ping -6`` to netstack's link-local and global addresses (also fragmented),
netstack's ping to the kernel, SLAAC from ``radvd``'s Router Advertisements (prefix, MTU,
RDNSS and DNSSL, with ``dnsmasq`` answering through the search list), ``curl -6``
downloading from a netstack server, netstack fetching from ``python3 -m http.server --bind
::``, UDP with socat, MLDv1 compatibility with a Linux bridge as the MLDv1 querier, and tshark
decoding every frame."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from peerkit import (
    HttpServer,
    body,
    in_netns,
    kernel_link_local,
    peer,
    read_to_eof,
    sha256,
    tshark_problems,
    wait_listening,
)

from netstack import Stack
from netstack.link import PcapLink
from netstack.testing import TapSandbox, require_program

pytestmark = pytest.mark.peers

KERNEL6 = "fd00:198:18::1"
NETSTACK6 = "fd00:198:18::2"
MIB = 1024 * 1024


def received(ping_output: str) -> int:
    match = re.search(r"(\d+) received", ping_output)
    assert match, ping_output
    return int(match.group(1))


@pytest.fixture
async def stack6(tap_netns: TapSandbox, tmp_path: Path) -> AsyncIterator[Stack]:
    """netstack on the TAP device with IPv4 and fd00:198:18::2/64 (RFC timings: DAD takes
    a second or two), every frame captured for tshark."""
    link = PcapLink(tap_netns.link, tmp_path / "ipv6.pcap")
    stack = await Stack.open(link, ipv4=tap_netns.stack_ipv4, ipv6=tap_netns.stack_ipv6)
    try:
        yield stack
    finally:
        await stack.close()


def link_local(stack: Stack) -> str:
    return next(str(a.ip) for a in stack.addresses if a.version == 6 and a.ip.is_link_local)


async def test_kernel_pings_netstack(stack6: Stack, tap_netns: TapSandbox, tmp_path: Path) -> None:
    require_program("ping")
    tshark = require_program("tshark")
    out = await in_netns(tap_netns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", NETSTACK6)
    assert received(out) == 3
    target = f"{link_local(stack6)}%{tap_netns.dev}"
    out = await in_netns(tap_netns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", target)
    assert received(out) == 3
    out = await in_netns(
        tap_netns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "-s", "4000", NETSTACK6
    )
    assert received(out) == 3
    ipv6 = stack6.stats()["ipv6"]
    assert ipv6["reassembled"] >= 3  # the kernel's 4048-byte requests came in fragments
    assert ipv6["fragments_sent"] >= 9  # and the replies went back the same way
    assert stack6.stats()["icmpv6"]["echo_replies_sent"] >= 9
    # The kernel resolved netstack by neighbour discovery.
    neigh = await in_netns(tap_netns, "ip", "-6", "neigh", "show", "dev", tap_netns.dev)
    assert NETSTACK6 in neigh, neigh
    await stack6.close()
    assert await tshark_problems(tshark, tmp_path / "ipv6.pcap", "ipv6") == ""


async def test_netstack_pings_kernel(stack6: Stack, tap_netns: TapSandbox) -> None:
    for size in (56, 1452, 4000, 20000):
        rtt = await stack6.ping(KERNEL6, timeout=2.0, size=size)
        assert 0 < rtt < 2.0
    assert await stack6.ping(await kernel_link_local(tap_netns), timeout=2.0) > 0
    assert stack6.stats()["ipv6"]["fragments_sent"] >= 3


RADVD_CONF = """
interface {dev} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    AdvLinkMTU 1400;
    prefix fd00:198:19::/64 {{
        AdvOnLink on;
        AdvAutonomous on;
        AdvValidLifetime 3600;
        AdvPreferredLifetime 1800;
    }};
    RDNSS fd00:198:18::53 {{
    }};
}};
"""


async def test_slaac_from_radvd(tap_netns: TapSandbox, tmp_path: Path) -> None:
    radvd = require_program("radvd")
    require_program("ping")
    conf = tmp_path / "radvd.conf"
    conf.write_text(RADVD_CONF.format(dev=tap_netns.dev))
    # radvd advertises only on a router: forwarding on, in the namespace alone.
    await in_netns(tap_netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")
    # The router's own address in the advertised prefix (radvd adds no route for it).
    await in_netns(
        tap_netns, "ip", "-6", "addr", "add", "fd00:198:19::1/64", "dev", tap_netns.dev, "nodad"
    )
    stack = await Stack.open(tap_netns.link, ipv6="auto", close_link=False)
    try:
        async with peer(
            tap_netns, radvd, "--nodaemon", "-C", str(conf), "-p", str(tmp_path / "radvd.pid"),
            "-m", "stderr", "-d", "1",
        ):  # fmt: skip
            async with asyncio.timeout(20):
                while True:
                    slaac = [
                        a for a in stack.addresses
                        if getattr(a, "origin", "") == "slaac" and a.state == "preferred"
                    ]  # fmt: skip
                    if slaac:
                        break
                    await asyncio.sleep(0.1)
            address = slaac[0]
            assert address.ip in ipaddress.IPv6Network("fd00:198:19::/64")
            assert stack.dns_servers == ["fd00:198:18::53"]
            assert stack.ipv6.mtu == 1400
            routers = [r.gateway for r in stack.routes if r.network.prefixlen == 0]
            assert routers == [ipaddress.IPv6Address(await kernel_link_local(tap_netns))]
            # The kernel reaches the new address; netstack answers from it.
            out = await in_netns(
                tap_netns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", str(address.ip)
            )
            assert received(out) == 3
    finally:
        await stack.close()


RADVD_DNSSL_CONF = """
interface {dev} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    prefix fd00:198:19::/64 {{
        AdvOnLink on;
        AdvAutonomous on;
    }};
    RDNSS fd00:198:18::1 {{
    }};
    DNSSL corp.test lab.corp.test {{
    }};
}};
"""


async def test_dnssl_from_radvd_reaches_the_resolver(tap_netns: TapSandbox, tmp_path: Path) -> None:
    # RFC 8106: radvd announces a name server (dnsmasq, in the namespace) and a DNS Search
    # List; a short name then resolves through the search list alone.
    radvd = require_program("radvd")
    dnsmasq = require_program("dnsmasq")
    conf = tmp_path / "radvd.conf"
    conf.write_text(RADVD_DNSSL_CONF.format(dev=tap_netns.dev))
    await in_netns(tap_netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")
    await in_netns(
        tap_netns, "ip", "-6", "addr", "add", "fd00:198:19::1/64", "dev", tap_netns.dev, "nodad"
    )
    dnsmasq_argv = [
        dnsmasq, "-k", "--conf-file=/dev/null",
        # PEERS.md: nothing forwarded out of the namespace, no host files.
        "--no-resolv", "--no-hosts", "--bind-interfaces", f"--interface={tap_netns.dev}",
        f"--listen-address={KERNEL6}", "--port=53", f"--pid-file={tmp_path / 'dnsmasq.pid'}",
        "--user=root", "--log-facility=-", "--local=/corp.test/", "--local-ttl=60",
        "--host-record=host.lab.corp.test,fd00:198:19::77",
    ]  # fmt: skip
    stack = await Stack.open(tap_netns.link, ipv6="auto", close_link=False)
    try:
        async with (
            peer(tap_netns, *dnsmasq_argv),
            peer(
                tap_netns,
                radvd,
                "--nodaemon",
                "-C",
                str(conf),
                "-p",
                str(tmp_path / "radvd.pid"),
                "-m",
                "stderr",
                "-d",
                "1",
            ),  # fmt: skip
        ):
            await wait_listening(tap_netns, 53)
            async with asyncio.timeout(20):
                while "lab.corp.test" not in stack.dns.search or not any(
                    getattr(a, "origin", "") == "slaac" and a.state == "preferred"
                    for a in stack.addresses
                ):
                    await asyncio.sleep(0.1)
            assert stack.dns.search == ["corp.test", "lab.corp.test"]
            assert stack.dns_servers == [KERNEL6]
            # "host" is host.corp.test (NXDOMAIN), then host.lab.corp.test.
            assert await stack.resolve("host") == ["fd00:198:19::77"]
    finally:
        await stack.close()


async def test_curl6_downloads_from_netstack(
    stack6: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    curl = require_program("curl")
    http = HttpServer()
    server = await stack6.start_server(http.handle, port=8080)  # both families
    out = tmp_path / "download"
    size = 4 * MIB
    text = await in_netns(
        tap_netns, curl, "-6", "-g", "-sS", "--max-time", "25", "-o", str(out),
        "-w", "%{http_code} %{size_download} %{remote_ip}", f"http://[{NETSTACK6}]:{server.port}/{size}",
    )  # fmt: skip
    assert text == f"200 {size} {NETSTACK6}"
    assert sha256(out.read_bytes()) == sha256(body(size))
    assert not http.errors
    assert stack6.stats()["ipv6"]["fragments_sent"] == 0  # TCP sized its segments for IPv6


async def test_netstack_fetches_from_http_server_bound_to_ipv6(
    stack6: Stack, tap_netns: TapSandbox, tmp_path: Path
) -> None:
    data = body(4 * MIB, seed=66)
    (tmp_path / "file.bin").write_bytes(data)
    async with peer(
        tap_netns, sys.executable, "-m", "http.server", "8000", "--bind", "::",
        "--directory", str(tmp_path),
    ):  # fmt: skip
        await wait_listening(tap_netns, 8000)
        async with asyncio.timeout(30):
            while True:
                try:
                    reader, writer = await stack6.open_connection(KERNEL6, 8000)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.1)
            assert writer.get_extra_info("peername") == (KERNEL6, 8000, 0, 0)
            writer.write(f"GET /file.bin HTTP/1.0\r\nHost: [{KERNEL6}]:8000\r\n\r\n".encode())
            response = await read_to_eof(reader)
            writer.close()
    head, _, got = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0].split()[1] == b"200", head
    assert sha256(got) == sha256(data)


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[object, ...]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))


async def test_udp6_with_socat_and_port_unreachable(stack6: Stack, tap_netns: TapSandbox) -> None:
    socat = require_program("socat")
    server = tap_netns.popen(socat, "-T", "10", "UDP6-RECVFROM:7007,fork", "PIPE")
    try:
        await asyncio.sleep(0.3)
        t, proto = await stack6.create_datagram_endpoint(Collector, remote_addr=(KERNEL6, 7007))
        for message in (b"hello kernel", bytes(range(256)) * 16):  # the second is fragmented
            t.sendto(message)
            data, addr = await asyncio.wait_for(proto.queue.get(), 5.0)
            assert data == message and addr == (KERNEL6, 7007, 0, 0)
        t.close()
    finally:
        server.kill()
        server.wait()
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", tap_netns.name, socat, "-T", "2", "-", f"UDP6:[{NETSTACK6}]:9",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(b"closed port\n"), 10.0)
    assert b"Connection refused" in err  # the kernel turned our ICMPv6 into ECONNREFUSED
    assert stack6.stats()["icmpv6"]["errors_sent"] >= 1


async def test_mldv1_querier_of_a_linux_bridge(tap_netns: TapSandbox, tmp_path: Path) -> None:
    # The Linux bridge as an MLDv1 querier (mcast_mld_version 1): RFC 3810 8.2.1 puts
    # netstack in MLDv1 compatibility mode, so it answers with MLDv1 Reports (type 131), and
    # the bridge learns its groups from them (its multicast database).
    tshark = require_program("tshark")
    dev = tap_netns.dev
    await in_netns(
        tap_netns, "ip", "link", "add", "br0", "type", "bridge",
        "mcast_snooping", "1", "mcast_mld_version", "1",
        # In centiseconds: responses within 1 s, queries every second while starting up.
        "mcast_query_response_interval", "100",
        "mcast_startup_query_interval", "100", "mcast_query_interval", "200",
    )  # fmt: skip
    await in_netns(tap_netns, "ip", "link", "set", dev, "master", "br0")
    await in_netns(tap_netns, "ip", "link", "set", "br0", "up")
    capture = tmp_path / "mld.pcap"
    link = PcapLink(tap_netns.link, capture)
    stack = await Stack.open(link, ipv6="fd00:198:18::2/64")
    try:
        await stack.wait_ipv6_ready(10)
        # The bridge's queries come from its link-local address: none is sent while that is
        # tentative. The querier starts once both sides are ready.
        async with asyncio.timeout(10):
            while True:
                out = await in_netns(tap_netns, "ip", "-6", "addr", "show", "dev", "br0")
                if "scope link" in out and "tentative" not in out:
                    break
                await asyncio.sleep(0.1)
        await in_netns(tap_netns, "ip", "link", "set", "br0", "type", "bridge",
                       "mcast_querier", "1")  # fmt: skip
        async with asyncio.timeout(20):
            while stack.stats()["ipv6"]["mld_v1_reports_sent"] < 2:
                await asyncio.sleep(0.1)
            while True:
                mdb = await in_netns(tap_netns, "bridge", "mdb", "show", "dev", "br0")
                if "ff02::1:ff00:2" in mdb:
                    break
                await asyncio.sleep(0.2)
        assert f"port {dev}" in mdb, mdb
        ipv6 = stack.stats()["ipv6"]
        assert ipv6["mld_version"] == 1
        v2_sent = ipv6["mld_reports_sent"]
        await asyncio.sleep(2.5)  # more queries: still MLDv1 only
        assert stack.stats()["ipv6"]["mld_reports_sent"] == v2_sent
    finally:
        await stack.close()
    # What went over the wire: the bridge's MLDv1 queries, and from netstack MLDv1 reports
    # (good checksums, each to the group's own address) and no MLDv2 report after the first
    # query. (The kernel's own reports are in the capture too: it is a host on br0.)
    proc = await asyncio.create_subprocess_exec(
        tshark, "-n", "-r", str(capture),
        "-Y", " || ".join(f"icmpv6.type == {t}" for t in (130, 131, 132, 143)),
        "-T", "fields", "-e", "eth.src", "-e", "icmpv6.type", "-e", "ipv6.plen",
        "-e", "ipv6.dst", "-e", "icmpv6.mld.multicast_address", "-e", "icmpv6.checksum.status",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    rows = [line.split("\t") for line in out.decode().splitlines() if line.strip()]
    first_query = next(i for i, r in enumerate(rows) if r[1] == "130")
    assert rows[first_query][2] == "32"  # 24 bytes of MLDv1 query and the 8-byte Router Alert
    ours = [r for r in rows[first_query:] if r[0] == stack.mac]
    assert ours and {r[1] for r in ours} == {"131"}, rows
    assert all(r[3] == r[4] and r[5] == "1" for r in ours), ours
