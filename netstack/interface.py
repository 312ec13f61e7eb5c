"""One interface of a :class:`~netstack.Stack`: a link, with what belongs to that link alone.

A stack owns one or more interfaces (``Stack.open`` makes the first, ``Stack.add_interface``
the others). Each has its link and its transmitter, its Ethernet layer, ARP with its neighbour
cache, and its share of the IPv4 and IPv6 layers (:class:`~netstack.proto.ipv4.layer.IPv4Iface`:
MTU and addresses; :class:`~netstack.proto.ipv6.layer.IPv6Iface`: MTU, hop limit, neighbour
cache, address configuration, multicast groups and MLD). Its ``index`` (1 for the first, never
reused) is what a packet carries up the stack to say where it came in, and the scope id of a
link-local IPv6 address on it (``fe80::1%1``, or ``%`` and its ``name``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .addressing import InterfaceAddress, InterfaceAddress6, format_ip
from .link.base import Link, QueuedTransmitter
from .proto.arp.layer import ArpLayer
from .proto.ethernet.layer import EthernetLayer
from .proto.ipv4.layer import IPv4Iface
from .proto.ipv6.layer import IPv6Iface, IPv6Layer

__all__ = ["Interface"]


class Interface:
    """A stack's interface: ``name``, ``index``, ``link``, ``mac``, ``mtu``, ``addresses``
    and :meth:`stats`. Made by the stack; give it to ``Stack.remove_interface``,
    ``Stack.add_route(interface=)`` or ``Stack.add_address(interface=)``."""

    def __init__(
        self,
        name: str,
        index: int,
        link: Link,
        ethernet: EthernetLayer,
        arp: ArpLayer,
        ip4: IPv4Iface,
        ip6: IPv6Iface,
        ipv6: IPv6Layer,
        queued: QueuedTransmitter | None,
        close_link: bool,
    ) -> None:
        self.name = name
        self.index = index
        self.link = link
        self.ethernet = ethernet
        self.arp = arp
        self.ip4 = ip4
        self.ip6 = ip6
        self._ipv6 = ipv6
        self.queued = queued
        self.close_link = close_link
        #: The task that runs the link's receive loop.
        self.listen_task: asyncio.Task[None] | None = None
        #: Set once the interface left its stack.
        self.removed = False

    @property
    def mac(self) -> str:
        """The link's Ethernet address, as ``stack.mac`` gives it."""
        return str(self.link.mac)

    @property
    def mtu(self) -> int:
        """The IPv4 MTU of the interface (the link's, unless a DHCP lease lowered it)."""
        return self.ip4.mtu

    @property
    def addresses(self) -> list[InterfaceAddress | InterfaceAddress6]:
        """The interface's IPv4 addresses, then its IPv6 ones (with their ``state`` and
        ``origin``)."""
        out: list[InterfaceAddress | InterfaceAddress6] = [
            InterfaceAddress(f"{format_ip(a.ip)}/{a.prefix}", interface=self.name)
            for a in self.ip4.addresses
        ]
        for info in self.ip6.addrconf.addresses:
            text = f"{format_ip(info.address)}/{info.prefix_len}"
            origin = info.origin.name.lower().replace("_", "-")
            out.append(InterfaceAddress6(text, info.state.value, origin, interface=self.name))
        return out

    def stats(self) -> dict[str, Any]:
        """The counters of what belongs to this interface: its link, Ethernet layer and ARP,
        what IPv6 keeps for it, and the frames its transmit queue dropped."""
        return {
            "link": link_stats(self.link),
            "ethernet": self.ethernet.stats(),
            "arp": self.arp.stats(),
            "ipv6": self._ipv6.iface_stats(self.index),
            "tx_queue_dropped": self.queued.dropped if self.queued else 0,
        }

    def __repr__(self) -> str:
        addrs = ", ".join(str(a) for a in self.addresses) or "no address"
        gone = " removed" if self.removed else ""
        return f"<Interface {self.name} ({self.index}) {self.mac} {addrs}{gone}>"


def link_stats(link: Link) -> dict[str, Any]:
    """A link's counters as a dict."""
    stats = link.stats()
    as_dict = getattr(stats, "as_dict", None)
    return as_dict() if callable(as_dict) else dict(vars(stats))
