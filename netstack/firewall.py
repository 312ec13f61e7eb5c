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
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from .dhcp import DhcpServerHandle
from .dhcp import serve as serve_dhcp
from .interface import Interface
from .link.base import Link
from .stack import Stack

__all__ = ["DEFAULT_RULES", "Firewall", "local_zone", "start"]

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


@dataclass
class Firewall:
    """A running firewall: its stack, its two interfaces, its DHCP and DNS servers."""

    stack: Stack
    lan: Interface
    uplink: Interface
    dhcp: DhcpServerHandle
    dns: Any

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
            "dns": self.dns.stats(),
        }

    async def close(self) -> None:
        """Stop the servers and close the stack (and its links)."""
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
) -> Firewall:
    """Start a firewall routing between ``lan_link`` (the clients, interface ``eth0``) and
    ``uplink_link`` (interface ``uplink``).

    Args:
        lan_link, uplink_link: the two links (closed with the firewall).
        lan, uplink: the firewall's address/prefix on each.
        gateway: the next router on the uplink (the default route), or None.
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
    lan_if = ipaddress.IPv4Interface(lan)
    if pool is None:
        base = lan_if.network.network_address
        pool = f"{base + 100}-{base + 199}"
    address = str(lan_if.ip)
    stack = await Stack.open(lan_link, ipv4=lan, hostname="firewall")
    try:
        up = await stack.add_interface(uplink_link, ipv4=uplink, name="uplink")
        if gateway is not None:
            stack.add_route("0.0.0.0/0", gateway=gateway, interface=up)
        # Rules first: nothing is routed before the filter is in place.
        stack.filter.load(rules)
        stack.nat.masquerade(up)
        stack.forwarding = True
        from . import dns as dns_service

        dns = await dns_service.serve(stack, zone or local_zone(domain, address))
        try:
            dhcp = await serve_dhcp(
                stack, pool=pool, router=address, dns=address, domain=domain,
                lease_time=lease_time,
            )  # fmt: skip
        except BaseException:
            dns.close()
            raise
    except BaseException:
        await stack.close()
        raise
    return Firewall(stack, stack.interfaces[0], up, dhcp, dns)
