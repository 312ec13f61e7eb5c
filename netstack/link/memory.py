"""In-memory links: a virtual cable (:meth:`MemoryLink.pair`), a learning switch
(:class:`Switch`) and seeded network impairments (:class:`Impairment`).

Frames cross a memory link on the event loop, never inside the sender's call: a frame is queued
on the receiving side and all queued frames are delivered in one loop callback, so a burst of
sends costs one wake-up and no call stack grows across hosts. With an :class:`Impairment`, the
same seed and the same sequence of frames give the same losses, duplicates, reorderings and
corruptions, so a failing test can be replayed from its seed.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .base import BaseLink, MacAddress
from .offload import FrameMeta, Offloads, segment

__all__ = ["Impairment", "ImpairmentStats", "MemoryLink", "Switch"]

Deliver = Callable[[bytes | bytearray], None]
#: What crosses the cable: a frame, or a frame with its offload metadata.
_Item = bytes | bytearray | tuple[bytes | bytearray, FrameMeta]
#: The virtual offload of a memory link: partial checksums and TCP super-segments cross the
#: cable as they are, like two virtio devices on one host.
VIRTUAL_OFFLOADS = Offloads(csum=True, tso4=True, tso6=True)


@dataclass(frozen=True, slots=True)
class Impairment:
    """What a memory link does to the frames that cross it.

    Args:
        loss: probability that a frame is lost.
        duplicate: probability that a frame is delivered twice.
        reorder: probability that a frame is held back by ``reorder_delay`` seconds while the
            frames after it go ahead.
        delay: one-way delay in seconds.
        jitter: the delay varies uniformly by up to this many seconds either way (frames stay
            in order; use ``reorder`` to reorder).
        corrupt: probability that one random bit of a frame is flipped.
        rate: link speed in bits per second (frames queue behind each other); ``None`` for
            no limit.
        limit: frames that may wait in the link (delayed or queued behind ``rate``); more are
            dropped at the tail, like a router's queue.
        reorder_delay: how long a reordered frame is held back.
        seed: the seed of the random decisions; chosen at random when ``None`` and then kept
            in this attribute, so a failure can be replayed.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    corrupt: float = 0.0
    rate: float | None = None
    limit: int = 1000
    reorder_delay: float = 0.001
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {p}")
        for name in ("delay", "jitter", "reorder_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive bits per second, or None")
        if self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.seed is None:
            object.__setattr__(self, "seed", secrets.randbits(32))


@dataclass(slots=True)
class ImpairmentStats:
    """What an impairment did, per direction."""

    frames: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    overflowed: int = 0


class _Impairer:
    """The random decisions for one direction of one link. Each frame draws the same number
    of random values whatever happens to it, so frame *n*'s fate depends only on the seed and
    *n*, not on timing."""

    def __init__(self, config: Impairment, stream: str) -> None:
        self.config = config
        self._rng = random.Random(f"netstack-impairment:{config.seed}:{stream}")
        self._last_at = 0.0  # FIFO: no frame leaves before the one sent before it
        self._busy_until = 0.0  # the rate limiter's serialisation clock
        self.in_flight = 0
        # Frames held back, as (due time, sequence number, in order, frame, deliver). Event
        # loops fire timers due at the same instant in any order, and uvloop rounds delays to
        # whole milliseconds (running one that rounds to zero before the timers already due),
        # so each timer releases the earliest frame held rather than "its" frame: the order
        # frames leave in depends only on the seed and the frames sent, not on the timers.
        self.held: list[tuple[float, int, bool, bytes | bytearray, Deliver]] = []
        self.held_in_order = 0
        self._held_seq = 0
        self.stats = ImpairmentStats()

    def schedule(
        self, frame: bytes | bytearray, now: float
    ) -> list[tuple[float, bytes | bytearray, bool]]:
        """Where ``frame`` goes: a list of (delivery time, frame, in order), empty when lost.
        Frames in order have non-decreasing times; a reordered one has its own."""
        c = self.config
        rng = self._rng
        r_loss, r_dup, r_reorder, r_corrupt, r_jitter, r_bit = (rng.random() for _ in range(6))
        self.stats.frames += 1
        if r_loss < c.loss:
            self.stats.lost += 1
            return []
        if self.in_flight >= c.limit:
            self.stats.overflowed += 1
            return []
        at = now
        if c.rate is not None:
            start = max(now, self._busy_until)
            self._busy_until = start + len(frame) * 8 / c.rate
            at = self._busy_until
        at += c.delay
        if c.jitter:
            at += (2.0 * r_jitter - 1.0) * c.jitter
        if r_corrupt < c.corrupt and frame:
            bit = int(r_bit * len(frame) * 8)
            corrupted = bytearray(frame)
            corrupted[bit >> 3] ^= 1 << (bit & 7)
            frame = corrupted
            self.stats.corrupted += 1
        in_order = r_reorder >= c.reorder
        if in_order:
            at = max(at, now, self._last_at)
            self._last_at = at
        else:
            self.stats.reordered += 1
            at = max(at, now) + c.reorder_delay
        out = [(at, frame, in_order)]
        if r_dup < c.duplicate:
            self.stats.duplicated += 1
            out.append((at, frame, in_order))
        return out

    def hold(self, at: float, frame: bytes | bytearray, in_order: bool, deliver: Deliver) -> None:
        """Keep ``frame`` until ``at``; the caller starts one timer per frame held."""
        self.in_flight += 1
        self.held_in_order += in_order
        self._held_seq += 1
        heapq.heappush(self.held, (at, self._held_seq, in_order, frame, deliver))


class MemoryLink(BaseLink):
    """One end of an in-memory cable, or one port of a :class:`Switch`.

    Use :meth:`pair` for two hosts on one cable and :meth:`Switch.port` for more.

    With ``offload=True`` the link advertises a virtual offload (:attr:`offloads`): a stack
    hands it TCP super-segments of up to 64 KiB and leaves checksums partial, and a receiver
    that takes offload metadata gets them as they are, so two stacks in one process exchange
    super-segments. A receiver that does not, and any impairment, see the MTU-sized frames
    with complete checksums that the wire would carry (cut in software).
    """

    def __init__(
        self,
        *,
        mac: MacAddress | None = None,
        mtu: int = 1500,
        impairment: Impairment | None = None,
        rx_limit: int = 4096,
        offload: bool = False,
    ) -> None:
        super().__init__(mac=mac, mtu=mtu)
        if offload:
            self.offloads = VIRTUAL_OFFLOADS
        self._peer: Callable[..., None] | None = None
        self._rx: collections.deque[_Item] = collections.deque()
        self._rx_limit = rx_limit
        self._drain_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tx_impairer: _Impairer | None = None
        self._rx_impairer: _Impairer | None = None
        self._impair_rx = False
        self._stream = "a"
        if impairment is not None:
            self.impairment = impairment

    @classmethod
    def pair(
        cls, mtu: int = 1500, *, impairment: Impairment | None = None, offload: bool = False
    ) -> tuple[MemoryLink, MemoryLink]:
        """Two links joined by a cable. ``impairment`` applies to both directions, each with
        its own random stream derived from the seed; ``offload`` gives both ends the virtual
        offload (super-segments and partial checksums cross the cable)."""
        a = cls(mtu=mtu, offload=offload)
        b = cls(mtu=mtu, offload=offload)
        b._stream = "b"
        a._peer = b._receive
        b._peer = a._receive
        if impairment is not None:
            a.impairment = impairment
            b.impairment = impairment
        return a, b

    # -- impairment ------------------------------------------------------------------------
    @property
    def impairment(self) -> Impairment | None:
        """The impairment on frames this link sends (and, on a switch port, receives).
        Setting it takes effect for the next frame; ``None`` removes it."""
        return self._tx_impairer.config if self._tx_impairer is not None else None

    @impairment.setter
    def impairment(self, value: Impairment | None) -> None:
        if value is None:
            self._tx_impairer = self._rx_impairer = None
            return
        self._tx_impairer = _Impairer(value, f"{self._stream}:tx")
        self._rx_impairer = _Impairer(value, f"{self._stream}:rx") if self._impair_rx else None

    def impairment_stats(self) -> dict[str, ImpairmentStats]:
        """What the impairment did so far, per direction (``tx``, and ``rx`` on switch ports)."""
        out = {}
        if self._tx_impairer is not None:
            out["tx"] = self._tx_impairer.stats
        if self._rx_impairer is not None:
            out["rx"] = self._rx_impairer.stats
        return out

    # -- sending ---------------------------------------------------------------------------
    def transmit(self, frame: bytes | bytearray, meta: FrameMeta | None = None) -> None:
        self._check_frame(len(frame), meta)
        peer = self._peer
        impairer = self._tx_impairer
        if meta is not None and (impairer is not None or peer is None):
            # An impairment acts on what the wire carries: the pieces, checksums complete.
            for piece in segment(frame, meta):
                self.transmit(piece)
            return
        self._stats.tx_packets += 1
        self._stats.tx_bytes += len(frame)
        if peer is None:  # an unplugged cable
            self._stats.tx_dropped += 1
            return
        if impairer is None:
            if meta is None:
                peer(frame)
            else:
                peer(frame, meta)
        elif not self._impaired(impairer, frame, peer):
            self._stats.tx_dropped += 1

    def _impaired(self, impairer: _Impairer, frame: bytes | bytearray, deliver: Deliver) -> bool:
        """Send ``frame`` through ``impairer`` to ``deliver``; False when it was lost."""
        loop = self._get_loop()
        now = loop.time()
        plan = impairer.schedule(frame, now)
        for at, out, in_order in plan:
            # A frame already due leaves now, unless it is in order and one sent before it is
            # still held (its timer has not run yet on a busy loop).
            if at <= now and not (in_order and impairer.held_in_order):
                deliver(out)
                continue
            impairer.hold(at, out, in_order, deliver)
            loop.call_at(at, self._release_next, impairer)
        return bool(plan)

    @staticmethod
    def _release_next(impairer: _Impairer) -> None:
        impairer.in_flight -= 1
        _, _, in_order, frame, deliver = heapq.heappop(impairer.held)
        if in_order:
            impairer.held_in_order -= 1
        deliver(frame)

    # -- receiving -------------------------------------------------------------------------
    def _get_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _receive(self, frame: bytes | bytearray, meta: FrameMeta | None = None) -> None:
        """Entry point for frames arriving from the cable or the switch."""
        if self._closed or self._on_frame is None:
            self._stats.rx_dropped += 1
            return
        impairer = self._rx_impairer
        if meta is not None:
            if impairer is None:
                self._enqueue((frame, meta))
                return
            try:
                pieces = segment(frame, meta)
            except ValueError:
                self._stats.rx_dropped += 1
                return
            for piece in pieces:
                self._receive(piece)
            return
        if impairer is None:
            self._enqueue(frame)
        elif not self._impaired(impairer, frame, self._enqueue):
            self._stats.rx_dropped += 1

    def _enqueue(self, item: _Item) -> None:
        if len(self._rx) >= self._rx_limit:
            self._stats.rx_dropped += 1
            return
        self._rx.append(item)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self._get_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        rx = self._rx
        deliver = self._deliver
        # Only the frames queued so far: frames that arrive meanwhile wait for the next turn
        # of the loop, so one busy link cannot starve the others.
        for _ in range(len(rx)):
            item = rx.popleft()
            if isinstance(item, tuple):
                self._deliver_offload(memoryview(item[0]).toreadonly(), item[1])
            else:
                deliver(memoryview(item).toreadonly())

    def _stop_listening(self) -> None:
        self._rx.clear()

    def _close(self) -> None:
        self._rx.clear()

    def __repr__(self) -> str:
        return f"<MemoryLink {self.mac} mtu={self.mtu}>"


@dataclass(slots=True)
class _Port:
    link: MemoryLink
    index: int


@dataclass(slots=True)
class SwitchStats:
    forwarded: int = 0
    flooded: int = 0
    filtered: int = 0
    learned: int = 0


class Switch:
    """A learning Ethernet switch with any number of ports (IEEE 802.1D in miniature).

    Frames to a known unicast address go out of the one port it was learned on; broadcast,
    multicast and unknown unicast frames are flooded to every port but the one they came in
    on. Learned addresses age out after ``aging`` seconds.
    """

    def __init__(self, *, mtu: int = 1500, aging: float = 300.0, offload: bool = False) -> None:
        self.mtu = mtu
        #: Whether new ports get the memory link's virtual offload (super-segments cross
        #: the switch whole to ports that take them).
        self.offload = offload
        self.aging = aging
        self._ports: list[_Port] = []
        self._table: dict[bytes, tuple[_Port, float]] = {}
        self.stats = SwitchStats()
        self._stream_id = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def port(
        self,
        *,
        mac: MacAddress | None = None,
        mtu: int | None = None,
        impairment: Impairment | None = None,
        offload: bool | None = None,
    ) -> MemoryLink:
        """A new port, returned as the link a host plugs in. ``impairment`` applies to the
        frames this host sends and to those it receives, each with its own random stream;
        ``offload`` (the switch's setting when ``None``) the virtual offload."""
        link = MemoryLink(
            mac=mac,
            mtu=mtu if mtu is not None else self.mtu,
            offload=self.offload if offload is None else offload,
        )
        link._impair_rx = True
        link._stream = f"port{len(self._ports)}"
        port = _Port(link, len(self._ports))
        link._peer = lambda frame, meta=None: self._forward(port, frame, meta)
        self._ports.append(port)
        if impairment is not None:
            link.impairment = impairment
        return link

    @property
    def ports(self) -> list[MemoryLink]:
        return [p.link for p in self._ports]

    def _now(self) -> float:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop.time()

    def _forward(
        self, ingress: _Port, frame: bytes | bytearray, meta: FrameMeta | None = None
    ) -> None:
        if len(frame) < 14:
            self.stats.filtered += 1
            return
        now = self._now()
        dst = bytes(frame[0:6])
        src = bytes(frame[6:12])
        if not src[0] & 1:
            known = self._table.get(src)
            if known is None or known[0] is not ingress:
                self.stats.learned += 1
            self._table[src] = (ingress, now)
        if not dst[0] & 1:
            entry = self._table.get(dst)
            if entry is not None and now - entry[1] <= self.aging:
                egress = entry[0]
                if egress is ingress:
                    self.stats.filtered += 1
                else:
                    self.stats.forwarded += 1
                    egress.link._receive(frame, meta)
                return
        self.stats.flooded += 1
        for port in self._ports:
            if port is not ingress:
                port.link._receive(frame, meta)
