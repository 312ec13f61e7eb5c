"""Routing over several interfaces, without an event loop: the route table's order (longest
prefix, then lowest metric, then on-link before a gateway, then first added), the IPv4 and
IPv6 layers choosing interface, next hop and source address (RFC 1122 3.3.1, RFC 4861 5.2,
RFC 6724 5, RFC 4007 6 for link-local destinations), and interfaces coming and going."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netstack.errors import NoRouteError
from netstack.proto.arp.layer import ArpLayer
from netstack.proto.ethernet.layer import EthernetLayer
from netstack.proto.ip.route import RouteTable
from netstack.proto.ipv4.layer import IPv4Layer
from netstack.proto.ipv6.layer import IPv6Layer


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def net4(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def net6(text: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(text)


# -- the table ------------------------------------------------------------------------------------


def test_table_order() -> None:
    t = RouteTable(32)
    t.add(int.from_bytes(ip("0.0.0.0"), "big"), 0, ip("10.0.0.1"), 1, metric=10)
    t.add(int.from_bytes(ip("0.0.0.0"), "big"), 0, ip("10.0.1.1"), 2, metric=5)
    t.add(int.from_bytes(ip("10.0.0.0"), "big"), 8, ip("10.0.0.1"), 1)
    t.add(int.from_bytes(ip("10.0.0.0"), "big"), 8, None, 2)
    t.add(int.from_bytes(ip("10.1.0.0"), "big"), 16, ip("10.0.0.9"), 1, metric=99)
    got = [(e.prefix, e.metric, e.gateway is None, e.ifindex) for e in t]
    assert got == [(16, 99, False, 1), (8, 0, True, 2), (8, 0, False, 1), (0, 5, False, 2),
                   (0, 10, False, 1)]  # fmt: skip
    d = int.from_bytes(ip("10.1.2.3"), "big")
    assert [e.prefix for e in t.matches(d)] == [16, 8, 8, 0, 0]
    assert [e.prefix for e in t.matches(int.from_bytes(ip("192.0.2.1"), "big"))] == [0, 0]
    # The network is masked; removal is by network, gateway and (when given) interface.
    assert t.add(int.from_bytes(ip("192.0.2.77"), "big"), 24, None, 1).net == int.from_bytes(
        ip("192.0.2.0"), "big"
    )
    assert t.remove(0, 0, ip("10.0.0.1"), 2) == 0
    assert t.remove(0, 0, ip("10.0.0.1")) == 1
    t.remove_where(lambda e: e.ifindex == 2)
    assert {e.ifindex for e in t} == {1}


@given(
    st.lists(
        st.tuples(st.integers(0, 32), st.integers(0, 3), st.booleans(), st.integers(1, 3)),
        max_size=20,
    )
)
def test_table_is_best_first(entries: list[tuple[int, int, bool, int]]) -> None:
    """Whatever the order routes are added in, the first match is the most specific, then
    the cheapest, then on-link; equals keep the order they came in."""
    t = RouteTable(32)
    for n, (prefix, metric, on_link, ifindex) in enumerate(entries):
        t.add(0, prefix, None if on_link else n.to_bytes(4, "big"), ifindex, metric)
    keys = [(-e.prefix, e.metric, e.gateway is not None) for e in t]
    assert keys == sorted(keys)
    assert len(t) == len(entries)
    ties = [e.gateway for e in t if (e.prefix, e.metric, e.gateway is not None) == (0, 0, True)]
    assert ties == sorted(ties, key=lambda g: int.from_bytes(g or bytes(4), "big"))


# -- IPv4 over two interfaces ---------------------------------------------------------------------

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


class Host4:
    """An IPv4 layer on two interfaces over recording transmits: 1 has 198.18.1.1/24, 2 has
    198.18.2.1/24."""

    def __init__(self) -> None:
        self.sent: dict[int, list[bytes]] = {1: [], 2: []}
        eth1 = EthernetLayer(MAC1, lambda f: self.sent[1].append(bytes(f)), 1)
        eth2 = EthernetLayer(MAC2, lambda f: self.sent[2].append(bytes(f)), 2)
        self.ip = IPv4Layer(eth1, ArpLayer(eth1), mtu=1500, rng=random.Random(1), ifindex=1)
        arp2 = ArpLayer(eth2)
        self.ip.add_interface(2, eth2, arp2, 9000)
        self.ip.add_address(ip("198.18.1.1"), 24, 0.0, 1)
        self.ip.add_address(ip("198.18.2.1"), 24, 0.0, 2)

    def out(self, dst: str, src: str | None = None, via: int = 0) -> tuple[int, str, str]:
        r = self.ip.route(ip(dst), ip(src) if src else None, via=via)
        assert r.iface is not None
        return (
            r.iface.index,
            str(ipaddress.ip_address(r.src)),
            str(ipaddress.ip_address(r.next_hop)),
        )


def test_ipv4_connected_routes_pick_interface_and_source() -> None:
    h = Host4()
    assert h.out("198.18.1.9") == (1, "198.18.1.1", "198.18.1.9")
    assert h.out("198.18.2.9") == (2, "198.18.2.1", "198.18.2.9")
    assert h.ip.route(ip("198.18.2.9")).iface.mtu == 9000  # type: ignore[union-attr]
    with pytest.raises(NoRouteError):
        h.ip.route(ip("203.0.113.1"))
    # Our own addresses are local, whichever interface has them.
    local = h.ip.route(ip("198.18.2.1"))
    assert local.local and local.iface is not None and local.iface.index == 2
    # ARP on each interface answers for that interface's addresses only.
    assert h.ip.interface(1).arp.addresses == {ip("198.18.1.1")}
    assert h.ip.interface(2).arp.addresses == {ip("198.18.2.1")}
    # A limited broadcast leaves by the interface asked for, from its address.
    b = h.ip.route(ip("255.255.255.255"), via=2)
    assert b.iface is not None and b.iface.index == 2 and b.src == ip("198.18.2.1")


def test_ipv4_longest_prefix_then_metric() -> None:
    h = Host4()
    h.ip.add_route(net4("0.0.0.0/0"), ip("198.18.1.254"), 1, metric=10)
    h.ip.add_route(net4("0.0.0.0/0"), ip("198.18.2.254"), 2, metric=20)
    assert h.out("203.0.113.1") == (1, "198.18.1.1", "198.18.1.254")
    h.ip.add_route(net4("203.0.113.0/24"), ip("198.18.2.254"), 2, metric=50)
    assert h.out("203.0.113.1") == (2, "198.18.2.1", "198.18.2.254")
    assert h.out("203.0.114.1") == (1, "198.18.1.1", "198.18.1.254")
    # A more specific route beats a connected one; the metric only breaks ties.
    h.ip.add_route(net4("198.18.2.128/25"), ip("198.18.1.254"), 1, metric=99)
    assert h.out("198.18.2.200") == (1, "198.18.1.1", "198.18.1.254")
    assert h.out("198.18.2.100") == (2, "198.18.2.1", "198.18.2.100")
    # The cheaper default gone, the dearer one serves.
    h.ip.remove_route(net4("0.0.0.0/0"), ip("198.18.1.254"), 1)
    assert h.out("203.0.114.1") == (2, "198.18.2.1", "198.18.2.254")


def test_ipv4_route_without_interface_follows_the_gateway() -> None:
    """The old shape, ``add_route(network, gateway)``: the interface is the one on whose
    network the gateway lies, found when sending."""
    h = Host4()
    h.ip.add_route(net4("10.0.0.0/8"), ip("198.18.2.254"))
    assert h.out("10.1.2.3") == (2, "198.18.2.1", "198.18.2.254")
    h.ip.add_route(net4("10.9.0.0/16"), ip("192.0.2.1"))  # on no network: never usable
    assert h.out("10.9.0.1") == (2, "198.18.2.1", "198.18.2.254")
    # An on-link route out of a named interface, to a network none of its addresses is on.
    h.ip.add_route(net4("100.64.0.0/10"), None, 2)
    assert h.out("100.64.0.5") == (2, "198.18.2.1", "100.64.0.5")


def test_ipv4_via_keeps_answers_on_their_interface() -> None:
    h = Host4()
    h.ip.add_route(net4("198.18.2.9/32"), ip("198.18.1.254"), 1)
    assert h.out("198.18.2.9") == (1, "198.18.1.1", "198.18.1.254")
    assert h.out("198.18.2.9", "198.18.2.1", via=2) == (2, "198.18.2.1", "198.18.2.9")
    # No route through the interface asked for: the table decides.
    assert h.out("198.18.1.9", via=2) == (1, "198.18.1.1", "198.18.1.9")


def test_ipv4_interfaces_come_and_go() -> None:
    h = Host4()
    h.ip.add_route(net4("0.0.0.0/0"), ip("198.18.2.254"), 2)
    with pytest.raises(ValueError, match="overlaps"):
        h.ip.add_address(ip("198.18.2.7"), 16, 0.0, 1)
    with pytest.raises(ValueError, match="already"):
        h.ip.add_address(ip("198.18.2.1"), 24, 0.0, 1)
    with pytest.raises(ValueError, match="no IPv4 interface"):
        h.ip.add_route(net4("10.0.0.0/8"), None, 3)
    with pytest.raises(ValueError, match="taken"):
        h.ip.add_interface(2, h.ip.interface(2).eth, h.ip.interface(2).arp, 1500)
    h.ip.remove_interface(2)
    assert [str(a) for a in h.ip.addresses] == ["198.18.1.1/24"]
    assert {e.ifindex for e in h.ip.route_table} == {1}
    assert not h.ip.is_local(ip("198.18.2.1"))
    with pytest.raises(NoRouteError):
        h.ip.route(ip("203.0.113.1"))
    with pytest.raises(ValueError, match="last"):
        h.ip.remove_interface(1)


# -- IPv6 over two interfaces ---------------------------------------------------------------------


class Host6:
    """An IPv6 layer on two interfaces with static addresses (no DAD): 1 has fd00:1::1/64,
    2 has fd00:2::1/64 and each a link-local address of its own."""

    def __init__(self, second_global: bool = True) -> None:
        self.sent: dict[int, list[bytes]] = {1: [], 2: []}
        eth1 = EthernetLayer(MAC1, lambda f: self.sent[1].append(bytes(f)), 1)
        eth2 = EthernetLayer(MAC2, lambda f: self.sent[2].append(bytes(f)), 2)
        self.ip = IPv6Layer(eth1, mtu=1500, rng=random.Random(6), secret=bytes(32), ifindex=1)
        self.ip.add_interface(2, eth2, 1500, b"eth1")
        self.ip.add_address(ip("fd00:1::1"), 64, 0.0, dad=False, ifindex=1)
        if second_global:
            self.ip.add_address(ip("fd00:2::1"), 64, 0.0, dad=False, ifindex=2)
        else:
            self.ip.start(0.0, 2)
        # The link-local addresses wait for DAD: let it finish.
        for t in (1.0, 2.0, 3.0, 4.0):
            self.ip.handle_timeout(t)

    def link_local(self, ifindex: int) -> bytes:
        return next(a for a in self.ip.interface(ifindex).local if a[0] == 0xFE)

    def out(self, dst: str, scope: int = 0, via: int = 0) -> tuple[int, str, str]:
        r = self.ip.route(ip(dst), scope=scope, via=via)
        assert r.iface is not None
        return (
            r.iface.index,
            str(ipaddress.ip_address(r.src)),
            str(ipaddress.ip_address(r.next_hop)),
        )


def test_ipv6_on_link_prefixes_pick_interface_and_source() -> None:
    h = Host6()
    assert h.out("fd00:1::9") == (1, "fd00:1::1", "fd00:1::9")
    assert h.out("fd00:2::9") == (2, "fd00:2::1", "fd00:2::9")
    assert h.link_local(1) != h.link_local(2)
    with pytest.raises(NoRouteError):
        h.ip.route(ip("2001:db8::1"))


def test_ipv6_link_local_destinations_need_their_interface() -> None:
    h = Host6()
    with pytest.raises(NoRouteError, match="link-local"):
        h.ip.route(ip("fe80::9"))
    for ifindex in (1, 2):
        index, src, hop = h.out("fe80::9", scope=ifindex)
        assert (index, hop) == (ifindex, "fe80::9")
        assert ip(src) == h.link_local(ifindex)  # RFC 6724 rule 2: the link-local source
    with pytest.raises(NoRouteError, match="interface 7"):
        h.ip.route(ip("fe80::9"), scope=7)
    # Multicast without a zone: the first interface, as before there were several.
    assert h.out("ff02::1")[0] == 1 and h.out("ff02::1", scope=2)[0] == 2


def test_ipv6_longest_prefix_then_metric() -> None:
    h = Host6()
    gw1, gw2 = "fe80::1", "fe80::2"
    h.ip.add_route(net6("::/0"), ip(gw1), 1, metric=10)
    h.ip.add_route(net6("::/0"), ip(gw2), 2, metric=5)
    assert h.out("2001:db8::1") == (2, "fd00:2::1", gw2)
    h.ip.add_route(net6("2001:db8::/32"), ip(gw1), 1, metric=50)
    assert h.out("2001:db8::1") == (1, "fd00:1::1", gw1)
    # A static /48 inside the other interface's on-link /64? No: the /64 is longer.
    h.ip.add_route(net6("fd00:2::/48"), ip(gw1), 1)
    assert h.out("fd00:2::9") == (2, "fd00:2::1", "fd00:2::9")
    # A /128 beats the on-link /64.
    h.ip.add_route(net6("fd00:2::9/128"), ip(gw1), 1)
    assert h.out("fd00:2::9") == (1, "fd00:1::1", gw1)
    assert h.out("fd00:2::9", via=2) == (2, "fd00:2::1", "fd00:2::9")
    # The routes, with interface and metric.
    table = {(str(n), str(g) if g else None, i, m) for n, g, i, m in h.ip.route_table}
    assert ("::/0", gw2, 2, 5) in table and ("fd00:2::/64", None, 2, 0) in table
    assert ("fe80::/64", None, 1, 0) in table and ("fe80::/64", None, 2, 0) in table


def test_ipv6_source_from_another_interface_when_the_outgoing_has_none() -> None:
    """RFC 6724 5 rule 5 prefers the outgoing interface's addresses; without a global one
    there, a global address of another interface (never a link-local one of it)."""
    h = Host6(second_global=False)
    h.ip.add_route(net6("::/0"), ip("fe80::2"), 2)
    assert h.out("2001:db8::1") == (2, "fd00:1::1", "fe80::2")


def test_ipv6_interfaces_come_and_go() -> None:
    h = Host6()
    with pytest.raises(ValueError, match="overlaps"):
        h.ip.add_address(ip("fd00:2::7"), 48, 0.0, dad=False, ifindex=1)
    with pytest.raises(ValueError, match="already"):
        h.ip.add_address(ip("fd00:2::1"), 64, 0.0, dad=False, ifindex=1)
    h.ip.add_route(net6("::/0"), ip("fe80::2"), 2)
    ll2 = h.link_local(2)
    h.ip.remove_interface(2)
    assert not h.ip.is_local(ip("fd00:2::1")) and not h.ip.is_local(ll2)
    assert [i for _, _, i, _ in h.ip.route_table] == [1, 1]  # fe80::/64 and fd00:1::/64
    with pytest.raises(NoRouteError):
        h.ip.route(ip("2001:db8::1"))
    # With one interface left, a link-local destination needs no zone again.
    assert h.out("fe80::9") == (1, str(ipaddress.ip_address(h.link_local(1))), "fe80::9")
