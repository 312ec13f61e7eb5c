"""The link interface every transport implements, mirroring MirageOS's ``Mirage_net.S``.

A link moves whole Ethernet frames (14-byte header included, no FCS). ``write`` and ``writev``
send one frame each; ``listen`` delivers every received frame to a callback until the link is
disconnected. The callback gets a :class:`memoryview` that is only valid during the call: a
receiver that keeps bytes copies them.

Links written in this package also offer :meth:`BaseLink.transmit`, a synchronous, non-blocking
way to hand over a frame. The stack uses it on its per-packet path so that sending a packet does
not create a coroutine; any other object that satisfies :class:`Link` works too, through a queue
and one writer task (see :class:`QueuedTransmitter`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

from ..errors import LinkError
from .offload import NEEDS_CSUM, NO_OFFLOADS, FrameMeta, Offloads, segment

__all__ = [
    "BaseLink",
    "Buffer",
    "FrameCallback",
    "OffloadFrameCallback",
    "Link",
    "LinkStats",
    "MacAddress",
    "QueuedTransmitter",
    "ETHERNET_HEADER_LEN",
]

log = logging.getLogger(__name__)

Buffer = bytes | bytearray | memoryview
FrameCallback = Callable[[memoryview], None]
#: on_offload_frame(frame, meta): a frame with its offload metadata (see :mod:`.offload`).
OffloadFrameCallback = Callable[[memoryview, FrameMeta], None]

#: Destination, source and EtherType.
ETHERNET_HEADER_LEN = 14
#: Room for one 802.1Q tag beyond the MTU, as Linux allows on receive.
_VLAN_TAG_LEN = 4


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class MacAddress(bytes):
    """A 6-byte Ethernet address; ``str()`` gives the usual ``02:00:5e:10:00:01`` form."""

    __slots__ = ()

    def __new__(cls, value: str | bytes | bytearray | memoryview) -> MacAddress:
        if isinstance(value, str):
            parts = value.replace("-", ":").split(":")
            if len(parts) != 6 or not all(
                1 <= len(p) <= 2 and all(ch in _HEX_DIGITS for ch in p) for p in parts
            ):
                raise ValueError(f"not a MAC address: {value!r}")
            try:
                raw = bytes(int(p, 16) for p in parts)
            except ValueError:
                raise ValueError(f"not a MAC address: {value!r}") from None
        else:
            raw = bytes(value)
        if len(raw) != 6:
            raise ValueError(f"a MAC address is 6 bytes, got {len(raw)}")
        return super().__new__(cls, raw)

    @classmethod
    def random(cls) -> MacAddress:
        """A random unicast, locally administered address (RFC 7042 2.1: U/L bit set)."""
        raw = bytearray(secrets.token_bytes(6))
        raw[0] = (raw[0] & 0xFC) | 0x02
        return cls(raw)

    @property
    def is_multicast(self) -> bool:
        """True for group addresses, broadcast included (I/G bit set)."""
        return bool(self[0] & 1)

    @property
    def is_broadcast(self) -> bool:
        return self == BROADCAST_MAC

    def __str__(self) -> str:
        return ":".join(f"{b:02x}" for b in self)

    def __repr__(self) -> str:
        return f"MacAddress('{self}')"


BROADCAST_MAC = MacAddress(b"\xff" * 6)


@dataclass(slots=True)
class LinkStats:
    """Counters of one link. ``rx_dropped``/``tx_dropped`` count frames the link itself lost
    (no listener, queue full, impairment loss, oversize)."""

    rx_packets: int = 0
    rx_bytes: int = 0
    rx_dropped: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    tx_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@runtime_checkable
class Link(Protocol):
    """What the stack needs from a link (``Mirage_net.S``).

    ``mtu`` is the payload size of a frame, without the 14-byte Ethernet header. Errors are
    :class:`netstack.LinkError`; a link never fails silently.

    Offloads are opt-in by capability: a link that can take or give more than whole,
    checksummed, MTU-sized frames says so in an ``offloads`` attribute
    (:class:`~netstack.link.offload.Offloads`), and only then is ``write``/``writev`` (and
    ``transmit``) called with a second argument, ``meta``
    (:class:`~netstack.link.offload.FrameMeta`: partial checksum, super-segment and its
    ``gso_size``), and ``listen`` with ``on_offload_frame=``, a callback that takes
    ``(frame, meta)`` for frames that come with metadata. A link without ``offloads`` is
    never called either way.
    """

    mac: MacAddress
    mtu: int

    async def write(self, frame: Buffer) -> None:
        """Send one frame."""

    async def writev(self, parts: Sequence[Buffer]) -> None:
        """Send ONE frame gathered from ``parts``."""

    async def listen(self, on_frame: FrameCallback) -> None:
        """Deliver each received frame to ``on_frame`` until the link is disconnected."""

    def stats(self) -> LinkStats:
        """A snapshot of the counters."""

    def reset_stats(self) -> None:
        """Set every counter to zero."""

    async def disconnect(self) -> None:
        """Close the link; ``listen`` returns and later writes raise :class:`LinkError`."""


class BaseLink:
    """Shared machinery for this package's links: stats, listen/disconnect and the write
    methods, all built on :meth:`transmit`, which subclasses implement."""

    mac: MacAddress
    mtu: int
    #: What this link takes and gives beyond plain frames (none unless a subclass says so).
    offloads: Offloads = NO_OFFLOADS

    def __init__(self, *, mac: MacAddress | None = None, mtu: int = 1500) -> None:
        if not 68 <= mtu <= 65535:
            raise ValueError(f"mtu must be between 68 and 65535, got {mtu}")
        self.mac = mac if mac is not None else MacAddress.random()
        self.mtu = mtu
        self._stats = LinkStats()
        self._on_frame: FrameCallback | None = None
        self._on_offload_frame: OffloadFrameCallback | None = None
        self._closed = False
        self._listen_done: asyncio.Future[None] | None = None

    # -- sending ---------------------------------------------------------------------------
    @property
    def max_frame_len(self) -> int:
        return self.mtu + ETHERNET_HEADER_LEN + _VLAN_TAG_LEN

    def transmit(self, frame: bytes | bytearray, meta: FrameMeta | None = None) -> None:
        """Hand one whole frame to the link without waiting.

        ``meta`` (only for a link whose ``offloads`` allow it) marks the frame's transport
        checksum partial, or the frame a super-segment of up to 64 KiB to be cut into
        ``meta.gso_size`` pieces (:mod:`netstack.link.offload`).

        The link takes ownership of ``frame``: the caller must not change it afterwards. This
        never blocks; a frame the link cannot queue is dropped and counted in ``tx_dropped``,
        as a network card does when its ring is full.

        Raises:
            LinkError: the link is disconnected, or the frame is shorter than an Ethernet
                header or longer than the MTU allows.
        """
        raise NotImplementedError

    def _check_frame(self, length: int, meta: FrameMeta | None = None) -> None:
        if self._closed:
            raise LinkError(f"{self!r} is disconnected")
        if length < ETHERNET_HEADER_LEN:
            raise LinkError(f"a frame needs at least {ETHERNET_HEADER_LEN} bytes, got {length}")
        if meta is not None:
            if not self.offloads:
                raise LinkError(f"{self!r} takes no offload metadata")
            if meta.gso_type and length <= 65535 + ETHERNET_HEADER_LEN + _VLAN_TAG_LEN:
                return  # a super-segment: the pieces are MTU-sized, not the frame
        if length > self.mtu + ETHERNET_HEADER_LEN + _VLAN_TAG_LEN:  # max_frame_len, inline
            raise LinkError(
                f"frame of {length} bytes exceeds the link's MTU {self.mtu} (+ Ethernet header)"
            )

    async def write(self, frame: Buffer, meta: FrameMeta | None = None) -> None:
        self.transmit(bytes(frame), meta)

    async def writev(self, parts: Sequence[Buffer], meta: FrameMeta | None = None) -> None:
        self.transmit(b"".join(parts), meta)

    # -- receiving -------------------------------------------------------------------------
    async def listen(
        self, on_frame: FrameCallback, *, on_offload_frame: OffloadFrameCallback | None = None
    ) -> None:
        """Deliver frames until disconnected. ``on_offload_frame(frame, meta)`` gets the
        frames that come with offload metadata; without it, such frames are cut and
        completed in software first (:func:`netstack.link.offload.segment`), so a listener
        that knows nothing of offloads sees only plain frames."""
        if self._closed:
            raise LinkError(f"{self!r} is disconnected")
        if self._on_frame is not None:
            raise LinkError(f"{self!r} already has a listener")
        self._on_frame = on_frame
        self._on_offload_frame = on_offload_frame
        self._listen_done = asyncio.get_running_loop().create_future()
        self._start_listening()
        try:
            await self._listen_done
        finally:
            self._on_frame = None
            self._on_offload_frame = None
            self._stop_listening()

    def _start_listening(self) -> None:
        """Hook: begin delivering frames (register fds, drain queues)."""

    def _stop_listening(self) -> None:
        """Hook: stop delivering frames."""

    def _deliver(self, frame: bytes | bytearray | memoryview) -> None:
        """Give one received frame to the listener, counting it (or the drop)."""
        on_frame = self._on_frame
        if on_frame is None or self._closed:
            self._stats.rx_dropped += 1
            return
        self._stats.rx_packets += 1
        self._stats.rx_bytes += len(frame)
        try:
            on_frame(memoryview(frame))
        except Exception:  # a listener bug must not take the link down
            log.exception("frame callback of %r raised", self)

    def _deliver_offload(self, frame: bytes | bytearray | memoryview, meta: FrameMeta) -> None:
        """Give one received frame with offload metadata to the listener: as it is when the
        listener takes metadata, else as the plain frames the wire would have carried."""
        on_offload = self._on_offload_frame
        if on_offload is None or self._closed:
            if not meta.flags & NEEDS_CSUM and not meta.gso_type:
                self._deliver(frame)  # DATA_VALID alone: a hint the listener cannot take
                return
            try:
                pieces = segment(frame, meta)
            except ValueError as exc:
                log.debug("%r dropped a frame with bad offload metadata: %s", self, exc)
                self._stats.rx_dropped += 1
                return
            for piece in pieces:
                self._deliver(piece)
            return
        self._stats.rx_packets += 1
        self._stats.rx_bytes += len(frame)
        try:
            on_offload(memoryview(frame), meta)
        except Exception:  # a listener bug must not take the link down
            log.exception("frame callback of %r raised", self)

    # -- the rest of the interface -----------------------------------------------------------
    def stats(self) -> LinkStats:
        s = self._stats
        return LinkStats(
            s.rx_packets, s.rx_bytes, s.rx_dropped, s.tx_packets, s.tx_bytes, s.tx_dropped
        )

    def reset_stats(self) -> None:
        self._stats = LinkStats()

    @property
    def closed(self) -> bool:
        return self._closed

    async def disconnect(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close()
        if self._listen_done is not None and not self._listen_done.done():
            self._listen_done.set_result(None)

    def _close(self) -> None:
        """Hook: release resources."""


class QueuedTransmitter:
    """Sends frames through any :class:`Link` from synchronous code.

    For links that only have ``async write``: frames go into a bounded queue that one task
    drains, in order. A full queue drops the frame (counted), like a NIC's transmit ring.
    """

    def __init__(self, link: Link, *, limit: int = 1024) -> None:
        self._link = link
        self._queue: collections.deque[tuple[bytes | bytearray, FrameMeta | None]] = (
            collections.deque()
        )
        self._limit = limit
        self._wakeup: asyncio.Event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.error: BaseException | None = None

    def transmit(self, frame: bytes | bytearray, meta: FrameMeta | None = None) -> None:
        if self.error is not None:
            raise LinkError(f"link write failed: {self.error}") from self.error
        if len(self._queue) >= self._limit:
            self.dropped += 1
            return
        self._queue.append((frame, meta))
        if self._task is None:
            # A context of its own, not that of the code whose frame happened to go first.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), context=contextvars.Context()
            )
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                frame, meta = self._queue.popleft()
                try:
                    if meta is None:
                        await self._link.write(frame)
                    else:  # only for a link that advertised offloads
                        await self._link.write(frame, meta)  # type: ignore[call-arg]
                except Exception as exc:  # reported to the next transmit() call
                    log.warning("link write failed: %s", exc)
                    self.error = exc
                    self._queue.clear()
                    return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
