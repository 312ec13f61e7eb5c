"""State a connection makes only when it first needs it, and the shortcuts taken while it
has none: the out-of-order queue (made by the first segment beyond a hole; until then every
connection shares one empty queue) and RACK's per-ACK work when nothing is in flight. The
first use must behave as if the state had been there from the start. Simulated time only.
"""

from __future__ import annotations

from tcp_harness import (
    ACK,
    FIN,
    PEER_ISS,
    Sent,
    State,
    TcpConfig,
    Wire,
    add,
    data_of,
    open_passive,
    pair,
)

from netstack.proto.tcp.wire import TcpOptions

START = PEER_ISS + 1
SACK_SYN = TcpOptions(mss=1460, sack_permitted=True, ts_val=100)


def _blocks(out: list[Sent]) -> list[tuple[int, int]]:
    (ack,) = out
    return [(a - START, b - START) for a, b in ack.options.sack]


def test_first_hole_after_in_order_traffic_is_reported_and_filled() -> None:
    """A connection that received in order first, then a segment beyond a hole: the
    queue it makes then reports the block (RFC 2018 4) and hands the data over in order
    when the hole fills; other connections never see its blocks."""
    p = open_passive(TcpConfig(window_scaling=False), syn_opts=SACK_SYN)
    other = open_passive(TcpConfig(window_scaling=False), syn_opts=SACK_SYN)
    conn = p.conn
    p.send(ACK, b"a" * 100, at=1.0)
    assert data_of(p.events()) == b"a" * 100
    assert not conn.reassembling
    out = p.send(ACK, b"c" * 100, seq=add(START, 200), at=1.1, advance=False)
    assert _blocks(out) == [(200, 300)]
    assert conn.reassembling
    # The other connection shares nothing of it: no blocks in its ACKs, nothing held.
    assert not other.conn.reassembling
    out = other.send(ACK, b"z" * 10, at=1.2)
    other.tick(1.5)
    assert all(not s.options.sack for s in other.sent)
    out = p.send(ACK, b"b" * 100, at=1.3)  # fills the hole
    assert data_of(p.events()) == b"b" * 100 + b"c" * 100
    assert not conn.reassembling
    assert [s.options.sack for s in out] == [()]
    assert conn.rcv_nxt == add(START, 300)


def test_fin_beyond_a_hole_on_a_connection_that_never_had_one() -> None:
    """The first thing held beyond a hole may be a FIN with data before it (RFC 9293
    3.10.7.4, eighth check): it waits in the connection's own queue, and the shared empty
    one stays empty for the connections made after."""
    p = open_passive(TcpConfig(window_scaling=False), syn_opts=SACK_SYN)
    conn = p.conn
    p.send(ACK | FIN, b"y" * 50, seq=add(START, 100), at=1.0, advance=False)
    assert conn.state is State.ESTABLISHED
    p.send(ACK, b"x" * 100, at=1.1)
    assert data_of(p.events()) == b"x" * 100 + b"y" * 50
    assert conn.state is State.CLOSE_WAIT
    fresh = open_passive(TcpConfig(window_scaling=False), syn_opts=SACK_SYN)
    fresh.send(ACK, b"q" * 10, at=1.2)
    assert not fresh.conn.reassembling
    assert fresh.conn.state is State.ESTABLISHED
    fresh.tick(2.0)
    assert all(not s.options.sack and not s.has(FIN) for s in fresh.sent)


def test_sack_recovery_after_everything_was_acknowledged() -> None:
    """RACK's per-ACK steps are skipped while nothing is in flight and the ACKs carry no
    blocks (a request/response exchange); a later loss is still found from the SACKs that
    follow it and repaired by fast recovery (RFC 6675 / RFC 8985), not by a timeout."""
    lost: list[int] = []
    target: list[int] = []  # the sequence number to lose, once the burst is known

    def drop(side: int, seg: Sent) -> bool:
        if side == 0 and target and seg.seq == target[0] and seg.payload and not lost:
            lost.append(seg.seq)
            return True
        return False

    wire = pair(drop=drop)
    a, b = wire.ends
    assert a.sack_ok and b.sack_ok
    # Exchanges with everything acknowledged: the shortcut's case.
    for i in range(1, 4):
        a.send(b"r" * 100, wire.now)
        wire.run_until(lambda n=100 * i: len(wire.received[1]) == n, until=wire.now + 5)
        b.send(b"s" * 100, wire.now)
        wire.run_until(lambda n=100 * i: len(wire.received[0]) == n, until=wire.now + 5)
        wire.run(until=wire.now + 1.0)
    assert bytes(wire.received[0]) == b"s" * 300
    assert a.snd_una == a.snd_max and a.timeouts == 0
    target.append(add(a.snd_max, 2 * a.mss))  # the burst's third segment
    data = bytes(range(256)) * 60
    a.send(data, wire.now)
    wire.run_until(lambda: len(wire.received[1]) == 300 + len(data), until=wire.now + 30)
    assert bytes(wire.received[1][300:]) == data
    assert lost, "the segment was not dropped"
    assert a.fast_recoveries == 1
    assert a.timeouts == 0
    assert a.retransmits >= 1


def test_wire_exchange_with_lazy_state_matches_eager_expectations() -> None:
    """Two machines exchange and close over a lossy, reordering wire: holes make queues
    on the fly, and both sides still get every byte in order and close cleanly."""
    wire: Wire = pair(loss=0.05, jitter=0.004, seed=7)
    a, b = wire.ends
    payload = bytes(range(256)) * 200
    a.send(payload, wire.now)
    b.send(payload[::-1], wire.now)
    a.shutdown(wire.now)
    b.shutdown(wire.now)
    wire.run(until=wire.now + 300.0)
    assert bytes(wire.received[1]) == payload
    assert bytes(wire.received[0]) == payload[::-1]
    assert a.state in (State.TIME_WAIT, State.CLOSED)
    assert b.state in (State.TIME_WAIT, State.CLOSED)


def test_window_shift_is_the_smallest_that_fits_the_buffer() -> None:
    """RFC 7323 2.3: the shift is the smallest that brings the buffer within the 16-bit
    window field, and at most 14 (computed from the buffer's bit length, not by trying)."""
    from netstack.proto.tcp.connection import TcpConnection

    sizes = [0, 1, 0xFFFF, 0x10000, 0x1FFFF, 0x20000, 1 << 20, (1 << 30) - 1, 1 << 30, 1 << 31]
    sizes += [(1 << k) + d for k in range(17, 48) for d in (-1, 0, 1)]
    for size in sizes:
        shift = TcpConnection.window_shift(size)
        assert 0 <= shift <= 14
        if shift < 14:
            assert size >> shift <= 0xFFFF
        if shift > 0:
            assert size >> (shift - 1) > 0xFFFF
