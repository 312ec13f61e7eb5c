"""Tests of netstack.proto.tcp.seq: sequence-number arithmetic modulo 2**32 (RFC 9293 3.4,
RFC 1982).

Fixed cases sit at the places where plain integer comparison goes wrong: across the wrap from
2**32 - 1 to 0, and at the half-way distance 2**31, where RFC 1982 3.2 leaves the comparison
undefined (netstack then answers "neither before nor after").
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netstack.proto.tcp.seq import MOD, add, diff, ge, gt, le, lt, max_seq, min_seq

SETTINGS = settings(max_examples=500, deadline=None)
TOP = MOD - 1
HALF = 1 << 31

seqs = st.integers(0, TOP)
# distances that RFC 1982 defines a comparison for
distances = st.integers(-(HALF - 1), HALF - 1)


def test_modulus() -> None:
    assert MOD == 2**32


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (0, 1),
        (TOP, 0),  # across the wrap
        (TOP - 5, 10),
        (0xFFFFFF00, 0x10),
        (1000, 1000 + HALF - 1),  # the farthest "after" there is
        (HALF + 7, 6),  # ... across the wrap
        (HALF - 1, HALF),
    ],
)
def test_before(a: int, b: int) -> None:
    assert lt(a, b) and le(a, b)
    assert not gt(a, b) and not ge(a, b)
    assert gt(b, a) and ge(b, a)
    assert not lt(b, a) and not le(b, a)
    assert diff(b, a) > 0 and diff(a, b) < 0
    assert max_seq(a, b) == max_seq(b, a) == b
    assert min_seq(a, b) == min_seq(b, a) == a


@pytest.mark.parametrize("a", [0, 1, HALF - 1, HALF, TOP])
def test_equal(a: int) -> None:
    assert le(a, a) and ge(a, a)
    assert not lt(a, a) and not gt(a, a)
    assert diff(a, a) == 0
    assert max_seq(a, a) == min_seq(a, a) == a


@pytest.mark.parametrize("a", [0, 1, HALF - 1, HALF, TOP])
def test_half_way_is_neither_before_nor_after(a: int) -> None:
    b = (a + HALF) % MOD
    for x, y in ((a, b), (b, a)):
        assert not lt(x, y) and not le(x, y) and not gt(x, y) and not ge(x, y)
        assert diff(x, y) == -HALF  # the one distance without a positive twin


@pytest.mark.parametrize(
    ("a", "n", "expected"),
    [
        (TOP, 1, 0),
        (TOP, 2, 1),
        (0, -1, TOP),
        (5, -10, TOP - 4),
        (0, MOD, 0),
        (123, 3 * MOD + 1, 124),
        (HALF, HALF, 0),
    ],
)
def test_add_wraps(a: int, n: int, expected: int) -> None:
    assert add(a, n) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (0, TOP, 1),
        (TOP, 0, -1),
        (10, TOP - 5, 16),
        (TOP - 5, 10, -16),
        (HALF - 1, 0, HALF - 1),
        (0, HALF - 1, -(HALF - 1)),
        (HALF, 0, -HALF),
        (0, HALF, -HALF),
    ],
)
def test_diff_is_signed_across_the_wrap(a: int, b: int, expected: int) -> None:
    assert diff(a, b) == expected


# -- properties ------------------------------------------------------------------------------


@SETTINGS
@given(a=seqs, n=distances)
@example(a=TOP, n=1)
@example(a=0, n=-1)
@example(a=TOP, n=HALF - 1)
@example(a=0, n=-(HALF - 1))
def test_diff_undoes_add(a: int, n: int) -> None:
    b = add(a, n)
    assert 0 <= b <= TOP
    assert diff(b, a) == n
    assert diff(a, b) == -n
    assert add(b, -n) == a
    assert lt(a, b) is (n > 0)
    assert gt(a, b) is (n < 0)
    assert le(a, b) is (n >= 0)
    assert ge(a, b) is (n <= 0)


@SETTINGS
@given(a=seqs, b=seqs)
@example(a=0, b=HALF)
@example(a=TOP, b=0)
def test_antisymmetry_and_totality(a: int, b: int) -> None:
    assert lt(a, b) is gt(b, a)
    assert le(a, b) is ge(b, a)
    assert not (lt(a, b) and lt(b, a))
    assert (le(a, b) and le(b, a)) is (a == b)
    assert le(a, b) is (lt(a, b) or a == b)
    assert ge(a, b) is (gt(a, b) or a == b)
    # exactly one of before, equal, after, unless the two are half the space apart
    outcomes = [lt(a, b), a == b, gt(a, b)]
    if (a - b) % MOD == HALF:
        assert outcomes == [False, False, False]
    else:
        assert outcomes.count(True) == 1
    assert lt(a, b) is (diff(b, a) > 0)
    assert -HALF <= diff(a, b) < HALF
    assert add(b, diff(a, b)) == a


@SETTINGS
@given(a=seqs, b=seqs, shift=seqs)
def test_comparisons_do_not_depend_on_where_the_numbers_sit(a: int, b: int, shift: int) -> None:
    # RFC 9293 3.4 compares positions in a circular space: moving both by the same amount
    # changes nothing.
    sa, sb = add(a, shift), add(b, shift)
    assert diff(sa, sb) == diff(a, b)
    assert (lt(sa, sb), le(sa, sb), gt(sa, sb), ge(sa, sb)) == (
        lt(a, b),
        le(a, b),
        gt(a, b),
        ge(a, b),
    )


@SETTINGS
@given(a=seqs, m=st.integers(1, HALF - 1), n=st.integers(1, HALF - 1))
def test_transitive_within_half_the_space(a: int, m: int, n: int) -> None:
    b = add(a, m)
    c = add(b, n)
    if m + n < HALF:
        assert lt(a, b) and lt(b, c) and lt(a, c)
        assert max_seq(max_seq(a, b), c) == c and min_seq(a, min_seq(b, c)) == a
