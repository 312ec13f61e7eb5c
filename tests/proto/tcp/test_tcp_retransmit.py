"""RFC 6298 retransmission timer and RFC 7323 RTT measurement: the initial RTO, exponential
backoff to the 60 s cap, the 200 ms floor, no samples from retransmissions, giving up
after ``retries`` / ``syn_retries``, and SRTT/RTTVAR/RTO from timestamp echoes. Simulated time only.
"""

from __future__ import annotations

import errno

import pytest
from tcp_harness import (
    ACK,
    FIN,
    ISS,
    LOCAL,
    PEER_ISS,
    REMOTE,
    SYN,
    ConnectionReset,
    Peer,
    State,
    TcpConfig,
    TcpConnection,
    TcpParams,
    add,
    drain,
    events,
    open_active,
    pair,
)

from netstack.proto.tcp.wire import TcpOptions

PLAIN = TcpConfig(timestamps=False, sack=False, window_scaling=False)


def timeline(p: Peer, until: float) -> list[tuple[float, int, int]]:
    """(time, seq, payload length) of everything the machine sends while nobody answers."""
    out = []
    for _ in range(1000):
        at = p.conn.poll_at()
        if at is None or at > until:
            break
        for s in p.tick(at):
            out.append((at, s.seq, len(s.payload)))
    return out


# -- the SYN -----------------------------------------------------------------------------------


def test_initial_rto_is_one_second_and_syn_backoff_doubles() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    p = Peer(conn, seq=PEER_ISS, ack=ISS + 1)
    sent = timeline(p, 40.0)
    # RFC 6298 2.1: RTO = 1 s before any sample; 5.5: doubled on each expiry.
    assert [t for t, _, _ in sent] == pytest.approx([1.0, 3.0, 7.0, 15.0, 31.0])
    assert all(seq == ISS for _, seq, _ in sent)
    assert all(s.kind == "S" for s in p.sent)


def test_syn_retries_then_timeout() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, syn_retries=2)
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=cfg))
    drain(conn)
    p = Peer(conn, seq=PEER_ISS, ack=ISS + 1)
    sent = timeline(p, 100.0)
    assert [t for t, _, _ in sent] == pytest.approx([1.0, 3.0])
    assert conn.state is State.CLOSED
    (ev,) = events(conn)
    assert isinstance(ev, ConnectionReset)
    assert isinstance(ev.error, TimeoutError)
    assert ev.error.errno == errno.ETIMEDOUT
    assert conn.poll_at() is None


def test_default_syn_retries_give_up_after_six_retransmissions() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    p = Peer(conn, seq=PEER_ISS, ack=ISS + 1)
    sent = timeline(p, 1000.0)
    assert len(sent) == 6
    assert conn.state is State.CLOSED
    (ev,) = events(conn)
    assert isinstance(ev.error, TimeoutError)


def test_syn_ack_retransmitted_in_syn_received() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, syn_retries=1)
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 8000, TcpOptions(mss=1460), 0.0,
        TcpParams(iss=ISS, mss=1460, config=cfg),
    )  # fmt: skip
    drain(conn)
    p = Peer(conn, seq=PEER_ISS + 1, ack=ISS + 1)
    assert conn.poll_at() == pytest.approx(1.0)
    assert [(s.kind, s.seq, s.ack) for s in p.tick(1.0)] == [("S.", ISS, PEER_ISS + 1)]
    p.run_timers(100.0)
    assert conn.state is State.CLOSED
    assert [type(e) for e in events(conn)] == [ConnectionReset]


# -- data ------------------------------------------------------------------------------------


def test_rto_floor_and_backoff_to_the_cap() -> None:
    p = open_active(PLAIN)  # the SYN-ACK came back at once: a sample of 0 s
    conn = p.conn
    assert conn.srtt == 0.0
    assert conn.rto == pytest.approx(0.2)  # RFC 6298 2.4 allows a floor below 1 s; 200 ms
    conn.send(b"x" * 100, 1.0)
    (first,) = drain(conn)
    sent = timeline(p, 400.0)
    times = [1.0] + [t for t, _, _ in sent]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    expected = [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 60.0, 60.0, 60.0]
    assert gaps[: len(expected)] == pytest.approx(expected)
    assert max(gaps) == pytest.approx(60.0)  # RFC 6298 2.5: a maximum of at least 60 s
    assert all(seq == first.seq and n == 100 for _, seq, n in sent)


def test_retries_then_timeout_error() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, retries=3)
    p = open_active(cfg)
    conn = p.conn
    conn.send(b"x" * 100, 1.0)
    drain(conn)
    sent = timeline(p, 1000.0)
    data = [x for x in sent if x[2]]
    assert len(data) == 3
    assert conn.state is State.CLOSED
    evs = events(conn)
    assert len(evs) == 1 and isinstance(evs[0], ConnectionReset)
    assert isinstance(evs[0].error, TimeoutError)
    assert conn.poll_at() is None
    with pytest.raises(TimeoutError):
        conn.send(b"y", 2000.0)


def test_progress_resets_the_retry_count() -> None:
    cfg = TcpConfig(timestamps=False, sack=False, retries=2)
    p = open_active(cfg)
    conn = p.conn
    conn.send(b"a" * 100, 1.0)
    drain(conn)
    p.tick(conn.poll_at())
    p.tick(conn.poll_at())  # two retransmissions: the limit
    p.send(ACK, ack=ISS + 101, at=3.0)
    conn.send(b"b" * 100, 3.0)
    drain(conn)
    p.tick(conn.poll_at())
    p.tick(conn.poll_at())
    assert conn.state is State.ESTABLISHED


def test_timer_restarted_by_new_ack_and_stopped_when_all_acked() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"x" * 2920, 1.0)
    assert len(drain(conn)) == 2
    rto = conn.rto
    assert conn.poll_at() == pytest.approx(1.0 + rto)
    p.send(ACK, ack=ISS + 1461, at=1.1)
    # RFC 6298 5.3: an ACK of new data restarts the timer (with the RTO now in force).
    assert conn.poll_at() == pytest.approx(1.1 + conn.rto)
    p.send(ACK, ack=ISS + 2921, at=1.15)
    assert conn.poll_at() is None  # 5.2: everything acknowledged, timer off


def test_rto_retransmits_only_the_first_segment_and_collapses_cwnd() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"x" * 14600, 1.0)
    sent = drain(conn)
    assert len(sent) == 10  # RFC 6928 initial window
    flight = 14600
    out = p.tick(conn.poll_at())
    assert [(s.seq, len(s.payload)) for s in out] == [(ISS + 1, 1460)]
    # RFC 5681 3.1: cwnd = 1 MSS, ssthresh = max(FlightSize / 2, 2 * SMSS).
    assert conn.cc.cwnd == 1460
    assert conn.cc.ssthresh == flight // 2
    assert conn.retransmits == 1


# -- no RTT samples from retransmissions (RFC 6298 3) ----------------------------------------


def test_go_back_n_after_a_timeout_resends_the_short_tail_at_once() -> None:
    """After a timeout SND.NXT goes back to SND.UNA and what was sent goes out again as the
    window allows. The short last segment was sent before: Nagle's rule (RFC 9293 3.7.4),
    which holds new small segments while an earlier one is unacknowledged, must not hold it
    (the "earlier small segment" is itself). Regression: it waited for the next timeout."""
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"x" * 5000, 1.0)
    assert [len(s.payload) for s in drain(conn)] == [1460, 1460, 1460, 620]
    at = conn.poll_at()
    assert at is not None
    assert [(s.seq, len(s.payload)) for s in p.tick(at)] == [(ISS + 1, 1460)]
    out = p.send(ACK, ack=ISS + 1 + 1460, at=at + 0.1)
    assert [(s.seq, len(s.payload)) for s in out] == [(ISS + 1461, 1460), (ISS + 2921, 1460)]
    out = p.send(ACK, ack=ISS + 1 + 4380, at=at + 0.2)
    assert [(s.seq, len(s.payload)) for s in out] == [(ISS + 4381, 620)]


def test_no_rtt_sample_from_a_retransmitted_segment() -> None:
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"x" * 100, 1.0)
    drain(conn)
    p.tick(conn.poll_at())  # retransmitted at 1.2; RTO backed off to 0.4
    assert conn.rto == pytest.approx(0.4)
    srtt = conn.srtt
    p.send(ACK, ack=ISS + 101, at=1.25)
    assert conn.srtt == srtt  # ambiguous: from the first send or the second?
    assert conn.rto == pytest.approx(0.4)  # the backed-off RTO stays until a valid sample
    # A segment sent once gives a sample again.
    conn.send(b"y" * 100, 2.0)
    drain(conn)
    p.send(ACK, ack=ISS + 201, at=2.3)
    assert conn.srtt is not None and conn.srtt > 0.0


def test_no_rtt_sample_from_segments_resent_after_a_timeout() -> None:
    """After a timeout the sender goes back to SND.UNA: once the first segment is
    acknowledged, the rest of the old flight is sent again. Those are retransmissions too
    (RFC 6298 3: "RTT samples MUST NOT be made using segments that were
    retransmitted"): an ACK for them may be for the original transmission. Regression: the
    re-sent second segment was timed as new, giving a bogus 10 ms sample that threw away
    the backed-off RTO."""
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"a" * 2920, 1.0)
    assert len(drain(conn)) == 2
    p.tick(conn.poll_at())  # 1.2: the first segment again; RTO -> 0.4
    srtt, rto = conn.srtt, conn.rto
    out = p.send(ACK, ack=ISS + 1461, at=1.5)
    assert [s.seq for s in out if s.payload] == [ISS + 1461]  # the second one, again
    # This ACK could well be for the original second segment, sent at 1.0.
    p.send(ACK, ack=ISS + 2921, at=1.51)
    assert conn.srtt == srtt
    assert conn.rto == pytest.approx(rto)


# -- RTT measurement with timestamps ---------------------------------------------------------


def ts_connection(now: float = 10.0, ts_offset: int = 0) -> Peer:
    """ESTABLISHED with timestamps; the SYN-ACK echoes 0, so no sample is taken from it."""
    cfg = TcpConfig(sack=False, window_scaling=False)
    conn = TcpConnection.connect(
        LOCAL, REMOTE, now, TcpParams(iss=ISS, mss=1460, config=cfg, ts_offset=ts_offset)
    )
    drain(conn)
    conn.receive(
        PEER_ISS, ISS + 1, SYN | ACK, 65535, TcpOptions(mss=1460, ts_val=7, ts_ecr=0), b"", now
    )
    drain(conn)
    events(conn)
    assert conn.ts_ok and conn.srtt is None
    return Peer(conn, seq=PEER_ISS + 1, ack=ISS + 1, now=now, timestamps=True, ts_val=8)


def test_rtt_from_timestamps_rfc6298_formulas() -> None:
    p = ts_connection()
    conn = p.conn
    conn.send(b"x" * 100, 11.0)
    (seg,) = drain(conn)
    assert seg.options.ts_val == 11000 and seg.options.ts_ecr == 7
    p.send(ACK, ack=ISS + 101, opts=p.opts(ts_val=9, ts_ecr=seg.options.ts_val), at=11.3)
    # RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 * RTTVAR.
    assert conn.srtt == pytest.approx(0.3)
    assert conn.rttvar == pytest.approx(0.15)
    assert conn.rto == pytest.approx(0.9)
    conn.send(b"y" * 100, 12.0)
    (seg,) = drain(conn)
    p.send(ACK, ack=ISS + 201, opts=p.opts(ts_val=10, ts_ecr=seg.options.ts_val), at=12.5)
    # 2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|, SRTT = 7/8 SRTT + 1/8 R'.
    rttvar = 0.75 * 0.15 + 0.25 * abs(0.3 - 0.5)
    srtt = 0.875 * 0.3 + 0.125 * 0.5
    assert conn.rttvar == pytest.approx(rttvar)
    assert conn.srtt == pytest.approx(srtt)
    assert conn.rto == pytest.approx(srtt + 4 * rttvar)
    conn.send(b"z" * 100, 13.0)
    drain(conn)
    assert conn.poll_at() == pytest.approx(13.0 + srtt + 4 * rttvar)


def test_rtt_sample_from_retransmission_echo_with_timestamps() -> None:
    """With timestamps the echo says which transmission is acknowledged (RFC 7323 4.1), so
    a retransmission can be timed."""
    p = ts_connection()
    conn = p.conn
    conn.send(b"x" * 100, 11.0)
    drain(conn)
    out = p.tick(12.0)  # the initial RTO of 1 s
    assert len(out) == 1
    p.send(ACK, ack=ISS + 101, opts=p.opts(ts_val=9, ts_ecr=out[0].options.ts_val), at=12.1)
    assert conn.srtt == pytest.approx(0.1)


def test_no_rtt_sample_from_an_echo_older_than_the_timeout() -> None:
    """The original arrived but its ACK was lost; the retransmission's ACK echoes the
    original's timestamp. A sample from it would count the timeout as round-trip time (and
    the inflated RTO would make the next timeout longer still): it is skipped, as Karn's
    rule skips retransmitted segments, until an echo of a later segment comes back."""
    p = ts_connection()
    conn = p.conn
    conn.send(b"x" * 100, 11.0)
    (first,) = drain(conn)
    p.send(ACK, ack=ISS + 101, opts=p.opts(ts_val=8, ts_ecr=first.options.ts_val), at=11.1)
    assert conn.srtt == pytest.approx(0.1)
    conn.send(b"y" * 100, 12.0)
    (original,) = drain(conn)
    out = p.tick(12.0 + conn.rto)  # the ACK of "y" was lost: a timeout, RTO doubled
    assert len(out) == 1
    backed_off = conn.rto
    # The ACK of the retransmission echoes the original's timestamp (its receiver had the
    # data already, so TS.Recent did not move): no sample, the backed-off RTO stays.
    p.send(ACK, ack=ISS + 201, opts=p.opts(ts_val=9, ts_ecr=original.options.ts_val), at=13.0)
    assert conn.srtt == pytest.approx(0.1)
    assert conn.rto == pytest.approx(backed_off)
    # An echo of a segment sent after the timeout is a fair sample again.
    conn.send(b"z" * 100, 14.0)
    (later,) = drain(conn)
    p.send(ACK, ack=ISS + 301, opts=p.opts(ts_val=10, ts_ecr=later.options.ts_val), at=14.1)
    assert conn.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.1)
    assert conn.rto < backed_off


def test_rtt_sample_across_timestamp_clock_wrap() -> None:
    p = ts_connection(ts_offset=(1 << 32) - 11_100)  # the clock wraps at t = 11.1 s
    conn = p.conn
    conn.send(b"x" * 100, 11.0)
    (seg,) = drain(conn)
    assert seg.options.ts_val == (1 << 32) - 100
    p.send(ACK, ack=ISS + 101, opts=p.opts(ts_val=9, ts_ecr=seg.options.ts_val), at=11.25)
    assert conn.srtt == pytest.approx(0.25)


def test_syn_rtt_sample_across_timestamp_clock_wrap() -> None:
    """RFC 7323 5.2: timestamp arithmetic is modulo 2**32. The SYN was sent 250 ms before its
    SYN-ACK, with a clock that wrapped in between (the per-connection random offset makes
    this as likely as at any other moment): the sample must be 250 ms. Regression: SYN-SENT
    subtracted without the modulo and took no sample."""
    cfg = TcpConfig(sack=False, window_scaling=False)
    conn = TcpConnection.connect(
        LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=cfg, ts_offset=(1 << 32) - 100)
    )
    (syn,) = drain(conn)
    opts = TcpOptions(mss=1460, ts_val=5, ts_ecr=syn.options.ts_val)
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 65535, opts, b"", 0.25)
    assert conn.state is State.ESTABLISHED
    assert conn.srtt == pytest.approx(0.25)
    assert conn.rto == pytest.approx(0.75)


def test_syn_rtt_sample_without_wrap() -> None:
    cfg = TcpConfig(sack=False, window_scaling=False)
    conn = TcpConnection.connect(
        LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=cfg, ts_offset=12345)
    )
    (syn,) = drain(conn)
    opts = TcpOptions(mss=1460, ts_val=5, ts_ecr=syn.options.ts_val)
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 65535, opts, b"", 0.25)
    assert conn.srtt == pytest.approx(0.25)
    assert conn.rto == pytest.approx(0.75)


def test_syn_sample_without_timestamps_and_none_after_a_syn_retransmission() -> None:
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 65535, TcpOptions(mss=1460), b"", 0.4)
    assert conn.srtt == pytest.approx(0.4)
    conn = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=PLAIN))
    drain(conn)
    conn.handle_timeout(1.0)
    drain(conn)
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 65535, TcpOptions(mss=1460), b"", 1.1)
    assert conn.srtt is None  # RFC 6298 3: which SYN is this the answer to?
    assert conn.state is State.ESTABLISHED


def test_syn_sample_when_timestamps_are_configured_but_the_peer_has_none() -> None:
    """RFC 6298 2.2: the SYN exchange gives the first RTT sample. What decides how to time it
    is whether timestamps were *negotiated*: a peer that does not offer them must still give
    a sample from the timed SYN (Karn), or the first RTO stays at 1 s."""
    conn = TcpConnection.connect(
        LOCAL, REMOTE, 0.0, TcpParams(iss=ISS, mss=1460, config=TcpConfig())
    )
    (syn,) = drain(conn)
    assert syn.options.ts_val is not None  # offered ...
    conn.receive(PEER_ISS, ISS + 1, SYN | ACK, 65535, TcpOptions(mss=1460), b"", 0.05)
    assert conn.state is State.ESTABLISHED and not conn.ts_ok  # ... but not negotiated
    assert conn.srtt == pytest.approx(0.05)
    assert conn.rttvar == pytest.approx(0.025)
    assert conn.rto == pytest.approx(0.2)  # max(SRTT + 4 * RTTVAR, the 200 ms floor)


def test_syn_ack_sample_when_the_peers_syn_has_no_timestamps() -> None:
    """The passive side: the ACK of the SYN-ACK gives the first sample when the peer's SYN
    carried no timestamps, although our configuration allows them."""
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 65535, TcpOptions(mss=1460), 0.0,
        TcpParams(iss=ISS, mss=1460, config=TcpConfig()),
    )  # fmt: skip
    (synack,) = drain(conn)
    assert synack.options.ts_val is None and not conn.ts_ok
    conn.receive(PEER_ISS + 1, ISS + 1, ACK, 65535, TcpOptions(), b"", 0.3)
    assert conn.state is State.ESTABLISHED
    assert conn.srtt == pytest.approx(0.3)
    assert conn.rto == pytest.approx(0.9)
    # Karn: after the SYN-ACK was sent again, its ACK gives no sample.
    conn = TcpConnection.accept(
        LOCAL, REMOTE, PEER_ISS, 65535, TcpOptions(mss=1460), 0.0,
        TcpParams(iss=ISS, mss=1460, config=TcpConfig()),
    )  # fmt: skip
    drain(conn)
    conn.handle_timeout(1.0)
    assert [s.kind for s in drain(conn)] == ["S."]
    conn.receive(PEER_ISS + 1, ISS + 1, ACK, 65535, TcpOptions(), b"", 1.1)
    assert conn.state is State.ESTABLISHED
    assert conn.srtt is None


def test_bogus_echo_gives_no_sample() -> None:
    """An echo from the future or from long ago (more than 60 s) is not an RTT."""
    p = ts_connection()
    conn = p.conn
    conn.send(b"x" * 100, 11.0)
    drain(conn)
    p.send(ACK, ack=ISS + 101, opts=p.opts(ts_val=9, ts_ecr=add(11000, 5000)), at=11.2)
    assert conn.srtt is None
    conn.send(b"y" * 100, 12.0)
    drain(conn)
    p.send(ACK, ack=ISS + 201, opts=p.opts(ts_val=10, ts_ecr=add(12200, -70_000)), at=12.2)
    assert conn.srtt is None


# -- a retransmission that carries data never sent before ------------------------------------


def test_ack_of_a_timeout_retransmission_that_grew_is_accepted() -> None:
    """A one-byte segment is outstanding and the small-segment rule holds the next byte;
    the first is lost. Whatever the timeout resends, the peer's ACK of what it received
    must be accepted.
    Regression: the timeout resent from SND.UNA as much as fitted in a segment (both bytes)
    and moved SND.NXT past SND.MAX without raising SND.MAX, so the peer's ACK of both
    bytes counted as "beyond what was sent" (RFC 5961 5.2), was challenged and dropped,
    every time, until the connection timed out. Found by the stateful test."""
    p = open_active(PLAIN)
    conn = p.conn
    conn.send(b"a", 1.0)
    assert payloads(drain(conn)) == [(ISS + 1, b"a")]
    conn.send(b"b", 1.01)
    assert drain(conn) == []  # RFC 9293 3.7.4: one small segment outstanding
    out = p.tick(conn.poll_at())
    (rexmit,) = payloads(out)
    assert rexmit[0] == ISS + 1 and rexmit[1] in (b"a", b"ab")
    # The peer acknowledges whatever it got (everything, once "b" has been sent too).
    end = ISS + 1 + len(rexmit[1])
    out = p.send(ACK, ack=end, at=1.3)
    assert [s for s in out if not s.payload] == []  # no challenge ACK
    assert conn.snd_una == end
    if end != ISS + 3:
        assert payloads(out) == [(ISS + 2, b"b")]
        p.send(ACK, ack=ISS + 3, at=1.4)
    assert conn.snd_una == ISS + 3
    assert conn.drops.get("ack_beyond_sent", 0) == 0
    assert conn.poll_at() is None
    p.run_timers(5000.0)
    assert conn.state is State.ESTABLISHED


def payloads(out: list) -> list[tuple[int, bytes]]:
    return [(s.seq, s.payload) for s in out if s.payload]


def test_simultaneous_close_after_timeouts_does_not_ack_storm() -> None:
    """Both ends send 600 bytes (two segments of 536) and a FIN. Everything arrives, but
    the pure ACKs of the first 0.5 s are lost, so both retransmission timers fire: each end
    resends its first segment and rewinds SND.NXT below the FIN it already sent. An ACK
    with SEG.SEQ = SND.NXT is then below the peer's RCV.NXT (the peer has the FIN): not
    acceptable, so the peer answers with an ACK of its own (RFC 9293 3.10.7.4, first
    check). Regression: both ends did that, for ever, at the speed of the path, and neither
    ever processed the acknowledgement inside, so neither left CLOSING (BSD sends pure ACKs
    with SND.MAX; Linux never rewinds SND.NXT). Found by the stateful test."""
    cfg = TcpConfig(timestamps=False, sack=False, window_scaling=False)
    clock = [0.0]

    def drop(side: int, s: object) -> bool:
        return clock[0] < 0.5 and not s.payload and not s.flags & FIN  # type: ignore[attr-defined]

    wire = pair(cfg, cfg, mss_a=536, mss_b=536, drop=drop, delay=0.01)
    a, b = wire.ends
    a.send(b"a" * 600, wire.now)
    b.send(b"b" * 600, wire.now)
    a.shutdown(wire.now)
    b.shutdown(wire.now)

    def done() -> bool:
        clock[0] = wire.now
        return all(c.state in (State.TIME_WAIT, State.CLOSED) for c in (a, b))

    wire.run_until(done, until=10.0, limit=2000)
    assert a.state in (State.TIME_WAIT, State.CLOSED), a.state
    assert b.state in (State.TIME_WAIT, State.CLOSED), b.state
    assert len(wire.log) < 100
    assert bytes(wire.received[0]) == b"b" * 600 and bytes(wire.received[1]) == b"a" * 600


def test_abort_after_a_timeout_still_resets_the_peer() -> None:
    """A sent 4000 bytes; B got them all but its ACKs were lost, so A's retransmission timer
    rewound SND.NXT to the end of the first segment. Then A's application aborts. The RST
    must land in B's window (RFC 9293 3.10.7.4 / RFC 5961 3.2: it is acted on only at
    RCV.NXT, challenged elsewhere in the window, and silently dropped below it). A's RST
    carries SEG.SEQ = SND.NXT, far below B's RCV.NXT: B drops it without a word and stays
    ESTABLISHED, never told. (BSD puts SND.MAX in a RST; Linux never rewinds SND.NXT.) The
    same SEQ is used for the RSTs of a retransmission or keep-alive timeout and of data
    arriving after close()."""
    cfg = TcpConfig(timestamps=False, sack=False, window_scaling=False)
    clock = [0.0]

    def drop(side: int, s: object) -> bool:
        return side == 1 and not s.payload and clock[0] < 5.0  # type: ignore[attr-defined]

    wire = pair(cfg, cfg, drop=drop, delay=0.01)
    a, b = wire.ends
    a.send(b"x" * 4000, wire.now)

    def timed_out() -> bool:
        clock[0] = wire.now
        return a.retransmits >= 1

    wire.run_until(timed_out, until=3.0)
    assert a.retransmits == 1 and len(wire.received[1]) == 4000
    a.abort(wire.now)
    wire.run(wire.now + 1.0)
    assert b.state is State.CLOSED
    assert isinstance(wire.events[1][-1], ConnectionReset)
