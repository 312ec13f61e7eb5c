"""A destination on the link that nobody answers for (no ARP reply, no Neighbor
Advertisement): what Linux does, netstack does.

Linux gives up on an address after 3 unanswered requests a second apart (``mcast_solicit``,
RFC 4861's MAX_MULTICAST_SOLICIT) and fails each packet queued for it (RFC 4861 7.2.2,
RFC 1122 2.3.2.2): a ``connect()`` fails with EHOSTUNREACH about 3 s after it began, over IPv4
and IPv6, and again for the next attempt; a connected UDP socket is not told (host unreachable
is a soft error, reported only with IP_RECVERR), the datagram is dropped. The in-memory tests
use a quick resolution (requests 50 ms apart) on a cable with nobody at the other end; the
peer test puts the kernel and netstack side by side on one TAP link, with the default timers.
"""

from __future__ import annotations

import asyncio
import errno
import json
import sys
from typing import Any

import pytest

from netstack import Stack, StackConfig
from netstack.link import MemoryLink
from netstack.proto.ipv6.addrconf import AddrconfConfig
from netstack.proto.ipv6.layer import IPv6Config
from netstack.proto.neighbour.cache import NeighbourConfig
from netstack.testing import TapSandbox

#: A quick address resolution: 3 requests 50 ms apart.
QUICK = NeighbourConfig(retrans_time=0.05, max_requests=3)
#: The bound on a whole test (a connect that fell back to SYN retries would take 2 minutes).
BOUND = 10.0
ABSENT = {4: "198.18.0.99", 6: "fd00::99"}


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


@pytest.fixture
async def lonely() -> Any:
    """A stack alone on its cable: 198.18.0.1/24 and fd00::1/64, nobody else."""
    config = StackConfig(
        arp=QUICK,
        ipv6=IPv6Config(
            neighbour=QUICK,
            addrconf=AddrconfConfig(retrans_timer=0.01, max_rtr_solicitation_delay=0.01),
        ),
    )
    link, _nobody = MemoryLink.pair()
    async with await Stack.open(
        link, ipv4="198.18.0.1/24", ipv6="fd00::1/64", config=config
    ) as stack:
        yield stack


def unresolved_drops(stack: Stack, family: int) -> int:
    """Packets ARP or neighbour discovery dropped for want of an answer."""
    stats = stack.stats()
    if family == 4:
        return int(stats["arp"]["drops"].get("unresolved", 0))
    return int(stats["ipv6"]["drops"].get("ndp_unresolved", 0))


@pytest.mark.parametrize("family", [4, 6])
async def test_connect_fails_when_resolution_fails(lonely: Stack, family: int) -> None:
    stack = lonely
    async with asyncio.timeout(BOUND):
        for attempt in (1, 2):
            with pytest.raises(OSError) as info:
                await stack.open_connection(ABSENT[family], 80)
            assert info.value.errno == errno.EHOSTUNREACH
            # The SYN (and its retransmission, if the RTO came first) died in the queue.
            assert unresolved_drops(stack, family) >= attempt
            if family == 4:
                # One resolution per attempt, given up after its third request.
                assert stack.stats()["arp"]["requests_sent"] == 3 * attempt
    assert stack.stats()["tcp"]["active_opens"] == 2


@pytest.mark.parametrize("family", [4, 6])
async def test_datagram_to_an_unresolvable_neighbour_is_a_counted_drop(
    lonely: Stack, family: int
) -> None:
    """Dropped and counted (by UDP and by the resolution), and not reported to the endpoint,
    connected or not: Linux reports host unreachable only with IP_RECVERR."""
    stack = lonely
    connected, c_proto = await stack.create_datagram_endpoint(
        Collector, remote_addr=(ABSENT[family], 9)
    )
    unconnected, u_proto = await stack.create_datagram_endpoint(
        Collector, local_addr=("::" if family == 6 else "0.0.0.0", 0)
    )
    connected.sendto(b"to nobody")
    unconnected.sendto(b"to nobody", (ABSENT[family], 9))
    async with asyncio.timeout(BOUND):
        while stack.stats()["udp"]["drops"].get("unresolved", 0) < 2:
            await asyncio.sleep(0.02)
    assert unresolved_drops(stack, family) == 2
    await asyncio.sleep(0.05)
    assert c_proto.errors == [] and u_proto.errors == []
    connected.sendto(b"still not an error")  # a send after the failure works as before
    assert c_proto.errors == []


# -- beside the kernel ----------------------------------------------------------------------------
KERNEL_PROBE = r"""
import asyncio, json, sys, time

class Collector(asyncio.DatagramProtocol):
    def __init__(self):
        self.errors = []
    def error_received(self, exc):
        self.errors.append(exc.errno)

async def connect(host):
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, 80), 20)
    except OSError as exc:
        return {"errno": exc.errno, "seconds": time.monotonic() - start}
    writer.close()
    return {"errno": 0, "seconds": time.monotonic() - start}

async def datagram(host):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Collector, remote_addr=(host, 9))
    transport.sendto(b"to nobody")
    await asyncio.sleep(4.5)  # resolution fails after 3 s
    transport.close()
    return {"errors": proto.errors}

async def main():
    hosts = sys.argv[1:]
    results = await asyncio.gather(*(connect(h) for h in hosts), *(datagram(h) for h in hosts))
    print(json.dumps(results))

asyncio.run(main())
"""


@pytest.mark.peers
async def test_beside_the_kernel(tap_netns: TapSandbox) -> None:
    """The kernel in the namespace and netstack on the TAP device each connect to addresses
    of their link that nobody has, with default timers: both fail with EHOSTUNREACH (the
    kernel within the probe's 20 s bound, netstack within this test's; SYN retries would take
    two minutes), over IPv4 and IPv6; neither reports the lost datagram of a connected UDP
    endpoint."""
    hosts = ["198.18.0.99", "fd00:198:18::99"]
    async with await Stack.open(
        tap_netns.link, ipv4=tap_netns.stack_ipv4, ipv6=tap_netns.stack_ipv6
    ) as stack:
        kernel = asyncio.create_task(
            asyncio.to_thread(tap_netns.run, sys.executable, "-c", KERNEL_PROBE, *hosts,
                              timeout=60)
        )  # fmt: skip
        protos = []
        for host in hosts:
            transport, proto = await stack.create_datagram_endpoint(
                Collector, remote_addr=(host, 9)
            )
            transport.sendto(b"to nobody")
            protos.append(proto)

        async def connect(host: str) -> int | None:
            try:
                reader, writer = await stack.open_connection(host, 80)
            except OSError as exc:
                return exc.errno
            writer.close()
            return 0

        async with asyncio.timeout(30):
            ours = await asyncio.gather(*(connect(host) for host in hosts))
            proc = await kernel
        assert [p.errors for p in protos] == [[], []]
        assert stack.stats()["udp"]["drops"].get("unresolved", 0) == 2
    theirs = json.loads(proc.stdout)
    assert [r["errno"] for r in theirs[:2]] == [errno.EHOSTUNREACH] * 2, theirs
    assert [r["errors"] for r in theirs[2:]] == [[], []], theirs
    assert ours == [errno.EHOSTUNREACH] * 2
