"""The multicast listener side of MLD for one interface: MLDv2 (RFC 3810 6) with MLDv1
compatibility mode (RFC 3810 8.2.1; MLDv1 is RFC 2710). A machine: groups joined and left,
queries and other listeners' reports in, messages to send out, time passed in.

MLDv2 (the Host Compatibility Mode until an MLDv1 querier shows up):

- RFC 3810 6.1: joining or leaving a group is reported at once as a state change
  (CHANGE_TO_EXCLUDE with no source: every source; CHANGE_TO_INCLUDE with none: left),
  repeated [Robustness Variable] - 1 times, each after a random delay up to [Unsolicited
  Report Interval] (1 s, 9.11); a newer change of a group replaces the repetitions of the
  older one.
- RFC 3810 6.2: a General Query is answered after a random delay up to its Maximum Response
  Delay with one report of every group (MODE_IS_EXCLUDE, no source); a group-specific one is
  merged into the pending response. This host takes every source, so source-specific
  queries are answered as for their group.

MLDv1 compatibility (RFC 3810 8.2.1): an MLDv1 Query (24 bytes) sets the Host Compatibility
Mode to MLDv1 and starts the Older Version Querier Present timer for [Older Version Querier
Present Timeout] (9.12: Robustness Variable times the Query Interval of the last query,
125 s by default since an MLDv1 query carries none, plus the Query Response Interval, 10 s:
260 s), restarted by every MLDv1 Query; when it expires the mode is MLDv2 again. Whenever the
mode changes, every pending response and retransmission is cancelled. In MLDv1 mode only
MLDv1 is spoken (RFC 2710 4):

- a query (of either version: an MLDv2 query is a valid MLDv1 one, its extra fields ignored)
  starts a timer per group it concerns, a random delay up to its Maximum Response Delay; a
  timer already running is moved only if the new delay would end sooner; when it fires, a
  Report (type 131) goes to the group's own address;
- another node's Report for a group whose timer runs stops that timer (suppression);
- joining sends a Report at once, repeated [Robustness Variable] - 1 times after up to
  [Unsolicited Report Interval] (10 s in MLDv1); leaving sends a Done (type 132) to all
  routers (the "last reporter" optimization of RFC 2710 4 is not taken: a Done is always
  sent, which RFC 2710 allows).

Never reported, in either mode (RFC 3810 6, RFC 2710 5): the link-scope all-nodes address
and addresses of scope 0 (reserved) or 1 (interface-local).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeAlias

from .wire import GroupRecord, MldQuery, RecordType

__all__ = [
    "MldConfig",
    "MldMessage",
    "MulticastListener",
    "SendDone",
    "SendReport",
    "SendV2Report",
]

_ALL_NODES = b"\xff\x02" + bytes(13) + b"\x01"
_UNSPECIFIED = bytes(16)


class Rng(Protocol):
    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class MldConfig:
    #: RFC 3810 9.1: Robustness Variable (how many times a state change is sent).
    robustness: int = 2
    #: RFC 3810 9.2: Query Interval, the term of 9.12 for a query that carries none.
    query_interval: float = 125.0
    #: RFC 3810 9.3: Query Response Interval.
    query_response_interval: float = 10.0
    #: RFC 3810 9.11: Unsolicited Report Interval in MLDv2.
    unsolicited_report_interval: float = 1.0
    #: RFC 2710 7.10: Unsolicited Report Interval in MLDv1.
    v1_unsolicited_report_interval: float = 10.0

    def __post_init__(self) -> None:
        if self.robustness < 1:
            raise ValueError("the Robustness Variable must be at least 1 (RFC 3810 9.1)")


class SendV2Report(NamedTuple):
    """An MLDv2 Report (type 143) to ff02::16 with these records."""

    records: tuple[GroupRecord, ...]


class SendReport(NamedTuple):
    """An MLDv1 Report (type 131) to the group's own address (RFC 2710 3, 5)."""

    group: bytes


class SendDone(NamedTuple):
    """An MLDv1 Done (type 132) to all routers, ff02::2 (RFC 2710 3, 5)."""

    group: bytes


MldMessage: TypeAlias = SendV2Report | SendReport | SendDone


def _reported(group: bytes) -> bool:
    """RFC 3810 6 and RFC 2710 5: no messages for all-nodes nor scope 0 or 1 addresses."""
    return group != _ALL_NODES and (group[1] & 0x0F) > 1


class MulticastListener:
    """MLD listener state of one interface.

    Inputs: :meth:`join`, :meth:`leave`, :meth:`receive_query`, :meth:`receive_report`,
    :meth:`handle_timeout` once :meth:`poll_at` has passed. Output:
    :meth:`messages_to_send`, which the caller builds with :mod:`.mld` and sends with hop
    limit 1 and a Router Alert (RFC 3810 5, RFC 2710 3).
    """

    def __init__(self, rng: Rng, config: MldConfig | None = None) -> None:
        self.config = config or MldConfig()
        self._rng = rng
        #: Groups listened to, reportable ones only.
        self.groups: set[bytes] = set()
        self._out: list[MldMessage] = []
        #: When the Older Version Querier Present timer expires; None: MLDv2 mode.
        self._v1_until: float | None = None
        # MLDv2: state-change repetitions (at, record type, group, left) and the pending
        # query response (when; the groups asked for, None for all).
        self._changes: list[tuple[float, int, bytes, int]] = []
        self._response_at: float | None = None
        self._response_groups: set[bytes] | None = set()
        # MLDv1: one timer per group (when its Report is due), and per group joined lately
        # the unsolicited repetitions still to send, the one the timer stands for included.
        self._v1_timers: dict[bytes, float] = {}
        self._v1_repeats: dict[bytes, int] = {}

    # -- state -------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The Host Compatibility Mode: 1 or 2 (RFC 3810 8.2.1)."""
        return 1 if self._v1_until is not None else 2

    @property
    def older_querier_timeout(self) -> float:
        """RFC 3810 9.12: [Robustness Variable] x [Query Interval] + [Query Response
        Interval]."""
        c = self.config
        return c.robustness * c.query_interval + c.query_response_interval

    def messages_to_send(self) -> list[MldMessage]:
        out, self._out = self._out, []
        return out

    def _cancel_all(self) -> None:
        """RFC 3810 8.2.1: pending responses and retransmissions end with the mode."""
        self._changes.clear()
        self._response_at = None
        self._response_groups = set()
        self._v1_timers.clear()
        self._v1_repeats.clear()

    # -- the application's side ----------------------------------------------------------------
    def join(self, group: bytes, now: float) -> None:
        """Start listening to ``group`` (called once per group, on its first user)."""
        if not _reported(group) or group in self.groups:
            return
        self.groups.add(group)
        if self._v1_until is not None:
            # RFC 2710 4: an unsolicited Report at once, repeated later.
            self._out.append(SendReport(group))
            if self.config.robustness > 1:
                self._v1_repeats[group] = self.config.robustness - 1
                self._v1_later(group, now, self.config.v1_unsolicited_report_interval)
        else:
            self._state_change(RecordType.CHANGE_TO_EXCLUDE, group, now)

    def leave(self, group: bytes, now: float) -> None:
        """Stop listening to ``group`` (called when its last user is gone)."""
        if group not in self.groups:
            return
        self.groups.discard(group)
        if self._v1_until is not None:
            self._v1_timers.pop(group, None)
            self._v1_repeats.pop(group, None)
            self._out.append(SendDone(group))  # RFC 2710 4
        else:
            self._state_change(RecordType.CHANGE_TO_INCLUDE, group, now)

    def _state_change(self, record: int, group: bytes, now: float) -> None:
        # RFC 3810 6.1: at once, then [Robustness Variable] - 1 more times.
        self._changes = [c for c in self._changes if c[2] != group]
        self._out.append(SendV2Report((GroupRecord(record, group),)))
        if self.config.robustness > 1:
            at = now + self._rng.random() * self.config.unsolicited_report_interval
            self._changes.append((at, record, group, self.config.robustness - 1))

    # -- the network's side ----------------------------------------------------------------------
    def receive_query(self, query: MldQuery, now: float) -> None:
        """A Multicast Listener Query that passed the checks of RFC 3810 5.1.14 (link-local
        source, hop limit 1)."""
        if query.version == 1:
            if self._v1_until is None:
                self._cancel_all()
            # RFC 3810 8.2.1: MLDv1 mode, the timer (re)started.
            self._v1_until = now + self.older_querier_timeout
        if query.group != _UNSPECIFIED and query.group not in self.groups:
            return
        if self._v1_until is not None:
            wanted = self.groups if query.group == _UNSPECIFIED else {query.group}
            for group in wanted:
                self._v1_repeats.pop(group, None)
                self._v1_later(group, now, query.max_response_delay)
            return
        at = now + self._rng.random() * query.max_response_delay
        if query.group == _UNSPECIFIED:
            self._response_groups = None
        elif self._response_groups is not None:
            self._response_groups.add(query.group)
        if self._response_at is None or at < self._response_at:
            self._response_at = at

    def _v1_later(self, group: bytes, now: float, delay: float) -> None:
        # RFC 2710 4: a running timer is reset only if the new delay ends sooner.
        at = now + self._rng.random() * delay
        running = self._v1_timers.get(group)
        if running is None or at < running:
            self._v1_timers[group] = at

    def receive_report(self, group: bytes, now: float) -> None:
        """Another node's MLDv1 Report for ``group`` (RFC 2710 4: ours is suppressed)."""
        if self._v1_until is not None and group in self._v1_timers:
            del self._v1_timers[group]
            self._v1_repeats.pop(group, None)

    # -- time --------------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        at = math.inf
        for t in (self._v1_until, self._response_at):
            if t is not None and t < at:
                at = t
        for c in self._changes:
            if c[0] < at:
                at = c[0]
        for t in self._v1_timers.values():
            if t < at:
                at = t
        return None if at == math.inf else at

    def handle_timeout(self, now: float) -> None:
        if self._v1_timers:
            for group, at in sorted(self._v1_timers.items(), key=lambda item: item[1]):
                if at > now:
                    continue
                del self._v1_timers[group]
                self._out.append(SendReport(group))
                left = self._v1_repeats.pop(group, 0) - 1  # repetitions after this one
                if left > 0:
                    self._v1_repeats[group] = left
                    self._v1_later(group, now, self.config.v1_unsolicited_report_interval)
        if self._v1_until is not None and self._v1_until <= now:
            # RFC 3810 8.2.1: the Older Version Querier Present timer expired.
            self._v1_until = None
            self._cancel_all()
        if self._changes:
            due = [c for c in self._changes if c[0] <= now]
            self._changes = [c for c in self._changes if c[0] > now]
            for _, record, group, left in due:
                if group in self.groups or record == RecordType.CHANGE_TO_INCLUDE:
                    self._out.append(SendV2Report((GroupRecord(record, group),)))
                    if left > 1:
                        at = now + self._rng.random() * self.config.unsolicited_report_interval
                        self._changes.append((at, record, group, left - 1))
        if self._response_at is not None and self._response_at <= now:
            wanted = self._response_groups
            self._response_at = None
            self._response_groups = set()
            records = tuple(
                GroupRecord(RecordType.MODE_IS_EXCLUDE, g)
                for g in sorted(self.groups)
                if wanted is None or g in wanted
            )
            if records:
                self._out.append(SendV2Report(records))
