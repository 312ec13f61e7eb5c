"""IPv6 Neighbor Discovery (RFC 4861, RFC 8106): ``wire`` holds the messages and options.
Its machines are the IPv6 layer's: the neighbour cache (:mod:`netstack.proto.neighbour`) and
address configuration (:mod:`netstack.proto.ipv6.addrconf`)."""
