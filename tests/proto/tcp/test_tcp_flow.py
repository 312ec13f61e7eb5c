"""Flow control and the smaller mechanisms of a connection: zero-window probing (RFC 9293
3.8.6.1), the receive window and the application's reading (3.8.6.2.2), silly window
avoidance on both sides, the small-segment rule (3.7.4), delayed ACKs (3.8.6.3),
keep-alive (3.8.4), the bounded out-of-order queue, window scaling and timestamps
negotiation and PAWS (RFC 7323), MSS (3.7.1), and ICMP errors (RFC 1191, RFC 1122
4.2.3.9). Simulated time, no event loop.
"""

from __future__ import annotations

import dataclasses
import errno

import pytest
from tcp_harness import (
    ACK,
    ISS,
    LOCAL,
    PEER_ISS,
    REMOTE,
    SYN,
    ConnectionReset,
    DataReceived,
    Peer,
    State,
    TcpConfig,
    TcpConnection,
    TcpParams,
    add,
    data_of,
    drain,
    events,
    open_active,
    open_passive,
    pair,
)

from netstack.proto.tcp.wire import TcpOptions

PLAIN = TcpConfig(timestamps=False, sack=False, window_scaling=False)
BASE = ISS + 1
START = PEER_ISS + 1


def payloads(out: list) -> list[tuple[int, int]]:
    return [(s.seq - BASE, len(s.payload)) for s in out if s.payload]


# -- the peer's window -------------------------------------------------------------------------


def zero_window(cfg: TcpConfig = PLAIN) -> Peer:
    p = open_active(cfg, window=4000)
    conn = p.conn
    conn.send(b"x" * 10000, 1.0)
    assert payloads(drain(conn)) == [(0, 1460), (1460, 1460)]  # then SWS avoidance waits
    p.send(ACK, ack=conn.snd_nxt, window=0, at=1.1)
    return p


def test_zero_window_persist_probes_back_off() -> None:
    p = zero_window()
    conn = p.conn
    rto = conn.rto
    times, probes = [], []
    for _ in range(12):
        at = conn.poll_at()
        assert at is not None
        out = p.tick(at)
        times.append(at)
        probes += out
    # RFC 9293 3.8.6.1: the first probe after an RTO, then exponentially farther apart
    # (RFC 1122 4.2.2.17), capped at the RTO maximum.
    gaps = [b - a for a, b in zip([1.1, *times], times, strict=False)]
    expected = [min(rto * 2**i, 60.0) for i in range(12)]
    assert gaps == pytest.approx(expected)
    # Each probe is an ACK outside the window (SND.UNA - 1) that draws the receiver's ACK.
    assert all(s.kind == "." and s.seq == conn.snd_una - 1 and not s.payload for s in probes)
    assert conn.state is State.ESTABLISHED


def test_answered_zero_window_probes_keep_the_connection_open() -> None:
    """RFC 1122 4.2.2.17: the connection stays open as long as the receiver answers."""
    p = zero_window(TcpConfig(timestamps=False, sack=False, window_scaling=False, retries=3))
    conn = p.conn
    for _ in range(40):
        at = conn.poll_at()
        p.tick(at)
        p.send(ACK, ack=conn.snd_una, window=0, at=at + 0.01)
    assert conn.state is State.ESTABLISHED
    assert p.now > 1000


def test_unanswered_zero_window_probes_eventually_time_out() -> None:
    """A receiver that closes its window and disappears must not hold the connection
    forever (RFC 1122 4.2.2.17 only keeps it open while the probes are answered; Linux
    gives up after tcp_retries2 unanswered probes; the sockstress/"persist timer" attacks
    exploit senders that never do). Regression: the first version probed without end."""
    p = zero_window(TcpConfig(timestamps=False, sack=False, window_scaling=False, retries=3))
    conn = p.conn
    p.run_timers(3600.0)
    assert conn.state is State.CLOSED
    evs = events(conn)
    assert len(evs) == 1 and isinstance(evs[0], ConnectionReset)
    assert isinstance(evs[0].error, TimeoutError)


def shrunk_window(cfg: TcpConfig = PLAIN, *, sack: bool = False) -> Peer:
    """Data in flight when the receiver closes its window: it acknowledges the first
    segment and offers no room beyond it, so the right edge moves left (the "shrinking"
    RFC 9293 3.8.6.1 says a sender must be robust against). ``sack``: with SACK and
    timestamps (RACK-TLP then runs too)."""
    if sack:
        cfg = dataclasses.replace(cfg, sack=True, timestamps=True)
    p = open_active(cfg, window=65535, peer_sack=sack, peer_ts=sack)
    conn = p.conn
    conn.send(b"x" * 5000, 1.0)
    mss = conn.mss  # 1448 with timestamps
    sent = payloads(drain(conn))
    assert sent == [(i * mss, min(mss, 5000 - i * mss)) for i in range(len(sent))]
    assert p.send(ACK, ack=BASE + mss, window=0, at=1.05) == []
    assert conn.snd_una == BASE + mss and conn.snd_nxt == BASE + 5000
    return p


@pytest.mark.parametrize("sack", [False, True], ids=["plain", "sack-ts"])
def test_zero_window_with_data_in_flight_is_probed_while_the_receiver_answers(sack: bool) -> None:
    """RFC 9293 3.8.6.1: a sender "SHOULD NOT time out the connection if data beyond the right
    window edge is not acknowledged" (SHLD-17) and MUST probe a zero window (MUST-35). With
    data in flight the retransmission timer is the probe timer (as in Linux, whose
    tcp_retransmit_timer does not count such timeouts while the receiver answers): each
    timeout sends SND.UNA's segment again, backing off, and every ACK(win 0) in answer keeps
    the connection. Those ACKs are no duplicate ACKs either: the receiver drops what lies
    beyond its window, nothing was lost. Regression: the connection was reset after
    ``retries`` timeouts, the receiver answering all along."""
    cfg = TcpConfig(timestamps=False, sack=False, window_scaling=False, retries=3)
    p = shrunk_window(cfg, sack=sack)
    conn = p.conn
    cwnd = conn.cc.cwnd
    for i in range(3):  # the receiver repeats its ACK(win 0): no fast retransmit
        p.ts_val += 1
        assert p.send(ACK, ack=conn.snd_una, window=0, at=1.06 + i / 100) == []
    assert conn.cc.cwnd == cwnd
    gaps = []
    for _ in range(40):
        at = conn.poll_at()
        assert at is not None
        gaps.append(at - p.now)
        out = p.tick(at)
        # The probe: SND.UNA's segment again (a tail loss probe may send the last one).
        assert len(out) == 1 and len(out[0].payload) > 0
        p.ts_val += 1
        assert p.send(ACK, ack=conn.snd_una, window=0, at=at + 0.01) == []
    assert conn.state is State.ESTABLISHED
    assert p.now > 1000
    assert gaps[-1] == pytest.approx(60.0 - 0.01)  # backed off to the cap
    # The window opens (the probe got through this time): the transfer completes.
    p.send(ACK, ack=conn.snd_nxt, window=65535, at=p.now + 1.0)
    for _ in range(10):
        if conn.snd_una == BASE + 5000:
            break
        p.ts_val += 1
        p.send(ACK, ack=conn.snd_nxt, at=p.now + 0.05)
    assert conn.snd_una == BASE + 5000
    assert events(conn) == []


def test_unanswered_zero_window_retransmissions_eventually_time_out() -> None:
    """The same zero window, and a receiver that stops answering: the connection times out
    after ``retries`` unanswered probes, as with nothing in flight."""
    p = shrunk_window(TcpConfig(timestamps=False, sack=False, window_scaling=False, retries=3))
    conn = p.conn
    sent = p.run_timers(3600.0)
    assert conn.state is State.CLOSED
    assert [s.kind for s in sent].count("R") == 1
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset) and isinstance(ev.error, TimeoutError)


def test_closed_connection_in_a_shrunk_zero_window_is_not_kept_for_ever() -> None:
    """After close() nobody waits for the data: a receiver answering every probe with
    ACK(win 0) must not hold the connection for ever (Linux times out orphans the same way;
    sockstress-style attacks pile them up otherwise)."""
    p = shrunk_window(TcpConfig(timestamps=False, sack=False, window_scaling=False, retries=3))
    conn = p.conn
    conn.close(1.06)
    drain(conn)
    for _ in range(40):
        at = conn.poll_at()
        if at is None:
            break
        p.tick(at)
        if conn.state is State.CLOSED:
            break
        p.send(ACK, ack=conn.snd_una, window=0, at=at + 0.01)
    assert conn.state is State.CLOSED


def test_window_reopening_resumes_sending() -> None:
    p = zero_window()
    conn = p.conn
    p.tick(conn.poll_at())  # one probe
    out = p.send(ACK, ack=conn.snd_una, window=3000, at=2.0)
    assert payloads(out) == [(2920, 1460), (4380, 1460)]
    assert conn.poll_at() == pytest.approx(2.0 + conn.rto)  # the RTO, no more persisting


def test_sender_sws_avoidance_waits_for_a_useful_window() -> None:
    """RFC 9293 3.8.6.2.1: send a full segment, or at least Fs (1/2) of the largest window
    offered, or everything queued."""
    p = open_active(PLAIN, window=40000)
    conn = p.conn
    conn.send(b"x" * 100_000, 1.0)
    sent = drain(conn)
    assert sum(n for _, n in payloads(sent)) == 14600  # cwnd-limited
    out = p.send(ACK, ack=conn.snd_nxt, window=1000, at=1.1)
    assert payloads(out) == []  # 1000 < MSS and < 40000 / 2
    out = p.send(ACK, ack=conn.snd_una, window=25000, at=1.2)
    assert payloads(out) and all(n == 1460 for _, n in payloads(out))


def test_small_window_with_everything_acknowledged_still_has_a_timer() -> None:
    """Everything sent is acknowledged with a window below one MSS and below half the
    largest window: sender SWS avoidance holds the queued data back. Only the receiver's
    window update can release it, and that is a bare ACK nobody retransmits. If it is lost
    there must still be a timer: RFC 9293 3.8.6.2.1 (4) requires an override timeout, and
    Linux arms its probe timer whenever data waits with nothing in flight. Regression: the
    first version had no timer at all (no data in flight, a non-zero window) and stalled
    for ever."""
    p = open_active(PLAIN, window=65535)
    conn = p.conn
    conn.send(b"y" * 20000, 1.0)
    drain(conn)
    p.send(ACK, ack=conn.snd_nxt, window=500, at=1.1)
    assert conn.unsent > 0
    assert conn.poll_at() is not None
    out = p.run_timers(10.0)
    assert out, "nothing is ever sent while the window update is lost"


def test_lost_window_update_does_not_stall_the_transfer() -> None:
    """The same, end to end: B pauses reading, its window closes to less than a segment,
    B resumes and its window update is lost. The transfer must still complete."""
    cfg = TcpConfig(timestamps=False, sack=False, window_scaling=False, recv_buffer=8000)
    armed: list[bool] = []
    dropped: list[object] = []

    def drop(side: int, s: object) -> bool:
        # B's first window update after resuming: an ACK offering the whole buffer.
        if armed and not dropped and side == 1 and s.window == 8000:  # type: ignore[attr-defined]
            dropped.append(s)
            return True
        return False

    wire = pair(cfg, cfg, drop=drop, delay=0.01)
    a, b = wire.ends
    b.pause_reading()
    data = bytes(range(256)) * 60
    a.send(data, wire.now)
    wire.run(wire.now + 2.0)
    assert len(wire.received[1]) == 0
    armed.append(True)
    b.resume_reading(wire.now)
    wire.run(wire.now + 120.0)
    assert dropped, "the scenario did not lose the window update"
    assert bytes(wire.received[1]) == data


# -- our window and the application's reading ------------------------------------------------


def small_buffer(recv_buffer: int = 8192) -> Peer:
    cfg = TcpConfig(timestamps=False, sack=False, window_scaling=False, recv_buffer=recv_buffer)
    return open_active(cfg)


def right_edge(s: object) -> int:
    return s.ack + s.window  # type: ignore[attr-defined]


def test_paused_reading_closes_the_window_and_resume_reopens_it() -> None:
    p = small_buffer()
    conn = p.conn
    conn.pause_reading()
    out = p.send(ACK, b"a" * 1000, at=1.0)
    out += p.run_timers(1.5)
    assert out[-1].window == 7192
    assert events(conn) == []
    out = p.send(ACK, b"b" * 7192, at=2.0)
    out += p.run_timers(2.5)
    assert out[-1].window == 0
    assert out[-1].ack == START + 8192
    # Data beyond the closed window is not accepted.
    out = p.send(ACK, b"c" * 100, at=3.0, advance=False)
    assert [(s.ack, s.window) for s in out] == [(START + 8192, 0)]
    assert events(conn) == []
    # resume_reading: everything held comes up, and a window update goes out at once.
    conn.resume_reading(4.0)
    assert data_of(events(conn)) == b"a" * 1000 + b"b" * 7192
    (update,) = drain(conn)
    assert update.kind == "." and update.window == 8192
    assert update.ack == START + 8192


def test_receiver_sws_avoidance_no_tiny_window_updates() -> None:
    """RFC 9293 3.8.6.2.2: the right edge advances only by min(RCV.BUFF / 2, Eff.snd.MSS)
    or more, even though the application reads every tiny segment at once."""
    p = small_buffer()
    conn = p.conn
    edges = []
    for i in range(300):
        out = p.send(ACK, b"z" * 10, at=1.0 + i * 0.1)
        out += p.run_timers(1.0 + i * 0.1 + 0.05)
        edges += [right_edge(s) for s in out]
    assert len(data_of(events(conn))) == 3000
    steps = [b - a for a, b in zip(edges, edges[1:], strict=False) if b != a]
    assert steps, "the window never moved"
    assert min(steps) >= 1460
    assert all(b >= a for a, b in zip(edges, edges[1:], strict=False))  # never shrinks


def test_window_never_shrinks_while_paused() -> None:
    """RFC 9293 3.8.6.2.2: the right edge never moves left."""
    p = small_buffer()
    conn = p.conn
    edges = []
    for i in range(5):
        conn.pause_reading()
        for j in range(4):
            out = p.send(ACK, b"q" * 900, at=1.0 + i + j * 0.1)
            out += p.run_timers(1.0 + i + j * 0.1 + 0.05)
            edges += [right_edge(s) for s in out]
        conn.resume_reading(1.5 + i)
        edges += [right_edge(s) for s in drain(conn)]
    assert all(b >= a for a, b in zip(edges, edges[1:], strict=False))
    assert len(data_of(events(conn))) == 5 * 4 * 900


# -- small segments (RFC 9293 3.7.4) ----------------------------------------------------------


def test_one_small_segment_outstanding() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"a", 1.0)
    assert payloads(drain(conn)) == [(0, 1)]  # nothing outstanding: goes at once
    conn.send(b"b", 1.01)
    conn.send(b"c", 1.02)
    assert drain(conn) == []  # RFC 9293 3.7.4: held while a small segment is unacknowledged
    out = p.send(ACK, ack=BASE + 1, at=1.1)
    assert [(o, s.payload) for (o, _), s in zip(payloads(out), out, strict=False)] == [(1, b"bc")]


def test_small_segment_rule_does_not_hold_full_segments() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"a", 1.0)
    drain(conn)
    conn.send(b"x" * 3000, 1.01)
    # Two full segments go; the 81-byte tail waits for the ACK.
    assert payloads(drain(conn)) == [(1, 1460), (1461, 1460)]


def test_nodelay_sends_small_segments_at_once() -> None:
    p = open_active(TcpConfig(timestamps=False, sack=False, nodelay=True))
    conn = p.conn
    out = []
    for i, c in enumerate(b"abc"):
        conn.send(bytes([c]), 1.0 + i / 100)
        out += drain(conn)
    assert payloads(out) == [(0, 1), (1, 1), (2, 1)]


def test_send_while_earlier_segments_are_still_held() -> None:
    """An owner that still holds the last batch of segments (a capture tap, a queue, or
    simply the list in the caller's frame while it dispatches events) and then queues more
    data must not crash the machine. Regression: payloads were views into the send buffer
    and ``send`` grew that bytearray in place, raising BufferError."""
    p = open_active(TcpConfig(timestamps=False, sack=False, nodelay=True))
    conn = p.conn
    conn.send(b"first", 1.0)
    held = conn.segments_to_send()
    assert [bytes(s.payload) for s in held] == [b"first"]
    conn.send(b"second", 1.01)
    assert [bytes(s.payload) for s in conn.segments_to_send()] == [b"second"]


def test_last_small_segment_goes_with_the_fin() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"a", 1.0)
    drain(conn)
    conn.send(b"tail", 1.01)
    conn.shutdown(1.02)
    out = drain(conn)
    assert payloads(out) == [(1, 4)]
    assert out[-1].flags & 1  # FIN


# -- delayed acknowledgements ---------------------------------------------------------------------


def past_quickacks(p: Peer) -> None:
    """Linux-style quick ACKs acknowledge the first segments at once; use them up."""
    for i in range(20):
        p.send(ACK, b"w" * 100, at=0.5 + i * 0.001)
        p.run_timers(0.5 + i * 0.001)
    p.run_timers(0.9)
    events(p.conn)


def test_first_segments_are_acknowledged_at_once() -> None:
    p = open_active(PLAIN)
    out = p.send(ACK, b"hello", at=0.5)
    assert [(s.kind, s.ack) for s in out] == [(".", START + 5)]


def test_lone_small_segment_acknowledged_after_the_delay() -> None:
    p = open_active(PLAIN)
    past_quickacks(p)
    conn = p.conn
    assert p.send(ACK, b"x" * 100, at=1.0) == []
    assert conn.poll_at() == pytest.approx(1.04)  # RFC 9293 3.8.6.3: 40 ms here (< 500 ms)
    assert p.tick(1.039) == []
    out = p.tick(1.04)
    assert [(s.kind, s.ack) for s in out] == [(".", p.seq)]


def test_every_second_segment_acknowledged_at_once() -> None:
    p = open_active(PLAIN)
    past_quickacks(p)
    assert p.send(ACK, b"x" * 100, at=1.0) == []
    out = p.send(ACK, b"y" * 100, at=1.001)
    assert [(s.kind, s.ack) for s in out] == [(".", p.seq)]
    assert p.conn.poll_at() is None


def test_every_second_full_segment_acknowledged() -> None:
    """RFC 5681 4.2: an ACK SHOULD be generated for at least every second full-sized
    segment."""
    p = open_active(PLAIN)
    past_quickacks(p)
    acks = []
    for i in range(10):
        acks += p.send(ACK, b"f" * 1460, at=1.0 + i * 0.001)
    assert len(acks) >= 5
    assert acks[-1].ack == p.seq


def test_out_of_order_segment_acknowledged_at_once() -> None:
    p = open_active(PLAIN)
    past_quickacks(p)
    out = p.send(ACK, b"x" * 100, seq=add(p.seq, 500), at=1.0, advance=False)
    assert [(s.kind, s.ack) for s in out] == [(".", p.seq)]


def test_data_to_send_carries_the_pending_ack() -> None:
    p = open_active(PLAIN)
    past_quickacks(p)
    conn = p.conn
    p.send(ACK, b"req", at=1.0)
    conn.send(b"resp", 1.01)
    out = drain(conn)
    assert [(s.payload, s.ack) for s in out] == [(b"resp", p.seq)]
    assert conn.poll_at() != pytest.approx(1.04)  # no delayed-ACK timer left


# -- keep-alive --------------------------------------------------------------------------------


KA = TcpConfig(
    timestamps=False,
    sack=False,
    keepalive=True,
    keepalive_idle=10.0,
    keepalive_interval=2.0,
    keepalive_count=3,
)


def test_keepalive_probes_then_timeout() -> None:
    p = open_active(KA)
    conn = p.conn
    assert conn.poll_at() == pytest.approx(10.0)
    probes = []
    for _ in range(3):
        at = conn.poll_at()
        out = p.tick(at)
        # RFC 9293 3.8.4 / RFC 1122 4.2.3.6: SEG.SEQ = SND.NXT - 1, no data.
        assert [(s.kind, s.seq, s.payload) for s in out] == [(".", BASE - 1, b"")]
        probes.append(at)
    assert probes == pytest.approx([10.0, 12.0, 14.0])
    p.tick(conn.poll_at())
    assert p.now == pytest.approx(16.0)
    assert conn.state is State.CLOSED
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset) and isinstance(ev.error, TimeoutError)


def test_answered_keepalive_keeps_the_connection() -> None:
    p = open_active(KA)
    conn = p.conn
    for _ in range(5):
        at = conn.poll_at()
        p.tick(at)
        p.send(ACK, at=at + 0.1)  # the peer's answer: an ACK of SND.UNA
        assert conn.poll_at() == pytest.approx(at + 0.1 + 10.0)
    assert conn.state is State.ESTABLISHED


def test_no_keepalive_by_default() -> None:
    p = open_active(PLAIN)
    assert p.conn.poll_at() is None
    p.run_timers(100_000.0)
    assert p.conn.state is State.ESTABLISHED


def test_traffic_postpones_keepalive() -> None:
    p = open_active(KA)
    p.send(ACK, b"x", at=8.0)
    p.run_timers(9.0)
    out = p.run_timers(17.9)
    assert [s for s in out if s.seq == BASE - 1] == []
    out = p.run_timers(18.0)
    assert [s.seq for s in out] == [BASE - 1]


# -- options changed on an open connection (setsockopt) ----------------------------------------


def test_keepalive_turned_on_later_probes_after_the_idle_time() -> None:
    """SO_KEEPALIVE on an established connection: the idle time counts from then, with the
    connection's own timings (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT)."""
    p = open_active(PLAIN)
    conn = p.conn
    assert conn.poll_at() is None
    conn.set_options(5.0, keepalive=True, keepalive_idle=10.0, keepalive_interval=2.0,
                     keepalive_count=2)  # fmt: skip
    assert conn.poll_at() == pytest.approx(15.0)
    out = p.run_timers(17.0)
    assert [(s.seq, s.payload) for s in out] == [(BASE - 1, b""), (BASE - 1, b"")]
    p.tick(conn.poll_at())
    assert p.now == pytest.approx(19.0)
    assert conn.state is State.CLOSED
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset) and isinstance(ev.error, TimeoutError)


def test_keepalive_turned_off_stops_the_probes() -> None:
    p = open_active(KA)
    conn = p.conn
    p.tick(conn.poll_at())  # one probe out
    conn.set_options(p.now, keepalive=False)
    assert conn.poll_at() is None
    p.run_timers(100_000.0)
    assert conn.state is State.ESTABLISHED


def test_nodelay_turned_on_sends_what_nagle_held() -> None:
    """TCP_NODELAY set while Nagle holds a small segment sends it at once (as Linux's
    tcp_push_pending_frames on setsockopt)."""
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"a" * 10, 1.0)
    assert payloads(drain(conn)) == [(0, 10)]
    conn.send(b"b" * 10, 1.0)
    assert drain(conn) == []  # held: a small segment is unacknowledged
    conn.set_options(1.0, nodelay=True)
    assert payloads(drain(conn)) == [(10, 10)]
    assert conn.config.nodelay and not PLAIN.nodelay  # this connection's alone


def test_set_options_refuses_what_it_cannot_do() -> None:
    conn = open_active(PLAIN).conn
    with pytest.raises(TypeError):
        conn.set_options(1.0, recv_buffer=1)
    with pytest.raises(ValueError):
        conn.set_options(1.0, keepalive_idle=0)
    with pytest.raises(ValueError):
        conn.set_options(1.0, keepalive_count=0)
    assert conn.config == PLAIN


# -- the out-of-order queue --------------------------------------------------------------------


def test_out_of_order_queue_is_bounded() -> None:
    cfg = TcpConfig(timestamps=False, window_scaling=False, max_ooo_segments=3)
    p = open_passive(cfg, syn_opts=TcpOptions(mss=1460, sack_permitted=True))
    conn = p.conn
    for i in range(1, 6):
        p.send(ACK, bytes([i]) * 100, seq=add(START, 200 * i), at=1.0 + i / 100, advance=False)
    assert conn.drops.get("ooo_queue_full") == 2
    # Fill every gap with "h": what was kept (segments 1..3) joins the stream; what was
    # dropped (4, 5) is simply covered by the filler.
    for lo, hi in ((0, 200), (300, 400), (500, 600), (700, 1100)):
        p.send(ACK, b"h" * (hi - lo), seq=add(START, lo), at=2.0 + lo / 1e5, advance=False)
    expected = (
        b"h" * 200 + b"\x01" * 100 + b"h" * 100 + b"\x02" * 100 + b"h" * 100 + b"\x03" * 100
        + b"h" * 400
    )  # fmt: skip
    assert data_of(events(conn)) == expected
    assert conn.rcv_nxt == add(START, 1100)


# -- option negotiation --------------------------------------------------------------------------


def test_window_scaling_when_both_syns_carry_it() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, recv_buffer=1 << 20)
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=cfg))
    (syn,) = drain(conn)
    assert syn.options.wscale == 5  # 1 MiB >> 5 fits in 16 bits
    assert syn.window == 65535  # RFC 7323 2.2: never scaled in a SYN
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 1000, TcpOptions(mss=1460, wscale=3), b"", 0.1)
    (ack,) = drain(conn)
    assert conn.snd_wnd == 1000  # the SYN-ACK's window is not scaled either
    assert ack.window == (1 << 20) >> 5
    conn.receive(PEER_ISS + 1, ISS + 1, ACK, 1000, TcpOptions(), b"", 0.2)
    assert conn.snd_wnd == 8000


@pytest.mark.parametrize("peer_wscale", [None, 0])
def test_no_scaling_unless_both_offer(peer_wscale: int | None) -> None:
    cfg = TcpConfig(timestamps=False, sack=False, recv_buffer=1 << 20)
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=cfg))
    drain(conn)
    opts = TcpOptions(mss=1460, wscale=peer_wscale)
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 1000, opts, b"", 0.1)
    (ack,) = drain(conn)
    if peer_wscale is None:
        assert ack.window == 65535  # unscaled: the most 16 bits can say
        conn.receive(PEER_ISS + 1, ISS + 1, ACK, 1000, TcpOptions(), b"", 0.2)
        assert conn.snd_wnd == 1000
    else:
        assert ack.window == (1 << 20) >> 5


def test_passive_open_answers_window_scale_only_when_offered() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, recv_buffer=1 << 20)
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 1000, TcpOptions(mss=1460), 0.0,
        TcpParams(iss=ISS, mss=1460, config=cfg),
    )  # fmt: skip
    (synack,) = drain(conn)
    assert synack.options.wscale is None
    conn.receive(START, ISS + 1, ACK, 1000, TcpOptions(), b"", 0.1)
    assert conn.snd_wnd == 1000
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 1000, TcpOptions(mss=1460, wscale=2), 0.0,
        TcpParams(iss=ISS, mss=1460, config=cfg),
    )  # fmt: skip
    (synack,) = drain(conn)
    assert synack.options.wscale == 5
    conn.receive(START, ISS + 1, ACK, 1000, TcpOptions(), b"", 0.1)
    assert conn.snd_wnd == 4000


def test_window_scale_above_14_is_treated_as_14() -> None:
    """RFC 7323 2.3."""
    cfg = TcpConfig(timestamps=False, sack=False)
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=cfg))
    drain(conn)
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 1000, TcpOptions(wscale=20), b"", 0.1)
    drain(conn)
    conn.receive(START, ISS + 1, ACK, 1, TcpOptions(), b"", 0.2)
    assert conn.snd_wnd == 1 << 14


@pytest.mark.parametrize(("peer_mss", "expected"), [(1000, 1000), (536, 536), (9000, 1460)])
def test_mss_clamped_to_the_peers(peer_mss: int, expected: int) -> None:
    p = open_active(PLAIN, peer_mss=peer_mss)
    conn = p.conn
    assert conn.mss == expected
    conn.send(b"m" * 5000, 1.0)
    assert max(n for _, n in payloads(drain(conn))) == expected


def test_no_mss_option_means_536() -> None:
    """RFC 9293 3.7.1 (RFC 6691): without the option, assume 536 for IPv4."""
    p = open_active(PLAIN, peer_mss=None)
    assert p.conn.mss == 536


def test_timestamps_reduce_the_payload_per_segment() -> None:
    p = open_active(TcpConfig(sack=False), peer_ts=True)
    conn = p.conn
    assert conn.ts_ok
    conn.send(b"t" * 5000, 1.0)
    out = drain(conn)
    assert max(len(s.payload) for s in out) == 1448
    assert all(len(s.raw_options) == 12 for s in out)


# -- PAWS --------------------------------------------------------------------------------------


def test_paws_drops_a_segment_with_an_old_timestamp() -> None:
    """RFC 7323 5.3 R1: SEG.TSval < TS.Recent -> not acceptable: ACK and drop."""
    p = open_active(TcpConfig(sack=False), peer_ts=True)
    conn = p.conn
    p.ts_val = 5000
    p.send(ACK, b"new", at=1.0)
    assert data_of(events(conn)) == b"new"
    out = p.send(ACK, b"old", opts=TcpOptions(ts_val=4000, ts_ecr=0), at=1.1, advance=False)
    assert [(s.kind, s.ack) for s in out] == [(".", p.seq)]
    assert events(conn) == []
    assert conn.drops.get("paws") == 1
    # A timestamp that wrapped around (newer modulo 2**32) is fine.
    p.send(ACK, b"ok", opts=TcpOptions(ts_val=5001, ts_ecr=0), at=1.2)
    assert data_of(events(conn)) == b"ok"


def test_segment_without_timestamp_dropped_once_negotiated() -> None:
    """RFC 7323 3.2: a non-RST segment without TSopt is dropped."""
    p = open_active(TcpConfig(sack=False), peer_ts=True)
    conn = p.conn
    p.send(ACK, b"nots", opts=TcpOptions(), at=1.0, advance=False)
    assert events(conn) == []


# -- ICMP ---------------------------------------------------------------------------------------


def test_fragmentation_needed_lowers_the_mss_and_resends() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"x" * 5000, 1.0)
    assert payloads(drain(conn))[:3] == [(0, 1460), (1460, 1460), (2920, 1460)]
    conn.icmp_error(OSError(errno.EMSGSIZE, "frag needed"), 1.05, mtu=1000)
    assert conn.mss == 960  # RFC 1191: MTU - 40
    assert payloads(drain(conn)) == [(0, 960)]
    assert conn.state is State.ESTABLISHED


def test_fragmentation_needed_resend_is_not_sent_twice() -> None:
    """After the ICMP the first segment went out again at the new size; the next push (here
    the application writing more) continues after it. Regression: SND.NXT was left at
    SND.UNA after that retransmission, so the same bytes went out twice."""
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"x" * 5000, 1.0)
    drain(conn)
    conn.icmp_error(OSError(errno.EMSGSIZE, "frag needed"), 1.05, mtu=1000)
    first = payloads(drain(conn))
    conn.send(b"y" * 10, 1.06)
    second = payloads(drain(conn))
    assert first == [(0, 960)]
    assert (0, 960) not in second


def test_larger_or_absurd_mtu_is_ignored() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"x" * 3000, 1.0)
    drain(conn)
    conn.icmp_error(OSError(errno.EMSGSIZE, "x"), 1.1, mtu=9000)
    conn.icmp_error(OSError(errno.EMSGSIZE, "x"), 1.1, mtu=20)
    assert conn.mss == 1460
    assert drain(conn) == []


def test_port_unreachable_in_syn_sent_is_connection_refused() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    err = ConnectionRefusedError(errno.ECONNREFUSED, "port unreachable")
    conn.icmp_error(err, 0.1)
    assert conn.state is State.CLOSED
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset) and ev.error is err


@pytest.mark.parametrize("local", [False, True], ids=["from_a_router", "failed_resolution"])
def test_icmp_errors_in_established_are_soft(local: bool) -> None:
    """RFC 1122 4.2.3.9: unreachable errors do not abort a synchronized connection, nor does
    this host's own failed resolution of the peer's address (RFC 9293 3.9 SHLD-25); the
    last one is what a later timeout reports."""
    cfg = TcpConfig(timestamps=False, sack=False, retries=2)
    p = open_active(cfg)
    conn = p.conn
    err = OSError(errno.EHOSTUNREACH, "no route")
    conn.icmp_error(err, 0.5, local=local)
    conn.icmp_error(ConnectionRefusedError(errno.ECONNREFUSED, "port"), 0.5)
    assert conn.state is State.ESTABLISHED
    assert events(conn) == []
    conn.send(b"x", 1.0)
    drain(conn)
    p.run_timers(100.0)
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset)
    assert isinstance(ev.error, ConnectionRefusedError)


def test_host_unreachable_in_syn_sent_is_reported_on_timeout() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, syn_retries=1)
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=cfg))
    drain(conn)
    err = OSError(errno.EHOSTUNREACH, "no route")
    conn.icmp_error(err, 0.1)
    assert conn.state is State.SYN_SENT
    p = Peer(conn, seq=PEER_ISS, ack=ISS + 1)
    p.run_timers(100.0)
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset) and ev.error is err


def test_failed_neighbour_resolution_in_syn_sent_fails_the_connect() -> None:
    """This host's own address resolution for the peer failed (no ARP or ND answer): the
    attempt ends with that error at once, as on Linux (about 3 s after the SYN), instead of
    resending SYNs for two minutes (RFC 5461 2.2; RFC 4861 7.2.2)."""
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    err = OSError(errno.EHOSTUNREACH, "No route to host")
    conn.icmp_error(err, 3.0, local=True)
    assert conn.state is State.CLOSED
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset) and ev.error is err
    assert drain(conn) == []  # nothing synchronized: no RST


# -- a bulk transfer with everything on, as a sanity check ---------------------------------------


def test_bulk_transfer_both_ways() -> None:
    wire = pair(delay=0.02)
    a, b = wire.ends
    up = bytes((i * 13) % 256 for i in range(300_000))
    down = bytes((i * 7) % 256 for i in range(100_000))
    a.send(up, wire.now)
    b.send(down, wire.now)
    a.shutdown(wire.now)
    wire.run_until(lambda: b.state is State.CLOSE_WAIT, until=60.0)
    b.shutdown(wire.now)
    wire.run(wire.now + 300.0)
    assert bytes(wire.received[1]) == up
    assert bytes(wire.received[0]) == down
    assert a.state is State.CLOSED and b.state is State.CLOSED
    assert a.retransmits == 0 and b.retransmits == 0
    assert isinstance(wire.events[1][1], DataReceived)
