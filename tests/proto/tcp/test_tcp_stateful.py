"""Two TcpConnection machines over a simulated wire that loses, duplicates, reorders and
delays segments (seeded), driven by a generated schedule of user calls: writes, half-closes,
closes, pausing and resuming reading. Whatever happens, what each side received is a prefix of
what the other sent; when nobody reset, every byte arrives exactly once and in order, each
side sees one EOF after the data, and both end in CLOSED or TIME-WAIT.

Deterministic (hypothesis derandomized; the wire's impairments come from a drawn seed, shown
in the falsifying example). Simulated time only.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tcp_harness import (
    ConnectionClosed,
    ConnectionReset,
    DataReceived,
    EofReceived,
    State,
    TcpConfig,
    Wire,
    diff,
    pair,
)

SEND_STATES = (State.ESTABLISHED, State.CLOSE_WAIT)
END_STATES = (State.CLOSED, State.TIME_WAIT)


@dataclass(frozen=True)
class Op:
    dt: float  # simulated seconds to run before the call
    side: int
    kind: str  # write, pause, resume, shutdown, close, abort
    size: int = 0


ops = st.builds(
    Op,
    dt=st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.3, 2.0]),
    side=st.integers(0, 1),
    kind=st.sampled_from(["write"] * 16 + ["pause", "resume"] * 2 + ["shutdown", "close", "abort"]),
    size=st.one_of(st.sampled_from([1, 2, 10, 100, 536, 1460]), st.integers(1, 3000)),
)


@st.composite
def configs(draw: st.DrawFn) -> TcpConfig:
    return TcpConfig(
        msl=1.0,
        fin_wait_2_timeout=30.0,
        sack=draw(st.booleans()),
        timestamps=draw(st.booleans()),
        window_scaling=draw(st.booleans()),
        nodelay=draw(st.booleans()),
        recv_buffer=draw(st.sampled_from([2048, 6000, 65535, 1 << 20])),
        max_ooo_segments=draw(st.sampled_from([2, 16, 256])),
    )


@dataclass
class Scenario:
    seed: int
    loss: float
    duplicate: float
    jitter: float
    delay: float
    config_a: TcpConfig
    config_b: TcpConfig
    mss_a: int
    mss_b: int
    ops: list[Op]


scenarios = st.builds(
    Scenario,
    seed=st.integers(0, 2**32 - 1),
    loss=st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.3]),
    duplicate=st.sampled_from([0.0, 0.05]),
    jitter=st.sampled_from([0.0, 0.005, 0.05]),
    delay=st.sampled_from([0.001, 0.02]),
    config_a=configs(),
    config_b=configs(),
    mss_a=st.sampled_from([536, 1000, 1460]),
    mss_b=st.sampled_from([536, 1460]),
    ops=st.lists(ops, min_size=10, max_size=50),
)


class Run:
    def __init__(self, sc: Scenario) -> None:
        self.wire: Wire = pair(
            sc.config_a, sc.config_b, mss_a=sc.mss_a, mss_b=sc.mss_b, loss=sc.loss,
            duplicate=sc.duplicate, jitter=sc.jitter, delay=sc.delay, seed=sc.seed,
        )  # fmt: skip
        self.sent = [bytearray(), bytearray()]
        self.shut = [False, False]  # shutdown() or close() called
        self.closed = [False, False]  # close() called
        self.paused = [False, False]
        self.aborted = False
        self.counter = 0

    @property
    def ends(self) -> list:
        return self.wire.ends

    def write(self, side: int, size: int) -> None:
        conn = self.ends[side]
        if self.shut[side] or conn.state not in SEND_STATES:
            return
        data = bytes((self.counter + i) % 251 for i in range(size))
        self.counter += size
        conn.send(data, self.wire.now)
        self.sent[side] += data

    def apply(self, op: Op) -> None:
        conn = self.ends[op.side]
        now = self.wire.now
        if op.kind == "write":
            self.write(op.side, op.size)
        elif op.kind == "pause":
            conn.pause_reading()
            self.paused[op.side] = True
        elif op.kind == "resume":
            conn.resume_reading(now)
            self.paused[op.side] = False
        elif op.kind == "shutdown":
            conn.shutdown(now)
            self.shut[op.side] = True
        elif op.kind == "close":
            conn.close(now)
            self.shut[op.side] = self.closed[op.side] = True
        elif op.kind == "abort":
            conn.abort(now)
            self.shut[op.side] = self.closed[op.side] = self.aborted = True
        self.wire.collect()

    def reset_seen(self) -> bool:
        return any(isinstance(e, ConnectionReset) for evs in self.wire.events for e in evs)

    def eof_seen(self, side: int) -> bool:
        return any(isinstance(e, EofReceived) for e in self.wire.events[side])


def check_sequence_space(run: Run) -> None:
    """Between two honest machines: SND.UNA =< SND.NXT =< SND.MAX on both sides, nobody
    ever sees an acknowledgement of data its peer was never sent, and the two never
    exchange segments without end (an ACK storm)."""
    assert len(run.wire.log) < 20_000, "runaway exchange: " + "\n".join(
        repr(x) for x in run.wire.log[-10:]
    )
    for side, conn in enumerate(run.ends):
        if conn.state is State.CLOSED:
            continue
        assert diff(conn.snd_nxt, conn.snd_una) >= 0, f"side {side}: SND.NXT < SND.UNA"
        assert diff(conn.snd_max, conn.snd_nxt) >= 0, (
            f"side {side}: SND.NXT {conn.snd_nxt} beyond SND.MAX {conn.snd_max}"
        )
        assert conn.drops.get("ack_beyond_sent", 0) == 0, (
            f"side {side} refused an ACK of data it sent"
        )


def check_streams(run: Run) -> None:
    for side in (0, 1):
        got = bytes(run.wire.received[1 - side])
        sent = bytes(run.sent[side])
        assert sent.startswith(got), f"side {1 - side} received bytes side {side} never sent"


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios)
def test_two_machines_over_an_impaired_wire(sc: Scenario) -> None:
    run = Run(sc)
    wire = run.wire
    wire.check = lambda: check_sequence_space(run)
    for op in sc.ops:
        wire.run(wire.now + op.dt)
        run.apply(op)
        check_streams(run)
    # The end of the story: everybody reads, and whoever has not yet closed its sending side
    # does so; each side closes once it has seen the peer's EOF.
    for side in (0, 1):
        run.ends[side].resume_reading(wire.now)
        if not run.shut[side]:
            run.ends[side].shutdown(wire.now)
            run.shut[side] = True
    wire.collect()

    def settled() -> bool:
        return all(c.state in END_STATES for c in run.ends)

    def close_after_eof() -> None:
        for side in (0, 1):
            if run.eof_seen(side) and not run.closed[side]:
                run.ends[side].close(wire.now)
                run.closed[side] = True
        wire.collect()

    # Each side closes once the peer's EOF arrived. A peer may be gone (reset or timed
    # out, the reset lost): after ten simulated minutes the applications give up and
    # close anyway, and the orphaned connections must still finish.
    deadline = wire.now + 600.0
    for _ in range(1000):
        if settled():
            break
        close_after_eof()
        if wire.now >= deadline:
            for side in (0, 1):
                if not run.closed[side]:
                    run.ends[side].close(wire.now)
                    run.closed[side] = True
            wire.collect()
        wire.run_until(lambda: settled() or any(
            run.eof_seen(s) and not run.closed[s] for s in (0, 1)
        ), until=max(wire.now + 60.0, deadline))  # fmt: skip
        if wire.next_at() is None and not any(
            run.eof_seen(s) and not run.closed[s] for s in (0, 1)
        ):
            if wire.now < deadline:
                wire.now = deadline
            elif all(run.closed):
                break
    check_streams(run)
    states = [c.state for c in run.ends]
    assert all(s in END_STATES for s in states), (
        f"not finished after {wire.now:.1f} s: {states}, "
        f"unsent {[c.unsent for c in run.ends]}, windows {[c.snd_wnd for c in run.ends]}, "
        f"poll_at {[c.poll_at() for c in run.ends]}"
    )
    if run.reset_seen() or run.aborted:
        return
    early_close = [run.closed[s] and not run.eof_seen(s) for s in (0, 1)]
    for side in (0, 1):
        got = bytes(wire.received[1 - side])
        if early_close[1 - side]:
            continue  # closed before the end: it stopped reading (and would have reset)
        assert got == bytes(run.sent[side]), (
            f"side {1 - side} got {len(got)} of {len(run.sent[side])} bytes"
        )
        evs = wire.events[1 - side]
        eofs = [i for i, e in enumerate(evs) if isinstance(e, EofReceived)]
        assert len(eofs) == 1
        assert not any(isinstance(e, DataReceived) for e in evs[eofs[0] :])
        assert sum(isinstance(e, ConnectionClosed) for e in evs) <= 1
