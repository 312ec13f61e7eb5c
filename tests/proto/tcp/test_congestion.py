"""Congestion control (netstack.proto.tcp.congestion): NewReno per RFC 5681, RFC 6582 and
RFC 6928; CUBIC per RFC 9438. Driven without an event loop: time is a plain float.

The CUBIC simulations model an ACK-clocked sender that is limited by cwnd: each round trip, a
full window is acknowledged in MSS-sized pieces spread evenly over the RTT, and before each
acknowledgement the sender has refilled the window (``in_flight == cwnd``).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.tcp.congestion import (
    CONTROLLERS,
    CongestionControl,
    Cubic,
    NewReno,
    initial_window,
    make_controller,
)

MSS = 1460
C = 0.4
BETA = 0.7


def one_round(cc: CongestionControl, start: float, rtt: float | None, piece: int = MSS) -> float:
    """Acknowledge one full window (as it was at the start of the round) over one RTT, in
    ACKs of ``piece`` bytes.

    Returns the time at the end of the round.
    """
    period = rtt if rtt is not None else 0.1
    window = cc.cwnd
    pieces = [piece] * (window // piece) + ([window % piece] if window % piece else [])
    for i, acked in enumerate(pieces):
        cc.on_ack(acked, start + period * i / len(pieces), rtt, cc.cwnd)
    return start + period


def grow_to(cc: CongestionControl, cwnd: int, rtt: float | None = 0.1) -> None:
    """Slow start (one MSS per ACK) up to at least ``cwnd`` bytes."""
    while cc.cwnd < cwnd:
        cc.on_ack(cc.mss, 0.0, rtt, cc.cwnd)


def w_cubic(t: float, w_max_segments: float, k: float) -> float:
    """RFC 9438 equation 1, in segments."""
    return C * (t - k) ** 3 + w_max_segments


# -- NewReno ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mss", "expected"),
    [(536, 5360), (1460, 14600), (4380, 14600), (8960, 17920), (1000, 10000)],
)
@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_initial_window_rfc6928(name: str, mss: int, expected: int) -> None:
    # RFC 6928 2: min(10*MSS, max(2*MSS, 14600)), worked out by hand.
    assert initial_window(mss) == expected
    assert make_controller(name, mss).cwnd == expected


def test_newreno_slow_start_one_mss_per_ack_at_most() -> None:
    cc = NewReno(MSS)
    assert cc.cwnd == 10 * MSS
    cc.on_ack(MSS, 0.0, 0.1, cc.cwnd)
    assert cc.cwnd == 11 * MSS
    # RFC 5681 3.1 / RFC 3465 (L = 1 MSS): a stretch ACK still adds one MSS.
    cc.on_ack(3 * MSS, 0.0, 0.1, cc.cwnd)
    assert cc.cwnd == 12 * MSS
    # A small ACK adds only what it acknowledged.
    cc.on_ack(100, 0.0, 0.1, cc.cwnd)
    assert cc.cwnd == 12 * MSS + 100


def test_newreno_slow_start_doubles_per_round_trip() -> None:
    cc = NewReno(MSS)
    now = 0.0
    for expected in (20, 40, 80):
        now = one_round(cc, now, 0.05)
        assert cc.cwnd == expected * MSS


def test_newreno_congestion_avoidance_one_mss_per_round_trip() -> None:
    cc = NewReno(MSS)
    grow_to(cc, 40 * MSS)
    cc.on_congestion(0.0, 40 * MSS)
    assert cc.cwnd == cc.ssthresh == 20 * MSS
    now = 0.0
    for rounds in range(1, 11):
        now = one_round(cc, now, 0.05)
        assert cc.cwnd == (20 + rounds) * MSS
    # Less than a window's worth of ACKs does not grow cwnd.
    before = cc.cwnd
    for _ in range(cc.cwnd // MSS - 1):
        cc.on_ack(MSS, now, 0.05, cc.cwnd)
    assert cc.cwnd == before


@pytest.mark.parametrize(
    ("in_flight", "expected"),
    [(40 * MSS, 20 * MSS), (7 * MSS, 7 * MSS // 2), (3 * MSS, 2 * MSS), (0, 2 * MSS)],
)
def test_newreno_congestion_halves_flight_size(in_flight: int, expected: int) -> None:
    # RFC 5681 3.2 equation 4: ssthresh = max(FlightSize / 2, 2 * SMSS).
    cc = NewReno(MSS)
    grow_to(cc, 50 * MSS)
    cc.on_congestion(1.0, in_flight)
    assert cc.ssthresh == expected
    assert cc.cwnd == expected


def test_newreno_timeout_loss_window_and_held_ssthresh() -> None:
    cc = NewReno(MSS)
    grow_to(cc, 30 * MSS)
    cc.on_timeout(1.0, 30 * MSS)
    assert cc.cwnd == MSS
    assert cc.ssthresh == 15 * MSS
    # RFC 5681 3.1: the timer fires again for the same segment: ssthresh is held constant,
    # even if the connection now counts less in flight.
    cc.on_timeout(2.0, MSS)
    assert cc.cwnd == MSS
    assert cc.ssthresh == 15 * MSS
    # After new data is acknowledged a later timeout is a new loss event.
    cc.on_ack(MSS, 3.0, 0.1, MSS)
    cc.on_timeout(4.0, 6 * MSS)
    assert cc.ssthresh == 3 * MSS
    assert cc.cwnd == MSS


def test_newreno_timeout_then_slow_start_to_ssthresh() -> None:
    cc = NewReno(MSS)
    grow_to(cc, 20 * MSS)
    cc.on_timeout(1.0, 20 * MSS)
    now = 1.0
    now = one_round(cc, now, 0.1)
    assert cc.cwnd == 2 * MSS
    now = one_round(cc, now, 0.1)
    assert cc.cwnd == 4 * MSS
    now = one_round(cc, now, 0.1)
    now = one_round(cc, now, 0.1)
    assert cc.cwnd == 10 * MSS  # reached ssthresh: congestion avoidance from here
    now = one_round(cc, now, 0.1)
    assert cc.cwnd == 11 * MSS


@pytest.mark.parametrize("name", ["newreno", "cubic"])
@pytest.mark.parametrize(
    ("in_flight", "expected_segments"),
    # RFC 6582 3.2 step 3 option (1): min(ssthresh, max(FlightSize, SMSS) + SMSS).
    [(100 * MSS, None), (5 * MSS, 6), (MSS // 2, 2), (0, 2)],
)
def test_recovery_end_deflation_rfc6582_option_1(
    name: str, in_flight: int, expected_segments: int | None
) -> None:
    cc = make_controller(name, MSS)
    grow_to(cc, 40 * MSS)
    cc.on_congestion(1.0, 40 * MSS)
    ssthresh = cc.ssthresh
    cc.on_recovery_end(1.5, in_flight)
    expected = ssthresh if expected_segments is None else expected_segments * MSS
    assert cc.cwnd == expected
    assert cc.ssthresh == ssthresh


def test_newreno_mss_increase_keeps_a_whole_segment() -> None:
    cc = NewReno(536)
    cc.on_timeout(0.0, 0)
    assert cc.ssthresh == 2 * 536
    cc.on_mss_change(1460)
    assert cc.cwnd >= 1460
    cc.on_recovery_end(0.1, 0)
    assert cc.cwnd >= 1460


# -- CUBIC -----------------------------------------------------------------------------------


def test_make_controller_names() -> None:
    assert isinstance(make_controller("cubic", MSS), Cubic)
    assert isinstance(make_controller("newreno", MSS), NewReno)
    assert set(CONTROLLERS) == {"newreno", "cubic"}
    assert make_controller("cubic", 536).mss == 536


@pytest.mark.parametrize("name", ["", "reno", "CUBIC", "bbr", "cubic "])
def test_make_controller_rejects_unknown_names(name: str) -> None:
    with pytest.raises(ValueError, match="unknown congestion control"):
        make_controller(name, MSS)


def test_cubic_slow_start_like_newreno() -> None:
    cubic, reno = Cubic(MSS), NewReno(MSS)
    for acked in (MSS, 3 * MSS, 100, MSS, 7):
        cubic.on_ack(acked, 0.0, 0.1, cubic.cwnd)
        reno.on_ack(acked, 0.0, 0.1, reno.cwnd)
        assert cubic.cwnd == reno.cwnd


def test_cubic_multiplicative_decrease() -> None:
    cc = Cubic(MSS)
    grow_to(cc, 100 * MSS)
    cc.on_congestion(1.0, cc.cwnd)
    # RFC 9438 4.6: cwnd = ssthresh = flight_size * beta; W_max = cwnd before the reduction.
    assert cc.w_max == 100 * MSS
    assert cc.cwnd == pytest.approx(BETA * cc.w_max, abs=1)
    assert cc.ssthresh == cc.cwnd
    assert cc.epoch_start is None


def test_cubic_decrease_uses_flight_size_and_floor_of_two_segments() -> None:
    cc = Cubic(MSS)
    grow_to(cc, 100 * MSS)
    cc.on_congestion(1.0, 50 * MSS)  # application-limited: only half the window was out
    assert cc.cwnd == cc.ssthresh == 35 * MSS
    assert cc.w_max == 100 * MSS
    cc.on_congestion(2.0, 2 * MSS)
    assert cc.cwnd == cc.ssthresh == 2 * MSS


def test_cubic_regrows_to_w_max_at_k_then_convex() -> None:
    rtt = 0.1
    cc = Cubic(MSS)
    grow_to(cc, 100 * MSS)
    cc.on_congestion(0.0, cc.cwnd)
    w_max = 100.0
    k = math.cbrt(w_max * (1 - BETA) / C)  # cbrt(75) ~ 4.217 s
    now = one_round(cc, 0.0, rtt)
    assert cc.epoch_start == 0.0
    assert cc.k == pytest.approx(k)
    samples: list[tuple[float, float]] = []
    while now < 2.2 * k:
        now = one_round(cc, now, rtt)
        samples.append((now, cc.cwnd / MSS))

    def at(t: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - t))[1]

    for t, cwnd in samples:
        # Never below the curve (by more than a segment), never ahead of one RTT later or
        # of the Reno estimate.
        assert cwnd >= w_cubic(t, w_max, k) - 1
        assert cwnd <= max(w_cubic(t + rtt, w_max, k), cc.w_est / MSS) + 1
    # Concave: fast at first, flattening out below W_max.
    assert 80 < at(k / 2) < w_max - 1
    assert at(k / 2) - at(0.3) > at(k - 0.3) - at(k / 2)
    # The plateau: W_max at t = K.
    assert at(k) == pytest.approx(w_max, abs=1)
    # Convex: beyond W_max, growing faster and faster.
    assert at(2 * k) == pytest.approx(w_cubic(2 * k, w_max, k), rel=0.02)
    assert at(2 * k) > 1.25 * w_max
    late = [cwnd for t, cwnd in samples if t > 1.9 * k]
    steps = [b - a for a, b in zip(late, late[1:], strict=False)]
    assert all(b > a for a, b in zip(steps, steps[1:], strict=False))


def test_cubic_growth_counts_bytes_not_acks() -> None:
    # RFC 9438 4.1, 4.3: with windows in bytes, bytes acknowledged replace segments_acked;
    # delayed or tiny ACKs must not change how fast the window grows.
    results = []
    for piece in (MSS, 2 * MSS, 100):
        cc = Cubic(MSS)
        grow_to(cc, 100 * MSS)
        cc.on_congestion(0.0, cc.cwnd)
        now = 0.0
        for _ in range(15):
            now = one_round(cc, now, 0.1, piece)
        results.append(cc.cwnd)
    assert results[0] > 85 * MSS
    assert results[1] == pytest.approx(results[0], rel=0.003)
    assert results[2] == pytest.approx(results[0], rel=0.003)


def test_cubic_growth_per_round_trip_is_below_slow_start() -> None:
    # RFC 9438 4.2: target is at most 1.5 * cwnd. A loss while only 2 segments were out
    # leaves cwnd far below the curve, which would otherwise be reached in one round trip.
    cc = Cubic(MSS)
    grow_to(cc, 100 * MSS)
    cc.on_congestion(0.0, 2 * MSS)
    assert cc.cwnd == 2 * MSS
    now = 0.0
    for rounds in range(6):
        before = cc.cwnd
        now = one_round(cc, now, 1.0)
        assert cc.cwnd <= 1.5 * before + 1
        if rounds:  # (the first ACK of the stage is Reno-friendly: W_cubic(0) < W_est)
            assert cc.cwnd >= 1.4 * before


def test_cubic_target_uses_smoothed_rtt_when_none_is_given() -> None:
    def run(grow_rtt: float | None, ack_rtt: float | None) -> Cubic:
        cc = Cubic(MSS)
        grow_to(cc, 100 * MSS, rtt=grow_rtt)  # the only RTT samples come from slow start
        cc.on_congestion(0.0, cc.cwnd)
        now = 0.0
        for _ in range(5):  # one second into a K of 4.2 s: the steep part of the curve
            window = cc.cwnd
            for i in range(window // MSS):
                cc.on_ack(MSS, now + 0.2 * i / (window // MSS), ack_rtt, cc.cwnd)
            now += 0.2
        return cc

    given_rtt = run(0.2, 0.2)
    remembered = run(0.2, None)
    assert remembered.srtt == pytest.approx(0.2)
    assert remembered.cwnd == given_rtt.cwnd
    # Looking one RTT ahead matters: with no RTT ever known, growth lags behind.
    no_rtt = run(None, None)
    assert no_rtt.srtt is None
    assert no_rtt.cwnd < given_rtt.cwnd - MSS


def test_cubic_reno_friendly_region_small_bdp() -> None:
    rtt = 0.001
    cc = Cubic(MSS)
    grow_to(cc, 20 * MSS)
    cc.on_congestion(0.0, cc.cwnd)
    k = math.cbrt(20 * (1 - BETA) / C)
    alpha = 3 * (1 - BETA) / (1 + BETA)
    # Reno's estimate grows alpha segments per RTT from 14 until it reaches cwnd_prior = 20,
    # then one segment per RTT (RFC 9438 4.3).
    rounds_to_prior = (20 - 14) / alpha
    now = 0.0
    for rounds in range(1, 201):
        now = one_round(cc, now, rtt)
        if rounds <= rounds_to_prior:
            reno = 14 + alpha * rounds
        else:
            reno = 20 + (rounds - rounds_to_prior)
        assert cc.cwnd / MSS == pytest.approx(reno, rel=0.03, abs=0.3), rounds
    # The cubic curve alone would still be below W_max, far below where Reno is.
    t = now - 0.0
    assert w_cubic(t + rtt, 20, k) < 20
    assert cc.cwnd / MSS > 10 * w_cubic(t + rtt, 20, k)


def test_cubic_fast_convergence() -> None:
    rtt = 0.1
    cc = Cubic(MSS)
    grow_to(cc, 100 * MSS)
    cc.on_congestion(0.0, cc.cwnd)
    now = 0.0
    while cc.cwnd < 90 * MSS:
        now = one_round(cc, now, rtt)
    second = cc.cwnd
    assert second < 95 * MSS
    cc.on_congestion(now, second)
    # RFC 9438 4.7: below the previous W_max, W_max = cwnd * (1 + beta) / 2.
    assert cc.w_max == pytest.approx(second * (1 + BETA) / 2)
    assert cc.cwnd == pytest.approx(second * BETA, abs=1)
    # The next stage plateaus at the lowered W_max: K from W_max - cwnd_epoch.
    epoch_cwnd = cc.cwnd
    now = one_round(cc, now, rtt)
    assert cc.k == pytest.approx(math.cbrt((second * (1 + BETA) / 2 - epoch_cwnd) / MSS / C))
    assert cc.k < math.cbrt(second / MSS * (1 - BETA) / C)


def test_cubic_fast_convergence_disabled_and_new_maximum() -> None:
    for fast_convergence in (True, False):
        cc = Cubic(MSS, fast_convergence=fast_convergence)
        grow_to(cc, 100 * MSS)
        cc.on_congestion(0.0, cc.cwnd)
        now = 0.0
        while cc.cwnd < 90 * MSS:
            now = one_round(cc, now, 0.1)
        second = cc.cwnd
        cc.on_congestion(now, second)
        if fast_convergence:
            assert cc.w_max is not None
            assert cc.w_max < second
        else:
            assert cc.w_max == second
    # A loss above the previous W_max remembers the new, higher maximum.
    cc = Cubic(MSS)
    grow_to(cc, 50 * MSS)
    cc.on_congestion(0.0, cc.cwnd)
    now = 0.0
    while cc.cwnd <= 60 * MSS:
        now = one_round(cc, now, 0.1)
    higher = cc.cwnd
    cc.on_congestion(now, higher)
    assert cc.w_max == higher


def test_cubic_timeout_resets_window_and_epoch() -> None:
    rtt = 0.1
    cc = Cubic(MSS)
    grow_to(cc, 100 * MSS)
    cc.on_congestion(0.0, cc.cwnd)
    now = 0.0
    for _ in range(5):
        now = one_round(cc, now, rtt)
    assert cc.epoch_start == 0.0
    in_flight = cc.cwnd
    cc.on_timeout(now, in_flight)
    # RFC 9438 4.8: cwnd as Reno (1 MSS), ssthresh with beta_cubic.
    assert cc.cwnd == MSS
    assert cc.ssthresh == int(in_flight * BETA)
    assert cc.epoch_start is None
    ssthresh = cc.ssthresh
    cc.on_timeout(now + 1, MSS)  # backed-off timer, same segment: ssthresh held
    assert cc.ssthresh == ssthresh
    assert cc.cwnd == MSS
    now += 1
    while cc.cwnd < cc.ssthresh:
        cc.on_ack(MSS, now, rtt, cc.cwnd)
        assert cc.epoch_start is None  # slow start: no stage yet
    now += rtt
    epoch_cwnd = cc.cwnd
    cc.on_ack(MSS, now, rtt, cc.cwnd)
    # First congestion avoidance after a timeout: K = 0, W_max = cwnd at its start.
    assert cc.epoch_start == now
    assert cc.k == 0
    assert cc.w_max == epoch_cwnd
    assert cc.w_est >= epoch_cwnd


def test_cubic_application_limited_time_is_not_counted() -> None:
    rtt = 0.1
    steady, paused = Cubic(MSS), Cubic(MSS)
    for cc in (steady, paused):
        grow_to(cc, 100 * MSS)
        cc.on_congestion(0.0, cc.cwnd)
    now_s = now_p = 0.0
    for _ in range(10):
        now_s = one_round(steady, now_s, rtt)
        now_p = one_round(paused, now_p, rtt)
    # Ten seconds of a trickle: the sender keeps only two segments in flight.
    frozen = paused.cwnd
    for _ in range(100):
        paused.on_ack(MSS, now_p, rtt, 2 * MSS)
        now_p += rtt
    assert paused.cwnd == frozen
    # Back to a full window: the curve resumes where it stopped instead of jumping ahead.
    for _ in range(10):
        now_s = one_round(steady, now_s, rtt)
        now_p = one_round(paused, now_p, rtt)
    assert paused.cwnd == pytest.approx(steady.cwnd, rel=0.01)
    assert paused.cwnd < 100 * MSS


def test_cubic_mss_change() -> None:
    cc = Cubic(536)
    grow_to(cc, 50 * 536)
    cc.on_congestion(0.0, cc.cwnd)
    assert cc.cwnd == 18760
    cc.on_ack(536, 0.0, 0.1, cc.cwnd)  # the stage starts at cwnd = 18760 bytes
    assert cc.k == pytest.approx(math.cbrt((26800 - 18760) / 536 / C))
    cc.on_mss_change(MSS)
    # The same byte windows, counted in larger segments: a shorter climb to W_max.
    assert cc.k == pytest.approx(math.cbrt((26800 - 18760) / MSS / C))
    assert cc.cwnd >= MSS
    assert cc.ssthresh >= 2 * MSS


# -- Any sequence of inputs ------------------------------------------------------------------

_ack = st.tuples(
    st.just("ack"),
    st.integers(min_value=1, max_value=200_000),  # acked bytes
    st.one_of(st.none(), st.floats(min_value=0.0, max_value=5.0)),  # rtt sample
    st.floats(min_value=0.0, max_value=30.0),  # time step
    st.integers(min_value=0, max_value=2_000_000),  # in flight before the ACK
)
_event = st.tuples(
    st.sampled_from(["loss", "recovery_end", "timeout", "idle"]),
    st.integers(min_value=0, max_value=2_000_000),
    st.none(),
    st.floats(min_value=0.0, max_value=30.0),
    st.integers(min_value=0, max_value=2_000_000),
)
_mss = st.tuples(
    st.just("mss"),
    st.integers(min_value=200, max_value=9000),
    st.none(),
    st.just(0.0),
    st.just(0),
)
_steps = st.lists(st.one_of(_ack, _ack, _ack, _event, _mss), max_size=200)


def _check_sane(cc: CongestionControl) -> None:
    assert isinstance(cc.cwnd, int)
    assert isinstance(cc.ssthresh, int)
    assert cc.cwnd >= cc.mss > 0
    assert cc.ssthresh >= 2 * cc.mss
    if isinstance(cc, Cubic):
        for value in (cc.w_max, cc.k, cc.w_est, cc.cwnd_prior, cc.srtt, cc.epoch_start):
            assert value is None or math.isfinite(value)


@pytest.mark.parametrize("name", ["newreno", "cubic"])
@settings(max_examples=300, deadline=None)
@given(
    mss=st.sampled_from([536, 1220, 1460, 8960]),
    steps=_steps,
    with_flight=st.booleans(),
)
def test_any_sequence_keeps_a_sane_window(
    name: str, mss: int, steps: list[tuple[str, int, float | None, float, int]], with_flight: bool
) -> None:
    cc = make_controller(name, mss)
    now = 0.0
    _check_sane(cc)
    for kind, size, rtt, dt, in_flight in steps:
        now += dt
        if kind == "ack":
            # Either the sender keeps the window full, or whatever the strategy drew.
            flight = cc.cwnd if with_flight else in_flight
            before = cc.cwnd
            cc.on_ack(size, now, rtt, flight)
            assert cc.cwnd >= before  # acknowledgements never shrink the window
            if cc.cwnd <= cc.ssthresh and before < cc.ssthresh:
                assert cc.cwnd - before <= cc.mss  # slow start: at most one MSS per ACK
        elif kind == "loss":
            cc.on_congestion(now, size)
            factor = 0.5 if name == "newreno" else BETA
            assert cc.ssthresh == max(int(size * factor), 2 * cc.mss)
            assert cc.cwnd == cc.ssthresh
        elif kind == "recovery_end":
            ssthresh = cc.ssthresh
            cc.on_recovery_end(now, size)
            assert cc.cwnd <= ssthresh
        elif kind == "timeout":
            cc.on_timeout(now, size)
            assert cc.cwnd == cc.mss
        elif kind == "idle":
            before = cc.cwnd
            cc.on_idle(now)
            assert cc.cwnd == min(before, initial_window(cc.mss))  # RFC 5681 4.1's RW
        else:
            cc.on_mss_change(size)
            assert cc.mss == size
        _check_sane(cc)
