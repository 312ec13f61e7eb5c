"""Spurious retransmissions: the Eifel detection algorithm (RFC 3522) with timestamps, the
D-SACK based detection of RFC 3708 without them, and the response that undoes the
congestion window reduction (RFC 4015)."""

from __future__ import annotations

from tcp_harness import ACK, ISS, Peer, TcpConfig, drain, open_active

from netstack.proto.tcp.wire import TcpOptions

BASE = ISS + 1
M = 1460


def sender(timestamps: bool) -> tuple[Peer, list]:
    p = open_active(TcpConfig(window_scaling=False, timestamps=timestamps), peer_sack=True,
                    peer_ts=timestamps)  # fmt: skip
    p.conn.send(bytes(10 * M), 1.0)
    p.now = 1.0
    out = drain(p.conn)
    assert len(out) == 10
    return p, out


def test_spurious_timeout_is_undone() -> None:
    """RFC 3522 / RFC 4015: the ACKs were only late. The timeout resent segment 0 and set
    cwnd to one segment; the ACK that then arrives echoes the original transmission's
    timestamp: the timeout was spurious, cwnd and ssthresh come back and the sender goes
    on with new data instead of resending the flight."""
    p, out = sender(timestamps=True)
    conn = p.conn
    cwnd = conn.cc.cwnd
    # The loss probe first (RFC 8985 7: at the 1 s the RTO would have fired), then the
    # timeout 1 s later.
    resent = p.run_timers(3.0)
    assert conn.loss_probes == 1 and conn.timeouts == 1
    assert [s.seq for s in resent if s.payload] == [BASE + 10 * conn.mss, BASE]  # new data
    assert conn.cc.cwnd == conn.mss
    echo = out[-1].options.ts_val
    p.send(ACK, ack=BASE + 10 * M, opts=TcpOptions(ts_val=2, ts_ecr=echo), at=3.05)
    assert conn.undos == 1
    assert conn.cc.cwnd >= cwnd
    assert conn.snd_nxt == conn.snd_max


def test_genuine_timeout_is_not_undone() -> None:
    p, out = sender(timestamps=True)
    conn = p.conn
    resent = p.run_timers(3.0)
    assert conn.timeouts == 1
    echo = resent[-1].options.ts_val  # the receiver saw the timeout's retransmission
    p.send(ACK, ack=BASE + conn.mss, opts=TcpOptions(ts_val=2, ts_ecr=echo), at=3.05)
    assert conn.undos == 0
    assert conn.cc.cwnd <= 2 * conn.mss


def test_fast_retransmit_undone_when_dsack_reports_it_a_duplicate() -> None:
    """RFC 3708: segment 0 was only reordered. SACKs of 1-3 made RACK retransmit it; the
    original then arrives, and the receiver reports the retransmission with a D-SACK:
    every retransmission of the episode was unneeded, the reduction is undone."""
    p, out = sender(timestamps=False)
    conn = p.conn
    cwnd = conn.cc.cwnd
    p.send(ACK, ack=BASE, opts=TcpOptions(sack=((BASE + M, BASE + 4 * M),)), at=1.1)
    assert conn.fast_recoveries == 1 and conn.retransmits == 1
    assert conn.cc.cwnd < cwnd
    p.send(ACK, ack=BASE + 10 * M, at=1.11)  # the original 0 arrived: all acknowledged
    assert conn.undos == 0
    p.send(ACK, ack=BASE + 10 * M, opts=TcpOptions(sack=((BASE, BASE + M),)), at=1.2)
    assert conn.undos == 1
    assert conn.cc.cwnd >= cwnd
