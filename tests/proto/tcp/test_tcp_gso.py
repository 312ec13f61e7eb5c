"""Bulk bursts as super-segments (``TcpConnection.gso_max``, for a link that segments itself,
TSO): the connection hands out one segment of several MSS where it would have sent a run of
full-sized ones, and keeps account per MSS. Cut back at MSS boundaries (as the link does,
PSH on the last piece only), what it sends is what the same connection without gso_max
sends, through slow start, SACK recovery and retransmission timeouts alike."""

from __future__ import annotations

import random

import pytest
from tcp_harness import ACK, PSH, Peer, Sent, add, diff, open_active

MSS = 1000


def cut(out: list[Sent], mss: int) -> list[tuple[int, int, int, bytes]]:
    pieces = []
    for s in out:
        if len(s.payload) <= mss:
            pieces.append((s.seq, s.ack, s.flags, s.payload))
            continue
        for at in range(0, len(s.payload), mss):
            last = at + mss >= len(s.payload)
            flags = s.flags if last else s.flags & ~PSH
            pieces.append((add(s.seq, at), s.ack, flags, s.payload[at : at + mss]))
    return pieces


def _open(gso_max: int) -> Peer:
    peer = open_active(mss=MSS, peer_mss=MSS, peer_sack=True, peer_wscale=7, window=1 << 16)
    peer.conn.gso_max = gso_max
    return peer


def test_a_burst_comes_out_as_super_segments_counted_per_mss() -> None:
    peer = _open(4 * MSS)
    conn = peer.conn
    before = conn.segments_out
    conn.send(bytes(range(256)) * 40, peer.now)  # 10 240 bytes
    out = [Sent.of(s) for s in conn.segments_to_send()]
    sizes = [len(s.payload) for s in out]
    assert max(sizes) == 4 * MSS and all(n % MSS == 0 for n in sizes[:-1])
    assert all(diff(b.seq, a.seq) == len(a.payload) for a, b in zip(out, out[1:], strict=False))
    assert conn.segments_out - before == len(cut(out, MSS))
    # One scoreboard record per MSS: a loss resends one MSS, not the super-segment.
    assert conn._rack is not None
    assert all(diff(r.end, r.start) <= MSS for r in conn._rack.segments)


@pytest.mark.parametrize("seed", range(8))
def test_cut_at_mss_the_segments_are_those_without_gso(seed: int) -> None:
    rng = random.Random(seed)
    peers = (_open(0), _open(16 * MSS))
    data = bytes(rng.randrange(256) for _ in range(300_000))
    written = 0
    outs: list[list[tuple[int, int, int, bytes]]] = [[], []]
    now = 0.0
    supers = 0
    for _ in range(400):
        now += rng.choice((0.001, 0.01, 0.3))
        step = rng.random()
        if step < 0.3 and written < len(data):
            n = rng.randrange(1, 20_000)
            for p in peers:
                p.conn.send(data[written : written + n], now)
            written += n
            for i, p in enumerate(peers):
                made = [Sent.of(s) for s in p.conn.segments_to_send()]
                supers += i == 1 and any(len(s.payload) > MSS for s in made)
                outs[i] += cut(made, MSS)
        elif step < 0.85:
            # The peer acknowledges part of what was sent, SACKing a block above it.
            una = peers[0].conn.snd_una
            flight = diff(peers[0].conn.snd_nxt, una)
            if flight <= 0:
                continue
            ack = add(una, rng.randrange(0, flight + 1) // MSS * MSS)
            opts = {}
            if rng.random() < 0.4 and diff(add(una, flight), ack) > 2 * MSS:
                left = add(ack, MSS)
                opts["sack"] = ((left, add(left, MSS)),)
            for i, p in enumerate(peers):
                out = p.send(ACK, ack=ack, opts=p.opts(**opts), at=now)
                outs[i] += cut(out, MSS)
        else:
            for i, p in enumerate(peers):
                outs[i] += cut(p.tick(now), MSS)
        assert outs[0] == outs[1]
    assert supers and sum(len(p[3]) for p in outs[0]) > 10_000
