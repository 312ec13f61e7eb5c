"""Sequence-number arithmetic modulo 2**32 (RFC 9293 3.4; RFC 1982 serial numbers).

``a`` is before ``b`` when ``(b - a) mod 2**32`` is in (0, 2**31): comparisons are meaningful
for numbers less than 2**31 apart, which the window sizes guarantee.
"""

from __future__ import annotations

__all__ = ["MOD", "add", "diff", "ge", "gt", "le", "lt", "max_seq", "min_seq"]

MOD = 1 << 32
_MASK = MOD - 1
_HALF = 1 << 31


def add(a: int, n: int) -> int:
    return (a + n) & _MASK


def diff(a: int, b: int) -> int:
    """``a - b`` as a signed distance (-2**31 .. 2**31 - 1)."""
    d = (a - b) & _MASK
    return d - MOD if d >= _HALF else d


def lt(a: int, b: int) -> bool:
    return 0 < ((b - a) & _MASK) < _HALF


def le(a: int, b: int) -> bool:
    return ((b - a) & _MASK) < _HALF


def gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & _MASK) < _HALF


def ge(a: int, b: int) -> bool:
    return ((a - b) & _MASK) < _HALF


def max_seq(a: int, b: int) -> int:
    return b if lt(a, b) else a


def min_seq(a: int, b: int) -> int:
    return a if lt(a, b) else b
