"""ICMP for IPv6 (RFC 4443), Neighbor Discovery (RFC 4861, RFC 8106) and Multicast Listener
Discovery (RFC 3810, RFC 2710): ``wire`` holds the common header, ``ndp`` and ``mld`` the
message bodies that ride in it."""
