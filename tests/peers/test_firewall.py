"""The firewall example (examples/firewall.py) against the kernel's own clients (PEERS.md): two
client namespaces, each on a TAP device of its own, that take their addresses from the
firewall's DHCP servers (busybox udhcpc) and the first its IPv6 address by SLAAC from the
firewall's router advertisements, an uplink namespace with python's http.server (IPv4 and
IPv6) and dnsmasq, netstack routing, masquerading and filtering between them with
examples/firewall.rules.

Checked from both ends: allowed flows work (curl, ping, dig to the firewall's zone and through
the NAT to dnsmasq; curl, ping -6 and dig over IPv6), the rejected port gets a reset and the
dropped one nothing (both bounded), rules naming the second client's interface hold for it
alone, the servers see only netstack's uplink address over IPv4 and the client's own over
IPv6, the ICMP port unreachable of a closed UDP port and the Time Exceeded of ``ping -t 1``
reach the client, no client IPv4 address ever leaves on the uplink, a rule file reloaded
while a connection is open keeps it and refuses new ones, and tshark finds no bad checksum in
any frame netstack sent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from peerkit import tshark_count, tshark_problems

from netstack.link import Link, PcapLink
from netstack.testing import require_net_admin, require_program

pytestmark = pytest.mark.peers

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "firewall.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("firewall_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


async def test_firewall_between_kernels(tmp_path: Path) -> None:
    require_net_admin()
    for program in ("busybox", "curl", "dig", "dnsmasq", "ping"):
        require_program(program)
    tshark = require_program("tshark")
    example = load_example()
    captures: list[Path] = []

    def record(link: Link) -> Link:
        captures.append(tmp_path / f"{('lan', 'uplink', 'work')[len(captures)]}.pcap")
        return PcapLink(link, captures[-1])

    (tmp_path / "work").mkdir()
    async with example.network(tmp_path / "work", wrap=record) as net:
        results = {label: (outcome, good) async for label, outcome, good in example.flows(net)}
        fw = net.fw
        # The servers' side of the NAT: every live mapping is of the client's address to the
        # firewall's uplink address.
        mappings = fw.stack.nat.mappings
        stats = fw.stack.stats()["netfilter"]
        counters = {c["rule"].comment: c["packets"] for c in fw.stack.filter.counters()}
        leases = {c.interface.name: [r.address for r in c.dhcp.leases] for c in fw.clients}
        macs = [str(i.mac) for i in fw.stack.interfaces]
        reloads = fw.stats()["reloads"]
    bad = {label: outcome for label, (outcome, good) in results.items() if not good}
    assert bad == {}, results
    assert len(results) == 24, results
    assert leases == {"eth0": ["198.18.1.100"], "work": ["198.18.3.100"]}
    assert results["the web server saw the client as"][0] == "198.18.2.2"
    assert reloads == 1
    assert mappings, stats
    assert {m["external"][0] for m in mappings} == {"198.18.2.2"}, mappings
    assert {m["internal"][0] for m in mappings} <= {"198.18.1.100", "198.18.3.100"}, mappings
    # Counted across the reload: the rules it left unchanged kept their counters.
    assert counters["refused: a TCP reset"] == 2 and counters["dropped: no answer at all"] >= 2
    assert counters["DNS, and a port nobody serves"] == 2  # one DNS query, one UDP probe
    assert counters["work: the web, nothing else"] >= 1
    assert counters["ping out over IPv6"] >= 1
    assert "the web" not in counters  # reloaded without it
    assert stats["nat"]["mappings_created"] >= 5, stats

    lan, uplink, work = captures
    # Nothing from the clients' IPv4 networks left untranslated on the uplink; IPv6 routed
    # as it is.
    for net in ("198.18.1.0/24", "198.18.3.0/24"):
        assert await tshark_count(tshark, uplink, f"ip.src == {net}") == 0
    assert await tshark_count(tshark, uplink, "ipv6.src == fd00:1::/64 && tcp.dstport == 80") > 0
    assert await tshark_count(tshark, work, "ip.src == 198.18.3.100 && icmp.type == 8") == 1
    assert await tshark_count(tshark, uplink, "icmp.type == 8 && ip.src == 198.18.2.2") == 3
    assert await tshark_count(tshark, uplink, "ip.src == 198.18.2.2 && tcp.dstport == 80") > 0
    # The ICMP errors reached the client, translated back: the uplink's port unreachable and
    # the firewall's own Time Exceeded; the rejected connection's reset.
    unreachable = "icmp.type == 3 && icmp.code == 3 && ip.src == 198.18.2.1 && udp.dstport == 9999"
    assert await tshark_count(tshark, lan, f"{unreachable} && ip.dst == 198.18.1.100") == 1
    assert await tshark_count(tshark, uplink, f"{unreachable} && ip.dst == 198.18.2.2") == 1
    assert await tshark_count(tshark, lan, "icmp.type == 11 && ip.src == 198.18.1.1") == 1
    rst = "tcp.flags.reset == 1 && tcp.srcport == 8080 && ip.src == 198.18.2.1"
    assert await tshark_count(tshark, lan, rst) >= 2
    assert await tshark_count(tshark, uplink, "tcp.dstport == 8080 || tcp.dstport == 8081") == 0
    for capture in captures:
        sent = " || ".join(f"eth.src == {mac}" for mac in macs)
        assert await tshark_problems(tshark, capture, sent) == ""
