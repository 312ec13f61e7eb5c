"""Fast retransmit and NewReno fast recovery without SACK: RFC 5681 3.2 and RFC 6582 3.2,
from a scripted receiver that sends duplicate and partial acknowledgements. Simulated time.
"""

from __future__ import annotations

from tcp_harness import (
    ACK,
    FIN,
    ISS,
    Peer,
    Sent,
    State,
    TcpConfig,
    drain,
    open_active,
)

NR = TcpConfig(timestamps=False, sack=False, window_scaling=False)
M = 1460
BASE = ISS + 1


def idx(segs: list[Sent]) -> list[int]:
    """Which segments (numbered from 0 by sequence number) carry data."""
    return [(s.seq - BASE) // M for s in segs if s.payload]


def flight_of_ten(data_segments: int = 30) -> Peer:
    p = open_active(NR)
    conn = p.conn
    conn.send(b"".join(bytes([i % 256]) * M for i in range(data_segments)), 1.0)
    sent = drain(conn)
    assert idx(sent) == list(range(10))  # RFC 6928: IW = 10 segments of 1460
    return p


def test_two_duplicate_acks_do_not_retransmit() -> None:
    """RFC 3042 (Limited Transmit, RFC 5681 3.2 step 1): the first two duplicate ACKs each
    let one segment of new data out; nothing is retransmitted yet."""
    p = flight_of_ten()
    assert idx(p.send(ACK, ack=BASE, at=1.1)) == [10]
    assert idx(p.send(ACK, ack=BASE, at=1.11)) == [11]
    assert p.conn.retransmits == 0


def test_third_duplicate_ack_retransmits_snd_una_and_halves() -> None:
    p = flight_of_ten()
    conn = p.conn
    for k in range(2):
        p.send(ACK, ack=BASE, at=1.1 + k / 1000)
    out = p.send(ACK, ack=BASE, at=1.103)
    assert [(s.seq, len(s.payload)) for s in out if s.payload] == [(BASE, M)]
    # RFC 5681 3.2 step 2 (equation 4): ssthresh = max(FlightSize / 2, 2 * SMSS).
    assert conn.cc.ssthresh == 10 * M // 2
    # Step 3: cwnd = ssthresh + 3 * SMSS (here: cwnd = ssthresh plus an inflation of 3 MSS).
    assert conn.cc.cwnd + conn._inflation == 10 * M // 2 + 3 * M
    assert conn.retransmits == 1
    assert conn.poll_at() is not None


def test_each_further_duplicate_ack_inflates_and_releases_new_data() -> None:
    p = flight_of_ten()
    new: list[int] = []
    for k in range(9):  # segments 1..9 arrived, segment 0 lost
        new += idx(p.send(ACK, ack=BASE, at=1.1 + k / 1000))
    # Limited transmit sends 10 and 11; segment 0 once (the fast retransmit, ssthresh from
    # the flight before limited transmit: 5 MSS); then, once the inflated window exceeds
    # the flight (5 MSS + k MSS > 12 MSS), one new segment per duplicate ACK.
    assert new == [10, 11, 0, 12, 13]
    assert p.conn.retransmits == 1


def test_duplicate_acks_with_data_or_a_window_change_do_not_count() -> None:
    """RFC 5681 2: a duplicate ACK carries no data and does not change the window."""
    p = flight_of_ten()
    p.send(ACK, b"a", ack=BASE, at=1.1)
    p.send(ACK, b"b", ack=BASE, at=1.11)
    p.send(ACK, ack=BASE, window=60000, at=1.12)
    p.send(ACK, ack=BASE, window=50000, at=1.13)
    assert p.conn.retransmits == 0


def test_partial_ack_retransmits_the_next_hole_and_full_ack_exits() -> None:
    """Segments 0 and 4 lost. RFC 6582 3.2 step 5: a partial ACK retransmits the first
    unacknowledged segment at once and deflates; step 3: the full ACK ends recovery with
    cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS) (option 1)."""
    p = flight_of_ten()
    conn = p.conn
    sent: list[int] = []
    t = 1.1
    for k in range(1, 10):
        if k == 4:
            continue
        sent += idx(p.send(ACK, ack=BASE, at=t))
        t += 0.001
    assert sent == [10, 11, 0, 12]  # limited transmit, the fast retransmit, inflation
    recover = BASE + 12 * M  # the highest sequence number sent when the loss was detected
    # The retransmitted segment 0 arrives: everything up to the second hole is acknowledged.
    out = idx(p.send(ACK, ack=BASE + 4 * M, at=t))
    assert out[0] == 4  # the next hole, at once, without waiting for 3 more duplicates
    assert conn.cc.ssthresh == 5 * M
    sent += out
    # Segments 10.. arrive: duplicate ACKs for the second hole (no new fast retransmit).
    for _ in range(3):
        t += 0.001
        sent += idx(p.send(ACK, ack=BASE + 4 * M, at=t))
    assert sent.count(4) == 1 and sent.count(0) == 1
    # The retransmitted segment 4 arrives: everything sent is now acknowledged.
    snd_max = conn.snd_max
    assert snd_max - recover >= 0
    t += 0.001
    p.send(ACK, ack=recover, at=t)
    flight = conn.snd_max - recover
    assert conn.cc.cwnd == min(5 * M, max(flight, M) + M)
    assert conn._inflation == 0
    assert conn.retransmits == 2
    # Out of recovery: new duplicate ACKs start counting from zero (the first one only
    # lets new data out, by limited transmit).
    after = idx(p.send(ACK, ack=recover, at=t + 0.001))
    assert all(i >= 12 for i in after)
    assert conn.retransmits == 2


def test_no_second_fast_retransmit_for_the_same_window_after_a_timeout() -> None:
    """RFC 6582 4 ("recover" after a timeout): duplicate ACKs for data sent before the
    timeout must not trigger a fast retransmit."""
    p = flight_of_ten()
    conn = p.conn
    out = p.tick(conn.poll_at())  # RTO: segment 0 again, recover = SND.MAX
    assert idx(out) == [0]
    before = conn.retransmits
    for k in range(4):
        p.send(ACK, ack=BASE, at=2.0 + k / 1000)
    assert conn.retransmits == before


def test_recovery_delivers_every_byte_with_fin() -> None:
    """End to end against the scripted receiver: the whole stream, then the FIN."""
    p = flight_of_ten(data_segments=12)
    conn = p.conn
    conn.shutdown(1.0)
    drain(conn)
    total = 12 * M
    # The receiver got everything but segment 2; it dup-acks each later arrival.
    for k in range(7):
        p.send(ACK, ack=BASE + 2 * M, at=1.1 + k / 1000)
    # Then the retransmission fills the hole; the receiver acknowledges all it has, and
    # keeps acknowledging what arrives next.
    t = 1.2
    for _ in range(10):
        p.send(ACK, ack=conn.snd_max, at=t)
        t += 0.01
        if conn.snd_una == BASE + total + 1:
            break
    fin = [s for s in p.sent if s.flags & FIN]
    assert fin and fin[-1].seq + len(fin[-1].payload) == BASE + total
    assert conn.state is State.FIN_WAIT_2
    resent = [s for s in p.sent if s.payload and s.seq < BASE + 10 * M]
    assert [(s.seq, s.payload) for s in resent] == [(BASE + 2 * M, bytes([2]) * M)]
    assert conn.retransmits == 1


def test_fast_retransmit_sends_only_what_was_sent_and_fits_the_window() -> None:
    """Three 100-byte segments fill the peer's 300-byte window; one more byte waits for
    window. The first segment is lost and three duplicate ACKs arrive. The fast
    retransmission resends one segment from SND.UNA: only bytes sent before, and never past
    the peer's window (RFC 9293 3.8.6). Regression: the first version filled it up to an MSS
    from the send buffer (301 bytes, past the window, one of them never sent) without
    raising SND.MAX, so the peer's ACK of them was refused as acknowledging unsent data
    (RFC 5961 5.2) until the connection timed out. Found by the stateful test."""
    cfg = TcpConfig(timestamps=False, sack=False, window_scaling=False, nodelay=True)
    p = open_active(cfg, window=300)
    conn = p.conn
    for i in range(3):
        conn.send(bytes([65 + i]) * 100, 1.0)
        drain(conn)
    conn.send(b"Z", 1.0)
    assert drain(conn) == [] and conn.unsent == 1
    out: list[Sent] = []
    for k in range(3):
        out += p.send(ACK, ack=BASE, at=1.1 + k / 1000)
    (rexmit,) = [s for s in out if s.payload]
    assert rexmit.seq == BASE
    assert rexmit.seq + len(rexmit.payload) <= BASE + 300  # within the window, sent before
    # Whatever the peer then acknowledges of what it was sent is accepted.
    end = rexmit.seq + len(rexmit.payload)
    assert p.send(ACK, ack=end, at=1.2) == [] or conn.snd_una == end
    assert conn.snd_una == end
    assert conn.drops.get("ack_beyond_sent", 0) == 0
