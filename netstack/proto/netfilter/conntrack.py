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
import struct
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

_SEQ_ACK_WIN = struct.Struct("!II2xH")
_M32 = 0xFFFFFFFF
_HALF = 0x80000000
#: The least an ACK may lag behind what its receiver sent, whatever the windows seen (a
#: sender's window may have been larger before the flow's segments were all seen).
_MAX_ACK_WINDOW = 66000
#: RFC 7323 (2.3): a shift above 14 is taken as 14.
_MAX_SHIFT = 14
# Offsets into Entry.seen for one direction.
_END, _MAXEND, _MAXWIN, _SHIFT, _MAXACK = 0, 1, 2, 3, 4


def _window_shift(d: bytearray, at: int, stop: int) -> int:
    """The Window Scale option's shift in a SYN's options ``d[at:stop]`` (RFC 7323 2.2),
    -1 when there is none."""
    while at < stop:
        kind = d[at]
        if kind == 0:  # End of Option List (RFC 9293 3.2)
            break
        if kind == 1:  # No-Operation
            at += 1
            continue
        if at + 1 >= stop:
            break
        size = d[at + 1]
        if size < 2:
            break
        if kind == 3 and size == 3 and at + 2 < stop:
            return min(d[at + 2], _MAX_SHIFT)
        at += size
    return -1


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
    #: A later fragment that arrives before its first one is held this long (at most
    #: ``max_held_fragments`` of them, ``max_held_fragment_bytes`` in all) for the first
    #: one to place it (RFC 4787 11, REQ-14).
    fragment_hold: float = 2.0
    max_held_fragments: int = 64
    max_held_fragment_bytes: int = 98304
    #: RFC 5382 REQ-4: an unsolicited inbound SYN to a masqueraded address is not answered
    #: for this long (a simultaneous open's own SYN may yet go out); at most this many held.
    syn_hold: float = 6.0
    max_held_syns: int = 256

    def __post_init__(self) -> None:
        if (
            self.max_flows < 1 or self.sweep_batch < 1 or self.max_fragments < 1
            or self.max_held_syns < 0 or self.syn_hold < 6.0 or self.fragment_hold <= 0
            or self.max_held_fragments < 0 or self.max_held_fragment_bytes < 0
        ):  # fmt: skip
            raise ValueError(
                "conntrack bounds must be positive, syn_hold at least 6 s (RFC 5382 REQ-4)"
            )


class Entry:
    """One tracked flow."""

    __slots__ = (
        "orig", "reply", "state", "replied", "expires", "dead", "dnat", "snat", "nat_done",
        "mapping", "in_mapping", "hairpin", "fins", "filed", "seen", "rst_pending",
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
        #: TCP's tracked sequence space: for direction d, ``seen[5d:5d+5]`` is (end, maxend,
        #: maxwin, window shift or -1 when the SYN had no option, highest ACK sent); None
        #: until the first SYN.
        self.seen: list[int] | None = None
        #: An in-window reset that did not match exactly went by (RFC 5961 3.2): 1 + the
        #: direction it came from; 0 when none.
        self.rst_pending = 0

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
        self.out_of_window = 0
        self.resets_unconfirmed = 0

    # -- lookup and life cycle ----------------------------------------------------------------
    def timeout(self, entry: Entry) -> float:
        """The idle time-out of ``entry`` in its present state."""
        c = self.config
        proto = entry.orig[0]
        if proto == PROTO_TCP:
            s = entry.state
            if s == TcpState.CLOSED or entry.rst_pending:
                return c.tcp_closed
            if s == TcpState.ESTABLISHED:
                return c.tcp_established
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
    def tcp_segment(self, entry: Entry, direction: int, d: bytearray, l4: int, end_at: int,
                    flags: int) -> bool:  # fmt: skip
        """Check one TCP segment (header at ``d[l4:]``, the datagram ending at ``end_at``)
        against the flow's tracked windows and states, and move both; False for a segment
        that does not fit (INVALID: nothing changed)."""
        seq, ack, win = _SEQ_ACK_WIN.unpack_from(d, l4 + 4)
        doff = (d[l4 + 12] >> 4) << 2
        length = end_at - l4 - doff
        if length < 0:
            length = 0
        if flags & SYN:
            length += 1
        if flags & FIN:
            length += 1
        end = (seq + length) & _M32
        seen = entry.seen
        state = entry.state
        o = 5 * direction
        r = 5 - o
        syn = flags & SYN
        # A SYN (re)starts its direction's sequence space while the handshake is on, and
        # both when the ports are reused for a new connection (RFC 9293 3.5).
        reuse = (
            syn and direction == ORIG and not flags & ACK
            and (state == TcpState.TIME_WAIT or state == TcpState.CLOSED)
        )  # fmt: skip
        init = bool(syn) and (
            seen is None or reuse or state == TcpState.SYN_SENT or state == TcpState.SYN_RECEIVED
        )
        if seen is not None and not reuse:
            if init:
                if flags & ACK and seen[r + _MAXWIN] and not _ack_fits(seen, r, ack):
                    self.out_of_window += 1
                    return False  # a SYN-ACK acknowledging what was never sent
            elif seen[o + _MAXWIN]:
                if not _in_window(seen, o, r, seq, end, ack if flags & ACK else -1):
                    self.out_of_window += 1
                    return False
                if flags & RST:
                    return self._tcp_reset(entry, direction, seq)
            elif flags & RST:
                # RFC 9293 (3.10.7.3): in SYN-SENT a reset is acceptable when it acknowledges
                # the SYN; the sequence space of its sender is not known yet.
                if not flags & ACK or ack != seen[r + _END]:
                    self.out_of_window += 1
                    return False
        if not self.tcp_step(entry, direction, flags):
            return False
        if init:
            if seen is None or reuse:
                seen = entry.seen = [0] * 10
                entry.rst_pending = 0
            seen[o + _END] = end
            if not seen[o + _MAXWIN] or (seen[o + _MAXEND] - end) & _M32 >= _HALF:
                # (A SYN again in a simultaneous open keeps what the other side allowed.)
                seen[o + _MAXEND] = end
            seen[o + _MAXWIN] = win or 1
            seen[o + _SHIFT] = _window_shift(d, l4 + 20, min(l4 + doff, end_at))
            shift = 0  # RFC 7323 (2.2): a SYN's window is never scaled
        elif seen is None or not seen[o + _MAXWIN]:
            return True
        else:
            shift = seen[o + _SHIFT] if seen[r + _SHIFT] >= 0 else 0
            if shift < 0:
                shift = 0
            win <<= shift
            if win > seen[o + _MAXWIN]:
                seen[o + _MAXWIN] = win
            if (end - seen[o + _END]) & _M32 < _HALF:
                seen[o + _END] = end
        if flags & ACK:
            if (ack - seen[o + _MAXACK]) & _M32 < _HALF or not seen[o + _MAXACK]:
                seen[o + _MAXACK] = ack
            right = (ack + (win or 1)) & _M32
            if (right - seen[r + _MAXEND]) & _M32 < _HALF:
                seen[r + _MAXEND] = right
        if entry.rst_pending and entry.rst_pending != direction + 1:
            entry.rst_pending = 0  # the reset's receiver is still there: a challenge ACK
        return True

    def _tcp_reset(self, entry: Entry, direction: int, seq: int) -> bool:
        """An in-window reset. RFC 5961 (3.2): the end closes only on an exact match with its
        next expected sequence number; from between the ends that is the highest ACK the
        receiver sent, or the end of what the sender sent (its receiver may not have
        acknowledged it yet). Before the connection is established, in-window is enough."""
        seen = entry.seen
        assert seen is not None
        state = entry.state
        o = 5 * direction
        if (
            state == TcpState.ESTABLISHED or state == TcpState.FIN_WAIT
            or state == TcpState.LAST_ACK
        ) and seq != seen[o + _END] and seq != seen[5 - o + _MAXACK]:  # fmt: skip
            # Not exact: the end answers with a challenge ACK; keep the flow, briefly.
            self.resets_unconfirmed += 1
            entry.rst_pending = direction + 1
            return True
        entry.rst_pending = 0
        return self.tcp_step(entry, direction, RST)

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
            "tcp_out_of_window": self.out_of_window,
            "tcp_resets_unconfirmed": self.resets_unconfirmed,
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
        self.out_of_window = self.resets_unconfirmed = 0


def _ack_fits(seen: list[int], r: int, ack: int) -> bool:
    """An ACK acknowledges nothing its receiver (direction offset ``r``) has not sent, and
    lags what it sent by less than a window."""
    behind = (seen[r + _END] - ack) & _M32
    if behind >= _HALF:
        return False  # beyond what was sent
    lag = seen[5 - r + _MAXWIN]
    return behind <= (lag if lag > _MAX_ACK_WINDOW else _MAX_ACK_WINDOW)


def _in_window(seen: list[int], o: int, r: int, seq: int, end: int, ack: int) -> bool:
    """The window checks of one segment from direction offset ``o`` (``ack`` -1 when the
    segment carries none): its data ends within what the receiver allowed, starts no
    further back than the receiver's largest window, and its ACK fits."""
    if (seen[o + _MAXEND] - end) & _M32 >= _HALF:
        return False  # data beyond the receiver's window
    if seen[r + _MAXWIN] and (seq - (seen[o + _END] - seen[r + _MAXWIN])) & _M32 >= _HALF:
        return False  # older than any window the receiver offered
    if ack >= 0 and seen[r + _MAXWIN] and not _ack_fits(seen, r, ack):
        return False
    return True
