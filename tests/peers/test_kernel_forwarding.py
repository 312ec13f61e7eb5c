"""netstack as the router between two Linux kernels (PEERS.md): namespace A on one TAP device,
namespace B on another, netstack forwarding between them.

A's kernel has no IPv6 address of its own: it configures one by SLAAC from netstack's Router
Advertisements (RFC 4861 6.2, RFC 4862), with its default route through netstack's link-local
address. B's link has a smaller MTU (1280). Checked with the kernel's own tools: ping both
ways and both families, ``ping -t 1`` answered by netstack's Time Exceeded (what traceroute
reads), ``ping -M do`` over B's MTU answered by "fragmentation needed" and IPv6 by Packet Too
Big (after which the kernel fragments at the source), TCP with curl from A to a server in B,
and tshark validating the checksums of every frame netstack forwarded or sent.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from peerkit import in_netns, peer, tshark_problems, wait_listening
from test_kernel_interfaces import FAST

from netstack import Stack
from netstack.link import PcapLink
from netstack.netns import Namespace, open_tap_in_namespace
from netstack.testing import TapSandbox, require_net_admin, require_program

pytestmark = pytest.mark.peers


async def run(ns: Namespace, *argv: str, check: bool = True, timeout: float = 30) -> str:
    return await in_netns(TapSandbox(ns, None), *argv, timeout=timeout, check=check)  # type: ignore[arg-type]


def received(ping_output: str) -> int:
    for line in ping_output.splitlines():
        if " received" in line:
            return int(line.split(" received")[0].rsplit(",", 1)[-1].strip())
    raise AssertionError(ping_output)


async def slaac_address(ns: Namespace, dev: str, timeout: float = 15.0) -> str:
    """The kernel's SLAAC address in fd00:1::/64 on ``dev``, once it has one and a default
    route (both from netstack's Router Advertisements)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        addrs = json.loads(await run(ns, "ip", "-j", "-6", "addr", "show", "dev", dev))
        routes = await run(ns, "ip", "-6", "route", "show", "default")
        for iface in addrs:
            for a in iface.get("addr_info", []):
                ok = "tentative" not in a and a["local"].startswith("fd00:1:")
                if ok and "via fe80::" in routes:
                    return str(a["local"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no SLAAC address: {addrs}\n{routes}")


async def test_kernel_namespaces_routed_through_netstack(tmp_path: Path) -> None:
    require_net_admin()
    require_program("ping")
    curl = require_program("curl")
    tshark = require_program("tshark")
    ns_a = Namespace.create()
    ns_b = Namespace.create()
    stack = None
    try:
        link_a = open_tap_in_namespace(ns_a, kernel_ipv4="198.18.1.10/24", kernel_ipv6=None)
        link_b = open_tap_in_namespace(ns_b, kernel_ipv4="198.18.2.10/24",
                                       kernel_ipv6="fd00:2::10/64", mtu=1280)  # fmt: skip
        dev_a = link_a.name
        ns_a.ip("route", "add", "default", "via", "198.18.1.1")
        ns_b.ip("route", "add", "default", "via", "198.18.2.1")
        ns_b.ip("-6", "route", "add", "default", "via", "fd00:2::1")
        cap_a, cap_b = tmp_path / "a.pcap", tmp_path / "b.pcap"
        stack = await Stack.open(PcapLink(link_a, cap_a), ipv4="198.18.1.1/24",
                                 ipv6="fd00:1::1/64", config=FAST)  # fmt: skip
        await stack.add_interface(PcapLink(link_b, cap_b), ipv4="198.18.2.1/24",
                                  ipv6="fd00:2::1/64", name="b")  # fmt: skip
        stack.forwarding = True
        stack.advertise("eth0", dns=["fd00:1::53"])
        macs = [i.mac for i in stack.interfaces]
        sandbox_b = TapSandbox(ns_b, link_b)

        # IPv4 both ways.
        assert received(await run(ns_a, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                                  "198.18.2.10")) == 3  # fmt: skip
        assert received(await run(ns_b, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                                  "198.18.1.10")) == 3  # fmt: skip
        # TTL 1: netstack's Time Exceeded, from its address on A's link.
        out = await run(ns_a, "ping", "-c", "1", "-t", "1", "-W", "2", "198.18.2.10",
                        check=False)  # fmt: skip
        assert "198.18.1.1" in out and "Time to live exceeded" in out, out
        # Without DF over B's MTU: netstack fragments (before the kernel learns the path MTU);
        # with DF: "fragmentation needed" with B's MTU.
        out = await run(ns_a, "ping", "-c", "2", "-i", "0.3", "-M", "dont", "-s", "1400",
                        "-W", "2", "198.18.2.10")  # fmt: skip
        assert received(out) == 2
        assert stack.stats()["forward"]["fragmented"] >= 2
        out = await run(ns_a, "ping", "-c", "2", "-i", "0.3", "-M", "do", "-s", "1400", "-W",
                        "2", "198.18.2.10", check=False)  # fmt: skip
        assert "mtu = 1280" in out or "mtu=1280" in out, out
        assert stack.stats()["forward"]["too_big"] == 1  # then the kernel knows the MTU

        # IPv6: SLAAC from netstack's advertisements, then through it.
        mine = await slaac_address(ns_a, dev_a)
        out = await run(ns_a, "ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00:2::10")
        assert received(out) == 3
        assert received(await run(ns_b, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2",
                                  mine)) == 2  # fmt: skip
        out = await run(ns_a, "ping", "-6", "-c", "1", "-t", "1", "-W", "2", "fd00:2::10",
                        check=False)  # fmt: skip
        assert "Time exceeded" in out or "Hop limit" in out, out
        # Packet Too Big, then the kernel fragments at the source (RFC 8201).
        out = await run(ns_a, "ping", "-6", "-c", "4", "-i", "0.3", "-s", "1400", "-W", "2",
                        "fd00:2::10", check=False)  # fmt: skip
        assert "mtu=1280" in out or "Packet too big" in out, out
        assert received(out) >= 2, out
        assert stack.stats()["forward"]["too_big"] >= 2

        # TCP: curl in A from a web server in B, both families.
        (tmp_path / "www").mkdir()
        page = bytes(range(256)) * 1024
        (tmp_path / "www" / "f").write_bytes(page)
        async with peer(sandbox_b, "python3", "-m", "http.server", "-b", "::", "-d",
                        str(tmp_path / "www"), "8000"):  # fmt: skip
            await wait_listening(sandbox_b, 8000)
            for url in ("http://198.18.2.10:8000/f", "http://[fd00:2::10]:8000/f"):
                out = await run(ns_a, curl, "-sS", "-o", "/dev/null", "-w", "%{size_download}",
                                "--max-time", "20", url)  # fmt: skip
                assert out.strip() == str(len(page)), out
        fwd = stack.stats()["forward"]
        assert fwd["forwarded4"] > 50 and fwd["forwarded6"] > 50
        assert stack.stats()["stack"]["internal_errors"] == 0
    finally:
        if stack is not None:
            await stack.close()
        ns_a.delete()
        ns_b.delete()
    # Every frame netstack sent on either link has good checksums.
    for cap, mac in zip((cap_a, cap_b), macs, strict=True):
        assert await tshark_problems(tshark, cap, f"eth.src == {mac}") == ""
