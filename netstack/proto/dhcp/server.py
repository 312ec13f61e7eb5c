"""The DHCP server machine (RFC 2131 4.3): address pools, reservations and the lease database.

- Allocation (RFC 2131 4.3.1): a client gets, in this order, its reserved address, the
  address of its current binding, the address it had before (expired or released), the
  address it asks for if that is free, or a free address of the pool; a fresh address (never
  leased) is preferred to one another client had, and among those the one free longest.
  Offered addresses are held for ``offer_hold`` seconds so no other client is offered them
  (RFC 2131 4.3.1: the server SHOULD NOT reuse an offered address before the client
  answers), within bounds, so that DISCOVERs from random hardware addresses (the classic
  starvation attack) cannot hold the whole pool: a hardware address holds at most
  ``max_offers_per_mac`` offers, a pool at most ``max_offers`` (half its addresses by
  default); beyond them the oldest offer is let go. An address let go is given out again
  only after every fresh one and every one let go before it, so a real client's REQUEST a
  moment after its OFFER still gets it through a flood.
- REQUEST (RFC 2131 4.3.2) in its three forms: SELECTING (Server Identifier present: ours
  binds, another server's frees our offer), INIT-REBOOT (Requested IP Address, no ciaddr:
  NAK for an address on the wrong network or held by another client) and RENEWING/REBINDING
  (ciaddr). An address held by another client is never acknowledged: the same address is
  never leased to two clients at once.
- DECLINE (4.3.3) quarantines the address for ``decline_hold`` seconds; RELEASE (4.3.4)
  frees it but remembers the client so it gets the same address again; INFORM (4.3.5)
  answers with the configuration only.
- Replies go where RFC 2131 4.1 says: to a relay (``giaddr``) on port 67, to ``ciaddr``,
  broadcast when the client asked (or for a NAK), else unicast to ``yiaddr`` at ``chaddr``
  without ARP.

Clients are known by their Client Identifier (option 61), else by their hardware address
(RFC 2131 4.2). Malformed or unexpected messages are dropped and counted in
:attr:`DhcpServer.drops`; nothing a client sends raises. Warnings a client can cause (an
exhausted pool, a declined address) are logged at most once per ``log_interval`` each, with
the count of those left unlogged. Persistence is the driver's:
:meth:`DhcpServer.snapshot` and :meth:`DhcpServer.restore` give and take a JSON-able dict,
and :attr:`DhcpServer.generation` changes whenever something worth saving did.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple, Protocol

from ...errors import ParseError
from .wire import (
    BootOp,
    DhcpFlags,
    DhcpMessage,
    MessageType,
    OptionCode,
    build,
    decode_ip,
    decode_u32,
    encode_ips,
    encode_u32,
    parse,
    prefix_to_mask,
)

__all__ = [
    "BindingState",
    "DhcpServer",
    "DhcpServerConfig",
    "Pool",
    "Reply",
    "ServerLease",
]

log = logging.getLogger("netstack.dhcp.server")

ZERO = b"\x00\x00\x00\x00"
BROADCAST = b"\xff\xff\xff\xff"
SERVER_PORT = 67
CLIENT_PORT = 68
SNAPSHOT_VERSION = 1


class RandomLike(Protocol):
    def randrange(self, start: int, stop: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class Pool:
    """The dynamic range ``start``..``end`` of ``network``, and what clients there are told.

    ``options`` are more options to serve (code -> value), sent to clients that ask for them
    (or that send no Parameter Request List).
    """

    network: ipaddress.IPv4Network
    start: ipaddress.IPv4Address
    end: ipaddress.IPv4Address
    router: ipaddress.IPv4Address | None = None
    dns_servers: tuple[ipaddress.IPv4Address, ...] = ()
    domain: str | None = None
    lease_time: int = 3600
    options: Mapping[int, bytes] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not (self.start in self.network and self.end in self.network):
            raise ValueError(f"pool {self.start}-{self.end} is not inside {self.network}")
        if self.start > self.end:
            raise ValueError(f"pool start {self.start} is after its end {self.end}")
        if not 1 <= self.lease_time <= 0xFFFFFFFF:
            raise ValueError("lease_time must be 1..0xffffffff seconds")
        if self.domain is not None and not 0 < len(self.domain.encode("ascii")) <= 255:
            raise ValueError("domain must be 1..255 ASCII characters")
        for code in self.options:
            if not 0 < code < 255:
                raise ValueError(f"option code {code} out of range")

    def __contains__(self, ip: object) -> bool:
        if isinstance(ip, bytes) and len(ip) == 4:
            ip = ipaddress.IPv4Address(ip)
        return isinstance(ip, ipaddress.IPv4Address) and self.start <= ip <= self.end


@dataclass(frozen=True, slots=True)
class DhcpServerConfig:
    pools: tuple[Pool, ...]
    #: Fixed addresses by hardware address (6-byte MAC -> 4-byte address), inside a pool's
    #: network (inside or outside its dynamic range).
    reservations: Mapping[bytes, bytes] = field(default_factory=dict, compare=False, hash=False)
    #: Seconds an offered address stays held for the client it was offered to.
    offer_hold: float = 60.0
    #: Seconds a declined address is kept out of use (RFC 2131 4.3.3 leaves it open).
    decline_hold: float = 600.0
    #: The least lease a client may ask for (option 51) when it asks for a shorter one.
    min_lease_time: int = 60
    #: NAK requests for addresses this server does not know (RFC 2131 4.3.2 leaves the
    #: choice to the server's administrator); a lone server on its link should.
    authoritative: bool = True
    #: Offers a pool may have outstanding at once; None: half its addresses (at least one).
    #: A new offer beyond it lets the pool's oldest offer go.
    max_offers: int | None = None
    #: Offers one hardware address may have outstanding at once (under several client
    #: identifiers); a new one beyond it lets that address's oldest offer go.
    max_offers_per_mac: int = 2
    #: Seconds between two log lines of one kind of warning a client can cause.
    log_interval: float = 60.0

    def __post_init__(self) -> None:
        if not self.pools:
            raise ValueError("a DHCP server needs at least one pool")
        if self.max_offers is not None and self.max_offers < 1:
            raise ValueError("max_offers must be at least 1 (or None)")
        if self.max_offers_per_mac < 1:
            raise ValueError("max_offers_per_mac must be at least 1")
        for mac, ip in self.reservations.items():
            if len(mac) != 6 or len(ip) != 4:
                raise ValueError("reservations map 6-byte MACs to 4-byte addresses")
            if not any(ipaddress.IPv4Address(ip) in p.network for p in self.pools):
                raise ValueError(f"reserved {ipaddress.IPv4Address(ip)} is in no pool's network")
        if len(set(self.reservations.values())) != len(self.reservations):
            raise ValueError("two reservations share an address")


class BindingState(Enum):
    OFFERED = "offered"
    BOUND = "bound"
    RELEASED = "released"
    EXPIRED = "expired"
    DECLINED = "declined"


B = BindingState
#: States in which the address belongs to the record's client (or, declined, to nobody).
_HELD = frozenset({B.OFFERED, B.BOUND, B.DECLINED})


@dataclass(slots=True)
class _Binding:
    address: bytes
    client: bytes  # the client key (b"" for a declined address)
    mac: bytes
    state: BindingState
    #: OFFERED, BOUND, DECLINED: when it ends; RELEASED, EXPIRED: when it ended.
    expires: float
    hostname: str | None = None


class ServerLease(NamedTuple):
    """A lease the server has granted; ``expires`` is in the machine's time (loop time)."""

    address: str
    mac: str
    client_id: str | None
    hostname: str | None
    expires: float


class Reply(NamedTuple):
    """A message to send from port 67: to ``dst`` on UDP ``port``; as a link broadcast when
    ``broadcast``; to the Ethernet address ``mac`` without ARP when it is set (RFC 2131 4.1:
    the client has no address yet)."""

    payload: bytes
    dst: bytes
    mac: bytes | None
    broadcast: bool
    port: int = CLIENT_PORT


def _fmt(ip: bytes) -> str:
    return str(ipaddress.IPv4Address(ip))


class _Throttle:
    """One kind of warning: let a line through at most once per ``interval`` seconds, and
    count the ones held back meanwhile."""

    __slots__ = ("interval", "next_at", "held")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next_at = -math.inf
        self.held = 0

    def due(self, now: float) -> int | None:
        """None to stay quiet; else how many lines were held back since the last one."""
        if now < self.next_at:
            self.held += 1
            return None
        held, self.held = self.held, 0
        self.next_at = now + self.interval
        return held


def _held_note(held: int) -> str:
    return f" ({held} more since the last report)" if held else ""


class DhcpServer:
    """The server machine for the pools of one interface.

    Inputs: :meth:`receive` (a message to port 67), :meth:`handle_timeout` once
    :meth:`poll_at` has passed, :meth:`restore`. Outputs: the replies :meth:`receive`
    returns; :attr:`leases`; :meth:`snapshot`.
    """

    _COUNTERS = (
        "discovers",
        "requests",
        "declines",
        "releases",
        "informs",
        "offers_sent",
        "acks_sent",
        "naks_sent",
        "leases_expired",
        "offers_evicted",
    )

    def __init__(
        self, server_ip: bytes, config: DhcpServerConfig, rng: RandomLike | None = None
    ) -> None:
        """
        Args:
            server_ip: this server's address (Server Identifier), on the network of the
                pool that serves clients on the local link.
            config: pools, reservations and timings.
            rng: when given, searches for a fresh address start at a random place in the
                pool instead of its start.

        Raises:
            ValueError: ``server_ip`` is on none of the pools' networks.
        """
        if len(server_ip) != 4:
            raise ValueError("server_ip is 4 bytes")
        self.server_ip = bytes(server_ip)
        self.config = config
        self._rng = rng
        address = ipaddress.IPv4Address(server_ip)
        local = [p for p in config.pools if address in p.network]
        if not local:
            raise ValueError(f"{address} is not on the network of any pool")
        self.local_pool = local[0]
        self._reserved_by_ip = {ip: mac for mac, ip in config.reservations.items()}
        self._bindings: dict[bytes, _Binding] = {}
        self._by_client: dict[bytes, bytes] = {}
        #: Per pool (by its first address): where the search for a fresh address resumes.
        self._cursor: dict[int, int] = {}
        #: Outstanding offers, oldest first: address -> (pool key, hardware address), and
        #: the same by pool and by hardware address.
        self._offers: dict[bytes, tuple[int, bytes]] = {}
        self._pool_offers: dict[int, dict[bytes, None]] = {}
        self._mac_offers: dict[bytes, dict[bytes, None]] = {}
        self._exhausted_log = _Throttle(config.log_interval)
        self._decline_log = _Throttle(config.log_interval)
        self.drops: dict[str, int] = {}
        self.discovers = self.requests = self.declines = self.releases = self.informs = 0
        self.offers_sent = self.acks_sent = self.naks_sent = self.leases_expired = 0
        self.offers_evicted = 0
        #: Changes whenever the state :meth:`snapshot` returns changes.
        self.generation = 0

    # -- queries ---------------------------------------------------------------------------
    def leases_at(self, now: float) -> list[ServerLease]:
        """The bindings in force at ``now``, by address."""
        out = []
        for address in sorted(self._bindings):
            b = self._bindings[address]
            if b.state is B.BOUND and b.expires > now:
                out.append(self._public(b))
        return out

    @property
    def leases(self) -> list[ServerLease]:
        """Every BOUND binding (some may have expired since the last
        :meth:`handle_timeout`), by address."""
        bound = [b for b in self._bindings.values() if b.state is B.BOUND]
        return [self._public(b) for b in sorted(bound, key=lambda b: b.address)]

    def _public(self, b: _Binding) -> ServerLease:
        cid = b.client[3:].hex() if b.client.startswith(b"id:") else None
        return ServerLease(_fmt(b.address), b.mac.hex(":"), cid, b.hostname, b.expires)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {c: getattr(self, c) for c in self._COUNTERS}
        out["bindings"] = sum(1 for b in self._bindings.values() if b.state is B.BOUND)
        out["offers_outstanding"] = len(self._offers)
        out["drops"] = dict(self.drops)
        return out

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        """When the next offer hold, lease or decline quarantine ends."""
        at = math.inf
        for b in self._bindings.values():
            if b.state in _HELD and b.expires < at:
                at = b.expires
        return None if at == math.inf else at

    def handle_timeout(self, now: float) -> None:
        for b in self._bindings.values():
            if b.state not in _HELD or b.expires > now:
                continue
            if b.state is B.BOUND:
                self.leases_expired += 1
                log.debug("lease of %s expired", _fmt(b.address))
            if b.state is B.OFFERED:
                self._offer_ended(b.address)
            else:
                self.generation += 1
            b.state = B.EXPIRED

    # -- persistence -----------------------------------------------------------------------
    def snapshot(self, now: float) -> dict[str, Any]:
        """The lease database as a JSON-able dict: every binding but open offers, with the
        seconds left (``remaining``) of those still in force."""
        entries = []
        for b in self._bindings.values():
            if b.state is B.OFFERED:
                continue
            entry: dict[str, Any] = {
                "address": _fmt(b.address),
                "client": b.client.hex(),
                "mac": b.mac.hex(":"),
                "state": b.state.value,
                "hostname": b.hostname,
            }
            if b.state in _HELD:
                entry["remaining"] = max(b.expires - now, 0.0)
            entries.append(entry)
        return {"version": SNAPSHOT_VERSION, "leases": entries}

    def restore(self, data: Mapping[str, Any], now: float, *, elapsed: float = 0.0) -> int:
        """Load a :meth:`snapshot` (taken ``elapsed`` seconds ago), replacing the database;
        entries that are malformed or outside every pool's network are skipped (counted as
        the ``restore_bad_entry`` drop). Returns how many entries were loaded.

        Raises:
            ValueError: not a snapshot of a version this server reads.
        """
        if not isinstance(data, Mapping) or data.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not a netstack DHCP lease database (version 1)")
        entries = data.get("leases")
        if not isinstance(entries, list):
            raise ValueError("the lease database has no list of leases")
        self._bindings.clear()
        self._by_client.clear()
        self._offers.clear()
        self._pool_offers.clear()
        self._mac_offers.clear()
        loaded = 0
        for entry in entries:
            binding = self._entry(entry, now, elapsed)
            if binding is None:
                self._drop("restore_bad_entry")
                continue
            self._bindings[binding.address] = binding
            if binding.client and (
                binding.state is B.BOUND or binding.client not in self._by_client
            ):
                self._by_client[binding.client] = binding.address
            loaded += 1
        self.generation += 1
        return loaded

    def _entry(self, entry: Any, now: float, elapsed: float) -> _Binding | None:
        try:
            address = ipaddress.IPv4Address(entry["address"]).packed
            client = bytes.fromhex(entry["client"])
            mac = bytes.fromhex(str(entry["mac"]).replace(":", ""))
            state = BindingState(entry["state"])
            hostname = entry.get("hostname")
            remaining = float(entry.get("remaining", 0.0))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if state is B.OFFERED or len(mac) != 6 or not math.isfinite(remaining):
            return None
        if hostname is not None and not isinstance(hostname, str):
            return None
        if not any(ipaddress.IPv4Address(address) in p.network for p in self.config.pools):
            return None
        expires = now + remaining - elapsed
        if state in _HELD and expires <= now:
            state = B.EXPIRED
        if state in (B.RELEASED, B.EXPIRED):
            expires = min(expires, now)
        return _Binding(address, client, mac, state, expires, hostname)

    # -- messages --------------------------------------------------------------------------
    def receive(self, msg: DhcpMessage | bytes | bytearray | memoryview, now: float) -> list[Reply]:
        """A message arrived on UDP port 67 (parsed, or its bytes); the replies to send."""
        if not isinstance(msg, DhcpMessage):
            try:
                msg = parse(msg)
            except ParseError as exc:
                self._drop(exc.reason)
                return []
        if msg.op != BootOp.REQUEST:
            self._drop("not_request")
            return []
        kind = msg.message_type
        if kind is None:
            self._drop("bootp_unsupported")
            return []
        if msg.htype != 1 or msg.hlen != 6:
            self._drop("unsupported_hardware")
            return []
        cid = msg.options.get(OptionCode.CLIENT_ID)
        if cid is not None and len(cid) < 2:
            self._drop("bad_client_id")  # RFC 2132 9.14: at least 2 bytes
            return []
        client = b"id:" + cid if cid is not None else b"hw:" + msg.chaddr
        pool = self._pool_for(msg)
        if pool is None:
            self._drop("no_pool")
            return []
        try:
            if kind == MessageType.DISCOVER:
                self.discovers += 1
                return self._discover(msg, client, pool, now)
            if kind == MessageType.REQUEST:
                self.requests += 1
                return self._request(msg, client, pool, now)
            if kind == MessageType.DECLINE:
                self.declines += 1
                self._decline(msg, client, now)
                return []
            if kind == MessageType.RELEASE:
                self.releases += 1
                self._release(msg, client, now)
                return []
            if kind == MessageType.INFORM:
                self.informs += 1
                return self._inform(msg, pool)
        except ParseError as exc:
            self._drop(exc.reason)
            return []
        self._drop("unexpected_message_type")
        return []

    def _pool_for(self, msg: DhcpMessage) -> Pool | None:
        """RFC 2131 4.3.1: the network of the relay (``giaddr``), else of the interface the
        message came in on."""
        if msg.giaddr == ZERO:
            return self.local_pool
        relay = ipaddress.IPv4Address(msg.giaddr)
        return next((p for p in self.config.pools if relay in p.network), None)

    def _discover(self, msg: DhcpMessage, client: bytes, pool: Pool, now: float) -> list[Reply]:
        requested = _requested(msg)
        if self._current(client, now) is None:
            self._make_room(pool, msg.chaddr, now)
        address = self._choose(client, msg.chaddr, pool, requested, now)
        if address is None:
            self._drop("pool_exhausted")
            held = self._exhausted_log.due(now)
            if held is not None:
                log.warning("pool %s-%s is exhausted: DISCOVERs go unanswered%s", pool.start,
                            pool.end, _held_note(held))  # fmt: skip
            return []
        b = self._bindings.get(address)
        if b is None or b.client != client or b.state is not B.BOUND:
            # RFC 2131 4.3.1: the offered address is kept for this client for a while.
            self._set(address, client, msg.chaddr, B.OFFERED, now + self.config.offer_hold,
                      _hostname(msg), pool)  # fmt: skip
        lease_time = self._lease_time(pool, msg)
        self.offers_sent += 1
        return [self._reply(msg, MessageType.OFFER, address, pool, lease_time)]

    def _request(self, msg: DhcpMessage, client: bytes, pool: Pool, now: float) -> list[Reply]:
        sid = msg.options.get(OptionCode.SERVER_ID)
        requested = _requested(msg)
        if sid is not None:
            # SELECTING (RFC 2131 4.3.2).
            if sid != self.server_ip:
                # The client took another server's offer: ours is free again.
                current = self._by_client.get(client)
                b = self._bindings.get(current) if current is not None else None
                if b is not None and b.state is B.OFFERED:
                    self._offer_ended(b.address)
                    b.state = B.EXPIRED
                    b.expires = now
                self._drop("other_server_selected")
                return []
            if requested is None:
                requested = msg.ciaddr if msg.ciaddr != ZERO else None
            if requested is None:
                self._drop("missing_requested_address")
                return []
            return self._commit(msg, client, pool, requested, now, "selecting")
        if msg.ciaddr == ZERO:
            # INIT-REBOOT (RFC 2131 4.3.2).
            if requested is None:
                self._drop("missing_requested_address")
                return []
            if ipaddress.IPv4Address(requested) not in pool.network:
                # "If the client's ... requested address is on the wrong network, the
                # server MUST send a DHCPNAK."
                return [self._nak(msg, "wrong network")]
            return self._commit(msg, client, pool, requested, now, "init-reboot")
        # RENEWING (unicast) or REBINDING (broadcast), RFC 2131 4.3.2: ciaddr is the address.
        if ipaddress.IPv4Address(msg.ciaddr) not in pool.network:
            return [self._nak(msg, "wrong network")]
        return self._commit(msg, client, pool, msg.ciaddr, now, "renewing")

    def _commit(
        self, msg: DhcpMessage, client: bytes, pool: Pool, address: bytes, now: float,
        how: str,
    ) -> list[Reply]:  # fmt: skip
        """ACK ``address`` for ``client`` if it may have it; else NAK (or, when this server
        knows nothing of the client and is not authoritative, stay silent)."""
        current = self._current(client, now)
        if current is not None and current != address:
            return [self._nak(msg, f"{_fmt(address)} is not your address")]
        if current is None and not self._allocatable(address, client, msg.chaddr, pool, now):
            if self._taken(address, client, msg.chaddr, now):
                return [self._nak(msg, f"{_fmt(address)} is in use")]
            if not self.config.authoritative and how != "selecting":
                self._drop("unknown_client")
                return []
            return [self._nak(msg, f"{_fmt(address)} is not available")]
        lease_time = self._lease_time(pool, msg)
        expires = math.inf if lease_time == 0xFFFFFFFF else now + lease_time
        self._set(address, client, msg.chaddr, B.BOUND, expires, _hostname(msg))
        self.generation += 1
        self.acks_sent += 1
        log.debug("%s: %s bound to %s", how, _fmt(address), msg.chaddr.hex(":"))
        return [self._reply(msg, MessageType.ACK, address, pool, lease_time)]

    def _decline(self, msg: DhcpMessage, client: bytes, now: float) -> None:
        sid = msg.options.get(OptionCode.SERVER_ID)
        if sid is not None and sid != self.server_ip:
            self._drop("other_server_declined")
            return
        address = _requested(msg)
        b = self._bindings.get(address) if address is not None else None
        if b is None or b.client != client or b.state not in (B.OFFERED, B.BOUND):
            self._drop("decline_unknown")
            return
        # RFC 2131 4.3.3: "the server MUST mark the network address as not available".
        held = self._decline_log.due(now)
        if held is not None:
            log.warning("%s declined by %s: in use on the link%s", _fmt(b.address),
                        b.mac.hex(":"), _held_note(held))  # fmt: skip
        if b.state is B.OFFERED:
            self._offer_ended(b.address)
        b.state = B.DECLINED
        b.expires = now + self.config.decline_hold
        b.client = b""
        if self._by_client.get(client) == b.address:
            del self._by_client[client]
        self.generation += 1

    def _release(self, msg: DhcpMessage, client: bytes, now: float) -> None:
        sid = msg.options.get(OptionCode.SERVER_ID)
        if sid is not None and sid != self.server_ip:
            self._drop("other_server_released")
            return
        b = self._bindings.get(msg.ciaddr)
        if b is None or b.client != client or b.state is not B.BOUND:
            self._drop("release_unknown")
            return
        # RFC 2131 4.3.4: the address is free; the client is remembered (4.3.1 (b)).
        b.state = B.RELEASED
        b.expires = now
        self.generation += 1

    def _inform(self, msg: DhcpMessage, pool: Pool) -> list[Reply]:
        # RFC 2131 4.3.5: configuration only: no yiaddr, no lease time, to ciaddr.
        if msg.ciaddr == ZERO:
            self._drop("inform_without_ciaddr")
            return []
        self.acks_sent += 1
        return [self._reply(msg, MessageType.ACK, ZERO, pool, None)]

    # -- allocation ------------------------------------------------------------------------
    def _current(self, client: bytes, now: float) -> bytes | None:
        """The address offered or bound to ``client`` now."""
        address = self._by_client.get(client)
        if address is None:
            return None
        b = self._bindings.get(address)
        if b is None or b.client != client or b.state not in (B.OFFERED, B.BOUND):
            return None
        return address if b.expires > now else None

    def _taken(self, address: bytes, client: bytes, mac: bytes, now: float) -> bool:
        """Whether ``address`` belongs to someone else now (a binding, an offer, a
        quarantine, or a reservation)."""
        reserved = self._reserved_by_ip.get(address)
        if reserved is not None and reserved != mac:
            return True
        b = self._bindings.get(address)
        return b is not None and b.state in _HELD and b.expires > now and b.client != client

    def _allocatable(
        self, address: bytes, client: bytes, mac: bytes, pool: Pool, now: float
    ) -> bool:
        if self._taken(address, client, mac, now):
            return False
        if self._reserved_by_ip.get(address) == mac:
            return ipaddress.IPv4Address(address) in pool.network
        return address in pool and self._usable(address, pool)

    def _usable(self, address: bytes, pool: Pool) -> bool:
        ip = ipaddress.IPv4Address(address)
        net = pool.network
        if address == self.server_ip:
            return False
        if net.prefixlen < 31 and ip in (net.network_address, net.broadcast_address):
            return False
        return True

    def _choose(
        self, client: bytes, mac: bytes, pool: Pool, requested: bytes | None, now: float
    ) -> bytes | None:
        """RFC 2131 4.3.1's order of preference."""
        reserved = self.config.reservations.get(mac)
        if reserved is not None and self._allocatable(reserved, client, mac, pool, now):
            return reserved
        current = self._current(client, now)
        if current is not None:
            return current
        previous = self._by_client.get(client)
        if previous is not None and self._allocatable(previous, client, mac, pool, now):
            return previous
        if requested is not None and self._allocatable(requested, client, mac, pool, now):
            return requested
        return self._fresh(client, mac, pool, now)

    def _fresh(self, client: bytes, mac: bytes, pool: Pool, now: float) -> bytes | None:
        first, last = int(pool.start), int(pool.end)
        size = last - first + 1
        key = first
        start = self._cursor.get(key)
        if start is None:
            start = self._rng.randrange(0, size) if self._rng is not None else 0
        oldest: tuple[float, bytes] | None = None
        for step in range(size):
            offset = (start + step) % size
            address = (first + offset).to_bytes(4, "big")
            if address in self._reserved_by_ip or not self._usable(address, pool):
                continue
            b = self._bindings.get(address)
            if b is None:
                self._cursor[key] = (offset + 1) % size
                return address
            if b.state in _HELD and b.expires > now:
                continue
            if oldest is None or b.expires < oldest[0]:
                oldest = (b.expires, address)
        return oldest[1] if oldest is not None else None

    def _set(
        self, address: bytes, client: bytes, mac: bytes, state: BindingState, expires: float,
        hostname: str | None, pool: Pool | None = None,
    ) -> None:  # fmt: skip
        old = self._by_client.get(client)
        if old is not None and old != address:
            prior = self._bindings.get(old)
            if prior is not None and prior.client == client and prior.state is B.OFFERED:
                self._offer_ended(old)
                prior.state = B.EXPIRED  # a stale offer of another address
        b = self._bindings.get(address)
        if b is not None and b.client and b.client != client:
            if self._by_client.get(b.client) == address:
                del self._by_client[b.client]
        self._offer_ended(address)
        self._bindings[address] = _Binding(address, client, mac, state, expires, hostname)
        self._by_client[client] = address
        if state is B.OFFERED and pool is not None:
            key = int(pool.start)
            self._offers[address] = (key, mac)
            self._pool_offers.setdefault(key, {})[address] = None
            self._mac_offers.setdefault(mac, {})[address] = None

    # -- bounded offers --------------------------------------------------------------------
    def _offer_ended(self, address: bytes) -> None:
        """``address`` is no longer offered (bound, let go, expired, declined)."""
        entry = self._offers.pop(address, None)
        if entry is None:
            return
        key, mac = entry
        by_pool = self._pool_offers.get(key)
        if by_pool is not None:
            by_pool.pop(address, None)
            if not by_pool:
                del self._pool_offers[key]
        by_mac = self._mac_offers.get(mac)
        if by_mac is not None:
            by_mac.pop(address, None)
            if not by_mac:
                del self._mac_offers[mac]

    def _make_room(self, pool: Pool, mac: bytes, now: float) -> None:
        """Before a new offer: let go of the oldest offer of ``mac`` at its bound, and of the
        oldest offer of ``pool`` at its bound."""
        held = self._mac_offers.get(mac)
        if held is not None and len(held) >= self.config.max_offers_per_mac:
            self._evict(next(iter(held)), now)
        held = self._pool_offers.get(int(pool.start))
        if held is not None and len(held) >= self._offer_bound(pool):
            self._evict(next(iter(held)), now)

    def _offer_bound(self, pool: Pool) -> int:
        if self.config.max_offers is not None:
            return self.config.max_offers
        return max(1, (int(pool.end) - int(pool.start) + 1) // 2)

    def _evict(self, address: bytes, now: float) -> None:
        self._offer_ended(address)
        b = self._bindings.get(address)
        if b is not None and b.state is B.OFFERED:
            # Free again, and the last to be reused (see _fresh: the oldest free first).
            b.state = B.EXPIRED
            b.expires = now
            self.offers_evicted += 1

    def _lease_time(self, pool: Pool, msg: DhcpMessage) -> int:
        """The pool's lease time, or the shorter one the client asked for (RFC 2131 4.3.1),
        no shorter than ``min_lease_time``."""
        asked = msg.options.get(OptionCode.LEASE_TIME)
        if asked is None:
            return pool.lease_time
        try:
            wanted = decode_u32(asked)
        except ParseError:
            self._drop("bad_option_51")
            return pool.lease_time
        floor = min(self.config.min_lease_time, pool.lease_time)
        return max(min(wanted, pool.lease_time), floor)

    # -- replies ---------------------------------------------------------------------------
    def _reply(
        self, msg: DhcpMessage, kind: MessageType, yiaddr: bytes, pool: Pool,
        lease_time: int | None,
    ) -> Reply:  # fmt: skip
        opts: dict[int, bytes] = {OptionCode.MESSAGE_TYPE: bytes((kind,))}
        opts[OptionCode.SERVER_ID] = self.server_ip
        if lease_time is not None:
            # RFC 2131 table 3: lease time MUST be in OFFER and ACK (not for INFORM); T1 and
            # T2 as RFC 2131 4.4.5's defaults.
            opts[OptionCode.LEASE_TIME] = encode_u32(lease_time)
            if lease_time != 0xFFFFFFFF:
                opts[OptionCode.RENEWAL_TIME] = encode_u32(lease_time // 2)
                opts[OptionCode.REBINDING_TIME] = encode_u32(lease_time * 7 // 8)
        opts[OptionCode.SUBNET_MASK] = prefix_to_mask(pool.network.prefixlen)
        if pool.router is not None:
            opts[OptionCode.ROUTER] = pool.router.packed
        if pool.dns_servers:
            opts[OptionCode.DNS_SERVERS] = encode_ips([d.packed for d in pool.dns_servers])
        if pool.domain is not None:
            opts[OptionCode.DOMAIN_NAME] = pool.domain.encode("ascii")
        wanted = msg.options.get(OptionCode.PARAMETER_REQUEST_LIST)
        for code, value in pool.options.items():
            # RFC 2131 4.3.1: the options the client asked for; all of them for a client that
            # sent no list.
            if wanted is None or code in wanted:
                opts.setdefault(code, bytes(value))
        cid = msg.options.get(OptionCode.CLIENT_ID)
        if cid is not None:
            opts[OptionCode.CLIENT_ID] = cid  # RFC 6842: echoed
        ciaddr = msg.ciaddr if kind == MessageType.ACK else ZERO
        reply = DhcpMessage(
            op=BootOp.REPLY, xid=msg.xid, chaddr=msg.chaddr, options=opts, htype=msg.htype,
            hlen=msg.hlen, flags=msg.flags, ciaddr=ciaddr, yiaddr=yiaddr, giaddr=msg.giaddr,
        )  # fmt: skip
        return self._address_reply(msg, build(reply), yiaddr, nak=False)

    def _nak(self, msg: DhcpMessage, why: str) -> Reply:
        self.naks_sent += 1
        log.debug("NAK to %s: %s", msg.chaddr.hex(":"), why)
        opts: dict[int, bytes] = {
            OptionCode.MESSAGE_TYPE: bytes((MessageType.NAK,)),
            OptionCode.SERVER_ID: self.server_ip,
            OptionCode.MESSAGE: why.encode("ascii", errors="replace"),
        }
        cid = msg.options.get(OptionCode.CLIENT_ID)
        if cid is not None:
            opts[OptionCode.CLIENT_ID] = cid
        flags = msg.flags
        if msg.giaddr != ZERO:
            flags |= DhcpFlags.BROADCAST  # RFC 2131 4.3.2: for the relay to broadcast it
        reply = DhcpMessage(
            op=BootOp.REPLY, xid=msg.xid, chaddr=msg.chaddr, options=opts, htype=msg.htype,
            hlen=msg.hlen, flags=flags, giaddr=msg.giaddr,
        )  # fmt: skip
        return self._address_reply(msg, build(reply), ZERO, nak=True)

    def _address_reply(self, msg: DhcpMessage, payload: bytes, yiaddr: bytes, nak: bool) -> Reply:
        """RFC 2131 4.1, "If the 'giaddr' field ... is non-zero" and on."""
        if msg.giaddr != ZERO:
            return Reply(payload, msg.giaddr, None, False, SERVER_PORT)
        if nak:
            return Reply(payload, BROADCAST, None, True)
        if msg.ciaddr != ZERO:
            return Reply(payload, msg.ciaddr, None, False)
        if msg.broadcast or yiaddr == ZERO:
            return Reply(payload, BROADCAST, None, True)
        return Reply(payload, yiaddr, msg.chaddr, False)

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        log.debug("drop (%s)", reason)


def _requested(msg: DhcpMessage) -> bytes | None:
    value = msg.options.get(OptionCode.REQUESTED_ADDRESS)
    return decode_ip(value) if value is not None else None


def _hostname(msg: DhcpMessage) -> str | None:
    value = msg.options.get(OptionCode.HOSTNAME)
    if not value:
        return None
    return value.rstrip(b"\x00").decode("ascii", errors="replace")[:255]
