"""Shared helpers for the TCP machine tests: scripted peers that hand-craft segments to one
:class:`TcpConnection`, and a simulated wire between two machines (time is a plain float).

Nothing here runs an event loop. Segments leaving a machine are copied (``Sent``) at once:
their payload is a view into the send buffer, valid only until the next input.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from netstack.proto.tcp.connection import (
    Connected,
    ConnectionClosed,
    ConnectionReset,
    DataReceived,
    EofReceived,
    Event,
    Segment,
    State,
    TcpConfig,
    TcpConnection,
    TcpParams,
)
from netstack.proto.tcp.seq import add, diff
from netstack.proto.tcp.wire import Flags, TcpOptions, emit_options, parse_options

__all__ = [
    "ACK",
    "FIN",
    "LOCAL",
    "NO_OPTS",
    "PEER_ISS",
    "PSH",
    "REMOTE",
    "RST",
    "SYN",
    "URG",
    "ISS",
    "Connected",
    "ConnectionClosed",
    "ConnectionReset",
    "DataReceived",
    "EofReceived",
    "Peer",
    "Sent",
    "State",
    "TcpConfig",
    "TcpConnection",
    "TcpParams",
    "Wire",
    "add",
    "data_of",
    "diff",
    "drain",
    "emit_options",
    "events",
    "open_active",
    "open_passive",
    "pair",
]

FIN, SYN, RST, PSH, ACK, URG = (
    int(f) for f in (Flags.FIN, Flags.SYN, Flags.RST, Flags.PSH, Flags.ACK, Flags.URG)
)
LOCAL = (bytes([198, 18, 0, 1]), 40000)
REMOTE = (bytes([198, 18, 0, 2]), 80)
ISS = 1000
PEER_ISS = 900_000
NO_OPTS = TcpOptions()


@dataclass(frozen=True)
class Sent:
    """A copy of a segment a machine emitted, with its options parsed."""

    seq: int
    ack: int
    flags: int
    window: int
    options: TcpOptions
    payload: bytes
    raw_options: bytes = b""
    urgent: int = 0

    @classmethod
    def of(cls, seg: Segment) -> Sent:
        return cls(
            seg.seq,
            seg.ack,
            seg.flags,
            seg.window,
            parse_options(seg.options),
            bytes(seg.payload),
            bytes(seg.options),
            seg.urgent,
        )

    def has(self, flags: int) -> bool:
        return self.flags & flags == flags

    @property
    def kind(self) -> str:
        """The flags as letters, in tcpdump's order: S F R P U . (ACK)."""
        out = ""
        for bit, letter in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (URG, "U"), (ACK, ".")):
            if self.flags & bit:
                out += letter
        return out

    @property
    def seg_len(self) -> int:
        return len(self.payload) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __repr__(self) -> str:
        return (
            f"<{self.kind} seq={self.seq} ack={self.ack} win={self.window} "
            f"len={len(self.payload)} {self.options}>"
        )


def drain(conn: TcpConnection) -> list[Sent]:
    return [Sent.of(s) for s in conn.segments_to_send()]


def events(conn: TcpConnection) -> list[Event]:
    out: list[Event] = []
    while (e := conn.next_event()) is not None:
        out.append(e)
    return out


def data_of(evs: list[Event]) -> bytes:
    return b"".join(e.data for e in evs if isinstance(e, DataReceived))


@dataclass
class Peer:
    """A scripted remote end for one machine under test: it tracks its own next sequence
    number and what it acknowledges, and feeds hand-made segments to the machine."""

    conn: TcpConnection
    seq: int  # the peer's next sequence number
    ack: int  # what the peer acknowledges by default (the machine's sequence space)
    now: float = 0.0
    window: int = 65535
    timestamps: bool = False
    ts_val: int = 1
    sent: list[Sent] = field(default_factory=list)

    def opts(self, **kw: object) -> TcpOptions:
        if self.timestamps and "ts_val" not in kw:
            kw["ts_val"] = self.ts_val
            kw.setdefault("ts_ecr", 0)
        return TcpOptions(**kw)  # type: ignore[arg-type]

    def send(
        self,
        flags: int = ACK,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        opts: TcpOptions | None = None,
        at: float | None = None,
        advance: bool = True,
        urgent: int = 0,
    ) -> list[Sent]:
        """Feed one segment to the machine; returns what it sent in reply."""
        if at is not None:
            self.now = at
        s = self.seq if seq is None else seq
        a = self.ack if ack is None else ack
        w = self.window if window is None else window
        o = self.opts() if opts is None else opts
        self.conn.receive(s, a, flags, w, o, payload, self.now, urgent)
        if advance and seq is None:
            n = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            self.seq = add(self.seq, n)
        out = drain(self.conn)
        self.sent.extend(out)
        return out

    def tick(self, at: float) -> list[Sent]:
        """Advance the clock to ``at`` and run the machine's timers."""
        self.now = at
        self.conn.handle_timeout(at)
        out = drain(self.conn)
        self.sent.extend(out)
        return out

    def run_timers(self, until: float, limit: int = 10_000) -> list[Sent]:
        """Fire every deadline up to ``until`` (nothing answers); returns what was sent."""
        out: list[Sent] = []
        for _ in range(limit):
            at = self.conn.poll_at()
            if at is None or at > until:
                break
            out += self.tick(max(at, self.now))
        return out

    def events(self) -> list[Event]:
        return events(self.conn)


def open_active(
    config: TcpConfig | None = None,
    *,
    mss: int = 1460,
    peer_mss: int | None = 1460,
    peer_wscale: int | None = None,
    peer_sack: bool = False,
    peer_ts: bool = False,
    window: int = 65535,
    iss: int = ISS,
    peer_iss: int = PEER_ISS,
    now: float = 0.0,
    **kw: object,
) -> Peer:
    """A machine opened actively and completed by a scripted SYN-ACK: ESTABLISHED, its
    outputs and events drained."""
    params = TcpParams(iss=iss, mss=mss, config=config or TcpConfig(), **kw)  # type: ignore[arg-type]
    conn = TcpConnection.connect(LOCAL, REMOTE, now, params)
    syn = drain(conn)
    assert len(syn) == 1 and syn[0].kind == "S", syn
    peer = Peer(conn, seq=peer_iss, ack=add(iss, 1), now=now, window=window, timestamps=peer_ts)
    opts = TcpOptions(
        mss=peer_mss,
        wscale=peer_wscale,
        sack_permitted=peer_sack,
        ts_val=peer.ts_val if peer_ts else None,
        ts_ecr=syn[0].options.ts_val or 0 if peer_ts else 0,
    )
    out = peer.send(SYN | ACK, opts=opts)
    assert conn.state is State.ESTABLISHED, conn.state
    assert [s.kind for s in out] == ["."], out
    assert isinstance(conn.next_event(), Connected)
    assert conn.next_event() is None
    return peer


def open_passive(
    config: TcpConfig | None = None,
    *,
    mss: int = 1460,
    syn_opts: TcpOptions | None = None,
    window: int = 65535,
    iss: int = ISS,
    peer_iss: int = PEER_ISS,
    now: float = 0.0,
    **kw: object,
) -> Peer:
    """A machine opened passively from a scripted SYN and completed by its ACK."""
    opts = syn_opts if syn_opts is not None else TcpOptions(mss=1460)
    params = TcpParams(iss=iss, mss=mss, config=config or TcpConfig(), **kw)  # type: ignore[arg-type]
    conn = TcpConnection.accept(LOCAL, REMOTE, peer_iss, window, opts, now, params)
    synack = drain(conn)
    assert [s.kind for s in synack] == ["S."], synack
    peer = Peer(
        conn,
        seq=add(peer_iss, 1),
        ack=add(iss, 1),
        now=now,
        window=window,
        timestamps=opts.ts_val is not None,
        ts_val=opts.ts_val or 1,
    )
    out = peer.send(ACK)
    assert out == []
    assert conn.state is State.ESTABLISHED, conn.state
    assert isinstance(conn.next_event(), Connected)
    return peer


# -- two machines over a simulated wire ---------------------------------------------------------


@dataclass(order=True)
class _InFlight:
    at: float
    order: int
    to: int = field(compare=False)
    seg: Sent = field(compare=False)


class Wire:
    """Two machines joined by a wire with a one-way ``delay``; ``drop(side, seg)`` decides
    the fate of each segment sent by side 0 or 1 (True: lost). Optional seeded impairments:
    ``loss``, ``duplicate`` and ``jitter`` (reordering by random extra delay)."""

    def __init__(
        self,
        a: TcpConnection,
        b: TcpConnection,
        *,
        now: float = 0.0,
        delay: float = 0.01,
        drop: Callable[[int, Sent], bool] | None = None,
        loss: float = 0.0,
        duplicate: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.ends = [a, b]
        self.now = now
        self.delay = delay
        self.drop = drop
        self.loss = loss
        self.duplicate = duplicate
        self.jitter = jitter
        self.rng = random.Random(seed)
        self._queue: list[_InFlight] = []
        self._order = itertools.count()
        self.log: list[tuple[float, int, Sent]] = []  # every segment sent, with its sender
        self.events: list[list[Event]] = [[], []]
        self.received: list[bytearray] = [bytearray(), bytearray()]
        #: Called after every input is processed (invariant checks).
        self.check: Callable[[], None] | None = None

    def collect(self) -> None:
        """Take every machine's outputs and events now."""
        for side, conn in enumerate(self.ends):
            for seg in drain(conn):
                self.log.append((self.now, side, seg))
                self._send(side, seg)
            for ev in events(conn):
                self.events[side].append(ev)
                if isinstance(ev, DataReceived):
                    self.received[side] += ev.data
        if self.check is not None:
            self.check()

    def _send(self, side: int, seg: Sent) -> None:
        if self.drop is not None and self.drop(side, seg):
            return
        if self.loss and self.rng.random() < self.loss:
            return
        copies = 2 if self.duplicate and self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            extra = self.rng.random() * self.jitter if self.jitter else 0.0
            heapq.heappush(
                self._queue,
                _InFlight(self.now + self.delay + extra, next(self._order), 1 - side, seg),
            )

    def _closed_port(self, side: int, s: Sent) -> None:
        """What the TCP layer does for a segment to a connection it no longer has
        (RFC 9293 3.10.7.1): a reset, never one for a reset."""
        if s.flags & RST:
            return
        if s.flags & ACK:
            rst = Sent(s.ack, 0, RST, 0, NO_OPTS, b"")
        else:
            rst = Sent(0, add(s.seq, s.seg_len), RST | ACK, 0, NO_OPTS, b"")
        self.log.append((self.now, side, rst))
        self._send(side, rst)

    def next_at(self) -> float | None:
        times = [c.poll_at() for c in self.ends]
        if self._queue:
            times.append(self._queue[0].at)
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def step(self) -> bool:
        """Advance to the next arrival or deadline and process it. False: nothing left."""
        self.collect()
        at = self.next_at()
        if at is None:
            return False
        self.now = max(self.now, at)
        while self._queue and self._queue[0].at <= self.now:
            item = heapq.heappop(self._queue)
            s = item.seg
            dst = self.ends[item.to]
            if dst.state is State.CLOSED:
                self._closed_port(item.to, s)
            else:
                dst.receive(
                    s.seq, s.ack, s.flags, s.window, s.options, s.payload, self.now, s.urgent
                )
            self.collect()
        for conn in self.ends:
            at = conn.poll_at()
            if at is not None and at <= self.now:
                conn.handle_timeout(self.now)
        self.collect()
        return True

    def run(self, until: float, limit: int = 200_000) -> None:
        """Run until ``until`` (simulated seconds) or nothing is left to do."""
        for _ in range(limit):
            self.collect()
            at = self.next_at()
            if at is None or at > until:
                break
            self.step()
        else:
            raise AssertionError("the simulation did not settle")
        self.collect()

    def run_until(self, cond: Callable[[], bool], until: float, limit: int = 200_000) -> None:
        for _ in range(limit):
            self.collect()
            if cond():
                return
            at = self.next_at()
            if at is None or at > until:
                break
            self.step()
        self.collect()

    def sent_by(self, side: int) -> list[Sent]:
        return [s for _, who, s in self.log if who == side]


def pair(
    config_a: TcpConfig | None = None,
    config_b: TcpConfig | None = None,
    *,
    mss_a: int = 1460,
    mss_b: int = 1460,
    lossy_handshake: bool = False,
    **wire_kw: object,
) -> Wire:
    """Two machines, A connecting to B (B accepting A's first SYN), handshake completed
    (over a perfect wire unless ``lossy_handshake``; the impairments apply afterwards)."""
    a = TcpConnection.connect(LOCAL, REMOTE, 0.0, TcpParams(ISS, mss_a, config_a or TcpConfig()))
    syn = drain(a)[0]
    b = TcpConnection.accept(
        REMOTE, LOCAL, syn.seq, syn.window, syn.options, 0.0,
        TcpParams(PEER_ISS, mss_b, config_b or TcpConfig()),
    )  # fmt: skip
    wire = Wire(a, b, **wire_kw)  # type: ignore[arg-type]
    saved = (wire.drop, wire.loss, wire.duplicate, wire.jitter)
    if not lossy_handshake:
        wire.drop, wire.loss, wire.duplicate, wire.jitter = None, 0.0, 0.0, 0.0
    wire.run_until(
        lambda: a.state is State.ESTABLISHED and b.state is State.ESTABLISHED, until=100.0
    )
    wire.drop, wire.loss, wire.duplicate, wire.jitter = saved
    assert a.state is State.ESTABLISHED and b.state is State.ESTABLISHED, (
        f"handshake: {a.state} {b.state} at {wire.now}: {wire.log}"
    )
    return wire
