"""A firewall between client networks and an uplink, as MirageOS's QubesOS firewall is: one
stack with an interface on each side that routes, masquerades and filters between them with a
rule file, and serves DHCP and DNS (a local zone) to the clients.

It is the router API put together (``stack.forwarding``, ``stack.nat``, ``stack.filter``,
:func:`netstack.dhcp.serve`, :func:`netstack.dns.serve`); ``netstack firewall`` runs it on TAP
devices and ``examples/firewall.py`` shows it at work between Linux namespaces::

    fw = await netstack.firewall.start(lan_link, uplink_link, rules=open("fw.rules").read())
    ...
    await fw.close()

The client side is the stack's first interface, ``eth0``; the uplink is ``uplink``: rules name
them (``forward accept in eth0 out uplink ...``). :data:`DEFAULT_RULES` lets the clients out
to the web, DNS and ping, and nothing in.

More client networks, each on a link of its own (QubesOS gives every client VM its own
interface), are :class:`ClientNetwork` items of ``clients=``: each has its own subnet, DHCP
pool and interface name for the rules to use (``forward accept in work out uplink ...``).
IPv6 is routed when the uplink has an address (``uplink6=``) and a client network one of its
own (``lan6=``, ``ClientNetwork.ipv6``): the firewall advertises the client network's /64
(RFC 4861 router advertisements, so the clients configure themselves by SLAAC) and forwards
its traffic to the uplink untranslated, through the same rules. :meth:`Firewall.reload`
puts a new rule text in place while the firewall runs; the flows it tracks go on (``netstack
firewall`` reloads its rule file on SIGHUP).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .dhcp import DhcpServerHandle
from .dhcp import serve as serve_dhcp
from .interface import Interface
from .link.base import Link
from .stack import Stack

__all__ = ["DEFAULT_RULES", "ClientNetwork", "ClientSide", "Firewall", "local_zone", "start"]

#: The rules ``start`` uses when given none (the text form of ``netstack.proto.netfilter``):
#: clients may reach the firewall's DHCP and DNS and ping it; they may go out to the web
#: (TCP 80 and 443), DNS and ping; answers come back; nothing else passes, and nothing from
#: the uplink reaches the firewall itself or the clients.
DEFAULT_RULES = """\
policy input drop
policy forward drop
input accept state established,related
input accept in eth0 proto udp dport 67,53
input accept in eth0 proto tcp dport 53
input accept in eth0 proto icmp icmp-type 8
forward accept state established,related
forward accept in eth0 out uplink proto tcp dport 80,443
forward accept in eth0 out uplink proto udp dport 53
forward accept in eth0 out uplink proto icmp icmp-type 8
"""


def local_zone(domain: str, address: str) -> str:
    """Zone-file text for ``domain``, with the firewall as ``firewall.DOMAIN`` and its name
    server at ``address``."""
    return (
        f"$ORIGIN {domain.rstrip('.')}.\n$TTL 300\n"
        "@ IN SOA firewall hostmaster 1 3600 600 86400 300\n"
        "@ IN NS firewall\n"
        f"firewall IN A {address}\n"
    )


@dataclass(frozen=True)
class ClientNetwork:
    """One more client network of a firewall (see :func:`start`'s ``clients``).

    Args:
        link: its link (a TAP device to one client VM or namespace, say).
        ipv4: the firewall's address and prefix on it, ``"198.18.3.1/24"``.
        name: the interface's name, which rules use (default ``eth<n>``).
        pool: its DHCP pool, ``"first-last"``; by default the network's .100 to .199.
        ipv6: the firewall's IPv6 address and prefix on it, ``"fd00:3::1/64"``: its /64 is
            advertised for SLAAC and routed (with ``uplink6``); None: IPv4 only.
    """

    link: Link
    ipv4: str
    name: str | None = None
    pool: str | None = None
    ipv6: str | None = None


@dataclass
class ClientSide:
    """A client network of a running firewall: its interface and its DHCP server."""

    interface: Interface
    dhcp: DhcpServerHandle


@dataclass
class Firewall:
    """A running firewall: its stack, its client interface(s) and uplink, its DHCP and DNS
    servers (``dhcp`` and ``lan`` are the first client network's; ``clients`` has them
    all)."""

    stack: Stack
    lan: Interface
    uplink: Interface
    dhcp: DhcpServerHandle
    dns: Any
    clients: list[ClientSide] = field(default_factory=list)
    #: Rule texts put in place by :meth:`reload`.
    reloads: int = 0

    def reload(self, rules: str) -> None:
        """Put the rules and policies of ``rules`` (the text form) in place of the present
        ones, at once: the flows tracked go on as they were (an established connection the
        new rules would not let start is not cut), new flows meet the new rules.

        Raises:
            ValueError: a bad rule (its line is named); the rules in force stay.
        """
        self.stack.filter.load(rules)
        self.reloads += 1

    def stats(self) -> dict[str, Any]:
        """The router's counters: forwarding, connection tracking and NAT, the filter (with
        each rule's matches), DHCP and DNS."""
        return {
            "forward": self.stack.stats()["forward"],
            "netfilter": self.stack.stats()["netfilter"],
            "rules": [
                {**c, "rule": c["rule"].comment or _rule_text(c["rule"])}
                for c in self.stack.filter.counters()
            ],
            "dhcp": self.dhcp.stats(),
            "dhcp_by_interface": {c.interface.name: c.dhcp.stats() for c in self.clients},
            "dns": self.dns.stats(),
            "reloads": self.reloads,
        }

    async def close(self) -> None:
        """Stop the servers and close the stack (and its links)."""
        for client in self.clients:
            client.dhcp.close()
        self.dhcp.close()
        self.dns.close()
        await self.stack.close()


def _rule_text(rule: Any) -> str:
    words = [rule.chain, rule.action]
    for word, name in (("in", "iif"), ("out", "oif"), ("src", "src"), ("dst", "dst"),
                       ("proto", "proto"), ("dport", "dport"), ("icmp-type", "icmp_type"),
                       ("state", "state")):  # fmt: skip
        value = getattr(rule, name)
        if value is not None:
            words += [word, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return " ".join(words)


async def start(
    lan_link: Link,
    uplink_link: Link,
    *,
    lan: str = "198.18.1.1/24",
    uplink: str = "198.18.2.2/24",
    gateway: str | None = "198.18.2.1",
    rules: str = DEFAULT_RULES,
    pool: str | None = None,
    domain: str = "lan.test",
    zone: str | None = None,
    lease_time: int = 3600,
    lan6: str | None = None,
    uplink6: str | None = None,
    gateway6: str | None = None,
    clients: Sequence[ClientNetwork] = (),
) -> Firewall:
    """Start a firewall routing between ``lan_link`` (the clients, interface ``eth0``), the
    links of ``clients`` (more client networks) and ``uplink_link`` (interface ``uplink``).

    Args:
        lan_link, uplink_link: the two links (closed with the firewall).
        lan, uplink: the firewall's address/prefix on each.
        gateway: the next router on the uplink (the default route), or None.
        lan6, uplink6: IPv6 addresses/prefixes of the first client network and the uplink
            (``"fd00:1::1/64"``); with both, IPv6 is routed (not translated).
        gateway6: the next IPv6 router on the uplink (the default route), or None.
        clients: more client networks, each on its own link and interface, with its own
            DHCP server.
        rules: the filter's rules and policies in the text form (``stack.filter.load``).
        pool: the DHCP pool, ``"first-last"``; by default the lan network's .100 to .199.
        domain: the clients' DNS domain (DHCP option 15), served by the firewall.
        zone: zone-file text or a path for the DNS server; by default :func:`local_zone`.
        lease_time: DHCP lease seconds.

    Returns:
        The running firewall.

    Raises:
        ValueError: a bad address, pool or rule (the rule's line is named).
    """
    networks = [ClientNetwork(lan_link, lan, None, pool, lan6), *clients]
    address = str(ipaddress.IPv4Interface(lan).ip)
    stack = await Stack.open(lan_link, ipv4=lan, ipv6=lan6, hostname="firewall")
    sides: list[ClientSide] = []
    dns = None
    try:
        for net in networks[1:]:
            await stack.add_interface(net.link, ipv4=net.ipv4, ipv6=net.ipv6, name=net.name)
        up = await stack.add_interface(uplink_link, ipv4=uplink, ipv6=uplink6, name="uplink")
        if gateway is not None:
            stack.add_route("0.0.0.0/0", gateway=gateway, interface=up)
        if gateway6 is not None:
            stack.add_route("::/0", gateway=gateway6, interface=up)
        # Rules first: nothing is routed before the filter is in place.
        stack.filter.load(rules)
        stack.nat.masquerade(up)
        stack.forwarding = True
        from . import dns as dns_service

        dns = await dns_service.serve(stack, zone or local_zone(domain, address))
        for iface, net in zip(stack.interfaces, networks, strict=False):
            sides.append(ClientSide(iface, await _serve_network(stack, iface, net, domain,
                                                                lease_time)))  # fmt: skip
    except BaseException:
        for side in sides:
            side.dhcp.close()
        if dns is not None:
            dns.close()
        await stack.close()
        raise
    return Firewall(stack, stack.interfaces[0], up, sides[0].dhcp, dns, sides)


async def _serve_network(
    stack: Stack, iface: Interface, net: ClientNetwork, domain: str, lease_time: int
) -> DhcpServerHandle:
    """DHCP for one client network (the firewall its router and name server), and for IPv6
    router advertisements of its /64 with the firewall as name server (RFC 8106)."""
    own = ipaddress.IPv4Interface(net.ipv4)
    pool = net.pool
    if pool is None:
        base = own.network.network_address
        pool = f"{base + 100}-{base + 199}"
    if net.ipv6 is not None:
        own6 = ipaddress.IPv6Interface(net.ipv6)
        stack.advertise(iface, prefixes=[str(own6.network)], dns=[str(own6.ip)])
    address = str(own.ip)
    return await serve_dhcp(
        stack, pool=pool, router=address, dns=address, domain=domain, lease_time=lease_time,
        interface=iface,
    )  # fmt: skip
