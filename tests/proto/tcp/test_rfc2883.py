"""D-SACK as receiver (RFC 2883): a segment that arrives again is reported in the first
SACK block of the ACK it draws, once, followed by the block that holds it."""

from __future__ import annotations

from tcp_harness import ACK, PEER_ISS, Peer, TcpConfig, add, open_passive

from netstack.proto.tcp.wire import TcpOptions

START = PEER_ISS + 1


def receiver(timestamps: bool = True) -> Peer:
    syn = TcpOptions(mss=1460, sack_permitted=True, ts_val=100 if timestamps else None)
    p = open_passive(TcpConfig(window_scaling=False), syn_opts=syn)
    assert p.conn.sack_ok
    return p


def rel(blocks: tuple[tuple[int, int], ...]) -> list[tuple[int, int]]:
    return [(a - START, b - START) for a, b in blocks]


def test_duplicate_below_rcv_nxt_is_reported_once() -> None:
    """RFC 2883 4.1.1: a duplicate of data already acknowledged: the D-SACK block is the
    duplicate, below the cumulative ACK."""
    p = receiver()
    p.send(ACK, b"a" * 100, seq=START, at=1.0, advance=False)
    out = p.send(ACK, b"a" * 100, seq=START, at=1.1, advance=False)
    (ack,) = out
    assert ack.ack == add(START, 100)
    assert rel(ack.options.sack) == [(0, 100)]
    assert p.conn.dsacks_sent == 1
    # Reported once: the next ACK carries no D-SACK.
    out = p.send(ACK, b"b" * 100, seq=add(START, 300), at=1.2, advance=False)
    assert rel(out[0].options.sack) == [(300, 400)]


def test_duplicate_out_of_order_segment_then_its_block() -> None:
    """RFC 2883 4.1.2 / 4: a duplicate of out-of-order data: the D-SACK block first, the
    SACK block that contains it second."""
    p = receiver(timestamps=False)
    p.send(ACK, b"x" * 100, seq=add(START, 500), at=1.0, advance=False)
    p.send(ACK, b"y" * 100, seq=add(START, 600), at=1.01, advance=False)
    p.send(ACK, b"z" * 100, seq=add(START, 900), at=1.02, advance=False)
    (ack,) = p.send(ACK, b"x" * 100, seq=add(START, 500), at=1.03, advance=False)
    assert ack.ack == START
    blocks = rel(ack.options.sack)
    assert blocks[:2] == [(500, 600), (500, 700)]
    assert (900, 1000) in blocks


def test_partly_duplicate_segment_reports_the_old_part() -> None:
    """RFC 2883 4.1.3-like: a segment that straddles RCV.NXT: the part below is the
    duplicate; the rest is new data."""
    p = receiver()
    p.send(ACK, b"a" * 100, seq=START, at=1.0, advance=False)
    (ack,) = p.send(ACK, b"a" * 150, seq=add(START, 50), at=1.1, advance=False)
    assert ack.ack == add(START, 200)
    assert rel(ack.options.sack) == [(50, 100)]


def test_no_dsack_without_sack_permitted() -> None:
    p = open_passive(TcpConfig(window_scaling=False), syn_opts=TcpOptions(mss=1460))
    p.send(ACK, b"a" * 100, seq=START, at=1.0, advance=False)
    (ack,) = p.send(ACK, b"a" * 100, seq=START, at=1.1, advance=False)
    assert ack.options.sack == ()
