"""The neighbour cache (RFC 4861 7.3), the machine ARP and IPv6 neighbour discovery share."""
