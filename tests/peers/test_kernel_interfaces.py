"""A stack with two interfaces, one a memory link to another netstack host and one a TAP
device whose far end is the Linux kernel in a network namespace (PEERS.md): each side is
reached by its own interface, from its own address, over IPv4 and IPv6; the kernel's pings to
the stack's link-local address on the TAP device are answered out of that interface, and the
stack reaches the kernel's link-local address through its zone."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from peerkit import in_netns, kernel_link_local, peer

from netstack import Stack, StackConfig
from netstack.link import MemoryLink
from netstack.proto.ipv6.addrconf import AddrconfConfig
from netstack.proto.ipv6.layer import IPv6Config
from netstack.testing import TapSandbox, require_program

pytestmark = pytest.mark.peers

FAST = StackConfig(
    ipv6=IPv6Config(
        addrconf=AddrconfConfig(retrans_timer=0.05, max_rtr_solicitation_delay=0.02,
                                rtr_solicitation_interval=0.2)
    )
)  # fmt: skip


def received(ping_output: str) -> int:
    for line in ping_output.splitlines():
        if " received" in line:
            return int(line.split(" received")[0].rsplit(",", 1)[-1].strip())
    raise AssertionError(ping_output)


async def test_memory_and_tap_interfaces(tap_netns: TapSandbox) -> None:
    require_program("ping")
    socat = require_program("socat")
    mem_a, mem_b = MemoryLink.pair()
    stack = await Stack.open(mem_a, ipv4="198.18.1.1/24", ipv6="fd00:1::1/64", config=FAST)
    other = await Stack.open(mem_b, ipv4="198.18.1.2/24", ipv6="fd00:1::2/64", config=FAST)
    try:
        tap = await stack.add_interface(
            tap_netns.link, ipv4=tap_netns.stack_ipv4, ipv6=tap_netns.stack_ipv6, name="tap"
        )
        kernel6 = tap_netns.kernel_ipv6
        # netstack reaches both nets, each by its interface.
        for host in ("198.18.1.2", "fd00:1::2", tap_netns.kernel_ipv4, kernel6):
            assert await stack.ping(host, timeout=5) > 0
        assert stack.stats()["interfaces"]["tap"]["link"]["tx_packets"] > 0
        other_rx = other.stats()["ipv4"]["rx_packets"]
        # The kernel pings the stack's addresses on the TAP device, its link-local one too.
        ours = str(tap_netns.stack_ipv4).split("/")[0]
        out = await in_netns(tap_netns, "ping", "-c", "3", "-i", "0.2", "-W", "2", ours)
        assert received(out) == 3
        ll = next(str(x.ip) for x in tap.addresses if x.version == 6 and x.ip.is_link_local)
        out = await in_netns(
            tap_netns, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", f"{ll}%{tap_netns.dev}"
        )
        assert received(out) == 3
        # The stack reaches the kernel's link-local address through the zone.
        assert await stack.ping(f"{await kernel_link_local(tap_netns)}%tap", timeout=5) > 0
        # TCP to the kernel: the kernel sees the connection come from the TAP address.
        async with peer(tap_netns, socat, "-T", "10", "TCP6-LISTEN:7070,reuseaddr",
                        "SYSTEM:echo $SOCAT_PEERADDR") as proc:  # fmt: skip
            for _ in range(50):
                try:
                    reader, writer = await stack.open_connection(kernel6, 7070)
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("socat did not listen")
            line = await asyncio.wait_for(reader.readline(), 10)
            writer.close()
            assert proc.returncode in (None, 0)
        seen = ipaddress.ip_address(line.decode().strip().strip("[]"))
        assert seen == ipaddress.ip_address(tap_netns.stack_ipv6.split("/")[0])
        # None of it went to the memory net.
        assert other.stats()["ipv4"]["rx_packets"] == other_rx
    finally:
        await stack.close()
        await other.close()
