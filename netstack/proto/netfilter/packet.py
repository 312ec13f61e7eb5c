"""What connection tracking and NAT read of a datagram, and how they rewrite it in place.

:func:`dissect` finds, in an IP datagram that starts at its header (IPv4, RFC 791 3.1; IPv6,
RFC 8200 3 and its extension headers, 4), the flow it belongs to: protocol, addresses and
"ports" (TCP and UDP ports; for ICMP and ICMPv6 echo the identifier, RFC 792 and RFC 4443
4.1, which a NAT translates like a port), the transport's checksum field, and for an ICMP
error (RFC 792, RFC 4443 2.4) the datagram it quotes, dissected the same way. Nothing is
copied but the addresses; offsets point into the caller's buffer.

:func:`set_source` and :func:`set_destination` rewrite an IPv4 datagram's address and port
in place and fix the IP header checksum and the transport checksum incrementally, as RFC 1624
(3) gives it: ``HC' = ~(~HC + ~m + m')``, summed over the changed 16-bit words, so the cost
does not grow with the payload. That holds for the first fragment of a datagram too, whose
transport checksum covers data in later fragments (the change is the same whatever the rest
sums to). UDP's zero checksum over IPv4 means none was computed and stays zero (RFC 768).
"""

from __future__ import annotations

import struct

from ...errors import ParseError

__all__ = [
    "KIND_ERROR",
    "KIND_FLOW",
    "KIND_LATER_FRAGMENT",
    "KIND_UNTRACKED",
    "Packet",
    "adjust",
    "dissect",
    "set_destination",
    "set_source",
]

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

#: A datagram of a flow (TCP, UDP, ICMP echo, or another protocol tracked by addresses).
KIND_FLOW = 0
#: An ICMP or ICMPv6 error; ``inner`` is the datagram it quotes.
KIND_ERROR = 1
#: An ICMP message that is neither echo nor error (router and neighbour discovery, MLD, ...).
KIND_UNTRACKED = 2
#: A fragment other than the first: no transport header, found by its datagram's identity.
KIND_LATER_FRAGMENT = 3

_V4 = struct.Struct("!BxHHHxB2x4s4s")
_V6 = struct.Struct("!4xHBx16s16s")
_PORTS = struct.Struct("!HH")
_U16 = struct.Struct("!H")

# ICMP (RFC 792) and ICMPv6 (RFC 4443 2.1) type numbers this module sorts by.
_ICMP_ECHO_REQUEST = {PROTO_ICMP: 8, PROTO_ICMPV6: 128}
_ICMP_ECHO_REPLY = {PROTO_ICMP: 0, PROTO_ICMPV6: 129}
#: Destination Unreachable, Source Quench, Redirect, Time Exceeded, Parameter Problem (RFC 792).
_ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})
#: Destination Unreachable, Packet Too Big, Time Exceeded, Parameter Problem (RFC 4443 2.1).
_ICMP6_ERRORS = frozenset({1, 2, 3, 4})
# IPv6 extension headers walked past (RFC 8200 4.3, 4.4, 4.6; AH is RFC 4302 2.2).
_EXT_HOP, _EXT_ROUTING, _EXT_FRAGMENT, _EXT_DEST, _EXT_AH = 0, 43, 44, 60, 51
_MAX_EXT = 8


class Packet:
    """One dissected datagram (or the datagram an ICMP error quotes).

    ``sport_at``/``dport_at`` are the buffer offsets of the source and destination "ports"
    (-1 where there is none: an echo reply has no source port in this sense, an echo request
    no destination port); ``csum_at`` is that of the transport checksum (-1 when absent or,
    in a quoted datagram, cut off); ``pseudo`` says whether it covers the addresses.
    """

    __slots__ = (
        "v6", "kind", "proto", "src", "dst", "sport", "dport", "start", "l4", "end",
        "sport_at", "dport_at", "csum_at", "pseudo", "tcp_flags", "icmp_type", "icmp_code",
        "frag_id", "fragment", "inner",
    )  # fmt: skip

    def __init__(self) -> None:
        self.v6 = False
        self.kind = KIND_FLOW
        self.proto = 0
        self.src = b""
        self.dst = b""
        self.sport = 0
        self.dport = 0
        self.start = 0
        self.l4 = 0
        self.end = 0
        self.sport_at = -1
        self.dport_at = -1
        self.csum_at = -1
        self.pseudo = False
        self.tcp_flags = 0
        self.icmp_type = -1
        self.icmp_code = -1
        #: The IP identification (IPv4) or Fragment header identification (IPv6).
        self.frag_id = 0
        #: True for any fragment (first or later) of a fragmented datagram.
        self.fragment = False
        self.inner: Packet | None = None

    def key(self) -> tuple[int, bytes, int, bytes, int]:
        """The flow tuple: (protocol, source, source port, destination, destination port)."""
        return (self.proto, self.src, self.sport, self.dst, self.dport)


def dissect(d: bytearray, start: int = 0, quoted: bool = False) -> Packet:
    """Dissect the datagram at ``d[start:]``.

    A quoted datagram (inside an ICMP error) may be cut short after 8 bytes of its transport
    header (RFC 792; RFC 1812 4.3.2.3 lets a router quote more) and its length fields may
    claim more than is there.

    Raises:
        ParseError: too short, a length field that lies, an unknown IP version, or a
            transport header cut short (a quoted one needs its first 8 bytes).
    """
    n = len(d)
    if n - start < 1:
        raise ParseError("truncated", "empty datagram")
    version = d[start] >> 4
    p = Packet()
    p.start = start
    if version == 4:
        if n - start < 20:
            raise ParseError("truncated", f"{n - start} bytes is shorter than an IPv4 header")
        ver_ihl, total, ident, ff, proto, src, dst = _V4.unpack_from(d, start)
        ihl = (ver_ihl & 0x0F) << 2
        if ihl < 20 or n - start < ihl:
            raise ParseError("bad_header_length", f"IHL {ihl >> 2}")
        if quoted:
            end = min(n, start + max(total, ihl))
        else:
            if total < ihl or total > n - start:
                raise ParseError("bad_total_length", f"total length {total}")
            end = start + total
        p.proto, p.src, p.dst, p.frag_id, p.end = proto, src, dst, ident, end
        l4 = start + ihl
        if ff & 0x3FFF:  # more fragments, or an offset
            p.fragment = True
            if ff & 0x1FFF:
                p.kind = KIND_LATER_FRAGMENT
                p.l4 = l4
                return p
    elif version == 6:
        if n - start < 40:
            raise ParseError("truncated", f"{n - start} bytes is shorter than an IPv6 header")
        plen, nh, src, dst = _V6.unpack_from(d, start)
        if quoted:
            end = min(n, start + 40 + plen)
        else:
            if plen == 0 or 40 + plen > n - start:
                # A zero Payload Length is a jumbogram (RFC 2675), which no link here carries.
                raise ParseError("bad_payload_length", f"payload length {plen}")
            end = start + 40 + plen
        p.v6, p.src, p.dst, p.end = True, src, dst, end
        l4 = start + 40
        for _ in range(_MAX_EXT):
            if nh in (_EXT_HOP, _EXT_ROUTING, _EXT_DEST):
                if l4 + 8 > end:
                    raise ParseError("truncated", "extension header cut short")
                nh, hlen = d[l4], (d[l4 + 1] + 1) << 3
            elif nh == _EXT_AH:
                if l4 + 8 > end:
                    raise ParseError("truncated", "AH cut short")
                nh, hlen = d[l4], (d[l4 + 1] + 2) << 2
            elif nh == _EXT_FRAGMENT:
                if l4 + 8 > end:
                    raise ParseError("truncated", "fragment header cut short")
                offset_m = d[l4 + 2] << 8 | d[l4 + 3]
                p.frag_id = int.from_bytes(d[l4 + 4 : l4 + 8], "big")
                nh, hlen = d[l4], 8
                if offset_m & 0xFFF9:  # RFC 8200 4.5: not an atomic fragment
                    p.fragment = True
                    if offset_m & 0xFFF8:
                        p.proto, p.kind, p.l4 = nh, KIND_LATER_FRAGMENT, l4 + 8
                        return p
            else:
                break
            l4 += hlen
        else:
            raise ParseError("too_many_headers", "extension header chain too long")
        p.proto = nh
        proto = nh
    else:
        raise ParseError("bad_version", f"IP version {version}")
    p.l4 = l4
    avail = p.end - l4
    if proto == PROTO_TCP or proto == PROTO_UDP:
        need = 8 if quoted or proto == PROTO_UDP else 20
        if avail < need:
            raise ParseError("truncated", f"transport header of {avail} bytes")
        p.sport, p.dport = _PORTS.unpack_from(d, l4)
        p.sport_at, p.dport_at = l4, l4 + 2
        p.pseudo = True
        if proto == PROTO_TCP:
            if avail >= 14:
                p.tcp_flags = (d[l4 + 12] & 1) << 8 | d[l4 + 13]
            if not quoted and (d[l4 + 12] >> 4) < 5:
                raise ParseError("bad_data_offset", "TCP data offset below 5")
            if avail >= 18:
                p.csum_at = l4 + 16
        else:
            p.csum_at = l4 + 6
    elif proto == PROTO_ICMP or proto == PROTO_ICMPV6:
        if avail < 8:
            raise ParseError("truncated", f"ICMP message of {avail} bytes")
        if (proto == PROTO_ICMP) == p.v6:
            raise ParseError("bad_protocol", "ICMP in the other IP version")
        t = p.icmp_type = d[l4]
        p.icmp_code = d[l4 + 1]
        p.csum_at = l4 + 2
        p.pseudo = p.v6  # RFC 4443 2.3: ICMPv6's checksum covers a pseudo-header
        if t == _ICMP_ECHO_REQUEST[proto]:
            p.sport = d[l4 + 4] << 8 | d[l4 + 5]
            p.sport_at = l4 + 4
        elif t == _ICMP_ECHO_REPLY[proto]:
            p.dport = d[l4 + 4] << 8 | d[l4 + 5]
            p.dport_at = l4 + 4
        elif t in (_ICMP6_ERRORS if p.v6 else _ICMP_ERRORS):
            if quoted:
                raise ParseError("error_in_error", "an ICMP error quoting an ICMP error")
            if p.fragment:
                raise ParseError("fragmented_error", "a fragmented ICMP error")
            p.kind = KIND_ERROR
            inner = dissect(d, l4 + 8, quoted=True)
            if inner.v6 != p.v6:
                raise ParseError("bad_quote", "an ICMP error quoting the other IP version")
            if inner.kind != KIND_FLOW:
                raise ParseError("bad_quote", "an ICMP error quoting what is not a flow")
            p.inner = inner
        else:
            p.kind = KIND_UNTRACKED
    return p


# -- in-place rewriting (IPv4) -----------------------------------------------------------------


def adjust(checksum: int, old: int, new: int) -> int:
    """RFC 1624 (3): the checksum after words summing to ``old`` became words summing to
    ``new`` (ones'-complement sums, reduced modulo 0xFFFF). Never returns 0, so a UDP checksum
    updated here never turns into "no checksum"."""
    return 0xFFFF - ((0xFFFF - checksum) + (0xFFFF - old % 0xFFFF) + new) % 0xFFFF


def _addr_sum(addr: bytes) -> int:
    return int.from_bytes(addr, "big") % 0xFFFF


def _rewrite(
    d: bytearray, p: Packet, addr_at: int, old_addr: bytes, new_addr: bytes,
    port_at: int, old_port: int, new_port: int, fix_transport: bool,
) -> None:  # fmt: skip
    """Write one address (and port) of the IPv4 datagram ``p`` and fix its checksums."""
    ip_old = ip_new = 0
    if old_addr != new_addr:
        d[addr_at : addr_at + 4] = new_addr
        ip_old, ip_new = _addr_sum(old_addr), _addr_sum(new_addr)
        hc = p.start + 10
        _U16.pack_into(d, hc, adjust(d[hc] << 8 | d[hc + 1], ip_old, ip_new))
    if port_at >= 0 and old_port != new_port:
        _U16.pack_into(d, port_at, new_port)
    else:
        old_port = new_port = 0
    c = p.csum_at
    if not fix_transport or c < 0:
        return
    if p.pseudo:
        old, new = ip_old + old_port, ip_new + new_port
    else:
        old, new = old_port, new_port  # ICMP: no pseudo-header (RFC 792)
    if old == new:
        return
    value = d[c] << 8 | d[c + 1]
    if p.proto == PROTO_UDP and value == 0:
        return  # RFC 768: no checksum was computed, and none is now
    _U16.pack_into(d, c, adjust(value, old, new))


def set_source(d: bytearray, p: Packet, addr: bytes, port: int, fix_transport: bool = True) -> None:
    """Rewrite the source address and port of the IPv4 datagram ``p`` in ``d`` (a port is
    written only where the datagram has one: see :class:`Packet`)."""
    _rewrite(d, p, p.start + 12, p.src, addr, p.sport_at, p.sport, port, fix_transport)
    p.src = addr
    if p.sport_at >= 0:
        p.sport = port


def set_destination(
    d: bytearray, p: Packet, addr: bytes, port: int, fix_transport: bool = True
) -> None:
    """Rewrite the destination address and port of the IPv4 datagram ``p`` in ``d``."""
    _rewrite(d, p, p.start + 16, p.dst, addr, p.dport_at, p.dport, port, fix_transport)
    p.dst = addr
    if p.dport_at >= 0:
        p.dport = port


def set_address_only(d: bytearray, p: Packet, source: bool, addr: bytes) -> None:
    """Rewrite one address of an IPv4 header, fixing the header checksum only (the outer
    header of an ICMP error, a fragment without a transport header)."""
    at = p.start + (12 if source else 16)
    old = p.src if source else p.dst
    if old == addr:
        return
    d[at : at + 4] = addr
    hc = p.start + 10
    _U16.pack_into(d, hc, adjust(d[hc] << 8 | d[hc + 1], _addr_sum(old), _addr_sum(addr)))
    if source:
        p.src = addr
    else:
        p.dst = addr
