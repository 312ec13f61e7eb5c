"""``stack.nat`` and ``stack.filter``: made on first use, installed as ``stack.packet_hooks``
(what the IP layers call at the hook points), named by the stack's interfaces, counted in
``stack.stats()`` and timed out by the stack's timer."""

from __future__ import annotations

import pytest

from netstack import Stack
from netstack.link import MemoryLink
from netstack.proto.ip.hooks import Hook, Verdict
from netstack.proto.ipv4 import wire as ip4
from netstack.proto.netfilter import Netfilter, Rule
from netstack.proto.udp import wire as udp


def _udp(src: bytes, sport: int, dst: bytes, dport: int) -> bytearray:
    body = bytearray(8) + b"data"
    udp.build_into(body, 0, sport, dport, src, dst)
    d = bytearray(20) + body
    ip4.build_header_into(d, 0, len(d), 1, 0, 64, 17, src, dst)
    return d


async def test_nat_and_filter_install_the_hooks() -> None:
    lan, _ = MemoryLink.pair()
    wan, _ = MemoryLink.pair()
    async with await Stack.open(lan, ipv4="198.18.1.1/24") as stack:
        assert stack.packet_hooks is None
        iface = await stack.add_interface(wan, ipv4="198.18.2.1/24")
        masq = stack.nat.masquerade(iface)
        hooks = stack.packet_hooks
        assert isinstance(hooks, Netfilter)  # a PacketHooks: mypy checks stack.py assigns it
        assert stack.filter is hooks.filter and stack.nat is hooks.nat
        stack.nat.forward_port("tcp", 8080, to=("198.18.1.10", 80), on="eth1")
        stack.filter.rules = [Rule("accept", iif="eth0", oif=iface)]
        with pytest.raises(ValueError):
            stack.nat.masquerade("eth9")
        # The interface's address, as the stack has it, is the masquerade's.
        d = _udp(bytes([198, 18, 1, 10]), 5000, bytes([198, 18, 2, 50]), 53)
        for hook, egress in ((Hook.PREROUTING, None), (Hook.FORWARD, iface.index),
                             (Hook.POSTROUTING, iface.index)):  # fmt: skip
            assert hooks.run(hook, d, 1, egress, stack.loop.time()) == Verdict.ACCEPT
        assert d[12:16] == bytes([198, 18, 2, 1])
        stats = stack.stats()["netfilter"]
        assert stats["conntrack"]["flows"] == 1 and stats["nat"]["mappings"] == 1
        assert stats["nat"]["forwards"] == 1 and stats["filter"]["rules"] == 1
        assert stack.filter.counters()[0]["packets"] == 1
        stack.nat.remove(masq)
        assert stack.stats()["netfilter"]["nat"]["masquerades"] == 0
        # The flow table's deadline is the stack's timer's too.
        assert hooks.poll_at() is not None
        stack.reset_stats()
        assert stack.stats()["netfilter"]["packets"] == 0
