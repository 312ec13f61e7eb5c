"""Tests of netstack.proto.tcp.rtt: the retransmission timer's estimator (RFC 6298), alone.

Fixed cases for each rule (2.2 first sample, 2.3 later samples, 2.4/2.5 clamps, 3 Karn's
rule, 5.5 backoff, and the timestamp echo floor after a timeout); hypothesis drives arbitrary
sequences of samples, timings, retransmissions, echoes and timeouts against a model written
from the RFC's text. The connection-level behaviour is in test_tcp_retransmit.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.tcp.rtt import MAX_ECHO_SAMPLE_MS, RttEstimator
from netstack.proto.tcp.seq import MOD, add, diff

SETTINGS = settings(max_examples=400, deadline=None)


def estimator(rto_initial: float = 1.0, rto_min: float = 0.2, rto_max: float = 60.0):
    return RttEstimator(rto_initial, rto_min, rto_max)


# -- fixed cases ----------------------------------------------------------------------------------


def test_initial_rto() -> None:
    """RFC 6298 2.1: until a sample, RTO is the initial value; SRTT is unset."""
    r = estimator(rto_initial=1.0)
    assert r.rto == 1.0 and r.srtt is None and r.rttvar == 0.0


def test_first_sample() -> None:
    """RFC 6298 2.2: SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G, K*RTTVAR)."""
    r = estimator()
    assert r.sample(1.0, 1.3) == pytest.approx(0.3)
    assert r.srtt == pytest.approx(0.3)
    assert r.rttvar == pytest.approx(0.15)
    assert r.rto == pytest.approx(0.9)


def test_later_sample() -> None:
    """RFC 6298 2.3: RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'| first, then SRTT <- 7/8 SRTT +
    1/8 R'."""
    r = estimator()
    r.sample(0.0, 0.3)
    r.sample(1.0, 1.1)
    rttvar = 0.75 * 0.15 + 0.25 * abs(0.3 - 0.1)
    srtt = 0.875 * 0.3 + 0.125 * 0.1
    assert r.rttvar == pytest.approx(rttvar)
    assert r.srtt == pytest.approx(srtt)
    assert r.rto == pytest.approx(srtt + 4 * rttvar)


def test_minimum_and_granularity() -> None:
    """RFC 6298 2.4: a small RTO is rounded up to the minimum; 2.3: the variance term is at
    least the clock granularity G."""
    r = estimator(rto_min=0.2)
    r.sample(0.0, 0.05)
    assert r.rto == pytest.approx(0.2)
    r = estimator(rto_min=0.0)
    r.sample(0.0, 0.0)
    assert r.rto == pytest.approx(0.001)  # SRTT 0, RTTVAR 0: G alone


def test_maximum() -> None:
    """RFC 6298 2.5: a maximum may be placed on RTO, at least 60 s."""
    r = estimator(rto_max=60.0)
    r.sample(0.0, 50.0)
    assert r.rto == 60.0


def test_negative_sample_ignored() -> None:
    r = estimator()
    r.time(5, 2.0)
    assert r.sample(2.0, 1.0) is None
    assert r.srtt is None and r.timed_seq == 5  # still timing


def test_one_segment_timed_at_a_time() -> None:
    r = estimator()
    r.time(100, 1.0)
    r.time(200, 1.5)
    assert (r.timed_seq, r.timed_at) == (100, 1.0)
    assert r.on_ack(101, 2.0) == pytest.approx(1.0)
    assert r.timed_seq is None


def test_ack_must_cover_the_timed_segment() -> None:
    r = estimator()
    r.time(100, 1.0)
    assert r.on_ack(100, 2.0) is None  # SND.UNA at the timed byte: not yet acknowledged
    assert r.srtt is None
    assert r.on_ack(101, 2.0) == pytest.approx(1.0)


def test_karn_no_sample_from_a_retransmission() -> None:
    """RFC 6298 3: the ACK of a retransmitted segment cannot say which copy it answers."""
    r = estimator()
    r.time(1000, 1.0)
    r.on_retransmit(500)  # a resend from below the timed byte covers it
    assert r.on_ack(2000, 2.0) is None and r.srtt is None
    r.time(3000, 3.0)
    r.on_retransmit(3000)  # the timed segment itself
    assert r.on_ack(4000, 4.0) is None and r.srtt is None
    r = estimator()
    r.time(1000, 1.0)
    r.on_retransmit(1001)  # above it: the timed segment was not resent
    assert r.on_ack(2000, 2.0) == pytest.approx(1.0)


def test_backoff_doubles_and_stops_timing() -> None:
    """RFC 6298 5.5: RTO <- RTO * 2, up to the maximum; 5.7/3: the timed segment is
    abandoned; SRTT stays until a new sample."""
    r = estimator(rto_max=5.0)
    r.sample(0.0, 0.5)  # RTO 1.5
    rto, srtt = r.rto, r.srtt
    r.time(7, 2.0)
    r.backoff(None)
    assert r.rto == pytest.approx(2 * rto) and r.srtt == srtt and r.timed_seq is None
    for _ in range(10):
        r.backoff(None)
    assert r.rto == 5.0


def test_echo_sample() -> None:
    """RFC 7323 4.1: the echoed timestamp gives the sample (1 ms ticks)."""
    r = estimator()
    assert r.on_echo(1000, 1250, 10.0) == pytest.approx(0.25)
    assert r.srtt == pytest.approx(0.25)


def test_echo_across_the_clock_wrap() -> None:
    """RFC 7323 5.2: timestamps compare modulo 2**32."""
    r = estimator()
    assert r.on_echo(MOD - 100, 150, 10.0) == pytest.approx(0.25)


def test_echo_too_old_ignored() -> None:
    r = estimator()
    assert r.on_echo(0, MAX_ECHO_SAMPLE_MS, 100.0) is None
    assert r.srtt is None


def test_echo_floor_after_a_timeout() -> None:
    """After a timeout, an echo from before the retransmission (the original arrived, its
    ACK was lost) gives no sample; the first echo from after it does, and lifts the floor."""
    r = estimator()
    r.on_echo(900, 1000, 1.0)  # SRTT 0.1
    r.backoff(5000)  # the timeout fired when our clock read 5000
    backed_off = r.rto
    assert r.on_echo(1100, 5100, 5.1) is None  # sent before the timeout
    assert r.srtt == pytest.approx(0.1) and r.rto == backed_off and r.ts_floor == 5000
    assert r.on_echo(5000, 5100, 5.1) == pytest.approx(0.1)
    assert r.ts_floor is None and r.rto < backed_off


def test_echo_floor_lifted_then_old_echoes_count() -> None:
    """Once an echo from after the timeout came back, the floor is gone: the usual rule
    (any echo is a sample) holds again."""
    r = estimator()
    r.backoff(5000)
    r.on_echo(5000, 5100, 5.1)
    assert r.on_echo(4900, 5200, 5.2) == pytest.approx(0.3)


# -- properties against a model -------------------------------------------------------------------


class Model:
    """RFC 6298 as written, with the echo floor."""

    def __init__(self, rto0: float, lo: float, hi: float) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = rto0
        self.lo, self.hi = lo, hi
        self.timed: tuple[int, float] | None = None
        self.floor: int | None = None

    def measure(self, r: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = r, r / 2
        else:
            self.rttvar = (1 - 1 / 4) * self.rttvar + 1 / 4 * abs(self.srtt - r)
            self.srtt = (1 - 1 / 8) * self.srtt + 1 / 8 * r
        self.rto = min(self.hi, max(self.lo, self.srtt + max(0.001, 4 * self.rttvar)))
        self.timed = None


ops = st.lists(
    st.one_of(
        st.tuples(st.just("sample"), st.floats(0.0, 30.0)),
        st.tuples(st.just("time"), st.integers(0, MOD - 1)),
        st.tuples(st.just("ack"), st.integers(-5000, 5000)),
        st.tuples(st.just("retransmit"), st.integers(-5000, 5000)),
        st.tuples(st.just("echo"), st.integers(-70_000, 70_000)),
        st.tuples(st.just("timeout"), st.booleans()),
    ),
    max_size=60,
)


@SETTINGS
@given(
    ops=ops,
    rto0=st.floats(0.5, 3.0),
    lo=st.floats(0.0, 1.0),
    hi=st.floats(1.0, 120.0),
    clock0=st.integers(0, MOD - 1),
)
def test_estimator_follows_rfc6298(
    ops: list[tuple[str, object]], rto0: float, lo: float, hi: float, clock0: int
) -> None:
    est, model = RttEstimator(rto0, lo, hi), Model(rto0, lo, hi)
    now = 100.0
    for op, arg in ops:
        now += 0.01
        clock = add(clock0, int(now * 1000))
        if op == "sample":
            assert isinstance(arg, float)
            got = est.sample(now - arg, now)
            assert got == pytest.approx(arg, abs=1e-9)
            model.measure(got)
        elif op == "time":
            assert isinstance(arg, int)
            est.time(arg, now)
            if model.timed is None:
                model.timed = (arg, now)
        elif op == "ack":
            assert isinstance(arg, int)
            if model.timed is None:
                assert est.on_ack(arg, now) is None
                continue
            seq, at = model.timed
            ack = add(seq, arg)
            got = est.on_ack(ack, now)
            if arg > 0:  # covers the timed segment
                assert got == pytest.approx(now - at)
                model.measure(now - at)
            else:
                assert got is None
        elif op == "retransmit":
            assert isinstance(arg, int)
            if model.timed is None:
                est.on_retransmit(arg)
                continue
            seq = add(model.timed[0], arg)
            est.on_retransmit(seq)
            if arg <= 0:  # Karn: the timed byte went out again
                model.timed = None
        elif op == "echo":
            assert isinstance(arg, int)
            ecr = add(clock, -arg)
            if ecr == 0:
                continue  # RFC 7323: a zero echo is no echo; the connection skips it
            got = est.on_echo(ecr, clock, now)
            if model.floor is not None and diff(ecr, model.floor) < 0:
                assert got is None  # from before the timeout
            else:
                model.floor = None
                ticks = arg % MOD
                if ticks < MAX_ECHO_SAMPLE_MS:
                    assert got == pytest.approx(ticks / 1000.0, abs=1e-6)
                    model.measure(got)
                else:
                    assert got is None
        else:
            with_ts = bool(arg)
            est.backoff(clock if with_ts else None)
            model.rto = min(model.rto * 2, hi)
            model.timed = None
            if with_ts:
                model.floor = clock
        # The state matches the model's, and the clamps hold whatever happened.
        assert est.srtt == model.srtt
        assert est.rttvar == model.rttvar
        assert est.rto == pytest.approx(model.rto)
        assert est.ts_floor == model.floor
        assert (est.timed_seq is None) == (model.timed is None)
        if est.srtt is not None:
            assert lo <= est.rto <= max(hi, lo)
        assert est.rto <= max(hi, rto0)
