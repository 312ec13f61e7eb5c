"""The TCP urgent mechanism (RFC 9293 3.8.5, MUST-30..33; RFC 6093), kept in line as RFC 6093
recommends: urgent data stays in the byte stream, the urgent pointer marks where it ends (the
octet following it, RFC 9293 3.1), the application is told each time the mark advances and
can ask where it is, and can send urgent data. Machine tests, no event loop.
"""

from __future__ import annotations

import pytest
from tcp_harness import (
    ACK,
    FIN,
    ISS,
    PEER_ISS,
    PSH,
    URG,
    DataReceived,
    Peer,
    State,
    TcpConfig,
    add,
    data_of,
    drain,
    events,
    open_active,
    pair,
)

from netstack.proto.tcp.connection import UrgentDataReceived

PLAIN = TcpConfig(timestamps=False, sack=False, window_scaling=False)
BASE = ISS + 1
START = PEER_ISS + 1


def established(cfg: TcpConfig = PLAIN) -> Peer:
    return open_active(cfg, window=65535)


# -- receiving ---------------------------------------------------------------------------------


def test_urgent_pointer_is_reported_with_its_stream_offset_and_the_data_stays_in_line() -> None:
    """RFC 9293 3.10.7.4, sixth check, and MUST-32: the application is told when an urgent
    pointer arrives; the pointer is SEG.SEQ + SEG.UP, the octet after the urgent data. The
    mark is given as an offset in the received stream, before that segment's data."""
    p = established()
    p.send(ACK | PSH, b"normal ")
    assert p.conn.urgent_mark is None
    p.send(ACK | PSH | URG, b"URGENT!", urgent=7)
    evs = events(p.conn)
    assert evs == [DataReceived(b"normal "), UrgentDataReceived(14), DataReceived(b"URGENT!")]
    assert p.conn.urgent_mark == 14


def test_a_repeated_pointer_is_reported_once_and_an_advanced_one_again() -> None:
    """MUST-32: "whenever it receives an urgent pointer and there was previously no pending
    urgent data, or whenever the urgent pointer advances". A sender repeats the pointer on
    every segment until the urgent data is acknowledged."""
    p = established()
    # Five bytes of urgent data ending 3000 bytes ahead: the pointer arrives before them.
    p.send(ACK | URG, b"a" * 1000, urgent=3005)
    p.send(ACK | URG, b"b" * 1000, urgent=2005)
    p.send(ACK | URG, b"c" * 1005, urgent=1005)
    marks = [e.mark for e in events(p.conn) if isinstance(e, UrgentDataReceived)]
    assert marks == [3005]
    p.send(ACK | URG, b"d" * 10, urgent=10)  # more urgent data: the mark moves on
    marks = [e.mark for e in events(p.conn) if isinstance(e, UrgentDataReceived)]
    assert marks == [3015]
    assert p.conn.urgent_mark == 3015


def test_a_pointer_into_data_already_delivered_is_not_news() -> None:
    """A retransmission carrying an old pointer, or a pointer of zero (the urgent data ended
    before this segment), says nothing new."""
    p = established()
    p.send(ACK, b"x" * 100)
    p.send(ACK | URG, b"x" * 100, seq=START, advance=False, urgent=50)
    p.send(ACK | URG, b"y" * 10, urgent=0)
    assert [e for e in events(p.conn) if isinstance(e, UrgentDataReceived)] == []
    assert p.conn.urgent_mark is None


def test_a_pointer_beyond_the_window_is_ignored() -> None:
    """RFC 9293 3.8.5: a receiver should be robust to invalid urgent pointers. One beyond the
    window offered points where the peer could not have sent anything."""
    p = established(TcpConfig(timestamps=False, sack=False, window_scaling=False, recv_buffer=8192))
    p.send(ACK | URG, b"z" * 10, urgent=9000)
    assert data_of(evs := events(p.conn)) == b"z" * 10
    assert [e for e in evs if isinstance(e, UrgentDataReceived)] == []


def test_urgent_pointer_after_the_peers_fin_is_ignored() -> None:
    p = established()
    p.send(ACK | FIN, b"bye")
    assert p.conn.state is State.CLOSE_WAIT
    events(p.conn)
    p.send(ACK | URG, urgent=5, seq=START, advance=False)
    assert events(p.conn) == []


def test_out_of_order_urgent_segment_reports_the_mark_ahead() -> None:
    p = established()
    p.send(ACK | URG, b"later", seq=add(START, 100), advance=False, urgent=5)
    assert events(p.conn) == [UrgentDataReceived(105)]
    p.send(ACK, b"q" * 100)
    assert data_of(events(p.conn)) == b"q" * 100 + b"later"


def test_paused_reader_gets_the_mark_at_once_and_the_data_later() -> None:
    p = established()
    p.conn.pause_reading()
    p.send(ACK, b"held" * 10)
    p.send(ACK | URG, b"!", urgent=1)
    assert events(p.conn) == [UrgentDataReceived(41)]
    p.conn.resume_reading(p.now)
    assert data_of(events(p.conn)) == b"held" * 10 + b"!"


# -- sending -----------------------------------------------------------------------------------


def test_urgent_send_sets_urg_and_the_pointer_on_every_segment_before_it() -> None:
    """RFC 9293 3.10.2: SND.UP <- the end of the urgent data; each segment before SND.UP
    carries URG and SND.UP - SEG.SEQ (the octet following the urgent data)."""
    p = established()
    conn = p.conn
    conn.send(b"n" * 100, 1.0)
    (plain,) = drain(conn)
    assert not plain.flags & URG and plain.urgent == 0
    conn.send(b"u" * 3000, 1.0, urgent=True)
    out = drain(conn)
    assert [(s.seq - BASE, len(s.payload), s.flags & URG, s.urgent) for s in out] == [
        (100, 1460, URG, 3000),
        (1560, 1460, URG, 1540),
        (3020, 80, URG, 80),
    ]
    # A pure ACK at SND.MAX (past the urgent data) carries no URG; data after it neither.
    out = p.send(ACK, b"data", ack=BASE + 100, at=1.1)
    assert [(s.flags & URG, s.urgent) for s in out] == [(0, 0)]
    conn.send(b"after", 1.2)
    out = drain(conn)
    assert [(s.flags & URG, s.urgent) for s in out if s.seq == BASE + 3100] == [(0, 0)]


def test_retransmissions_of_urgent_data_carry_the_pointer_until_it_is_acknowledged() -> None:
    p = established()
    conn = p.conn
    conn.send(b"U" * 500, 1.0, urgent=True)
    (first,) = drain(conn)
    assert (first.flags & URG, first.urgent) == (URG, 500)
    again = p.run_timers(conn.poll_at() or 0.0)
    assert [(s.seq, s.flags & URG, s.urgent) for s in again] == [(BASE, URG, 500)]
    p.send(ACK, ack=BASE + 500, at=p.now + 0.1)
    conn.send(b"n" * 10, p.now)
    (later,) = drain(conn)
    assert (later.flags & URG, later.urgent) == (0, 0)


def test_a_pointer_more_than_64k_ahead() -> None:
    """The urgent pointer field has 16 bits. A segment 64 KiB or more before the end of the
    urgent data carries 0xFFFF when that points beyond what was sent (the receiver learns
    urgent data is coming; the exact mark follows), and no URG otherwise, so a receiver is
    never given a mark in data that is not urgent (as Linux's tcp_options_write)."""
    p = open_active(TcpConfig(timestamps=False, sack=False), peer_wscale=7, window=65535)
    conn = p.conn
    conn.send(bytes(100_000), 1.0, urgent=True)
    out = drain(conn)  # the initial window: ten segments
    assert len(out) == 10
    end = BASE + 100_000
    for s in out:
        left = end - s.seq
        assert s.flags & URG
        if left <= 0xFFFF:
            assert s.urgent == left
        else:
            assert s.urgent == 0xFFFF and s.seq + 0xFFFF > conn.snd_max - 1460


def test_urgent_data_is_not_held_by_nagle() -> None:
    """Linux's tcp_nagle_test: "Don't use the nagle rule for urgent data"."""
    p = established()
    conn = p.conn
    conn.send(b"s" * 10, 1.0)
    assert len(drain(conn)) == 1  # a small segment now unacknowledged
    conn.send(b"t" * 10, 1.0)
    assert drain(conn) == []  # Nagle holds the next small one
    conn.send(b"!", 1.0, urgent=True)
    (seg,) = drain(conn)
    assert seg.payload == b"t" * 10 + b"!" and seg.flags & URG and seg.urgent == 11


def test_urgent_send_needs_data() -> None:
    """RFC 9293 3.8.5: "To send an urgent indication, the user must also send at least one
    data octet"."""
    p = established()
    with pytest.raises(ValueError):
        p.conn.send(b"", 1.0, urgent=True)


# -- both ends ---------------------------------------------------------------------------------


def urgent_stream(seed: int, *, wait: bool) -> tuple[list[int], list[int], int | None]:
    """A sends a stream with three urgent pieces over a lossy, reordering wire (``wait``: each
    piece once everything before it has arrived). Returns the marks sent, the marks B was
    told of, and B's ``urgent_mark``; asserts B received the stream exactly."""
    wire = pair(PLAIN, PLAIN, loss=0.05, jitter=0.02, seed=seed)
    a, b = wire.ends
    stream = bytearray()
    marks = []
    for i in range(3):
        normal = bytes([65 + i]) * (5000 + 1000 * i)
        urgent = bytes([97 + i]) * (1 + 700 * i)
        a.send(normal, wire.now)
        a.send(urgent, wire.now, urgent=True)
        stream += normal + urgent
        marks.append(len(stream))
        if wait:
            size = len(stream)
            wire.run_until(lambda n=size: len(wire.received[1]) == n, until=wire.now + 120)
    a.send(b"tail", wire.now)
    stream += b"tail"
    wire.run_until(lambda: bytes(wire.received[1]) == bytes(stream), until=wire.now + 120)
    assert bytes(wire.received[1]) == bytes(stream)
    got = [e.mark for e in wire.events[1] if isinstance(e, UrgentDataReceived)]
    return marks, got, b.urgent_mark


@pytest.mark.parametrize("seed", range(5))
def test_urgent_marks_across_an_impaired_wire(seed: int) -> None:
    """B receives the whole stream in order and is told every mark exactly once, in order."""
    marks, got, last = urgent_stream(seed, wait=True)
    assert got == marks
    assert last == marks[-1]


@pytest.mark.parametrize("seed", range(5))
def test_urgent_data_queued_behind_urgent_data(seed: int) -> None:
    """RFC 9293 3.8.5: "If the urgent pointer is updated while the user is in 'urgent mode',
    the update will be invisible to the user": with all three pieces queued at once, SND.UP
    moves on before the first mark is delivered, so B may learn only of later marks; but
    the marks it is told of advance, and the last one always arrives."""
    marks, got, last = urgent_stream(seed, wait=False)
    assert got and got == sorted(set(got)) and set(got) <= set(marks)
    assert last == got[-1] == marks[-1]
