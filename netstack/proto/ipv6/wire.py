"""IPv6 headers (RFC 8200 3), the walk over the extension-header chain (RFC 8200 4-4.6) and
the Fragment header (RFC 8200 4.5).

The fixed header (RFC 8200 3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Traffic Class |           Flow Label                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |         Payload Length        |  Next Header  |   Hop Limit   |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                                                               |
    +                  Source Address (128 bits)                    +
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                                                               |
    +                Destination Address (128 bits)                 +
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Hop-by-Hop Options (4.3), Destination Options (4.6) and Routing (4.4) headers all start with
Next Header and Hdr Ext Len (the length in 8-octet units, not counting the first 8); the
options inside the first two are TLVs (4.2) whose Option Type's two high-order bits say what
a node that does not know the option must do. The Fragment header (4.5)::

    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         Identification                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

What a host does with the chain (:func:`walk`): Hop-by-Hop only right after the fixed header
(RFC 8200 4.1); Pad1, PadN and Router Alert (RFC 2711) understood, other options by their
action bits (4.2); a Routing header with Segments Left 0 ignored, otherwise a Parameter
Problem, since a host forwards nothing and knows no routing type (4.4; RFC 5095 3 puts type 0
in the same place); an atomic fragment (offset 0, M 0) skipped on its own, apart from any other
fragment (RFC 6946 4, RFC 8200 4.5; RFC 8021 explains why hosts no longer send them). Jumbograms
(RFC 2675) are not supported.

Errors that RFC 8200 answers with an ICMPv6 Parameter Problem (RFC 4443 3.4) are raised as
:class:`ParameterProblem`, which carries the code and pointer; other malformed input raises a
plain :class:`~netstack.errors.ParseError` and is dropped silently.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from ...errors import ParseError
from ..wire import fast_new

__all__ = [
    "FRAGMENT_HEADER_LEN",
    "IPV6_HEADER_LEN",
    "MAX_PAYLOAD",
    "MIN_MTU",
    "Chain",
    "FragmentHeader",
    "IPv6Header",
    "NextHeader",
    "ParameterProblem",
    "ProblemCode",
    "build_fragment_header_into",
    "build_header_into",
    "new_ipv6_header",
    "parse",
    "parse_fragment_header",
    "unrecognized_next_header",
    "walk",
]

IPV6_HEADER_LEN = 40
FRAGMENT_HEADER_LEN = 8
#: RFC 8200 5: every link carries packets of at least 1280 octets.
MIN_MTU = 1280
#: The largest Payload Length without a Jumbo Payload option (RFC 8200 3).
MAX_PAYLOAD = 65535

_HEADER = struct.Struct("!IHBB16s16s")
_FRAGMENT = struct.Struct("!BBHI")


class NextHeader(IntEnum):
    """Next Header values (IANA protocol numbers) an IPv6 host meets."""

    HOP_BY_HOP = 0
    TCP = 6
    UDP = 17
    ROUTING = 43
    FRAGMENT = 44
    ESP = 50
    AH = 51
    ICMPV6 = 58
    NO_NEXT = 59
    DEST_OPTS = 60
    MOBILITY = 135
    HIP = 139
    SHIM6 = 140
    EXP1 = 253
    EXP2 = 254


class ProblemCode(IntEnum):
    """ICMPv6 Parameter Problem codes (RFC 4443 3.4, RFC 7112 5)."""

    ERRONEOUS_HEADER_FIELD = 0
    UNRECOGNIZED_NEXT_HEADER = 1
    UNRECOGNIZED_OPTION = 2
    INCOMPLETE_HEADER_CHAIN = 3


# Plain ints for the per-packet comparisons (an IntEnum member compares more slowly).
_HOP_BY_HOP = 0
_ROUTING = 43
_FRAGMENT_NH = 44
_DEST_OPTS = 60
_OPT_PAD1 = 0
_OPT_PADN = 1
_OPT_ROUTER_ALERT = 5  # RFC 2711 2.1: type 5 (action bits 00), Opt Data Len 2


class ParameterProblem(ParseError):
    """A packet that RFC 8200 answers with an ICMPv6 Parameter Problem (RFC 4443 3.4).

    Attributes:
        reason: the drop counter's name, as for any :class:`ParseError`.
        code: the ICMPv6 code (:class:`ProblemCode`).
        pointer: the offset of the offending octet from the start of the IPv6 header.
        send_icmp: False when the RFC forbids the ICMPv6 message (an unknown option whose
            action bits are 01, or 11 with a multicast destination; RFC 8200 4.2).
    """

    def __init__(self, reason: str, code: int, pointer: int, send_icmp: bool = True) -> None:
        super().__init__(reason, f"code {code}, pointer {pointer}")
        self.code = code
        self.pointer = pointer
        self.send_icmp = send_icmp


class IPv6Header(NamedTuple):
    """The fixed IPv6 header; ``src`` and ``dst`` are 16 bytes each."""

    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes

    @property
    def dscp(self) -> int:
        return self.traffic_class >> 2

    @property
    def ecn(self) -> int:
        return self.traffic_class & 3

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset``; returns its length (40).

        Raises:
            ValueError: a traffic class, flow label or address that does not fit its field.
        """
        _check_fields(self.traffic_class, self.flow_label, self.src, self.dst)
        _HEADER.pack_into(
            buf, offset, 0x60000000 | (self.traffic_class << 20) | self.flow_label,
            self.payload_length, self.next_header, self.hop_limit, self.src, self.dst,
        )  # fmt: skip
        return IPV6_HEADER_LEN

    def to_bytes(self) -> bytes:
        buf = bytearray(IPV6_HEADER_LEN)
        self.emit_into(buf)
        return bytes(buf)


#: The per-packet constructor (no field checks): ``new_ipv6_header((tclass, flow, ...))``.
new_ipv6_header = fast_new(
    IPv6Header, "traffic_class flow_label payload_length next_header hop_limit src dst"
)


def _check_fields(traffic_class: int, flow_label: int, src: bytes, dst: bytes) -> None:
    # struct's "16s" would pad or cut an address silently, and a wide flow label would run
    # into the traffic class: refuse both.
    if not 0 <= traffic_class <= 0xFF or not 0 <= flow_label <= 0xFFFFF:
        raise ValueError(f"traffic class {traffic_class} or flow label {flow_label} too wide")
    if len(src) != 16 or len(dst) != 16:
        raise ValueError("IPv6 addresses are 16 bytes")


def parse(data: bytes | bytearray | memoryview) -> tuple[IPv6Header, memoryview]:
    """Parse the fixed header; the payload view ends at Payload Length (link padding cut off).

    Raises:
        ParseError: ``truncated`` (under 40 bytes, or a Payload Length beyond the data),
            ``bad_version`` (not 6) or ``jumbogram`` (Payload Length 0 with a Hop-by-Hop
            header, RFC 2675, which is not supported). Payload Length 0 with any other Next
            Header is a valid empty payload.
    """
    n = len(data)
    if n < IPV6_HEADER_LEN:
        raise ParseError("truncated", f"{n} bytes is shorter than an IPv6 header")
    vtf, plen, nh, hlim, src, dst = _HEADER.unpack_from(data, 0)
    if vtf >> 28 != 6:
        raise ParseError("bad_version", f"version {vtf >> 28}")
    if plen == 0 and nh == _HOP_BY_HOP:
        raise ParseError("jumbogram", "payload length 0 with a hop-by-hop header")
    end = IPV6_HEADER_LEN + plen
    if end > n:
        raise ParseError("truncated", f"payload length {plen} > {n - IPV6_HEADER_LEN} bytes")
    header = new_ipv6_header(((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hlim, src, dst))
    return header, memoryview(data)[IPV6_HEADER_LEN:end]


def build_header_into(
    buf: bytearray | memoryview,
    offset: int,
    payload_length: int,
    next_header: int,
    hop_limit: int,
    src: bytes,
    dst: bytes,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> None:
    """Write a fixed header at ``offset`` (the per-packet send path: one ``pack_into``).

    The caller vouches for the fields: ``src``/``dst`` 16 bytes, ``traffic_class`` below 256,
    ``flow_label`` below 2**20 (use :meth:`IPv6Header.emit_into` for checked values).
    """
    _HEADER.pack_into(
        buf, offset, 0x60000000 | (traffic_class << 20) | flow_label, payload_length,
        next_header, hop_limit, src, dst,
    )  # fmt: skip


# -- Fragment header (RFC 8200 4.5) -----------------------------------------------------------


class FragmentHeader(NamedTuple):
    """A Fragment header; ``offset`` is in bytes (the field's 8-octet units times 8)."""

    next_header: int
    offset: int
    more: bool
    ident: int

    def emit_into(self, buf: bytearray | memoryview, offset: int = 0) -> int:
        """Write the header at ``offset`` (Reserved and Res zero); returns its length (8).

        Raises:
            ValueError: an offset that is not a multiple of 8 in 0..65528.
        """
        build_fragment_header_into(
            buf, offset, self.next_header, self.offset, self.more, self.ident
        )
        return FRAGMENT_HEADER_LEN

    def to_bytes(self) -> bytes:
        buf = bytearray(FRAGMENT_HEADER_LEN)
        self.emit_into(buf)
        return bytes(buf)


_new_fragment = fast_new(FragmentHeader, "next_header offset more ident")


def parse_fragment_header(data: bytes | bytearray | memoryview, at: int = 0) -> FragmentHeader:
    """Parse the Fragment header at ``data[at:]``; Reserved and Res are ignored on reception
    (RFC 8200 4.5).

    Raises:
        ParseError: ``truncated``: fewer than 8 bytes at ``at``.
        ValueError: a negative ``at``.
    """
    if at < 0:
        raise ValueError("negative offset")
    if at + FRAGMENT_HEADER_LEN > len(data):
        raise ParseError("truncated", f"fragment header at {at} of {len(data)} bytes")
    nh, _, offm, ident = _FRAGMENT.unpack_from(data, at)
    return _new_fragment((nh, offm & 0xFFF8, bool(offm & 1), ident))


def build_fragment_header_into(
    buf: bytearray | memoryview,
    offset: int,
    next_header: int,
    frag_offset_bytes: int,
    more: bool,
    ident: int,
) -> None:
    """Write a Fragment header at ``offset``; ``frag_offset_bytes`` is in bytes.

    Raises:
        ValueError: ``frag_offset_bytes`` not a multiple of 8 in 0..65528.
    """
    if frag_offset_bytes & 7 or not 0 <= frag_offset_bytes <= 0xFFF8:
        raise ValueError(f"fragment offset {frag_offset_bytes} is not a multiple of 8 bytes")
    _FRAGMENT.pack_into(buf, offset, next_header, 0, frag_offset_bytes | bool(more), ident)


# -- the extension-header chain (RFC 8200 4) --------------------------------------------------


class Chain(NamedTuple):
    """Where :func:`walk` stopped.

    Attributes:
        upper: the Next Header value the walk stopped at: an upper-layer protocol, No Next
            Header (59), ESP, AH, an extension header this host does not process, or any
            other value; after a (non-atomic) Fragment header, that header's Next Header.
        offset: payload offset of the upper-layer header, or of the fragment data.
        fragment: the Fragment header when the packet is a fragment (not an atomic one).
        fragment_at: payload offset of that Fragment header, or -1.
        router_alert: a Router Alert option (RFC 2711) was in the Hop-by-Hop header.
        next_header_pointer: offset, from the start of the IPv6 header, of the octet that
            holds ``upper`` (6 for the fixed header's Next Header field): the pointer of a
            Parameter Problem code 1 when ``upper`` is not a protocol this host handles.
    """

    upper: int
    offset: int
    fragment: FragmentHeader | None
    fragment_at: int
    router_alert: bool
    next_header_pointer: int


_new_chain = fast_new(Chain, "upper offset fragment fragment_at router_alert next_header_pointer")


def unrecognized_next_header(chain: Chain, payload: object = None) -> ParameterProblem:
    """The Parameter Problem (code 1) for a chain that ended at a Next Header value this host
    does not handle, pointing at the octet that named it (RFC 8200 4).

    ``payload`` is not needed (the pointer is :attr:`Chain.next_header_pointer`) and is
    accepted only so that ``unrecognized_next_header(chain, payload)`` works too.
    """
    return ParameterProblem(
        "unrecognized_next_header", ProblemCode.UNRECOGNIZED_NEXT_HEADER, chain.next_header_pointer
    )


def walk(
    next_header: int,
    payload: memoryview | bytes | bytearray,
    dst_multicast: bool,
    *,
    known_upper: frozenset[int] | set[int],
    max_headers: int = 8,
    hop_by_hop_allowed: bool = True,
) -> Chain:
    """Walk the extension headers of ``payload`` (what follows the fixed header, whose Next
    Header is ``next_header``) in order, as the destination of the packet (RFC 8200 4).

    The walk stops at a value in ``known_upper`` (checked first, so those values are never
    read as extension headers), at a non-atomic Fragment header, and at any value other than
    the Hop-by-Hop, Destination Options, Routing and Fragment headers it processes. It reads
    every octet at most once and at most ``max_headers`` headers.

    Args:
        next_header: the Next Header of the fixed header.
        payload: the packet after the fixed header, cut to Payload Length.
        dst_multicast: the destination address is multicast (RFC 8200 4.2, action bits 11).
        known_upper: the upper-layer protocols the caller handles.
        max_headers: extension headers allowed before the walk gives up.
        hop_by_hop_allowed: False when ``payload`` does not directly follow the fixed header
            (the Fragmentable Part of a reassembled packet), where Hop-by-Hop is never legal.

    Returns:
        Where the walk stopped (:class:`Chain`); the caller answers an ``upper`` it does not
        handle with :func:`unrecognized_next_header`.

    Raises:
        ParameterProblem: Hop-by-Hop not first (code 1); an unknown option with action bits
            01, 10 or 11 (code 2, ``send_icmp`` per RFC 8200 4.2); a Routing header with
            Segments Left non-zero (code 0, pointing at Routing Type).
        ParseError: ``truncated_extension`` (a header runs past the payload),
            ``bad_option_length`` (an option runs past its header, or a Router Alert whose
            length is not 2; dropped silently, as RFC 8200 names no ICMPv6 for it),
            ``too_many_headers`` (more than ``max_headers``).
    """
    n = len(payload)
    nh = next_header
    at = 0  # payload offset of the header being looked at
    pointer = 6  # offset from the IPv6 header of the octet that holds ``nh``
    alert = False
    count = 0
    while nh not in known_upper:
        if nh == _HOP_BY_HOP:
            # RFC 8200 4 and 4.1: Hop-by-Hop only immediately after the IPv6 header; elsewhere
            # it is an unrecognised Next Header (code 1) pointing at the value that named it.
            if at or not hop_by_hop_allowed:
                raise ParameterProblem(
                    "hop_by_hop_not_first", ProblemCode.UNRECOGNIZED_NEXT_HEADER, pointer
                )
        elif nh != _DEST_OPTS and nh != _ROUTING and nh != _FRAGMENT_NH:
            break  # an upper layer, No Next Header, ESP, AH, or a header we do not process
        count += 1
        if count > max_headers:
            raise ParseError("too_many_headers", f"more than {max_headers} extension headers")
        if nh == _FRAGMENT_NH:
            if at + FRAGMENT_HEADER_LEN > n:
                raise ParseError("truncated_extension", f"fragment header at {at} of {n}")
            inner, _, offm, ident = _FRAGMENT.unpack_from(payload, at)
            if offm & 0xFFF9:
                fragment = _new_fragment((inner, offm & 0xFFF8, bool(offm & 1), ident))
                return _new_chain((inner, at + 8, fragment, at, alert, IPV6_HEADER_LEN + at))
            # RFC 6946 4 / RFC 8200 4.5: an atomic fragment (offset 0, M 0) is a whole packet,
            # processed in isolation from any fragments with the same Identification.
            pointer = IPV6_HEADER_LEN + at
            nh = inner
            at += FRAGMENT_HEADER_LEN
            continue
        if at + 2 > n:
            raise ParseError("truncated_extension", f"extension header {nh} at {at} of {n}")
        end = at + ((payload[at + 1] + 1) << 3)
        if end > n:
            raise ParseError("truncated_extension", f"extension header {nh} ends at {end} > {n}")
        if nh == _ROUTING:
            # RFC 8200 4.4: a host knows no Routing Type (RFC 5095 3 for type 0): ignored with
            # Segments Left 0, otherwise discarded with code 0 pointing at the Routing Type.
            if payload[at + 3]:
                raise ParameterProblem(
                    "unrecognized_routing_type", ProblemCode.ERRONEOUS_HEADER_FIELD,
                    IPV6_HEADER_LEN + at + 2,
                )  # fmt: skip
        elif _options(payload, at + 2, end, nh == _HOP_BY_HOP, dst_multicast):
            alert = True
        pointer = IPV6_HEADER_LEN + at
        nh = payload[at]
        at = end
    return _new_chain((nh, at, None, -1, alert, pointer))


def _options(
    payload: memoryview | bytes | bytearray, i: int, end: int, hop_by_hop: bool, multicast: bool
) -> bool:
    """Process the TLV options in ``payload[i:end]`` strictly in order (RFC 8200 4.2);
    returns whether a Router Alert option was among them (only in Hop-by-Hop, RFC 2711 2.1).
    """
    alert = False
    while i < end:
        kind = payload[i]
        if kind == _OPT_PAD1:  # RFC 8200 4.2: Pad1 has no length or data
            i += 1
            continue
        known = kind == _OPT_PADN or (kind == _OPT_ROUTER_ALERT and hop_by_hop)
        action = kind >> 6
        if not known and action:
            # RFC 8200 4.2, the two high-order bits of an unknown Option Type: 01 discard
            # silently; 10 discard and send code 2 pointing at the type; 11 the same, but
            # with no ICMPv6 when the destination was a multicast address.
            raise ParameterProblem(
                "unknown_option", ProblemCode.UNRECOGNIZED_OPTION, IPV6_HEADER_LEN + i,
                send_icmp=action == 2 or (action == 3 and not multicast),
            )  # fmt: skip
        if i + 2 > end:
            raise ParseError("bad_option_length", f"option {kind} without a length")
        length = payload[i + 1]
        nxt = i + 2 + length
        if nxt > end:
            raise ParseError("bad_option_length", f"option {kind} of {length} bytes overruns")
        if kind == _OPT_ROUTER_ALERT and hop_by_hop:
            if length != 2:
                raise ParseError("bad_option_length", f"router alert of {length} bytes")
            alert = True
        # PadN and unknown options with action bits 00 are skipped.
        i = nxt
    return alert
