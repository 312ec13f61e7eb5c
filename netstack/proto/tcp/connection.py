"""One TCP connection as a sans-IO machine (RFC 9293).

Inputs: segments (:meth:`TcpConnection.receive`), user calls (:meth:`send`, :meth:`shutdown`,
:meth:`close`, :meth:`abort`, :meth:`pause_reading`/:meth:`resume_reading`), ICMP errors
(:meth:`icmp_error`) and the time (:meth:`handle_timeout`). Outputs: segments
(:meth:`segments_to_send`), events (:meth:`next_event`) and the next deadline
(:meth:`poll_at`). ``now`` is passed in everywhere; nothing here sleeps, reads a clock or does
I/O.

What is implemented, by RFC:
- RFC 9293: the state machine of 3.3.2 with every transition of 3.10 (simultaneous open and
  close, half-close), the acceptability tests of 3.10.7.4, MSS (3.7.1), Nagle (3.7.4), silly
  window avoidance on both sides (3.8.6.2), zero-window probing (3.8.6.1), keep-alive (3.8.4),
  delayed acknowledgements (3.8.6.3: at most two full segments or 40 ms).
- RFC 6298 retransmission timer (Karn's rule, backoff, 200 ms minimum, 60 s maximum), its
  estimator in ``rtt.py``.
- RFC 5681 / RFC 6582 congestion control and NewReno fast recovery without SACK, with the
  restart window after an idle period (RFC 5681 4.1) and no growth beyond what rate-limited
  flights validate (RFC 7661; see congestion.py). With SACK (RFC 2018): RFC 6675 loss
  recovery driven by RACK-TLP loss detection (RFC 8985, in ``rack.py``) and paced by
  Proportional Rate Reduction (RFC 6937, ``prr.py``); spurious retransmissions detected by
  Eifel (RFC 3522) or D-SACK (RFC 3708) and undone (RFC 4015, ``undo.py``). As receiver:
  SACK blocks (kept with the out-of-order queue, ``reassembly.py``) and D-SACK blocks
  (RFC 2883).
- RFC 7323 window scaling, timestamps (RTT samples, PAWS).
- RFC 5961 blind RST, SYN and data-injection defences with challenge ACKs rate-limited per
  connection and stack-wide (7).
- RFC 1191 path MTU: an ICMP "fragmentation needed" lowers the MSS.
- RFC 9293 3.8.5 urgent data, in line as RFC 6093 recommends: the urgent pointer is tracked
  on receive and reported as an offset in the stream (:class:`UrgentDataReceived`,
  :attr:`TcpConnection.urgent_mark`); ``send(..., urgent=True)`` sets URG and the pointer.

The parts with state of their own are sans-IO types in their own modules, which this machine
drives: the RTT estimator (``rtt.py``), the send buffer (``sendbuf.py``), the out-of-order
queue with its SACK blocks (``reassembly.py``), the scoreboard with RACK-TLP (``rack.py``),
PRR (``prr.py``), undo (``undo.py``) and congestion control (``congestion.py``). On the
per-segment paths this machine reads their attributes directly (``_sndbuf.end``,
``_rtt.rto``, ``_reasm.blocks``, ``_rack.segments``) instead of calling methods for them.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from ..wire import fast_new
from .congestion import CongestionControl, make_controller
from .prr import Prr
from .rack import Rack, SentSegment, is_dsack
from .reassembly import DUPLICATE, FULL, Reassembly
from .rtt import RttEstimator
from .sendbuf import SendBuffer
from .seq import add, diff
from .undo import Undo
from .wire import Flags, TcpOptions, emit_options

__all__ = [
    "Connected",
    "ConnectionClosed",
    "ConnectionReset",
    "DataReceived",
    "EofReceived",
    "Segment",
    "State",
    "TcpConfig",
    "TcpConnection",
    "TcpParams",
    "UrgentDataReceived",
]

log = logging.getLogger("netstack.tcp")

MASK = 0xFFFFFFFF
#: Sequence-number distances inline (seq.py): diff(a, b) > 0 is 0 < ((a - b) & MASK) < _HALF,
#: diff(a, b) < 0 is ((a - b) & MASK) >= _HALF.
_HALF = 0x80000000
FIN, SYN, RST, PSH, ACK = Flags.FIN, Flags.SYN, Flags.RST, Flags.PSH, Flags.ACK
FIN_I, SYN_I, RST_I, PSH_I, ACK_I = int(FIN), int(SYN), int(RST), int(PSH), int(ACK)
URG_I = int(Flags.URG)

#: RFC 9293 3.7.1: the MSS a host assumes without the option (IPv4).
DEFAULT_MSS = 536
#: RFC 9293 3.7.1 / RFC 8200 8.3: the send MSS assumed over IPv6 without an MSS option.
DEFAULT_MSS6 = 1220
#: RFC 7323 2.3: the largest window scale.
MAX_WSCALE = 14
_NOP_NOP_TS = struct.Struct("!III")

#: Segments acknowledged at once at the start of a connection (Linux: TCP_MAX_QUICKACKS).
QUICKACKS = 16
#: RFC 5681 3.2: duplicate acknowledgements that signal a loss.
DUPTHRESH = 3


class State(Enum):
    """RFC 9293 3.3.2."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    # Members are singletons: identity hashes them as well as Enum's hash of the name does,
    # in C (the state sets below are asked on every segment).
    __hash__ = object.__hash__


S = State
# The states as module constants: on Python 3.11 every ``State.X`` goes through
# ``EnumType.__getattr__`` (a bound slot wrapper per access), and the machine compares states
# on every segment.
_CLOSED = State.CLOSED
_LISTEN = State.LISTEN
_SYN_SENT = State.SYN_SENT
_SYN_RECEIVED = State.SYN_RECEIVED
_ESTABLISHED = State.ESTABLISHED
_FIN_WAIT_1 = State.FIN_WAIT_1
_FIN_WAIT_2 = State.FIN_WAIT_2
_CLOSE_WAIT = State.CLOSE_WAIT
_CLOSING = State.CLOSING
_LAST_ACK = State.LAST_ACK
_TIME_WAIT = State.TIME_WAIT
#: The legal transitions (RFC 9293 Figure 5), plus the abort/reset/timeout exits to CLOSED.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.CLOSED: frozenset({S.SYN_SENT, S.SYN_RECEIVED}),
    S.LISTEN: frozenset({S.SYN_RECEIVED, S.SYN_SENT, S.CLOSED}),
    S.SYN_SENT: frozenset({S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSED}),
    S.SYN_RECEIVED: frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.CLOSE_WAIT, S.CLOSED}),
    S.ESTABLISHED: frozenset({S.FIN_WAIT_1, S.CLOSE_WAIT, S.CLOSED}),
    S.FIN_WAIT_1: frozenset({S.FIN_WAIT_2, S.CLOSING, S.TIME_WAIT, S.CLOSED}),
    S.FIN_WAIT_2: frozenset({S.TIME_WAIT, S.CLOSED}),
    S.CLOSE_WAIT: frozenset({S.LAST_ACK, S.CLOSED}),
    S.CLOSING: frozenset({S.TIME_WAIT, S.CLOSED}),
    S.LAST_ACK: frozenset({S.CLOSED}),
    S.TIME_WAIT: frozenset({S.CLOSED}),
}
SYNCHRONIZED = frozenset(
    {S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT}
)
#: States in which the user may still send (RFC 9293 3.10.2).
_CAN_SEND = frozenset({S.SYN_SENT, S.SYN_RECEIVED, S.ESTABLISHED, S.CLOSE_WAIT})
#: States in which received data is accepted (RFC 9293 3.10.7.4, seventh step).
_CAN_RECEIVE = frozenset({S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2})
_FIN_STATES = frozenset({S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK})
#: States whose send side may still put data or a FIN on the wire.
_SENDING = frozenset({S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.CLOSING, S.LAST_ACK})


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """Tunables of a connection; the defaults follow the RFCs and Linux."""

    #: Maximum segment lifetime; TIME-WAIT lasts 2 * MSL (RFC 9293 3.4.2).
    msl: float = 30.0
    #: How long an orphaned connection may sit in FIN-WAIT-2 (Linux tcp_fin_timeout).
    fin_wait_2_timeout: float = 60.0
    rto_initial: float = 1.0  # RFC 6298 2.1
    rto_min: float = 0.2  # Linux; RFC 6298 2.4 allows less than 1 s
    rto_max: float = 60.0  # RFC 6298 2.5
    #: Retransmissions of a SYN before giving up (Linux tcp_syn_retries).
    syn_retries: int = 6
    #: Retransmissions of data before giving up (Linux tcp_retries2).
    retries: int = 15
    delayed_ack: float = 0.04
    #: Bytes the receive side holds for the application (the largest window offered).
    recv_buffer: int = 1024 * 1024
    #: At most this many out-of-order segments are kept (each also within the window).
    max_ooo_segments: int = 256
    nodelay: bool = False
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    congestion: str = "newreno"
    #: RFC 5961 7: at most one challenge ACK per connection in this many seconds (Linux:
    #: tcp_invalid_ratelimit), before the stack-wide limit; 0 turns it off.
    challenge_ack_interval: float = 0.5


class Segment(NamedTuple):
    """A segment to send. ``payload`` is a view into the send buffer, valid until the next
    input to the machine."""

    seq: int
    ack: int
    flags: int
    window: int
    options: bytes = b""
    payload: bytes | bytearray | memoryview = b""
    #: The urgent pointer field (meaningful with URG in ``flags``).
    urgent: int = 0


_new_segment = fast_new(Segment, "seq ack flags window options payload urgent")

#: The out-of-order queue of every connection that has not needed one yet: always empty,
#: never written to (TcpConnection._reassembly() makes a connection its own).
_NO_REASSEMBLY = Reassembly(0)


# -- events ------------------------------------------------------------------------------------
class Connected(NamedTuple):
    """The handshake completed (ESTABLISHED)."""


class DataReceived(NamedTuple):
    """In-order data. ``data`` may be a view of the segment that brought it, valid until
    the machine's next input: whoever keeps it past that copies it (``bytes(data)``)."""

    data: bytes | memoryview


class EofReceived(NamedTuple):
    """The peer sent FIN: no more data will arrive."""


class ConnectionReset(NamedTuple):
    """The connection ended abnormally: reset, refused, timed out or unreachable."""

    error: OSError


class ConnectionClosed(NamedTuple):
    """Both directions finished normally; the user has nothing more to do."""


class UrgentDataReceived(NamedTuple):
    """The peer's urgent pointer arrived or advanced (RFC 9293 3.8.5, MUST-32): its urgent
    data ends just before ``mark``, an offset in the received stream (the number of bytes
    from its start). The urgent data itself stays in line, in the DataReceived events
    (RFC 6093), which may not have reached the mark yet."""

    mark: int


Event = (
    Connected | DataReceived | EofReceived | ConnectionReset | ConnectionClosed | UrgentDataReceived
)
#: The events without fields, made once (immutable, like every event).
_CONNECTED, _EOF_RECEIVED, _CONNECTION_CLOSED = Connected(), EofReceived(), ConnectionClosed()

ChallengeLimiter = Callable[[float], bool]


def _always(now: float) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class TcpParams:
    """What the owner of a new connection (the TCP layer) gives it, besides its addresses.

    Args:
        iss: the initial send sequence number (RFC 9293 3.4.1; RFC 6528 in isn.py).
        mss: the MSS this side offers: the path MTU less the IP and TCP headers.
        config: the tunables.
        ts_offset: the random offset of the timestamp clock (RFC 7323 5.4).
        challenge_limiter: the stack-wide budget of RFC 5961 7's challenge ACKs: called with
            ``now``, True when one may be sent.
    """

    iss: int
    mss: int
    config: TcpConfig = dataclasses.field(default_factory=TcpConfig)
    ts_offset: int = 0
    challenge_limiter: ChallengeLimiter = _always


class TcpConnection:
    """One connection. Create it with :meth:`connect` (active open) or :meth:`accept`
    (passive open from a SYN); drive it and drain its outputs after every input."""

    # Slots: an idle connection is mostly this object, and an instance dictionary of ~95
    # attributes costs 3.3 KB where slots cost 8 bytes each. ``__dict__`` stays for anything
    # else a driver or a test attaches.
    __slots__ = (
        "config", "local", "remote", "state", "_challenge_ok", "_challenge_at", "_out",
        "defer_acks", "ack_deferred", "gso_max", "_events", "iss", "snd_una", "snd_nxt", "snd_max",
        "snd_wnd", "snd_wl1", "snd_wl2", "max_snd_wnd", "_sndbuf", "_fin_queued", "_fin_seq",
        "_snd_up", "irs", "rcv_nxt", "_rcv_adv", "_reading", "_held", "_reasm", "_fin_received",
        "_rcv_total", "urgent_mark", "_after_held", "_user_closed", "mss_local", "mss",
        "_mss_base", "_peer_mss", "pmtu_mss", "rcv_wscale", "snd_wscale", "ts_ok", "sack_ok",
        "ts_recent", "_ts_recent_set", "_ts_offset", "_last_ack_sent", "_rtt", "_rto_at",
        "_retries", "_delack_at", "_ack_pending", "_ack_now", "_unacked_segments", "_quickacks",
        "_persist_at", "_persist_backoff", "_persist_probes", "_keepalive_at", "_keepalive_probes",
        "_close_at", "_last_activity", "_last_send", "_soft_error", "cc", "_dupacks",
        "_flight_at_dupack", "_in_recovery", "_recover", "_inflation", "_rack", "_prr", "_undo",
        "_rto_recovery", "_rack_at", "_probe_at", "_probe_mark", "_dsack", "_short_end",
        "retransmits", "timeouts", "fast_recoveries", "loss_probes", "undos", "dsacks_sent",
        "segments_in", "segments_out", "challenge_acks", "drops", "error", "key", "route",
        "listener", "user", "timer_at", "acks_merged", "__dict__",
    )  # fmt: skip

    def __init__(
        self, local: tuple[bytes, int], remote: tuple[bytes, int], params: TcpParams
    ) -> None:
        c = self.config = params.config
        iss = params.iss
        mss = params.mss
        self.local = local
        self.remote = remote
        self.state = _CLOSED
        self._challenge_ok = params.challenge_limiter
        self._challenge_at: float | None = None  # when the last challenge ACK was allowed
        self._out: list[Segment] = []
        #: Pure cumulative ACKs are only noted (ack_deferred) and built by
        #: take_deferred_ack, once per batch of input (the driver's choice).
        self.defer_acks = False
        self.ack_deferred = False
        #: How many of the peer's ACKs the one being processed stands for (the layer
        #: merges runs of plain cumulative ACKs: :meth:`TcpLayer.receive`).
        self.acks_merged = 1
        #: Bytes of payload one segment of a bulk burst may carry (the driver sets it when
        #: the link cuts super-segments itself, TSO): runs of full-sized segments then come
        #: out of segments_to_send() as one Segment of several MSS, to be sent with a
        #: segment size of ``mss``. 0: every segment is at most one MSS.
        self.gso_max = 0
        self._events: collections.deque[Event] = collections.deque()
        # -- send sequence space (RFC 9293 3.3.1) --
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss  # the highest sequence number sent so far
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.max_snd_wnd = 0
        #: Queued and unacknowledged bytes, from ISS + 1 on (sendbuf.py).
        self._sndbuf = SendBuffer(add(iss, 1))
        self._fin_queued = False
        self._fin_seq: int | None = None  # sequence number of our FIN, once queued
        self._snd_up: int | None = None  # SND.UP while urgent data is unacknowledged
        # -- receive sequence space --
        self.irs = 0
        self.rcv_nxt = 0
        self._rcv_adv = 0  # the right edge of the window we advertised
        self._reading = True
        self._held = bytearray()  # in-order data the paused application has not taken
        #: Out-of-order segments, their SACK blocks, a FIN beyond a hole (reassembly.py):
        #: the shared empty queue until the first segment beyond a hole (_reassembly()).
        self._reasm = _NO_REASSEMBLY
        self._fin_received = False
        self._rcv_total = 0  # in-order bytes received: the stream offset of RCV.NXT
        #: Stream offset of the end of the latest urgent data received (RFC 9293 RCV.UP).
        self.urgent_mark: int | None = None
        # Events that must wait until the paused application has taken the held data.
        self._after_held: list[Event] = []
        self._user_closed = False  # close() (not just shutdown()) was called
        # -- options --
        self.mss_local = mss  # what we offer: the MTU less IP and TCP headers
        default_mss = DEFAULT_MSS if len(remote[0]) != 16 else DEFAULT_MSS6
        self.mss = min(mss, default_mss)  # bytes of data per segment we send
        self._mss_base = self.mss  # the same, with room for the options counted back in
        self._peer_mss = default_mss
        self.pmtu_mss: int | None = None
        self.rcv_wscale = 0
        self.snd_wscale = 0
        self.ts_ok = False
        self.sack_ok = False
        self.ts_recent = 0
        self._ts_recent_set = False
        self._ts_offset = params.ts_offset
        self._last_ack_sent = 0
        # -- timers and retransmission --
        self._rtt = RttEstimator(c.rto_initial, c.rto_min, c.rto_max)
        self._rto_at: float | None = None
        self._retries = 0
        self._delack_at: float | None = None
        self._ack_pending = False
        self._ack_now = False
        self._unacked_segments = 0
        self._quickacks = QUICKACKS
        self._persist_at: float | None = None
        self._persist_backoff = 0
        self._persist_probes = 0  # unanswered window probes
        self._keepalive_at: float | None = None
        self._keepalive_probes = 0
        self._close_at: float | None = None  # TIME-WAIT end, or FIN-WAIT-2 timeout
        self._last_activity = 0.0
        self._last_send = 0.0  # when data last went out (RFC 5681 4.1's idle period)
        self._soft_error: OSError | None = None
        # -- congestion control and loss recovery --
        self.cc: CongestionControl = make_controller(c.congestion, self.mss)
        self._dupacks = 0
        self._flight_at_dupack = 0
        self._in_recovery = False
        self._recover = iss  # RFC 6582 "recover"; RFC 6675 RecoveryPoint
        self._inflation = 0  # NewReno's temporary window inflation during recovery
        #: The per-segment scoreboard and RACK-TLP state (SACK connections only).
        self._rack: Rack | None = None
        self._prr: Prr | None = None  # during a SACK fast recovery
        self._undo: Undo | None = None  # the last loss-recovery episode, until judged
        self._rto_recovery = False  # after a timeout, until SND.MAX of then is acknowledged
        self._rack_at: float | None = None  # RFC 8985 6.2 step 5: the reordering timer
        self._probe_at: float | None = None  # RFC 8985 7.2: the loss probe timeout
        self._probe_mark = (iss, iss)  # (SND.UNA, SND.MAX) when the PTO was last armed
        self._dsack: tuple[int, int] | None = None  # RFC 2883: a duplicate to report once
        self._short_end = iss  # the end of the last small segment sent (Nagle/Minshall)
        # -- statistics --
        self.retransmits = 0
        self.timeouts = 0  # retransmission timeouts (RFC 6298 5.4)
        self.fast_recoveries = 0
        self.loss_probes = 0  # RFC 8985 7 tail loss probes sent
        self.undos = 0  # loss responses undone as spurious
        self.dsacks_sent = 0
        self.segments_in = 0
        self.segments_out = 0
        self.challenge_acks = 0
        self.drops: dict[str, int] = {}
        self.error: OSError | None = None
        # Bookkeeping for the owners of this machine (the TCP layer and the driver).
        self.key: tuple[bytes, int, bytes, int] | None = None
        self.route: Any = None
        self.listener: Any = None
        self.user: Any = None
        self.timer_at: float | None = None

    # == opening ==================================================================================
    @classmethod
    def connect(
        cls, local: tuple[bytes, int], remote: tuple[bytes, int], now: float, params: TcpParams
    ) -> TcpConnection:
        """An active open: the connection starts in SYN-SENT with its SYN queued."""
        conn = cls(local, remote, params)
        conn._last_activity = now
        conn._set_state(_SYN_SENT)
        conn._send_syn(now)
        return conn

    @classmethod
    def accept(
        cls,
        local: tuple[bytes, int],
        remote: tuple[bytes, int],
        seq: int,
        window: int,
        options: TcpOptions,
        now: float,
        params: TcpParams,
    ) -> TcpConnection:
        """A passive open from a SYN (RFC 9293 3.10.7.2, LISTEN, third check): SYN-RECEIVED
        with the SYN-ACK queued."""
        conn = cls(local, remote, params)
        conn._last_activity = now
        conn.irs = seq
        conn.rcv_nxt = add(seq, 1)
        conn._negotiate(options, syn_ack=False)
        conn.snd_wnd = window  # never scaled in a SYN (RFC 7323 2.2)
        conn.max_snd_wnd = window
        conn.snd_wl1 = seq
        conn._set_state(_SYN_RECEIVED)
        conn._send_syn(now)
        return conn

    @classmethod
    def from_cookie(
        cls,
        local: tuple[bytes, int],
        remote: tuple[bytes, int],
        params: TcpParams,
        *,
        irs: int,
        peer_mss: int,
        window: int,
        now: float,
        peer_wscale: int | None = None,
        sack: bool = False,
        ts_recent: int | None = None,
    ) -> TcpConnection:
        """A connection completed by a valid SYN cookie: ESTABLISHED at once, with the
        options the cookie kept (isn.py: window scaling and SACK when the SYN had
        timestamps; ``ts_recent`` is the completing ACK's timestamp value, None without
        timestamps). ``params.iss`` is the ISS the cookie encoded."""
        config = params.config
        config = dataclasses.replace(
            config,
            window_scaling=config.window_scaling and peer_wscale is not None,
            sack=config.sack and sack,
            timestamps=config.timestamps and ts_recent is not None,
        )
        conn = cls(local, remote, dataclasses.replace(params, config=config))
        iss = params.iss
        conn._last_activity = now
        conn.irs = irs
        conn.rcv_nxt = add(irs, 1)
        c = conn.config
        if c.window_scaling and peer_wscale is not None:
            # RFC 7323 2.2: both SYNs carried the option (ours said _our_wscale()).
            conn.snd_wscale = min(peer_wscale, MAX_WSCALE)
            conn.rcv_wscale = conn._our_wscale()
        conn.sack_ok = c.sack
        if c.timestamps and ts_recent is not None:
            conn.ts_ok = True
            conn.ts_recent = ts_recent
            conn._ts_recent_set = True
        conn._rcv_adv = add(conn.rcv_nxt, min(c.recv_buffer, 0xFFFF))  # as the SYN-ACK offered
        conn._peer_mss = peer_mss
        conn._update_mss()
        conn.snd_una = conn.snd_nxt = conn.snd_max = add(iss, 1)
        # The completing ACK's window is scaled (RFC 7323 2.2: only SYNs are not).
        conn.snd_wnd = conn.max_snd_wnd = window << conn.snd_wscale
        conn.snd_wl1 = conn.rcv_nxt
        conn.snd_wl2 = conn.snd_una
        conn._set_state(_SYN_RECEIVED)
        conn._established(now)
        return conn

    def _negotiate(self, opts: TcpOptions, *, syn_ack: bool) -> None:
        c = self.config
        if opts.mss is not None and opts.mss > 0:
            self._peer_mss = opts.mss
        # RFC 7323 2.2: scaling only when both SYNs carry the option; shift at most 14.
        if c.window_scaling and opts.wscale is not None:
            self.snd_wscale = min(opts.wscale, MAX_WSCALE)
            self.rcv_wscale = self._our_wscale()
        else:
            self.snd_wscale = self.rcv_wscale = 0
        # RFC 7323 3.2: timestamps only when both SYNs carry them.
        self.ts_ok = c.timestamps and opts.ts_val is not None
        if self.ts_ok and opts.ts_val is not None:
            self.ts_recent = opts.ts_val
            self._ts_recent_set = True
        self.sack_ok = c.sack and opts.sack_permitted
        self._update_mss()

    def _our_wscale(self) -> int:
        return self.window_shift(self.config.recv_buffer)

    @staticmethod
    def window_shift(recv_buffer: int) -> int:
        """RFC 7323 2.3: the smallest shift that lets the window field offer the buffer
        (``recv_buffer >> shift`` within 16 bits), at most 14."""
        shift = recv_buffer.bit_length() - 16
        return 0 if shift < 0 else MAX_WSCALE if shift > MAX_WSCALE else shift

    def _update_mss(self) -> None:
        # RFC 9293 3.7.1: Eff.snd.MSS = min(SendMSS + 20, MMS_S) - TCPhdrsize - IPoptionsize,
        # where the TCP header includes the options every segment carries (timestamps).
        mss = min(self._peer_mss, self.mss_local)
        if self.pmtu_mss is not None:
            mss = min(mss, self.pmtu_mss)
        if self.ts_ok:
            mss -= 12
        mss = max(mss, 64)
        # Data per segment: the MSS less the options every segment carries (RFC 9293 3.7.1);
        # a segment with SACK blocks too carries less (_emit_data).
        self._mss_base = mss + (12 if self.ts_ok else 0)
        if mss != self.mss:
            self.mss = mss
            self.cc.on_mss_change(mss)
            if self._rack is not None:
                self._rack.mss = mss

    def _send_syn(self, now: float) -> None:
        c = self.config
        wscale = self._our_wscale() if c.window_scaling else None
        if self.state is _SYN_RECEIVED:
            # Answer with the options the peer offered (RFC 7323 2.2 / 3.2, RFC 2018 2).
            opts = emit_options(
                mss=self.mss_local,
                wscale=self.rcv_wscale if self.snd_wscale or self.rcv_wscale else None,
                sack_permitted=self.sack_ok,
                timestamp=(self._ts_now(now), self.ts_recent) if self.ts_ok else None,
            )
            flags = SYN_I | ACK_I
            ack = self.rcv_nxt
        else:
            opts = emit_options(
                mss=self.mss_local,
                wscale=wscale,
                sack_permitted=c.sack,
                timestamp=(self._ts_now(now), 0) if c.timestamps else None,
            )
            flags = SYN_I
            ack = 0
        window = min(c.recv_buffer, 0xFFFF)
        self._rcv_adv = add(self.rcv_nxt, window)
        if self.retransmits == 0 and not self.ts_ok:
            # RFC 6298 2.2: the handshake gives the first sample. Time the first SYN (Karn)
            # unless timestamps were negotiated: configured is not enough, the peer may not
            # offer them (in SYN-SENT nothing is negotiated yet; the SYN-ACK decides).
            rtt = self._rtt
            rtt.timed_seq, rtt.timed_at = self.iss, now
        self._emit(Segment(self.iss, ack, flags, window, opts))
        self.snd_nxt = add(self.iss, 1)
        if diff(self.snd_nxt, self.snd_max) > 0:
            self.snd_max = self.snd_nxt
        if self._rto_at is None:
            self._rto_at = now + self._rtt.rto

    # == state ====================================================================================
    def _set_state(self, new: State) -> None:
        old = self.state
        if new is old:
            return
        if new not in TRANSITIONS[old]:
            raise RuntimeError(f"illegal TCP transition {old.value} -> {new.value}")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s -> %s", self._name(), old.value, new.value)
        self.state = new

    def _name(self) -> str:
        (lip, lport), (rip, rport) = self.local, self.remote
        return f"{'.'.join(map(str, lip))}:{lport}->{'.'.join(map(str, rip))}:{rport}"

    def _drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1

    @property
    def is_closed(self) -> bool:
        return self.state is _CLOSED

    # The RFC 6298 estimator's state, for readers (the machine reads self._rtt).
    @property
    def srtt(self) -> float | None:
        """The smoothed round-trip time (seconds), None before the first sample."""
        return self._rtt.srtt

    @property
    def rttvar(self) -> float:
        """The round-trip time variation (seconds)."""
        return self._rtt.rttvar

    @property
    def rto(self) -> float:
        """The retransmission timeout (seconds), backed off after timeouts."""
        return self._rtt.rto

    # == outputs ==================================================================================
    def segments_to_send(self) -> list[Segment]:
        out = self._out
        if out:
            self._out = []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def keep_events(self) -> None:
        """Copy the data of the events not yet taken out of the segments they view, for a
        driver that leaves them queued past the input that made them."""
        events = self._events
        for i, event in enumerate(events):
            if type(event) is DataReceived and type(event.data) is not bytes:
                events[i] = DataReceived(bytes(event.data))

    def _emit(self, seg: Segment) -> None:
        self._out.append(seg)
        self.segments_out += 1
        if seg.flags & ACK_I:
            self._last_ack_sent = seg.ack
            self._ack_pending = False
            self._ack_now = False
            self._unacked_segments = 0
            self._delack_at = None
            self.ack_deferred = False  # this segment carries the newer acknowledgement

    def take_deferred_ack(self, now: float) -> Segment | None:
        """The pure ACK that :attr:`defer_acks` held back, built now (with the newest
        RCV.NXT, window and timestamp), or None when another segment carried it since."""
        if not self.ack_deferred:
            return None
        self.ack_deferred = False
        if self.state is _CLOSED:
            return None
        seg = self._segment(self.snd_max, 0, now)
        self._emit(seg)
        self._out.remove(seg)
        return seg

    def _ts_now(self, now: float) -> int:
        # RFC 7323 5.4: a timestamp clock of 1 ms with a random offset per connection.
        return (int(now * 1000) + self._ts_offset) & MASK

    def _window_to_advertise(self) -> int:
        """RFC 9293 3.8.6.2.2 (receiver silly-window avoidance) and 3.8.6.2.2's rule against
        shrinking the window: the right edge never moves left."""
        recv_buffer = self.config.recv_buffer
        free = recv_buffer - len(self._held)
        if free < 0:
            free = 0
        offered = (self._rcv_adv - self.rcv_nxt) & MASK  # diff(), inline
        if offered >= _HALF:
            offered = 0
        if free - offered >= min(recv_buffer // 2, self.mss_local):
            offered = free
        return offered

    def _options(self, now: float) -> bytes:
        if not self.ts_ok:
            if (self._reasm.blocks or self._dsack) and self.sack_ok:
                return emit_options(sack=self._sack_tuple(4))
            return b""
        ts = ((int(now * 1000) + self._ts_offset) & MASK, self.ts_recent)  # _ts_now(), inline
        if (self._reasm.blocks or self._dsack) and self.sack_ok:
            return emit_options(timestamp=ts, sack=self._sack_tuple(3))
        return _NOP_NOP_TS.pack(0x0101080A, ts[0], ts[1])

    def _sack_tuple(self, n: int) -> tuple[tuple[int, int], ...]:
        blocks = [(a, b) for a, b in self._reasm.blocks[:n]]
        dsack = self._dsack
        if dsack is not None:
            # RFC 2883 4: the D-SACK block goes first, reported once; the block that holds
            # it (if any) follows as the second.
            self._dsack = None
            self.dsacks_sent += 1
            blocks.sort(key=lambda b: diff(dsack[0], b[0]) < 0 or diff(dsack[1], b[1]) > 0)
            blocks = [dsack, *blocks[: n - 1]]
        return tuple(blocks)

    def _note_duplicate(self, seq: int, n: int) -> None:
        """RFC 2883 4: data that arrived before is reported in a D-SACK block, at once."""
        if not self.sack_ok or n <= 0:
            return
        end = add(seq, n)
        if diff(end, self.rcv_nxt) > 0 and diff(seq, self.rcv_nxt) < 0:
            end = self.rcv_nxt  # only the part below RCV.NXT is a duplicate
        self._dsack = (seq, end)
        self._ack_now = True

    def _segment(
        self, seq: int, flags: int, now: float, payload: bytes | bytearray | memoryview = b""
    ) -> Segment:
        edge = self._advertisable_edge()
        adv = self._rcv_adv
        if 0 < ((edge - adv) & MASK) < _HALF:
            adv = self._rcv_adv = edge
        offered = (adv - self.rcv_nxt) & MASK
        scaled = offered >> self.rcv_wscale if offered < _HALF else 0
        if self._snd_up is not None:
            up = diff(self._snd_up, seq)
            if up > 0:
                # RFC 9293 3.8.5 / 3.1: URG and the offset of the octet following the urgent
                # data, on every segment before it. The field has 16 bits: from farther away,
                # 0xFFFF says urgent data is coming only where that points past what was
                # sent, so no mark ever falls inside data that is not urgent (as Linux).
                if up <= 0xFFFF:
                    return Segment(seq, self.rcv_nxt, flags | ACK_I | URG_I, scaled,
                                   self._options(now), payload, up)  # fmt: skip
                if diff(add(seq, 0xFFFF), self.snd_max) > 0:
                    return Segment(seq, self.rcv_nxt, flags | ACK_I | URG_I, scaled,
                                   self._options(now), payload, 0xFFFF)  # fmt: skip
        return Segment(seq, self.rcv_nxt, flags | ACK_I, scaled, self._options(now), payload)

    def _send_ack(self, now: float) -> None:
        # SND.MAX, not SND.NXT (as BSD does): after a timeout rewinds SND.NXT, an ACK with
        # an old sequence number would fall left of the peer's window and be answered with
        # another ACK, for ever.
        if self.defer_acks and not self._reasm.segments and self._dsack is None:
            # A plain cumulative ACK, while the driver answers a batch of segments with one:
            # only noted here, built once at the end of the batch (take_deferred_ack). ACKs
            # about out-of-order data (duplicates, SACK) go at once: the sender counts them.
            self.ack_deferred = True
            self._last_ack_sent = self.rcv_nxt
            self._ack_pending = False
            self._ack_now = False
            self._unacked_segments = 0
            self._delack_at = None
            return
        self._emit(self._segment(self.snd_max, 0, now))

    # Resets of our own carry SND.MAX, for the reason _send_ack gives: after a timeout
    # SND.NXT may lie left of the peer's window, where RFC 5961 3.2 drops a reset.
    def _send_rst(self, seq: int) -> None:
        self._emit(Segment(seq, 0, RST_I, 0))

    # == user calls ===============================================================================
    def send(
        self, data: bytes | bytearray | memoryview, now: float, *, urgent: bool = False
    ) -> None:
        """Queue data (RFC 9293 3.10.2 SEND).

        Args:
            urgent: the data is urgent (RFC 9293 3.8.5): SND.UP moves to its end, and every
                segment before that carries URG and the pointer. It stays in line.

        Raises:
            ConnectionError: the send side is closed (after shutdown/close) or the connection
                is gone.
            ValueError: urgent with no data (there must be at least one urgent octet).
        """
        if self._fin_queued or self.state not in _CAN_SEND:
            if self.error is not None:
                raise self.error
            raise BrokenPipeError(errno.EPIPE, "the connection's send side is closed")
        if not data:
            if urgent:
                raise ValueError("urgent data needs at least one byte")
            return
        self._sndbuf.append(data)
        if urgent:
            self._snd_up = self._sndbuf.end
        self._last_activity = now
        self._push(now)

    @property
    def unsent(self) -> int:
        """Bytes queued and not yet sent once."""
        return max(0, diff(self._sndbuf.end, self.snd_max))

    @property
    def reassembling(self) -> bool:
        """Out-of-order data is waiting for a hole to fill."""
        return bool(self._reasm.segments)

    @property
    def buffered(self) -> int:
        """Bytes in the send buffer: unsent, and sent but unacknowledged."""
        return len(self._sndbuf)

    def shutdown(self, now: float) -> None:
        """Send FIN after the queued data; reading goes on (the half-close of write_eof)."""
        if self._fin_queued or self.state in (_CLOSED, _LISTEN):
            return
        self._fin_queued = True
        self._fin_seq = self._sndbuf.end
        if self.state in (_SYN_SENT, _SYN_RECEIVED):
            return  # RFC 9293 3.10.4: the FIN waits for ESTABLISHED
        if self.state is _ESTABLISHED:
            self._set_state(_FIN_WAIT_1)
        elif self.state is _CLOSE_WAIT:
            self._set_state(_LAST_ACK)
        self._push(now)

    def close(self, now: float) -> None:
        """RFC 9293 3.10.4 CLOSE: no more sending or receiving by the user. Unread data or
        data arriving later resets the connection (RFC 2525 2.17, as Linux does)."""
        if self.state in (_CLOSED, _LISTEN):
            return
        self._user_closed = True
        if self.state is _SYN_SENT:
            self._terminate(None)
            return
        if self._held:
            # The application will never read this: say so with a reset.
            self.abort(now)
            return
        self.shutdown(now)
        if self.state is _FIN_WAIT_2:
            self._close_at = now + self.config.fin_wait_2_timeout

    def abort(self, now: float) -> None:
        """RFC 9293 3.10.5 ABORT: send a reset (when synchronized) and forget everything."""
        if self.state in (_CLOSED, _LISTEN):
            return
        if self.state in SYNCHRONIZED or self.state is _SYN_RECEIVED:
            if self.state is not _TIME_WAIT:
                self._emit(Segment(self.snd_max, 0, RST_I, 0))
        self._terminate(None)

    @property
    def holds_input(self) -> bool:
        """Whether received data or events are held while reading is paused."""
        return bool(self._held or self._after_held)

    def pause_reading(self) -> None:
        """Hold received data instead of delivering it; the window closes as it fills."""
        self._reading = False

    def resume_reading(self, now: float) -> None:
        """Deliver what was held and reopen the window (with an update if it grew enough)."""
        if self._reading:
            return
        self._reading = True
        if self._held:
            data = bytes(self._held)
            self._held.clear()
            self._events.append(DataReceived(data))
        if self._after_held:
            self._events.extend(self._after_held)
            self._after_held.clear()
        if self.state in _CAN_RECEIVE or self.state is _CLOSE_WAIT:
            if diff(self._advertisable_edge(), self._rcv_adv) > 0:
                self._send_ack(now)

    #: The options a user may change on an open connection (what ``setsockopt`` reaches).
    OPTIONS = frozenset(
        {"nodelay", "keepalive", "keepalive_idle", "keepalive_interval", "keepalive_count"}
    )

    def set_options(self, now: float, **changes: Any) -> None:
        """Change options of this connection alone (``TCP_NODELAY``, ``SO_KEEPALIVE``,
        ``TCP_KEEPIDLE``, ``TCP_KEEPINTVL``, ``TCP_KEEPCNT``), as ``setsockopt`` does.

        Turning Nagle off sends what it was holding back, as Linux does. Keep-alive
        (RFC 9293 3.8.4, RFC 1122 4.2.3.6) starts counting the idle time from now; turning
        it off stops the probes.

        Raises:
            TypeError: an option not in :attr:`OPTIONS`.
            ValueError: a time that is not positive, or fewer than one probe.
        """
        unknown = set(changes) - self.OPTIONS
        if unknown:
            raise TypeError(f"not a connection option: {', '.join(sorted(unknown))}")
        for name in ("keepalive_idle", "keepalive_interval"):
            if name in changes and not changes[name] > 0:
                raise ValueError(f"{name} must be positive, got {changes[name]!r}")
        count = changes.get("keepalive_count", 1)
        if count < 1:
            raise ValueError(f"keepalive_count must be at least 1, got {count!r}")
        old = self.config
        self.config = new = dataclasses.replace(old, **changes)
        if not new.keepalive:
            self._keepalive_at = None
            self._keepalive_probes = 0
        elif self.state in SYNCHRONIZED and self.state is not _TIME_WAIT:
            if not old.keepalive or new.keepalive_idle != old.keepalive_idle:
                self._keepalive_probes = 0
                self._keepalive_at = now + new.keepalive_idle
        if new.nodelay and not old.nodelay and self.state in _SENDING:
            self._push(now)

    # == segment arrival (RFC 9293 3.10.7) ========================================================
    def receive(
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        opts: TcpOptions,
        payload: memoryview | bytes,
        now: float,
        urgent: int = 0,
    ) -> None:
        """Process one segment addressed to this connection (``urgent``: its urgent pointer
        field, meaningful with URG)."""
        self.segments_in += 1
        state = self.state
        if state is _ESTABLISHED and not flags & (SYN_I | RST_I | FIN_I | URG_I) and flags & ACK_I:
            self._receive_established(seq, ack, flags, window, opts, payload, now)
        elif state is _SYN_SENT:
            self._receive_syn_sent(seq, ack, flags, window, opts, now)
        elif state is _CLOSED or state is _LISTEN:
            self._drop("closed")
        else:
            self._receive_synchronized(seq, ack, flags, window, opts, payload, now, urgent)
        self._push(now)
        if self._ack_pending and self._delack_at is None:  # _schedule_ack(), inline
            self._delack_at = now + self.config.delayed_ack

    def _receive_syn_sent(
        self, seq: int, ack: int, flags: int, window: int, opts: TcpOptions, now: float
    ) -> None:
        # RFC 9293 3.10.7.3, first check: the ACK.
        if flags & ACK_I:
            if diff(ack, self.iss) <= 0 or diff(ack, self.snd_max) > 0:
                if not flags & RST_I:
                    self._send_rst(ack)
                self._drop("bad_ack")
                return
        # Second check: RST (acceptable only with an acceptable ACK, RFC 5961 3.2).
        if flags & RST_I:
            if flags & ACK_I:
                self._terminate(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
            else:
                self._drop("rst_without_ack")
            return
        # Fourth check: SYN.
        if not flags & SYN_I:
            self._drop("no_syn")
            return
        self.irs = seq
        self.rcv_nxt = add(seq, 1)
        self._rcv_adv = add(self.rcv_nxt, min(self.config.recv_buffer, 0xFFFF))
        self._negotiate(opts, syn_ack=True)
        if flags & ACK_I:
            self.snd_una = ack
            self._rto_at = None
            self._retries = 0
            rtt = self._rtt
            if self.ts_ok:
                # Negotiated: the echo is the sample (RFC 7323 4.1).
                if opts.ts_ecr:
                    rtt.on_echo(opts.ts_ecr, self._ts_now(now), now)
                rtt.timed_seq = None
            elif rtt.timed_seq is not None:
                rtt.sample(rtt.timed_at, now)
        self.snd_wnd = window  # unscaled in a SYN
        self.max_snd_wnd = max(self.max_snd_wnd, window)
        self.snd_wl1 = seq
        self.snd_wl2 = ack
        if flags & ACK_I and diff(self.snd_una, self.iss) > 0:
            self._established(now)
            self._ack_now = True
            if self._fin_queued:
                self._set_state(_FIN_WAIT_1)
        else:
            # Simultaneous open (RFC 9293 3.5, Figure 8).
            self._set_state(_SYN_RECEIVED)
            self._send_syn(now)

    def _established(self, now: float) -> None:
        self._set_state(_ESTABLISHED)
        self.cc = make_controller(self.config.congestion, self.mss)
        self._last_send = now
        self._recover = self.snd_una
        # RFC 8985 needs SACK: without it, RFC 6582's duplicate acknowledgements decide.
        self._rack = Rack(self.mss) if self.sack_ok else None
        self._probe_mark = (self.snd_una, self.snd_max)
        if self.config.keepalive:
            self._keepalive_at = now + self.config.keepalive_idle
        self._events.append(_CONNECTED)

    def _acceptable(self, seq: int, length: int) -> bool:
        """RFC 9293 3.10.7.4, first check: the segment's acceptability test."""
        rcv_nxt = self.rcv_nxt
        wnd = (self._rcv_adv - rcv_nxt) & MASK  # diff(), inline
        if wnd >= _HALF:
            wnd = 0
        start = ((seq - rcv_nxt + _HALF) & MASK) - _HALF
        if length == 0:
            if wnd == 0:
                return start == 0
            return 0 <= start < wnd
        if wnd == 0:
            return False
        end = start + length - 1
        return (0 <= start < wnd) or (0 <= end < wnd)

    def _paws_reject(self, opts: TcpOptions, flags: int, now: float) -> bool:
        """RFC 7323 5.3: reject a segment whose timestamp is older than TS.Recent."""
        if not self.ts_ok or opts.ts_val is None or flags & RST_I or not self._ts_recent_set:
            return False
        if diff(opts.ts_val, self.ts_recent) < 0:
            return True
        return False

    def _receive_synchronized(
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        opts: TcpOptions,
        payload: memoryview | bytes,
        now: float,
        urgent: int = 0,
    ) -> None:
        length = len(payload) + (1 if flags & SYN_I else 0) + (1 if flags & FIN_I else 0)
        if flags & SYN_I:
            if flags & RST_I == 0 and self.state is _SYN_RECEIVED and seq == self.irs:
                self._syn_in_syn_received(ack, flags, window, now)
                return
            # RFC 5961 4.2 (RFC 9293 3.10.7.4, fourth check): a SYN in a synchronized state,
            # "irrespective of the sequence number", draws a challenge ACK and is dropped.
            # Any SYN: with FIN, or with RST (a reset by the exact sequence number would
            # not need the SYN; Linux also takes SYN+RST as a SYN). Before the timestamp
            # checks, whose silent drop (RFC 7323 3.2, a SHOULD) does not override the MUST.
            self._challenge_ack(now)
            return
        if flags & FIN_I and self.state is _TIME_WAIT and add(seq, length) == self.rcv_nxt:
            # RFC 9293 3.10.7.4, eighth check, TIME-WAIT: the peer's FIN again (our last ACK
            # was lost): acknowledge it and restart the 2 MSL timeout.
            self._ack_now = True
            self._close_at = now + 2 * self.config.msl
            return
        if self.ts_ok and opts.ts_val is None and not flags & RST_I:
            # RFC 7323 3.2: once negotiated, a segment without timestamps is dropped.
            self._drop("missing_timestamp")
            return
        if self._paws_reject(opts, flags, now):
            self._drop("paws")
            self._ack_now = True
            return
        # First check: sequence number.
        if not self._acceptable(seq, length):
            self._drop("out_of_window")
            if not flags & RST_I:
                self._ack_now = True  # RFC 9293: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
                if payload and diff(add(seq, len(payload)), self.rcv_nxt) <= 0:
                    self._note_duplicate(seq, len(payload))
            return
        # Second check: RST (RFC 5961 3.2).
        if flags & RST_I:
            if seq == self.rcv_nxt:
                self._reset_received()
            else:
                self._challenge_ack(now)
            return
        # Fourth check, a SYN: answered above (RFC 5961 4.2). Fifth check: ACK.
        if not flags & ACK_I:
            self._drop("no_ack")
            return
        if self.state is _SYN_RECEIVED:
            if diff(ack, self.snd_una) > 0 and diff(ack, self.snd_max) <= 0:
                self.snd_wnd = window << self.snd_wscale
                self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
                self.snd_wl1 = seq
                self.snd_wl2 = ack
                self._established(now)
                if self._fin_queued:
                    self._set_state(_FIN_WAIT_1)
            else:
                self._send_rst(ack)
                self._drop("bad_ack")
                return
        if not self._process_ack(seq, ack, window, opts, now, length):
            return
        # Update TS.Recent (RFC 7323 4.3): the segment covers Last.ACK.sent.
        if self.ts_ok and opts.ts_val is not None:
            if (
                diff(seq, self._last_ack_sent) <= 0
                and diff(add(seq, max(length, 1)), self._last_ack_sent) > 0
            ):
                self.ts_recent = opts.ts_val
                self._ts_recent_set = True
        # Sixth check: the URG bit (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2; ignored after a FIN).
        if flags & URG_I and self.state in _CAN_RECEIVE:
            self._urgent_pointer(add(seq, urgent))
        # Seventh check: the segment text.
        if payload:
            self._receive_data(seq, payload, now)
        # Eighth check: FIN.
        if flags & FIN_I:
            fin_seq = add(seq, len(payload))
            if fin_seq == self.rcv_nxt and not self._fin_received:
                self._receive_fin(now)
            elif self._fin_received and diff(fin_seq, self.rcv_nxt) < 0:
                self._ack_now = True  # a retransmitted FIN
                if self.state is _TIME_WAIT:
                    self._close_at = now + 2 * self.config.msl
            else:
                # A FIN beyond a hole: keep it with the out-of-order data.
                self._reassembly().fin = fin_seq
                self._ack_now = True

    def _urgent_pointer(self, up: int) -> None:
        """RFC 9293 3.10.7.4, sixth check: RCV.UP <- max(RCV.UP, SEG.UP), and tell the user
        when it advances beyond what the user was given (MUST-32). Kept as a stream offset,
        which never wraps. A pointer beyond the window offered is invalid (3.8.5: be robust
        to those): nothing could have been sent there."""
        if diff(up, self._rcv_adv) > 0:
            return
        mark = self._rcv_total + diff(up, self.rcv_nxt)
        if mark <= self._rcv_total - len(self._held):
            return  # within data the user has already been given
        if self.urgent_mark is not None and mark <= self.urgent_mark:
            return  # the same urgent data, already told
        self.urgent_mark = mark
        self._events.append(UrgentDataReceived(mark))

    def _syn_in_syn_received(self, ack: int, flags: int, window: int, now: float) -> None:
        """The peer's SYN again, in SYN-RECEIVED (it falls just left of the window)."""
        if not flags & ACK_I:
            # Our SYN-ACK was lost: repeat it, which is what lets the peer's handshake finish
            # (Linux: tcp_check_req).
            self._send_syn(now)
            return
        # Simultaneous open, RFC 9293 Figure 8 line 6: the crossing SYN-ACK acknowledges our
        # SYN, which completes the handshake.
        if diff(ack, self.snd_una) > 0 and diff(ack, self.snd_max) <= 0:
            self.snd_una = ack
            self._rto_at = None
            self._retries = 0
            self.snd_wnd = window  # never scaled in a SYN (RFC 7323 2.2)
            self.max_snd_wnd = max(self.max_snd_wnd, self.snd_wnd)
            self.snd_wl1 = self.irs
            self.snd_wl2 = ack
            self._established(now)
            if self._fin_queued:
                self._set_state(_FIN_WAIT_1)
        else:
            self._ack_now = True

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 7: challenge ACKs, rate-limited per connection, then for the whole stack.
        A stack-wide budget alone is a side channel (CVE-2016-5696): an off-path attacker
        counts the challenge ACKs its own connection can still draw to learn whether its
        spoofed segments hit another connection's window. With one challenge ACK per
        connection per interval, a flood into one connection spends almost none of the
        shared budget, and the attacker cannot drain it through its own connection either."""
        last = self._challenge_at
        if last is not None and 0.0 <= now - last < self.config.challenge_ack_interval:
            self._drop("challenge_ack_conn_limited")
            return
        self._challenge_at = now
        if self._challenge_ok(now):
            self.challenge_acks += 1
            self._send_ack(now)
        else:
            self._drop("challenge_ack_limited")

    def _reset_received(self) -> None:
        state = self.state
        if state is _SYN_RECEIVED:
            self._terminate(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
        elif state in (_CLOSING, _LAST_ACK, _TIME_WAIT):
            self._terminate(None)
        else:
            self._terminate(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))

    # -- the fast path ----------------------------------------------------------------------------
    def _receive_established(
        self,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        opts: TcpOptions,
        payload: memoryview | bytes,
        now: float,
    ) -> None:
        """ESTABLISHED, ACK set, no SYN/RST/FIN: the common case, same checks in order."""
        n = len(payload)
        if self.ts_ok:
            ts_val = opts.ts_val
            if ts_val is None:
                self._drop("missing_timestamp")
                return
            if self._ts_recent_set and diff(ts_val, self.ts_recent) < 0:
                self._drop("paws")
                self._ack_now = True
                return
        if seq != self.rcv_nxt and not self._acceptable(seq, n):
            self._drop("out_of_window")
            self._ack_now = True
            if n and diff(add(seq, n), self.rcv_nxt) <= 0:
                self._note_duplicate(seq, n)
            return
        if not self._process_ack(seq, ack, window, opts, now, n):
            return
        if self.ts_ok and opts.ts_val is not None:
            if (
                diff(seq, self._last_ack_sent) <= 0
                and diff(add(seq, max(n, 1)), self._last_ack_sent) > 0
            ):
                self.ts_recent = opts.ts_val
                self._ts_recent_set = True
        if n:
            self._receive_data(seq, payload, now)

    # -- acknowledgements -------------------------------------------------------------------------
    def _process_ack(
        self, seq: int, ack: int, window: int, opts: TcpOptions, now: float, data_len: int
    ) -> bool:
        """RFC 9293 3.10.7.4, fifth check, for the synchronized states. False: stop here."""
        snd_una = self.snd_una
        # RFC 5961 5.2: an ACK older than what the peer could have seen, or newer than what
        # we sent, is answered with an ACK and dropped. (The diff()s of this method inline:
        # it runs for every segment.)
        if 0 < ((ack - self.snd_max) & MASK) < _HALF:
            self._drop("ack_beyond_sent")
            self._challenge_ack(now)
            return False
        if ((ack - snd_una + self.max_snd_wnd) & MASK) >= _HALF:
            self._drop("ack_too_old")
            self._challenge_ack(now)
            return False
        self._last_activity = now
        self._keepalive_probes = 0
        if self.config.keepalive:
            self._keepalive_at = now + self.config.keepalive_idle
        acked = ((ack - snd_una + _HALF) & MASK) - _HALF
        rack = self._rack
        new_sack = False
        if rack is not None:
            # RFC 8985 6.2 steps 1-3, and the scoreboard (RFC 6675 Update()).
            ecr = opts.ts_ecr if self.ts_ok and opts.ts_ecr else None
            cum, sacked = rack.on_ack(
                ack, opts.sack, self.snd_max, now, ecr, self._ts_of if ecr is not None else None
            )
            new_sack = sacked > 0
        scaled = window << self.snd_wscale
        # Window update (RFC 9293 3.10.7.4: SND.WL1 < SEG.SEQ or (= and SND.WL2 =< SEG.ACK)).
        window_changed = False
        wl1 = self.snd_wl1
        if ((wl1 - seq) & MASK) >= _HALF or (
            wl1 == seq and not 0 < ((self.snd_wl2 - ack) & MASK) < _HALF
        ):
            if scaled != self.snd_wnd:
                window_changed = True
            self.snd_wnd = scaled
            if scaled > self.max_snd_wnd:
                self.max_snd_wnd = scaled
            self.snd_wl1 = seq
            self.snd_wl2 = ack
        if acked > 0:
            self._new_ack(ack, acked, opts, now)
        elif (
            acked == 0
            and self.snd_max != snd_una
            and (new_sack or (data_len == 0 and not window_changed and self.snd_wnd))
        ):
            # RFC 5681 2's duplicate ACK (no data, no SYN or FIN, same window), or RFC 6675
            # 2's: one that brings new SACK information counts "even if it ... changes the
            # advertised window". Not an ACK of a zero window: its receiver drops whatever
            # lies beyond it, and repeating the ACK says nothing about loss.
            self._duplicate_ack(now)
        if rack is not None and self.state is not _CLOSED:
            self._rack_ack(rack, ack, acked > 0, cum + sacked, opts, now)
        self._persist_probes = 0
        if self.snd_wnd > 0 and 0 < ((self.snd_nxt - self.snd_una) & MASK) < _HALF:
            self._persist_at = None
            self._persist_backoff = 0
        return True

    def takes_merged_ack(self, ack: int) -> bool:
        """Whether a plain ACK (no data, no SACK blocks, only the ACK flag) that acknowledges
        up to ``ack`` may be merged with the next ones of a batch, and only the last of them
        processed: it acknowledges new data (an ACK that does not is a duplicate, a loss
        signal: never merged), the connection is established and not recovering from a loss
        (where each ACK clocks out a retransmission) nor holding any sign of one (duplicate
        ACKs counted, SACKed or lost segments on the scoreboard: there the order in which
        each ACK's news arrives is what RACK judges reordering by), and more than two
        segments are in flight (fewer bring no run of ACKs: a request's ACK is not worth
        holding)."""
        flight = (self.snd_max - self.snd_una) & MASK
        rack = self._rack
        return (
            flight > 2 * self.mss
            and self.state is _ESTABLISHED
            and 0 < ((ack - self.snd_una) & MASK) <= flight
            and not self._in_recovery
            and self._prr is None
            and self._undo is None
            and not self._rto_recovery
            and not self._dupacks
            and (rack is None or not (rack.sacked_bytes or rack.lost_bytes))
        )

    def _new_ack(self, ack: int, acked: int, opts: TcpOptions, now: float) -> None:
        flight_before = diff(self.snd_max, self.snd_una)
        # RTT sample: from the echoed timestamp (RFC 7323 4.1), else the timed segment, never
        # from a retransmission (Karn, RFC 6298 3; after a timeout, no echo from before it:
        # rtt.py).
        rtt = self._rtt
        if self.ts_ok and opts.ts_ecr:
            r = rtt.on_echo(opts.ts_ecr, (int(now * 1000) + self._ts_offset) & MASK, now)
            if r is not None and self._rack is not None:
                self._rack.rtt_sample(r)  # RFC 8985 6.2 step 1
        elif rtt.timed_seq is not None and diff(ack, rtt.timed_seq) > 0:
            r = rtt.sample(rtt.timed_at, now)
            if r is not None and self._rack is not None:
                self._rack.rtt_sample(r)
        self.snd_una = ack
        if diff(self.snd_nxt, ack) < 0:
            self.snd_nxt = ack
        if self._snd_up is not None and diff(ack, self._snd_up) >= 0:
            self._snd_up = None  # all urgent data acknowledged: out of urgent mode
        # Discard acknowledged data (the FIN and the SYN have no bytes).
        data_acked = acked
        self._sndbuf.acknowledge(ack)
        self._retries = 0
        undo = self._undo
        if undo is not None and self.ts_ok and undo.eifel(ack, opts.ts_ecr):
            # RFC 3522: the ACK of the retransmitted data echoes an older timestamp: the
            # original arrived, the retransmission was spurious.
            self._undo_response()
        if self._rto_recovery and diff(ack, self._recover) >= 0:
            self._rto_recovery = False
        # Congestion control and recovery (RFC 5681 3.2, RFC 6582, RFC 6675).
        if self._in_recovery:
            if diff(ack, self._recover) >= 0:
                self._in_recovery = False
                self._inflation = 0
                self._dupacks = 0
                self.cc.on_recovery_end(now, diff(self.snd_max, ack))
                if self._prr is not None:
                    self.cc.cwnd = max(self.cc.ssthresh, self.mss)  # RFC 6937 3: end
                    self._prr = None
                if self._rack is not None:
                    self._rack.on_recovery_exit()
            elif self.sack_ok:
                pass  # RFC 6675: the pipe shrinks; _push sends what the window allows
            else:
                # RFC 6582 3.2 step 5, partial ACK: retransmit the next hole, deflate.
                self._inflation = max(0, self._inflation - data_acked) + self.mss
                self._retransmit(ack, now)
        else:
            self._dupacks = 0
            merged = self.acks_merged
            if merged > 1:
                # An ACK that stands for several (the layer merged a run of them) grows
                # the window as they would have, one by one: RFC 5681 3.1 counts ACKs in
                # slow start (cwnd += min(N, SMSS) for each).
                part = data_acked // merged
                for _ in range(merged - 1):
                    self.cc.on_ack(part, now, rtt.srtt, flight_before)
                    flight_before -= part
                data_acked -= part * (merged - 1)
            self.cc.on_ack(data_acked, now, rtt.srtt, flight_before)
        # The retransmission timer (RFC 6298 5.2/5.3).
        if self.snd_max == ack:
            self._rto_at = None
        else:
            self._rto_at = now + self._rtt.rto
        # Our FIN acknowledged?
        if self._fin_seq is not None and ack == add(self._fin_seq, 1):
            self._fin_acked(now)

    def _fin_acked(self, now: float) -> None:
        state = self.state
        if state is _FIN_WAIT_1:
            self._set_state(_FIN_WAIT_2)
            if self._user_closed:
                self._close_at = now + self.config.fin_wait_2_timeout
        elif state is _CLOSING:
            self._time_wait(now)
        elif state is _LAST_ACK:
            self._terminate(None)

    def _duplicate_ack(self, now: float) -> None:
        self._dupacks += 1
        if self._dupacks == 1:
            # RFC 5681 3.2 step 2: what limited transmit sends from here on is not part of
            # the FlightSize that sets ssthresh.
            self._flight_at_dupack = diff(self.snd_max, self.snd_una)
        if self.sack_ok:
            return  # RACK (RFC 8985) decides what is lost: _rack_ack
        if self._in_recovery:
            self._inflation += self.mss  # RFC 6582 3.2 step 4
            return
        flight = diff(self.snd_max, self.snd_una)
        threshold = DUPTHRESH
        segments = -(-flight // self.mss)
        if 2 <= segments < 4 and not self._can_send_new():
            # RFC 5827 (Early Retransmit): with fewer than four segments out and nothing
            # new to send, three duplicate ACKs can never come; one fewer than what is
            # outstanding will do.
            threshold = max(1, segments - 1)
        if self._dupacks >= threshold:
            # RFC 6582 3.2 step 2: only if the ACK covers more than "recover".
            if diff(self.snd_una, self._recover) >= 0 or self._recover == self.iss:
                self._enter_recovery(now)

    def _enter_recovery(self, now: float) -> None:
        flight = diff(self.snd_max, self.snd_una)
        if self._dupacks:
            flight = min(flight, self._flight_at_dupack)
        self._in_recovery = True
        self.fast_recoveries += 1
        self._recover = self.snd_max
        self._undo = Undo(self.cc.cwnd, self.cc.ssthresh, timeout=False)
        self.cc.on_congestion(now, flight)
        if self._rack is not None:
            # RFC 6937 3: PRR paces the recovery; RecoverFS is what is outstanding.
            self._prr = Prr(self.cc.ssthresh, diff(self.snd_max, self.snd_una), self.mss)
            self._probe_at = None
            return
        self._inflation = DUPTHRESH * self.mss
        self._retransmit(self.snd_una, now)

    def _retransmit(self, seq: int, now: float) -> int:
        """Send one segment again, starting at ``seq``; returns the sequence space it
        covered (data, and 1 for a FIN)."""
        # Only what was sent before: new data goes out through _push, which keeps SND.MAX.
        end = self._sndbuf.end
        sent = self.snd_max
        if self._fin_seq is not None and diff(sent, self._fin_seq) > 0:
            sent = self._fin_seq
        if diff(sent, end) < 0:
            end = sent
        n = min(self.mss, diff(end, seq))
        covered = 0
        if n > 0:
            n, fin = self._emit_data(seq, n, now, retransmission=True)
            covered = n + (1 if fin else 0)
        elif self._fin_seq is not None and seq == self._fin_seq:
            self._emit(self._segment(seq, FIN_I, now))
            self.retransmits += 1
            covered = 1
            if self._rack is not None:
                self._record_sent(self._rack, seq, add(seq, 1), now, True)
        if self._rto_at is None:
            self._rto_at = now + self._rtt.rto
        return covered

    # -- RACK-TLP, PRR and undo (SACK connections) -------------------------------------------
    def _ts_of(self, t: float) -> int:
        return self._ts_now(t)

    def _rack_ack(self, rack: Rack, ack: int, advanced: bool, delivered: int, opts: TcpOptions,
                  now: float) -> None:  # fmt: skip
        """RFC 8985 6.2 steps 4 and 5 and 7.4 after an acceptable ACK, then RFC 6937's
        per-ACK step when in recovery."""
        blocks = opts.sack
        if not blocks and not rack.segments and rack.tlp_end_seq is None:
            # Everything sent is acknowledged and the ACK has no blocks (the common case of
            # a request/response exchange): no D-SACK, no probe to judge (7.4), and step 5
            # finds no segment to mark lost, so no reordering timer.
            self._rack_at = None
            if self._in_recovery:
                self._prr_step(delivered, advanced)
            return
        if blocks and is_dsack(blocks, ack):
            rack.on_dsack(self.snd_una, self.snd_nxt)
            rack.note_dsack(blocks)
            undo = self._undo
            if undo is not None:
                left, right = blocks[0]
                undo.on_dsack(max(1, -(-diff(right, left) // self.mss)))
                if not self._in_recovery and not self._rto_recovery and undo.all_dsacked():
                    # RFC 3708 3: every retransmission of the episode was a duplicate.
                    self._undo_response()
        if rack.probe_acked(ack, advanced, bool(blocks)) and not self._in_recovery:
            # RFC 8985 7.4: the probe repaired a loss: the response fast recovery would
            # have given, at once.
            self.cc.on_congestion(now, diff(self.snd_max, self.snd_una))
            self.cc.cwnd = max(self.cc.ssthresh, self.mss)
        lost_before = rack.losses_detected
        self._rack_detect(rack, now)
        if rack.lost_bytes > 0 and not self._in_recovery and not self._rto_recovery:
            self._enter_recovery(now)
        if self._in_recovery:
            self._prr_step(delivered, advanced and rack.losses_detected == lost_before)

    def _prr_step(self, delivered: int, safe: bool) -> None:
        """RFC 6937 3, on every ACK in recovery (and on the reordering timer)."""
        prr = self._prr
        if prr is None:
            return
        pipe = self._pipe()
        sndcnt = prr.on_ack(delivered, pipe, safe=safe)
        if prr.out == 0 and sndcnt < self.mss:
            sndcnt = prr.sndcnt = self.mss  # the fast retransmit on entering recovery
        # RFC 6937 3: cwnd = pipe + sndcnt.
        self.cc.cwnd = pipe + sndcnt

    def _rack_detect(self, rack: Rack, now: float) -> None:
        """RFC 8985 6.2 step 5 and RACK_detect_loss_and_arm_timer()."""
        in_recovery = self._in_recovery or self._rto_recovery
        timeout = rack.detect_loss(now, rack.reo_wnd(in_recovery, self._rtt.srtt))
        self._rack_at = now + timeout if timeout > 0 else None

    def _rack_timeout(self, now: float) -> None:
        """The reordering timer: segments still unSACKed are now old enough to be lost."""
        rack = self._rack
        if rack is None or self.state not in _SENDING:
            return
        self._rack_detect(rack, now)
        if rack.lost_bytes <= 0:
            return
        if not self._in_recovery and not self._rto_recovery:
            self._enter_recovery(now)
        self._prr_step(0, False)

    def _undo_response(self) -> None:
        """RFC 4015 / RFC 3708 5: the last loss response was for nothing: restore cwnd and
        ssthresh (never lowering them) and, after a timeout, go on with new data."""
        undo = self._undo
        if undo is None:
            return
        self._undo = None
        self.undos += 1
        cc = self.cc
        cc.cwnd = max(cc.cwnd, undo.cwnd)
        cc.ssthresh = max(cc.ssthresh, undo.ssthresh)
        if self._in_recovery:
            self._in_recovery = False
            self._prr = None
            self._inflation = 0
            self._dupacks = 0
        if undo.timeout and self._rto_recovery:
            self._rto_recovery = False
            # RFC 4015 3.1: what was sent before the timeout is not resent.
            if diff(self.snd_max, self.snd_nxt) > 0:
                self.snd_nxt = self.snd_max

    def _arm_probe(self, now: float) -> None:
        """RFC 8985 7.2: (re)start the PTO after new data went out or new data was
        acknowledged, unless in recovery, something is SACKed or a probe is out."""
        mark = (self.snd_una, self.snd_max)
        if mark == self._probe_mark:
            return
        self._probe_mark = mark
        rack = self._rack
        flight = ((mark[1] - mark[0] + _HALF) & MASK) - _HALF  # diff(), inline
        if (
            rack is None
            or flight <= 0
            or self._in_recovery
            or self._rto_recovery
            or not rack.may_probe()
            or self.state not in _SENDING
        ):
            self._probe_at = None
            return
        at = now + rack.pto(self._rtt.srtt, flight)
        if self._rto_at is not None and at > self._rto_at:
            at = self._rto_at  # RFC 8985 7.2: never later than the RTO would fire
        self._probe_at = at

    def _send_probe(self, now: float) -> None:
        """RFC 8985 7.3: one segment of new data if the receive window allows, else the
        last segment sent again; then the RTO, not another PTO, is armed."""
        rack = self._rack
        if rack is None or self.state not in _SENDING or self.snd_una == self.snd_max:
            return
        end = self._sndbuf.end
        rwnd_room = diff(add(self.snd_una, self.snd_wnd), self.snd_max)
        if self.snd_nxt == self.snd_max and diff(end, self.snd_max) > 0 and rwnd_room > 0:
            seq = self.snd_max
            n = min(self.mss, diff(end, seq), rwnd_room)
            n, fin = self._emit_data(seq, n, now)
            self._advance(add(seq, n + (1 if fin else 0)))
            rack.on_probe(self.snd_max, is_retrans=False)
        else:
            last: SentSegment | None = rack.segments[-1] if rack.segments else None
            if last is None or last.sacked:
                return
            self._retransmit(last.start, now)
            rack.on_probe(self.snd_max, is_retrans=True)
        self.loss_probes += 1
        self._probe_mark = (self.snd_una, self.snd_max)
        self._rto_at = now + self._rtt.rto

    def _pipe(self) -> int:
        """RFC 6675 4 SetPipe, from RACK's scoreboard."""
        outstanding = diff(self.snd_max, self.snd_una)
        if self._rack is None:
            return outstanding
        return self._rack.pipe(outstanding)

    # -- receiving data ---------------------------------------------------------------------------
    def _receive_data(self, seq: int, payload: memoryview | bytes, now: float) -> None:
        if self.state not in _CAN_RECEIVE:
            self._drop("data_after_fin")
            return
        if self._user_closed:
            # Nobody will read it: reset (RFC 2525 2.17; Linux does the same).
            self._emit(Segment(self.snd_max, 0, RST_I, 0))
            self._terminate(ConnectionResetError(errno.ECONNRESET, "data after close"))
            return
        offset = diff(self.rcv_nxt, seq)
        if offset > 0:
            self._note_duplicate(seq, min(offset, len(payload)))
            payload = payload[offset:]  # the part we already have
            seq = self.rcv_nxt
        right = diff(self._rcv_adv, seq)
        if len(payload) > right:
            payload = payload[: max(right, 0)]  # beyond the window we offered
            self._drop("trimmed_to_window")
        if not payload:
            self._ack_now = True
            return
        if seq == self.rcv_nxt:
            self._deliver(payload)
            n = len(payload)
            # A super-segment (from a link with receive offloads) is that many segments of
            # the sender's: RFC 9293 3.8.6.3's "every second full-sized segment" counts them,
            # as Linux counts received bytes against its MSS estimate.
            self._unacked_segments += 1 if n <= self.mss_local else n // self.mss_local
            if self._reasm.segments:
                self._drain_ooo(now)
                self._ack_now = True  # RFC 5681 4.2: ACK at once when a hole fills
            else:
                self._ack_pending = True
                if self._unacked_segments >= 2:
                    self._ack_now = True  # RFC 9293 3.8.6.3: every second full segment
                elif self._quickacks > 0:
                    # While the sender is in slow start, acknowledge at once (Linux's
                    # quick-ack mode): a delayed ACK would hold back a small window.
                    self._quickacks -= 1
                    self._ack_now = True
                elif self._window_opened():
                    self._ack_now = True  # RFC 9293 3.8.6.2.2: a worthwhile window update
        else:
            self._store_ooo(seq, payload)
            self._ack_now = True  # RFC 5681 4.2: immediate duplicate ACK when out of order

    def _advertisable_edge(self) -> int:
        """The right edge an ACK would offer now, after scaling and the 16-bit field."""
        shift = self.rcv_wscale
        scaled = self._window_to_advertise() >> shift
        if scaled > 0xFFFF:
            scaled = 0xFFFF
        return (self.rcv_nxt + (scaled << shift)) & MASK

    def _window_opened(self) -> bool:
        return diff(self._advertisable_edge(), self._rcv_adv) >= min(
            self.config.recv_buffer // 2, self.mss_local
        )

    def _deliver(self, data: memoryview | bytes) -> None:
        n = len(data)
        self.rcv_nxt = add(self.rcv_nxt, n)
        self._rcv_total += n
        if self._reading and not self._held:
            # No copy here: the driver hands the events out before the input returns, and
            # a stream reader copies into its own buffer (STYLE: views flow only during
            # the call; what is kept is copied, by whoever keeps it).
            self._events.append(DataReceived(data))
        else:
            self._held += data

    def _store_ooo(self, seq: int, payload: memoryview | bytes) -> None:
        verdict = self._reassembly().add(seq, payload)
        if verdict == DUPLICATE:
            self._note_duplicate(seq, len(payload))
        elif verdict == FULL:
            self._drop("ooo_queue_full")

    def _reassembly(self) -> Reassembly:
        """The connection's own out-of-order queue, made when first needed: most
        connections never see a hole, and until then they share one empty queue that
        nothing writes to."""
        reasm = self._reasm
        if reasm is _NO_REASSEMBLY:
            reasm = self._reasm = Reassembly(self.config.max_ooo_segments)
        return reasm

    def _drain_ooo(self, now: float) -> None:
        reasm = self._reasm
        for data in reasm.pop_ready(self.rcv_nxt):
            self._deliver(data)
        fin = reasm.fin
        if fin is not None and fin == self.rcv_nxt and not self._fin_received:
            reasm.fin = None
            self._receive_fin(now)

    def _receive_fin(self, now: float) -> None:
        self._fin_received = True
        self.rcv_nxt = add(self.rcv_nxt, 1)
        self._ack_now = True
        self._event_after_data(_EOF_RECEIVED)
        state = self.state
        if state in (_SYN_RECEIVED, _ESTABLISHED):
            self._set_state(_CLOSE_WAIT)
        elif state is _FIN_WAIT_1:
            if self._fin_seq is not None and self.snd_una == add(self._fin_seq, 1):
                self._time_wait(now)
            else:
                self._set_state(_CLOSING)
        elif state is _FIN_WAIT_2:
            self._time_wait(now)

    def _time_wait(self, now: float) -> None:
        self._set_state(_TIME_WAIT)
        self._close_at = now + 2 * self.config.msl
        self._rto_at = self._persist_at = self._keepalive_at = None
        self._event_after_data(_CONNECTION_CLOSED)

    def _terminate(self, error: OSError | None) -> None:
        """Enter CLOSED and tell the user how it ended."""
        was_time_wait = self.state is _TIME_WAIT
        if self.state is not _CLOSED:
            if _CLOSED in TRANSITIONS[self.state]:
                self._set_state(_CLOSED)
            else:
                self.state = _CLOSED
        self._rto_at = self._delack_at = self._persist_at = None
        self._keepalive_at = self._close_at = None
        self._ack_pending = self._ack_now = False
        self._sndbuf.clear()
        if self._reasm is not _NO_REASSEMBLY:
            self._reasm.segments.clear()
        if was_time_wait:
            return
        if error is not None:
            self.error = error
            self._held.clear()  # a reset discards what was not read
            self._after_held.clear()
            self._events.append(ConnectionReset(error))
        else:
            self._event_after_data(_CONNECTION_CLOSED)

    def _event_after_data(self, event: Event) -> None:
        """Report ``event`` now, or after the data a paused application has not taken."""
        if self._held:
            self._after_held.append(event)
        else:
            self._events.append(event)

    # == sending ==================================================================================
    def _emit_data(
        self, seq: int, n: int, now: float, *, retransmission: bool = False
    ) -> tuple[int, bool]:
        """Send up to ``n`` bytes from ``seq``; the FIN rides along when it comes next.
        Returns the bytes sent (fewer when SACK blocks make the options longer than the
        timestamps the MSS allows for) and whether the FIN went too."""
        segment = self._segment(seq, 0, now)
        room = self._mss_base - len(segment.options)
        if n > room:
            n = room
        sndbuf = self._sndbuf
        payload = sndbuf.take(seq, n)  # a copy: the application may append meanwhile
        end = add(seq, n)
        flags = segment.flags | PSH_I if end == sndbuf.end else segment.flags
        if self._fin_seq is not None and end == self._fin_seq and self.state in _FIN_STATES:
            flags |= FIN_I
        self._emit(
            _new_segment((segment.seq, segment.ack, flags, segment.window, segment.options,
                          payload, segment.urgent))
        )  # fmt: skip
        self._last_send = now
        resent = retransmission or diff(seq, self.snd_max) < 0
        if resent:
            # Below SND.MAX it was sent before (going back after a timeout, say): Karn.
            self.retransmits += 1
            self._rtt.on_retransmit(seq)  # Karn: no sample from a retransmitted segment
        elif not self.ts_ok:
            self._rtt.time(seq, now)
        rack = self._rack
        if rack is not None:
            top = add(end, 1) if flags & FIN_I else end
            self._record_sent(rack, seq, top, now, resent)
            if self._prr is not None:
                self._prr.on_sent(n)
        return n, bool(flags & FIN_I)

    def _record_sent(self, rack: Rack, seq: int, end: int, now: float, resent: bool) -> None:
        """RFC 8985 6.1: the scoreboard learns of every transmission."""
        snd_max = self.snd_max
        if resent:
            undo = self._undo
            if undo is not None and (self._in_recovery or self._rto_recovery):
                undo.on_retransmit(seq, self._ts_now(now) if self.ts_ok else None)
            if diff(end, snd_max) > 0:
                # Partly new: the part above SND.MAX is a first transmission.
                rack.on_retransmit(seq, snd_max, now)
                rack.on_send(snd_max, end, now)
                return
            rack.on_retransmit(seq, end, now)
        else:
            rack.on_send(seq, end, now)

    def _send_window(self) -> int:
        """Bytes that may be sent beyond snd_nxt now (congestion and receive windows)."""
        if self._in_recovery and self.sack_ok:
            # RFC 6937: cwnd = pipe + sndcnt; a positive sndcnt lets a whole segment go
            # (CEIL in segments), prr_out corrects on the next ACK.
            cwnd_room = self.cc.cwnd - self._pipe()
            if cwnd_room > 0:
                cwnd_room = -(-cwnd_room // self.mss) * self.mss
        else:
            cwnd_room = self.cc.cwnd + self._inflation - diff(self.snd_nxt, self.snd_una)
            if self._dupacks and not self._in_recovery and self.snd_nxt == self.snd_max:
                # RFC 3042 (Limited Transmit): each of the first two duplicate ACKs lets one
                # segment of new data out, to draw the ACKs that can trigger fast retransmit.
                cwnd_room += min(self._dupacks, 2) * self.mss
        rwnd_room = diff(add(self.snd_una, self.snd_wnd), self.snd_nxt)
        return min(cwnd_room, rwnd_room)

    def _push(self, now: float) -> None:
        """Send what the windows, Nagle and silly-window avoidance allow (RFC 9293 3.7.4,
        3.8.6.2.1), then the FIN, then any acknowledgement still owed."""
        state = self.state
        if state in _SENDING:
            if self._in_recovery and self.sack_ok:
                self._recovery_sends(now)
            end = self._sndbuf.end
            mss = self.mss
            # diff(end, SND.NXT), inline: the bytes queued and not sent (negative after the
            # FIN went: it takes a sequence number but no byte).
            waiting = ((end - self.snd_nxt + _HALF) & MASK) - _HALF
            if (
                waiting > 0
                and self.snd_una == self.snd_max
                and now - self._last_send > self._rtt.rto
            ):
                # RFC 5681 4.1: nothing sent for longer than the RTO; what the window says
                # about the path is stale, so restart from RW = min(IW, cwnd), not in one
                # burst of the old window.
                self.cc.on_idle(now)
                self._last_send = now
            if waiting >= 2 * mss and not self._in_recovery and self.snd_nxt == self.snd_max:
                self._push_full_segments(end, now)
            while waiting > 0:
                unsent = diff(end, self.snd_nxt)
                if unsent <= 0:
                    break
                room = self._send_window()
                n = min(unsent, mss)
                if room < n:
                    if room <= 0 or (room < mss and room < self.max_snd_wnd // 2):
                        break  # sender SWS avoidance: wait for a useful window
                    n = room
                if (
                    n < mss
                    and not self.config.nodelay
                    and diff(self._short_end, self.snd_una) > 0
                    and not (self._fin_queued and n == unsent)
                    and self.snd_nxt == self.snd_max
                    and self._snd_up is None
                ):
                    # Nagle (RFC 9293 3.7.4) with Minshall's refinement, as Linux does: hold a
                    # small segment only while an earlier small one is unacknowledged, so a
                    # write's short tail does not wait for a delayed ACK of full segments.
                    # New data only: below SND.MAX (going back after a timeout) it was sent
                    # before, and the small segment outstanding may be this one. Never
                    # urgent data (Linux: "Don't use the nagle rule for urgent data").
                    break
                seq = self.snd_nxt
                n, fin = self._emit_data(seq, n, now)
                self._persist_at = None
                self._persist_backoff = 0
                if n < mss:
                    self._short_end = add(seq, n)
                self._advance(add(seq, n + (1 if fin else 0)))
                if self._rto_at is None:
                    self._rto_at = now + self._rtt.rto
            fin_seq = self._fin_seq
            if (
                fin_seq is not None
                and self.snd_nxt == fin_seq
                and state in (_FIN_WAIT_1, _CLOSING, _LAST_ACK)
            ):
                self._emit(self._segment(fin_seq, FIN_I, now))
                if self._rack is not None:
                    resent = diff(fin_seq, self.snd_max) < 0
                    self._record_sent(self._rack, fin_seq, add(fin_seq, 1), now, resent)
                self._advance(add(fin_seq, 1))
                if self._rto_at is None:
                    self._rto_at = now + self._rtt.rto
            # Data waiting and nothing in flight: a zero window needs probing, and a window
            # too small to use (sender SWS avoidance) needs RFC 9293 3.8.6.2.1's override
            # timeout; one persist timer does both (Linux's probe timer).
            if (
                waiting > 0
                and self.snd_nxt == self.snd_una
                and self._persist_at is None
                and diff(end, self.snd_nxt) > 0
            ):
                self._rto_at = None
                self._persist_at = now + self._persist_interval()
        if self._rack is not None and self._probe_mark != (self.snd_una, self.snd_max):
            self._arm_probe(now)  # (which returns at once for an unchanged mark)
        if self._ack_now and state is not _CLOSED and state is not _SYN_SENT:
            self._send_ack(now)

    def _push_full_segments(self, end: int, now: float) -> None:
        """The bulk case of :meth:`_push`: new full-sized segments while both windows have
        room, with the ACK fields computed once. Whatever is left (a short tail, the FIN,
        recovery) goes through the general loop."""
        mss = self.mss
        una = self.snd_una
        nxt = self.snd_nxt
        limit = min(self.cc.cwnd + self._inflation, self.snd_wnd)
        sent = (nxt - una) & MASK
        available = (end - una) & MASK
        if self._fin_seq is not None:
            available -= mss  # leave the last segment, which may carry the FIN, to _push
        if available - sent < mss or limit - sent < mss:
            return
        first = self._segment(nxt, 0, now)  # the window, options and ACK of this burst
        ack, window, options = first.ack, first.window, first.options
        if len(options) + mss > self._mss_base or first.flags & URG_I:
            return  # SACK blocks take room (_emit_data sizes each segment), or URG is set
        sndbuf = self._sndbuf
        buf = sndbuf.buf
        base = sndbuf.off - ((sndbuf.seq - una) & MASK)
        out = self._out
        new = _new_segment
        data_end = end
        rack = self._rack
        records = rack.segments if rack is not None else None
        # Full segments that fit both windows; with gso_max, up to that many bytes per
        # Segment (the link cuts them back into these MSS-sized ones). The scoreboard
        # keeps one record per MSS either way (RFC 8985 6.1): a loss resends one MSS.
        count = min(available - sent, limit - sent) // mss
        if count <= 0:
            return
        per = max(1, self.gso_max // mss)
        left = count
        while left:
            k = per if left > per else left
            left -= k
            start = base + sent
            size = k * mss
            sent += size
            seq = nxt
            nxt = (nxt + size) & MASK
            flags = ACK_I | PSH_I if nxt == data_end else ACK_I
            out.append(new((seq, ack, flags, window, options, buf[start : start + size], 0)))
            if records is not None:
                for i in range(k):
                    a = (seq + i * mss) & MASK
                    records.append(SentSegment(a, (a + mss) & MASK, now))
        self.segments_out += count
        self._last_ack_sent = ack
        self._ack_pending = self._ack_now = False
        self._unacked_segments = 0
        self._delack_at = None
        if not self.ts_ok:
            self._rtt.time(self.snd_nxt, now)
        self.snd_nxt = self.snd_max = nxt
        self._last_send = now
        self._persist_at = None
        self._persist_backoff = 0
        if self._rto_at is None:
            self._rto_at = now + self._rtt.rto

    def _advance(self, seq: int) -> None:
        self.snd_nxt = seq
        if diff(seq, self.snd_max) > 0:
            self.snd_max = seq

    def _recovery_sends(self, now: float) -> None:
        """RFC 6675 5 steps (C)-(C.5) with RACK's lost marks (RFC 8985 9.2) as IsLost():
        while PRR lets data out (cwnd = pipe + sndcnt), retransmit what is marked lost;
        new data follows in _push. RFC 6675's NextSeg rules (3) and (4) are left to RACK's
        reordering timer and TLP, which RFC 8985 gives that job."""
        rack = self._rack
        if rack is None:
            return
        for _ in range(64):
            if self.cc.cwnd - self._pipe() <= 0:
                return
            seg = rack.next_lost()
            if seg is None:
                return
            if not self._retransmit(seg.start, now):
                return

    def _can_send_new(self) -> bool:
        """NextSeg rule (2): new data is waiting and the receive window has room for it."""
        return (
            diff(self._sndbuf.end, self.snd_max) > 0
            and diff(add(self.snd_una, self.snd_wnd), self.snd_max) > 0
        )

    def _schedule_ack(self, now: float) -> None:
        if self._ack_pending and self._delack_at is None:
            self._delack_at = now + self.config.delayed_ack

    def _persist_interval(self) -> float:
        return min(self._rtt.rto * (1 << self._persist_backoff), self.config.rto_max)

    # == timers ===================================================================================
    def poll_at(self) -> float | None:
        at: float | None = None
        for t in (
            self._rto_at,
            self._delack_at,
            self._persist_at,
            self._keepalive_at,
            self._close_at,
            self._rack_at,
            self._probe_at,
        ):
            if t is not None and (at is None or t < at):
                at = t
        return at

    def handle_timeout(self, now: float) -> None:
        if self._close_at is not None and now >= self._close_at:
            self._close_at = None
            if self.state is _TIME_WAIT:
                self._terminate(None)
                return
            if self.state is _FIN_WAIT_2:
                self._terminate(None)
                return
        if self._delack_at is not None and now >= self._delack_at:
            self._delack_at = None
            if self._ack_pending:
                self._ack_now = True
        if self._rack_at is not None and now >= self._rack_at:
            self._rack_at = None
            self._rack_timeout(now)
        if self._probe_at is not None and now >= self._probe_at:
            self._probe_at = None
            self._send_probe(now)
        if self._rto_at is not None and now >= self._rto_at:
            self._rto_at = None
            self._on_rto(now)
            if self.state is _CLOSED:
                return
        if self._persist_at is not None and now >= self._persist_at:
            self._persist_at = None
            self._zero_window_probe(now)
        if self._keepalive_at is not None and now >= self._keepalive_at:
            self._keepalive_at = None
            self._keepalive(now)
            if self.state is _CLOSED:
                return
        self._push(now)

    def _on_rto(self, now: float) -> None:
        """RFC 6298 5.4-5.6 and RFC 5681 3.1: back off, shrink to the loss window, resend."""
        c = self.config
        if self.snd_wnd == 0 and self.state in SYNCHRONIZED and not self._user_closed:
            # RFC 9293 3.8.6.1: with the window shrunk to zero under data in flight, this
            # retransmission is the zero-window probe (MUST-35), and the connection SHOULD
            # NOT time out while data beyond the window goes unacknowledged (SHLD-17). So,
            # as Linux's tcp_retransmit_timer does, it counts as a probe: any ACK in answer
            # (_process_ack) clears the count, and only a silent receiver ends the
            # connection, after as many unanswered probes as an idle zero window allows.
            # Not for a connection the user closed: as Linux times out orphans, a receiver
            # must not hold one for ever by answering.
            self._persist_probes += 1
            failed, limit = self._persist_probes, c.retries
        else:
            self._retries += 1
            failed = self._retries
            handshake = self.state in (_SYN_SENT, _SYN_RECEIVED)
            limit = c.syn_retries if handshake else c.retries
        if failed > limit:
            error = self._soft_error or TimeoutError(errno.ETIMEDOUT, "Connection timed out")
            if self.state in SYNCHRONIZED:
                self._emit(Segment(self.snd_max, 0, RST_I, 0))
            self._terminate(error)
            return
        self._rtt.backoff(self._ts_now(now) if self.ts_ok else None)
        if self.state in (_SYN_SENT, _SYN_RECEIVED):
            self.retransmits += 1
            self._send_syn(now)
            self._rto_at = now + self._rtt.rto
            return
        flight = diff(self.snd_max, self.snd_una)
        self.timeouts += 1
        if self._retries == 1:
            # RFC 3522 / RFC 4015: what to restore if this timeout proves spurious.
            self._undo = Undo(self.cc.cwnd, self.cc.ssthresh, timeout=True)
        if self._retries == 1 or not self._in_recovery:
            self.cc.on_timeout(now, flight)
        self._in_recovery = False
        self._inflation = 0
        self._dupacks = 0
        self._recover = self.snd_max
        self._rto_recovery = True
        self._prr = None
        self._rack_at = self._probe_at = None
        # RFC 2018 8 / RFC 6675 5.1: forget SACK information after a timeout; go back to
        # snd_una.
        if self._rack is not None:
            self._rack.on_timeout()
        covered = self._retransmit(self.snd_una, now)
        self.snd_nxt = add(self.snd_una, covered)
        self._rto_at = now + self._rtt.rto

    def _zero_window_probe(self, now: float) -> None:
        """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: probe a zero window, backing off; give up
        when the receiver stops answering (as Linux does after tcp_retries2 probes). With a
        small non-zero window, RFC 9293 3.8.6.2.1's override: send what fits."""
        if self.state not in _SENDING or self.snd_nxt != self.snd_una:
            return
        end = self._sndbuf.end
        if diff(end, self.snd_nxt) <= 0:
            return
        if self.snd_wnd > 0:
            n = min(self.snd_wnd, self.mss, diff(end, self.snd_nxt))
            seq = self.snd_nxt
            n, fin = self._emit_data(seq, n, now)
            self._advance(add(seq, n + (1 if fin else 0)))
            self._rto_at = now + self._rtt.rto
            return
        self._persist_probes += 1
        if self._persist_probes > self.config.retries:
            self._emit(Segment(self.snd_max, 0, RST_I, 0))
            self._terminate(TimeoutError(errno.ETIMEDOUT, "Connection timed out (zero window)"))
            return
        self._persist_backoff = min(self._persist_backoff + 1, 10)
        self._emit(self._segment(add(self.snd_una, -1), 0, now))
        self._persist_at = now + self._persist_interval()

    def _keepalive(self, now: float) -> None:
        """RFC 9293 3.8.4 / RFC 1122 4.2.3.6: a segment at SND.UNA-1 draws an ACK."""
        c = self.config
        if self.state not in SYNCHRONIZED or self.state is _TIME_WAIT:
            return
        if now - self._last_activity < c.keepalive_idle - 1e-9 and not self._keepalive_probes:
            self._keepalive_at = self._last_activity + c.keepalive_idle
            return
        if self._keepalive_probes >= c.keepalive_count:
            self._emit(Segment(self.snd_max, 0, RST_I, 0))
            self._terminate(TimeoutError(errno.ETIMEDOUT, "keep-alive timed out"))
            return
        self._keepalive_probes += 1
        self._emit(self._segment(add(self.snd_una, -1), 0, now))
        self._keepalive_at = now + c.keepalive_interval

    # == ICMP =====================================================================================
    def icmp_error(
        self, error: OSError, now: float, *, mtu: int | None = None, local: bool = False
    ) -> None:
        """An ICMP error about this connection (RFC 1122 4.2.3.9, RFC 5461, RFC 1191).

        ``local``: no router said it; this host's own address resolution for the next hop
        failed (RFC 4861 7.2.2, RFC 1122 2.3.2.2), which is certain."""
        if mtu is not None:
            # RFC 1191 6.3 / RFC 5927 7.2: believe it only if it lowers the MSS.
            new = mtu - 40
            if 68 - 40 <= new < self.mss + (12 if self.ts_ok else 0):
                self.pmtu_mss = max(new, 88)
                self._update_mss()
                if self.snd_nxt != self.snd_una:
                    # What is in flight was too big: resend from SND.UNA at the new size,
                    # the rest follows as the window allows.
                    covered = self._retransmit(self.snd_una, now)
                    self.snd_nxt = add(self.snd_una, covered)
            return
        if self.state is _SYN_SENT and (local or isinstance(error, ConnectionRefusedError)):
            # Linux treats port/protocol unreachable during the handshake as hard errors, and
            # so a failed resolution of the peer's address (RFC 5461 2.2: a connection request
            # rejected on a soft error; Linux fails connect() with EHOSTUNREACH after its
            # 3 unanswered requests, instead of resending SYNs for two minutes).
            self._terminate(error)
            return
        self._soft_error = error
