"""Address configuration of one IPv6 interface: the host side of RFC 4862 (link-local and
stateless addresses, Duplicate Address Detection, lifetimes) and of RFC 4861 6.3 (router
solicitation, the Default Router and Prefix Lists, the link parameters a Router Advertisement
carries), with RFC 7217 interface identifiers and RFC 8106 DNS options.

An address goes through these states (RFC 4862 5.4, 5.5.4)::

    TENTATIVE --DAD done--> PREFERRED --preferred lifetime--> DEPRECATED
        |          (or DEPRECATED when its preferred lifetime is already over)   |
        |                           ^------------- a new Router Advertisement ----+
        +--conflict--> DUPLICATE  (static, EUI-64, or out of RFC 7217 retries; kept so it
                                   can be reported)
        +--conflict--> (gone; a new tentative address with DAD_Counter + 1, RFC 7217 6)

and is removed when its valid lifetime ends (RFC 4862 5.5.4) or on request.

- DAD (RFC 4862 5.4.2): the solicited-node group is joined as soon as the address exists (the
  interface must receive that group's packets during the delay, 5.4.2), then after a random
  delay of 0..MAX_RTR_SOLICITATION_DELAY (on the first message from the interface, and for
  addresses made from a Router Advertisement) DupAddrDetectTransmits solicitations go out
  RetransTimer apart; the address is unique if nothing was heard one RetransTimer after the
  last. A solicitation from :: for a tentative address (5.4.3) or an advertisement for it
  (5.4.4) is a conflict. DupAddrDetectTransmits 0 means no DAD (5.4).
- Router solicitation (RFC 4861 6.3.7): after a random delay of 0..MAX_RTR_SOLICITATION_DELAY,
  up to MAX_RTR_SOLICITATIONS, RTR_SOLICITATION_INTERVAL apart, until an advertisement with a
  non-zero Router Lifetime arrives.
- Router Advertisements (RFC 4861 6.3.4): Cur Hop Limit, Reachable Time (randomised, 6.3.2),
  Retrans Timer, MTU, the Default Router List and the on-link Prefix List; the Prefix
  Information options also drive SLAAC (RFC 4862 5.5.3, including the two-hour rule); RDNSS
  and DNSSL options fill the DNS lists (RFC 8106 5.1, 5.2, 6).

Every list is bounded (addresses, routers, prefixes, DNS servers, search domains); what a bound
turns away is counted in :attr:`Addrconf.drops`. The machine is sans-IO: inputs take ``now``,
randomness comes from the injected ``rng``, and outputs are drained with
:meth:`Addrconf.actions_to_send` and :meth:`Addrconf.next_event`.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Protocol

from .addressing import (
    LINK_LOCAL_PREFIX,
    Candidate,
    combine,
    eui64_iid,
    is_link_local,
    is_loopback,
    is_multicast,
    is_reserved_iid,
    is_unspecified,
    solicited_node,
    stable_iid,
)

__all__ = [
    "TRANSITIONS",
    "Action",
    "AddrconfConfig",
    "Addrconf",
    "AddressAdded",
    "AddressInfo",
    "AddressRemoved",
    "AddressState",
    "AddressStateChanged",
    "DnsServersChanged",
    "DnsslLike",
    "DuplicateAddress",
    "Event",
    "HopLimitChanged",
    "JoinGroup",
    "LeaveGroup",
    "MtuChanged",
    "Origin",
    "PrefixInfoLike",
    "RandomLike",
    "RdnssLike",
    "ReachableTimeChanged",
    "RetransTimerChanged",
    "RouterAdded",
    "RouterAdvertLike",
    "RouterRemoved",
    "SearchDomainsChanged",
    "SendDadSolicit",
    "SendRouterSolicit",
]

log = logging.getLogger("netstack.ipv6.addrconf")

#: RFC 4861 4.6.2, RFC 8106 5.1/5.2: a lifetime of all ones is infinite.
INFINITE_LIFETIME = 0xFFFFFFFF
#: RFC 4862 5.5.3 e: the valid lifetime an unauthenticated advertisement cannot cut below.
TWO_HOURS = 7200.0
#: RFC 8200 5: the minimum link MTU.
MIN_MTU = 1280
#: RFC 4861 10: REACHABLE_TIME (ms) and the randomisation of 6.3.2.
REACHABLE_TIME = 30.0
MIN_RANDOM_FACTOR = 0.5
MAX_RANDOM_FACTOR = 1.5
#: IANA's default hop limit (RFC 8200 3 leaves it to the node; RFC 4861 6.3.2 CurHopLimit).
DEFAULT_HOP_LIMIT = 64


class AddressState(Enum):
    """RFC 4862 2 (tentative, preferred, deprecated) plus DUPLICATE, a tentative address that
    failed DAD and is kept so it can be reported (RFC 4862 5.4.5: never assigned)."""

    TENTATIVE = "tentative"
    PREFERRED = "preferred"
    DEPRECATED = "deprecated"
    DUPLICATE = "duplicate"


class Origin(Enum):
    LINK_LOCAL = "link-local"
    SLAAC = "slaac"
    STATIC = "static"


S = AddressState
#: The states poll_at() and handle_timeout() ask about, as module constants: they run after
#: every burst of frames and every time the stack's timer fires, and on Python 3.11 every
#: ``AddressState.X`` goes through ``EnumType.__getattr__``'s slow path.
_TENTATIVE, _PREFERRED = AddressState.TENTATIVE, AddressState.PREFERRED
#: The legal transitions; removal (valid lifetime over, or on request) is from any state.
TRANSITIONS: dict[AddressState, frozenset[AddressState]] = {
    S.TENTATIVE: frozenset({S.PREFERRED, S.DEPRECATED, S.DUPLICATE}),
    S.PREFERRED: frozenset({S.DEPRECATED}),
    S.DEPRECATED: frozenset({S.PREFERRED}),
    S.DUPLICATE: frozenset(),
}
_ASSIGNED = frozenset({S.PREFERRED, S.DEPRECATED})


@dataclass(frozen=True, slots=True)
class AddrconfConfig:
    #: RFC 4862 5.1 DupAddrDetectTransmits: solicitations per DAD; 0 turns DAD off.
    dad_transmits: int = 1
    #: RFC 4861 10 RETRANS_TIMER (s), until a Router Advertisement sets RetransTimer.
    retrans_timer: float = 1.0
    #: RFC 4861 10 (host constants).
    max_rtr_solicitations: int = 3
    rtr_solicitation_interval: float = 4.0
    max_rtr_solicitation_delay: float = 1.0
    #: RFC 7217 7 IDGEN_RETRIES: new identifiers tried after DAD conflicts.
    idgen_retries: int = 3
    #: RFC 7217 7 IDGEN_DELAY (s): the most a new identifier waits after a conflict.
    idgen_delay: float = 1.0
    #: Interface identifiers: "stable" (RFC 7217) or "eui64" (RFC 4291 2.5.1).
    iid: str = "stable"
    #: RFC 4862 5.5: create addresses from Prefix Information options with the A flag.
    slaac: bool = True
    #: Process Router Advertisements (and send Router Solicitations) at all.
    accept_ra: bool = True
    max_addresses: int = 16
    #: RFC 4861 6.3.4: a host must keep at least two routers.
    max_routers: int = 8
    max_prefixes: int = 16
    #: RFC 8106 5.3.1 recommends room for at least three of each.
    max_rdnss: int = 8
    max_dnssl: int = 8


@dataclass(slots=True)
class AddressInfo:
    """One address of the interface (a copy: changing it changes nothing)."""

    address: bytes
    prefix_len: int
    state: AddressState
    origin: Origin
    #: Absolute times; ``math.inf`` for infinite lifetimes (link-local, static).
    valid_until: float
    preferred_until: float
    #: RFC 7217 DAD_Counter the identifier was made with (0 for EUI-64 and static).
    dad_counter: int


# -- actions ---------------------------------------------------------------------------------


class SendDadSolicit(NamedTuple):
    """Send a Neighbor Solicitation for ``target`` from :: to ``solicited_node(target)``,
    without a source link-layer address option (RFC 4862 5.4.2, RFC 4861 4.3)."""

    target: bytes


class SendRouterSolicit(NamedTuple):
    """Send a Router Solicitation to ff02::2 from a preferred link-local address if there is
    one, else from :: (then without a source link-layer address option), RFC 4861 6.3.7, 4.1."""


class JoinGroup(NamedTuple):
    """Listen to ``group`` and report it with MLD (RFC 4862 5.4.2, RFC 3810 6.1)."""

    group: bytes


class LeaveGroup(NamedTuple):
    """Stop listening to ``group`` (no address of the interface needs it any more)."""

    group: bytes


Action = SendDadSolicit | SendRouterSolicit | JoinGroup | LeaveGroup

# -- events ----------------------------------------------------------------------------------


class AddressAdded(NamedTuple):
    info: AddressInfo


class AddressStateChanged(NamedTuple):
    address: bytes
    old: AddressState
    new: AddressState


class AddressRemoved(NamedTuple):
    address: bytes


class DuplicateAddress(NamedTuple):
    """DAD found ``address`` in use by another node (RFC 4862 5.4.5: worth logging)."""

    address: bytes
    origin: Origin


class RouterAdded(NamedTuple):
    address: bytes
    lifetime_until: float


class RouterRemoved(NamedTuple):
    address: bytes


class MtuChanged(NamedTuple):
    mtu: int


class HopLimitChanged(NamedTuple):
    hop_limit: int


class DnsServersChanged(NamedTuple):
    servers: tuple[bytes, ...]


class SearchDomainsChanged(NamedTuple):
    domains: tuple[str, ...]


class ReachableTimeChanged(NamedTuple):
    seconds: float


class RetransTimerChanged(NamedTuple):
    seconds: float


Event = (
    AddressAdded
    | AddressStateChanged
    | AddressRemoved
    | DuplicateAddress
    | RouterAdded
    | RouterRemoved
    | MtuChanged
    | HopLimitChanged
    | DnsServersChanged
    | SearchDomainsChanged
    | ReachableTimeChanged
    | RetransTimerChanged
)

# -- what a Router Advertisement must offer --------------------------------------------------


class PrefixInfoLike(Protocol):
    """A Prefix Information option (RFC 4861 4.6.2); lifetimes in seconds, all ones infinite."""

    @property
    def prefix(self) -> bytes: ...
    @property
    def prefix_len(self) -> int: ...
    @property
    def on_link(self) -> bool: ...
    @property
    def autonomous(self) -> bool: ...
    @property
    def valid_lifetime(self) -> float: ...
    @property
    def preferred_lifetime(self) -> float: ...


class RdnssLike(Protocol):
    """A Recursive DNS Server option (RFC 8106 5.1)."""

    @property
    def lifetime(self) -> float: ...
    @property
    def servers(self) -> Iterable[bytes]: ...


class DnsslLike(Protocol):
    """A DNS Search List option (RFC 8106 5.2)."""

    @property
    def lifetime(self) -> float: ...
    @property
    def domains(self) -> Iterable[str]: ...


class RouterAdvertLike(Protocol):
    """A parsed, validated Router Advertisement (RFC 4861 4.2, 6.1.2)."""

    @property
    def cur_hop_limit(self) -> int: ...
    @property
    def managed(self) -> bool: ...
    @property
    def other(self) -> bool: ...
    @property
    def router_lifetime(self) -> float: ...  # seconds
    @property
    def reachable_time(self) -> float: ...  # milliseconds
    @property
    def retrans_timer(self) -> float: ...  # milliseconds
    @property
    def mtu(self) -> int | None: ...
    @property
    def prefixes(self) -> Iterable[PrefixInfoLike]: ...
    @property
    def rdnss(self) -> Iterable[RdnssLike]: ...
    @property
    def dnssl(self) -> Iterable[DnsslLike]: ...


class RandomLike(Protocol):
    """What the machine needs of ``random.Random``."""

    def random(self) -> float: ...
    def getrandbits(self, k: int, /) -> int: ...


# -- the machine -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    info: AddressInfo
    #: When the next DAD step is due (a solicitation, or the verdict); inf when none.
    dad_at: float = math.inf
    #: Solicitations sent so far for this address.
    sent: int = 0
    #: Whether this entry holds a reference on its solicited-node group.
    joined: bool = False


def _until(now: float, lifetime: float) -> float:
    """The absolute end of a lifetime in seconds (all ones: infinite)."""
    if lifetime >= INFINITE_LIFETIME:
        return math.inf
    return now + max(lifetime, 0)


class Addrconf:
    """The address-configuration machine of one interface.

    Inputs: :meth:`start`, :meth:`add_static`, :meth:`remove`, :meth:`receive_router_advert`,
    :meth:`receive_dad_solicit`, :meth:`receive_advert`, and :meth:`handle_timeout` once
    :meth:`poll_at` has passed. Outputs: :meth:`actions_to_send` (packets to send, groups to
    join or leave) and :meth:`next_event`.
    """

    def __init__(
        self,
        mac: bytes,
        *,
        config: AddrconfConfig | None = None,
        rng: RandomLike,
        secret: bytes,
        net_iface: bytes = b"eth0",
        network_id: bytes = b"",
        link_mtu: int = 1500,
    ) -> None:
        """
        Args:
            mac: the interface's Ethernet address (EUI-64 identifiers are made from it).
            rng: randomness for the RFC 4861/4862/7217 delays and ReachableTime.
            secret: the RFC 7217 secret key (at least 16 random bytes, kept across restarts).
            net_iface: RFC 7217 Net_Iface, a stable name of this interface.
            network_id: RFC 7217 Network_ID (optional).
            link_mtu: the link's MTU; an MTU option may only lower it (RFC 4861 6.3.4).

        Raises:
            ValueError: a bad ``config.iid`` or a MAC that is not 6 bytes.
        """
        self.config = c = config or AddrconfConfig()
        if c.iid not in ("stable", "eui64"):
            raise ValueError(f"config.iid must be 'stable' or 'eui64', got {c.iid!r}")
        if len(mac) != 6:
            raise ValueError(f"an Ethernet address is 6 bytes, got {len(mac)}")
        self.mac = bytes(mac)
        self.secret = bytes(secret)
        self.net_iface = bytes(net_iface)
        self.network_id = bytes(network_id)
        self.link_mtu = link_mtu
        self._rng = rng
        #: RFC 4861 6.3.2 host variables.
        self.mtu = link_mtu
        self.hop_limit = DEFAULT_HOP_LIMIT
        self.base_reachable_time = REACHABLE_TIME
        self.reachable_time = self._randomise(REACHABLE_TIME)
        self.retrans_timer = c.retrans_timer
        #: The M and O flags of the last Router Advertisement (RFC 4861 4.2), for DHCPv6.
        self.managed = False
        self.other = False
        #: RFC 4862 5.4.5: IP on this interface should stop (its EUI-64 link-local address is
        #: a duplicate); no more Router Solicitations, Router Advertisements are ignored.
        self.disabled = False
        self.started = False
        self.drops: dict[str, int] = {}
        self._entries: dict[bytes, _Entry] = {}
        self._groups: dict[bytes, int] = {}
        self._routers: dict[bytes, float] = {}
        self._prefixes: dict[tuple[bytes, int], float] = {}
        self._rdnss: dict[bytes, float] = {}
        self._dnssl: dict[str, float] = {}
        self._rs_at: float | None = None
        self._rs_sent = 0
        #: Whether anything has been sent yet (RFC 4862 5.4.2 delays the first message).
        self._sent_any = False
        self._actions: list[Action] = []
        self._events: collections.deque[Event] = collections.deque()

    # -- queries ---------------------------------------------------------------------------
    @property
    def addresses(self) -> list[AddressInfo]:
        """Every address, in every state (copies)."""
        return [dataclasses.replace(e.info) for e in self._entries.values()]

    def assigned(self, address: bytes) -> AddressInfo | None:
        """The address if it is assigned: PREFERRED or DEPRECATED (RFC 4862 5.4: neither
        tentative nor duplicate)."""
        e = self._entries.get(address)
        if e is None or e.info.state not in _ASSIGNED:
            return None
        return dataclasses.replace(e.info)

    def is_tentative(self, address: bytes) -> bool:
        e = self._entries.get(address)
        return e is not None and e.info.state is S.TENTATIVE

    def candidates(self) -> list[Candidate]:
        """The assigned addresses as RFC 6724 source candidates."""
        return [
            Candidate(e.info.address, e.info.prefix_len, e.info.state is S.PREFERRED)
            for e in self._entries.values()
            if e.info.state in _ASSIGNED
        ]

    def link_local_address(self) -> bytes | None:
        """A preferred link-local address (the source of Router Solicitations, RFC 4861
        6.3.7, and of MLD reports, RFC 3810 5.2.13), or None."""
        for e in self._entries.values():
            if e.info.state is S.PREFERRED and is_link_local(e.info.address):
                return e.info.address
        return None

    def default_routers(self, now: float) -> list[bytes]:
        """The Default Router List (RFC 4861 6.3.4), oldest first, without expired entries."""
        return [r for r, until in self._routers.items() if until > now]

    @property
    def on_link_prefixes(self) -> list[tuple[bytes, int]]:
        """The Prefix List (RFC 4861 6.3.4): (prefix, length) of every on-link prefix."""
        return list(self._prefixes)

    def on_link(self, dst: bytes) -> bool:
        """Whether ``dst`` is on-link (RFC 4861 2.1, 5.2; RFC 5942 4): link-local and multicast
        destinations always, else one in the Prefix List or in the prefix of a static address
        (manual configuration). An address made by SLAAC says nothing about its prefix being
        on-link (RFC 5942 4, rule 1); only the L flag does."""
        if is_link_local(dst) or is_multicast(dst):
            return True
        return self.on_link_length(dst) is not None

    def on_link_length(self, dst: bytes) -> int | None:
        """The length of the longest on-link prefix holding ``dst`` (the Prefix List and the
        prefixes of static addresses, as :meth:`on_link`; the link-local prefix counts as
        /64), or None when it is not on-link: what a host with several interfaces compares
        to find the link of a destination (longest match, RFC 4861 5.2)."""
        if is_link_local(dst):
            return 64
        d = int.from_bytes(dst, "big")
        best: int | None = None
        for prefix, plen in self._prefixes:
            if _in_prefix(d, prefix, plen) and (best is None or plen > best):
                best = plen
        for e in self._entries.values():
            i = e.info
            if i.origin is Origin.STATIC and i.state in _ASSIGNED:
                if _in_prefix(d, i.address, i.prefix_len) and (best is None or i.prefix_len > best):
                    best = i.prefix_len
        return best

    @property
    def dns_servers(self) -> tuple[bytes, ...]:
        """The DNS Server List (RFC 8106 6.2), in the order learnt."""
        return tuple(self._rdnss)

    @property
    def search_domains(self) -> tuple[str, ...]:
        """The DNS Search List (RFC 8106 6.3), in the order learnt."""
        return tuple(self._dnssl)

    # -- inputs: configuration -------------------------------------------------------------
    def start(self, now: float) -> None:
        """Enable the interface (RFC 4862 5.3): make the link-local address and start DAD on
        it, and start soliciting routers (RFC 4861 6.3.7).

        Raises:
            RuntimeError: already started.
        """
        if self.started:
            raise RuntimeError("address configuration already started")
        self.started = True
        c = self.config
        made = self._generate(LINK_LOCAL_PREFIX, 0)
        if made is None:
            self._drop("no_link_local")
        else:
            address, counter = made
            # RFC 4862 5.3: a link-local address has infinite lifetimes.
            self._add(address, 64, Origin.LINK_LOCAL, now, math.inf, math.inf, counter,
                      dad=True, delay=self._first_delay())  # fmt: skip
        if c.accept_ra and c.max_rtr_solicitations > 0:
            # RFC 4861 6.3.7: the first solicitation after a random delay.
            self._rs_at = now + self._rng.random() * c.max_rtr_solicitation_delay
            self._rs_sent = 0

    def add_static(
        self, address: bytes, prefix_len: int, now: float, *, dad: bool = True
    ) -> AddressInfo:
        """Configure an address by hand. It is TENTATIVE until DAD passes (RFC 4862 5.4: DAD
        applies to manually configured addresses too) unless ``dad`` is False.

        Raises:
            ValueError: not 16 bytes, multicast, unspecified or loopback (RFC 4291 2.5.3), a
                prefix length outside 0..128, an address the interface already has, or the
                address limit reached.
        """
        if len(address) != 16:
            raise ValueError(f"an IPv6 address is 16 bytes, got {len(address)}")
        address = bytes(address)
        if is_multicast(address) or is_unspecified(address) or is_loopback(address):
            raise ValueError("a unicast address other than :: and ::1 is needed")
        if not isinstance(prefix_len, int) or not 0 <= prefix_len <= 128:
            raise ValueError(f"prefix length must be 0..128, got {prefix_len!r}")
        if address in self._entries:
            raise ValueError("the interface already has this address")
        if len(self._entries) >= self.config.max_addresses:
            raise ValueError(f"at most {self.config.max_addresses} addresses per interface")
        e = self._add(address, prefix_len, Origin.STATIC, now, math.inf, math.inf, 0,
                      dad=dad, delay=self._first_delay())  # fmt: skip
        return dataclasses.replace(e.info)

    def remove(self, address: bytes, now: float) -> None:
        """Remove an address of any origin and state.

        Raises:
            ValueError: the interface has no such address.
        """
        if address not in self._entries:
            raise ValueError("the interface has no such address")
        self._remove(address)

    # -- inputs: packets -------------------------------------------------------------------
    def receive_dad_solicit(self, target: bytes, now: float) -> bool:
        """A Neighbor Solicitation from :: (another node doing DAD) for ``target``.

        Returns:
            True if ``target`` is assigned here (PREFERRED or DEPRECATED), so the caller
            defends it with an advertisement to all-nodes (RFC 4861 7.2.4); False otherwise.
        """
        e = self._entries.get(target)
        if e is None:
            return False
        if e.info.state is S.TENTATIVE:
            # RFC 4862 5.4.3: whether or not ours went out yet, the address is not unique
            # (our own solicitations are not looped back to us).
            self._conflict(e, now)
            return False
        return e.info.state in _ASSIGNED

    def receive_advert(self, target: bytes, now: float) -> bool:
        """A Neighbor Advertisement for ``target``.

        Returns:
            True if ``target`` is assigned here: another node claims it. RFC 4862 5.4.4 leaves
            that case to the implementation; the address stays (the caller may log it).
            False otherwise; for a tentative address this is a DAD conflict (RFC 4862 5.4.4).
        """
        e = self._entries.get(target)
        if e is None:
            return False
        if e.info.state is S.TENTATIVE:
            self._conflict(e, now)
            return False
        return e.info.state in _ASSIGNED

    def receive_router_advert(self, src: bytes, ra: RouterAdvertLike, now: float) -> None:
        """A valid Router Advertisement from ``src`` (the caller checked RFC 4861 6.1.2: a
        link-local source, hop limit 255, ...). RFC 4861 6.3.4, RFC 4862 5.5.3, RFC 8106."""
        c = self.config
        if not c.accept_ra:
            self._drop("ra_not_accepted")
            return
        if self.disabled:
            self._drop("ra_disabled")
            return
        self.managed, self.other = bool(ra.managed), bool(ra.other)
        lifetime = ra.router_lifetime
        if lifetime > 0 and self._rs_at is not None:
            # RFC 4861 6.3.7: an advertisement with a non-zero Router Lifetime ends the
            # solicitations.
            self._rs_at = None
        # RFC 4861 6.3.4: Cur Hop Limit, Reachable Time and Retrans Timer when non-zero.
        if ra.cur_hop_limit and ra.cur_hop_limit != self.hop_limit:
            self.hop_limit = int(ra.cur_hop_limit)
            self._events.append(HopLimitChanged(self.hop_limit))
        if ra.reachable_time:
            base = ra.reachable_time / 1000.0
            if base != self.base_reachable_time:
                # RFC 4861 6.3.4: a new base means a new random ReachableTime (6.3.2).
                self.base_reachable_time = base
                self.reachable_time = self._randomise(base)
                self._events.append(ReachableTimeChanged(self.reachable_time))
        if ra.retrans_timer:
            retrans = ra.retrans_timer / 1000.0
            if retrans != self.retrans_timer:
                self.retrans_timer = retrans
                self._events.append(RetransTimerChanged(retrans))
        self._router(src, lifetime, now)
        if ra.mtu is not None:
            # RFC 4861 6.3.4: at least the IPv6 minimum, at most the link's own MTU.
            if MIN_MTU <= ra.mtu <= self.link_mtu:
                if ra.mtu != self.mtu:
                    self.mtu = int(ra.mtu)
                    self._events.append(MtuChanged(self.mtu))
            else:
                self._drop("ra_bad_mtu")
        for p in ra.prefixes:
            self._prefix_option(p, now)
        servers_before, domains_before = self.dns_servers, self.search_domains
        for r in ra.rdnss:
            for server in r.servers:
                self._rdnss_entry(bytes(server), r.lifetime, now)
        for d in ra.dnssl:
            for domain in d.domains:
                self._dnssl_entry(domain, d.lifetime, now)
        if self.dns_servers != servers_before:
            self._events.append(DnsServersChanged(self.dns_servers))
        if self.search_domains != domains_before:
            self._events.append(SearchDomainsChanged(self.search_domains))

    # -- outputs ---------------------------------------------------------------------------
    def actions_to_send(self) -> list[Action]:
        out, self._actions = self._actions, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        """The next deadline: a DAD step, a solicitation, or the end of a lifetime."""
        at = math.inf if self._rs_at is None else self._rs_at
        for e in self._entries.values():
            i = e.info
            if i.state is _TENTATIVE and e.dad_at < at:
                at = e.dad_at
            elif i.state is _PREFERRED and i.preferred_until < at:
                at = i.preferred_until
            if i.valid_until < at:
                at = i.valid_until
        for table in (self._routers, self._rdnss, self._dnssl):
            for until in table.values():
                if until < at:
                    at = until
        for until in self._prefixes.values():
            if until < at:
                at = until
        return None if at == math.inf else at

    def handle_timeout(self, now: float) -> None:
        c = self.config
        if self._rs_at is not None and self._rs_at <= now:
            if self.disabled:
                self._rs_at = None
            else:
                self._emit(SendRouterSolicit())
                self._rs_sent += 1
                more = self._rs_sent < c.max_rtr_solicitations
                self._rs_at = now + c.rtr_solicitation_interval if more else None
        for e in list(self._entries.values()):
            i = e.info
            if i.valid_until <= now:
                # RFC 4862 5.5.4: the address is invalid once its valid lifetime ends.
                self._remove(i.address)
            elif i.state is _TENTATIVE:
                if e.dad_at <= now:
                    self._dad_step(e, now)
            elif i.state is _PREFERRED and i.preferred_until <= now:
                # RFC 4862 5.5.4: deprecated once the preferred lifetime ends.
                self._set_state(e, S.DEPRECATED)
        for router, until in list(self._routers.items()):
            if until <= now:
                # RFC 4861 6.3.5: the router's lifetime ran out.
                del self._routers[router]
                self._events.append(RouterRemoved(router))
        for key, until in list(self._prefixes.items()):
            if until <= now:
                del self._prefixes[key]  # RFC 4861 6.3.5
        servers_before, domains_before = self.dns_servers, self.search_domains
        for server, until in list(self._rdnss.items()):
            if until <= now:
                del self._rdnss[server]  # RFC 8106 6.2 (e)
        for domain, until in list(self._dnssl.items()):
            if until <= now:
                del self._dnssl[domain]
        if self.dns_servers != servers_before:
            self._events.append(DnsServersChanged(self.dns_servers))
        if self.search_domains != domains_before:
            self._events.append(SearchDomainsChanged(self.search_domains))

    # -- internals: addresses --------------------------------------------------------------
    def _set_state(self, e: _Entry, new: AddressState) -> None:
        old = e.info.state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"illegal address transition {old.value} -> {new.value}")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s -> %s", _fmt(e.info.address), old.value, new.value)
        e.info.state = new
        self._events.append(AddressStateChanged(e.info.address, old, new))

    def _first_delay(self) -> float:
        """RFC 4862 5.4.2: the first message from an interface waits a random 0 to
        MAX_RTR_SOLICITATION_DELAY seconds."""
        if self._sent_any:
            return 0.0
        return self._rng.random() * self.config.max_rtr_solicitation_delay

    def _generate(self, prefix: bytes, counter: int) -> tuple[bytes, int] | None:
        """An unused address in ``prefix`` (a /64) and the DAD_Counter it was made with, or
        None when RFC 7217's retries are used up (or the EUI-64 one is taken)."""
        c = self.config
        if c.iid == "eui64":
            address = combine(prefix, eui64_iid(self.mac))
            if is_reserved_iid(address[8:]) or address in self._entries:
                return None
            return address, 0
        while counter <= c.idgen_retries:
            iid = stable_iid(prefix, 64, self.net_iface, self.network_id, counter, self.secret)
            address = combine(prefix, iid)
            # RFC 7217 5: a reserved identifier (RFC 5453), or one the interface already uses
            # in this prefix, is handled like a DAD conflict.
            if not is_reserved_iid(iid) and address not in self._entries:
                return address, counter
            counter += 1
        return None

    def _add(
        self,
        address: bytes,
        prefix_len: int,
        origin: Origin,
        now: float,
        valid_until: float,
        preferred_until: float,
        counter: int,
        *,
        dad: bool,
        delay: float,
    ) -> _Entry:
        c = self.config
        run_dad = dad and c.dad_transmits > 0
        if run_dad:
            state = S.TENTATIVE
        elif preferred_until > now:
            state = S.PREFERRED
        else:
            state = S.DEPRECATED
        info = AddressInfo(
            address, prefix_len, state, origin, valid_until, preferred_until, counter
        )
        e = _Entry(info, dad_at=now + delay if run_dad else math.inf)
        self._entries[address] = e
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: added (%s, %s)", _fmt(address), origin.value, state.value)
        self._events.append(AddressAdded(dataclasses.replace(info)))
        # RFC 4862 5.4.2: join the solicited-node group before any solicitation (and keep
        # it: RFC 4861 7.2.1 needs it for address resolution once the address is assigned).
        self._join(e)
        return e

    def _remove(self, address: bytes) -> None:
        e = self._entries.pop(address)
        self._leave(e)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: removed", _fmt(address))
        self._events.append(AddressRemoved(address))

    def _join(self, e: _Entry) -> None:
        if e.joined:
            return
        e.joined = True
        group = solicited_node(e.info.address)
        n = self._groups.get(group, 0)
        self._groups[group] = n + 1
        if n == 0:
            self._emit(JoinGroup(group))

    def _leave(self, e: _Entry) -> None:
        if not e.joined:
            return
        e.joined = False
        group = solicited_node(e.info.address)
        n = self._groups[group]
        if n <= 1:
            del self._groups[group]
            self._emit(LeaveGroup(group))
        else:
            self._groups[group] = n - 1

    def _dad_step(self, e: _Entry, now: float) -> None:
        """Send the next solicitation, or, one RetransTimer after the last, declare the
        address unique (RFC 4862 5.4.2, 5.4.5)."""
        i = e.info
        if e.sent < self.config.dad_transmits:
            self._join(e)
            self._emit(SendDadSolicit(i.address))
            e.sent += 1
            e.dad_at = now + self.retrans_timer
            return
        e.dad_at = math.inf
        # RFC 4862 5.5.4 / 5.5.3 d: an address whose preferred lifetime is already over is
        # assigned deprecated.
        self._set_state(e, S.PREFERRED if i.preferred_until > now else S.DEPRECATED)

    def _conflict(self, e: _Entry, now: float) -> None:
        """DAD failed for a tentative address (RFC 4862 5.4.5)."""
        c = self.config
        i = e.info
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: duplicate (%s)", _fmt(i.address), i.origin.value)
        self._events.append(DuplicateAddress(i.address, i.origin))
        if c.iid == "stable" and i.origin is not Origin.STATIC:
            # RFC 7217 6: try a new identifier with DAD_Counter + 1, after a random delay of
            # up to IDGEN_DELAY, at most IDGEN_RETRIES times.
            made = self._generate(i.address[:8] + bytes(8), i.dad_counter + 1)
            if made is not None:
                self._remove(i.address)
                address, counter = made
                delay = self._rng.random() * c.idgen_delay
                self._add(address, 64, i.origin, now, i.valid_until, i.preferred_until,
                          counter, dad=True, delay=delay)  # fmt: skip
                return
        # Out of retries, or an identifier that cannot change (EUI-64, static): the address is
        # never assigned (RFC 4862 5.4.5), and no other algorithm is tried (RFC 7217 6).
        e.dad_at = math.inf
        self._leave(e)
        self._set_state(e, S.DUPLICATE)
        if i.origin is Origin.LINK_LOCAL and c.iid == "eui64":
            # RFC 4862 5.4.5: a link-local address made from the hardware address is a
            # duplicate; IP operation on the interface SHOULD be disabled.
            log.warning("IPv6 disabled: the hardware-derived link-local address is in use")
            self.disabled = True
            self._rs_at = None

    # -- internals: Router Advertisement options -------------------------------------------
    def _router(self, src: bytes, lifetime: float, now: float) -> None:
        """RFC 4861 6.3.4: the Default Router List."""
        if src in self._routers:
            if lifetime <= 0:
                del self._routers[src]
                self._events.append(RouterRemoved(src))
            else:
                self._routers[src] = now + lifetime
        elif lifetime > 0:
            if len(self._routers) >= self.config.max_routers:
                self._drop("routers_full")
                return
            until = now + lifetime
            self._routers[src] = until
            self._events.append(RouterAdded(src, until))

    def _prefix_option(self, p: PrefixInfoLike, now: float) -> None:
        plen = p.prefix_len
        raw = bytes(p.prefix)
        if len(raw) != 16 or not 0 <= plen <= 128:
            self._drop("ra_bad_prefix")
            return
        prefix = _masked(raw, plen)
        if is_link_local(prefix):
            # RFC 4861 6.3.4 and RFC 4862 5.5.3 b: the link-local prefix is ignored.
            self._drop("ra_link_local_prefix")
            return
        if is_multicast(prefix):
            self._drop("ra_multicast_prefix")
            return
        if p.on_link:
            self._on_link_prefix(prefix, plen, p.valid_lifetime, now)
        if p.autonomous and self.config.slaac:
            self._slaac(prefix, plen, p.valid_lifetime, p.preferred_lifetime, now)

    def _on_link_prefix(self, prefix: bytes, plen: int, valid: float, now: float) -> None:
        """RFC 4861 6.3.4: the Prefix List (on-link flag set)."""
        key = (prefix, plen)
        if key in self._prefixes:
            if valid <= 0:
                del self._prefixes[key]
            else:
                self._prefixes[key] = _until(now, valid)
        elif valid > 0:
            if len(self._prefixes) >= self.config.max_prefixes:
                self._drop("prefixes_full")
                return
            self._prefixes[key] = _until(now, valid)

    def _slaac(self, prefix: bytes, plen: int, valid: float, preferred: float, now: float) -> None:
        """RFC 4862 5.5.3, for a Prefix Information option with the A flag."""
        if preferred > valid:
            self._drop("ra_preferred_over_valid")  # 5.5.3 c
            return
        if plen != 64:
            # 5.5.3 d: prefix length plus interface identifier length (64 on Ethernet,
            # RFC 2464 4) must be 128.
            self._drop("ra_prefix_len")
            return
        existing = None
        for e in self._entries.values():
            if e.info.origin is Origin.SLAAC and e.info.address[:8] == prefix[:8]:
                existing = e
                break
        if existing is None:
            # 5.5.3 d: a new address, unless the valid lifetime is 0.
            if valid <= 0:
                return
            if len(self._entries) >= self.config.max_addresses:
                self._drop("addresses_full")
                return
            made = self._generate(prefix, 0)
            if made is None:
                self._drop("no_interface_identifier")
                return
            address, counter = made
            # RFC 4862 5.4.2: an address configured from a (multicast) Router Advertisement
            # also waits a random delay before its first solicitation.
            delay = self._rng.random() * self.config.max_rtr_solicitation_delay
            self._add(address, 64, Origin.SLAAC, now, _until(now, valid),
                      _until(now, preferred), counter, dad=True, delay=delay)  # fmt: skip
            return
        i = existing.info
        # 5.5.3 e: the valid lifetime, under the two-hour rule (the advertisement is not
        # authenticated: SEND is not implemented).
        remaining = i.valid_until - now
        advertised = _until(now, valid) - now
        if advertised > TWO_HOURS or advertised > remaining:
            i.valid_until = _until(now, valid)
        elif remaining <= TWO_HOURS:
            pass  # 5.5.3 e 2: ignored as regards the valid lifetime
        else:
            i.valid_until = now + TWO_HOURS  # 5.5.3 e 3
        # 5.5.3 e: the preferred lifetime is reset to the advertised one (never beyond the
        # valid lifetime).
        i.preferred_until = min(_until(now, preferred), i.valid_until)
        if i.state is S.PREFERRED and i.preferred_until <= now:
            self._set_state(existing, S.DEPRECATED)
        elif i.state is S.DEPRECATED and i.preferred_until > now:
            self._set_state(existing, S.PREFERRED)

    def _rdnss_entry(self, server: bytes, lifetime: float, now: float) -> None:
        """RFC 8106 6.2 steps (b)-(d) for one server address."""
        if len(server) != 16 or is_multicast(server) or is_unspecified(server):
            self._drop("ra_bad_rdnss")
            return
        if server in self._rdnss:
            if lifetime <= 0:
                del self._rdnss[server]  # RFC 8106 5.1: lifetime 0 removes it
            else:
                self._rdnss[server] = _until(now, lifetime)
            return
        if lifetime <= 0:
            return
        if len(self._rdnss) >= self.config.max_rdnss:
            # RFC 8106 6.2 (d): when the list is full the entry that expires first goes.
            victim = min(self._rdnss, key=self._rdnss.__getitem__)
            del self._rdnss[victim]
            self._drop("rdnss_evicted")
        self._rdnss[server] = _until(now, lifetime)

    def _dnssl_entry(self, domain: str, lifetime: float, now: float) -> None:
        """RFC 8106 6.3: the DNS Search List, handled like the server list."""
        if not isinstance(domain, str) or not domain:
            self._drop("ra_bad_dnssl")
            return
        if domain in self._dnssl:
            if lifetime <= 0:
                del self._dnssl[domain]
            else:
                self._dnssl[domain] = _until(now, lifetime)
            return
        if lifetime <= 0:
            return
        if len(self._dnssl) >= self.config.max_dnssl:
            victim = min(self._dnssl, key=self._dnssl.__getitem__)
            del self._dnssl[victim]
            self._drop("dnssl_evicted")
        self._dnssl[domain] = _until(now, lifetime)

    # -- internals: misc -------------------------------------------------------------------
    def _emit(self, action: Action) -> None:
        self._sent_any = True
        self._actions.append(action)

    def _randomise(self, base: float) -> float:
        """RFC 4861 6.3.2: ReachableTime is uniform in [MIN_RANDOM_FACTOR, MAX_RANDOM_FACTOR]
        times BaseReachableTime."""
        r = self._rng.random()
        return base * (MIN_RANDOM_FACTOR + (MAX_RANDOM_FACTOR - MIN_RANDOM_FACTOR) * r)

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1


def _masked(prefix: bytes, plen: int) -> bytes:
    v = int.from_bytes(prefix, "big")
    keep = ((1 << plen) - 1) << (128 - plen)
    return (v & keep).to_bytes(16, "big")


def _in_prefix(d: int, prefix: bytes, plen: int) -> bool:
    keep = ((1 << plen) - 1) << (128 - plen)
    return (d & keep) == (int.from_bytes(prefix, "big") & keep)


def _fmt(address: bytes) -> str:
    return str(ipaddress.IPv6Address(address))
