"""Detecting spurious retransmissions and undoing the congestion response to them.

Two detectors, the same two Linux uses, each where it applies:

- The Eifel detection algorithm (RFC 3522), when timestamps are in use: the ACK that first
  acknowledges a retransmitted sequence number echoes the timestamp of the segment that
  arrived. An echo older than the first retransmission of the episode means the original
  arrived and the retransmission was not needed. It answers on the first ACK after a
  retransmission timeout, the case where undoing matters most (the whole flight was about
  to be resent at one segment per round trip).
- D-SACK (RFC 3708 with RFC 2883): when every retransmission of a fast recovery is reported
  back by the receiver as a duplicate, none was needed. This works without timestamps, once
  the episode has ended.

Why these, and not F-RTO (RFC 5682): F-RTO needs a round trip of new data after the timeout
to decide, and decides only about timeouts; the Eifel check decides on the first ACK and
covers fast retransmits too, and every peer that matters (Linux, BSD, Windows) sends
timestamps and D-SACKs.

The response (RFC 4015 for timeouts, RFC 3708 5 for fast retransmits): restore cwnd and
ssthresh to their values before the episode (never lower than they are now) and, after a
timeout, go on with new data instead of resending what was in flight (RFC 4015 3.1).
"""

from __future__ import annotations

from .seq import diff

__all__ = ["Undo"]


class Undo:
    """One loss-recovery episode's record, kept until it is judged.

    Args:
        cwnd: the congestion window before the response.
        ssthresh: the slow-start threshold before the response.
        timeout: the episode began with a retransmission timeout.
    """

    __slots__ = (
        "cwnd",
        "ssthresh",
        "retrans_ts",
        "first_seq",
        "timeout",
        "retransmits",
        "dsacked",
        "judged",
    )

    def __init__(self, cwnd: int, ssthresh: int, *, timeout: bool) -> None:
        self.cwnd = cwnd
        self.ssthresh = ssthresh
        self.timeout = timeout
        #: Our timestamp value and the sequence number of the episode's first retransmission.
        self.retrans_ts: int | None = None
        self.first_seq: int | None = None
        self.retransmits = 0  # segments retransmitted in this episode
        self.dsacked = 0  # of those, reported back as duplicates (RFC 3708 2)
        self.judged = False  # the Eifel check has had its ACK

    def on_retransmit(self, seq: int, ts: int | None) -> None:
        """A segment of the episode went out again; the first one is RFC 3522's
        RetransmitTS."""
        if self.retransmits == 0:
            self.first_seq = seq
            self.retrans_ts = ts
        self.retransmits += 1

    def eifel(self, ack: int, ts_ecr: int | None) -> bool:
        """RFC 3522 3.2: on the first acceptable ACK that covers the first retransmitted
        sequence number: True when its echo predates the retransmission (spurious)."""
        if self.judged or self.retrans_ts is None or self.first_seq is None or not ts_ecr:
            return False
        if diff(ack, self.first_seq) <= 0:
            return False
        self.judged = True
        return diff(ts_ecr, self.retrans_ts) < 0

    def on_dsack(self, segments: int) -> None:
        """RFC 3708 3: a D-SACK for data retransmitted in this episode."""
        self.dsacked += segments

    def all_dsacked(self) -> bool:
        """RFC 3708 3: every retransmission of the episode came back as a duplicate."""
        return self.retransmits > 0 and self.dsacked >= self.retransmits
