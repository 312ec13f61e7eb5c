"""Properties of the sender's SACK scoreboard (RFC 6675 with RFC 8985's per-segment records,
netstack.proto.tcp.rack.Rack), driven alone through arbitrary sends, retransmissions (whole,
partial, splitting records), cumulative and selective acknowledgements (garbage, D-SACK and
out-of-range blocks included), loss detection, loss marks and timeouts, near the
sequence-number wrap.

Whatever the order: the records tile [SND.UNA, SND.MAX) in sequence order without gaps or
overlaps and stay bounded by what is outstanding; no record is both SACKed and lost; the byte
counts equal the sums over the records; pipe stays within [0, outstanding]; NextSeg is the
first lost record; each ACK's DeliveredData accounts for every byte it acknowledged; the
SACKed ranges, merged, are sorted, disjoint and inside the window, and only a timeout forgets
them. The RACK-TLP behaviour itself is in test_rfc8985.py.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from netstack.proto.tcp.rack import Rack
from netstack.proto.tcp.seq import MOD, add, diff

SETTINGS = settings(max_examples=300, deadline=None)
MSS = 1000

fraction = st.floats(0.0, 1.0)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 3 * MSS)),
        st.tuples(st.just("retransmit"), fraction, st.integers(1, 3 * MSS)),
        st.tuples(
            st.just("ack"),
            fraction,
            st.lists(st.tuples(st.floats(-0.2, 1.2), st.floats(-0.2, 1.2)), max_size=4),
        ),
        st.tuples(st.just("detect"), st.floats(0.0, 0.1)),
        st.tuples(st.just("mark_lost"), fraction),
        st.tuples(st.just("timeout")),
        st.tuples(st.just("wait"), st.floats(0.0, 0.5)),
    ),
    max_size=80,
)


def retransmitted(una: int, nxt: int, where: float, n: int) -> tuple[int, int]:
    """The range a ("retransmit", where, n) op resends: from a fraction of the way into what
    is outstanding, at most ``n`` bytes."""
    outstanding = diff(nxt, una)
    start = add(una, min(outstanding - 1, int(outstanding * where)))
    return start, add(start, min(n, diff(nxt, start)))


def acknowledged(
    una: int, outstanding: int, where: float, raw: list[tuple[float, float]]
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """The cumulative ACK and SACK blocks of an ("ack", where, raw) op, as fractions of what
    is outstanding."""
    ack = add(una, int(outstanding * where))
    blocks = tuple((add(una, int(outstanding * a)), add(una, int(outstanding * b))) for a, b in raw)
    return ack, blocks


def merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@SETTINGS
@given(ops=ops, base=st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 20_000, MOD - 1)))
def test_scoreboard_invariants(ops: list[tuple[object, ...]], base: int) -> None:
    rack = Rack(MSS)
    rack.rtt_sample(0.05)
    una = nxt = base  # SND.UNA and SND.MAX
    now = 1.0
    sacked_before: list[tuple[int, int]] = []  # SACKed ranges, offsets from base
    for op in ops:
        kind = op[0]
        now += 0.001
        outstanding = diff(nxt, una)
        if kind == "send":
            n = op[1]
            assert isinstance(n, int)
            rack.on_send(nxt, add(nxt, n), now)
            nxt = add(nxt, n)
        elif kind == "retransmit" and outstanding:
            where, n = op[1], op[2]
            assert isinstance(where, float) and isinstance(n, int)
            rack.on_retransmit(*retransmitted(una, nxt, where, n), now)
        elif kind == "ack":
            where, raw = op[1], op[2]
            assert isinstance(where, float) and isinstance(raw, list)
            ack, blocks = acknowledged(una, outstanding, where, raw)
            sacked_bytes, recorded = (
                rack.sacked_bytes,
                sum(diff(s.end, s.start) for s in rack.segments),
            )
            acked, newly = rack.on_ack(ack, blocks, nxt, now)
            # DeliveredData (RFC 6937): every byte the ACK covered cumulatively was either
            # counted now or SACKed before; nothing is counted twice.
            cum = diff(ack, una)
            removed_sacked = sacked_bytes + newly - rack.sacked_bytes
            assert acked >= 0 and newly >= 0
            assert acked + removed_sacked == cum
            assert recorded - sum(diff(s.end, s.start) for s in rack.segments) == cum
            una = ack
        elif kind == "detect":
            reo = op[1]
            assert isinstance(reo, float)
            sacked = [s for s in rack.segments if s.sacked]
            timeout = rack.detect_loss(now, reo)
            assert timeout >= 0.0
            assert all(s.sacked for s in sacked)  # loss detection never un-SACKs
        elif kind == "mark_lost" and rack.segments:
            where = op[1]
            assert isinstance(where, float)
            seg = rack.segments[min(len(rack.segments) - 1, int(len(rack.segments) * where))]
            was = seg.sacked or seg.lost
            assert rack.mark_lost(seg.start) is (not was)
            assert seg.lost is (not seg.sacked)
        elif kind == "timeout":
            rack.on_timeout()
            sacked_before = []
        elif kind == "wait":
            t = op[1]
            assert isinstance(t, float)
            now += t
        # -- the invariants ----------------------------------------------------------------
        segs = list(rack.segments)
        outstanding = diff(nxt, una)
        if segs:
            assert segs[0].start == una and segs[-1].end == nxt
        else:
            assert outstanding == 0
        for a, b in zip(segs, segs[1:], strict=False):
            assert a.end == b.start  # in order, no gap, no overlap
        assert all(diff(s.end, s.start) > 0 for s in segs)
        assert len(segs) <= outstanding  # bounded: every record holds a byte at least
        assert not any(s.sacked and s.lost for s in segs)
        assert rack.sacked_bytes == sum(diff(s.end, s.start) for s in segs if s.sacked)
        assert rack.lost_bytes == sum(diff(s.end, s.start) for s in segs if s.lost)
        pipe = rack.pipe(outstanding)
        assert 0 <= pipe <= outstanding
        assert pipe == max(0, outstanding - rack.sacked_bytes - rack.lost_bytes)
        first_lost = next((s for s in segs if s.lost), None)
        assert rack.next_lost() is first_lost
        # The SACKed ranges (offsets from the start): inside [SND.UNA, SND.MAX); what was
        # SACKed stays SACKed until cumulatively acknowledged (or a timeout, above).
        start = diff(una, base)
        ranges = merged([(diff(s.start, base), diff(s.end, base)) for s in segs if s.sacked])
        assert all(start <= lo < hi <= start + outstanding for lo, hi in ranges)
        for lo, hi in sacked_before:
            lo = max(lo, start)
            if lo < hi:
                assert any(a <= lo and hi <= b for a, b in ranges), (lo, hi, ranges)
        sacked_before = ranges


class _OneByOne(Rack):
    """The reference for :meth:`Rack.on_ack`'s run of never-retransmitted segments: RACK's
    steps 2 and 3 (RFC 8985 6.2) for every cumulatively acknowledged segment in turn."""

    def on_ack(
        self,
        ack: int,
        blocks: tuple[tuple[int, int], ...],
        snd_max: int,
        now: float,
        ts_ecr: int | None = None,
        retrans_ts: Callable[[float], int] | None = None,
    ) -> tuple[int, int]:
        acked = 0
        segs = self.segments
        while segs and diff(segs[0].end, ack) <= 0:
            seg = segs.popleft()
            n = diff(seg.end, seg.start)
            if seg.sacked:
                self.sacked_bytes -= n
                continue
            if seg.lost:
                self.lost_bytes -= n
            acked += n
            self._delivered(seg, now, ts_ecr, retrans_ts)
        more, newly = super().on_ack(ack, blocks, snd_max, now, ts_ecr, retrans_ts)
        return acked + more, newly


def _rack_state(rack: Rack) -> tuple[object, ...]:
    return (
        rack.rtt, rack.xmit_ts, rack.end_seq, rack.fack, rack.reordering_seen,
        rack.reordering_events, rack.sacked_bytes, rack.lost_bytes,
        [(s.start, s.end, s.sacked, s.lost, s.retrans) for s in rack.segments],
    )  # fmt: skip


@SETTINGS
@given(ops=ops, base=st.one_of(st.integers(0, MOD - 1), st.integers(MOD - 20_000, MOD - 1)))
def test_a_cumulative_ack_delivers_its_segments_as_one_by_one(
    ops: list[tuple[object, ...]], base: int
) -> None:
    """Segments a cumulative ACK covers are handed to RACK as a run; whatever was sent,
    retransmitted, SACKed or marked lost before, RACK ends in the same state as when they
    are delivered one at a time."""
    racks = (Rack(MSS), _OneByOne(MSS))
    for rack in racks:
        rack.rtt_sample(0.05)
    una = nxt = base
    now = 1.0
    for op in ops:
        kind = op[0]
        now += 0.001
        outstanding = diff(nxt, una)
        for rack in racks:
            if kind == "send":
                assert isinstance(op[1], int)
                rack.on_send(nxt, add(nxt, op[1]), now)
            elif kind == "retransmit" and outstanding:
                where, n = op[1], op[2]
                assert isinstance(where, float) and isinstance(n, int)
                rack.on_retransmit(*retransmitted(una, nxt, where, n), now)
            elif kind == "ack":
                where, raw = op[1], op[2]
                assert isinstance(where, float) and isinstance(raw, list)
                rack.on_ack(*acknowledged(una, outstanding, where, raw), nxt, now)
            elif kind == "detect":
                assert isinstance(op[1], float)
                rack.detect_loss(now, op[1])
            elif kind == "mark_lost" and rack.segments:
                assert isinstance(op[1], float)
                rack.mark_lost(rack.segments[int((len(rack.segments) - 1) * op[1])].start)
            elif kind == "timeout":
                rack.on_timeout()
        if kind == "send":
            assert isinstance(op[1], int)
            nxt = add(nxt, op[1])
        elif kind == "ack":
            assert isinstance(op[1], float)
            una = add(una, int(outstanding * op[1]))
        elif kind == "wait":
            assert isinstance(op[1], float)
            now += op[1]
        assert _rack_state(racks[0]) == _rack_state(racks[1])


def test_a_hole_filled_by_its_original_transmission_is_reordering() -> None:
    """RFC 8985 6.2 step 3: a SACK for the second segment, then a cumulative ACK for four
    that were never retransmitted: the first was delivered below RACK.fack, so the network
    reordered, though the run of delivered segments ends above it."""
    for rack in (Rack(MSS), _OneByOne(MSS)):
        for i in range(4):
            rack.on_send(i * MSS, (i + 1) * MSS, 1.0 + i / 1000)
        rack.on_ack(0, ((MSS, 2 * MSS),), 4 * MSS, 1.1)
        assert rack.fack == 2 * MSS and not rack.reordering_seen
        rack.on_ack(4 * MSS, (), 4 * MSS, 1.2)
        assert rack.reordering_seen and rack.reordering_events == 1
        assert rack.fack == 4 * MSS and rack.end_seq == 4 * MSS
        assert abs(rack.rtt - (1.2 - 1.003)) < 1e-9
