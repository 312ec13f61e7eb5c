"""The path MTU cache both IP versions keep per destination (RFC 1191, RFC 8201)."""

from __future__ import annotations

from netstack.proto.ip.pmtu import PathMtuCache

A, B, C = b"\xc6\x12\x00\x01", b"\xc6\x12\x00\x02", b"\xc6\x12\x00\x03"


def test_lowered_never_raised_and_floored() -> None:
    cache = PathMtuCache(68, timeout=600.0, entries=16)
    assert cache.get(A, 9000) == 9000
    assert cache.lower(A, 1500, 9000, now=1.0) == 1500
    assert cache.get(A, 9000, 2.0) == 1500
    assert cache.get(B, 9000, 2.0) == 9000  # per destination
    # RFC 1191 6.3 / RFC 8201 4: a message never raises the estimate.
    assert cache.lower(A, 4000, 9000, now=3.0) is None
    assert cache.get(A, 9000, 3.0) == 1500
    # RFC 1191 3: never below 68.
    assert cache.lower(A, 20, 9000, now=4.0) == 68
    # A link narrower than the estimate wins.
    assert cache.get(A, 60, 4.0) == 60


def test_estimates_expire_and_the_table_is_bounded() -> None:
    cache = PathMtuCache(1280, timeout=600.0, entries=2)
    cache.lower(A, 1400, 65520, now=0.0)
    cache.lower(B, 1400, 65520, now=1.0)
    cache.lower(C, 1400, 65520, now=2.0)  # the oldest (A) goes
    assert len(cache) == 2
    assert cache.get(A, 65520, 3.0) == 65520
    assert cache.get(B, 65520, 3.0) == 1400
    # RFC 8201 5.3: after the timeout the link's MTU is tried again.
    assert cache.get(B, 65520, 601.0) == 65520
    assert len(cache) == 1
