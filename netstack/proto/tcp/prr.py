"""Proportional Rate Reduction (RFC 6937): how much a sender in fast recovery may send on
each ACK, so that the flight shrinks smoothly from where it was to ssthresh over one round
trip, instead of RFC 6675's silence for half a round trip followed by a burst.

RFC 6937 3:

    on entering recovery:  prr_delivered = prr_out = 0; RecoverFS = snd.nxt - snd.una
    on every ACK:          prr_delivered += DeliveredData
                           if pipe > ssthresh:       # proportional part
                               sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out
                           else:                     # reduction bound
                               CRB:  limit = prr_delivered - prr_out
                               SSRB: limit = MAX(prr_delivered - prr_out, DeliveredData) + MSS
                               sndcnt = MIN(ssthresh - pipe, limit)
    on every transmission: prr_out += bytes sent
    at the end of recovery: cwnd = ssthresh

Which bound: RFC 6937 leaves it open; its successor (RFC 9937 5) uses the slow-start bound
only on a "safe" ACK, one that advances SND.UNA and marks nothing newly lost, and the
conservative bound otherwise, as Linux does. That choice is made here too.

Counting is in bytes; a segment may go out while ``sndcnt`` is positive, which is RFC 6937's
CEIL in whole segments (at most one segment over, corrected by prr_out on the next ACK).
"""

from __future__ import annotations

__all__ = ["Prr"]


class Prr:
    """The PRR state of one recovery episode."""

    __slots__ = ("ssthresh", "recover_fs", "delivered", "out", "sndcnt", "mss")

    def __init__(self, ssthresh: int, recover_fs: int, mss: int) -> None:
        self.ssthresh = ssthresh
        self.recover_fs = max(recover_fs, 1)
        self.mss = mss
        self.delivered = 0  # prr_delivered
        self.out = 0  # prr_out
        self.sndcnt = 0

    def on_ack(self, delivered: int, pipe: int, *, safe: bool) -> int:
        """One ACK during recovery (RFC 6937 3): ``delivered`` is its DeliveredData (bytes
        newly acknowledged or SACKed), ``pipe`` RFC 6675's estimate after it. Returns the
        bytes that may be sent now (``sndcnt``)."""
        self.delivered += delivered
        if pipe > self.ssthresh:
            # The proportional part: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            target = -(-self.delivered * self.ssthresh // self.recover_fs)
            sndcnt = target - self.out
        else:
            if safe:
                limit = max(self.delivered - self.out, delivered) + self.mss  # PRR-SSRB
            else:
                limit = self.delivered - self.out  # PRR-CRB
            sndcnt = min(self.ssthresh - pipe, limit)
        self.sndcnt = sndcnt if sndcnt > 0 else 0
        return self.sndcnt

    def on_sent(self, n: int) -> None:
        """``n`` bytes (new or retransmitted) went out during recovery."""
        self.out += n
        self.sndcnt -= n

    @property
    def may_send(self) -> bool:
        return self.sndcnt > 0
