"""Congestion control: one interface, NewReno (RFC 5681, RFC 6582) by default, CUBIC
(RFC 9438) selectable per connection.

A controller owns ``cwnd`` and ``ssthresh`` (bytes) and reacts to four things the connection
tells it: new data acknowledged outside recovery, the start and end of a loss recovery, and a
retransmission timeout. Which segments to retransmit (NewReno's partial acknowledgements or
RFC 6675's SACK scoreboard) is the connection's business, not the controller's.

RFCs and sections:

- RFC 5681 3.1 (slow start, congestion avoidance, the loss window after a timeout), 3.2
  (ssthresh on loss, equation 4); RFC 3465 (byte counting, L = 1 MSS).
- RFC 6582 3.2 steps 2 and 3 (the recovery response; option (1) on a full acknowledgement).
- RFC 6928 2 (the initial window).
- RFC 9438 4.2-4.8 (CUBIC: window increase function, Reno-friendly, concave and convex
  regions, multiplicative decrease, fast convergence, timeout), 4.10 (slow start: RFC 5681's,
  not HyStart++), 5.8 (application-limited flows). 4.9 (undoing spurious reductions) is not
  implemented.
- RFC 7661 (rate-limited senders): cwnd does not grow without bound while the receive window
  or the application keeps the flight below it. Both controllers apply the bound of
  draft-ietf-ccwg-ratelimited-increase (built on RFC 7661's terms; Linux's
  tcp_is_cwnd_limited has the same in slow start): with maxFS the largest flight since cwnd
  was last reduced, an ACK grows cwnd to at most 2 * maxFS in slow start and maxFS + MSS in
  congestion avoidance. The bound only stops growth, it never lowers cwnd.
- RFC 5681 4.1 (restarting an idle connection): ``on_idle`` takes cwnd down to the restart
  window, min(IW, cwnd), when nothing was sent for longer than the RTO.

Time (``now``, seconds) and RTT samples (seconds) are passed in; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "CONTROLLERS",
    "CongestionControl",
    "Cubic",
    "NewReno",
    "initial_window",
    "make_controller",
]


def initial_window(mss: int) -> int:
    """RFC 6928 2: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class CongestionControl(Protocol):
    name: str
    cwnd: int
    ssthresh: int
    mss: int

    def on_ack(self, acked: int, now: float, rtt: float | None, in_flight: int) -> None:
        """``acked`` new bytes were cumulatively acknowledged outside loss recovery;
        ``in_flight`` is what was outstanding before this acknowledgement."""

    def on_congestion(self, now: float, in_flight: int) -> None:
        """Loss detected by duplicate acknowledgements or SACK: entering recovery."""

    def on_recovery_end(self, now: float, in_flight: int) -> None:
        """The recovery point was acknowledged; ``in_flight`` is what is still out."""

    def on_timeout(self, now: float, in_flight: int) -> None:
        """The retransmission timer expired (RFC 5681 3.1, equation 4; cwnd = 1 MSS)."""

    def on_mss_change(self, mss: int) -> None:
        """The sender's MSS changed (path MTU)."""

    def on_idle(self, now: float) -> None:
        """Data is about to be sent after nothing was sent for longer than the RTO, with
        nothing in flight (RFC 5681 4.1)."""


def _bounded(cwnd: int, grown: int, limit: int) -> int:
    """RFC 7661 / rate-limited increase: growth from ``cwnd`` to ``grown``, stopped at
    ``limit`` (twice or one MSS beyond the largest flight), never below ``cwnd``."""
    if grown > limit:
        grown = limit
    return grown if grown > cwnd else cwnd


def _restart_window(cc: NewReno | Cubic) -> None:
    """RFC 5681 4.1: cwnd = RW = min(IW, cwnd) after an idle period. ssthresh keeps three
    quarters of the old window (Linux's tcp_cwnd_restart), so slow start climbs back."""
    restart = min(initial_window(cc.mss), cc.cwnd)
    if restart < cc.cwnd:
        cc.ssthresh = max(cc.ssthresh, cc.cwnd * 3 // 4)
        cc.cwnd = restart
        cc.max_fs = 0  # a reduction: maxFS is measured afresh


class NewReno:
    """RFC 5681 slow start and congestion avoidance with RFC 6582's recovery response.

    Slow start grows cwnd by the bytes acknowledged, at most one MSS per ACK (RFC 5681 3.1,
    RFC 3465 L=1); congestion avoidance by about one MSS per round trip, counted in bytes
    (RFC 5681 3.1, equation 3's byte-counting variant).
    """

    name = "newreno"

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss)
        # RFC 5681 3.1: "The initial value of ssthresh SHOULD be set arbitrarily high".
        self.ssthresh = 1 << 30
        self._acked_in_ca = 0
        # True from a timeout until new data is acknowledged: a further timeout then
        # retransmits the same segment again.
        self._rto_backoff = False
        #: The largest flight since cwnd was last reduced (RFC 7661; initially IW).
        self.max_fs = self.cwnd

    def on_ack(self, acked: int, now: float, rtt: float | None, in_flight: int) -> None:
        self._rto_backoff = False
        if in_flight > self.max_fs:
            self.max_fs = in_flight
        if self.cwnd < self.ssthresh:
            self.cwnd = _bounded(self.cwnd, self.cwnd + min(acked, self.mss), 2 * self.max_fs)
            return
        limit = self.max_fs + self.mss
        if self.cwnd >= limit:
            return  # rate-limited: no growth, and no credit saved up for later
        self._acked_in_ca += acked
        if self._acked_in_ca >= self.cwnd:
            self._acked_in_ca -= self.cwnd
            self.cwnd = min(self.cwnd + self.mss, limit)

    def on_congestion(self, now: float, in_flight: int) -> None:
        # RFC 5681 3.2 step 2 (equation 4), RFC 6582 3.2 step 2.
        self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._acked_in_ca = 0
        self._rto_backoff = False
        self.max_fs = 0

    def on_recovery_end(self, now: float, in_flight: int) -> None:
        # RFC 6582 3.2 step 3 (full acknowledgement), option (1): no burst after recovery.
        self.cwnd = min(self.ssthresh, max(in_flight, self.mss) + self.mss)
        self._rto_backoff = False

    def on_timeout(self, now: float, in_flight: int) -> None:
        # RFC 5681 3.1 (after equation 4): when the segment has already been retransmitted by
        # the timer at least once, "the value of ssthresh is held constant".
        if not self._rto_backoff:
            self.ssthresh = max(in_flight // 2, 2 * self.mss)
        self._rto_backoff = True
        self.cwnd = self.mss  # the loss window, RFC 5681 3.1
        self._acked_in_ca = 0
        self.max_fs = 0

    def on_mss_change(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = max(self.cwnd, mss)
        # A larger MSS must not leave ssthresh below 2 MSS (RFC 5681 equation 4's floor), or
        # RFC 6582's deflation, min(ssthresh, ...), could set cwnd below one segment.
        self.ssthresh = max(self.ssthresh, 2 * mss)

    def on_idle(self, now: float) -> None:
        _restart_window(self)
        self._acked_in_ca = 0


class Cubic:
    """CUBIC (RFC 9438): after a loss, cwnd follows a cubic function of the time since the
    congestion avoidance stage began, with its plateau at the window where the loss happened.

    Windows are kept in bytes; the cubic function is evaluated in segments (``C`` is in
    segments per second cubed) and converted with the current MSS. Fractions of a byte gained
    per acknowledgement are carried over, so a slow climb near the plateau is not lost to
    rounding.

    Slow start is RFC 5681's, as in :class:`NewReno` (RFC 9438 4.10 allows it; HyStart++ is
    not implemented). Fast recovery is RFC 6582's, also as in :class:`NewReno` (RFC 9438 4.2:
    CUBIC does not change it). Undoing spurious reductions (RFC 9438 4.9, a MAY) is not
    implemented.

    Attributes exposed for inspection: ``w_max`` (bytes; ``None`` before the first
    congestion event), ``k`` (seconds), ``w_est`` (bytes), ``cwnd_prior`` (bytes), ``srtt``
    (seconds; ``None`` before the first sample) and ``epoch_start`` (``None`` outside a
    congestion avoidance stage).

    Args:
        mss: the sender's maximum segment size in bytes.
        fast_convergence: apply RFC 9438 4.7 (on by default; the RFC says it SHOULD be
            disabled for a lone flow, which a sender cannot know).
    """

    name = "cubic"

    # RFC 9438 (4.6): beta_cubic SHOULD be 0.7.
    BETA = 0.7
    # RFC 9438 (5.1): C SHOULD be 0.4 (segments / second^3).
    C = 0.4
    # RFC 9438 (4.3): alpha_cubic = 3 * (1 - beta) / (1 + beta) gives AIMD(alpha, beta) the
    # average window of Reno's AIMD(1, 0.5).
    ALPHA = 3 * (1 - BETA) / (1 + BETA)

    def __init__(self, mss: int, *, fast_convergence: bool = True) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss)
        # RFC 5681 3.1: "The initial value of ssthresh SHOULD be set arbitrarily high".
        self.ssthresh = 1 << 30
        self.fast_convergence = fast_convergence
        self.w_max: float | None = None
        self.k = 0.0
        self.w_est = 0.0
        self.cwnd_prior: float | None = None
        self.srtt: float | None = None
        self.epoch_start: float | None = None
        self._cwnd_epoch = 0.0
        self._alpha = self.ALPHA
        # The next congestion avoidance stage starts a flat curve (K = 0, W_max = cwnd then):
        # after a timeout (RFC 9438 4.8) or a slow start that ended without loss (4.10).
        self._flat_start = True
        self._last_ack: float | None = None
        self._fraction = 0.0  # bytes of cwnd growth below one byte, carried to the next ACK
        self._rto_backoff = False
        #: The largest flight since cwnd was last reduced (RFC 7661; initially IW).
        self.max_fs = self.cwnd

    # -- inputs --------------------------------------------------------------------------------

    def on_ack(self, acked: int, now: float, rtt: float | None, in_flight: int) -> None:
        if acked <= 0:
            return
        self._sample_rtt(rtt)
        self._rto_backoff = False
        if in_flight > self.max_fs:
            self.max_fs = in_flight
        if self.cwnd < self.ssthresh:
            # RFC 9438 (4.10) with RFC 5681 3.1 slow start: at most one MSS per ACK; and
            # (5.8, RFC 7661) no further than twice the largest flight.
            self.cwnd = _bounded(self.cwnd, self.cwnd + min(acked, self.mss), 2 * self.max_fs)
            return
        # RFC 9438 (5.8): no growth while the flow sends less than cwnd allows, and (4.2)
        # "t ... MUST NOT include periods during which cwnd has not been updated due to
        # application-limited behavior". Less than one MSS of unused window is not a limit:
        # the sender cannot fill it with a full-sized segment.
        app_limited = in_flight + self.mss <= self.cwnd
        epoch = self.epoch_start
        if epoch is None:
            self._begin_epoch(now)
            epoch = now
        elif app_limited and self._last_ack is not None and now > self._last_ack:
            epoch += now - self._last_ack
            self.epoch_start = epoch
        self._last_ack = now
        if app_limited:
            return
        self._avoid_congestion(acked, now - epoch)

    def on_congestion(self, now: float, in_flight: int) -> None:
        self._rto_backoff = False
        # RFC 9438 (4.7): a loss below the previous W_max means the saturation point is
        # falling; plateau lower to release bandwidth sooner.
        if self.fast_convergence and self.w_max is not None and self.cwnd < self.w_max:
            self.w_max = self.cwnd * (1 + self.BETA) / 2
        else:
            self.w_max = float(self.cwnd)
        # RFC 9438 (4.6): ssthresh from flight_size * beta_cubic; cwnd and ssthresh at least
        # 2 MSS on loss.
        self.cwnd_prior = float(self.cwnd)
        reduced = int(in_flight * self.BETA)
        self.cwnd = max(reduced, 2 * self.mss)
        self.ssthresh = max(reduced, 2 * self.mss)
        self._flat_start = False
        self._end_epoch()
        self.max_fs = 0

    def on_recovery_end(self, now: float, in_flight: int) -> None:
        # RFC 9438 (4.2): CUBIC does not change fast recovery; RFC 6582 3.2 step 3, option (1).
        self.cwnd = min(self.ssthresh, max(in_flight, self.mss) + self.mss)
        self._fraction = 0.0
        self._rto_backoff = False

    def on_timeout(self, now: float, in_flight: int) -> None:
        # RFC 9438 (4.8): ssthresh as in 4.6 (beta_cubic), cwnd as Reno's loss window.
        # RFC 5681 3.1: ssthresh is held constant when the timer fires again for the segment
        # it already retransmitted.
        if not self._rto_backoff:
            self.cwnd_prior = float(self.cwnd)
            self.ssthresh = max(int(in_flight * self.BETA), 2 * self.mss)
        self._rto_backoff = True
        self.cwnd = self.mss
        # RFC 9438 (4.8): the first congestion avoidance stage after a timeout starts with
        # K = 0 and W_max = the cwnd at its beginning.
        self._flat_start = True
        self._end_epoch()
        self.max_fs = 0

    def on_mss_change(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = max(self.cwnd, mss)
        # RFC 9438 (4.6): ssthresh is at least 2 MSS, also after the MSS grows.
        self.ssthresh = max(self.ssthresh, 2 * mss)
        if self.epoch_start is not None and not self._flat_start and self.w_max is not None:
            # Keep the curve through the same byte windows: K depends on the segment size.
            self.k = self._k(self.w_max, self._cwnd_epoch)

    def on_idle(self, now: float) -> None:
        # RFC 5681 4.1 (RFC 9438 5.8 leaves idle periods to it); the congestion avoidance
        # stage in progress ends: the next one starts when slow start reaches ssthresh.
        if initial_window(self.mss) < self.cwnd:
            _restart_window(self)
            self._end_epoch()

    # -- internals -----------------------------------------------------------------------------

    def _sample_rtt(self, rtt: float | None) -> None:
        if rtt is None or not math.isfinite(rtt) or rtt < 0:
            return
        # RFC 9438 (4.1.2): RTT is the smoothed RTT of RFC 6298 (2.2, 2.3), alpha = 1/8.
        self.srtt = rtt if self.srtt is None else self.srtt + (rtt - self.srtt) / 8

    def _k(self, w_max: float, cwnd_epoch: float) -> float:
        # RFC 9438 (4.2), equation 2, in segments; negative when the stage starts above
        # W_max, which puts it straight into the convex region.
        return math.cbrt((w_max - cwnd_epoch) / self.mss / self.C)

    def _w_cubic(self, t: float, w_max: float) -> float:
        """RFC 9438 (4.2), equation 1, in bytes."""
        d = t - self.k
        return (self.C * d * d * d) * self.mss + w_max

    def _begin_epoch(self, now: float) -> None:
        self.epoch_start = now
        self._last_ack = now
        self._cwnd_epoch = float(self.cwnd)
        self._fraction = 0.0
        if self.cwnd_prior is None:
            # RFC 9438 (4.1.2): cwnd_prior is also set "upon exiting the first slow start".
            self.cwnd_prior = float(self.cwnd)
        if self._flat_start or self.w_max is None:
            # RFC 9438 (4.8, 4.10): K = 0, W_max = cwnd at the start of the stage.
            self.w_max = self._cwnd_epoch
            self.k = 0.0
        else:
            self.k = self._k(self.w_max, self._cwnd_epoch)
        # RFC 9438 (4.3, 4.8): W_est starts at cwnd_epoch, alpha at alpha_cubic.
        self.w_est = self._cwnd_epoch
        self._alpha = self.ALPHA

    def _end_epoch(self) -> None:
        self.epoch_start = None
        self._last_ack = None
        self._fraction = 0.0

    def _avoid_congestion(self, acked: int, elapsed: float) -> None:
        """One new ACK in congestion avoidance, ``elapsed`` seconds into the stage."""
        w_max = self.w_max if self.w_max is not None else float(self.cwnd)
        cwnd = self.cwnd + self._fraction
        t = max(0.0, elapsed)
        # RFC 9438 (4.3), equation 4 with bytes for segments (byte counting).
        self.w_est += self._alpha * self.mss * acked / cwnd
        if self.cwnd_prior is not None and self.w_est >= self.cwnd_prior:
            # RFC 9438 (4.3): alpha_cubic SHOULD become 1 once W_est reaches cwnd_prior.
            self._alpha = 1.0
        if self._w_cubic(t, w_max) < self.w_est:
            # RFC 9438 (4.3): the Reno-friendly region; cwnd SHOULD be set to W_est. Never
            # lowered, though: cwnd may have climbed past W_est on the cubic curve.
            grown = max(cwnd, self.w_est)
        else:
            # RFC 9438 (4.2): target = W_cubic(t + RTT) bounded to [cwnd, 1.5 * cwnd], then
            # (4.4 concave, 4.5 convex) cwnd += (target - cwnd) / cwnd per segment acked.
            rtt = self.srtt if self.srtt is not None else 0.0
            target = min(max(self._w_cubic(t + rtt, w_max), cwnd), 1.5 * cwnd)
            grown = min(target, cwnd + (target - cwnd) * acked / cwnd)
        # grown >= cwnd, so the integer part never falls below the current window.
        self.cwnd = math.floor(grown)
        self._fraction = grown - self.cwnd


CONTROLLERS: dict[str, Callable[[int], CongestionControl]] = {"newreno": NewReno, "cubic": Cubic}


def make_controller(name: str, mss: int) -> CongestionControl:
    """A new controller by name ("newreno", "cubic").

    Args:
        name: a key of ``CONTROLLERS``.
        mss: the sender's maximum segment size in bytes.

    Returns:
        The controller, with RFC 6928's initial window.

    Raises:
        ValueError: an unknown name.
    """
    try:
        cls = CONTROLLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown congestion control {name!r}; have {sorted(CONTROLLERS)}"
        ) from None
    return cls(mss)
