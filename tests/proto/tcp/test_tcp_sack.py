"""Selective acknowledgements: the receiver's SACK blocks (RFC 2018 3, 4) and the sender's
RFC 6675 loss recovery from its scoreboard, with scripted peers and with two machines on a
simulated wire that loses chosen segments once. Simulated time only.
"""

from __future__ import annotations

import pytest
from tcp_harness import (
    ACK,
    ISS,
    PEER_ISS,
    DataReceived,
    Peer,
    TcpConfig,
    TcpConnection,
    Wire,
    add,
    data_of,
    drain,
    events,
    open_active,
    open_passive,
    pair,
)

from netstack.proto.tcp.wire import TcpOptions

START = PEER_ISS + 1


def sack_receiver(timestamps: bool) -> Peer:
    syn = TcpOptions(mss=1460, sack_permitted=True, ts_val=100 if timestamps else None)
    p = open_passive(TcpConfig(window_scaling=False), syn_opts=syn)
    assert p.conn.sack_ok and p.conn.ts_ok is timestamps
    return p


def blocks(out: list, start: int = START) -> list[tuple[int, int]]:
    (ack,) = out
    return [(a - start, b - start) for a, b in ack.options.sack]


# -- the receiver --------------------------------------------------------------------------------


def test_out_of_order_segment_acknowledged_at_once_with_a_block() -> None:
    p = sack_receiver(timestamps=True)
    out = p.send(ACK, b"x" * 100, seq=add(START, 1000), at=1.0, advance=False)
    assert out[0].ack == START
    assert blocks(out) == [(1000, 1100)]


def test_blocks_newest_first_at_most_three_with_timestamps() -> None:
    """RFC 2018 4: the first block holds the segment that triggered the ACK; then the most
    recently reported ones. With timestamps only 3 blocks fit in 40 bytes of options."""
    p = sack_receiver(timestamps=True)
    for i, off in enumerate((1000, 3000, 5000, 7000)):
        out = p.send(ACK, b"x" * 100, seq=add(START, off), at=1.0 + i / 100, advance=False)
    assert blocks(out) == [(7000, 7100), (5000, 5100), (3000, 3100)]
    assert len(out[0].raw_options) <= 40
    # A segment next to an older block: that block grows and moves to the front.
    out = p.send(ACK, b"y" * 100, seq=add(START, 3100), at=1.1, advance=False)
    assert blocks(out) == [(3000, 3200), (7000, 7100), (5000, 5100)]


def test_four_blocks_without_timestamps() -> None:
    p = sack_receiver(timestamps=False)
    for i, off in enumerate((1000, 3000, 5000, 7000, 9000)):
        out = p.send(ACK, b"x" * 100, seq=add(START, off), at=1.0 + i / 100, advance=False)
    assert blocks(out) == [(9000, 9100), (7000, 7100), (5000, 5100), (3000, 3100)]


def test_filled_holes_leave_the_report_and_data_is_delivered_in_order() -> None:
    p = sack_receiver(timestamps=True)
    conn = p.conn
    p.send(ACK, b"B" * 100, seq=add(START, 100), at=1.0, advance=False)
    p.send(ACK, b"D" * 100, seq=add(START, 300), at=1.01, advance=False)
    out = p.send(ACK, b"A" * 100, seq=START, at=1.02, advance=False)
    (ack,) = out
    assert ack.ack == add(START, 200)  # RFC 5681 4.2: at once when a hole is filled
    assert blocks(out) == [(300, 400)]
    out = p.send(ACK, b"C" * 100, seq=add(START, 200), at=1.03, advance=False)
    assert out[0].ack == add(START, 400)
    assert out[0].options.sack == ()
    assert data_of(events(conn)) == b"A" * 100 + b"B" * 100 + b"C" * 100 + b"D" * 100


def test_overlapping_out_of_order_segments_delivered_once() -> None:
    p = sack_receiver(timestamps=False)
    conn = p.conn
    stream = bytes(range(256)) * 4
    p.send(ACK, stream[500:700], seq=add(START, 500), at=1.0, advance=False)
    p.send(ACK, stream[600:900], seq=add(START, 600), at=1.01, advance=False)
    p.send(ACK, stream[100:550], seq=add(START, 100), at=1.02, advance=False)
    out = p.send(ACK, stream[0:300], seq=START, at=1.03, advance=False)
    assert out[-1].ack == add(START, 900)
    assert data_of(events(conn)) == stream[:900]


# -- the sender's scoreboard --------------------------------------------------------------------


def sack_sender(segments: int = 10) -> Peer:
    p = open_active(TcpConfig(timestamps=False, window_scaling=False), peer_sack=True)
    assert p.conn.sack_ok
    p.conn.send(bytes(segments * 1460), 1.0)
    assert len(drain(p.conn)) == min(segments, 10)
    return p


BASE = ISS + 1
M = 1460


def seg(i: int) -> int:
    return BASE + i * M


def test_sack_above_the_first_segment_marks_it_lost_without_three_duplicates() -> None:
    """RFC 6675 4 IsLost: more than (DupThresh - 1) * SMSS bytes SACKed above it."""
    p = sack_sender()
    out = p.send(ACK, ack=BASE, opts=TcpOptions(sack=((seg(1), seg(4)),)), at=1.1)
    assert [(s.seq, len(s.payload)) for s in out if s.payload] == [(BASE, M)]
    assert p.conn.retransmits == 1


def test_dsack_and_garbage_blocks_are_ignored() -> None:
    """RFC 2883 D-SACK blocks (below SND.UNA) and blocks beyond SND.MAX say nothing about
    what is lost: no retransmission comes from them."""
    p = sack_sender()
    p.send(ACK, ack=seg(1), at=1.1)  # segment 0 acknowledged
    garbage = (
        (BASE, seg(1)),  # a D-SACK: already acknowledged
        (seg(2), seg(40)),  # beyond anything sent
        (seg(5), seg(3)),  # inverted
    )
    out = p.send(ACK, ack=seg(1), opts=TcpOptions(sack=garbage), at=1.2)
    assert [s for s in out if s.payload and s.seq < p.conn.snd_max - M * 2] == []
    assert p.conn.retransmits == 0
    # Still a first duplicate ACK only: two more without useful blocks do not trigger either.
    p.send(ACK, ack=seg(1), opts=TcpOptions(sack=garbage[:1]), at=1.3)
    assert p.conn.retransmits == 0


def _lossy_transfer(
    segments: int, holes: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> tuple[Wire, bytes, list[float]]:
    """A sends ``segments`` full segments to B; the first transmission of each segment in
    ``holes`` is lost. Returns the wire, the data and the times of A's timeouts."""
    rtos: list[float] = []
    original = TcpConnection._on_rto

    def counting(self: TcpConnection, now: float) -> None:
        if self.local[1] == 40000:
            rtos.append(now)
        original(self, now)

    monkeypatch.setattr(TcpConnection, "_on_rto", counting)
    seen: set[int] = set()
    lost: set[int] = set()

    def drop(side: int, s: object) -> bool:
        if side != 0 or not s.payload:  # type: ignore[attr-defined]
            return False
        seq = s.seq  # type: ignore[attr-defined]
        first = seq not in seen
        seen.add(seq)
        return first and seq in lost

    wire = pair(drop=drop, delay=0.05)
    a = wire.ends[0]
    base, mss = a.snd_nxt, a.mss
    lost.update(add(base, h * mss) for h in holes)
    data = bytes((i * 7) % 251 for i in range(segments * mss))
    a.send(data, wire.now)
    wire.run(wire.now + 30.0)
    return wire, data, rtos


def _retransmitted(wire: Wire) -> dict[int, int]:
    a = wire.ends[0]
    counts: dict[int, int] = {}
    for _, side, s in wire.log:
        if side == 0 and s.payload:
            counts[s.seq] = counts.get(s.seq, 0) + 1
    base = a.iss + 1
    return {(q - base) // a.mss: n - 1 for q, n in counts.items() if n > 1}


def test_three_holes_in_one_window_recovered_from_the_scoreboard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wire, data, rtos = _lossy_transfer(40, (1, 4, 7), monkeypatch)
    assert bytes(wire.received[1]) == data
    assert _retransmitted(wire) == {1: 1, 4: 1, 7: 1}  # every hole, each once
    assert rtos == []  # all in one fast recovery, no timeout
    assert wire.ends[0].retransmits == 3
    # The receiver really reported the holes.
    assert any(len(s.options.sack) >= 2 for _, side, s in wire.log if side == 1)


def test_three_holes_at_the_tail_recovered_without_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole transfer is one window of 10 segments; 1, 4 and 7 are lost. With nothing
    new to send, RFC 6675 NextSeg rule (3) (SHOULD) retransmits an unSACKed segment below
    the highest SACK even if IsLost() is not yet true for it (rule (4) offers a rescue
    retransmission too). Regression: with only rule (1), segment 7 (two SACKed segments
    above it) waited for the retransmission timer and cwnd fell to one segment."""
    wire, data, rtos = _lossy_transfer(10, (1, 4, 7), monkeypatch)
    assert bytes(wire.received[1]) == data
    assert _retransmitted(wire) == {1: 1, 4: 1, 7: 1}
    assert rtos == []


@pytest.mark.parametrize("holes", [(0,), (3, 4, 5), (0, 9), (2, 6, 10, 14)])
def test_loss_patterns_deliver_exactly(
    holes: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    wire, data, _ = _lossy_transfer(24, holes, monkeypatch)
    assert bytes(wire.received[1]) == data
    assert set(_retransmitted(wire)) >= set(holes)
    assert all(isinstance(e, DataReceived) for e in wire.events[1][1:])
