"""Neighbor Discovery messages and options (RFC 4861 4, 6.1, 7.1, 8.1; RFC 8106 5).

Every message is an ICMPv6 message (:mod:`.wire`); its first 32 bits after the checksum are
the header's ``rest`` word, and the parsers here take the header and the body after it.

::

    Router Solicitation (133)          Router Advertisement (134)
    +--------+--------+--------+       +--------+--------+-----------------+
    |           Reserved       |       |Hop Lim.|M|O|rsvd| Router Lifetime |
    +--------------------------+       +--------+--------+-----------------+
    | Options ...                      |          Reachable Time           |
                                       +-----------------------------------+
                                       |          Retrans Timer            |
                                       +-----------------------------------+
                                       | Options ...

    Neighbor Solicitation (135)        Neighbor Advertisement (136)
    +--------------------------+       +-+-+-+-----------------------------+
    |          Reserved        |       |R|S|O|          Reserved           |
    +--------------------------+       +-+-+-+-----------------------------+
    |  Target Address (16)     |       |       Target Address (16)         |
    +--------------------------+       +-----------------------------------+
    | Options ...                      | Options ...

    Redirect (137): Reserved (4), Target Address (16), Destination Address (16), Options.

    Option (RFC 4861 4.6): Type (1), Length (1, in units of 8 octets, never 0), value.

The checks of RFC 4861 6.1/7.1/8.1 that need only the message are made while parsing and
raise :class:`~netstack.errors.ParseError`; those that need the IP header (hop limit, source
and destination rules) are :func:`validate_ip`'s, and those that need state (the current
first-hop router of a Redirect, whether this node is a router) are the caller's.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from enum import IntEnum
from typing import NamedTuple, TypeAlias

from ...errors import ParseError
from ..icmpv6.wire import ICMPV6_HEADER_LEN, IPV6_MIN_MTU, Icmp6Header, Icmp6Type, build_into

__all__ = [
    "INFINITE_LIFETIME",
    "Dnssl",
    "NdpMessage",
    "NdpOptionType",
    "NeighborAdvert",
    "NeighborSolicit",
    "PrefixInfo",
    "Rdnss",
    "Redirect",
    "RouterAdvert",
    "RouterSolicit",
    "build_neighbor_advert",
    "build_neighbor_solicit",
    "build_redirect",
    "build_router_advert",
    "build_router_solicit",
    "iter_options",
    "parse_neighbor_advert",
    "parse_neighbor_solicit",
    "parse_redirect",
    "parse_router_advert",
    "parse_router_solicit",
    "validate_ip",
]

Buffer: TypeAlias = bytes | bytearray | memoryview


class NdpOptionType(IntEnum):
    SOURCE_LL = 1
    TARGET_LL = 2
    PREFIX_INFO = 3
    REDIRECTED_HEADER = 4
    MTU = 5
    NONCE = 14
    ROUTE_INFO = 24
    RDNSS = 25
    DNSSL = 31


#: A lifetime of all ones means infinity (RFC 4861 4.6.2, RFC 8106 5.1).
INFINITE_LIFETIME = 0xFFFFFFFF

# Plain ints for the per-packet comparisons (an IntEnum member lookup costs more).
_SOURCE_LL = 1
_TARGET_LL = 2
_PREFIX_INFO = 3
_REDIRECTED_HEADER = 4
_MTU = 5
_NONCE = 14
_RDNSS = 25
_DNSSL = 31

_RA_TIMERS = struct.Struct("!II")  # Reachable Time, Retrans Timer (RFC 4861 4.2)
# Prefix Information after Type/Length (RFC 4861 4.6.2): prefix length, L|A|Reserved1, valid
# lifetime, preferred lifetime, Reserved2, prefix.
_PREFIX_VALUE = struct.Struct("!BBIII16s")
_PREFIX_OPTION = struct.Struct("!BBBBIII16s")
_MTU_VALUE = struct.Struct("!2xI")  # RFC 4861 4.6.4: Reserved, MTU
_MTU_OPTION = struct.Struct("!BBHI")
_DNS_VALUE = struct.Struct("!2xI")  # RFC 8106 5.1/5.2: Reserved, Lifetime
_DNS_OPTION = struct.Struct("!BBHI")

_RA_MANAGED = 0x80  # RFC 4861 4.2: M
_RA_OTHER = 0x40  # O
_NA_ROUTER = 0x80000000  # RFC 4861 4.4: R
_NA_SOLICITED = 0x40000000  # S
_NA_OVERRIDE = 0x20000000  # O

_UNSPECIFIED = bytes(16)
# ff02::1:ff00:0/104 (RFC 4291 2.7.1): the solicited-node multicast prefix.
_SOLICITED_NODE_PREFIX = bytes.fromhex("ff0200000000000000000001ff")
_ALL_ONES_128 = (1 << 128) - 1
_MAC_LEN = 6
_MAX_DOMAIN_LEN = 255  # RFC 1035 2.3.4, in wire form


class PrefixInfo(NamedTuple):
    """A Prefix Information option (RFC 4861 4.6.2); lifetimes in seconds,
    :data:`INFINITE_LIFETIME` for infinity. Bits of ``prefix`` beyond ``prefix_len`` are
    zero."""

    prefix: bytes
    prefix_len: int
    on_link: bool
    autonomous: bool
    valid_lifetime: int
    preferred_lifetime: int


class Rdnss(NamedTuple):
    """A Recursive DNS Server option (RFC 8106 5.1); lifetime in seconds."""

    lifetime: int
    servers: tuple[bytes, ...]


class Dnssl(NamedTuple):
    """A DNS Search List option (RFC 8106 5.2); lifetime in seconds, domains without the
    trailing dot."""

    lifetime: int
    domains: tuple[str, ...]


class RouterSolicit(NamedTuple):
    source_mac: bytes | None = None


class RouterAdvert(NamedTuple):
    """A Router Advertisement (RFC 4861 4.2). ``router_lifetime`` is in seconds,
    ``reachable_time`` and ``retrans_timer`` in milliseconds (0: unspecified); ``mtu`` is the
    MTU option's value; the options this module does not know are left out."""

    cur_hop_limit: int
    managed: bool
    other: bool
    router_lifetime: int
    reachable_time: int
    retrans_timer: int
    source_mac: bytes | None = None
    mtu: int | None = None
    prefixes: tuple[PrefixInfo, ...] = ()
    rdnss: tuple[Rdnss, ...] = ()
    dnssl: tuple[Dnssl, ...] = ()


class NeighborSolicit(NamedTuple):
    """A Neighbor Solicitation (RFC 4861 4.3); ``nonce`` is the value of a Nonce option
    (RFC 3971 5.3.2, used for duplicate address detection by RFC 7527)."""

    target: bytes
    source_mac: bytes | None = None
    nonce: bytes | None = None


class NeighborAdvert(NamedTuple):
    """A Neighbor Advertisement (RFC 4861 4.4)."""

    router: bool
    solicited: bool
    override: bool
    target: bytes
    target_mac: bytes | None = None


class Redirect(NamedTuple):
    """A Redirect (RFC 4861 4.5); the Redirected Header option is not kept."""

    target: bytes
    destination: bytes
    target_mac: bytes | None = None


NdpMessage: TypeAlias = RouterSolicit | RouterAdvert | NeighborSolicit | NeighborAdvert | Redirect

_MESSAGE_TYPES: dict[type, int] = {
    RouterSolicit: Icmp6Type.ROUTER_SOLICIT,
    RouterAdvert: Icmp6Type.ROUTER_ADVERT,
    NeighborSolicit: Icmp6Type.NEIGHBOR_SOLICIT,
    NeighborAdvert: Icmp6Type.NEIGHBOR_ADVERT,
    Redirect: Icmp6Type.REDIRECT,
}


# -- options ---------------------------------------------------------------------------------


def iter_options(data: Buffer) -> Iterator[tuple[int, memoryview]]:
    """The options in ``data``, each as (type, value), the value without its Type and Length
    bytes. Unknown types are yielded too; callers skip them (RFC 4861 4.6, 9: receivers MUST
    silently ignore options they do not recognize).

    Raises:
        ParseError: ``bad_option_length``: an option of length 0, or one that runs past the
            end (RFC 4861 4.6: nodes MUST silently discard a packet with a length-0 option).
    """
    view = memoryview(data)
    end = len(view)
    pos = 0
    while pos < end:
        if end - pos < 2:
            raise ParseError("bad_option_length", "one byte left after the last option")
        type_ = view[pos]
        size = view[pos + 1] << 3
        if not size:
            raise ParseError("bad_option_length", f"option {type_} has length 0")
        if pos + size > end:
            raise ParseError("bad_option_length", f"option {type_} runs past the message")
        yield type_, view[pos + 2 : pos + size]
        pos += size


def _lladdr(value: memoryview) -> bytes:
    # RFC 2464 8: on Ethernet the link-layer address options have length 1, the MAC in 6 bytes.
    if len(value) != _MAC_LEN:
        raise ParseError("bad_option_length", f"link-layer option of {len(value) + 2} bytes")
    return bytes(value)


def _link_options(view: memoryview, pos: int, ll_type: int) -> tuple[bytes | None, bytes | None]:
    """The first link-layer address option of ``ll_type`` and the first Nonce option from
    ``pos`` on, every option's length checked as :func:`iter_options` does. The solicitations
    and advertisements are per-packet work, so this walks the options without a generator."""
    end = len(view)
    mac = nonce = None
    while pos < end:
        if end - pos < 2:
            raise ParseError("bad_option_length", "one byte left after the last option")
        type_ = view[pos]
        size = view[pos + 1] << 3
        if not size:
            raise ParseError("bad_option_length", f"option {type_} has length 0")
        following = pos + size
        if following > end:
            raise ParseError("bad_option_length", f"option {type_} runs past the message")
        if type_ == ll_type:
            if size != 8:  # RFC 2464 8: length 1 on Ethernet
                raise ParseError("bad_option_length", f"link-layer option of {size} bytes")
            if mac is None:
                mac = bytes(view[pos + 2 : following])
        elif type_ == _NONCE and nonce is None:
            nonce = bytes(view[pos + 2 : following])
        pos = following
    return mac, nonce


def _prefix_info(value: memoryview) -> PrefixInfo:
    if len(value) != _PREFIX_VALUE.size:  # RFC 4861 4.6.2: Length 4
        raise ParseError("bad_option_length", f"prefix option of {len(value) + 2} bytes")
    prefix_len, flags, valid, preferred, _, prefix = _PREFIX_VALUE.unpack_from(value)
    if prefix_len > 128:  # RFC 4861 4.6.2: "from 0 to 128"
        raise ParseError("bad_prefix_length", f"prefix length {prefix_len}")
    on_link = bool(flags & 0x80)  # L
    autonomous = bool(flags & 0x40)  # A
    return PrefixInfo(_mask(prefix, prefix_len), prefix_len, on_link, autonomous, valid, preferred)


def _mask(prefix: bytes, prefix_len: int) -> bytes:
    # RFC 4861 4.6.2: bits after the prefix length are reserved, zero from the sender and
    # ignored by the receiver.
    if prefix_len >= 128:
        return prefix
    keep = _ALL_ONES_128 ^ ((1 << (128 - prefix_len)) - 1)
    return (int.from_bytes(prefix, "big") & keep).to_bytes(16, "big")


def _mtu(value: memoryview) -> int:
    if len(value) != _MTU_VALUE.size:  # RFC 4861 4.6.4: Length 1
        raise ParseError("bad_option_length", f"MTU option of {len(value) + 2} bytes")
    mtu: int = _MTU_VALUE.unpack_from(value)[0]
    return mtu


def _rdnss(value: memoryview) -> Rdnss:
    # RFC 8106 5.1: Length is 1 + 2 * (number of addresses), at least 3.
    units = (len(value) + 2) >> 3
    if units < 3 or not units & 1:
        raise ParseError("bad_option_length", f"RDNSS option of length {units}")
    lifetime: int = _DNS_VALUE.unpack_from(value)[0]
    servers = tuple(bytes(value[i : i + 16]) for i in range(6, len(value), 16))
    return Rdnss(lifetime, servers)


def _dnssl(value: memoryview) -> Dnssl:
    # RFC 8106 5.2: Length at least 2 when the option carries a domain name.
    if len(value) < 14:
        raise ParseError("bad_option_length", f"DNSSL option of {len(value) + 2} bytes")
    lifetime: int = _DNS_VALUE.unpack_from(value)[0]
    return Dnssl(lifetime, _decode_domains(value[6:]))


def _decode_domains(data: memoryview) -> tuple[str, ...]:
    """Domain names as RFC 1035 3.1 encodes them, uncompressed (RFC 8106 5.2), then zero
    padding to the end of the option."""
    domains: list[str] = []
    end = len(data)
    pos = 0
    while pos < end and data[pos]:  # a zero where a name would start begins the padding
        labels: list[str] = []
        size = 1  # the terminating zero
        while True:
            if pos >= end:
                raise ParseError("bad_domain_name", "name runs past the option")
            n = data[pos]
            pos += 1
            if not n:
                break
            # RFC 8106 5.2: names MUST NOT be compressed; 64..191 are not label lengths either.
            if n > 63:
                raise ParseError("bad_domain_name", f"label length byte {n:#x}")
            if pos + n > end:
                raise ParseError("bad_domain_name", "label runs past the option")
            raw = bytes(data[pos : pos + n])
            pos += n
            size += n + 1
            if not raw.isascii() or b"." in raw:
                raise ParseError("bad_domain_name", "label is not a plain ASCII label")
            labels.append(raw.decode("ascii"))
        if size > _MAX_DOMAIN_LEN:
            raise ParseError("bad_domain_name", f"name of {size} bytes")
        domains.append(".".join(labels))
    return tuple(domains)


# -- messages --------------------------------------------------------------------------------


def _check_code(header: Icmp6Header) -> None:
    # RFC 4861 6.1.1, 6.1.2, 7.1.1, 7.1.2, 8.1: "ICMP Code is 0".
    if header.code:
        raise ParseError("bad_code", f"code {header.code}")


def _check_length(body: Buffer, need: int) -> None:
    # The same sections give the least ICMP length: need bytes after the 8-byte header.
    if len(body) < need:
        raise ParseError("truncated", f"{len(body) + ICMPV6_HEADER_LEN} bytes of ICMP message")


def parse_router_solicit(header: Icmp6Header, body: Buffer) -> RouterSolicit:
    """A Router Solicitation (type 133), checked as RFC 4861 6.1.1 asks of the message itself
    (code 0, length of 8 or more, option lengths).

    Raises:
        ParseError: ``bad_code`` or ``bad_option_length``.
    """
    _check_code(header)
    return RouterSolicit(_link_options(memoryview(body), 0, _SOURCE_LL)[0])


def parse_router_advert(header: Icmp6Header, body: Buffer) -> RouterAdvert:
    """A Router Advertisement (type 134), checked as RFC 4861 6.1.2 asks of the message itself
    (code 0, length of 16 or more, option lengths) and with each known option's contents
    checked (RFC 4861 4.6, RFC 8106 5).

    Of the source link-layer address and MTU options the first counts; every Prefix
    Information, RDNSS and DNSSL option is kept, in order.

    Raises:
        ParseError: ``bad_code``, ``truncated``, ``bad_option_length``, ``bad_prefix_length``
            or ``bad_domain_name``.
    """
    _check_code(header)
    _check_length(body, 8)
    rest = header.rest
    flags = (rest >> 16) & 0xFF
    reachable_time, retrans_timer = _RA_TIMERS.unpack_from(body, 0)
    source_mac: bytes | None = None
    mtu: int | None = None
    prefixes: list[PrefixInfo] = []
    rdnss: list[Rdnss] = []
    dnssl: list[Dnssl] = []
    for type_, value in iter_options(memoryview(body)[8:]):
        if type_ == _PREFIX_INFO:
            prefixes.append(_prefix_info(value))
        elif type_ == _SOURCE_LL:
            mac = _lladdr(value)
            if source_mac is None:
                source_mac = mac
        elif type_ == _MTU:
            value_mtu = _mtu(value)
            if mtu is None:
                mtu = value_mtu
        elif type_ == _RDNSS:
            rdnss.append(_rdnss(value))
        elif type_ == _DNSSL:
            dnssl.append(_dnssl(value))
    return RouterAdvert(
        rest >> 24,
        bool(flags & _RA_MANAGED),
        bool(flags & _RA_OTHER),
        rest & 0xFFFF,
        reachable_time,
        retrans_timer,
        source_mac,
        mtu,
        tuple(prefixes),
        tuple(rdnss),
        tuple(dnssl),
    )


def parse_neighbor_solicit(header: Icmp6Header, body: Buffer) -> NeighborSolicit:
    """A Neighbor Solicitation (type 135), checked as RFC 4861 7.1.1 asks of the message
    itself (code 0, length of 24 or more, target not multicast, option lengths).

    Raises:
        ParseError: ``bad_code``, ``truncated``, ``multicast_target`` or
            ``bad_option_length``.
    """
    _check_code(header)
    _check_length(body, 16)
    view = memoryview(body)
    target = bytes(view[:16])
    if target[0] == 0xFF:
        raise ParseError("multicast_target", "neighbor solicitation for a multicast address")
    source_mac, nonce = _link_options(view, 16, _SOURCE_LL)
    return NeighborSolicit(target, source_mac, nonce)


def parse_neighbor_advert(header: Icmp6Header, body: Buffer) -> NeighborAdvert:
    """A Neighbor Advertisement (type 136), checked as RFC 4861 7.1.2 asks of the message
    itself (code 0, length of 24 or more, target not multicast, option lengths).

    Raises:
        ParseError: ``bad_code``, ``truncated``, ``multicast_target`` or
            ``bad_option_length``.
    """
    _check_code(header)
    _check_length(body, 16)
    view = memoryview(body)
    target = bytes(view[:16])
    if target[0] == 0xFF:
        raise ParseError("multicast_target", "neighbor advertisement for a multicast address")
    target_mac = _link_options(view, 16, _TARGET_LL)[0]
    rest = header.rest
    return NeighborAdvert(
        bool(rest & _NA_ROUTER),
        bool(rest & _NA_SOLICITED),
        bool(rest & _NA_OVERRIDE),
        target,
        target_mac,
    )


def parse_redirect(header: Icmp6Header, body: Buffer) -> Redirect:
    """A Redirect (type 137), checked as RFC 4861 8.1 asks of the message itself (code 0,
    length of 40 or more, destination not multicast, target link-local or equal to the
    destination, option lengths).

    Raises:
        ParseError: ``bad_code``, ``truncated``, ``multicast_destination``, ``bad_target`` or
            ``bad_option_length``.
    """
    _check_code(header)
    _check_length(body, 32)
    view = memoryview(body)
    target = bytes(view[:16])
    destination = bytes(view[16:32])
    if destination[0] == 0xFF:
        raise ParseError("multicast_destination", "redirect for a multicast destination")
    # RFC 4861 8.1: the target is a router's link-local address, or the destination itself.
    if target != destination and not _is_link_local(target):
        raise ParseError("bad_target", "redirect target neither link-local nor the destination")
    return Redirect(target, destination, _link_options(view, 32, _TARGET_LL)[0])


def _is_link_local(address: bytes) -> bool:
    return address[0] == 0xFE and address[1] & 0xC0 == 0x80  # fe80::/10 (RFC 4291 2.5.6)


def validate_ip(
    type_: int, hop_limit: int, src: bytes, dst: bytes, message: NdpMessage
) -> str | None:
    """The checks of RFC 4861 6.1, 7.1 and 8.1 that need the IP header, for a message that
    parsed: the reason to drop it, or None when it is valid.

    Checked here:

    - every type: the Hop Limit is 255 (``bad_hop_limit``), so no router forwarded it;
    - Router Solicitation (6.1.1) and Neighbor Solicitation (7.1.1): from the unspecified
      address, no source link-layer address option (``slla_from_unspecified``);
    - Neighbor Solicitation (7.1.1): from the unspecified address, the destination is a
      solicited-node multicast address (``dad_not_solicited_node``);
    - Neighbor Advertisement (7.1.2): to a multicast destination, the Solicited flag is clear
      (``solicited_to_multicast``);
    - Router Advertisement (6.1.2) and Redirect (8.1): the source is link-local
      (``source_not_link_local``).

    Left to the caller: that hosts discard Router Solicitations (6.1.1), that a Redirect comes
    from the current first-hop router for its destination (8.1), and the checksum.

    Args:
        type_: the ICMPv6 type the message was parsed as.
        hop_limit, src, dst: from the IPv6 header (addresses as 16 bytes).
        message: what the ``parse_*`` function of ``type_`` returned.

    Raises:
        ValueError: ``message`` is not what type ``type_`` parses to.
    """
    if _MESSAGE_TYPES.get(type(message)) != type_:
        raise ValueError(f"{type(message).__name__} is not what ICMPv6 type {type_} parses to")
    # RFC 4861 6.1.1, 6.1.2, 7.1.1, 7.1.2, 8.1: a hop limit of 255 means that the packet
    # could not possibly have been forwarded by a router.
    if hop_limit != 255:
        return "bad_hop_limit"
    if isinstance(message, NeighborSolicit):
        if src == _UNSPECIFIED:
            # RFC 4861 7.1.1: duplicate address detection goes to the target's solicited-node group
            # and carries no link-layer address to cache.
            if dst[:13] != _SOLICITED_NODE_PREFIX:
                return "dad_not_solicited_node"
            if message.source_mac is not None:
                return "slla_from_unspecified"
    elif isinstance(message, NeighborAdvert):
        # RFC 4861 7.1.2 (and 4.4: S "MUST NOT be set in multicast advertisements").
        if message.solicited and dst[0] == 0xFF:
            return "solicited_to_multicast"
    elif isinstance(message, RouterSolicit):
        if src == _UNSPECIFIED and message.source_mac is not None:  # RFC 4861 6.1.1
            return "slla_from_unspecified"
    elif not _is_link_local(src):
        # RFC 4861 6.1.2, 8.1: routers send from their link-local address so that hosts can
        # identify them uniquely.
        return "source_not_link_local"
    return None


# -- builders --------------------------------------------------------------------------------


def _address(name: str, value: bytes) -> bytes:
    if len(value) != 16:
        raise ValueError(f"{name} must be 16 bytes, not {len(value)}")
    return value


def _lladdr_option(type_: int, mac: bytes) -> bytes:
    if len(mac) != _MAC_LEN:
        raise ValueError(f"a MAC address is 6 bytes, not {len(mac)}")
    return bytes((type_, 1)) + mac


def _finish(buf: bytearray, type_: int, rest: int, src: bytes, dst: bytes) -> bytes:
    build_into(buf, 0, type_, 0, rest, src, dst)
    return bytes(buf)


def build_neighbor_solicit(
    src: bytes,
    dst: bytes,
    target: bytes,
    source_mac: bytes | None,
    nonce: bytes | None = None,
) -> bytes:
    """A Neighbor Solicitation (RFC 4861 4.3) for ``target``, with a source link-layer address
    option when ``source_mac`` is given and a Nonce option (RFC 3971 5.3.2) when ``nonce`` is.

    The IP-level rules are the caller's: no ``source_mac`` from the unspecified address, and
    ``dst`` the target's solicited-node address for address resolution and duplicate address
    detection (RFC 4861 7.2.2).

    Raises:
        ValueError: an address is not 16 bytes, the MAC not 6, or the nonce not 6 bytes or
            more with a length that makes the option a multiple of 8 bytes.
    """
    buf = bytearray(ICMPV6_HEADER_LEN)
    buf += _address("target", target)
    if source_mac is not None:
        buf += _lladdr_option(_SOURCE_LL, source_mac)
    if nonce is not None:
        if len(nonce) < 6 or (len(nonce) + 2) & 7 or len(nonce) + 2 > 255 * 8:
            raise ValueError(f"a nonce of {len(nonce)} bytes does not fill whole 8-byte units")
        buf += bytes((_NONCE, (len(nonce) + 2) >> 3))
        buf += nonce
    return _finish(buf, Icmp6Type.NEIGHBOR_SOLICIT, 0, src, dst)


def build_neighbor_advert(
    src: bytes,
    dst: bytes,
    target: bytes,
    target_mac: bytes | None,
    *,
    router: bool,
    solicited: bool,
    override: bool,
) -> bytes:
    """A Neighbor Advertisement (RFC 4861 4.4) for ``target``, with a target link-layer
    address option when ``target_mac`` is given.

    Raises:
        ValueError: ``target`` is not 16 bytes or the MAC not 6.
    """
    buf = bytearray(ICMPV6_HEADER_LEN)
    buf += _address("target", target)
    if target_mac is not None:
        buf += _lladdr_option(_TARGET_LL, target_mac)
    rest = (
        (_NA_ROUTER if router else 0)
        | (_NA_SOLICITED if solicited else 0)
        | (_NA_OVERRIDE if override else 0)
    )
    return _finish(buf, Icmp6Type.NEIGHBOR_ADVERT, rest, src, dst)


def build_router_solicit(src: bytes, dst: bytes, source_mac: bytes | None) -> bytes:
    """A Router Solicitation (RFC 4861 4.1), with a source link-layer address option when
    ``source_mac`` is given (never from the unspecified address).

    Raises:
        ValueError: the MAC is not 6 bytes.
    """
    buf = bytearray(ICMPV6_HEADER_LEN)
    if source_mac is not None:
        buf += _lladdr_option(_SOURCE_LL, source_mac)
    return _finish(buf, Icmp6Type.ROUTER_SOLICIT, 0, src, dst)


def build_router_advert(
    src: bytes,
    dst: bytes,
    *,
    cur_hop_limit: int = 64,
    managed: bool = False,
    other: bool = False,
    router_lifetime: int = 1800,
    reachable_time: int = 0,
    retrans_timer: int = 0,
    source_mac: bytes | None = None,
    mtu: int | None = None,
    prefixes: Iterable[PrefixInfo] = (),
    rdnss: Iterable[Rdnss] = (),
    dnssl: Iterable[Dnssl] = (),
) -> bytes:
    """A Router Advertisement (RFC 4861 4.2) with its options in this order: source
    link-layer address, MTU, prefixes (bits beyond each prefix length zeroed), RDNSS and DNSSL
    (RFC 8106 5.1, 5.2; domain names uncompressed, zero-padded to 8 bytes).

    The caller keeps the message within the link MTU (RFC 4861 9): nothing is split here.

    Raises:
        ValueError: a field out of its range, an address not 16 bytes, an RDNSS option
            without servers or with more than 127, a DNSSL option without domains, a domain
            name that cannot be encoded, or an option longer than 255 units of 8 bytes.
    """
    if not 0 <= cur_hop_limit <= 0xFF:
        raise ValueError(f"cur_hop_limit {cur_hop_limit} is not 0..255")
    if not 0 <= router_lifetime <= 0xFFFF:
        raise ValueError(f"router_lifetime {router_lifetime} is not 0..65535")
    flags = (_RA_MANAGED if managed else 0) | (_RA_OTHER if other else 0)
    buf = bytearray(ICMPV6_HEADER_LEN)
    buf += _RA_TIMERS.pack(reachable_time, retrans_timer)
    if source_mac is not None:
        buf += _lladdr_option(_SOURCE_LL, source_mac)
    if mtu is not None:
        buf += _MTU_OPTION.pack(_MTU, 1, 0, mtu)
    for p in prefixes:
        if not 0 <= p.prefix_len <= 128:
            raise ValueError(f"prefix length {p.prefix_len} is not 0..128")
        pflags = (0x80 if p.on_link else 0) | (0x40 if p.autonomous else 0)
        prefix = _mask(_address("prefix", p.prefix), p.prefix_len)
        lifetimes = (p.valid_lifetime, p.preferred_lifetime)
        buf += _PREFIX_OPTION.pack(_PREFIX_INFO, 4, p.prefix_len, pflags, *lifetimes, 0, prefix)
    for r in rdnss:
        if not 1 <= len(r.servers) <= 127:
            raise ValueError(f"an RDNSS option holds 1..127 servers, not {len(r.servers)}")
        buf += _DNS_OPTION.pack(_RDNSS, 1 + 2 * len(r.servers), 0, r.lifetime)
        for server in r.servers:
            buf += _address("RDNSS server", server)
    for d in dnssl:
        if not d.domains:
            raise ValueError("a DNSSL option holds at least one domain")
        names = b"".join(_encode_domain(name) for name in d.domains)
        units = (8 + len(names) + 7) >> 3
        if units > 0xFF:
            raise ValueError(f"DNSSL option of {units} units of 8 bytes")
        buf += _DNS_OPTION.pack(_DNSSL, units, 0, d.lifetime)
        buf += names
        buf += bytes((units << 3) - 8 - len(names))  # RFC 8106 5.2: padded with zeros
    rest = cur_hop_limit << 24 | flags << 16 | router_lifetime
    return _finish(buf, Icmp6Type.ROUTER_ADVERT, rest, src, dst)


def _encode_domain(name: str) -> bytes:
    """``name`` as RFC 1035 3.1 labels ending in a zero byte (RFC 8106 5.2)."""
    text = name[:-1] if name.endswith(".") else name
    if not text:
        raise ValueError("the root domain cannot be in a search list")
    out = bytearray()
    for label in text.split("."):
        raw = label.encode("ascii")  # UnicodeEncodeError is a ValueError
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"label {label!r} in {name!r} is not 1..63 bytes")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > _MAX_DOMAIN_LEN:
        raise ValueError(f"domain name {name!r} is longer than 255 bytes")
    return bytes(out)


def build_redirect(
    src: bytes,
    dst: bytes,
    target: bytes,
    destination: bytes,
    target_mac: bytes | None = None,
    redirected: Buffer = b"",
) -> bytes:
    """A Redirect (RFC 4861 4.5), with a target link-layer address option when ``target_mac``
    is given and a Redirected Header option (4.6.3) holding as much of ``redirected`` (the
    packet that prompted it, from its IPv6 header on) as keeps the whole IPv6 packet within
    1280 bytes (RFC 4861 8.2, 9), zero-padded to 8 bytes.

    Raises:
        ValueError: an address is not 16 bytes or the MAC not 6.
    """
    buf = bytearray(ICMPV6_HEADER_LEN)
    buf += _address("target", target)
    buf += _address("destination", destination)
    if target_mac is not None:
        buf += _lladdr_option(_TARGET_LL, target_mac)
    if redirected:
        room = (IPV6_MIN_MTU - 40 - len(buf) - 8) & ~7
        data = bytes(redirected[:room])
        units = 1 + ((len(data) + 7) >> 3)
        buf += bytes((_REDIRECTED_HEADER, units, 0, 0, 0, 0, 0, 0))
        buf += data
        buf += bytes(((units - 1) << 3) - len(data))
    return _finish(buf, Icmp6Type.REDIRECT, 0, src, dst)
