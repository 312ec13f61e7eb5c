"""The retransmission timeout of one connection (RFC 6298), from round-trip samples, as a
sans-IO type the connection drives.

Samples come from two places:
- the echoed timestamp (RFC 7323 4.1), when timestamps were negotiated: every ACK that
  advances SND.UNA and echoes one gives a sample (:meth:`RttEstimator.on_echo`);
- otherwise one segment at a time is timed (:meth:`RttEstimator.time`) and its first
  acknowledgement gives the sample (:meth:`RttEstimator.on_ack`). Karn's rule (RFC 6298 3):
  a segment that was retransmitted gives none (:meth:`RttEstimator.on_retransmit`).

RFC 6298 2.2/2.3 turn samples into SRTT, RTTVAR and the RTO; 2.4/2.5 clamp the RTO between a
minimum (Linux's 200 ms, below the RFC's 1 s, which 2.4 allows) and a maximum (60 s); 5.5
doubles it on every timeout (:meth:`RttEstimator.backoff`) until a new sample replaces it.

With timestamps, Karn's rule has a counterpart: after a timeout, an echo older than the
retransmission means the original arrived and only its ACK was lost; a sample from it would
count the whole timeout as round-trip time. Such echoes are skipped until one of a segment
sent since the timeout comes back (the floor :attr:`RttEstimator.ts_floor`).

Time is passed in (seconds); timestamps are the connection's 32-bit clock (RFC 7323 5.4).
"""

from __future__ import annotations

from .seq import diff

__all__ = ["MAX_ECHO_SAMPLE_MS", "RttEstimator"]

MASK = 0xFFFFFFFF
#: An echo further back than this (in timestamp ticks, 1 ms) is no round trip but a stale or
#: wrapped value (RFC 7323 5.2 computes the difference modulo 2**32).
MAX_ECHO_SAMPLE_MS = 60_000
#: RFC 6298 2.3: G, the clock granularity, the least RTTVAR term of the RTO.
CLOCK_GRANULARITY = 0.001


class RttEstimator:
    """SRTT, RTTVAR and RTO of one connection (RFC 6298).

    Args:
        rto_initial: the RTO before the first sample (RFC 6298 2.1).
        rto_min: the least RTO a sample may give (RFC 6298 2.4).
        rto_max: the largest RTO, after samples and backoff alike (RFC 6298 2.5).
    """

    __slots__ = ("srtt", "rttvar", "rto", "rto_min", "rto_max", "timed_seq", "timed_at",
                 "ts_floor")  # fmt: skip

    def __init__(self, rto_initial: float, rto_min: float, rto_max: float) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = rto_initial
        self.rto_min = rto_min
        self.rto_max = rto_max
        #: The sequence number being timed (without timestamps), and when it went out.
        self.timed_seq: int | None = None
        self.timed_at = 0.0
        #: Our timestamp when the last timeout retransmitted, or None: older echoes give no
        #: sample.
        self.ts_floor: int | None = None

    def sample(self, sent: float, now: float) -> float | None:
        """RFC 6298 2.2/2.3: a segment sent at ``sent`` was acknowledged at ``now``. Returns
        the round-trip time taken as the sample, or None for a negative one (ignored)."""
        r = now - sent
        if r < 0:
            return None
        self.timed_seq = None
        srtt = self.srtt
        if srtt is None:
            # RFC 6298 2.2: the first measurement.
            self.srtt = srtt = r
            self.rttvar = r / 2
        else:
            # RFC 6298 2.3: alpha = 1/8, beta = 1/4; RTTVAR first, with the old SRTT.
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(srtt - r)
            self.srtt = srtt = 0.875 * srtt + 0.125 * r
        # RFC 6298 2.3-2.5: RTO = SRTT + max(G, 4 * RTTVAR), within [rto_min, rto_max].
        var = 4 * self.rttvar
        self.rto = min(max(srtt + (var if var > CLOCK_GRANULARITY else CLOCK_GRANULARITY),
                           self.rto_min), self.rto_max)  # fmt: skip
        return r

    def on_echo(self, ts_ecr: int, ts_now: int, now: float) -> float | None:
        """An acceptable ACK echoed ``ts_ecr`` (RFC 7323 4.1; non-zero) when our timestamp
        clock reads ``ts_now``. Returns the sample taken, or None."""
        floor = self.ts_floor
        if floor is not None:
            if diff(ts_ecr, floor) < 0:
                return None  # the echo of a segment sent before the timeout: skip it
            self.ts_floor = None
        ticks = (ts_now - ts_ecr) & MASK  # RFC 7323 5.2: modulo 2**32
        if ticks >= MAX_ECHO_SAMPLE_MS:
            return None
        return self.sample(now - ticks / 1000.0, now)

    def time(self, seq: int, now: float) -> None:
        """A segment starting at ``seq`` goes out for the first time: time it, unless one is
        being timed already (one sample per round trip, RFC 6298 3)."""
        if self.timed_seq is None:
            self.timed_seq = seq
            self.timed_at = now

    def on_retransmit(self, seq: int) -> None:
        """Karn's rule (RFC 6298 3): data from ``seq`` went out again, so an ACK of the timed
        segment, if it lies there, cannot say which transmission it answers."""
        timed = self.timed_seq
        if timed is not None and diff(timed, seq) >= 0:
            self.timed_seq = None

    def on_ack(self, ack: int, now: float) -> float | None:
        """SND.UNA advanced to ``ack`` (without timestamps): the sample, when it covers the
        timed segment."""
        timed = self.timed_seq
        if timed is not None and diff(ack, timed) > 0:
            return self.sample(self.timed_at, now)
        return None

    def backoff(self, ts_now: int | None) -> None:
        """RFC 6298 5.5: a retransmission timeout doubles the RTO (up to the maximum) and
        abandons the timed segment. ``ts_now``: our timestamp clock, with timestamps in use,
        so that echoes from before the retransmission give no sample."""
        rto = self.rto * 2
        self.rto = rto if rto < self.rto_max else self.rto_max
        self.timed_seq = None
        if ts_now is not None:
            self.ts_floor = ts_now
