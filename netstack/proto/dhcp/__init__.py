"""DHCP (RFC 2131, options RFC 2132): ``wire`` parses and builds messages (with RFC 3396 long
options, RFC 3442 classless routes, RFC 4361 client identifiers), ``client`` is the client
machine (with the RFC 5227 address check), ``server`` the server machine. The asyncio driver
is :mod:`netstack.dhcp`."""
