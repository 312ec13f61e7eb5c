"""IPv6 address arithmetic: well-known groups, scopes, interface identifiers, and default
address selection.

- RFC 4291 2.5.1 and appendix A: modified EUI-64 interface identifiers (the universal/local bit
  inverted); 2.7: multicast scopes; 2.7.1: solicited-node groups (ff02::1:ff00:0/104 plus the
  low 24 bits of the address).
- RFC 2464 7: the Ethernet address of an IPv6 multicast group (33:33 and its low 32 bits).
- RFC 7217 5: stable, semantically opaque interface identifiers, F() being SHA-256 of its
  inputs; RFC 5453 and the IANA registry of reserved interface identifiers, which such an
  identifier must avoid.
- RFC 6724: 2.1 the default policy table (precedence and label), 3.1/3.2 scopes (IPv4-mapped
  addresses included), 5 source address selection, 6 destination address ordering.

Addresses are 16 packed bytes throughout, as everywhere else in netstack; IPv4 destinations
are passed as IPv4-mapped addresses (``::ffff:a.b.c.d``, RFC 4291 2.5.5.2).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

__all__ = [
    "ALL_MLDV2_ROUTERS",
    "ALL_NODES",
    "ALL_ROUTERS",
    "Candidate",
    "LINK_LOCAL_PREFIX",
    "LOOPBACK",
    "UNSPECIFIED",
    "combine",
    "common_prefix_len",
    "eui64_iid",
    "is_link_local",
    "is_loopback",
    "is_multicast",
    "is_reserved_iid",
    "is_site_local",
    "is_unspecified",
    "is_v4_mapped",
    "label",
    "multicast_mac",
    "multicast_scope",
    "precedence",
    "scope",
    "select_source",
    "solicited_node",
    "sort_destinations",
    "stable_iid",
]

UNSPECIFIED = bytes(16)
LOOPBACK = bytes(15) + b"\x01"
#: RFC 4291 2.7.1: the link-local all-nodes and all-routers groups.
ALL_NODES = b"\xff\x02" + bytes(13) + b"\x01"
ALL_ROUTERS = b"\xff\x02" + bytes(13) + b"\x02"
#: RFC 3810 5.2.14: where MLDv2 reports go.
ALL_MLDV2_ROUTERS = b"\xff\x02" + bytes(13) + b"\x16"
#: RFC 4291 2.5.6: fe80::/64 (the /10 is reserved for link-local, only the /64 is used).
LINK_LOCAL_PREFIX = b"\xfe\x80" + bytes(14)

_SOLICITED_PREFIX = b"\xff\x02" + bytes(9) + b"\x01\xff"
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"

# RFC 6724 3.1 / RFC 4291 2.7: scope values.
SCOPE_INTERFACE_LOCAL = 0x1
SCOPE_LINK_LOCAL = 0x2
SCOPE_ADMIN_LOCAL = 0x4
SCOPE_SITE_LOCAL = 0x5
SCOPE_ORGANIZATION_LOCAL = 0x8
SCOPE_GLOBAL = 0xE


def _check(a: bytes, what: str = "address") -> None:
    if len(a) != 16:
        raise ValueError(f"an IPv6 {what} is 16 bytes, got {len(a)}")


# -- classification --------------------------------------------------------------------------


def is_multicast(a: bytes) -> bool:
    """ff00::/8 (RFC 4291 2.7)."""
    return a[0] == 0xFF


def is_link_local(a: bytes) -> bool:
    """Link-local unicast, fe80::/10 (RFC 4291 2.5.6)."""
    return a[0] == 0xFE and (a[1] & 0xC0) == 0x80


def is_site_local(a: bytes) -> bool:
    """The deprecated site-local unicast prefix fec0::/10 (RFC 3879)."""
    return a[0] == 0xFE and (a[1] & 0xC0) == 0xC0


def is_loopback(a: bytes) -> bool:
    return a == LOOPBACK


def is_unspecified(a: bytes) -> bool:
    return a == UNSPECIFIED


def is_v4_mapped(a: bytes) -> bool:
    """::ffff:0:0/96, an IPv4 address in IPv6 form (RFC 4291 2.5.5.2)."""
    return a[:12] == _V4_MAPPED_PREFIX


def multicast_scope(a: bytes) -> int:
    """The scope field of a multicast address (RFC 4291 2.7: the low 4 bits of byte 1).

    Raises:
        ValueError: ``a`` is not a multicast address.
    """
    if not is_multicast(a):
        raise ValueError("not a multicast address")
    return a[1] & 0x0F


def scope(a: bytes) -> int:
    """The scope of any address as RFC 6724 3.1 and 3.2 define it.

    Multicast addresses have the scope of their scope field; link-local unicast and the loopback
    address are link-local (0x2); the deprecated site-local prefix is site-local (0x5); everything
    else (unique local addresses included, RFC 4193) is global (0xE). An IPv4-mapped address takes
    its IPv4 scope (RFC 6724 3.2): 169.254/16 and 127/8 are link-local, the rest global (private
    addresses included).
    """
    if a[0] == 0xFF:
        return a[1] & 0x0F
    if is_link_local(a) or a == LOOPBACK:
        return SCOPE_LINK_LOCAL
    if is_site_local(a):
        return SCOPE_SITE_LOCAL
    if a[:12] == _V4_MAPPED_PREFIX:
        if a[12] == 127 or (a[12] == 169 and a[13] == 254):
            return SCOPE_LINK_LOCAL
        return SCOPE_GLOBAL
    return SCOPE_GLOBAL


# -- groups ----------------------------------------------------------------------------------


def solicited_node(addr: bytes) -> bytes:
    """The solicited-node group of ``addr``: ff02::1:ff00:0/104 and its low 24 bits
    (RFC 4291 2.7.1).

    Raises:
        ValueError: ``addr`` is not 16 bytes.
    """
    _check(addr)
    return _SOLICITED_PREFIX + addr[13:]


def multicast_mac(group: bytes) -> bytes:
    """The Ethernet destination of an IPv6 multicast group: 33:33 followed by the group's low
    32 bits (RFC 2464 7).

    Raises:
        ValueError: ``group`` is not 16 bytes.
    """
    _check(group, "group")
    return b"\x33\x33" + group[12:]


# -- interface identifiers -------------------------------------------------------------------


def eui64_iid(mac: bytes) -> bytes:
    """The modified EUI-64 interface identifier of a link-layer address (RFC 4291 2.5.1 and
    appendix A, RFC 2464 4): a 48-bit MAC has ff:fe inserted after its OUI; in either form the
    universal/local bit (0x02 of the first byte) is inverted.

    Raises:
        ValueError: ``mac`` is neither 6 (EUI-48) nor 8 (EUI-64) bytes.
    """
    if len(mac) == 6:
        eui = mac[:3] + b"\xff\xfe" + mac[3:]
    elif len(mac) == 8:
        eui = bytes(mac)
    else:
        raise ValueError(f"a link-layer address for EUI-64 is 6 or 8 bytes, got {len(mac)}")
    return bytes([eui[0] ^ 0x02]) + eui[1:]


def is_reserved_iid(iid: bytes) -> bool:
    """True for the interface identifiers no address may use (RFC 5453 and the IANA "Reserved
    IPv6 Interface Identifiers" registry):

    - 0000:0000:0000:0000, the subnet-router anycast identifier (RFC 4291 2.6.1);
    - 0200:5EFF:FE00:0000 to 0200:5EFF:FEFF:FFFF, the IANA Ethernet block (RFC 4291), which
      holds the proxy mobile IPv6 identifier 0200:5EFF:FE00:5213 (RFC 6543);
    - FDFF:FFFF:FFFF:FF80 to FDFF:FFFF:FFFF:FFFF, the reserved subnet anycast identifiers
      (RFC 2526).

    Raises:
        ValueError: ``iid`` is not 8 bytes.
    """
    if len(iid) != 8:
        raise ValueError(f"an interface identifier is 8 bytes, got {len(iid)}")
    if iid == bytes(8):
        return True
    if iid[:5] == b"\x02\x00\x5e\xff\xfe":
        return True
    return iid[:7] == b"\xfd\xff\xff\xff\xff\xff\xff" and iid[7] >= 0x80


def _mask(prefix: bytes, prefix_len: int) -> bytes:
    """``prefix`` padded to 16 bytes with every bit past ``prefix_len`` cleared."""
    if not 0 <= prefix_len <= 128:
        raise ValueError(f"a prefix length is 0..128, got {prefix_len}")
    if len(prefix) > 16:
        raise ValueError(f"a prefix is at most 16 bytes, got {len(prefix)}")
    value = int.from_bytes(prefix.ljust(16, b"\0"), "big")
    keep = ((1 << prefix_len) - 1) << (128 - prefix_len)
    return (value & keep).to_bytes(16, "big")


def stable_iid(
    prefix: bytes,
    prefix_len: int,
    net_iface: bytes,
    network_id: bytes,
    dad_counter: int,
    secret: bytes,
) -> bytes:
    """A stable, semantically opaque interface identifier (RFC 7217 5).

    RID = F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), with F() SHA-256 of the
    concatenated inputs (RFC 7217 5 names SHA-256 as one choice). Prefix is the prefix masked to
    its length, followed by that length; the variable-length Net_Iface and Network_ID each carry
    a two-byte length first, so that no two different inputs concatenate to the same bytes (two
    interfaces must never derive the same identifier). The identifier is the 64 least
    significant bits of the RID (RFC 7217 5, step 2), all of them opaque (the U/L bit is not
    special, RFC 7136).

    The result may be a reserved identifier (:func:`is_reserved_iid`); RFC 7217 5 says to treat
    that like a DAD conflict, so the caller retries with ``dad_counter + 1``.

    Args:
        prefix: the SLAAC prefix (up to 16 bytes; only its first ``prefix_len`` bits count).
        net_iface: a stable name of the interface (RFC 7217 5 and appendix A).
        network_id: data naming the attached network (an SSID, say), or b"" (it is optional).
        dad_counter: 0, plus one per DAD conflict already met with this prefix (RFC 7217 6).
        secret: the host's secret key (RFC 7217 5: at least 128 bits, random at installation).

    Raises:
        ValueError: a bad prefix length, an over-long field or a negative counter.
    """
    if dad_counter < 0 or dad_counter > 0xFFFFFFFF:
        raise ValueError(f"dad_counter must be in 0..2**32-1, got {dad_counter}")
    if len(net_iface) > 0xFFFF or len(network_id) > 0xFFFF:
        raise ValueError("net_iface and network_id are at most 65535 bytes")
    h = hashlib.sha256()
    h.update(_mask(prefix, prefix_len))
    h.update(bytes([prefix_len]))
    h.update(len(net_iface).to_bytes(2, "big"))
    h.update(net_iface)
    h.update(len(network_id).to_bytes(2, "big"))
    h.update(network_id)
    h.update(dad_counter.to_bytes(4, "big"))
    h.update(secret)
    return h.digest()[-8:]


def combine(prefix: bytes, iid: bytes) -> bytes:
    """The address made of the first 64 bits of ``prefix`` and a 64-bit interface identifier
    (RFC 4862 5.5.3 d, RFC 4291 2.5.1: a /64 prefix and a 64-bit identifier).

    Raises:
        ValueError: ``prefix`` shorter than 8 bytes or ``iid`` not 8 bytes.
    """
    if len(prefix) < 8:
        raise ValueError(f"a /64 prefix needs 8 bytes, got {len(prefix)}")
    if len(iid) != 8:
        raise ValueError(f"an interface identifier is 8 bytes, got {len(iid)}")
    return bytes(prefix[:8]) + bytes(iid)


# -- the policy table (RFC 6724 2.1) ---------------------------------------------------------


class _Policy(NamedTuple):
    value: int
    mask: int
    prefix_len: int
    precedence: int
    label: int


def _policy(text: str, prefix_len: int, prec: int, lab: int) -> _Policy:
    value = int(ipaddress.IPv6Address(text))
    mask = ((1 << prefix_len) - 1) << (128 - prefix_len)
    return _Policy(value, mask, prefix_len, prec, lab)


#: RFC 6724 2.1: the default policy table, longest prefix first so the first match is the
#: longest matching one.
DEFAULT_POLICY: tuple[_Policy, ...] = tuple(
    sorted(
        (
            _policy("::1", 128, 50, 0),
            _policy("::", 0, 40, 1),
            _policy("::ffff:0:0", 96, 35, 4),
            _policy("2002::", 16, 30, 2),
            _policy("2001::", 32, 5, 5),
            _policy("fc00::", 7, 3, 13),
            _policy("::", 96, 1, 3),
            _policy("fec0::", 10, 1, 11),
            _policy("3ffe::", 16, 1, 12),
        ),
        key=lambda p: -p.prefix_len,
    )
)


def _lookup(a: bytes) -> _Policy:
    v = int.from_bytes(a, "big")
    for p in DEFAULT_POLICY:
        if v & p.mask == p.value:
            return p
    raise AssertionError("::/0 matches every address")  # pragma: no cover


def precedence(a: bytes) -> int:
    """Precedence(a) from the default policy table (RFC 6724 2.1)."""
    return _lookup(a).precedence


def label(a: bytes) -> int:
    """Label(a) from the default policy table (RFC 6724 2.1)."""
    return _lookup(a).label


def common_prefix_len(a: bytes, b: bytes, limit: int = 128) -> int:
    """CommonPrefixLen (RFC 6724 2.2): the leading bits ``a`` and ``b`` share, at most
    ``limit``."""
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    n = 128 - x.bit_length()
    return n if n < limit else limit


# -- source address selection (RFC 6724 5) ---------------------------------------------------


class Candidate(NamedTuple):
    """A source address the host may use: assigned (not tentative) to the outgoing interface."""

    address: bytes
    prefix_len: int
    #: False when the address is deprecated (RFC 4862 5.5.4).
    preferred: bool


def _prefer_source(
    a: Candidate, b: Candidate, dst: bytes, d_scope: int, d_label: int,
    outgoing: Collection[bytes] | None = None,
) -> bool:  # fmt: skip
    """True when RFC 6724 5 prefers ``a`` to ``b`` as the source for ``dst``; False when it
    prefers ``b`` or neither."""
    # Rule 1: prefer the same address.
    if a.address == dst:
        return True
    if b.address == dst:
        return False
    # Rule 2: prefer the appropriate scope.
    sa, sb = scope(a.address), scope(b.address)
    if sa < sb:
        return not sa < d_scope
    if sb < sa:
        return sb < d_scope
    # Rule 3: avoid deprecated addresses.
    if a.preferred != b.preferred:
        return a.preferred
    # Rule 5: prefer an address of the outgoing interface (when the caller passes candidates
    # of several).
    if outgoing is not None:
        oa, ob = a.address in outgoing, b.address in outgoing
        if oa != ob:
            return oa
    # Rules 4 (home addresses), 5.5 (next hop) and 7 (temporary addresses) do not apply to
    # a host without Mobile IPv6 or temporary addresses.
    # Rule 6: prefer a matching label.
    la, lb = label(a.address) == d_label, label(b.address) == d_label
    if la != lb:
        return la
    # Rule 8: prefer the longest matching prefix, counted up to the candidate's own prefix
    # length (RFC 6724 2.2: "up to the length of S's prefix").
    return common_prefix_len(a.address, dst, a.prefix_len) > common_prefix_len(
        b.address, dst, b.prefix_len
    )


def select_source(
    dst: bytes, candidates: Sequence[Candidate], outgoing: Collection[bytes] | None = None
) -> bytes | None:
    """The source address RFC 6724 5 picks for ``dst`` among ``candidates`` (rules 1, 2, 3, 6
    and 8, and rule 5 when ``outgoing`` names the outgoing interface's addresses; ties go to
    the earlier candidate), or None when there are none.

    The caller passes only addresses that may be used: not tentative, not duplicate
    (RFC 4862 5.4), and on the outgoing interface unless ``outgoing`` is given.
    """
    if not candidates:
        return None
    d_scope, d_label = scope(dst), label(dst)
    best = candidates[0]
    for c in candidates[1:]:
        if _prefer_source(c, best, dst, d_scope, d_label, outgoing):
            best = c
    return best.address


# -- destination address ordering (RFC 6724 6) -----------------------------------------------


def sort_destinations(
    dsts: Sequence[bytes],
    source_for: Callable[[bytes], bytes | None],
    *,
    is_deprecated: Callable[[bytes], bool] | None = None,
) -> list[bytes]:
    """``dsts`` in the order RFC 6724 6 prefers them.

    Rules: 1 (a destination without a source goes after one with a source; between two
    without, the rules that need no source still apply), 2 (matching scope), 3 (avoid a
    deprecated source, when ``is_deprecated`` says which sources are), 5 (matching label),
    6 (higher precedence), 8 (smaller scope), 9 (longest matching prefix between source and
    destination, only when both destinations are IPv6 proper; CommonPrefixLen stops at 64, the
    interface identifier boundary of the source), 10 (otherwise the given order, the sort is
    stable). Rules 4, 5.5 and 7 (home addresses, next-hop prefixes, tunnels) do not apply.

    Args:
        dsts: the addresses, IPv4 ones in IPv4-mapped form.
        source_for: the source address the host would use for a destination (RFC 6724 5
            for IPv6), or None if it cannot reach it.
        is_deprecated: whether a source address is deprecated.
    """
    sources = {d: source_for(d) for d in dsts}

    def compare(da: bytes, db: bytes) -> int:
        """Negative when ``da`` goes first."""
        sa, sb = sources[da], sources[db]
        # Rule 1: avoid unusable destinations. With neither usable it decides nothing: the
        # rules that need Source(D) (2, 3, 5, 9) are skipped, those that do not (6, 8) still
        # order the two.
        if (sa is None) != (sb is None):
            return 1 if sa is None else -1
        if sa is not None and sb is not None:
            # Rule 2: prefer matching scope.
            ma, mb = scope(da) == scope(sa), scope(db) == scope(sb)
            if ma != mb:
                return -1 if ma else 1
            # Rule 3: avoid deprecated addresses.
            if is_deprecated is not None:
                xa, xb = is_deprecated(sa), is_deprecated(sb)
                if xa != xb:
                    return 1 if xa else -1
            # Rule 5: prefer matching label.
            ma, mb = label(sa) == label(da), label(sb) == label(db)
            if ma != mb:
                return -1 if ma else 1
        # Rule 6: prefer higher precedence.
        pa, pb = precedence(da), precedence(db)
        if pa != pb:
            return -1 if pa > pb else 1
        # Rule 8: prefer smaller scope.
        ca, cb = scope(da), scope(db)
        if ca != cb:
            return -1 if ca < cb else 1
        # Rule 9: use the longest matching prefix (same address family only).
        if sa is not None and sb is not None and not is_v4_mapped(da) and not is_v4_mapped(db):
            la, lb = common_prefix_len(sa, da, 64), common_prefix_len(sb, db, 64)
            if la != lb:
                return -1 if la > lb else 1
        # Rule 10: otherwise leave the order unchanged.
        return 0

    return sorted(dsts, key=functools.cmp_to_key(compare))
