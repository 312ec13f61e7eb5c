"""The TCP layer: demultiplexing segments to connections, listeners with a bounded SYN queue
and SYN cookies, resets for segments nobody owns, ICMP errors, and every connection's timer.

RFC 9293 3.10.7.1 (CLOSED): a segment for no connection and no listener is answered with a
reset (never a reset for a reset). RFC 9293 3.10.7.2 (LISTEN): an ACK is answered with a
reset, a SYN creates a connection in SYN-RECEIVED if the listener's SYN queue (its backlog)
has room, else a SYN cookie answers it (RFC 4987 3.6). RFC 6191: a SYN for a connection in
TIME-WAIT may reopen it when its timestamp (or, without timestamps, its sequence number) is
newer; the new incarnation's ISN then lies above the old sequence space (RFC 9293 3.6.1).
RFC 6056: ephemeral ports are random. RFC 5927: an ICMP error is believed only when it
quotes a sequence number in flight.

Connections report to the driver through one callback, ``on_event(connection, event)``; the
layer keeps one heap of deadlines so the driver needs one timer for all connections.

IPv4 and IPv6 are one facade (:class:`~..ip.dual.DualIP`). A connection keeps its route, which
carries the interface it leaves by and through it the family's headroom and send function:
segments go out with no question of family. Segments arrive with the index of the interface
they came in on; a passive open answers a link-local peer on that interface (RFC 4007 6).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ...errors import AddressInUseError, ParseError
from ...link.offload import GSO_TCPV4, GSO_TCPV6, NEEDS_CSUM, FrameMeta, OffloadFrame
from ..checksum import checksum, pseudo_header_sum, pseudo_header_sum6, verify, verify_pseudo
from ..icmp.ratelimit import TokenBucket
from ..ip.dual import ANY4, ANY6, WILDCARD, DualIP, Route
from ..ipv4.wire import IPV4_HEADER_LEN, IpProto, IPv4Header
from ..ipv6.wire import IPv6Header
from ..layer import Layer
from .connection import (
    Connected,
    ConnectionClosed,
    ConnectionReset,
    Event,
    Segment,
    State,
    TcpConfig,
    TcpConnection,
    TcpParams,
)
from .isn import NO_COOKIE_OPTIONS, IsnGenerator, cookie_options, cookie_ts
from .seq import add, diff
from .wire import (
    NO_OPTIONS,
    TCP_HEADER_LEN,
    Flags,
    TcpOptions,
    emit_options,
    parse_options,
)

__all__ = ["CatchAll", "Listener", "SynRequest", "TcpLayer", "TcpLimits"]

ANY = ANY4
EPHEMERAL = range(49152, 65536)
FIN, SYN, RST, ACK = int(Flags.FIN), int(Flags.SYN), int(Flags.RST), int(Flags.ACK)
PSH = int(Flags.PSH)

Key = tuple[bytes, int, bytes, int]
#: States compared per segment, as module constants (``State.X`` is slow on Python 3.11: see
#: connection.py).
_CLOSED, _ESTABLISHED, _TIME_WAIT = State.CLOSED, State.ESTABLISHED, State.TIME_WAIT
_HEADER = struct.Struct("!HHIIHHHH")
_CHECKSUM = struct.Struct("!H")
#: IpProto.TCP as a plain int: an enum's class attribute is a slow lookup on Python 3.11.
_TCP = int(IpProto.TCP)
#: TcpConnection.gso_max is this less the interface's headroom: a super-segment's IP
#: datagram (IP and TCP headers, up to 40 bytes of options, the payload) within 65 535
#: bytes; the headroom counts the Ethernet header's 14 bytes as well.
_GSO_MAX = 65535 + 14 - TCP_HEADER_LEN - 40


#: The most a coalesced segment holds (software GRO), and the least data a segment must
#: carry to start one: the small segments of a request/response exchange go up at once.
_GRO_MAX = 65535 - 60 - 60
_GRO_MIN = 536


#: The fields of a plain IPv4 frame (Ethernet, a 20-byte IPv4 header, TCP) and of a plain
#: IPv6 one (no extension headers) that differ between the frames of one burst and are
#: checked on their own: the IP length field, the sequence number and the flags byte.
_FRAME_FIELDS = struct.Struct("!16xH20xI5xB")
_FRAME_FIELDS6 = struct.Struct("!18xH38xI5xB")
#: The bytes of those frames' headers outside the template (frame GRO): the length field,
#: IPv4's identification and header checksum, the sequence number, the TCP checksum; and
#: the PSH bit.
_VARYING = ((16, 0xFF), (17, 0xFF), (18, 0xFF), (19, 0xFF), (24, 0xFF), (25, 0xFF), (38, 0xFF),
            (39, 0xFF), (40, 0xFF), (41, 0xFF), (47, PSH), (50, 0xFF), (51, 0xFF))  # fmt: skip
_VARYING6 = ((18, 0xFF), (19, 0xFF), (58, 0xFF), (59, 0xFF), (60, 0xFF), (61, 0xFF), (67, PSH),
             (70, 0xFF), (71, 0xFF))  # fmt: skip
_MASKS: dict[tuple[int, int], int] = {}


def _frame_mask(l4: int, hlen: int) -> int:
    """The mask of a frame's first ``hlen`` bytes (as one big-endian integer; TCP from
    ``l4``) that keeps what every frame continuing a burst must share with the first."""
    mask = _MASKS.get((l4, hlen))
    if mask is None:
        raw = bytearray(b"\xff" * hlen)
        for at, bits in _VARYING if l4 == 34 else _VARYING6:
            raw[at] &= ~bits & 0xFF
        mask = _MASKS[l4, hlen] = int.from_bytes(raw, "big")
    return mask


class _Held:
    """A data segment being coalesced with the ones that follow it (software GRO, as
    Linux's tcp_gro_receive merges: the same connection, ACK, window and options, each next
    in sequence and of the first one's size).

    When the first segment came in a plain IPv4 or IPv6 frame, ``owner`` is the receiving
    interface's Ethernet layer and ``tmpl`` the frame's headers under :func:`_frame_mask`:
    the frames that continue the burst are then merged from the frame itself
    (:meth:`TcpLayer.merge_frame`), as a driver's GRO works, before the Ethernet and IP
    layers."""

    __slots__ = ("conn", "src", "dst", "sport", "dport", "seq", "end", "ack", "window",
                 "opts", "options", "data", "size", "flags", "owner", "l4", "hlen", "mask",
                 "tmpl", "base", "fields")  # fmt: skip

    def __init__(
        self, conn: TcpConnection, src: bytes, dst: bytes, sport: int, dport: int, seq: int,
        ack: int, window: int, opts: TcpOptions, options: bytes, data: bytearray,
    ) -> None:  # fmt: skip
        self.conn = conn
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.seq = seq
        self.size = len(data)
        self.end = (seq + self.size) & 0xFFFFFFFF
        self.ack, self.window, self.opts, self.options = ack, window, opts, options
        self.data = data
        self.flags = ACK
        #: None until the stack looked at the first frame; False when it was not plain IPv4
        #: or IPv6.
        self.owner: object = None
        self.l4 = self.hlen = self.mask = self.tmpl = self.base = 0
        self.fields = _FRAME_FIELDS


class _HeldAck:
    """A plain cumulative ACK held until its batch ends (:meth:`TcpLayer._hold_ack`).

    As with :class:`_Held`, once a second ACK was merged into it and when that came in a
    plain IPv4 or IPv6 frame with no options but timestamps (NOP, NOP, TS: what Linux puts
    on its ACKs), ``owner`` is the receiving
    interface's Ethernet layer and ``tmpl`` the frame's headers under a mask that leaves out
    what differs from ACK to ACK (the acknowledgement number, the window, the timestamps,
    IPv4's identification and the checksums): the next ACKs are merged from the frame
    (:meth:`TcpLayer.merge_ack_frame`)."""

    __slots__ = ("conn", "seq", "ack", "window", "opts", "ts_val", "ts_ecr", "count", "owner",
                 "l4", "hlen", "mask", "tmpl", "base", "snd_max")  # fmt: skip

    def __init__(
        self, conn: TcpConnection, seq: int, ack: int, window: int, opts: TcpOptions
    ) -> None:
        self.conn, self.seq, self.ack, self.window, self.opts = conn, seq, ack, window, opts
        self.ts_val, self.ts_ecr = opts.ts_val, opts.ts_ecr
        self.snd_max = conn.snd_max
        self.count = 1
        #: None until the stack looked at the frame; False when it was not plain.
        self.owner: object = None
        self.l4 = self.hlen = self.mask = self.tmpl = self.base = 0


#: What the frame of a held ACK's successors may differ in: IPv4's identification and
#: header checksum; the acknowledgement number, window and checksum; the timestamps.
_ACK_VARYING = ((18, 0xFF), (19, 0xFF), (24, 0xFF), (25, 0xFF))
_ACK_VARYING_TCP = (8, 9, 10, 11, 14, 15, 16, 17, *range(24, 32))
_ACK_MASKS: dict[tuple[int, int], int] = {}
_ACK_FIELDS = struct.Struct("!I2xH8xII")  # from TCP's ack: ack, window, TSval, TSecr
_ACK_FIELDS_BARE = struct.Struct("!I2xH")
_TS_LAYOUT = b"\x01\x01\x08\x0a"  # NOP, NOP, timestamps (RFC 7323 appendix A)


def _ack_mask(l4: int, hlen: int) -> int:
    mask = _ACK_MASKS.get((l4, hlen))
    if mask is None:
        raw = bytearray(b"\xff" * hlen)
        if l4 == 34:
            for at, bits in _ACK_VARYING:
                raw[at] &= ~bits & 0xFF
        for at in _ACK_VARYING_TCP:
            if l4 + at < hlen:
                raw[l4 + at] = 0
        mask = _ACK_MASKS[l4, hlen] = int.from_bytes(raw, "big")
    return mask


def _plain_l4(frame: memoryview) -> int:
    """Where TCP starts in a plain frame, one whose headers a template can stand for: 34
    for IPv4 without options and not a fragment, 54 for IPv6 with TCP right after the
    fixed header; 0 for anything else (the frame is at least 54 bytes long)."""
    if frame[12] == 8 and frame[13] == 0 and frame[14] == 0x45:
        return 0 if frame[20] & 0x3F or frame[21] else 34  # a fragment: 0
    if frame[12] == 0x86 and frame[13] == 0xDD and frame[14] >> 4 == 6 and frame[20] == 6:
        return 54
    return 0


def _continues(held: _HeldAck, ack: int, ts_val: int | None) -> bool:
    """Whether an ACK continues the held one: it acknowledges more, still no more than was
    sent (one beyond is dropped on its own, and must not take the others with it), and its
    timestamp is not older (one that is would fail PAWS on its own), or both have none.
    What else made the first one mergeable (:meth:`TcpConnection.takes_merged_ack`) holds
    while it is held: its connection neither sends nor times out before it goes up."""
    d = (ack - held.ack) & 0xFFFFFFFF
    if not 0 < d <= ((held.snd_max - held.ack) & 0xFFFFFFFF):
        return False
    held_ts = held.ts_val
    if ts_val is None or held_ts is None:
        return ts_val is held_ts
    return ((ts_val - held_ts) & 0xFFFFFFFF) < 0x80000000


_EMPTY = memoryview(b"")


def _cut(segments: list[Segment], mss: int) -> list[Segment]:
    """``segments`` with every one of more than ``mss`` bytes cut into ``mss``-sized ones
    (PSH on the last piece only, as a link's segmentation does)."""
    out: list[Segment] = []
    for seg in segments:
        payload = seg.payload
        if len(payload) <= mss:
            out.append(seg)
            continue
        for at in range(0, len(payload), mss):
            last = at + mss >= len(payload)
            flags = seg.flags if last else seg.flags & ~PSH
            out.append(
                seg._replace(seq=add(seg.seq, at), flags=flags, payload=payload[at : at + mss])
            )
    return out


EventHandler = Callable[[TcpConnection, Event], None]


class Rng(Protocol):
    def getrandbits(self, k: int, /) -> int: ...
    def randrange(self, start: int, stop: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class TcpLimits:
    #: Connections in any state, TIME-WAIT included; beyond it SYNs are dropped.
    max_connections: int = 65536
    #: RFC 5961 7: challenge ACKs per second for the whole stack.
    challenge_acks_per_second: float = 1000.0
    syn_cookies: bool = True


@dataclass(eq=False)
class Listener:
    """A passive open on (address, port). ``accept`` is the driver's callback for each
    connection that reaches ESTABLISHED; it returns False to refuse (the connection is reset)."""

    local_ip: bytes
    port: int
    backlog: int
    accept: Callable[[TcpConnection], bool]
    config: TcpConfig
    half_open: set[TcpConnection] = field(default_factory=set)
    closed: bool = False
    cookies_sent: int = 0


@dataclass(frozen=True, slots=True)
class SynRequest:
    """A SYN that no connection and no listener took, handed to the layer's
    :attr:`TcpLayer.catch_all` (a user-mode gateway's, which answers it only once it knows
    whether the destination accepts). Everything needed to answer it later: the layer keeps
    no state for it, so a request the handler drops costs nothing."""

    header: IPv4Header | IPv6Header
    #: The SYN's TCP header with its options, copied: what an ICMP error quotes.
    segment: bytes
    sport: int
    dport: int
    seq: int
    window: int
    opts: TcpOptions
    ifindex: int

    @property
    def local(self) -> tuple[bytes, int]:
        """The address and port the SYN was sent to."""
        return self.header.dst, self.dport

    @property
    def remote(self) -> tuple[bytes, int]:
        """The sender's address and port."""
        return self.header.src, self.sport


#: What the layer asks about a SYN nobody takes: True when the handler takes it (it will
#: answer with :meth:`TcpLayer.accept_request` or :meth:`TcpLayer.refuse_request`, or let it
#: go unanswered), False for the usual reset.
CatchAll = Callable[[SynRequest, float], bool]


class TcpLayer(Layer):
    name = "tcp"
    _COUNTERS = (
        "rx_segments",
        "tx_segments",
        "tx_super_segments",
        "gro_merged",
        "acks_merged",
        "active_opens",
        "passive_opens",
        "resets_sent",
        "retransmits",
        "syn_cookies_sent",
        "syn_cookies_accepted",
        "challenge_acks",
        "syns_caught",
        *(_LOSS_COUNTERS := ("timeouts", "fast_recoveries", "loss_probes", "undos", "dsacks_sent")),
    )

    def __init__(
        self,
        ip: DualIP,
        rng: Rng,
        *,
        config: TcpConfig | None = None,
        limits: TcpLimits | None = None,
    ) -> None:
        super().__init__()
        self.ip = ip
        self.config = config or TcpConfig()
        self.limits = limits or TcpLimits()
        self._rng = rng
        self._isn = IsnGenerator(rng.getrandbits(256).to_bytes(32, "big"))
        self._next_ephemeral = rng.getrandbits(16)
        self.connections: dict[Key, TcpConnection] = {}
        self.listeners: dict[tuple[bytes, int], Listener] = {}
        self.on_event: EventHandler | None = None
        #: Called after a connection with a user processed an input (acknowledgements may
        #: have freed buffer space).
        self.on_flushed: Callable[[TcpConnection], None] | None = None
        #: Consulted for a SYN that no connection and no listener takes, before the reset
        #: RFC 9293 3.10.7.1 sends (a user-mode gateway terminates every flow: gVisor's
        #: "forwarder"). None, the default, costs the receive path nothing.
        self.catch_all: CatchAll | None = None
        self.syns_caught = 0
        self._timers: list[tuple[float, int, TcpConnection]] = []
        #: Hold pure ACKs until :meth:`flush_acks` (the driver calls it once per batch of
        #: received frames), so one ACK answers a burst, as GRO-based stacks do.
        self.coalesce_acks = False
        self._deferred: dict[TcpConnection, None] = {}
        #: Receive coalescing (software GRO): consecutive full-sized data segments of one
        #: connection in a batch of received frames go to it as one segment, handed over
        #: by :meth:`flush_acks` at the end of the batch at the latest (the driver turns
        #: it on: the batch must end in flush_acks).
        self.gro = False
        self.gro_merged = 0  # segments that went up as part of another
        self._gro: _Held | None = None
        self.acks_merged = 0  # plain ACKs only counted: a later one of the batch went up
        self._ack: _HeldAck | None = None
        #: Connections whose events are being handed out (see _flush).
        self._dispatching: set[TcpConnection] = set()
        #: Events handed out so far (the driver tells from it whether an input woke anyone).
        self.events_dispatched = 0
        self._pseudo_sums: dict[Route, int] = {}
        self._tiebreak = itertools.count()
        self._challenges = TokenBucket(self.limits.challenge_acks_per_second, 100)
        self.rx_segments = self.tx_segments = self.active_opens = self.passive_opens = 0
        #: Super-segments handed to a link with TSO (each counted in tx_segments as the
        #: segments it carries).
        self.tx_super_segments = 0
        self.resets_sent = self.retransmits = self.challenge_acks = 0
        self.syn_cookies_sent = self.syn_cookies_accepted = 0
        self.timeouts = self.fast_recoveries = self.loss_probes = self.undos = 0
        self.dsacks_sent = 0

    def _mss_for(self, route: Route, now: float | None = None) -> int:
        """The MSS to offer along ``route``: the (path) MTU less the IP and TCP headers (RFC
        9293 3.7.1)."""
        return self.ip.room(route, now) - TCP_HEADER_LEN

    # -- opening ---------------------------------------------------------------------------
    def listen(
        self,
        local_ip: bytes,
        port: int,
        backlog: int,
        accept: Callable[[TcpConnection], bool],
        config: TcpConfig | None = None,
    ) -> Listener:
        """Start listening; port 0 picks an ephemeral one.

        Raises:
            AddressInUseError: something listens on that address and port already.
        """
        if port == 0:
            port = self._ephemeral_port(local_ip, None)
        for ip, p in self.listeners:
            if (
                p == port
                and len(ip) == len(local_ip)
                and (ip in (ANY, ANY6) or local_ip in (ANY, ANY6) or ip == local_ip)
            ):
                raise AddressInUseError(f"TCP port {port} is already in use")
        listener = Listener(local_ip, port, max(1, backlog), accept, config or self.config)
        self.listeners[(local_ip, port)] = listener
        return listener

    def unlisten(self, listener: Listener) -> None:
        listener.closed = True
        self.listeners.pop((listener.local_ip, listener.port), None)
        for conn in list(listener.half_open):
            conn.abort(0.0)
            self._flush(conn, 0.0)

    def connect(
        self,
        remote: tuple[bytes, int],
        now: float,
        *,
        local_ip: bytes | None = None,
        local_port: int = 0,
        config: TcpConfig | None = None,
        scope: int = 0,
    ) -> TcpConnection:
        """An active open (RFC 9293 3.10.1): SYN-SENT, the SYN on its way. ``scope``: the
        interface of a link-local IPv6 peer.

        Raises:
            NoRouteError: no route to ``remote``.
            AddressInUseError: the 4-tuple exists, or no ephemeral port is free.
            OSError: too many connections (``ENOBUFS``).
        """
        route = self.ip.route(
            remote[0], local_ip if local_ip not in (None, ANY, ANY6) else None, scope
        )
        src = route.src
        if local_port == 0:
            local_port = self._ephemeral_port(src, remote)
        key = (src, local_port, remote[0], remote[1])
        if key in self.connections:
            raise AddressInUseError(f"a connection from port {local_port} to there exists")
        if len(self.connections) >= self.limits.max_connections:
            raise OSError(errno.ENOBUFS, "too many TCP connections")
        local = (src, local_port)
        conn = TcpConnection.connect(
            local, remote, now, self._conn_params(local, remote, route, now, config)
        )
        self._register(key, conn, route)
        self.active_opens += 1
        self._flush(conn, now)
        return conn

    def _conn_params(
        self,
        local: tuple[bytes, int],
        remote: tuple[bytes, int],
        route: Route,
        now: float,
        config: TcpConfig | None,
        iss: int | None = None,
    ) -> TcpParams:
        return TcpParams(
            iss=self._isn.isn(local, remote, now) if iss is None else iss,
            mss=self._mss_for(route, now),
            config=config or self.config,
            # RFC 7323 5.4 / RFC 6191: one timestamp clock per pair of hosts (as Linux does),
            # so a new connection's timestamps are newer than an old one's in TIME-WAIT.
            ts_offset=self._isn.ts_offset(local[0], remote[0]),
            challenge_limiter=self._challenges.allow,
        )

    def _register(self, key: Key, conn: TcpConnection, route: Route) -> None:
        conn.defer_acks = self.coalesce_acks
        self.connections[key] = conn
        conn.route = route
        conn.key = key

    def _ephemeral_port(self, local_ip: bytes, remote: tuple[bytes, int] | None) -> int:
        """RFC 6056 3.3.3, Algorithm 3: a keyed hash of the destination picks where to start,
        a counter moves on from there, so successive connections to one peer use successive
        ports (away from the ones still in TIME-WAIT) while the sequence stays unguessable
        to anyone else."""
        lo, n = EPHEMERAL.start, len(EPHEMERAL)
        offset = self._isn.port_offset(local_ip, remote)
        for _ in range(n):
            self._next_ephemeral = (self._next_ephemeral + 1) & 0xFFFF
            port = lo + (offset + self._next_ephemeral) % n
            if self._port_free(local_ip, port, remote):
                return port
        raise AddressInUseError("no free ephemeral TCP port")

    def _port_free(self, local_ip: bytes, port: int, remote: tuple[bytes, int] | None) -> bool:
        if (local_ip, port) in self.listeners or (WILDCARD[len(local_ip)], port) in self.listeners:
            return False
        if remote is None:
            return not any(k[1] == port for k in self.connections)
        return (local_ip, port, remote[0], remote[1]) not in self.connections

    # -- receive ---------------------------------------------------------------------------
    def receive(
        self, header: IPv4Header | IPv6Header, data: memoryview, now: float, to_group: bool,
        ifindex: int = 0,
    ) -> None:  # fmt: skip
        if to_group:
            self._drop("to_broadcast")  # RFC 1122 4.2.3.10
            return
        # The checks of wire.parse() and checksum_ok(), inline: this runs for every segment.
        n = len(data)
        if n < TCP_HEADER_LEN:
            self._drop("truncated", n)
            return
        sport, dport, seq, ack, off_flags, window, _, urgent = _HEADER.unpack_from(data, 0)
        hl = (off_flags >> 12) << 2
        if hl < TCP_HEADER_LEN or hl > n:
            self._drop("bad_data_offset" if hl < TCP_HEADER_LEN else "truncated", hl)
            return
        src, dst = header.src, header.dst
        if not self.ip.csum_trusted:
            if not verify_pseudo(data, src, dst, 6):
                self._drop("bad_checksum")
                return
        flags = off_flags & 0x0FFF
        held = self._gro
        if held is not None:
            size = n - hl
            if (
                seq == held.end
                and flags & ~PSH == ACK
                and 0 < size <= held.size
                and sport == held.sport
                and dport == held.dport
                and ack == held.ack
                and window == held.window
                and src == held.src
                and dst == held.dst
                and data[TCP_HEADER_LEN:hl] == held.options
                and len(held.data) + size <= _GRO_MAX
            ):
                self._gro_append(held, data[hl:], seq, flags, now)
                return
            self._gro_flush(now)
        if hl > TCP_HEADER_LEN:
            raw = bytes(data[TCP_HEADER_LEN:hl])
            try:
                opts = parse_options(raw)
            except ParseError as exc:
                self._drop(exc.reason, exc)
                return
        else:
            raw, opts = b"", NO_OPTIONS
        payload = data[hl:]
        self.rx_segments += 1
        key = (dst, dport, src, sport)
        conn = self.connections.get(key)
        iss_floor: int | None = None
        if conn is not None:
            if (
                conn.state is _TIME_WAIT
                and flags & (SYN | ACK | RST | FIN) == SYN
                and self._listener_for(dst, dport) is not None
                and self._time_wait_reopens(conn, seq, opts)
            ):
                # RFC 9293 3.6.1 / RFC 6191: the new incarnation's sequence space starts
                # above the old one's, whatever the ISN clock says after a transfer faster
                # than it ticks (Linux: the old SND.NXT + 65537).
                iss_floor = add(conn.snd_max, 65537)
                self._forget(conn)
                conn = None
            if conn is not None:
                if self.gro and flags == ACK:
                    if len(payload) >= _GRO_MIN and conn.state is _ESTABLISHED:
                        # A full-sized segment of a burst, perhaps: wait for the next ones.
                        if self._ack is not None:
                            self._ack_flush(now)
                        self._gro = _Held(conn, src, dst, sport, dport, seq, ack, window,
                                          opts, raw, bytearray(payload))  # fmt: skip
                        return
                    if (
                        not payload
                        and not opts.sack
                        and self._hold_ack(conn, seq, ack, window, opts, now)
                    ):
                        return
                if self._ack is not None:
                    self._ack_flush(now)
                conn.receive(seq, ack, flags, window, opts, payload, now, urgent)
                self._flush(conn, now)
                return
        # Odd flags are judged only here, after the lookup: on a connection they are its
        # business (RFC 5961 4.2: any SYN there draws a challenge ACK), and RFC 9293
        # 3.10.7.1 answers every segment without RST to a closed port with a reset.
        listener = self._listener_for(dst, dport)
        if listener is not None:
            if flags & (SYN | FIN) == SYN | FIN or flags & (SYN | RST) == SYN | RST:
                self._drop("bad_flags", flags)
            elif not flags & (SYN | RST | ACK | FIN):
                self._drop("no_flags")
            else:
                self._listen_segment(listener, header, sport, dport, seq, ack, flags, window,
                                     opts, payload, now, ifindex, iss_floor)  # fmt: skip
            return
        catch_all = self.catch_all
        if (
            catch_all is not None
            and flags & (SYN | ACK | RST | FIN) == SYN
            and catch_all(
                SynRequest(header, bytes(data[:hl]), sport, dport, seq, window, opts, ifindex),
                now,
            )
        ):
            self.syns_caught += 1
            return
        self._drop("no_connection", dport)
        self._reset_for(header, sport, dport, seq, ack, flags, len(payload), now, ifindex)

    def takes(self, local_ip: bytes, port: int, remote_ip: bytes, remote_port: int) -> bool:
        """Whether a SYN to ``local_ip``:``port`` from the remote end would find a listener
        or a connection here (a router's NAT asks before it holds one back)."""
        return (
            self._listener_for(local_ip, port) is not None
            or (local_ip, port, remote_ip, remote_port) in self.connections
        )

    def accept_request(
        self,
        request: SynRequest,
        accept: Callable[[TcpConnection], bool],
        now: float,
        config: TcpConfig | None = None,
    ) -> TcpConnection | None:
        """Answer a caught SYN as a listener would (RFC 9293 3.10.7.2): a connection in
        SYN-RECEIVED, its SYN-ACK sent; ``accept`` is called when it reaches ESTABLISHED
        (False refuses it with a reset). Data the SYN carried is not kept: the peer sends it
        again (RFC 9293 3.10.7.2 lets a listener queue it, not must).

        Returns:
            The connection, or None when it could not be made (the 4-tuple exists, the
            connection limit is reached, no route back): counted drops.
        """
        header = request.header
        key = (header.dst, request.dport, header.src, request.sport)
        if key in self.connections:
            self._drop("catch_all_exists")
            return None
        listener = Listener(header.dst, request.dport, 1, accept, config or self.config)
        self._listen_segment(
            listener, header, request.sport, request.dport, request.seq, 0, SYN,
            request.window, request.opts, memoryview(b""), now, request.ifindex,
        )  # fmt: skip
        return self.connections.get(key)

    def refuse_request(self, request: SynRequest, now: float, error: OSError | None = None) -> None:
        """Answer a caught SYN with the failure its destination gave: a reset for a refused
        connection (``ECONNREFUSED``, or no ``error``), as the destination itself would
        (RFC 9293 3.10.7.1); for an unreachable one, the ICMP Destination Unreachable a
        router sends (RFC 1812 4.3.3.1 / RFC 4443 3.1): network unreachable for
        ``ENETUNREACH``, host (IPv6: address) unreachable for anything else, a time-out
        included -- what a router says of a host that does not answer."""
        header = request.header
        if error is None or error.errno == errno.ECONNREFUSED:
            self._reset_for(header, request.sport, request.dport, request.seq, 0, SYN, 0, now,
                            request.ifindex)  # fmt: skip
            return
        code = "net" if error.errno == errno.ENETUNREACH else "host"
        self.ip.unreachable(header, memoryview(request.segment), code, now, request.ifindex)

    def _listener_for(self, ip: bytes, port: int) -> Listener | None:
        listener = self.listeners.get((ip, port)) or self.listeners.get((WILDCARD[len(ip)], port))
        return listener if listener is not None and not listener.closed else None

    def _time_wait_reopens(self, conn: TcpConnection, seq: int, opts: TcpOptions) -> bool:
        """RFC 6191 2: a new SYN may reuse a TIME-WAIT 4-tuple when it is newer."""
        if conn.ts_ok and opts.ts_val is not None:
            return diff(opts.ts_val, conn.ts_recent) > 0
        return diff(seq, conn.rcv_nxt) > 0

    def _listen_segment(
        self,
        listener: Listener,
        header: IPv4Header | IPv6Header,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        opts: TcpOptions,
        payload: memoryview,
        now: float,
        ifindex: int,
        iss_floor: int | None = None,
    ) -> None:
        """RFC 9293 3.10.7.2, LISTEN, for a segment that came in on interface ``ifindex``.
        ``iss_floor``: the lowest ISN the connection may take (a TIME-WAIT 4-tuple being
        reused)."""
        if flags & RST:
            self._drop("rst_to_listener")
            return
        local = (header.dst, dport)
        remote = (header.src, sport)
        if flags & ACK:
            if not flags & SYN and self.limits.syn_cookies and listener.cookies_sent:
                conn = self._cookie_ack(listener, local, remote, seq, ack, window, opts, now,
                                        ifindex)  # fmt: skip
                if conn is not None:
                    if payload or flags & FIN:
                        conn.receive(seq, ack, flags, window, opts, payload, now)
                    self._flush(conn, now)
                    return
            self._drop("ack_to_listener")
            self._reset_for(header, sport, dport, seq, ack, flags, len(payload), now, ifindex)
            return
        if not flags & SYN:
            self._drop("listener_no_syn")
            return
        if len(self.connections) >= self.limits.max_connections:
            self._drop("connection_limit")
            return
        if len(listener.half_open) >= listener.backlog:
            if not self.limits.syn_cookies:
                self._drop("syn_queue_full")
                return
            self._send_cookie(listener, local, remote, seq, opts, now, ifindex)
            return
        try:
            route = self.ip.route(header.src, header.dst, ifindex)
        except OSError as exc:
            self._drop("no_route", exc)
            return
        params = self._conn_params(local, remote, route, now, listener.config)
        if iss_floor is not None and diff(params.iss, iss_floor) < 0:
            params = replace(params, iss=iss_floor)
        conn = TcpConnection.accept(local, remote, seq, window, opts, now, params)
        conn.listener = listener
        listener.half_open.add(conn)
        self._register((header.dst, dport, header.src, sport), conn, route)
        self.passive_opens += 1
        self._flush(conn, now)

    def _send_cookie(
        self,
        listener: Listener,
        local: tuple[bytes, int],
        remote: tuple[bytes, int],
        seq: int,
        opts: TcpOptions,
        now: float,
        ifindex: int,
    ) -> None:
        try:
            route = self.ip.route(remote[0], local[0], ifindex)
        except OSError as exc:
            self._drop("no_route", exc)
            return
        # RFC 9293 3.7.1: without an MSS option, what every path carries.
        default = self.ip.min_room(remote[0]) - TCP_HEADER_LEN
        ours = self._mss_for(route, now)
        mss = min(opts.mss or default, ours)
        config = listener.config
        timestamp: tuple[int, int] | None = None
        wscale: int | None = None
        sack = False
        bits = NO_COOKIE_OPTIONS
        if config.timestamps and opts.ts_val is not None:
            # The options ride in our timestamp's low bits (isn.py); without timestamps
            # there is nowhere to keep them.
            peer_wscale = opts.wscale if config.window_scaling else None
            sack = config.sack and opts.sack_permitted
            bits = cookie_options(peer_wscale, sack)
            ts_now = self._isn.ts_offset(local[0], remote[0]) + int(now * 1000)
            timestamp = (cookie_ts(ts_now & 0xFFFFFFFF, bits), opts.ts_val)
            if peer_wscale is not None:
                wscale = TcpConnection.window_shift(config.recv_buffer)
        iss = self._isn.cookie(local, remote, seq, mss, now, bits)
        listener.cookies_sent += 1
        self.syn_cookies_sent += 1
        options = emit_options(
            mss=ours, wscale=wscale, sack_permitted=sack, timestamp=timestamp,
        )  # fmt: skip
        seg = Segment(iss, add(seq, 1), SYN | ACK, min(config.recv_buffer, 0xFFFF), options)
        self._transmit(route, local[1], remote[1], seg, now)

    def _cookie_ack(
        self,
        listener: Listener,
        local: tuple[bytes, int],
        remote: tuple[bytes, int],
        seq: int,
        ack: int,
        window: int,
        opts: TcpOptions,
        now: float,
        ifindex: int,
    ) -> TcpConnection | None:
        iss = add(ack, -1)
        irs = add(seq, -1)
        ecr = opts.ts_ecr if opts.ts_val is not None else None
        cookie = self._isn.check_cookie(local, remote, irs, iss, now, ecr)
        if cookie is None:
            return None
        if len(self.connections) >= self.limits.max_connections:
            return None
        try:
            route = self.ip.route(remote[0], local[0], ifindex)
        except OSError:
            return None
        params = self._conn_params(local, remote, route, now, listener.config, iss)
        conn = TcpConnection.from_cookie(
            local, remote, params, irs=irs, peer_mss=cookie.mss, window=window, now=now,
            peer_wscale=cookie.wscale, sack=cookie.sack,
            ts_recent=opts.ts_val if cookie.timestamps else None,
        )  # fmt: skip
        self._register((local[0], local[1], remote[0], remote[1]), conn, route)
        self.syn_cookies_accepted += 1
        self.passive_opens += 1
        conn.listener = listener
        return conn

    def _reset_for(
        self,
        header: IPv4Header | IPv6Header,
        sport: int,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        length: int,
        now: float,
        ifindex: int = 0,
    ) -> None:
        """RFC 9293 3.10.7.1: the reset that answers a segment for no connection."""
        if flags & RST:
            return
        try:
            route = self.ip.route(header.src, header.dst, ifindex)
        except OSError:
            return
        if flags & ACK:
            seg = Segment(ack, 0, RST, 0)
        else:
            seg_len = length + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            seg = Segment(0, add(seq, seg_len), RST | ACK, 0)
        self.resets_sent += 1
        self._transmit(route, dport, sport, seg, now)

    # -- after every input: segments out, events up, timers ----------------------------------
    def _send(self, conn: TcpConnection, now: float) -> None:
        segments = conn.segments_to_send()
        if segments:
            route = conn.route
            if route is not None:
                lport, rport = conn.local[1], conn.remote[1]
                iface = route.iface
                offloads = iface.eth.offloads if iface is not None and not route.local else None
                # (Not ``if offloads``: Offloads.__bool__ is a call; TSO implies it is true.)
                if offloads is not None and (
                    offloads.tso4 if len(route.dst) == 4 else offloads.tso6
                ):
                    # The connection's next bursts may come as super-segments (TSO).
                    conn.gso_max = _GSO_MAX - iface.headroom
                    if len(segments) > 1 or len(segments[0].payload) > conn.mss:
                        self._send_super(route, lport, rport, segments, conn.mss, now)
                        if conn.ack_deferred:
                            self._deferred[conn] = None
                        return
                elif conn.gso_max:
                    # The link stopped taking super-segments (forwarding turned on, say):
                    # cut what the connection made for it.
                    conn.gso_max = 0
                    segments = _cut(segments, conn.mss)
                for seg in segments:
                    if seg.flags & RST:
                        self.resets_sent += 1
                    self._transmit(route, lport, rport, seg, now)
        if conn.ack_deferred:
            self._deferred[conn] = None

    def _flush(self, conn: TcpConnection, now: float) -> None:
        dispatching = self._dispatching
        if conn in dispatching:
            # A call from inside one of this connection's event callbacks (a protocol
            # writing from connection_made, say): send what it made, and leave the events
            # after this one to the flush that is handing them out. As asyncio does, a
            # protocol is never called while one of its callbacks runs.
            self._send(conn, now)
            return
        dispatching.add(conn)
        try:
            # Dispatching an event may make the connection send (an application writing
            # from its data callback, a refused connection being reset): loop until it is
            # quiet.
            for _ in range(16):
                self._send(conn, now)
                event = conn.next_event()
                if event is None:
                    break
                while event is not None:
                    self._dispatch(conn, event)
                    event = conn.next_event()
            else:
                conn.keep_events()  # left for a later flush: past the segments they view
        finally:
            dispatching.discard(conn)
        if conn.user is not None and self.on_flushed is not None:
            self.on_flushed(conn)
        if conn.state is _CLOSED:
            self._forget(conn)
            return
        at = conn.poll_at()
        # Only an earlier deadline needs a new heap entry; a later one is found when the
        # current entry fires (the connection then has nothing to do and is rescheduled).
        if at is not None and (conn.timer_at is None or at < conn.timer_at):
            conn.timer_at = at
            timers = self._timers
            heapq.heappush(timers, (at, next(self._tiebreak), conn))
            if len(timers) > 2 * len(self.connections) + 64:
                self._rebuild_timers()

    def _dispatch(self, conn: TcpConnection, event: Event) -> None:
        self.events_dispatched += 1
        listener: Listener | None = conn.listener
        if listener is not None:
            if isinstance(event, Connected):
                listener.half_open.discard(conn)
                conn.listener = None
                if listener.closed or not listener.accept(conn):
                    conn.abort(0.0)
                    while conn.next_event() is not None:
                        pass  # never handed to the application: nobody to tell
                    return
            if isinstance(event, ConnectionReset | ConnectionClosed):
                listener.half_open.discard(conn)
                return  # never handed to the application
        if self.on_event is not None:
            self.on_event(conn, event)

    def _send_super(
        self, route: Route, sport: int, dport: int, segments: list[Segment], mss: int,
        now: float,
    ) -> None:  # fmt: skip
        """TSO: a segment of more than ``mss`` bytes (the connection's bulk burst, made
        for :attr:`TcpConnection.gso_max`), and runs of full-sized segments that differ only
        in their sequence numbers (the same ACK, window and options; PSH only on the last),
        go out as one super-segment of up to 64 KiB with ``gso_size`` = the segment size,
        for the link (the kernel, or a memory link's peer) to cut back into the same
        segments. The connection still keeps account of every MSS: congestion control, the
        RACK/SACK scoreboard and retransmissions work per MSS as without offloads (a loss
        resends one MSS, not the super-segment)."""
        i = 0
        n = len(segments)
        iface = route.iface
        headers = iface.headroom - 14 + TCP_HEADER_LEN if iface is not None else 60
        transmit = self._transmit
        while i < n:
            first = segments[i]
            size = len(first.payload)
            if size > mss:
                self._transmit(route, sport, dport, first, now, gso=mss)
                i += 1
                continue
            j = i + 1
            if size and first.flags == ACK:
                budget = 65535 - headers - len(first.options) - size
                seq, ack, window, options = first.seq, first.ack, first.window, first.options
                while j < n and budget >= size:
                    seg = segments[j]
                    m = len(seg.payload)
                    if (
                        not 0 < m <= size
                        or seg.seq != (seq + size * (j - i)) & 0xFFFFFFFF
                        or seg.flags & ~PSH != ACK
                        or seg.ack != ack
                        or seg.window != window
                        or seg.options != options
                    ):
                        break
                    budget -= m
                    j += 1
                    if m < size or seg.flags & PSH:
                        break  # a short or pushed segment ends the run, as it ends a write
            if j - i > 1:
                self._transmit(route, sport, dport, first, now, segments[i:j])
            else:
                if first.flags & RST:
                    self.resets_sent += 1
                transmit(route, sport, dport, first, now)
            i = j

    def _transmit(
        self, route: Route, sport: int, dport: int, seg: Segment, now: float,
        run: list[Segment] | None = None, gso: int = 0,
    ) -> None:  # fmt: skip
        """Build the frame of one segment (wire.build_into's work, with the pseudo-header
        sum of the route cached) and hand it to the route's interface, IPv4 or IPv6. The
        pseudo-header sums of both families are the same expression while the length fits 16
        bits (RFC 8200 8.1)."""
        options = seg.options
        olen = len(options)
        iface = route.iface or self.ip.first_iface(route.dst)
        room = iface.headroom
        data_at = room + TCP_HEADER_LEN + olen
        offloads = iface.eth.offloads
        flags = seg.flags
        if run is None:
            payload = seg.payload
            length = TCP_HEADER_LEN + olen + len(payload)
            frame = (OffloadFrame if gso or offloads.csum and not route.local else bytearray)(
                room + length
            )
            if payload:
                frame[data_at:] = payload
        else:
            # A super-segment: the run's payloads are consecutive, so they go in one after
            # the other; the last one's PSH is the super-segment's (the link keeps it on the
            # last piece only, as Linux's tcp_gso_segment does).
            size = sum(len(part.payload) for part in run)
            length = TCP_HEADER_LEN + olen + size
            frame = OffloadFrame(room + length)
            at = data_at
            for part in run:
                p = part.payload
                frame[at : at + len(p)] = p
                at += len(p)
            flags = run[-1].flags
        if olen:
            frame[room + TCP_HEADER_LEN : data_at] = options
        _HEADER.pack_into(frame, room, sport, dport, seg.seq, seg.ack,
                          ((5 + (olen >> 2)) << 12) | flags, seg.window, 0,
                          seg.urgent)  # fmt: skip
        base = self._pseudo_sums.get(route)
        if base is None:
            base = self._pseudo_sums[route] = pseudo_header_sum(route.src, route.dst, 6, 0)
            if len(self._pseudo_sums) > 4096:
                self._pseudo_sums.clear()
        if frame.__class__ is OffloadFrame:
            # The checksum is left to the link (NEEDS_CSUM): the field holds the folded
            # pseudo-header sum, length included; the link sums from the TCP header on.
            _CHECKSUM.pack_into(frame, room + 16, (base + length) % 0xFFFF)
            if run is not None or gso:
                size = len(run[0].payload) if run is not None else gso
                kind = GSO_TCPV4 if len(route.dst) == 4 else GSO_TCPV6
                frame.meta = FrameMeta(NEEDS_CSUM, kind, data_at, size, room, 16)
                self.tx_segments += len(run) if run is not None else -(-len(seg.payload) // gso)
                self.tx_super_segments += 1
            else:
                frame.meta = FrameMeta(NEEDS_CSUM, 0, 0, 0, room, 16)
        else:
            _CHECKSUM.pack_into(frame, room + 16, checksum(memoryview(frame)[room:], base + length))
        if run is None and not gso:
            self.tx_segments += 1
        try:
            # RFC 1191 / RFC 8201: TCP never fragments and learns the path MTU from ICMP.
            iface.output(frame, route, _TCP, now, df=True)
        except OSError as exc:
            self._drop("output_error", exc)

    def _forget(self, conn: TcpConnection) -> None:
        key = conn.key
        if key is not None and self.connections.get(key) is conn:
            del self.connections[key]
        conn.timer_at = None
        conn.route = conn.user = conn.listener = None
        # The connection's counters move to the layer's (most connections have none).
        if conn.retransmits or conn.challenge_acks:
            self.retransmits += conn.retransmits
            self.challenge_acks += conn.challenge_acks
            conn.retransmits = conn.challenge_acks = 0
        drops = conn.drops
        if drops:
            for reason, n in drops.items():
                self.drops[reason] = self.drops.get(reason, 0) + n
            drops.clear()
        if (
            conn.timeouts
            or conn.fast_recoveries
            or conn.loss_probes
            or conn.undos
            or conn.dsacks_sent
        ):
            for name in self._LOSS_COUNTERS:
                setattr(self, name, getattr(self, name) + getattr(conn, name))
                setattr(conn, name, 0)

    # -- user calls through the layer ------------------------------------------------------
    def call(self, conn: TcpConnection, now: float) -> None:
        """Flush a connection after a user call (send, close, ...)."""
        if self._gro is not None and self._gro.conn is conn:
            self._gro_flush(now)
        if self._ack is not None and self._ack.conn is conn:
            self._ack_flush(now)
        self._flush(conn, now)

    def _hold_ack(
        self, conn: TcpConnection, seq: int, ack: int, window: int, opts: TcpOptions,
        now: float,
    ) -> bool:  # fmt: skip
        """Hold a plain cumulative ACK until the batch ends, merging the ones after it that
        continue it (the same connection and sequence number, a later ACK): only the last
        goes up, standing for them all (``acks_merged``), as a GRO-based stack's receive
        path sees one ACK for a burst. The window, the timestamps and the RTT sample are the
        last one's. False: not one to hold (see :meth:`TcpConnection.takes_merged_ack`)."""
        held = self._ack
        if held is not None:
            if held.conn is conn and seq == held.seq and _continues(held, ack, opts.ts_val):
                held.ack, held.window = ack, window
                held.ts_val, held.ts_ecr = opts.ts_val, opts.ts_ecr
                held.count += 1
                self.acks_merged += 1
                return True
            self._ack_flush(now)
        if not conn.takes_merged_ack(ack):
            return False
        self._ack = _HeldAck(conn, seq, ack, window, opts)
        return True

    def _live(self, conn: TcpConnection) -> bool:
        """Whether ``conn`` is still this layer's (not aborted meanwhile)."""
        key = conn.key
        return key is not None and self.connections.get(key) is conn

    def _ack_flush(self, now: float) -> None:
        """Hand the held ACK to its connection, as the ACKs it stands for."""
        held = self._ack
        if held is None:
            return
        self._ack = None
        conn = held.conn
        if not self._live(conn):
            return  # gone meanwhile
        opts = held.opts
        if held.ts_val != opts.ts_val or held.ts_ecr != opts.ts_ecr:
            opts = opts._replace(ts_val=held.ts_val, ts_ecr=held.ts_ecr)
        conn.acks_merged = held.count
        try:
            conn.receive(held.seq, held.ack, ACK, held.window, opts, _EMPTY, now, 0)
        finally:
            conn.acks_merged = 1
        self._flush(conn, now)

    def note_ack_frame(self, frame: memoryview, owner: object) -> None:
        """The held ACK's latest came in ``frame``, received by ``owner``: when the frame is
        a plain IPv4 or IPv6 one holding exactly that ACK (no padding), with no options or
        NOP, NOP, timestamps, keep its headers as the template of :meth:`merge_ack_frame`."""
        held = self._ack
        if held is None or held.owner is not None:
            return
        held.owner = False
        n = len(frame)
        l4 = _plain_l4(frame) if n >= 54 else 0
        if not l4:
            return
        src, dst = held.conn.remote[0], held.conn.local[0]
        base = (pseudo_header_sum if l4 == 34 else pseudo_header_sum6)(src, dst, 6, 0)
        hlen = l4 + ((frame[l4 + 12] >> 4) << 2)
        if hlen != n or hlen - l4 not in (20, 32):
            return
        if hlen - l4 == 32 and frame[l4 + 20 : l4 + 24] != _TS_LAYOUT:
            return
        if (hlen - l4 == 32) != (held.ts_val is not None):
            return
        held.l4, held.hlen, held.base = l4, hlen, base
        held.mask = mask = _ack_mask(l4, hlen)
        held.tmpl = int.from_bytes(frame, "big") & mask
        held.owner = owner

    def merge_ack_frame(self, held: _HeldAck, frame: memoryview) -> bool:
        """Merge ``frame`` into the held ACK if it is the next plain ACK of its connection:
        the template's headers (addresses, ports, TTL or hop limit, sequence number, flags,
        options layout), a sound IPv4 header checksum and TCP checksum, and an ACK that
        continues the held one (:func:`_continues`). False, with nothing changed, for a
        frame that must go the whole way up."""
        hlen = held.hlen
        if len(frame) != hlen or int.from_bytes(frame, "big") & held.mask != held.tmpl:
            return False
        l4 = held.l4
        if l4 == 34 and int.from_bytes(frame[14:34], "big") % 0xFFFF:
            return False  # a bad IPv4 header: dropped and counted on the way up
        if not verify(frame[l4:], held.base + hlen - l4):
            return False
        if hlen - l4 == 32:
            ack, window, ts_val, ts_ecr = _ACK_FIELDS.unpack_from(frame, l4 + 8)
        else:
            ack, window = _ACK_FIELDS_BARE.unpack_from(frame, l4 + 8)
            ts_val, ts_ecr = None, 0
        if not _continues(held, ack, ts_val):
            return False
        held.ack, held.window, held.ts_val, held.ts_ecr = ack, window, ts_val, ts_ecr
        held.count += 1
        self.rx_segments += 1
        self.acks_merged += 1
        return True

    def _gro_flush(self, now: float) -> None:
        """Hand the coalesced segment to its connection."""
        held = self._gro
        if held is None:
            return
        self._gro = None
        conn = held.conn
        if not self._live(conn):
            return  # gone meanwhile (aborted by a callback): as if it came after
        conn.receive(held.seq, held.ack, held.flags, held.window, held.opts,
                     memoryview(held.data), now, 0)  # fmt: skip
        self._flush(conn, now)

    def note_frame(self, frame: memoryview, owner: object) -> None:
        """The segment held just now came in ``frame``, received by ``owner`` (an interface's
        Ethernet layer): when it is a plain IPv4 frame (no IP options, not a fragment) or a
        plain IPv6 one (TCP right after the fixed header), without padding, keep its headers
        as the template the burst's next frames are matched against in :meth:`merge_frame`."""
        held = self._gro
        if held is None or held.owner is not None:
            return
        held.owner = False
        n = len(frame)
        l4 = _plain_l4(frame) if n >= 74 else 0
        if not l4:
            return
        if l4 == 34:
            fields, base = _FRAME_FIELDS, pseudo_header_sum(held.src, held.dst, 6, 0)
        else:
            fields, base = _FRAME_FIELDS6, pseudo_header_sum6(held.src, held.dst, 6, 0)
        hlen = l4 + ((frame[l4 + 12] >> 4) << 2)
        length, seq, _ = fields.unpack_from(frame)
        if length != n - (14 if l4 == 34 else 54) or seq != held.seq or n - hlen != held.size:
            return
        held.l4, held.hlen, held.fields, held.base = l4, hlen, fields, base
        held.mask = mask = _frame_mask(l4, hlen)
        held.tmpl = int.from_bytes(frame[:hlen], "big") & mask
        held.owner = owner

    def merge_frame(self, held: _Held, frame: memoryview, now: float) -> bool:
        """Append ``frame`` to the held burst if it continues it: the template's headers
        (the same addresses, ports, TTL or hop limit, ACK, window, options; see
        :func:`_frame_mask`), the next sequence number, no larger than the first, a sound
        IPv4 header checksum and TCP checksum. What the Ethernet, IP and TCP layers would
        check of it, the template's first frame passed with the same bytes. Returns False,
        with nothing changed, for a frame that must go the whole way up."""
        n = len(frame)
        hlen = held.hlen
        size = n - hlen
        if not 0 < size <= held.size or len(held.data) + size > _GRO_MAX:
            return False
        if int.from_bytes(frame[:hlen], "big") & held.mask != held.tmpl:
            return False
        length, seq, flags = held.fields.unpack_from(frame)
        if seq != held.end:
            return False
        l4 = held.l4
        if l4 == 34:
            if length != n - 14:
                return False
            if int.from_bytes(frame[14:34], "big") % 0xFFFF:
                return False  # a bad IPv4 header: dropped and counted on the way up
        elif length != n - 54:
            return False
        if not verify(frame[l4:], held.base + n - l4):
            return False  # a bad checksum: likewise
        self._gro_append(held, frame[hlen:], seq, flags, now)
        return True

    def _gro_append(
        self, held: _Held, payload: memoryview, seq: int, flags: int, now: float
    ) -> None:
        """Append the next segment of the held burst (checked by the caller)."""
        size = len(payload)
        held.data += payload
        held.end = (seq + size) & 0xFFFFFFFF
        held.flags |= flags
        self.rx_segments += 1
        self.gro_merged += 1
        if flags & PSH or size < held.size:
            self._gro_flush(now)  # the end of a burst: up at once

    def flush_acks(self, now: float) -> None:
        """End a batch of received frames: hand over the segment coalesced so far, then
        send the ACKs deferred meanwhile: one per connection, built now (GRO-like: one ACK
        answers a burst)."""
        if self._gro is not None:
            self._gro_flush(now)
        if self._ack is not None:
            self._ack_flush(now)
        deferred = self._deferred
        if deferred:
            self._deferred = {}
            for conn in deferred:
                route = conn.route
                seg = conn.take_deferred_ack(now)
                if seg is not None and route is not None:
                    self._transmit(route, conn.local[1], conn.remote[1], seg, now)

    def _rebuild_timers(self) -> None:
        """Drop stale heap entries: they would keep closed connections alive until their
        old deadlines pass, and the heap would grow with every rescheduling."""
        tiebreak = self._tiebreak
        self._timers = [
            (c.timer_at, next(tiebreak), c)
            for c in self.connections.values()
            if c.timer_at is not None
        ]
        heapq.heapify(self._timers)

    # -- time ------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        timers = self._timers
        while timers:
            at, _, conn = timers[0]
            if conn.timer_at == at:
                return at
            heapq.heappop(timers)
        return None

    def handle_timeout(self, now: float) -> None:
        if self._gro is not None:
            self._gro_flush(now)
        if self._ack is not None:
            self._ack_flush(now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, _, conn = heapq.heappop(timers)
            if conn.timer_at != at:
                continue
            conn.timer_at = None
            conn.handle_timeout(now)
            self._flush(conn, now)

    # -- ICMP ------------------------------------------------------------------------------
    def ip_error(
        self, src: bytes, dst: bytes, payload: memoryview, exc: OSError | None,
        room: int | None, now: float,
    ) -> None:  # fmt: skip
        """An ICMP or ICMPv6 error quoting a segment from ``src`` to ``dst`` (the facade's
        shape): soft or hard per RFC 1122 4.2.3.9 and RFC 5461, or a new path MTU (RFC 1191,
        RFC 8201) when ``room`` is set."""
        conn = self._quoted_connection(src, dst, payload)
        if conn is None:
            return
        if room is not None:
            # The connection counts 40 bytes of headers (RFC 1191's MTU less 40 is its MSS):
            # IPv6's 20 more come off the room here (RFC 8201 5.4).
            if exc is None:
                exc = OSError(errno.EMSGSIZE, "packet too big")
            conn.icmp_error(exc, now, mtu=room + IPV4_HEADER_LEN)
        else:
            if exc is None:
                return
            conn.icmp_error(exc, now)
        self._flush(conn, now)

    def ip_unresolved(
        self, src: bytes, dst: bytes, payload: memoryview, exc: OSError | None,
        room: int | None, now: float,
    ) -> None:  # fmt: skip
        """A segment lost because ARP or neighbour discovery found nobody at its next hop
        (RFC 1122 2.3.2.2, RFC 4861 7.2.2)."""
        self._local_error(src, dst, payload, exc, now)

    def _local_error(
        self, src: bytes, dst: bytes, payload: memoryview, exc: OSError | None, now: float
    ) -> None:
        conn = self._quoted_connection(src, dst, payload)
        if conn is None or exc is None:
            return
        conn.icmp_error(exc, now, local=True)
        self._flush(conn, now)

    def _quoted_connection(
        self, src: bytes, dst: bytes, payload: memoryview
    ) -> TcpConnection | None:
        """The connection an ICMP or ICMPv6 error quotes a segment of, if it is believable."""
        sport = int.from_bytes(payload[0:2], "big")
        dport = int.from_bytes(payload[2:4], "big")
        seq = int.from_bytes(payload[4:8], "big")
        conn = self.connections.get((src, sport, dst, dport))
        if conn is None:
            self._drop("icmp_no_connection")
            return None
        # RFC 5927 4.1: the quoted sequence number must be in flight.
        if diff(seq, conn.snd_una) < 0 or diff(seq, conn.snd_max) >= 0:
            self._drop("icmp_bad_seq")
            return None
        return conn

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        live = list(self.connections.values())
        out["retransmits"] += sum(c.retransmits for c in live)
        out["challenge_acks"] += sum(c.challenge_acks for c in live)
        for name in self._LOSS_COUNTERS:
            out[name] += sum(getattr(c, name) for c in live)
        drops = out["drops"]
        for c in live:
            for reason, n in c.drops.items():
                drops[reason] = drops.get(reason, 0) + n
        states: dict[str, int] = {}
        for c in live:
            states[c.state.value] = states.get(c.state.value, 0) + 1
        out["connections"] = len(live)
        out["states"] = states
        out["listeners"] = len(self.listeners)
        return out
