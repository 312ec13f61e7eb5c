"""The sender's per-segment scoreboard with RACK-TLP loss detection (RFC 8985), as a sans-IO
type the connection drives.

The scoreboard keeps one record per segment sent and not yet cumulatively acknowledged, in
sequence order: its range, when it was last (re)transmitted, and whether the peer SACKed it
(RFC 2018), RACK marked it lost, or it was retransmitted. From those it gives RFC 6675's pipe
(Linux's form: outstanding, less SACKed, less lost and not yet retransmitted) and NextSeg
(the first segment marked lost and not retransmitted since).

RACK (RFC 8985 6): a segment is lost when a segment sent sufficiently later has been
delivered: ``Segment.xmit_ts + RACK.rtt + RACK.reo_wnd <= now``, where RACK.rtt is the round
trip of the most recently sent segment that was delivered. Until it is that old, a reordering
timer waits for the rest. The reordering window starts at a quarter of the minimum RTT, grows
with D-SACKs that show the sender was fooled by reordering (6.2 step 4), and is zero when no
reordering has been seen and either recovery is under way or DupThresh segments are SACKed,
which makes RACK at least as fast as RFC 6675's duplicate-acknowledgement threshold.

TLP (RFC 8985 7): when no ACK comes for two round trips, one probe segment (new data, else
the last segment again) draws an ACK with SACK information, so a tail loss is repaired by
fast recovery instead of a retransmission timeout. 7.4: the probe's ACK tells whether there
was a loss to react to.

Time is passed in (seconds); nothing here reads a clock or sends anything.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable

from .seq import diff

__all__ = ["DUPTHRESH", "Rack", "SentSegment", "is_dsack"]

#: RFC 6675 / RFC 5681: the duplicate-acknowledgement threshold, in segments.
DUPTHRESH = 3
#: RFC 8985 7.2: TLP.max_ack_delay, the receiver's worst-case delayed-ACK timer.
MAX_ACK_DELAY = 0.2
#: RFC 8985 7.2: the PTO when no RTT sample exists yet.
PTO_WITHOUT_RTT = 1.0
#: RFC 8985 6.2 step 4: D-SACK-driven growth of the reordering window lasts this many
#: recoveries (RACK.reo_wnd_persist).
REO_WND_PERSIST = 16
#: Transmission order: breaks ties between segments sent at the same instant, which RFC 8985
#: breaks by sequence number (6.2, RACK_sent_after). A retransmission sent right after new
#: data in one burst has the lower sequence number but was sent later.
_order = itertools.count()


class SentSegment:
    """One segment in flight (RFC 8985 5.2: Segment.xmit_ts, Segment.end_seq, lost and
    retransmitted marks)."""

    __slots__ = ("start", "end", "xmit", "order", "sacked", "lost", "retrans")

    def __init__(self, start: int, end: int, xmit: float) -> None:
        self.start = start
        self.end = end
        self.xmit = xmit
        self.order = next(_order)
        self.sacked = False
        self.lost = False
        self.retrans = False

    def __repr__(self) -> str:
        marks = "".join(
            c for c, on in (("S", self.sacked), ("L", self.lost), ("R", self.retrans)) if on
        )
        return f"<{self.start}-{self.end} @{self.xmit:.4f} {marks}>"


def is_dsack(blocks: tuple[tuple[int, int], ...], ack: int) -> bool:
    """RFC 2883 4: the first SACK block reports a duplicate when it lies below the cumulative
    ACK, or inside the second block."""
    if not blocks:
        return False
    left, right = blocks[0]
    if diff(right, left) <= 0:
        return False
    if diff(right, ack) <= 0:
        return True
    if len(blocks) > 1:
        l2, r2 = blocks[1]
        return diff(left, l2) >= 0 and diff(right, r2) <= 0
    return False


def _sent_after(t1: float, order1: int, t2: float, order2: int) -> bool:
    """RFC 8985 6.2, RACK_sent_after: later in time, or at the same time later in order."""
    return t1 > t2 or (t1 == t2 and order1 > order2)


class Rack:
    """The scoreboard and RACK-TLP state of one connection's send side.

    Args:
        mss: the sender's MSS in bytes (DupThresh is counted in segments of it).
    """

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.segments: collections.deque[SentSegment] = collections.deque()
        #: Bytes SACKed above SND.UNA; bytes marked lost and not retransmitted since.
        self.sacked_bytes = 0
        self.lost_bytes = 0
        # -- RFC 8985 5.3 --
        self.xmit_ts: float | None = None  # RACK.xmit_ts
        self.end_seq = 0  # RACK.end_seq
        self.order = 0  # the transmission order of RACK.segment
        self.rtt = 0.0  # RACK.rtt
        self.min_rtt: float | None = None  # RACK.min_RTT
        self.fack: int | None = None  # RACK.fack: the highest sequence delivered
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = REO_WND_PERSIST
        self.dsack_round: int | None = None
        # -- TLP (RFC 8985 7) --
        self.tlp_end_seq: int | None = None
        self.tlp_is_retrans = False
        self.tlp_dsacked = False
        # -- statistics --
        self.losses_detected = 0
        self.reordering_events = 0
        self.probes = 0

    # == transmissions (RFC 8985 6.1) =============================================================
    def on_send(self, start: int, end: int, now: float) -> None:
        """New data [start, end) went out for the first time."""
        self.segments.append(SentSegment(start, end, now))

    def on_retransmit(self, start: int, end: int, now: float) -> None:
        """[start, end) went out again: its records take the new transmit time and lose
        their lost mark (RFC 8985 6.1; RFC 6675's HighRxt, per segment)."""
        segs = self.segments
        i = -1
        while i + 1 < len(segs):
            i += 1
            seg = segs[i]
            if diff(seg.end, start) <= 0:
                continue
            if diff(seg.start, end) >= 0:
                break
            if diff(seg.start, start) < 0:
                # The retransmission starts inside this record: split it.
                head = SentSegment(seg.start, start, seg.xmit)
                head.order = seg.order
                head.sacked, head.lost, head.retrans = seg.sacked, seg.lost, seg.retrans
                seg.start = start
                segs.insert(i, head)
                i += 1  # seg is now at i + 1; look at it again
                seg = segs[i]
            if diff(seg.end, end) > 0:
                # It ends inside this record (a shorter segment, e.g. SACK options took room).
                tail = SentSegment(end, seg.end, seg.xmit)
                tail.order = seg.order
                tail.sacked, tail.lost, tail.retrans = seg.sacked, seg.lost, seg.retrans
                seg.end = end
                segs.insert(i + 1, tail)
            if seg.sacked:
                continue
            if seg.lost:
                seg.lost = False
                self.lost_bytes -= diff(seg.end, seg.start)
            seg.retrans = True
            seg.xmit = now
            seg.order = next(_order)

    def on_timeout(self) -> None:
        """A retransmission timeout: the connection goes back to SND.UNA and sends everything
        again (RFC 5681 3.1), forgetting SACK information (RFC 2018 8); the records stay, to
        be timed again as they are resent."""
        for seg in self.segments:
            seg.sacked = seg.lost = False
        self.sacked_bytes = self.lost_bytes = 0
        self.fack = None
        self.tlp_end_seq = None

    # == acknowledgements (RFC 8985 6.2) ==========================================================
    def on_ack(
        self,
        ack: int,
        blocks: tuple[tuple[int, int], ...],
        snd_max: int,
        now: float,
        ts_ecr: int | None = None,
        retrans_ts: Callable[[float], int] | None = None,
    ) -> tuple[int, int]:
        """An acceptable ACK: drop what it acknowledges cumulatively, mark what its blocks
        SACK, and feed every newly delivered segment to RACK (steps 2 and 3). D-SACK blocks
        and blocks outside (SND.UNA, SND.MAX] are ignored here.

        Returns:
            (bytes newly acknowledged cumulatively that were not SACKed before, bytes newly
            SACKed): together RFC 6937's DeliveredData.
        """
        segs = self.segments
        acked = 0
        newly_sacked = 0
        # Segments never retransmitted are delivered as a run (first, last): sent in sequence
        # order, the run's RACK update and reordering check are those of its ends.
        first: SentSegment | None = None
        last = first
        while segs:
            seg = segs[0]
            # diff(seg.end, ack) > 0, inline: this runs once per segment acknowledged.
            if 0 < ((seg.end - ack) & 0xFFFFFFFF) < 0x80000000:
                if diff(seg.start, ack) < 0:
                    # Partly acknowledged (a retransmission was cut smaller): trim.
                    n = diff(ack, seg.start)
                    if seg.sacked:
                        self.sacked_bytes -= n
                    elif seg.lost:
                        self.lost_bytes -= n
                        acked += n
                    else:
                        acked += n
                    seg.start = ack
                break
            segs.popleft()
            n = (seg.end - seg.start) & 0xFFFFFFFF  # end is after start
            if seg.sacked:
                self.sacked_bytes -= n
                continue
            if seg.lost:
                self.lost_bytes -= n
            acked += n
            if seg.retrans:
                if first is not None and last is not None:
                    self._delivered_run(first, last, now)
                    first = None
                self._delivered(seg, now, ts_ecr, retrans_ts)
            else:
                if first is None:
                    first = seg
                last = seg
        if first is not None and last is not None:
            self._delivered_run(first, last, now)
        for i, (left, right) in enumerate(blocks):
            if diff(right, left) <= 0 or diff(left, ack) < 0 or diff(right, snd_max) > 0:
                continue  # a D-SACK, garbage, or beyond what was sent
            if i == 0 and is_dsack(blocks, ack):
                continue
            for seg in segs:
                if diff(seg.start, right) >= 0:
                    break
                if seg.sacked or diff(seg.start, left) < 0 or diff(seg.end, right) > 0:
                    continue
                seg.sacked = True
                n = diff(seg.end, seg.start)
                self.sacked_bytes += n
                newly_sacked += n
                if seg.lost:
                    seg.lost = False
                    self.lost_bytes -= n
                self._delivered(seg, now, None, None)
        return acked, newly_sacked

    def _delivered_run(self, first: SentSegment, last: SentSegment, now: float) -> None:
        """:meth:`_delivered` of every segment from ``first`` to ``last``, none of them
        retransmitted, in one step: in sequence order they were sent in order too, so the
        most recently sent is ``last``, and only ``first`` can lie below RACK.fack."""
        if self.xmit_ts is None or _sent_after(last.xmit, last.order, self.xmit_ts, self.order):
            self.rtt = now - last.xmit
            self.xmit_ts = last.xmit
            self.end_seq = last.end
            self.order = last.order
        fack = self.fack
        if fack is not None and diff(first.end, fack) < 0:
            if not self.reordering_seen:
                self.reordering_events += 1
            self.reordering_seen = True
        if fack is None or diff(last.end, fack) > 0:
            self.fack = last.end

    def _delivered(
        self,
        seg: SentSegment,
        now: float,
        ts_ecr: int | None,
        retrans_ts: Callable[[float], int] | None,
    ) -> None:
        # Step 2, RACK_update(): the most recently sent segment delivered so far. A
        # retransmitted segment is not used when the ACK may be for its original
        # transmission: the echoed timestamp predates the retransmission, or the RTT would
        # be shorter than the minimum. The echo is only checked for cumulative ACKs: for a
        # SACKed segment the receiver echoes its last in-order segment (RFC 7323 4.3), so
        # there only the RTT can tell (as Linux does).
        rtt = now - seg.xmit
        if seg.retrans:
            if ts_ecr is not None and retrans_ts is not None:
                if diff(ts_ecr, retrans_ts(seg.xmit)) < 0:
                    return
            elif self.min_rtt is not None and rtt + 1e-6 < self.min_rtt:
                return
        if self.xmit_ts is None or _sent_after(seg.xmit, seg.order, self.xmit_ts, self.order):
            self.rtt = rtt
            self.xmit_ts = seg.xmit
            self.end_seq = seg.end
            self.order = seg.order
        # Step 3, RACK_detect_reordering(): delivered below the highest delivered sequence,
        # without having been retransmitted, means the network reordered.
        if self.fack is None or diff(seg.end, self.fack) > 0:
            self.fack = seg.end
        elif diff(seg.end, self.fack) < 0 and not seg.retrans:
            if not self.reordering_seen:
                self.reordering_events += 1
            self.reordering_seen = True

    def rtt_sample(self, rtt: float) -> None:
        """Step 1: RACK.min_RTT from the connection's RFC 6298 samples."""
        if rtt >= 0 and (self.min_rtt is None or rtt < self.min_rtt):
            self.min_rtt = rtt

    def on_dsack(self, snd_una: int, snd_nxt: int) -> None:
        """Step 4, first part: a D-SACK grows the reordering window, once per round trip."""
        if self.dsack_round is not None and diff(snd_una, self.dsack_round) >= 0:
            self.dsack_round = None
        if self.dsack_round is None:
            self.dsack_round = snd_nxt
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = REO_WND_PERSIST

    def on_recovery_exit(self) -> None:
        """Step 4, second part: the D-SACK growth wears off after 16 recoveries."""
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult = 1

    def reo_wnd(self, in_recovery: bool, srtt: float | None) -> float:
        """Step 4, RACK_update_reo_wnd()."""
        if not self.reordering_seen:
            if in_recovery:
                return 0.0
            if self.sacked_bytes >= DUPTHRESH * self.mss:
                return 0.0
        min_rtt = self.min_rtt if self.min_rtt is not None else 0.0
        wnd = self.reo_wnd_mult * min_rtt / 4
        if srtt is not None and wnd > srtt:
            wnd = srtt
        return wnd

    def detect_loss(self, now: float, reo_wnd: float) -> float:
        """Step 5, RACK_detect_loss(): mark lost every unSACKed segment sent sufficiently
        before the most recently delivered one.

        Returns:
            Seconds until the earliest segment still within the reordering window would be
            lost (when the reordering timer should fire), or 0.
        """
        if self.xmit_ts is None:
            return 0.0
        rack_xmit, rack_end, rack_order, rtt = self.xmit_ts, self.end_seq, self.order, self.rtt
        timeout = 0.0
        for seg in self.segments:
            if seg.order > rack_order and diff(seg.start, rack_end) >= 0:
                if not seg.retrans:
                    break  # sent after RACK.segment, as is everything above it
                continue
            if seg.sacked or seg.lost:
                continue
            if not _sent_after(rack_xmit, rack_order, seg.xmit, seg.order):
                continue
            remaining = seg.xmit + rtt + reo_wnd - now
            if remaining <= 0:
                seg.lost = True
                self.lost_bytes += diff(seg.end, seg.start)
                self.losses_detected += 1
            elif remaining > timeout:
                timeout = remaining
        return timeout

    def mark_lost(self, start: int) -> bool:
        """Mark the unSACKed segment that starts at ``start`` lost (RFC 8985 6.3: the
        segment at SND.UNA after a timeout; RFC 6582's partial acknowledgements)."""
        for seg in self.segments:
            if seg.start == start:
                if seg.sacked or seg.lost:
                    return False
                seg.lost = True
                self.lost_bytes += diff(seg.end, seg.start)
                return True
            if diff(seg.start, start) > 0:
                break
        return False

    # == RFC 6675 with RACK's marks ===============================================================
    def pipe(self, outstanding: int) -> int:
        """RFC 6675 4 SetPipe, with RACK's lost marks for IsLost (RFC 8985 9.2)."""
        pipe = outstanding - self.sacked_bytes - self.lost_bytes
        return pipe if pipe > 0 else 0

    def next_lost(self) -> SentSegment | None:
        """RFC 6675 NextSeg rule (1): the first segment marked lost and not retransmitted
        since."""
        if self.lost_bytes <= 0:
            return None
        for seg in self.segments:
            if seg.lost:
                return seg
        return None

    # == TLP (RFC 8985 7) =========================================================================
    def pto(self, srtt: float | None, flight: int) -> float:
        """RFC 8985 7.2, TLP_calc_PTO(): 2 SRTT, plus the delayed-ACK allowance when only
        one segment is out (its ACK may be delayed)."""
        if srtt is None:
            return PTO_WITHOUT_RTT
        pto = 2 * srtt
        if flight <= self.mss:
            pto += MAX_ACK_DELAY
        return pto

    def may_probe(self) -> bool:
        """RFC 8985 7.2: no probe is outstanding and nothing is SACKed (out-of-order
        delivery means RACK's timer, not TLP, is in charge)."""
        return self.tlp_end_seq is None and self.sacked_bytes == 0

    def on_probe(self, end_seq: int, is_retrans: bool) -> None:
        """RFC 8985 7.3: a probe went out; remember what it covered."""
        self.tlp_end_seq = end_seq
        self.tlp_is_retrans = is_retrans
        self.tlp_dsacked = False
        self.probes += 1

    def note_dsack(self, blocks: tuple[tuple[int, int], ...]) -> None:
        """A D-SACK that covers the end of a retransmitted probe: both copies arrived."""
        if self.tlp_end_seq is None or not self.tlp_is_retrans or not blocks:
            return
        left, right = blocks[0]
        last = self.tlp_end_seq - 1
        if diff(last, left) >= 0 and diff(right, last) > 0:
            self.tlp_dsacked = True

    def probe_acked(self, ack: int, advanced: bool, sack_info: bool) -> bool:
        """RFC 8985 7.4, TLP_process_ack(). Returns True when the probe repaired a loss the
        congestion controller must still react to."""
        end = self.tlp_end_seq
        if end is None or diff(ack, end) < 0:
            return False
        if not self.tlp_is_retrans or self.tlp_dsacked:
            self.tlp_end_seq = None  # new data, or both copies arrived: no loss
            return False
        if diff(ack, end) > 0:
            self.tlp_end_seq = None
            return True  # the probe repaired a loss
        if not advanced and not sack_info:
            self.tlp_end_seq = None  # a plain duplicate: the original and the probe arrived
        return False
