"""The neighbour cache: neighbour states, timers and the queue of packets awaiting resolution,
for ARP (IPv4 next hops) and IPv6 neighbour discovery alike.

RFC 4861 7.3 defines the machine (neighbour unreachability detection) for IPv6; for ARP,
RFC 826 gives the packet exchange and the merge rule, RFC 1122 2.3.2.1 asks for a cache
timeout and for flushing stale entries ("unicast poll" of an entry in use, like Linux's
NUD states), and RFC 1122 2.3.2.2 for queueing at least one packet per unresolved
destination, and the states are RFC 4861 7.3.2's (which IPv4 stacks such as Linux use for
ARP too):

    INCOMPLETE --reply--> REACHABLE --reachable_time--> STALE --used--> DELAY --5 s--> PROBE
        |                    ^  ^---confirmed (reply, or upper-layer progress)---+       |
        +--max_requests--> (gone) <----stale_time (unused)--- STALE   (gone) <--max_probes

STALE, DELAY and PROBE entries are still used to send; DELAY waits for an upper layer (TCP
seeing acknowledgements) to confirm the neighbour before PROBE re-asks it by unicast.
Everything is bounded: entries, packets per entry, and packets over all entries.
"""

from __future__ import annotations

import collections
import heapq
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, NamedTuple, TypeVar

__all__ = [
    "AddressConflict",
    "NeighbourCache",
    "NeighbourConfig",
    "NeighbourFailed",
    "NeighbourResolved",
    "NeighbourState",
    "Request",
]

P = TypeVar("P")


class NeighbourState(Enum):
    INCOMPLETE = "incomplete"
    REACHABLE = "reachable"
    STALE = "stale"
    DELAY = "delay"
    PROBE = "probe"


#: The states :meth:`NeighbourCache.resolve` asks about for every packet, as module constants
#: (on Python 3.11 every ``NeighbourState.X`` goes through ``EnumType.__getattr__``'s slow
#: path).
_REACHABLE, _STALE, _INCOMPLETE = (
    NeighbourState.REACHABLE,
    NeighbourState.STALE,
    NeighbourState.INCOMPLETE,
)


@dataclass(frozen=True, slots=True)
class NeighbourConfig:
    #: Time a confirmed entry is trusted (Linux: base_reachable_time 30 s).
    reachable_time: float = 30.0
    #: Time an unused STALE entry is kept (Linux: gc_stale_time 60 s).
    stale_time: float = 60.0
    #: Time in DELAY before probing (RFC 4861 10: DELAY_FIRST_PROBE_TIME).
    delay_first_probe_time: float = 5.0
    #: Interval between requests (RFC 1122 2.3.2.1: at most one per second per address).
    retrans_time: float = 1.0
    #: Broadcast requests before giving up on an address (Linux: mcast_solicit 3).
    max_requests: int = 3
    #: Unicast probes of a STALE entry before dropping it (Linux: ucast_solicit 3).
    max_probes: int = 3
    max_entries: int = 1024
    #: Packets queued per unresolved address (RFC 1122 2.3.2.2 asks for at least one).
    pending_per_entry: int = 128
    pending_total: int = 1024


class Request(NamedTuple):
    """Ask for ``target``'s link address (an ARP request, or a Neighbor Solicitation): by
    broadcast or multicast when ``mac`` is None, else by unicast to ``mac``."""

    target: bytes
    mac: bytes | None


class NeighbourResolved(NamedTuple, Generic[P]):
    ip: bytes
    mac: bytes
    packets: list[P]


class NeighbourFailed(NamedTuple, Generic[P]):
    ip: bytes
    packets: list[P]


class AddressConflict(NamedTuple):
    ip: bytes
    mac: bytes


@dataclass(slots=True)
class _Entry(Generic[P]):
    ip: bytes
    state: NeighbourState
    deadline: float
    mac: bytes | None = None
    tries: int = 0
    updated: float = 0.0
    pending: collections.deque[P] = field(default_factory=collections.deque)


class NeighbourCache(Generic[P]):
    """The cache machine: ``resolve`` on the send path, ``update`` when an ARP packet or a
    neighbour discovery message teaches an address, ``handle_timeout`` when :meth:`poll_at`
    passes; outputs are drained with :meth:`requests_to_send` and :meth:`next_event`."""

    def __init__(self, config: NeighbourConfig | None = None) -> None:
        self.config = config or NeighbourConfig()
        self._entries: dict[bytes, _Entry[P]] = {}
        self._timers: list[tuple[float, bytes]] = []
        self._requests: list[Request] = []
        self._events: collections.deque[NeighbourResolved[P] | NeighbourFailed[P]] = (
            collections.deque()
        )
        self._pending = 0
        self.drops: dict[str, int] = {}

    # -- queries ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ip: bytes) -> bool:
        return ip in self._entries

    def state(self, ip: bytes) -> NeighbourState | None:
        e = self._entries.get(ip)
        return e.state if e is not None else None

    def entries(self) -> list[tuple[bytes, bytes | None, NeighbourState]]:
        """(ip, mac, state) of every entry."""
        return [(e.ip, e.mac, e.state) for e in self._entries.values()]

    @property
    def pending_packets(self) -> int:
        return self._pending

    # -- inputs ----------------------------------------------------------------------------
    def resolve(self, ip: bytes, packet: P, now: float) -> bytes | None:
        """The link address for ``ip``, or None after queueing ``packet`` until it is known."""
        e = self._entries.get(ip)
        if e is not None:
            state = e.state
            if state is _REACHABLE:  # the common case, asked for every packet sent
                return e.mac
            if state is _STALE:
                # RFC 4861 7.3.3 / RFC 1122 2.3.2.1 (unicast poll): keep sending to the old
                # address, and check it is still right unless something confirms it first.
                e.state = NeighbourState.DELAY
                self._arm(e, now + self.config.delay_first_probe_time)
                return e.mac
            if state is not _INCOMPLETE:
                return e.mac
            self._queue(e, packet)
            return None
        e = self._new(ip, NeighbourState.INCOMPLETE, now)
        e.tries = 1
        self._arm(e, now + self.config.retrans_time)
        self._requests.append(Request(ip, None))
        self._queue(e, packet)
        return None

    def update(self, ip: bytes, mac: bytes, now: float, *, solicited: bool, create: bool) -> None:
        """An ARP packet (or a neighbour discovery message) said ``ip`` is at ``mac``.

        Args:
            solicited: it was a reply addressed to us, which confirms reachability.
            create: add an entry when there is none (RFC 826: only when we are the target).
        """
        e = self._entries.get(ip)
        if e is None:
            if not create:
                return
            e = self._new(ip, NeighbourState.STALE, now)
        was_incomplete = e.state is NeighbourState.INCOMPLETE
        changed = e.mac != mac
        e.mac = mac
        e.updated = now
        if solicited:
            e.state = NeighbourState.REACHABLE
            e.tries = 0
            self._arm(e, now + self.config.reachable_time)
        elif changed or was_incomplete or e.state is NeighbourState.STALE:
            # An address learnt without confirmation is STALE (RFC 4861 7.2.5/7.3.3).
            e.state = NeighbourState.STALE
            e.tries = 0
            self._arm(e, now + self.config.stale_time)
        if was_incomplete:
            packets = list(e.pending)
            self._pending -= len(packets)
            e.pending.clear()
            self._events.append(NeighbourResolved(ip, mac, packets))

    def advert(
        self, ip: bytes, mac: bytes | None, now: float, *, solicited: bool, override: bool
    ) -> None:
        """A Neighbor Advertisement for ``ip`` (RFC 4861 7.2.5); ``mac`` is its Target
        Link-Layer Address option, if any. Never creates an entry."""
        e = self._entries.get(ip)
        if e is None:
            return  # RFC 4861 7.2.5: no entry, silently discard
        if e.state is NeighbourState.INCOMPLETE:
            if mac is None:
                return
            self.update(ip, mac, now, solicited=solicited, create=False)
            return
        changed = mac is not None and mac != e.mac
        if not override and changed:
            # A different address without Override: only casts doubt on a REACHABLE entry.
            if e.state is NeighbourState.REACHABLE:
                e.state = NeighbourState.STALE
                self._arm(e, now + self.config.stale_time)
            return
        if mac is not None:
            e.mac = mac
            e.updated = now
        if solicited:
            e.state = NeighbourState.REACHABLE
            e.tries = 0
            self._arm(e, now + self.config.reachable_time)
        elif changed:
            e.state = NeighbourState.STALE
            self._arm(e, now + self.config.stale_time)

    def confirm(self, ip: bytes, now: float) -> None:
        """An upper layer saw forward progress with ``ip`` (RFC 4861 7.3.1: new data
        acknowledged by TCP), which confirms the entry as REACHABLE."""
        e = self._entries.get(ip)
        if e is not None and e.mac is not None and e.state is not NeighbourState.REACHABLE:
            e.state = NeighbourState.REACHABLE
            e.tries = 0
            self._arm(e, now + self.config.reachable_time)

    def add_static(self, ip: bytes, mac: bytes, now: float) -> None:
        """Treat ``ip`` as reachable at ``mac`` now (it will be re-checked like any other)."""
        self.update(ip, mac, now, solicited=True, create=True)

    def forget(self, ip: bytes) -> None:
        """Remove an entry; its queued packets are reported as failed."""
        e = self._entries.pop(ip, None)
        if e is not None:
            self._fail(e)

    # -- outputs ---------------------------------------------------------------------------
    def requests_to_send(self) -> list[Request]:
        out, self._requests = self._requests, []
        return out

    def next_event(self) -> NeighbourResolved[P] | NeighbourFailed[P] | None:
        return self._events.popleft() if self._events else None

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, ip = timers[0]
            e = self._entries.get(ip)
            if e is not None and e.deadline == deadline:
                return deadline
            heapq.heappop(timers)
        return None

    def handle_timeout(self, now: float) -> None:
        c = self.config
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, ip = heapq.heappop(timers)
            e = self._entries.get(ip)
            if e is None or e.deadline != deadline:
                continue
            if e.state is NeighbourState.INCOMPLETE:
                if e.tries < c.max_requests:
                    e.tries += 1
                    self._arm(e, now + c.retrans_time)
                    self._requests.append(Request(ip, None))
                else:
                    del self._entries[ip]
                    self._drop("unresolved", len(e.pending))
                    self._fail(e)
            elif e.state is NeighbourState.REACHABLE:
                e.state = NeighbourState.STALE
                self._arm(e, now + c.stale_time)
            elif e.state is NeighbourState.DELAY:
                e.state = NeighbourState.PROBE
                e.tries = 1
                self._arm(e, now + c.retrans_time)
                self._requests.append(Request(ip, e.mac))
            elif e.state is NeighbourState.PROBE:
                if e.tries < c.max_probes:
                    e.tries += 1
                    self._arm(e, now + c.retrans_time)
                    self._requests.append(Request(ip, e.mac))
                else:
                    del self._entries[ip]
            else:  # STALE and unused for stale_time
                del self._entries[ip]

    # -- internals -------------------------------------------------------------------------
    def _drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.drops[reason] = self.drops.get(reason, 0) + n

    def _arm(self, e: _Entry[P], deadline: float) -> None:
        e.deadline = deadline
        heapq.heappush(self._timers, (deadline, e.ip))

    def _new(self, ip: bytes, state: NeighbourState, now: float) -> _Entry[P]:
        if len(self._entries) >= self.config.max_entries:
            self._evict()
        e: _Entry[P] = _Entry(ip, state, now, updated=now)
        self._entries[ip] = e
        return e

    def _evict(self) -> None:
        """Make room: the least recently updated resolved entry goes first; only when every
        entry is unresolved does the oldest unresolved one go (its packets fail)."""
        victims = [e for e in self._entries.values() if e.state is not NeighbourState.INCOMPLETE]
        pool = victims or list(self._entries.values())
        victim = min(pool, key=lambda x: x.updated)
        del self._entries[victim.ip]
        self._drop("evicted")
        self._fail(victim)

    def _fail(self, e: _Entry[P]) -> None:
        if e.pending:
            packets = list(e.pending)
            self._pending -= len(packets)
            e.pending.clear()
            self._events.append(NeighbourFailed(e.ip, packets))

    def _queue(self, e: _Entry[P], packet: P) -> None:
        c = self.config
        if len(e.pending) >= c.pending_per_entry:
            # The oldest packet goes, as in Linux (unres_qlen): the newest is likely the
            # most useful (a retransmission of the oldest, say).
            e.pending.popleft()
            self._pending -= 1
            self._drop("queue_full")
        elif self._pending >= c.pending_total:
            self._drop("queue_full")
            return
        e.pending.append(packet)
        self._pending += 1
