"""Proportional Rate Reduction (RFC 6937): the per-ACK sending budget, checked against the
RFC's own examples (section 6), and in a connection's SACK recovery."""

from __future__ import annotations

from netstack.proto.tcp.prr import Prr

MSS = 1000


def run_single_loss(acks: int) -> list[int]:
    """RFC 6937 6, first scenario: cwnd = FlightSize = pipe = 20 segments, one loss,
    ssthresh 10. Limited Transmit sent 2 new segments on the first two duplicate ACKs; the
    third starts recovery. Each duplicate ACK delivers one segment and removes it from the
    pipe; every segment sent puts one back. Returns the segments sent per ACK from the
    third on."""
    prr = Prr(ssthresh=10 * MSS, recover_fs=20 * MSS, mss=MSS)
    pipe = 18 * MSS  # after the third duplicate ACK, with the lost segment out of the pipe
    sent: list[int] = []
    for _ in range(acks):
        sndcnt = prr.on_ack(MSS, pipe, safe=False)
        n = 0
        while prr.may_send:  # CEIL in whole segments
            prr.on_sent(MSS)
            n += 1
        pipe += n * MSS
        sent.append(n)
        pipe -= MSS  # the next ACK delivers one more segment
        assert sndcnt >= 0
    return sent


def test_single_loss_sends_on_every_other_ack() -> None:
    """RFC 6937 6, the PRR row of the first table: the retransmission on the ACK that starts
    recovery, then one segment on every other ACK, until the pipe is down to ssthresh."""
    sent = run_single_loss(22)
    assert sent[:16] == [1, 0] * 8
    # Half of what was delivered went out again (ssthresh / RecoverFS), until the pipe is
    # at ssthresh; from there one segment per segment delivered (RFC 6937 3, the bound).
    assert sent[16:] == [0, 1, 1, 1, 1, 1]


def test_pipe_falls_to_ssthresh_and_then_holds() -> None:
    """RFC 6937 3: once pipe <= ssthresh the reduction bound takes over: with the
    conservative bound (CRB) one segment per segment delivered (packet conservation)."""
    prr = Prr(ssthresh=10 * MSS, recover_fs=20 * MSS, mss=MSS)
    prr.delivered = prr.out = 10 * MSS  # the proportional part is done
    assert prr.on_ack(MSS, 10 * MSS, safe=False) == 0  # pipe == ssthresh: nothing
    assert prr.on_ack(MSS, 9 * MSS, safe=False) == MSS  # one out for one delivered


def test_burst_loss_slow_start_bound_catches_up() -> None:
    """RFC 6937 6, second scenario: 15 of 20 segments lost at once; ssthresh 10; the pipe
    falls far below ssthresh. The conservative bound (PRR-CRB) sends only what is delivered;
    the slow-start bound (PRR-SSRB) one segment more per ACK, so the pipe climbs back
    toward ssthresh within the recovery instead of staying at 5."""
    crb = Prr(ssthresh=10 * MSS, recover_fs=20 * MSS, mss=MSS)
    ssrb = Prr(ssthresh=10 * MSS, recover_fs=20 * MSS, mss=MSS)
    pipes = {"crb": 4 * MSS, "ssrb": 4 * MSS}  # 5 delivered segments' ACKs to come
    for _ in range(5):
        for name, prr, safe in (("crb", crb, False), ("ssrb", ssrb, True)):
            n = prr.on_ack(MSS, pipes[name], safe=safe)
            segments = -(-n // MSS)
            prr.on_sent(segments * MSS)
            pipes[name] += segments * MSS - MSS
    assert crb.out == 5 * MSS  # one for one: the pipe never grows
    assert ssrb.out == 10 * MSS  # two per ACK: it grows by one per ACK
    assert pipes["ssrb"] > pipes["crb"]
    assert pipes["ssrb"] <= 10 * MSS  # never beyond ssthresh


def test_never_negative_and_proportional_part_uses_ceil() -> None:
    prr = Prr(ssthresh=7 * MSS, recover_fs=10 * MSS, mss=MSS)
    # ceil(1000 * 7000 / 10000) = 700 bytes: a positive budget (one segment may go).
    assert prr.on_ack(MSS, 9 * MSS, safe=False) == 700
    prr.on_sent(MSS)
    assert prr.on_ack(0, 9 * MSS, safe=False) == 0  # no delivery, nothing more
