"""Congestion window validation for rate-limited senders (RFC 7661): a sender limited by the
receive window or by the application must not grow cwnd without bound, in slow start as in
congestion avoidance, with NewReno and with CUBIC. The bound is draft-ietf-ccwg-ratelimited-
increase's (which RFC 7661's definitions underlie, and Linux's tcp_is_cwnd_limited applies):
cwnd grows to at most 2 * maxFS in slow start and maxFS + MSS in congestion avoidance, maxFS
being the largest flight since cwnd was last reduced.

Controllers driven directly, then whole machines against a scripted receiver. No event loop.
"""

from __future__ import annotations

import pytest
from tcp_harness import ACK, Peer, TcpConfig, add, diff, drain, open_active

from netstack.proto.tcp.congestion import initial_window, make_controller

MSS = 1460
IW = initial_window(MSS)


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_slow_start_growth_is_bounded_by_the_largest_flight(name: str) -> None:
    """Four segments in flight per round trip, ACKed one by one, for 1000 round trips: in
    slow start cwnd would add one MSS per ACK for ever (4000 MSS); the flight never went
    beyond the initial window, so cwnd stops at twice that."""
    cc = make_controller(name, MSS)
    now = 0.0
    for _ in range(1000):
        for _ in range(4):
            cc.on_ack(MSS, now, 0.1, 4 * MSS)
        now += 0.1
    assert cc.cwnd == 2 * IW
    assert cc.cwnd < cc.ssthresh  # still slow start: nothing said the path was full


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_congestion_avoidance_growth_is_bounded_by_the_largest_flight(name: str) -> None:
    cc = make_controller(name, MSS)
    cc.on_congestion(0.0, 40 * MSS)  # ssthresh and cwnd: 20 (NewReno) or 28 (CUBIC) MSS
    start = cc.cwnd
    now = 0.0
    for _ in range(2000):  # a third of the window in flight, for 200 s
        for _ in range(6):
            cc.on_ack(MSS, now, 0.1, start // 3)
        now += 0.1
    assert cc.cwnd <= max(start, start // 3 + MSS)
    # Filling the window again lets it grow as before.
    for _ in range(50):
        for _ in range(cc.cwnd // MSS):
            cc.on_ack(MSS, now, 0.1, cc.cwnd)
        now += 0.1
    assert cc.cwnd > start


@pytest.mark.parametrize("name", ["newreno", "cubic"])
def test_a_full_window_still_grows_as_before(name: str) -> None:
    """cwnd-limited: slow start doubles per round trip as RFC 5681 says."""
    cc = make_controller(name, MSS)
    for expected in (20, 40, 80, 160):
        window = cc.cwnd
        for _ in range(window // MSS):
            cc.on_ack(MSS, 0.0, 0.1, window)
        assert cc.cwnd == expected * MSS


# -- whole machines ----------------------------------------------------------------------------


def round_trip(p: Peer, ack_every: int = 2) -> int:
    """The receiver acknowledges this round's segments, every ``ack_every`` of them and the
    last (as a delayed-ACK receiver does), with its window; the sender's answers make the
    next round. Returns the bytes that were in flight."""
    conn = p.conn
    p.sent.extend(drain(conn))
    sent = [s for s in p.sent if s.payload]
    p.sent.clear()
    flight = diff(conn.snd_max, conn.snd_una)
    for i, seg in enumerate(sent):
        if i % ack_every == ack_every - 1 or i == len(sent) - 1:
            p.ts_val += 1
            p.send(ACK, ack=add(seg.seq, len(seg.payload)), at=p.now)
    p.now += 0.05
    return flight


def opened(congestion: str, sack: bool) -> Peer:
    """ESTABLISHED against a 64 KiB window; ``sack``: with SACK and timestamps (RACK-TLP)."""
    cfg = TcpConfig(congestion=congestion, window_scaling=False, sack=sack, timestamps=sack)
    return open_active(cfg, window=65535, peer_sack=sack, peer_ts=sack)


@pytest.mark.parametrize("sack", [False, True], ids=["plain", "sack-ts"])
@pytest.mark.parametrize("congestion", ["newreno", "cubic"])
def test_receive_window_limited_bulk_transfer_keeps_cwnd_bounded(
    congestion: str, sack: bool
) -> None:
    """The reported case: a bulk sender held back by a 64 KiB receive window, no loss. cwnd
    grew by one MSS per ACK for ever (148 MB seen with 524 KB in flight); it must stay
    within twice the largest flight while the transfer runs at the window."""
    p = opened(congestion, sack)
    conn = p.conn
    conn.send(bytes(64 * 1024 * 1024), 0.0)
    flights = [round_trip(p) for _ in range(300)]
    assert max(flights) <= 65535
    assert max(flights[-50:]) >= 65535 - conn.mss  # the window is used
    assert conn.cc.cwnd <= 2 * 65535


@pytest.mark.parametrize("sack", [False, True], ids=["plain", "sack-ts"])
@pytest.mark.parametrize("congestion", ["newreno", "cubic"])
def test_application_limited_sender_keeps_cwnd_bounded(congestion: str, sack: bool) -> None:
    """An application writing two segments per round trip, for 500 round trips."""
    p = opened(congestion, sack)
    conn = p.conn
    for _ in range(500):
        conn.send(bytes(2 * conn.mss), p.now)
        assert round_trip(p) == 2 * conn.mss
    assert conn.cc.cwnd <= 2 * IW
