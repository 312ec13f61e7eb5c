"""The token bucket that limits ICMP errors (netstack.proto.icmp.ratelimit), time as a float."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.icmp.ratelimit import TokenBucket


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (10, 0), (10, 0.5), (10, -3)])
def test_bad_arguments(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_burst_then_refused() -> None:
    bucket = TokenBucket(rate=4, burst=5)
    assert [bucket.allow(100.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert bucket.limited == 2


def test_refill_at_rate() -> None:
    bucket = TokenBucket(rate=4, burst=5)  # one token every 0.25 s
    for _ in range(5):
        assert bucket.allow(0.0)
    assert not bucket.allow(0.0)
    assert not bucket.allow(0.125)  # half a token
    assert bucket.allow(0.25)  # one whole token
    assert not bucket.allow(0.25)
    assert [bucket.allow(1.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.limited == 4


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=100, burst=3)
    for _ in range(3):
        assert bucket.allow(0.0)
    assert [bucket.allow(1000.0) for _ in range(5)] == [True] * 3 + [False] * 2


def test_fractional_tokens_accumulate() -> None:
    bucket = TokenBucket(rate=2, burst=1)
    assert bucket.allow(0.0)
    assert not bucket.allow(0.25)  # half a token, kept
    assert bucket.allow(0.5)  # the other half makes one


def test_time_going_backwards_mints_nothing() -> None:
    bucket = TokenBucket(rate=2, burst=2)
    assert bucket.allow(10.0) and bucket.allow(10.0)
    assert not bucket.allow(5.0)  # the clock stepped back
    # Tokens are earned from the latest time seen (10.0), not from 5.0: at 10.25 half a
    # token, at 10.5 one.
    assert not bucket.allow(10.25)
    assert bucket.allow(10.5)
    assert bucket.limited == 2


def test_first_call_has_the_whole_burst_at_any_time() -> None:
    bucket = TokenBucket(rate=1, burst=2)
    assert bucket.allow(-50.0) and bucket.allow(-50.0)
    assert not bucket.allow(-50.0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 1000.0),
    burst=st.integers(1, 20),
    times=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, times: list[float]
) -> None:
    bucket = TokenBucket(rate, burst)
    allowed = sum(bucket.allow(t) for t in times)
    # Time may jump around; only its forward progress earns tokens.
    span = max(times) - times[0]
    assert allowed <= burst + rate * span + 1e-6
    assert allowed + bucket.limited == len(times)


@settings(max_examples=100, deadline=None)
@given(rate=st.floats(0.5, 100.0), burst=st.integers(1, 20), n=st.integers(1, 100))
def test_patient_caller_is_never_refused(rate: float, burst: int, n: int) -> None:
    bucket = TokenBucket(rate, burst)
    step = 1.0 / rate * 1.000001
    assert all(bucket.allow(i * step) for i in range(n))
    assert bucket.limited == 0
