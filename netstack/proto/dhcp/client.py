"""The DHCP client machine (RFC 2131 4.4), with the address check of RFC 5227 2.1 and the
client identifiers of RFC 4361.

States and transitions follow RFC 2131 figure 5::

     INIT-REBOOT --REQUEST--> REBOOTING --ACK--> (probe) --> BOUND
         INIT --DISCOVER--> SELECTING --OFFER/REQUEST--> REQUESTING --ACK--> (probe) --> BOUND
     BOUND --T1--> RENEWING --T2--> REBINDING --lease over--> INIT
     RENEWING, REBINDING --ACK--> BOUND;  NAK anywhere --> INIT;  probe conflict --> DECLINE,
     INIT (ten seconds later a new DISCOVER, RFC 2131 3.1 step 5)

- Retransmission (RFC 2131 4.1): 4 s before the first retransmission, doubled each time up to
  64 s, each delay randomised by a uniform -1..+1 s. DISCOVERs are repeated until an OFFER
  comes; REQUESTs in REQUESTING and REBOOTING a bounded number of times, then back to INIT.
- Renewal (RFC 2131 4.4.5): T1 and T2 default to 0.5 and 0.875 of the lease; in RENEWING and
  REBINDING a REQUEST is repeated after half the time left until T2 (or the end of the lease),
  but at least 60 s apart. The lease is counted from the time the REQUEST was first sent
  (RFC 2131 4.4.1).
- The check of an acknowledged address (RFC 2131 3.1 step 5, RFC 5227 2.1.1): after a random
  0..PROBE_WAIT delay, PROBE_NUM ARP probes PROBE_MIN..PROBE_MAX apart, then ANNOUNCE_WAIT
  without conflict binds the address. A conflict reported with :meth:`DhcpClient.probe_result`
  sends a DECLINE. The driver sends the probes (:class:`ProbeAddress` actions) and watches
  ARP.

The machine is sans-IO: inputs take ``now``; outputs are drained with
:meth:`DhcpClient.datagrams_to_send`, :meth:`DhcpClient.actions_to_send` and
:meth:`DhcpClient.next_event`; :meth:`DhcpClient.poll_at` is the next deadline. Replies are
accepted only when their ``xid`` and ``chaddr`` are this client's; everything refused is
counted in :attr:`DhcpClient.drops`.
"""

from __future__ import annotations

import collections
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
    client_id,
    decode_classless_routes,
    decode_ip,
    decode_ips,
    decode_text,
    decode_u16,
    decode_u32,
    duid_ll,
    encode_u16,
    mask_to_prefix,
    parse,
)

__all__ = [
    "TRANSITIONS",
    "Action",
    "AddressDeclined",
    "DhcpClient",
    "DhcpClientConfig",
    "DhcpState",
    "Event",
    "INFINITE_LEASE",
    "Lease",
    "LeaseAcquired",
    "LeaseExpired",
    "LeaseLost",
    "LeaseRenewed",
    "Outgoing",
    "ProbeAddress",
    "default_client_id",
]

log = logging.getLogger("netstack.dhcp.client")

ZERO = b"\x00\x00\x00\x00"
BROADCAST = b"\xff\xff\xff\xff"
#: RFC 2131 3.3: a lease of 0xffffffff seconds is infinite.
INFINITE_LEASE = 0xFFFFFFFF
#: RFC 2132 5.1: the smallest Interface MTU.
MIN_MTU = 68
#: RFC 2132 9.10: the smallest Maximum DHCP Message Size.
MIN_MESSAGE_SIZE = 576
#: What the client asks for (RFC 2132 9.8). RFC 3442: a client that supports Classless Static
#: Routes and sends a Parameter Request List MUST ask for both 121 and Router (3).
DEFAULT_REQUESTED = (
    OptionCode.SUBNET_MASK,
    OptionCode.CLASSLESS_STATIC_ROUTES,
    OptionCode.ROUTER,
    OptionCode.DNS_SERVERS,
    OptionCode.DOMAIN_NAME,
    OptionCode.INTERFACE_MTU,
    OptionCode.BROADCAST_ADDRESS,
)
#: RFC 5227 1.1: MAX_CONFLICTS and RATE_LIMIT_INTERVAL.
MAX_CONFLICTS = 10
RATE_LIMIT_INTERVAL = 60.0


class DhcpState(Enum):
    """RFC 2131 figure 5."""

    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"
    INIT_REBOOT = "INIT-REBOOT"
    REBOOTING = "REBOOTING"


S = DhcpState
#: The legal transitions (RFC 2131 figure 5); INIT is also where :meth:`DhcpClient.release`
#: leaves the client, from any state.
TRANSITIONS: dict[DhcpState, frozenset[DhcpState]] = {
    S.INIT: frozenset({S.SELECTING, S.INIT_REBOOT}),
    S.INIT_REBOOT: frozenset({S.REBOOTING, S.INIT}),
    S.REBOOTING: frozenset({S.BOUND, S.INIT}),
    S.SELECTING: frozenset({S.REQUESTING, S.INIT}),
    S.REQUESTING: frozenset({S.BOUND, S.INIT}),
    S.BOUND: frozenset({S.RENEWING, S.INIT}),
    S.RENEWING: frozenset({S.BOUND, S.REBINDING, S.INIT}),
    S.REBINDING: frozenset({S.BOUND, S.INIT}),
}
_HOLDING = frozenset({S.BOUND, S.RENEWING, S.REBINDING})


class RandomLike(Protocol):
    def random(self) -> float: ...
    def uniform(self, a: float, b: float, /) -> float: ...
    def getrandbits(self, k: int, /) -> int: ...


def default_client_id(mac: bytes) -> bytes:
    """RFC 4361 6.1: type 255, an IAID, and a DUID. The DUID is a DUID-LL of ``mac`` and the
    IAID its last four bytes, so the identifier is the same on every start."""
    return client_id(int.from_bytes(mac[-4:], "big"), duid_ll(mac))


@dataclass(frozen=True, slots=True)
class DhcpClientConfig:
    """Tunables of :class:`DhcpClient`; the defaults are the RFCs'."""

    #: Host Name (option 12) to send.
    hostname: str | None = None
    #: Client Identifier (option 61); None: RFC 4361's, from the MAC (:func:`default_client_id`).
    client_id: bytes | None = None
    #: Options to ask for besides the usual ones (Parameter Request List, RFC 2132 9.8).
    requested_options: tuple[int, ...] = ()
    #: More options to send in DISCOVER and REQUEST messages (code -> value).
    extra_options: Mapping[int, bytes] = field(default_factory=dict)
    #: Check the address with ARP probes before using it (RFC 2131 3.1 step 5, RFC 5227).
    arp_probe: bool = True
    #: RFC 5227 1.1 PROBE_WAIT, PROBE_NUM, PROBE_MIN, PROBE_MAX, ANNOUNCE_WAIT (seconds).
    probe_wait: float = 1.0
    probe_num: int = 3
    probe_min: float = 1.0
    probe_max: float = 2.0
    announce_wait: float = 2.0
    #: RFC 2131 4.1: the first retransmission delay, its cap, and the randomisation.
    retransmit_base: float = 4.0
    retransmit_max: float = 64.0
    retransmit_jitter: float = 1.0
    #: REQUESTs sent in REQUESTING (and in REBOOTING) before going back to INIT.
    request_attempts: int = 4
    reboot_attempts: int = 2
    #: Seconds to collect OFFERs after the first (0: take the first, RFC 2131 4.4.1 allows
    #: either).
    select_wait: float = 0.0
    #: RFC 2131 4.4.1 suggests a random 1..10 s wait before the first DISCOVER; the default
    #: (no wait) is what most clients do on a single interface.
    init_delay: float = 0.0
    #: RFC 2131 3.1 step 5: wait at least ten seconds after a DECLINE.
    decline_wait: float = 10.0
    #: RFC 2131 4.4.5: the least time between REQUESTs in RENEWING and REBINDING.
    renew_min_interval: float = 60.0
    #: Ask for broadcast replies (RFC 2131 4.1): only for hosts that cannot receive unicast
    #: before they have an address.
    broadcast_flag: bool = False
    #: Maximum DHCP Message Size to announce (RFC 2132 9.10), the link MTU.
    max_message_size: int = 1500

    def __post_init__(self) -> None:
        if self.probe_num < 1 or self.request_attempts < 1 or self.reboot_attempts < 1:
            raise ValueError("probe_num, request_attempts and reboot_attempts must be >= 1")
        if not 0 <= self.probe_min <= self.probe_max or self.probe_wait < 0:
            raise ValueError("probe times must satisfy 0 <= probe_min <= probe_max")
        if self.announce_wait < 0 or self.select_wait < 0 or self.init_delay < 0:
            raise ValueError("waits must not be negative")
        if not 0 < self.retransmit_base <= self.retransmit_max or self.retransmit_jitter < 0:
            raise ValueError("retransmission needs 0 < base <= max and jitter >= 0")
        if self.renew_min_interval <= 0 or self.decline_wait < 0:
            raise ValueError("renew_min_interval must be positive")
        if self.max_message_size < MIN_MESSAGE_SIZE or self.max_message_size > 0xFFFF:
            raise ValueError(f"max_message_size must be {MIN_MESSAGE_SIZE}..65535")
        if self.hostname is not None and not 0 < len(self.hostname.encode("ascii")) <= 255:
            raise ValueError("hostname must be 1..255 ASCII characters")
        if self.client_id is not None and not 2 <= len(self.client_id) <= 255:
            raise ValueError("a client identifier is 2..255 bytes (RFC 2132 9.14)")
        for code in (*self.requested_options, *self.extra_options):
            if not 0 < code < 255:
                raise ValueError(f"option code {code} out of range")


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as the server gave it; addresses are strings (``"198.18.0.100"``).

    ``lease_time``, ``t1`` and ``t2`` are seconds from ``acquired_at`` (the loop time the
    REQUEST was sent); a ``lease_time`` of :data:`INFINITE_LEASE` never ends. ``routes`` are
    the classless static routes (RFC 3442) as ``("a.b.c.d/len", "gateway")``; when there are
    any, RFC 3442 says the Router option is ignored, so :attr:`router` is then only
    informative. ``options`` holds every option of the ACK, by code.
    """

    address: str
    prefix_len: int
    server_id: str
    lease_time: int
    t1: float
    t2: float
    acquired_at: float
    router: str | None = None
    dns_servers: tuple[str, ...] = ()
    domain: str | None = None
    mtu: int | None = None
    routes: tuple[tuple[str, str], ...] = ()
    options: Mapping[int, bytes] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @property
    def interface(self) -> str:
        """``"a.b.c.d/len"``."""
        return f"{self.address}/{self.prefix_len}"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Interface(self.interface).network

    @property
    def effective_routes(self) -> tuple[tuple[str, str | None], ...]:
        """The routes to install, as ``("a.b.c.d/len", gateway or None for on-link)``: the
        classless static routes when there are any (RFC 3442: the Router option is then
        ignored), else a default route via the first router."""
        if self.routes:
            # A router of 0.0.0.0 reaches the destination directly, on the link.
            return tuple((net, None if gw == "0.0.0.0" else gw) for net, gw in self.routes)
        if self.router is not None:
            return (("0.0.0.0/0", self.router),)
        return ()

    @property
    def infinite(self) -> bool:
        return self.lease_time == INFINITE_LEASE

    @property
    def expires_at(self) -> float:
        return math.inf if self.infinite else self.acquired_at + self.lease_time

    @property
    def t1_at(self) -> float:
        return math.inf if self.infinite else self.acquired_at + self.t1

    @property
    def t2_at(self) -> float:
        return math.inf if self.infinite else self.acquired_at + self.t2

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for remembering the lease across restarts)."""
        return {
            "address": self.address,
            "prefix_len": self.prefix_len,
            "server_id": self.server_id,
            "lease_time": self.lease_time,
            "t1": self.t1,
            "t2": self.t2,
            "acquired_at": self.acquired_at,
            "router": self.router,
            "dns_servers": list(self.dns_servers),
            "domain": self.domain,
            "mtu": self.mtu,
            "routes": [list(r) for r in self.routes],
            "options": {str(k): v.hex() for k, v in self.options.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lease:
        """The inverse of :meth:`to_dict`.

        Raises:
            ValueError: a missing or malformed field.
        """
        try:
            return cls(
                address=str(ipaddress.IPv4Address(data["address"])),
                prefix_len=int(data["prefix_len"]),
                server_id=str(ipaddress.IPv4Address(data["server_id"])),
                lease_time=int(data["lease_time"]),
                t1=float(data["t1"]),
                t2=float(data["t2"]),
                acquired_at=float(data["acquired_at"]),
                router=data.get("router"),
                dns_servers=tuple(str(s) for s in data.get("dns_servers", ())),
                domain=data.get("domain"),
                mtu=data.get("mtu"),
                routes=tuple((str(n), str(g)) for n, g in data.get("routes", ())),
                options={int(k): bytes.fromhex(v) for k, v in data.get("options", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a lease: {exc}") from None


# -- outputs ---------------------------------------------------------------------------------


class Outgoing(NamedTuple):
    """A DHCP message to send from UDP port 68 to port 67: from ``src`` (0.0.0.0 before the
    client has an address) to ``dst`` (255.255.255.255 or the server); ``broadcast`` means
    a link-layer broadcast."""

    payload: bytes
    src: bytes
    dst: bytes
    broadcast: bool


class ProbeAddress(NamedTuple):
    """Send one ARP probe for ``ip`` (sender address 0.0.0.0, RFC 5227 2.1.1) and report any
    ARP packet from another host that claims ``ip`` or probes for it, with
    :meth:`DhcpClient.probe_result`, while the client's :attr:`~DhcpClient.probing` is
    ``ip``."""

    ip: bytes


Action = ProbeAddress


class LeaseAcquired(NamedTuple):
    """A new lease: configure its address, routes and servers."""

    lease: Lease


class LeaseRenewed(NamedTuple):
    """The lease was extended (its options may have changed)."""

    lease: Lease


class LeaseExpired(NamedTuple):
    """The lease ended unrenewed (RFC 2131 4.4.5): stop using its address."""

    lease: Lease


class LeaseLost(NamedTuple):
    """A NAK (RFC 2131 3.1 step 5, 4.4.5) ended the exchange; ``lease`` is the lease that
    must stop being used at once, if the client held one."""

    reason: str
    lease: Lease | None


class AddressDeclined(NamedTuple):
    """The offered address was in use on the link; a DECLINE was sent."""

    address: str


Event = LeaseAcquired | LeaseRenewed | LeaseExpired | LeaseLost | AddressDeclined


def _fmt(ip: bytes) -> str:
    return str(ipaddress.IPv4Address(ip))


def _classful_prefix(ip: bytes) -> int:
    """The natural mask, for a server that sent no Subnet Mask (RFC 2131 leaves it open)."""
    return 8 if ip[0] < 128 else 16 if ip[0] < 192 else 24


class DhcpClient:
    """The client machine for one interface.

    Inputs: :meth:`start`, :meth:`receive`, :meth:`probe_result`, :meth:`renew`,
    :meth:`release`, and :meth:`handle_timeout` once :meth:`poll_at` has passed. Outputs:
    :meth:`datagrams_to_send`, :meth:`actions_to_send`, :meth:`next_event`.
    """

    _COUNTERS = (
        "discovers_sent",
        "requests_sent",
        "declines_sent",
        "releases_sent",
        "offers_received",
        "acks_received",
        "naks_received",
        "probes_sent",
        "conflicts",
    )

    def __init__(self, mac: bytes, config: DhcpClientConfig | None, rng: RandomLike) -> None:
        """
        Args:
            mac: the interface's Ethernet address (``chaddr``).
            config: tunables (:class:`DhcpClientConfig`); None for the defaults.
            rng: randomness for transaction ids and delays (``random.Random``, seeded for a
                repeatable run, or ``random.SystemRandom``).

        Raises:
            ValueError: a MAC that is not 6 bytes.
        """
        if len(mac) != 6:
            raise ValueError(f"an Ethernet address is 6 bytes, got {len(mac)}")
        self.mac = bytes(mac)
        self.config = c = config or DhcpClientConfig()
        self.client_id = c.client_id if c.client_id is not None else default_client_id(mac)
        self._rng = rng
        self._state = S.INIT
        self._started = False
        self.drops: dict[str, int] = {}
        self.discovers_sent = self.requests_sent = self.declines_sent = 0
        self.releases_sent = self.offers_received = self.acks_received = 0
        self.naks_received = self.probes_sent = self.conflicts = 0
        self._xid = 0
        #: When the current exchange began (RFC 2131 2: ``secs``).
        self._began = 0.0
        #: When the first REQUEST of the current exchange went out (RFC 2131 4.4.1).
        self._requested_at = 0.0
        self._attempts = 0
        self._next_at: float | None = None
        self._select_until: float | None = None
        self._offers: list[DhcpMessage] = []
        self._server: bytes = ZERO
        self._offered: bytes = ZERO
        self._hint: bytes | None = None
        self._lease: Lease | None = None
        self._address: bytes = ZERO
        self._pending: Lease | None = None
        self._probing: bytes | None = None
        self._probes_left = 0
        self._naks = 0
        self._conflict_count = 0
        self._datagrams: list[Outgoing] = []
        self._actions: list[Action] = []
        self._events: collections.deque[Event] = collections.deque()

    # -- queries ---------------------------------------------------------------------------
    @property
    def state(self) -> DhcpState:
        return self._state

    @property
    def lease(self) -> Lease | None:
        """The lease in use (BOUND, RENEWING, REBINDING), else None."""
        return self._lease

    @property
    def probing(self) -> bytes | None:
        """The address being checked with ARP probes, if any."""
        return self._probing

    @property
    def xid(self) -> int:
        return self._xid

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {c: getattr(self, c) for c in self._COUNTERS}
        out["state"] = self._state.value
        out["drops"] = dict(self.drops)
        return out

    # -- user inputs -----------------------------------------------------------------------
    def start(self, now: float, remembered: Lease | None = None) -> None:
        """Begin: with ``remembered``, ask for that address again (INIT-REBOOT, RFC 2131
        3.2); else discover a server (INIT, RFC 2131 3.1).

        Raises:
            RuntimeError: already started (and not released since).
        """
        if self._started:
            raise RuntimeError("the DHCP client is already running")
        self._started = True
        self._naks = 0
        if remembered is not None:
            self._hint = ipaddress.IPv4Address(remembered.address).packed
            self._set_state(S.INIT_REBOOT)
            self._reboot(now)
        else:
            delay = self._rng.uniform(0.0, self.config.init_delay) if self.config.init_delay else 0
            self._next_at = now + delay
            if not delay:
                self._discover(now)

    def release(self, now: float) -> None:
        """Stop; with a lease, give it back with a RELEASE (RFC 2131 4.4.6). The driver then
        stops using the address. :meth:`start` may be called again afterwards."""
        lease = self._lease
        if lease is not None and self._state in _HOLDING:
            self._xid = self._new_xid()
            self._began = now
            msg = self._message(MessageType.RELEASE, now, ciaddr=self._address)
            msg.options[OptionCode.SERVER_ID] = self._server
            self.releases_sent += 1
            self._send(msg, self._address, self._server)
        self._lease = None
        self._address = ZERO
        self._pending = None
        self._probing = None
        self._next_at = None
        self._select_until = None
        self._started = False
        if self._state is not S.INIT:
            self._set_state(S.INIT)

    def renew(self, now: float) -> None:
        """Renew the lease now rather than at T1 (as ``udhcpc`` does on SIGUSR1): BOUND moves
        to RENEWING early; in any other state this does nothing."""
        if self._state is S.BOUND and self._lease is not None:
            self._renew(now)

    def probe_result(self, ip: bytes, conflict: bool, now: float) -> None:
        """The outcome of the ARP check of ``ip``: ``conflict`` when another host answered a
        probe or probed for it (RFC 5227 2.1.1); False accepts it now (a driver without
        ARP)."""
        if self._probing is None or ip != self._probing or self._pending is None:
            self._drop("probe_result_unexpected")
            return
        if conflict:
            self._decline(now)
        else:
            self._bind(self._pending, now)

    # -- packets ---------------------------------------------------------------------------
    def receive(self, msg: DhcpMessage | bytes | bytearray | memoryview, now: float) -> None:
        """A datagram arrived on UDP port 68 (parsed, or its bytes)."""
        if not isinstance(msg, DhcpMessage):
            try:
                msg = parse(msg)
            except ParseError as exc:
                self._drop(exc.reason)
                return
        if msg.op != BootOp.REPLY:
            self._drop("not_reply")
            return
        if msg.htype != 1 or msg.chaddr != self.mac:
            self._drop("wrong_chaddr")  # another client's (RFC 2131 4.4.1)
            return
        kind = msg.message_type
        if kind is None:
            self._drop("not_dhcp")  # a BOOTP reply
            return
        if not self._started or msg.xid != self._xid:
            self._drop("wrong_xid")
            return
        state = self._state
        if kind == MessageType.OFFER:
            self.offers_received += 1
            if state is S.SELECTING:
                self._offer(msg, now)
            else:
                self._drop("late_offer")
        elif kind == MessageType.ACK:
            self.acks_received += 1
            if self._probing is not None or state not in (
                S.REQUESTING, S.REBOOTING, S.RENEWING, S.REBINDING,
            ):  # fmt: skip
                self._drop("unexpected_ack")
            elif not self._from_server(msg):
                self._drop("wrong_server")
            else:
                self._ack(msg, now)
        elif kind == MessageType.NAK:
            self.naks_received += 1
            if self._probing is not None or state not in (
                S.REQUESTING, S.REBOOTING, S.RENEWING, S.REBINDING,
            ):  # fmt: skip
                self._drop("unexpected_nak")
            elif not self._from_server(msg):
                self._drop("wrong_server")
            else:
                self._nak(msg, now)
        else:
            self._drop("unexpected_message_type")

    def _from_server(self, msg: DhcpMessage) -> bool:
        """In REQUESTING only the selected server may answer (RFC 2131 4.3.2: the others take
        the REQUEST as a decline of their offers)."""
        if self._state is not S.REQUESTING:
            return True
        sid = msg.options.get(OptionCode.SERVER_ID)
        return sid is None or sid == self._server

    # -- outputs ---------------------------------------------------------------------------
    def datagrams_to_send(self) -> list[Outgoing]:
        out, self._datagrams = self._datagrams, []
        return out

    def actions_to_send(self) -> list[Action]:
        out, self._actions = self._actions, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        """The next deadline: a retransmission, a probe step, the end of offer collection,
        T1, T2 or the end of the lease."""
        at = math.inf if self._next_at is None else self._next_at
        if self._select_until is not None:
            at = min(at, self._select_until)
        lease = self._lease
        if lease is not None:
            if self._state is S.BOUND:
                at = min(at, lease.t1_at)
            elif self._state is S.RENEWING:
                at = min(at, lease.t2_at)
            at = min(at, lease.expires_at)
        return None if at == math.inf else at

    def handle_timeout(self, now: float) -> None:
        if not self._started:
            return
        state = self._state
        lease = self._lease
        if lease is not None and now >= lease.expires_at:
            self._expire(lease, now)
            return
        if lease is not None and state is S.BOUND and now >= lease.t1_at:
            self._renew(now)
            return
        if lease is not None and state is S.RENEWING and now >= lease.t2_at:
            self._rebind(now)
            return
        if self._select_until is not None and now >= self._select_until:
            self._select_until = None
            if self._offers:
                self._choose(now)
                return
        if self._next_at is None or now < self._next_at:
            return
        self._next_at = None
        if self._probing is not None:
            self._probe_step(now)
        elif state is S.INIT:
            self._discover(now)
        elif state is S.SELECTING:
            self._attempts += 1
            self._send_discover(now)
        elif state is S.REQUESTING:
            if self._attempts >= self.config.request_attempts:
                self._restart(now, "no answer to REQUEST")
            else:
                self._send_select_request(now)
        elif state is S.REBOOTING:
            if self._attempts >= self.config.reboot_attempts:
                self._restart(now, "no answer to INIT-REBOOT REQUEST")
            else:
                self._send_reboot_request(now)
        elif state is S.RENEWING:
            self._send_renew_request(now, unicast=True)
        elif state is S.REBINDING:
            self._send_renew_request(now, unicast=False)

    # -- internals: states -----------------------------------------------------------------
    def _set_state(self, new: DhcpState) -> None:
        old = self._state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"illegal DHCP transition {old.value} -> {new.value}")
        log.debug("%s: %s -> %s", self.mac.hex(":"), old.value, new.value)
        self._state = new

    def _new_xid(self) -> int:
        # RFC 2131 4.1: xids chosen so that clients rarely share one: random, never 0.
        return self._rng.getrandbits(32) or 1

    def _backoff(self) -> float:
        """RFC 2131 4.1: 4, 8, 16, ... 64 s, each randomised by -1..+1 s."""
        c = self.config
        base = min(c.retransmit_base * float(1 << min(self._attempts, 30)), c.retransmit_max)
        jitter = self._rng.uniform(-c.retransmit_jitter, c.retransmit_jitter)
        return max(base + jitter, c.retransmit_base / 4)

    def _restart(self, now: float, why: str, delay: float = 0.0) -> None:
        """Back to INIT: a new DISCOVER after ``delay``."""
        log.debug("%s: restarting (%s)", self.mac.hex(":"), why)
        self._offers = []
        self._select_until = None
        self._pending = None
        self._probing = None
        if self._state is not S.INIT:
            self._set_state(S.INIT)
        self._next_at = now + delay
        if not delay:
            self._discover(now)

    def _discover(self, now: float) -> None:
        self._xid = self._new_xid()
        self._began = now
        self._attempts = 0
        self._offers = []
        self._set_state(S.SELECTING)
        self._send_discover(now)

    def _send_discover(self, now: float) -> None:
        msg = self._message(MessageType.DISCOVER, now)
        if self._hint is not None:
            # RFC 2131 4.4.1: the client MAY suggest the address it had.
            msg.options[OptionCode.REQUESTED_ADDRESS] = self._hint
        self._request_options(msg)
        self.discovers_sent += 1
        self._send(msg, ZERO, BROADCAST)
        self._next_at = now + self._backoff()

    def _offer(self, msg: DhcpMessage, now: float) -> None:
        sid = msg.options.get(OptionCode.SERVER_ID)
        if sid is None or len(sid) != 4:
            self._drop("missing_server_id")  # RFC 2131 table 3: MUST in an OFFER
            return
        if not _usable(msg.yiaddr):
            self._drop("bad_yiaddr")
            return
        self._offers.append(msg)
        if self.config.select_wait <= 0:
            self._choose(now)
        elif self._select_until is None:
            self._select_until = now + self.config.select_wait

    def _choose(self, now: float) -> None:
        """RFC 2131 4.4.1: pick an offer; the one for the address we asked for, else the
        first."""
        offers = self._offers
        chosen = next((o for o in offers if o.yiaddr == self._hint), offers[0])
        self._offers = []
        self._select_until = None
        self._server = decode_ip(chosen.options[OptionCode.SERVER_ID])
        self._offered = chosen.yiaddr
        self._attempts = 0
        self._requested_at = now
        self._set_state(S.REQUESTING)
        self._send_select_request(now)

    def _send_select_request(self, now: float) -> None:
        # RFC 2131 4.3.2 / table 5: SELECTING: Server Identifier and Requested IP Address,
        # ciaddr 0, the OFFER's xid; broadcast so the other servers see the choice.
        msg = self._message(MessageType.REQUEST, now)
        msg.options[OptionCode.REQUESTED_ADDRESS] = self._offered
        msg.options[OptionCode.SERVER_ID] = self._server
        self._request_options(msg)
        self.requests_sent += 1
        self._send(msg, ZERO, BROADCAST)
        self._next_at = now + self._backoff()
        self._attempts += 1

    def _reboot(self, now: float) -> None:
        self._xid = self._new_xid()
        self._began = now
        self._requested_at = now
        self._attempts = 0
        self._server = ZERO
        self._set_state(S.REBOOTING)
        self._send_reboot_request(now)

    def _send_reboot_request(self, now: float) -> None:
        # RFC 2131 4.3.2 / table 5, INIT-REBOOT: Requested IP Address, no Server Identifier,
        # ciaddr 0, broadcast.
        assert self._hint is not None
        msg = self._message(MessageType.REQUEST, now)
        msg.options[OptionCode.REQUESTED_ADDRESS] = self._hint
        self._request_options(msg)
        self.requests_sent += 1
        self._send(msg, ZERO, BROADCAST)
        self._next_at = now + self._backoff()
        self._attempts += 1

    def _renew(self, now: float) -> None:
        self._set_state(S.RENEWING)
        self._xid = self._new_xid()
        self._began = now
        self._requested_at = now
        self._send_renew_request(now, unicast=True)

    def _rebind(self, now: float) -> None:
        self._set_state(S.REBINDING)
        self._xid = self._new_xid()
        self._began = now
        self._requested_at = now
        self._send_renew_request(now, unicast=False)

    def _send_renew_request(self, now: float, *, unicast: bool) -> None:
        # RFC 2131 4.3.2 / table 5, RENEWING and REBINDING: ciaddr is the address, neither
        # Server Identifier nor Requested IP Address; unicast to the server when renewing,
        # broadcast when rebinding (RFC 2131 4.4.5).
        lease = self._lease
        assert lease is not None
        msg = self._message(MessageType.REQUEST, now, ciaddr=self._address)
        self._request_options(msg)
        self.requests_sent += 1
        self._send(msg, self._address, self._server if unicast else BROADCAST)
        # RFC 2131 4.4.5: half the time left until T2 (or the end), at least 60 s.
        end = lease.t2_at if unicast else lease.expires_at
        wait = max((end - now) / 2, self.config.renew_min_interval)
        self._next_at = min(now + wait, end)

    def _ack(self, msg: DhcpMessage, now: float) -> None:
        try:
            lease = self._lease_from(msg)
        except ParseError as exc:
            self._drop(exc.reason)
            return
        self._naks = 0
        old = self._lease
        if self._state in (S.RENEWING, S.REBINDING) and old is not None:
            if lease.address == old.address:
                self._server = ipaddress.IPv4Address(lease.server_id).packed
                self._lease = lease
                self._next_at = None
                self._set_state(S.BOUND)
                self._events.append(LeaseRenewed(lease))
                return
            # Another address in answer to a renewal: the old one goes, the new one is used.
            self._events.append(LeaseLost("the server moved the lease", old))
            self._lease = None
            self._address = ZERO
            self._set_state(S.BOUND)  # momentarily; _bind sets the new lease
            self._bind(lease, now, check_state=False)
            return
        self._server = ipaddress.IPv4Address(lease.server_id).packed
        if self.config.arp_probe:
            # RFC 2131 3.1 step 5 and 4.4.1: check the address before using it; RFC 5227
            # 2.1.1: first a random 0..PROBE_WAIT wait.
            self._pending = lease
            self._probing = msg.yiaddr
            self._probes_left = self.config.probe_num
            self._next_at = now + self._rng.uniform(0.0, self.config.probe_wait)
        else:
            self._bind(lease, now)

    def _probe_step(self, now: float) -> None:
        c = self.config
        assert self._probing is not None and self._pending is not None
        if self._probes_left > 0:
            self._probes_left -= 1
            self.probes_sent += 1
            self._actions.append(ProbeAddress(self._probing))
            if self._probes_left:
                self._next_at = now + self._rng.uniform(c.probe_min, c.probe_max)
            else:
                self._next_at = now + c.announce_wait  # RFC 5227 2.1.1: ANNOUNCE_WAIT
        else:
            self._bind(self._pending, now)

    def _bind(self, lease: Lease, now: float, *, check_state: bool = True) -> None:
        self._pending = None
        self._probing = None
        self._next_at = None
        self._lease = lease
        self._address = ipaddress.IPv4Address(lease.address).packed
        self._hint = self._address
        self._conflict_count = 0
        if check_state:
            self._set_state(S.BOUND)
        self._events.append(LeaseAcquired(lease))

    def _decline(self, now: float) -> None:
        """RFC 2131 3.1 step 5: the address is in use: DECLINE, then start over after at
        least ten seconds; RFC 5227 2.1.1: after MAX_CONFLICTS, one attempt a minute."""
        assert self._probing is not None
        ip = self._probing
        self.conflicts += 1
        self._conflict_count += 1
        msg = self._message(MessageType.DECLINE, now)
        msg.flags = 0
        msg.options[OptionCode.REQUESTED_ADDRESS] = ip
        msg.options[OptionCode.SERVER_ID] = self._server
        self.declines_sent += 1
        self._send(msg, ZERO, BROADCAST)
        self._events.append(AddressDeclined(_fmt(ip)))
        if self._hint == ip:
            self._hint = None
        wait = self.config.decline_wait
        if self._conflict_count >= MAX_CONFLICTS:
            wait = max(wait, RATE_LIMIT_INTERVAL)
        self._restart(now, f"{_fmt(ip)} is in use", delay=wait)

    def _nak(self, msg: DhcpMessage, now: float) -> None:
        text = msg.options.get(OptionCode.MESSAGE)
        reason = "DHCPNAK" + (f": {decode_text(text)}" if text else "")
        lost = self._lease
        self._lease = None
        self._address = ZERO
        # The address the server refused is not suggested again.
        self._hint = None
        self._events.append(LeaseLost(reason, lost))
        self._naks += 1
        # A server that NAKs every REQUEST would otherwise keep the exchange spinning.
        delay = 0.0
        if self._naks > 1:
            c = self.config
            delay = min(c.retransmit_base * float(1 << min(self._naks - 2, 30)), c.retransmit_max)
        self._restart(now, reason, delay=delay)

    def _expire(self, lease: Lease, now: float) -> None:
        # RFC 2131 4.4.5: the lease is over: stop using the address, back to INIT.
        self._lease = None
        self._address = ZERO
        self._events.append(LeaseExpired(lease))
        self._restart(now, "lease expired")

    # -- internals: messages ---------------------------------------------------------------
    def _message(self, kind: MessageType, now: float, *, ciaddr: bytes = ZERO) -> DhcpMessage:
        c = self.config
        flags = DhcpFlags.BROADCAST if c.broadcast_flag and ciaddr == ZERO else 0
        options: dict[int, bytes] = {OptionCode.MESSAGE_TYPE: bytes((kind,))}
        options[OptionCode.CLIENT_ID] = self.client_id
        if kind in (MessageType.DISCOVER, MessageType.REQUEST):
            options[OptionCode.MAX_MESSAGE_SIZE] = encode_u16(c.max_message_size)
        return DhcpMessage(
            op=BootOp.REQUEST,
            xid=self._xid,
            chaddr=self.mac,
            options=options,
            secs=min(int(now - self._began), 0xFFFF) if now > self._began else 0,
            flags=flags,
            ciaddr=ciaddr,
        )

    def _request_options(self, msg: DhcpMessage) -> None:
        c = self.config
        if c.hostname:
            msg.options[OptionCode.HOSTNAME] = c.hostname.encode("ascii")
        wanted: list[int] = list(DEFAULT_REQUESTED)
        wanted += [code for code in c.requested_options if code not in wanted]
        msg.options[OptionCode.PARAMETER_REQUEST_LIST] = bytes(wanted)
        for code, value in c.extra_options.items():
            msg.options.setdefault(code, bytes(value))

    def _send(self, msg: DhcpMessage, src: bytes, dst: bytes) -> None:
        self._datagrams.append(Outgoing(build(msg), src, dst, dst == BROADCAST))

    def _lease_from(self, msg: DhcpMessage) -> Lease:
        """The lease an ACK describes.

        Raises:
            ParseError: no usable address, no lease time, or a malformed option the lease
                needs; optional options that are malformed are left out (and counted).
        """
        opts = msg.options
        if not _usable(msg.yiaddr):
            raise ParseError("bad_yiaddr", msg.yiaddr.hex())
        raw_time = opts.get(OptionCode.LEASE_TIME)
        if raw_time is None:
            raise ParseError("missing_lease_time")  # RFC 2131 table 3: MUST in an ACK
        lease_time = decode_u32(raw_time)
        raw_sid = opts.get(OptionCode.SERVER_ID)
        server = decode_ip(raw_sid) if raw_sid is not None else self._server
        if server == ZERO:
            raise ParseError("missing_server_id")
        prefix = _classful_prefix(msg.yiaddr)
        if OptionCode.SUBNET_MASK in opts:
            prefix = mask_to_prefix(opts[OptionCode.SUBNET_MASK])
        # RFC 2131 4.4.5: T1 defaults to half the lease, T2 to 0.875 of it.
        t1, t2 = lease_time * 0.5, lease_time * 0.875
        given1 = self._optional(opts, OptionCode.RENEWAL_TIME, decode_u32)
        given2 = self._optional(opts, OptionCode.REBINDING_TIME, decode_u32)
        if given2 is not None and given2 <= lease_time:
            t2 = float(given2)
        if given1 is not None and given1 <= t2:
            t1 = float(given1)
        if t1 > t2:
            t1 = t2
        routers = self._optional(opts, OptionCode.ROUTER, decode_ips) or []
        dns = self._optional(opts, OptionCode.DNS_SERVERS, decode_ips) or []
        domain = None
        if OptionCode.DOMAIN_NAME in opts:
            domain = decode_text(opts[OptionCode.DOMAIN_NAME]) or None
        mtu = self._optional(opts, OptionCode.INTERFACE_MTU, decode_u16)
        if mtu is not None and mtu < MIN_MTU:
            self._drop("bad_option_26")
            mtu = None
        routes = self._optional(opts, OptionCode.CLASSLESS_STATIC_ROUTES, decode_classless_routes)
        return Lease(
            address=_fmt(msg.yiaddr),
            prefix_len=prefix,
            server_id=_fmt(server),
            lease_time=lease_time,
            t1=t1,
            t2=t2,
            acquired_at=self._requested_at,
            router=_fmt(routers[0]) if routers else None,
            dns_servers=tuple(_fmt(d) for d in dns),
            domain=domain,
            mtu=mtu,
            routes=tuple((f"{_fmt(d)}/{w}", _fmt(r)) for d, w, r in routes or ()),
            options=dict(opts),
        )

    def _optional(self, opts: Mapping[int, bytes], code: int, decode: Any) -> Any:
        value = opts.get(code)
        if value is None:
            return None
        try:
            return decode(value)
        except ParseError:
            self._drop(f"bad_option_{code}")
            return None

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        log.debug("%s: drop (%s)", self.mac.hex(":"), reason)


def _usable(ip: bytes) -> bool:
    """An address a host can take: not 0.0.0.0, loopback, multicast, class E or broadcast."""
    return len(ip) == 4 and ip != ZERO and ip[0] not in (0, 127) and ip[0] < 224
