"""RACK-TLP (RFC 8985): the scoreboard's time-based loss detection, its reordering window,
and tail loss probes, on the RACK type alone and in connections on a simulated wire."""

from __future__ import annotations

import pytest
from tcp_harness import TcpConnection, Wire, add, pair

from netstack.proto.tcp.rack import Rack

M = 1000


def sent(rack: Rack, n: int, at: float, first: int = 0) -> None:
    for i in range(first, first + n):
        rack.on_send(i * M, (i + 1) * M, at)


def lost(rack: Rack) -> list[int]:
    return [s.start // M for s in rack.segments if s.lost]


def test_sack_of_a_later_segment_waits_a_reordering_window() -> None:
    """RFC 8985 3.3 (the idea) and 6.2 step 5: P1 and P2 sent at 0; P2 SACKed at 0.1. P1 is
    lost only once it is RACK.rtt + reo_wnd old; reo_wnd is min_RTT / 4 while fewer than
    DupThresh segments are SACKed. The timer returned says when to look again."""
    rack = Rack(M)
    sent(rack, 2, 0.0)
    rack.rtt_sample(0.1)
    rack.on_ack(0, ((M, 2 * M),), 2 * M, 0.1)
    reo = rack.reo_wnd(False, 0.1)
    assert reo == pytest.approx(0.025)
    assert rack.detect_loss(0.1, reo) == pytest.approx(0.025)
    assert lost(rack) == []
    assert rack.detect_loss(0.125, reo) == 0.0
    assert lost(rack) == [0]
    assert rack.pipe(2 * M) == 0  # SACKed and lost are out of the pipe


def test_dupthresh_segments_sacked_means_no_wait() -> None:
    """6.2 step 4: with no reordering seen, DupThresh SACKed segments make reo_wnd zero:
    RACK is as fast as RFC 6675's duplicate-ACK threshold."""
    rack = Rack(M)
    sent(rack, 4, 0.0)
    rack.rtt_sample(0.1)
    rack.on_ack(0, ((M, 4 * M),), 4 * M, 0.1)
    reo = rack.reo_wnd(False, 0.1)
    assert reo == 0.0
    assert rack.detect_loss(0.1, reo) == 0.0
    assert lost(rack) == [0]


def test_lost_retransmission_is_detected_again() -> None:
    """RFC 8985 2.2 / 3.3: a retransmission that is lost too is found when a segment sent
    after it is delivered, without a retransmission timeout (RFC 6675 cannot see it)."""
    rack = Rack(M)
    sent(rack, 5, 0.0)
    rack.rtt_sample(0.1)
    rack.on_ack(0, ((M, 4 * M),), 5 * M, 0.1)
    rack.detect_loss(0.1, 0.0)
    assert lost(rack) == [0]
    rack.on_retransmit(0, M, 0.1)  # P0 again at 0.1 ...
    sent(rack, 1, 0.11, first=5)  # ... and new data after it
    rack.on_ack(0, ((M, 4 * M), (5 * M, 6 * M)), 6 * M, 0.21)  # P5 delivered, P0' not
    assert rack.detect_loss(0.21, rack.reo_wnd(True, 0.1)) == 0.0
    assert lost(rack) == [0, 4]  # P0' lost again; P4 (sent at 0) too


def test_reordering_seen_keeps_a_window_and_dsack_grows_it() -> None:
    """6.2 step 3: a segment delivered below the highest delivered one, never
    retransmitted, is reordering; from then on reo_wnd stays min_RTT/4 even in recovery;
    each D-SACK round grows it (step 4), capped at SRTT."""
    rack = Rack(M)
    sent(rack, 3, 0.0)
    rack.rtt_sample(0.08)
    rack.on_ack(0, ((2 * M, 3 * M),), 3 * M, 0.1)
    rack.on_ack(2 * M, ((2 * M, 3 * M),), 3 * M, 0.1)  # P0, P1 delivered late
    assert rack.reordering_seen and rack.reordering_events == 1
    assert rack.reo_wnd(True, 0.1) == pytest.approx(0.02)
    rack.on_dsack(snd_una=0, snd_nxt=3 * M)
    assert rack.reo_wnd(True, 0.1) == pytest.approx(0.04)
    rack.on_dsack(snd_una=0, snd_nxt=3 * M)  # same round: no more growth
    assert rack.reo_wnd(True, 0.1) == pytest.approx(0.04)
    for _ in range(10):
        rack.on_dsack(snd_una=3 * M, snd_nxt=3 * M)
    assert rack.reo_wnd(True, 0.1) == pytest.approx(0.1)  # capped at SRTT
    for _ in range(16):
        rack.on_recovery_exit()
    assert rack.reo_wnd(True, 0.1) == pytest.approx(0.02)  # 16 recoveries later


def test_retransmission_acknowledged_too_soon_is_not_rack_segment() -> None:
    """6.2 step 2: an ACK for a retransmitted segment whose echo predates the
    retransmission is for the original: its "RTT" would be wrong, it is not used."""
    rack = Rack(M)
    sent(rack, 1, 0.0)
    rack.on_retransmit(0, M, 1.0)
    rack.on_ack(M, (), M, 1.001, ts_ecr=5, retrans_ts=lambda t: int(t * 1000))
    assert rack.xmit_ts is None


# -- connections ---------------------------------------------------------------------------------


def lossy(holes: dict[int, int], segments: int, **wire_kw: object) -> tuple[Wire, bytes]:
    """A sends ``segments`` full segments to B with SACK and timestamps; segment i is lost
    the first ``holes[i]`` times it is sent."""
    seen: dict[int, int] = {}
    lost_seq: dict[int, int] = {}

    def drop(side: int, s: object) -> bool:
        if side != 0 or not s.payload:  # type: ignore[attr-defined]
            return False
        seq = s.seq  # type: ignore[attr-defined]
        seen[seq] = seen.get(seq, 0) + 1
        return seen[seq] <= lost_seq.get(seq, 0)

    wire = pair(drop=drop, delay=0.05, **wire_kw)  # type: ignore[arg-type]
    a = wire.ends[0]
    assert a.sack_ok and a.ts_ok
    lost_seq.update({add(a.snd_nxt, i * a.mss): n for i, n in holes.items()})
    data = bytes((i * 7) % 251 for i in range(segments * a.mss))
    a.send(data, wire.now)
    wire.run(wire.now + 60.0)
    return wire, data


def test_tail_loss_repaired_by_a_probe_not_a_timeout() -> None:
    """RFC 8985 7: the last two segments of a transfer are lost. Nothing is SACKed, so
    only a timer can notice. The PTO (2 SRTT) fires before the RTO; its probe (the last
    segment again) is SACKed, RACK marks the other lost, fast recovery repairs it."""
    wire, data = lossy({8: 1, 9: 1}, 10)
    a: TcpConnection = wire.ends[0]
    assert bytes(wire.received[1]) == data
    assert a.loss_probes == 1
    assert a.timeouts == 0
    assert a.fast_recoveries == 1


def test_lost_retransmission_repaired_without_a_timeout() -> None:
    """Segment 3 is lost, and so is its fast retransmission: RACK sees the retransmission
    is overdue once later data is delivered, and sends it a third time."""
    wire, data = lossy({3: 2}, 40)
    a: TcpConnection = wire.ends[0]
    assert bytes(wire.received[1]) == data
    assert a.timeouts == 0
    counts: dict[int, int] = {}
    for _, side, s in wire.log:
        if side == 0 and s.payload:
            counts[s.seq] = counts.get(s.seq, 0) + 1
    assert counts[add(a.iss, 1 + 3 * a.mss)] == 3


def test_new_data_probe_when_the_application_has_more() -> None:
    """7.3: with new data allowed by the receive window, the probe is new data."""
    wire = pair(delay=0.05, drop=lambda side, s: side == 1 and s.ack > 0 and bool(wire.hold))
    wire.hold = False  # type: ignore[attr-defined]
    a = wire.ends[0]
    a.send(bytes(3 * a.mss), wire.now)
    wire.run(wire.now + 1.0)  # RTT samples
    wire.hold = True  # type: ignore[attr-defined]  # ACKs lost from here on
    a.cc.cwnd = 2 * a.mss  # room for two of the three new segments
    before = a.snd_max
    a.send(bytes(3 * a.mss), wire.now)
    wire.collect()
    assert a.snd_max == add(before, 2 * a.mss)
    at = a.poll_at()
    assert at is not None
    a.handle_timeout(at)
    assert a.loss_probes == 1
    assert a.snd_max == add(before, 3 * a.mss)  # the probe carried the third, new
    assert a.timeouts == 0
