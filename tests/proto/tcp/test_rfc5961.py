"""RFC 5961: blind reset, SYN and data-injection attacks, from a scripted off-path attacker
who knows the 4-tuple but not the exact sequence numbers. Machine tests, no event loop.

3.2: a RST is acted on only when SEG.SEQ = RCV.NXT; in the window otherwise -> challenge ACK;
outside the window -> dropped. 4.2: a SYN in a synchronized state -> challenge ACK, whatever
its sequence number. 5.2: an ACK outside [SND.UNA - MAX.SND.WND, SND.NXT] -> challenge ACK
and drop. 7: challenge ACKs are rate-limited, per connection (at most one per
``challenge_ack_interval``, Linux's tcp_invalid_ratelimit) and for the whole stack (the
injected limiter): a stack-wide budget alone is the side channel of CVE-2016-5696.
"""

from __future__ import annotations

import pytest
from tcp_harness import (
    ACK,
    FIN,
    ISS,
    PEER_ISS,
    RST,
    SYN,
    ConnectionReset,
    DataReceived,
    Peer,
    Sent,
    State,
    TcpConfig,
    add,
    drain,
    events,
    open_active,
)

from netstack.proto.icmp.ratelimit import TokenBucket
from netstack.proto.tcp.wire import TcpOptions

PLAIN = TcpConfig(timestamps=False, sack=False, window_scaling=False)
#: Without the per-connection limit, to test the stack-wide limiter alone.
NO_CONN_LIMIT = TcpConfig(
    timestamps=False, sack=False, window_scaling=False, challenge_ack_interval=0.0
)


def established(
    limiter: object = None, *, data: int = 0, config: TcpConfig = PLAIN, **kw: object
) -> Peer:
    if limiter is not None:
        kw["challenge_limiter"] = limiter
    p = open_active(config, window=20000, **kw)
    if data:
        p.conn.send(b"d" * data, 0.0)
        drain(p.conn)
    return p


def assert_challenge_ack(out: list[Sent], p: Peer) -> None:
    """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> (RFC 5961 3.2)."""
    conn = p.conn
    assert [(s.kind, s.seq, s.ack, s.payload) for s in out] == [
        (".", conn.snd_nxt, conn.rcv_nxt, b"")
    ]


# -- 3: blind reset ----------------------------------------------------------------------------


def test_reset_with_exact_sequence_number_resets() -> None:
    p = established()
    p.send(RST, seq=p.seq, at=1.0)
    assert p.conn.state is State.CLOSED
    (ev,) = events(p.conn)
    assert isinstance(ev, ConnectionReset)


@pytest.mark.parametrize("offset", [1, 100, 30000, 65534])
def test_in_window_reset_draws_challenge_ack(offset: int) -> None:
    p = established()
    assert p.conn.config.recv_buffer > 65535
    before = p.conn.challenge_acks
    out = p.send(RST, seq=add(p.seq, offset), at=1.0)
    assert p.conn.state is State.ESTABLISHED
    assert events(p.conn) == []
    assert_challenge_ack(out, p)
    assert p.conn.challenge_acks == before + 1


@pytest.mark.parametrize("offset", [-1, -1000, 65535, 70000, 1 << 30])
def test_out_of_window_reset_is_dropped_silently(offset: int) -> None:
    """Without window scaling the window offered is at most 65535 bytes, so RCV.NXT + 65535
    and beyond are outside it, however large the receive buffer: the window an off-path
    attacker has to hit is the one advertised."""
    p = established()
    # The window the peer was told (in the ACK that completed the handshake):
    conn = p.conn
    conn.send(b"w", 0.5)
    (seg,) = drain(conn)
    assert seg.window == 65535
    out = p.send(RST, seq=add(p.seq, offset), at=1.0)
    assert out == []
    assert p.conn.state is State.ESTABLISHED
    assert events(p.conn) == []


def test_reset_with_ack_flag_and_bad_ack_follows_the_same_rules() -> None:
    p = established()
    out = p.send(RST | ACK, seq=add(p.seq, 5), ack=12345, at=1.0)
    assert_challenge_ack(out, p)
    assert p.conn.state is State.ESTABLISHED


def test_challenge_ack_lets_a_legitimate_peer_reset() -> None:
    """The peer lost its state and resets at a sequence number off RCV.NXT: the challenge
    ACK tells it the exact one, and its next reset takes (RFC 5961 3.2, last paragraph)."""
    p = established()
    out = p.send(RST, seq=add(p.seq, 700), at=1.0)
    assert p.conn.state is State.ESTABLISHED
    (challenge,) = out
    p.send(RST, seq=challenge.ack, at=1.1)
    assert p.conn.state is State.CLOSED


def test_sweeping_attacker_never_resets() -> None:
    """An attacker steps through the whole sequence space one window at a time: without
    hitting RCV.NXT exactly it gets challenge ACKs (in window) or silence, never a reset."""
    p = established()
    step = 65535
    acks = 0
    for k in range(1, (1 << 32) // step, 97):
        seq = add(p.seq, k * step + 1)
        out = p.send(RST, seq=seq, at=1.0 + k * 1e-6)
        acks += len(out)
        assert p.conn.state is State.ESTABLISHED
    assert events(p.conn) == []
    assert acks <= 2  # at most the guesses that fell in the one window


@pytest.mark.parametrize("state", [State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT])
def test_in_window_reset_challenged_in_other_synchronized_states(state: State) -> None:
    p = established()
    conn = p.conn
    if state is State.CLOSE_WAIT:
        p.send(FIN | ACK, at=0.5)
    else:
        conn.shutdown(0.5)
        drain(conn)
        if state is State.FIN_WAIT_2:
            p.send(ACK, ack=ISS + 2, at=0.6)
    drain(conn)
    events(conn)
    assert conn.state is state
    out = p.send(RST, seq=add(p.seq, 10), at=1.0)
    assert_challenge_ack(out, p)
    assert conn.state is state


def test_reset_with_an_old_timestamp_is_still_accepted() -> None:
    """RFC 7323 5.2 recommends that a RST be acceptable whatever its timestamp (PAWS is not
    applied to it)."""
    cfg = TcpConfig(sack=False, window_scaling=False)
    p = open_active(cfg, peer_ts=True)
    p.ts_val = 1000
    p.send(ACK, b"x", at=0.5)
    p.send(RST, seq=p.seq, opts=TcpOptions(ts_val=10, ts_ecr=0), at=1.0)
    assert p.conn.state is State.CLOSED


# -- 4: blind SYN ------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 10, -10, 100_000, 1 << 31])
def test_syn_in_established_draws_challenge_ack(offset: int) -> None:
    p = established()
    out = p.send(SYN, seq=add(p.seq, offset), ack=0, opts=TcpOptions(mss=1460), at=1.0)
    assert p.conn.state is State.ESTABLISHED
    assert events(p.conn) == []
    assert_challenge_ack(out, p)
    assert all(not s.flags & RST for s in out)


def test_syn_ack_in_established_draws_challenge_ack() -> None:
    p = established()
    out = p.send(SYN | ACK, seq=add(p.seq, 3), at=1.0)
    assert p.conn.state is State.ESTABLISHED
    assert_challenge_ack(out, p)


@pytest.mark.parametrize("extra", [FIN, RST, RST | ACK, FIN | ACK])
@pytest.mark.parametrize("offset", [0, 10, 100_000])
def test_syn_with_fin_or_rst_draws_challenge_ack(extra: int, offset: int) -> None:
    """RFC 5961 4.2: *any* SYN in a synchronized state draws a challenge ACK, whatever else
    is set. SYN+RST at RCV.NXT is not a reset (Linux treats it as a SYN too): a peer that
    means the reset answers the challenge ACK with a plain one."""
    p = established()
    out = p.send(SYN | extra, seq=add(p.seq, offset), ack=ISS + 1, at=1.0, advance=False)
    assert p.conn.state is State.ESTABLISHED
    assert events(p.conn) == []
    assert_challenge_ack(out, p)
    assert p.conn.challenge_acks == 1


@pytest.mark.parametrize("opts", [TcpOptions(mss=1460), TcpOptions(ts_val=1, ts_ecr=0)])
def test_syn_draws_challenge_ack_before_the_timestamp_checks(opts: TcpOptions) -> None:
    """With timestamps negotiated, a SYN without them (a peer that restarted with another
    configuration) or with an old one (PAWS) still draws the challenge ACK RFC 5961 4.2
    requires, as in Linux; RFC 7323's silent drop of segments without timestamps does not
    override that MUST."""
    cfg = TcpConfig(sack=False, window_scaling=False)
    p = open_active(cfg, peer_ts=True)
    p.ts_val = 1000
    p.send(ACK, b"x", at=0.5)
    out = p.send(SYN, seq=add(p.seq, 5), ack=0, opts=opts, at=1.0, advance=False)
    assert p.conn.state is State.ESTABLISHED
    assert [(s.kind, s.seq, s.ack) for s in out] == [(".", p.conn.snd_nxt, p.conn.rcv_nxt)]
    assert p.conn.challenge_acks == 1


def test_data_beyond_the_advertised_window_is_not_accepted() -> None:
    """RFC 9293 3.10.7.4 first check: a segment that starts beyond RCV.NXT + RCV.WND is not
    acceptable. Here RCV.WND is 65535 (no window scaling): data at RCV.NXT + 70000 must be
    refused (a duplicate ACK, nothing kept), or an injected segment that far out would be
    delivered once the stream reaches it."""
    p = established()
    conn = p.conn
    start = p.seq
    out = p.send(ACK, b"X" * 100, seq=add(start, 70000), at=1.0, advance=False)
    assert [(s.kind, s.ack) for s in out] == [(".", start)]
    # Now the legitimate stream fills everything up to there (the window slides as the
    # application reads); the far segment must not show up in it.
    stream = bytearray()
    seq = start
    t = 1.1
    while seq != add(start, 70100):
        n = min(1460, 70100 - (seq - start))
        chunk = bytes([65 + (seq - start) // 1460 % 26]) * n
        p.send(ACK, chunk, seq=seq, at=t, advance=False)
        stream += chunk
        seq = add(seq, n)
        t += 0.001
    got = b"".join(e.data for e in events(conn) if isinstance(e, DataReceived))
    assert got == bytes(stream)


def test_syn_with_data_in_established_delivers_nothing() -> None:
    p = established()
    p.send(SYN, b"injected", seq=p.seq, ack=0, at=1.0, advance=False)
    assert p.conn.state is State.ESTABLISHED
    assert events(p.conn) == []
    assert p.conn.rcv_nxt == p.seq


# -- 5: blind data injection ---------------------------------------------------------------------


def test_ack_beyond_what_was_sent_is_challenged_and_its_data_dropped() -> None:
    p = established(data=1000)
    conn = p.conn
    snd_max = ISS + 1 + 1000
    out = p.send(ACK, b"injected", ack=snd_max + 1, at=1.0, advance=False)
    assert_challenge_ack(out, p)
    assert events(conn) == []
    assert conn.rcv_nxt == PEER_ISS + 1
    assert conn.snd_una == ISS + 1
    # Far beyond too (after the per-connection challenge ACK interval).
    out = p.send(ACK, b"injected", ack=add(snd_max, 1 << 30), at=1.6, advance=False)
    assert_challenge_ack(out, p)
    assert events(conn) == []


def test_too_old_ack_is_challenged_and_its_data_dropped() -> None:
    p = established()
    conn = p.conn
    conn.send(b"a" * 1000, 0.1)
    drain(conn)
    p.send(ACK, ack=ISS + 1001, at=0.2)
    assert conn.snd_una == ISS + 1001
    max_snd_wnd = conn.max_snd_wnd
    assert max_snd_wnd == 20000
    too_old = add(conn.snd_una, -max_snd_wnd - 1)
    out = p.send(ACK, b"injected", ack=too_old, at=1.0, advance=False)
    assert_challenge_ack(out, p)
    assert events(conn) == []
    assert conn.rcv_nxt == PEER_ISS + 1


def test_old_but_acceptable_ack_with_data_is_accepted() -> None:
    """RFC 5961 5.2: SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT is acceptable."""
    p = established()
    conn = p.conn
    conn.send(b"a" * 1000, 0.1)
    drain(conn)
    p.send(ACK, ack=ISS + 1001, at=0.2)
    p.send(ACK, b"fine", ack=ISS + 500, at=1.0)
    assert events(conn) == [DataReceived(b"fine")]
    assert conn.snd_una == ISS + 1001


# -- 7: rate limit -----------------------------------------------------------------------------


def test_challenge_acks_are_rate_limited_by_the_limiter() -> None:
    calls: list[float] = []
    budget = [2]

    def limiter(now: float) -> bool:
        calls.append(now)
        if budget[0] > 0:
            budget[0] -= 1
            return True
        return False

    p = established(limiter, config=NO_CONN_LIMIT)
    sent = []
    for i in range(5):
        sent += p.send(RST, seq=add(p.seq, 100 + i), at=1.0 + i / 10)
    assert len(sent) == 2
    assert calls == pytest.approx([1.0, 1.1, 1.2, 1.3, 1.4])
    assert p.conn.challenge_acks == 2
    assert p.conn.drops.get("challenge_ack_limited") == 3
    # The limiter governs SYN and ACK challenges too.
    assert p.send(SYN, seq=p.seq, ack=0, at=2.0) == []
    assert p.send(ACK, ack=ISS + 999, at=2.1) == []
    assert len(calls) == 7
    assert p.conn.state is State.ESTABLISHED


def test_the_exact_reset_is_not_subject_to_the_limiter() -> None:
    p = established(lambda now: False)
    p.send(RST, seq=p.seq, at=1.0)
    assert p.conn.state is State.CLOSED


def test_challenge_acks_are_also_limited_per_connection() -> None:
    """At most one challenge ACK per connection every 0.5 s (Linux: tcp_invalid_ratelimit),
    checked before the stack-wide limiter, so a flood into one connection spends none of the
    stack's budget beyond that."""
    calls: list[float] = []

    def limiter(now: float) -> bool:
        calls.append(now)
        return True

    p = established(limiter)
    assert p.conn.config.challenge_ack_interval == 0.5
    assert_challenge_ack(p.send(RST, seq=add(p.seq, 100), at=1.0), p)
    assert p.send(RST, seq=add(p.seq, 200), at=1.1) == []
    assert p.send(SYN, seq=p.seq, ack=0, at=1.2) == []
    assert p.send(ACK, ack=ISS + 999, at=1.49) == []
    assert calls == [1.0]
    assert p.conn.drops.get("challenge_ack_conn_limited") == 3
    assert_challenge_ack(p.send(SYN | FIN, seq=p.seq, at=1.5), p)
    assert calls == [1.0, 1.5]
    assert p.conn.challenge_acks == 2
    # Another connection has its own allowance.
    q = established(limiter)
    assert_challenge_ack(q.send(RST, seq=add(q.seq, 100), at=1.6), q)
    assert p.conn.state is State.ESTABLISHED and q.conn.state is State.ESTABLISHED


def test_a_flood_into_one_connection_leaves_the_shared_budget_alone() -> None:
    """CVE-2016-5696: an off-path attacker with a connection of its own counted the shared
    challenge ACKs it could still draw, to learn whether spoofed segments had hit another
    connection's window. With the per-connection limit, 10 000 in-window resets into the
    victim's connection within a second take one token from the shared bucket, and the
    attacker's own connection draws exactly as many challenge ACKs with or without them."""

    def attacker_view(flood: bool) -> int:
        bucket = TokenBucket(1000.0, 100)
        victim = established(bucket.allow)
        attacker = established(bucket.allow)
        if flood:
            for i in range(10_000):
                victim.send(RST, seq=add(victim.seq, 1 + i % 60_000), at=1.0 + i / 20_000)
            assert victim.conn.state is State.ESTABLISHED
            assert victim.conn.challenge_acks == 1
        return sum(len(attacker.send(RST, seq=add(attacker.seq, 7), at=1.5)) for _ in range(100))

    assert attacker_view(flood=True) == attacker_view(flood=False)
