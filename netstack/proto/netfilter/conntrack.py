"""Connection tracking: the table of flows a router has seen, their state and time-outs.

A flow (an :class:`Entry`) has two tuples, as Linux's conntrack has: ``orig``, the
(protocol, source, source port, destination, destination port) of its first datagram as it
arrived, and ``reply``, what an answer looks like on the wire: the original tuple reversed,
with the NAT's translations applied (a masqueraded flow's answers come back to the external
address and port). Both are keys of one dict, so every datagram of the flow, in either
direction, is found with one lookup of the tuple it carries; which key matched says its
direction. The translation a datagram needs follows from the two tuples alone (see
:meth:`Entry.target`).

TCP flows follow the connection's states (RFC 9293 3.3.2) closely enough to time them out as
RFC 5382 (5) asks: REQ-5, an established connection is not dropped before 2 hours and 4
minutes of silence, a partially open or closing one not before 4 minutes; a reset one goes
after 10 seconds. A simultaneous open (RFC 9293 3.5, Figure 7) is a valid way in (RFC 5382
4.2.2, REQ-2). A TCP segment that is not a SYN cannot start a flow (it would be translated
mid-stream, with ports its peer never agreed to) and is INVALID. UDP flows last 2 minutes
until answered and 5 once answered (RFC 4787 4.3, REQ-5: not less than 2 minutes, 5 or more
RECOMMENDED); ICMP echo flows 30 seconds; other protocols, tracked by addresses alone, 10
minutes.

The table is bounded (``max_flows``); expiry is a heap of deadlines swept a bounded number of
entries at a time, with an entry's deadline moved later by each datagram without touching the
heap (the sweep re-files entries whose deadline moved). When the table is full a new flow
first evicts the oldest flow never answered (Linux's "early drop": a SYN flood or a scan
costs itself, not established flows); when every flow has been answered the new one is
refused and counted, and the table takes new flows again as old ones end.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP

__all__ = ["ORIG", "REPLY", "ConntrackConfig", "CtState", "Entry", "FlowTable", "TcpState"]

ORIG = 0
REPLY = 1

# TCP flag bits (RFC 9293 3.1).
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10

Key = tuple[int, bytes, int, bytes, int]


class CtState(enum.IntEnum):
    """What a datagram is to connection tracking, as a packet filter rule names it."""

    NEW = 0
    ESTABLISHED = 1
    RELATED = 2
    INVALID = 3


class TcpState(enum.IntEnum):
    """A tracked TCP connection's state, as seen from between its ends."""

    SYN_SENT = 1
    SYN_RECEIVED = 2
    ESTABLISHED = 3
    FIN_WAIT = 4  # one side sent FIN
    LAST_ACK = 5  # both sides sent FIN, the last one not yet acknowledged
    TIME_WAIT = 6
    CLOSED = 7  # reset


@dataclass(frozen=True, slots=True)
class ConntrackConfig:
    """Bounds and time-outs (seconds) of the flow table."""

    #: Most flows tracked at once; a new flow beyond it evicts an unanswered one or is refused.
    max_flows: int = 16384
    #: Entries the expiry sweep looks at per call (the work one timer tick may do).
    sweep_batch: int = 256
    #: RFC 5382 (5) REQ-5: not less than 2 hours 4 minutes.
    tcp_established: float = 7440.0
    #: RFC 5382 (5) REQ-5: partially open or closing, not less than 4 minutes.
    tcp_transitory: float = 240.0
    tcp_closed: float = 10.0
    #: RFC 4787 (4.3) REQ-5: a UDP mapping lasts at least 2 minutes, 5 RECOMMENDED.
    udp_unreplied: float = 120.0
    udp_replied: float = 300.0
    icmp: float = 30.0
    other: float = 600.0
    #: Fragments after the first are matched to their flow for this long after the first.
    fragment: float = 30.0
    max_fragments: int = 1024

    def __post_init__(self) -> None:
        if self.max_flows < 1 or self.sweep_batch < 1 or self.max_fragments < 1:
            raise ValueError("conntrack bounds must be positive")


class Entry:
    """One tracked flow."""

    __slots__ = (
        "orig", "reply", "state", "replied", "expires", "dead", "dnat", "snat", "nat_done",
        "mapping", "in_mapping", "hairpin", "fins", "filed",
    )  # fmt: skip

    def __init__(self, orig: Key, reply: Key, state: int, expires: float) -> None:
        self.orig = orig
        self.reply = reply
        #: A :class:`TcpState` for TCP; 0 for the others.
        self.state = state
        #: Seen a datagram in the reply direction (the flow is ESTABLISHED from then on).
        self.replied = False
        self.expires = expires
        self.dead = False
        #: The destination was translated (port forward), or the source (masquerade).
        self.dnat = False
        self.snat = False
        #: The source-NAT decision was made (at the first POSTROUTING or INPUT).
        self.nat_done = False
        #: The NAT's mapping this flow's source was translated to, and the one that let it in
        #: (endpoint-independent filtering): held while the flow lives.
        self.mapping: Any = None
        self.in_mapping: Any = None
        #: The interface index whose external address a hairpinned flow is to come from.
        self.hairpin = 0
        #: Which directions sent a FIN (bit 0 original, bit 1 reply).
        self.fins = 0
        #: The deadline of the entry's live item in the expiry heap (others are stale).
        self.filed = -1.0

    def target(self, direction: int) -> Key:
        """What a datagram in ``direction`` looks like once translated: the other
        direction's tuple reversed."""
        p, s, sp, d, dp = self.reply if direction == ORIG else self.orig
        return (p, d, dp, s, sp)

    def rewrites_destination(self, direction: int) -> bool:
        """Whether datagrams in ``direction`` have their destination rewritten (at
        PREROUTING and OUTPUT), as opposed to their source (at POSTROUTING and INPUT)."""
        return self.dnat if direction == ORIG else self.snat

    def rewrites_source(self, direction: int) -> bool:
        return self.snat if direction == ORIG else self.dnat


class FlowTable:
    """The tracked flows, their expiry and the accounting of both (sans-IO: time is passed
    in)."""

    def __init__(self, config: ConntrackConfig, on_removed: Callable[[Entry], None]) -> None:
        self.config = config
        self.flows: dict[Key, Entry] = {}
        #: Flows not yet answered, oldest first (the candidates for early drop).
        self._unreplied: dict[Entry, None] = {}
        self._heap: list[tuple[float, int, Entry]] = []
        self._seq = 0
        self._on_removed = on_removed
        #: Later fragments' flows: (v6, src, dst, protocol, identification) -> (entry,
        #: direction, deadline), in arrival order.
        self.fragments: dict[tuple[bool, bytes, bytes, int, int], tuple[Entry, int, float]] = {}
        self.count = 0
        self.created = 0
        self.expired = 0
        self.early_drops = 0
        self.refused = 0
        self.closed = 0

    # -- lookup and life cycle ----------------------------------------------------------------
    def timeout(self, entry: Entry) -> float:
        """The idle time-out of ``entry`` in its present state."""
        c = self.config
        proto = entry.orig[0]
        if proto == PROTO_TCP:
            s = entry.state
            if s == TcpState.ESTABLISHED:
                return c.tcp_established
            if s == TcpState.CLOSED:
                return c.tcp_closed
            return c.tcp_transitory
        if proto == PROTO_UDP:
            return c.udp_replied if entry.replied else c.udp_unreplied
        if proto == PROTO_ICMP or proto == PROTO_ICMPV6:
            return c.icmp
        return c.other

    def has_room(self, now: float) -> bool:
        """Make room for one flow if the table is full (expired ones first, then the oldest
        unanswered one); False when there is none to be had."""
        if self.count < self.config.max_flows:
            return True
        self.expire(now)
        if self.count < self.config.max_flows:
            return True
        for victim in self._unreplied:
            self.early_drops += 1
            self.remove(victim)
            return True
        self.refused += 1
        return False

    def add(self, entry: Entry, now: float) -> bool:
        """Insert a new flow under both its tuples (the caller made room). False, and nothing
        inserted, when either tuple is taken (a clash of translations)."""
        flows = self.flows
        if entry.orig in flows or entry.reply in flows or entry.orig == entry.reply:
            return False
        flows[entry.orig] = entry
        flows[entry.reply] = entry
        self._unreplied[entry] = None
        self.count += 1
        self.created += 1
        entry.expires = now + self.timeout(entry)
        self._file(entry)
        return True

    def rekey_reply(self, entry: Entry, reply: Key) -> bool:
        """Give ``entry`` a new reply tuple (source NAT decided). False if it is taken."""
        flows = self.flows
        if reply == entry.reply:
            return True
        if reply in flows or reply == entry.orig:
            return False
        if flows.get(entry.reply) is entry:
            del flows[entry.reply]
        entry.reply = reply
        flows[reply] = entry
        return True

    def remove(self, entry: Entry) -> None:
        """Forget a flow (its heap item goes when the sweep meets it)."""
        if entry.dead:
            return
        entry.dead = True
        flows = self.flows
        if flows.get(entry.orig) is entry:
            del flows[entry.orig]
        if flows.get(entry.reply) is entry:
            del flows[entry.reply]
        self._unreplied.pop(entry, None)
        self.count -= 1
        self._on_removed(entry)

    def mark_replied(self, entry: Entry) -> None:
        entry.replied = True
        self._unreplied.pop(entry, None)

    def touch(self, entry: Entry, now: float) -> None:
        """A datagram of the flow went by: its time-out starts again (a later deadline is
        found by the sweep; an earlier one, after a state change, is filed now)."""
        expires = entry.expires = now + self.timeout(entry)
        if expires < entry.filed:
            self._file(entry)

    def _file(self, entry: Entry) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (entry.expires, self._seq, entry))
        entry.filed = entry.expires

    # -- expiry -------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        """The earliest moment a flow may have expired (possibly early: a flow whose deadline
        moved is re-filed when the sweep meets it)."""
        heap = self._heap
        return heap[0][0] if heap else None

    def expire(self, now: float) -> None:
        """Remove up to ``sweep_batch`` flows whose time has come."""
        heap = self._heap
        budget = self.config.sweep_batch
        while heap and budget and heap[0][0] <= now:
            budget -= 1
            filed, _, entry = heapq.heappop(heap)
            if entry.dead or filed != entry.filed:
                continue  # a stale item
            if entry.expires > now:
                self._file(entry)
                continue
            self.expired += 1
            self.remove(entry)
        frags = self.fragments
        budget = self.config.sweep_batch
        while frags and budget:
            budget -= 1
            key = next(iter(frags))
            if frags[key][2] > now and not frags[key][0].dead:
                break
            del frags[key]

    # -- fragments ----------------------------------------------------------------------------
    def note_fragment(
        self, key: tuple[bool, bytes, bytes, int, int], entry: Entry, direction: int, now: float
    ) -> None:
        """The first fragment of a datagram went by: its later fragments belong to ``entry``."""
        frags = self.fragments
        if key not in frags and len(frags) >= self.config.max_fragments:
            del frags[next(iter(frags))]
        frags[key] = (entry, direction, now + self.config.fragment)

    def fragment_flow(
        self, key: tuple[bool, bytes, bytes, int, int], now: float
    ) -> tuple[Entry, int] | None:
        hit = self.fragments.get(key)
        if hit is None or hit[0].dead or hit[2] < now:
            return None
        return hit[0], hit[1]

    # -- TCP ----------------------------------------------------------------------------------
    def tcp_step(self, entry: Entry, direction: int, flags: int) -> bool:
        """Move a TCP flow's state for one segment; False for a segment that does not fit
        the connection (INVALID, state unchanged)."""
        s = entry.state
        if flags & RST:
            entry.state = TcpState.CLOSED
            self.closed += 1
            return True
        syn = flags & SYN
        if s == TcpState.SYN_SENT:
            if direction == ORIG:
                return bool(syn) and not flags & ACK  # a retransmitted SYN
            if syn:
                # SYN-ACK, or a SYN alone: simultaneous open (RFC 9293 3.5, RFC 5382 REQ-2).
                entry.state = TcpState.SYN_RECEIVED
                return True
            return False
        if syn:
            if s in (TcpState.TIME_WAIT, TcpState.CLOSED) and direction == ORIG and not flags & ACK:
                entry.state = TcpState.SYN_SENT  # the ports reused for a new connection
                entry.fins = 0
                return True
            # Retransmitted SYN or SYN-ACK while the handshake completes; else out of place.
            return s == TcpState.SYN_RECEIVED
        if s == TcpState.SYN_RECEIVED:
            if flags & ACK:
                entry.state = TcpState.ESTABLISHED
            if flags & FIN:
                entry.fins |= 1 << direction
                entry.state = TcpState.FIN_WAIT
            return True
        if flags & FIN:
            entry.fins |= 1 << direction
            if entry.fins == 3:
                if s in (TcpState.ESTABLISHED, TcpState.FIN_WAIT):
                    entry.state = TcpState.LAST_ACK
            elif s == TcpState.ESTABLISHED:
                entry.state = TcpState.FIN_WAIT
            return True
        if s == TcpState.LAST_ACK and flags & ACK:
            entry.state = TcpState.TIME_WAIT
        return True

    # -- accounting ---------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        c = self.config
        return {
            "flows": self.count,
            "max_flows": c.max_flows,
            "unreplied": len(self._unreplied),
            "created": self.created,
            "expired": self.expired,
            "early_drops": self.early_drops,
            "refused": self.refused,
            "tcp_resets": self.closed,
            "fragments_tracked": len(self.fragments),
            "timeouts": {
                "tcp_established": c.tcp_established,
                "tcp_transitory": c.tcp_transitory,
                "tcp_closed": c.tcp_closed,
                "udp_unreplied": c.udp_unreplied,
                "udp_replied": c.udp_replied,
                "icmp": c.icmp,
                "other": c.other,
            },
        }

    def reset_stats(self) -> None:
        self.created = self.expired = self.early_drops = self.refused = self.closed = 0
