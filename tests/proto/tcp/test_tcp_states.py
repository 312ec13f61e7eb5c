"""RFC 9293 3.3.2 (Figure 5) and 3.10: every transition of the connection state diagram,
driven by hand-crafted segments from a scripted peer, checking the segments the machine
emits (flags, sequence and acknowledgement numbers) and the events it reports at each step.

No event loop: time is a plain float passed to the machine.
"""

from __future__ import annotations

import errno

import pytest
from tcp_harness import (
    ACK,
    FIN,
    ISS,
    LOCAL,
    NO_OPTS,
    PEER_ISS,
    REMOTE,
    RST,
    SYN,
    Connected,
    ConnectionClosed,
    ConnectionReset,
    DataReceived,
    EofReceived,
    Peer,
    State,
    TcpConfig,
    TcpConnection,
    TcpParams,
    drain,
    events,
    open_active,
    open_passive,
)

from netstack.proto.tcp.connection import TRANSITIONS
from netstack.proto.tcp.wire import TcpOptions

PLAIN = TcpConfig(timestamps=False, sack=False, window_scaling=False, msl=1.0)


def assert_table_holds(history: list[State]) -> None:
    for old, new in zip(history, history[1:], strict=False):
        assert new in TRANSITIONS[old], f"{old} -> {new}"


# -- opening ---------------------------------------------------------------------------------


def test_active_open_syn_sent_to_established() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    assert conn.state is State.SYN_SENT
    (syn,) = drain(conn)
    assert syn.kind == "S"
    assert (syn.seq, syn.ack) == (ISS, 0)
    assert syn.options.mss == 1460
    assert conn.poll_at() == pytest.approx(1.0)  # RFC 6298 2.1: the initial RTO
    assert conn.next_event() is None

    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 8000, TcpOptions(mss=1000), b"", 0.1)
    assert conn.state is State.ESTABLISHED
    (ack,) = drain(conn)
    assert ack.kind == "."
    assert (ack.seq, ack.ack) == (ISS + 1, PEER_ISS + 1)
    assert events(conn) == [Connected()]
    assert conn.mss == 1000  # RFC 9293 3.7.1: clamped to what the peer offered
    assert conn.snd_wnd == 8000
    assert conn.poll_at() is None  # nothing in flight, nothing owed


def test_syn_sent_unacceptable_ack_answered_with_reset() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    # RFC 9293 3.10.7.3: SEG.ACK =< ISS or SEG.ACK > SND.NXT -> <SEQ=SEG.ACK><CTL=RST>.
    for bad in (ISS, ISS + 2, ISS - 5):
        conn.receive(PEER_ISS, bad, SYN | ACK, 8000, NO_OPTS, b"", 0.1)
        (rst,) = drain(conn)
        assert rst.kind == "R"
        assert rst.seq == bad
        assert conn.state is State.SYN_SENT
    # ... unless it is itself a reset: then it is dropped without an answer.
    conn.receive(PEER_ISS, ISS + 7, RST | ACK, 0, NO_OPTS, b"", 0.1)
    assert drain(conn) == []
    assert conn.state is State.SYN_SENT
    assert events(conn) == []


def test_passive_open_syn_received_to_established() -> None:
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 30000, TcpOptions(mss=1200), 0.0,
        TcpParams(iss=ISS, mss=1460, config=PLAIN),
    )  # fmt: skip
    assert conn.state is State.SYN_RECEIVED
    (synack,) = drain(conn)
    assert synack.kind == "S."
    assert (synack.seq, synack.ack) == (ISS, PEER_ISS + 1)
    assert synack.options.mss == 1460
    assert conn.next_event() is None

    conn.receive(PEER_ISS + 1, ISS + 1, ACK, 30000, NO_OPTS, b"", 0.05)
    assert conn.state is State.ESTABLISHED
    assert drain(conn) == []
    assert events(conn) == [Connected()]
    assert conn.mss == 1200


def test_passive_open_data_with_the_final_ack_is_delivered() -> None:
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 30000, NO_OPTS, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN)
    )
    drain(conn)
    conn.receive(PEER_ISS + 1, ISS + 1, ACK, 30000, NO_OPTS, b"GET /", 0.05)
    assert conn.state is State.ESTABLISHED
    assert events(conn) == [Connected(), DataReceived(b"GET /")]
    conn.handle_timeout(0.5)
    assert [(s.kind, s.ack) for s in drain(conn)] == [(".", PEER_ISS + 6)]


def test_syn_received_unacceptable_ack_answered_with_reset() -> None:
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 30000, NO_OPTS, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN)
    )
    drain(conn)
    # RFC 9293 3.10.7.4 fifth check, SYN-RECEIVED: an unacceptable ACK -> <SEQ=SEG.ACK><RST>.
    conn.receive(PEER_ISS + 1, ISS + 50, ACK, 30000, NO_OPTS, b"", 0.05)
    (rst,) = drain(conn)
    assert rst.kind == "R"
    assert rst.seq == ISS + 50
    assert conn.state is State.SYN_RECEIVED
    assert events(conn) == []


def test_retransmitted_syn_in_syn_received_repeats_the_syn_ack() -> None:
    """Our SYN-ACK was lost and the peer repeats its SYN: the answer that lets the peer's
    handshake complete is the SYN-ACK again (Linux: tcp_check_req). Regression: the sequence
    check turned the SYN (SEG.SEQ = RCV.NXT - 1) away with a bare ACK, which a peer in
    SYN-SENT drops, and the branch meant for this case was unreachable."""
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 30000, TcpOptions(mss=1460), 0.0,
        TcpParams(iss=ISS, mss=1460, config=PLAIN),
    )  # fmt: skip
    drain(conn)
    conn.receive(PEER_ISS, 0, SYN, 30000, TcpOptions(mss=1460), b"", 0.5)
    out = drain(conn)
    assert [(s.kind, s.seq, s.ack) for s in out] == [("S.", ISS, PEER_ISS + 1)]
    assert conn.state is State.SYN_RECEIVED


def _deliver(src: list, dst: TcpConnection, now: float) -> None:
    for s in src:
        dst.receive(s.seq, s.ack, s.flags, s.window, s.options, s.payload, now)


def test_simultaneous_open_goes_through_syn_received() -> None:
    """RFC 9293 3.5, Figure 8: both ends in SYN-SENT, the SYNs cross."""
    a = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=100, mss=1460, config=PLAIN))
    b = TcpConnection.connect(REMOTE, LOCAL, 0.0, TcpParams(iss=300, mss=1460, config=PLAIN))
    syn_a, syn_b = drain(a), drain(b)
    _deliver(syn_b, a, 0.1)
    _deliver(syn_a, b, 0.1)
    assert a.state is State.SYN_RECEIVED and b.state is State.SYN_RECEIVED
    # Line 5: <SEQ=100><ACK=301><CTL=SYN,ACK>, and the same from the other end.
    out_a, out_b = drain(a), drain(b)
    assert [(s.kind, s.seq, s.ack) for s in out_a] == [("S.", 100, 301)]
    assert [(s.kind, s.seq, s.ack) for s in out_b] == [("S.", 300, 101)]
    assert events(a) == [] and events(b) == []
    # Exchange whatever follows until both settle (at most a few rounds, no timer needed).
    for t in (0.2, 0.3, 0.4):
        _deliver(out_a, b, t)
        _deliver(out_b, a, t)
        out_a, out_b = drain(a), drain(b)
    assert a.state is State.ESTABLISHED and b.state is State.ESTABLISHED
    assert events(a) == [Connected()] and events(b) == [Connected()]
    assert (a.snd_una, a.rcv_nxt) == (101, 301)
    assert (b.snd_una, b.rcv_nxt) == (301, 101)


def test_simultaneous_open_syn_ack_completes_the_handshake_as_in_figure_8() -> None:
    """RFC 9293 Figure 8, line 6: in SYN-RECEIVED the crossing <SEQ=300><ACK=101><SYN,ACK>
    moves the connection to ESTABLISHED (Linux's tcp_validate_incoming lets such a SYN-ACK
    pass in SYN-RECV). Regression: it was treated as out of window, answered with an ACK,
    and the connection stayed in SYN-RECEIVED; against a peer that is ESTABLISHED by then
    and sends nothing more, it waited for its retransmission timer."""
    a = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=100, mss=1460, config=PLAIN))
    b = TcpConnection.connect(REMOTE, LOCAL, 0.0, TcpParams(iss=300, mss=1460, config=PLAIN))
    syn_a, syn_b = drain(a), drain(b)
    _deliver(syn_b, a, 0.1)
    _deliver(syn_a, b, 0.1)
    drain(a)
    out_b = drain(b)
    _deliver(out_b, a, 0.2)  # line 6
    assert a.state is State.ESTABLISHED
    assert events(a) == [Connected()]


def test_shutdown_in_syn_sent_sends_fin_once_established() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    conn.send(b"abc", 0.0)
    conn.shutdown(0.0)
    assert drain(conn) == []  # RFC 9293 3.10.4: queued until ESTABLISHED
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 8000, NO_OPTS, b"", 0.1)
    assert conn.state is State.FIN_WAIT_1
    out = drain(conn)
    assert out[0].payload == b"abc" and out[0].seq == ISS + 1
    # The FIN rides on the data, or follows it at once.
    fin_seq = ISS + 4
    assert any(s.flags & FIN and s.seq + len(s.payload) == fin_seq for s in out)
    assert all(s.ack == PEER_ISS + 1 and s.flags & ACK for s in out)


def test_close_in_syn_sent_forgets_the_connection() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    conn.close(0.2)
    assert conn.state is State.CLOSED
    assert drain(conn) == []  # RFC 9293 3.10.4 SYN-SENT: no reset, nothing was synchronized
    assert conn.poll_at() is None
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 8000, NO_OPTS, b"", 0.3)
    assert conn.state is State.CLOSED


# -- closing ---------------------------------------------------------------------------------


def test_active_close_fin_wait_1_fin_wait_2_time_wait_closed() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    history = [conn.state]
    conn.close(1.0)
    history.append(conn.state)
    assert conn.state is State.FIN_WAIT_1
    (fin,) = drain(conn)
    assert fin.kind == "F."
    assert (fin.seq, fin.ack) == (ISS + 1, PEER_ISS + 1)

    assert p.send(ACK, ack=ISS + 2, at=1.1) == []
    history.append(conn.state)
    assert conn.state is State.FIN_WAIT_2
    assert events(conn) == []

    out = p.send(FIN | ACK, ack=ISS + 2, at=1.2)
    history.append(conn.state)
    assert conn.state is State.TIME_WAIT
    assert [(s.kind, s.seq, s.ack) for s in out] == [(".", ISS + 2, PEER_ISS + 2)]
    assert events(conn) == [EofReceived(), ConnectionClosed()]
    # RFC 9293 3.10.7.4: TIME-WAIT lasts 2 MSL (msl = 1 s here).
    assert conn.poll_at() == pytest.approx(3.2)
    assert p.tick(3.19) == []
    assert conn.state is State.TIME_WAIT
    assert p.tick(3.2) == []
    history.append(conn.state)
    assert conn.state is State.CLOSED
    assert events(conn) == []  # ConnectionClosed was reported once, on entering TIME-WAIT
    assert conn.poll_at() is None
    assert history == [
        State.ESTABLISHED,
        State.FIN_WAIT_1,
        State.FIN_WAIT_2,
        State.TIME_WAIT,
        State.CLOSED,
    ]
    assert_table_holds(history)


def test_simultaneous_close_fin_wait_1_closing_time_wait() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.shutdown(1.0)
    (fin,) = drain(conn)
    assert (fin.kind, fin.seq) == ("F.", ISS + 1)
    # The peer's FIN crosses ours: it does not acknowledge our FIN.
    out = p.send(FIN | ACK, ack=ISS + 1, at=1.1)
    assert conn.state is State.CLOSING
    assert [(s.kind, s.seq, s.ack) for s in out] == [(".", ISS + 2, PEER_ISS + 2)]
    assert events(conn) == [EofReceived()]
    out = p.send(ACK, ack=ISS + 2, at=1.2)
    assert out == []
    assert conn.state is State.TIME_WAIT
    assert events(conn) == [ConnectionClosed()]
    assert conn.poll_at() == pytest.approx(3.2)
    p.tick(3.2)
    assert conn.state is State.CLOSED


def test_fin_wait_1_to_time_wait_on_fin_with_ack_of_our_fin() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.close(1.0)
    drain(conn)
    out = p.send(FIN | ACK, ack=ISS + 2, at=1.1)
    assert conn.state is State.TIME_WAIT
    assert [(s.kind, s.seq, s.ack) for s in out] == [(".", ISS + 2, PEER_ISS + 2)]
    assert events(conn) == [EofReceived(), ConnectionClosed()]


def test_passive_close_close_wait_last_ack_closed() -> None:
    p = open_passive(PLAIN)
    conn = p.conn
    out = p.send(FIN | ACK, at=1.0)
    assert conn.state is State.CLOSE_WAIT
    # RFC 9293 3.10.7.4 eighth check: the FIN is acknowledged (at once: nothing to delay for).
    assert [(s.kind, s.seq, s.ack) for s in out] == [(".", ISS + 1, PEER_ISS + 2)]
    assert events(conn) == [EofReceived()]
    # CLOSE-WAIT: the user may still send.
    conn.send(b"bye", 1.1)
    (data,) = drain(conn)
    assert (data.seq, data.payload, data.ack) == (ISS + 1, b"bye", PEER_ISS + 2)
    conn.close(1.2)
    assert conn.state is State.LAST_ACK
    (fin,) = drain(conn)
    assert (fin.kind, fin.seq, fin.ack) == ("F.", ISS + 4, PEER_ISS + 2)
    assert p.send(ACK, ack=ISS + 4, at=1.3) == []
    assert conn.state is State.LAST_ACK  # only the data is acknowledged
    assert p.send(ACK, ack=ISS + 5, at=1.4) == []
    assert conn.state is State.CLOSED
    assert events(conn) == [ConnectionClosed()]
    assert conn.poll_at() is None


def test_half_close_keeps_receiving_in_fin_wait_2() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.shutdown(1.0)  # write_eof(): reading goes on
    drain(conn)
    p.send(ACK, ack=ISS + 2, at=1.1)
    assert conn.state is State.FIN_WAIT_2
    assert conn.poll_at() is None  # not orphaned: no FIN-WAIT-2 timeout
    for i in range(3):
        p.send(ACK, b"more %d" % i, at=2.0 + i)
    assert conn.state is State.FIN_WAIT_2
    assert [e for e in events(conn)] == [DataReceived(b"more %d" % i) for i in range(3)]
    out = p.run_timers(10.0)
    out += p.send(FIN | ACK, at=10.0)
    assert out and out[-1].ack == p.seq
    assert conn.state is State.TIME_WAIT
    assert events(conn) == [EofReceived(), ConnectionClosed()]
    with pytest.raises(BrokenPipeError):
        conn.send(b"x", 10.1)


def test_time_wait_acknowledges_and_restarts_on_a_retransmitted_fin() -> None:
    """RFC 9293 3.10.7.4, eighth check, TIME-WAIT: "Remain in the TIME-WAIT state. Restart
    the 2 MSL time-wait timeout." The peer repeats its FIN because our last ACK was lost.
    Regression: the FIN (below RCV.NXT) was acknowledged by the sequence check, which never
    restarted the timer; the branch that did was unreachable."""
    p = open_active(PLAIN)
    conn = p.conn
    conn.close(1.0)
    drain(conn)
    p.send(FIN | ACK, ack=ISS + 2, at=1.1)
    assert conn.state is State.TIME_WAIT
    assert conn.poll_at() == pytest.approx(3.1)
    out = p.send(FIN | ACK, seq=PEER_ISS + 1, ack=ISS + 2, at=2.5)
    assert [(s.kind, s.seq, s.ack) for s in out] == [(".", ISS + 2, PEER_ISS + 2)]
    assert conn.state is State.TIME_WAIT
    assert conn.poll_at() == pytest.approx(4.5)


def test_fin_wait_2_timeout_for_an_orphaned_connection() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, fin_wait_2_timeout=5.0)
    p = open_active(cfg)
    conn = p.conn
    conn.close(1.0)
    drain(conn)
    p.send(ACK, ack=ISS + 2, at=1.5)
    assert conn.state is State.FIN_WAIT_2
    assert conn.poll_at() == pytest.approx(6.5)
    assert p.tick(6.4) == []
    assert conn.state is State.FIN_WAIT_2
    p.tick(6.5)
    assert conn.state is State.CLOSED
    assert events(conn) == [ConnectionClosed()]
    assert conn.poll_at() is None


def test_close_after_shutdown_in_fin_wait_2_starts_the_timeout() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, fin_wait_2_timeout=5.0)
    p = open_active(cfg)
    conn = p.conn
    conn.shutdown(1.0)
    drain(conn)
    p.send(ACK, ack=ISS + 2, at=1.5)
    assert conn.poll_at() is None
    conn.close(2.0)
    assert drain(conn) == []  # the FIN was sent already
    assert conn.poll_at() == pytest.approx(7.0)
    p.tick(7.0)
    assert conn.state is State.CLOSED


def test_close_with_unread_held_data_sends_reset() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.pause_reading()
    p.send(ACK, b"unread", at=1.0)
    assert events(conn) == []  # held for the paused application
    p.run_timers(1.5)
    conn.close(2.0)
    out = drain(conn)
    # RFC 2525 2.17 / RFC 9293 3.10.4: data the application will never read -> reset.
    assert [(s.kind, s.seq) for s in out] == [("R", ISS + 1)]
    assert conn.state is State.CLOSED
    assert conn.poll_at() is None


def test_data_after_close_resets() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.close(1.0)
    (fin,) = drain(conn)
    p.send(ACK, ack=ISS + 2, at=1.1)
    assert conn.state is State.FIN_WAIT_2
    out = p.send(ACK, b"nobody reads this", ack=ISS + 2, at=1.2)
    assert [(s.kind, s.seq) for s in out] == [("R", ISS + 2)]
    assert conn.state is State.CLOSED
    evs = events(conn)
    assert len(evs) == 1 and isinstance(evs[0], ConnectionReset)
    assert conn.poll_at() is None


def test_repeated_old_data_after_close_is_acknowledged_not_reset() -> None:
    """A retransmission of data already received (our ACK was lost) carries nothing new:
    it draws a duplicate ACK, not a reset."""
    p = open_active(PLAIN)
    conn = p.conn
    p.send(ACK, b"hello", at=0.5)
    p.run_timers(1.0)
    assert events(conn) == [DataReceived(b"hello")]
    conn.close(1.0)
    drain(conn)
    out = p.send(ACK, b"hello", seq=PEER_ISS + 1, ack=ISS + 1, at=1.1)
    assert [(s.kind, s.ack) for s in out] == [(".", PEER_ISS + 6)]
    assert conn.state is State.FIN_WAIT_1


def test_abort_sends_reset_and_forgets_everything() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"x" * 3000, 1.0)
    sent = drain(conn)
    assert sent
    snd_nxt = max(s.seq + len(s.payload) for s in sent)  # small-segment rule: the tail may wait
    conn.abort(1.1)
    out = drain(conn)
    assert [(s.kind, s.seq) for s in out] == [("R", snd_nxt)]  # RFC 9293 3.10.5
    assert conn.state is State.CLOSED
    assert conn.poll_at() is None
    evs = events(conn)
    assert len(evs) == 1 and isinstance(evs[0], ConnectionClosed | ConnectionReset)
    with pytest.raises(OSError):
        conn.send(b"more", 1.2)
    # Anything later is ignored.
    p.send(ACK, b"late", at=1.3)
    assert conn.state is State.CLOSED
    assert drain(conn) == [] and events(conn) == []


def test_abort_in_syn_sent_sends_nothing() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    conn.abort(0.1)
    assert drain(conn) == []
    assert conn.state is State.CLOSED


# -- resets in each state ----------------------------------------------------------------------


def test_reset_in_syn_sent_with_acceptable_ack_is_connection_refused() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    conn.receive(0, ISS + 1, RST | ACK, 0, NO_OPTS, b"", 0.1)
    assert conn.state is State.CLOSED
    assert drain(conn) == []
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset)
    assert isinstance(ev.error, ConnectionRefusedError)
    assert ev.error.errno == errno.ECONNREFUSED
    assert conn.poll_at() is None


def test_reset_without_ack_in_syn_sent_is_ignored() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    conn.receive(0, 0, RST, 0, NO_OPTS, b"", 0.1)  # RFC 5961 3.2 / RFC 9293 3.10.7.3
    assert conn.state is State.SYN_SENT
    assert drain(conn) == [] and events(conn) == []


def test_reset_in_established_is_connection_reset() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    p.send(RST, at=1.0)
    assert conn.state is State.CLOSED
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset)
    assert isinstance(ev.error, ConnectionResetError)
    assert drain(conn) == []
    with pytest.raises(ConnectionResetError):
        conn.send(b"x", 1.1)


def test_reset_in_syn_received_ends_the_half_open_connection() -> None:
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 30000, NO_OPTS, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN)
    )
    drain(conn)
    conn.receive(PEER_ISS + 1, 0, RST, 0, NO_OPTS, b"", 0.1)
    assert conn.state is State.CLOSED
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset)
    assert drain(conn) == []


def _to_state(state: State) -> Peer:
    p = open_active(PLAIN)
    conn = p.conn
    if state is State.CLOSE_WAIT:
        p.send(FIN | ACK, at=0.5)
    elif state is State.FIN_WAIT_1:
        conn.shutdown(0.5)
    elif state is State.FIN_WAIT_2:
        conn.shutdown(0.5)
        drain(conn)
        p.send(ACK, ack=ISS + 2, at=0.6)
    elif state is State.CLOSING:
        conn.shutdown(0.5)
        drain(conn)
        p.send(FIN | ACK, at=0.6)
    elif state is State.LAST_ACK:
        p.send(FIN | ACK, at=0.5)
        conn.close(0.6)
    elif state is State.TIME_WAIT:
        conn.shutdown(0.5)
        drain(conn)
        p.send(FIN | ACK, ack=ISS + 2, at=0.6)
    drain(conn)
    events(conn)
    assert conn.state is state
    return p


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (State.ESTABLISHED, ConnectionResetError),
        (State.CLOSE_WAIT, ConnectionResetError),
        (State.FIN_WAIT_1, ConnectionResetError),
        (State.FIN_WAIT_2, ConnectionResetError),
        (State.CLOSING, None),
        (State.LAST_ACK, None),
        (State.TIME_WAIT, None),
    ],
)
def test_exact_reset_in_each_synchronized_state(state: State, error: type | None) -> None:
    """RFC 9293 3.10.7.4 second check: ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT report
    "connection reset"; CLOSING, LAST-ACK, TIME-WAIT just enter CLOSED."""
    p = _to_state(state)
    conn = p.conn
    p.send(RST, at=1.0)
    assert conn.state is State.CLOSED
    assert drain(conn) == []
    evs = events(conn)
    if error is None:
        assert not any(isinstance(e, ConnectionReset) for e in evs)
    else:
        assert len(evs) == 1 and isinstance(evs[0], ConnectionReset)
        assert isinstance(evs[0].error, error)
    assert conn.poll_at() is None


def test_every_state_change_is_in_the_table() -> None:
    """Record every transition of a full conversation and check each against TRANSITIONS."""
    history: list[State] = []
    original = TcpConnection._set_state

    def spy(self: TcpConnection, new: State) -> None:
        original(self, new)
        history.append(self.state)

    TcpConnection._set_state = spy  # type: ignore[method-assign]
    try:
        p = open_passive(PLAIN)
        p.send(ACK, b"data", at=0.1)
        p.send(FIN | ACK, at=0.2)
        p.conn.close(0.3)
        p.send(ACK, ack=ISS + 2, at=0.4)
    finally:
        TcpConnection._set_state = original  # type: ignore[method-assign]
    assert history == [
        State.SYN_RECEIVED,
        State.ESTABLISHED,
        State.CLOSE_WAIT,
        State.LAST_ACK,
        State.CLOSED,
    ]
    assert_table_holds([State.CLOSED, *history])


def test_data_event_views_the_segment_until_kept() -> None:
    """In-order data is handed out as the segment's own view (no copy in the machine);
    keep_events() copies what a driver leaves queued past the input, so a receive buffer
    reused afterwards cannot change it."""
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 30000, NO_OPTS, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN)
    )
    drain(conn)
    buf = bytearray(b"GET /")
    conn.receive(PEER_ISS + 1, ISS + 1, ACK, 30000, NO_OPTS, memoryview(buf), 0.05)
    assert conn.next_event() == Connected()
    conn.keep_events()
    buf[:] = b"XXXXX"  # the link reuses its buffer for the next frame
    event = conn.next_event()
    assert event == DataReceived(b"GET /") and type(event.data) is bytes
    buf[:] = b"GET /"
    conn.receive(PEER_ISS + 6, ISS + 1, ACK, 30000, NO_OPTS, memoryview(buf), 0.06)
    event = conn.next_event()
    assert isinstance(event, DataReceived) and type(event.data) is memoryview
    assert event.data.obj is buf  # the segment itself: no copy made
