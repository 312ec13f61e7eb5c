"""ICMP for IPv6 (RFC 4443): ``wire`` holds the header that every ICMPv6 message has, and
the error and echo messages; ``layer`` is the ICMPv6 layer. The messages that ride in the same
header have their own protocols: neighbour discovery in :mod:`netstack.proto.ndp` and
multicast listener discovery in :mod:`netstack.proto.mld` (the modules ``ndp``, ``mld`` and
``listener`` here are their old names)."""
