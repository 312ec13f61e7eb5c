"""Drivers: the asyncio side of each protocol, one module per protocol.

Each module here turns one protocol's sans-IO machines (``netstack/proto/<protocol>/``) into
what asyncio code uses, and is typed against the narrow protocols of :mod:`netstack.core`,
never against :class:`netstack.Stack`, which composes the layers and is the only module that
imports the drivers (besides the public faces that re-export them, :mod:`netstack.dhcp`):

- :mod:`.tcp`: TCP connections as :class:`asyncio.Transport` objects, and servers;
- :mod:`.udp`: UDP endpoints as :class:`asyncio.DatagramTransport` objects;
- :mod:`.ping`: ICMP and ICMPv6 echo;
- :mod:`.dhcp`: the DHCP server and client (public as :mod:`netstack.dhcp`);
- :mod:`.timer`: the one timer idiom every driver uses for its machines' deadlines.

TLS's driver is :mod:`netstack.tls.stream` (with :mod:`netstack.tls.driver` for netstack's
own engine), DNS's :mod:`netstack.dns.resolver` and :mod:`netstack.dns.server`.
"""
