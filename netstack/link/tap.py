"""A link on a Linux TAP device: whole Ethernet frames through ``/dev/net/tun``.

:meth:`TapLink.open` asks the tun driver for a TAP interface (``IFF_TAP | IFF_NO_PI``, so each
``read`` and ``write`` on the file descriptor is exactly one Ethernet frame, without the
4-byte packet-information prefix). The kernel sees an ordinary Ethernet interface with its own
MAC address; netstack sits at the far end of that virtual cable with a different, random,
locally administered MAC, as a second host would. Frames the kernel sends out of the interface
arrive on the descriptor, and frames written to the descriptor arrive at the kernel as if from
the wire.

The descriptor is non-blocking and lives on the event loop: while someone listens, a reader
callback drains up to 64 frames per wake-up. Sending is synchronous (:meth:`TapLink.transmit`):
a frame is written at once; only if the kernel refuses for now (``EAGAIN``) does it wait in a
bounded queue that a writer callback flushes in order. The device is not persistent, so the
kernel deletes it when the descriptor is closed (:meth:`TapLink.disconnect`).

Opening a TAP device needs ``CAP_NET_ADMIN``. To keep traffic on the machine, put the device
in a network namespace of its own: :func:`netstack.netns.open_tap_in_namespace` does that.
Works on the default asyncio loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import logging
import os
import socket
import struct
from collections.abc import Sequence

from ..errors import LinkError
from .base import ETHERNET_HEADER_LEN, BaseLink, Buffer, MacAddress
from .offload import (
    GSO_ECN,
    GSO_TCPV4,
    GSO_TCPV6,
    NEEDS_CSUM,
    NO_OFFLOADS,
    SOFT_GSO,
    VNET_HDR,
    FrameMeta,
    Offloads,
    check,
    cut_tcp,
    segment,
)

__all__ = ["TapLink"]

log = logging.getLogger(__name__)

TUN_PATH = "/dev/net/tun"


def _iow(kind: str, nr: int, size: int, direction: int = 1) -> int:
    """``_IOW`` from ``asm-generic/ioctl.h`` (x86, arm, arm64, riscv, s390); ``direction``
    2 gives ``_IOR``. Alpha, MIPS, PowerPC and SPARC lay the direction bits out differently;
    netstack does not run there."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | nr


# From linux/if_tun.h: the ioctl that attaches the descriptor to a named interface
# (``_IOW('T', 202, int)``) and the flags it takes in ``ifr_flags``.
TUNSETIFF = _iow("T", 202, 4)
IFF_TAP = 0x0002  # Ethernet frames (IFF_TUN would be bare IP packets)
IFF_NO_PI = 0x1000  # no 4-byte flags/protocol prefix before each frame
IFF_VNET_HDR = 0x4000  # a struct virtio_net_hdr before each frame: offload metadata
TUNGETFEATURES = _iow("T", 207, 4, direction=2)
TUNSETOFFLOAD = _iow("T", 208, 4)
TUNSETVNETHDRSZ = _iow("T", 216, 4)
# TUNSETOFFLOAD takes its flags as the argument itself (not a pointer): what the kernel may
# hand this device (and so netstack) unfinished.
TUN_F_CSUM = 0x01  # partial checksums (required by all the others)
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_USO4 = 0x20  # UDP segmentation offload, Linux 6.2 and later
TUN_F_USO6 = 0x40
#: The header netstack asks for (virtio_net_hdr_v1: the legacy 10 bytes and num_buffers).
VNET_HDR_LEN = VNET_HDR.size
#: ``NETSTACK_OFFLOAD=0`` in the environment turns offloads off for links opened with the
#: default (a whole test or benchmark run without them).
OFFLOAD_ENV = "NETSTACK_OFFLOAD"

# From linux/sockios.h: read and set an interface's MTU through any socket.
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922

#: IFNAMSIZ in linux/if.h, the terminating NUL included.
IFNAMSIZ = 16

# struct ifreq is the 16-byte name and a 24-byte union (struct ifmap is its largest member
# on 64-bit); the kernel copies all 40 bytes, so the buffer must be that long.
_IFREQ_FLAGS = struct.Struct("16sH22x")
_IFREQ_INT = struct.Struct("16si20x")
_UINT = struct.Struct("I")
_INT = struct.Struct("i")

# Enough for the largest frame an interface can send (MTU 65535, Ethernet header, one VLAN
# tag): the kernel truncates a frame that does not fit the read buffer without saying so.
_READ_SIZE = 65535 + ETHERNET_HEADER_LEN + 4 + VNET_HDR_LEN
#: Frames read per wake-up, so one busy device cannot starve the rest of the loop.
_READ_BATCH = 64
#: Frames that may wait for the kernel to take them, like a NIC's transmit ring.
_TX_QUEUE_LIMIT = 1024

# Errors from write() that lose one frame but leave the device usable: EIO while the
# interface is down (the kernel refuses frames then), kernel memory pressure, and a frame
# the kernel found malformed.
_TRANSIENT_TX_ERRORS = frozenset({errno.EIO, errno.ENOBUFS, errno.ENOMEM, errno.EINVAL})


def _validate_name(name: str) -> bytes:
    raw = name.encode("ascii", "strict") if name.isascii() else b""
    if name and not raw:
        raise ValueError(f"interface names are ASCII, got {name!r}")
    if len(raw) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} characters")
    if name in (".", "..") or any(c in name for c in "/:\0") or any(c.isspace() for c in name):
        raise ValueError(f"not a valid interface name: {name!r}")
    return raw


def _open_error(exc: OSError, what: str) -> LinkError:
    """Turn an OSError from opening the device into a LinkError that names the cause."""
    code = exc.errno
    if code in (errno.EPERM, errno.EACCES):
        reason = (
            "needs CAP_NET_ADMIN (run as root, or grant the capability, e.g. "
            "`setcap cap_net_admin+ep` on the interpreter)"
        )
    elif code == errno.ENOENT:
        reason = f"{TUN_PATH} missing (load the tun module: `modprobe tun`)"
    elif code in (errno.ENODEV, errno.ENXIO):
        reason = "the tun driver is not available in this kernel (`modprobe tun`)"
    elif code == errno.EBUSY:
        reason = "the name is taken by an interface of another kind, or one already in use"
    elif code == errno.EINVAL:
        reason = "the name belongs to an existing TUN (not TAP) device, or is invalid"
    else:
        reason = exc.strerror or str(exc)
    return LinkError(code or errno.EIO, f"{what}: {reason}")


def _interface_mtu(name: bytes, new_mtu: int | None) -> int:
    """Read (or set, then read back) an interface's MTU in the current network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        if new_mtu is not None:
            fcntl.ioctl(sock.fileno(), SIOCSIFMTU, _IFREQ_INT.pack(name, new_mtu))
        result = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, _IFREQ_INT.pack(name, 0))
    mtu: int = _IFREQ_INT.unpack(result)[1]
    return mtu


def _features(fd: int) -> int:
    """TUNGETFEATURES: the IFF_* flags this kernel's tun driver supports."""
    try:
        result = fcntl.ioctl(fd, TUNGETFEATURES, _UINT.pack(0))
    except OSError:
        return 0
    features: int = _UINT.unpack(result)[0]
    return features


def _has_uso(fd: int) -> bool:
    """Whether the kernel knows TUN_F_USO4/6 (it refuses unknown flags with EINVAL)."""
    try:
        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6)
    except OSError:
        return False
    finally:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, TUNSETOFFLOAD, 0)
    return True


class TapLink(BaseLink):
    """One end of a Linux TAP interface; the kernel's network stack is at the other end.

    Create it with :meth:`open`. ``mac`` is netstack's own address on this cable, not the
    kernel interface's. ``name`` is the interface name the kernel gave.
    """

    name: str

    def __init__(
        self,
        fd: int,
        name: str,
        *,
        mac: MacAddress | None = None,
        mtu: int,
        offloads: Offloads = NO_OFFLOADS,
        gso: bool = True,
    ) -> None:
        """Wrap an already configured TAP descriptor; most code wants :meth:`open`.

        Args:
            fd: a non-blocking descriptor attached to a TAP interface with ``IFF_NO_PI``.
                The link owns it from now on and closes it on disconnect.
            name: the interface's name.
            mac: netstack's MAC address on the link; random when ``None``.
            mtu: the interface's MTU.
            offloads: what the descriptor was opened for: anything but none means it has
                ``IFF_VNET_HDR`` with a 12-byte header (:data:`VNET_HDR_LEN`).
            gso: without offloads, still take TCP super-segments from the stack and cut
                them here, in software, just before the descriptor (:attr:`tx_offloads`;
                Linux's GSO in front of a device without TSO). The kernel sees the same
                plain, checksummed, MTU-sized frames either way.

        Raises:
            ValueError: ``mtu`` out of range.
        """
        super().__init__(mac=mac, mtu=mtu)
        self.offloads = offloads
        self._vnet = bool(offloads)
        #: What the link takes from a stack: its offloads, or software GSO without them.
        self.tx_offloads = offloads if self._vnet else SOFT_GSO if gso else NO_OFFLOADS
        #: The header of a plain frame: no flags, no GSO.
        self._plain_hdr = VNET_HDR.pack(0, 0, 0, 0, 0, 0, 0)
        # One buffer for every read: a frame is handed on as a view of it, valid during
        # the listener's call (the Link contract), so reading costs no allocation.
        self._rbuf = bytearray(_READ_SIZE)
        self._rview = memoryview(self._rbuf)
        self._fd = fd
        self.name = name
        self._tx_queue: collections.deque[tuple[Buffer, ...]] = collections.deque()
        self._reader_loop: asyncio.AbstractEventLoop | None = None
        self._writer_loop: asyncio.AbstractEventLoop | None = None
        self._error: LinkError | None = None

    @classmethod
    def open(
        cls,
        name: str,
        *,
        mac: MacAddress | None = None,
        mtu: int | None = None,
        offload: bool | None = None,
        gso: bool = True,
    ) -> TapLink:
        """Create (or attach to) the TAP interface ``name`` and return a link on it.

        The interface is created in the calling process's network namespace, down and without
        addresses; the kernel deletes it again when the link is disconnected (unless it was
        made persistent beforehand, e.g. by ``ip tuntap add``).

        Args:
            name: interface name, at most 15 characters; may contain ``%d`` for the kernel to
                pick a number, and an empty name gives ``tap%d``.
            mac: netstack's MAC address on the link; a random locally administered one when
                ``None``. The kernel's side keeps its own address.
            mtu: set the interface's MTU to this; when ``None``, use the interface's MTU.
            offload: ``IFF_VNET_HDR`` with checksum, TSO (IPv4 and IPv6) and, where the kernel
                has it, USO offloads (:attr:`offloads`): TCP super-segments of up to 64 KiB
                both ways, checksums left to whoever verifies or completes them. ``None``
                (the default) turns them on where the kernel supports them, unless the
                environment says ``NETSTACK_OFFLOAD=0``; ``False`` keeps plain frames.
            gso: without offloads, cut the stack's TCP super-segments in the link (software
                GSO, see :meth:`__init__`); ``False`` leaves segmenting to TCP itself.

        Returns:
            The link, not yet listening.

        Raises:
            ValueError: the name or the MTU is not valid.
            LinkError: the device cannot be opened; the message names the cause (no
                ``CAP_NET_ADMIN``, no ``/dev/net/tun``, name taken, ...).
        """
        raw_name = _validate_name(name)
        if mtu is not None and not 68 <= mtu <= 65535:
            raise ValueError(f"mtu must be between 68 and 65535, got {mtu}")
        try:
            fd = os.open(TUN_PATH, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise _open_error(exc, f"cannot open {TUN_PATH}") from exc
        try:
            if offload is None:
                offload = os.environ.get(OFFLOAD_ENV, "1").strip().lower() not in (
                    "0", "no", "off", "false",
                )  # fmt: skip
            flags = IFF_TAP | IFF_NO_PI
            if offload and _features(fd) & IFF_VNET_HDR:
                flags |= IFF_VNET_HDR
            try:
                result = fcntl.ioctl(fd, TUNSETIFF, _IFREQ_FLAGS.pack(raw_name, flags))
            except OSError as exc:
                raise _open_error(exc, f"cannot create TAP device {name!r}") from exc
            offloads = NO_OFFLOADS
            if flags & IFF_VNET_HDR:
                try:
                    fcntl.ioctl(fd, TUNSETVNETHDRSZ, _INT.pack(VNET_HDR_LEN))
                    # Nothing unfinished comes our way until a listener takes metadata.
                    fcntl.ioctl(fd, TUNSETOFFLOAD, 0)
                except OSError as exc:
                    raise LinkError(
                        exc.errno or errno.EIO, f"cannot set up offloads: {exc}"
                    ) from exc
                offloads = Offloads(csum=True, tso4=True, tso6=True, uso=_has_uso(fd))
            actual = _IFREQ_FLAGS.unpack(result)[0].split(b"\0", 1)[0].decode("ascii")
            # O_NONBLOCK at open() already covers this; set it again in case the driver or a
            # wrapper ignored it, because a blocking read would stall the whole event loop.
            os.set_blocking(fd, False)
            try:
                device_mtu = _interface_mtu(actual.encode("ascii"), mtu)
            except OSError as exc:
                action = (
                    f"set the MTU of {actual!r} to {mtu}"
                    if mtu is not None
                    else f"read {actual!r} MTU"
                )
                raise LinkError(exc.errno or errno.EIO, f"cannot {action}: {exc}") from exc
            return cls(fd, actual, mac=mac, mtu=device_mtu, offloads=offloads, gso=gso)
        except BaseException:
            os.close(fd)
            raise

    def fileno(self) -> int:
        """The TAP descriptor (for ``select``/``poll`` or for handing it on).

        Returns:
            The file descriptor number.

        Raises:
            LinkError: the link is disconnected.
        """
        if self._closed:
            raise LinkError(errno.EBADF, f"{self!r} is disconnected")
        return self._fd

    # -- sending ---------------------------------------------------------------------------
    def transmit(self, frame: bytes | bytearray, meta: FrameMeta | None = None) -> None:
        """Write one frame to the device without waiting (see :meth:`BaseLink.transmit`).

        With offloads, ``meta`` may leave the transport checksum to the kernel
        (``NEEDS_CSUM``) and make the frame a super-segment the kernel cuts into
        ``meta.gso_size`` pieces (``GSO_TCPV4``/``GSO_TCPV6``), as a NIC with TSO does.

        A frame the kernel cannot take right now waits in a queue of up to 1024 frames; beyond
        that, and while the interface is down (the kernel answers ``EIO``), frames are dropped
        and counted in ``tx_dropped``.

        Raises:
            LinkError: the link is disconnected, the frame's size is wrong, metadata was given
                to a link without offloads, or the device has gone (for example its
                namespace was deleted).
        """
        if meta is not None and not self._vnet:
            self._send_cut(frame, meta)
            return
        self._check_frame(len(frame), meta)
        self._send((self._header(meta), frame) if self._vnet else (frame,), len(frame))

    def _send_cut(self, frame: bytes | bytearray, meta: FrameMeta) -> None:
        """Software GSO: the frames the kernel would have cut from ``frame``, written one by
        one, each gathered from its own headers and a view of the payload."""
        if self._closed:
            raise LinkError(f"{self!r} is disconnected")
        if not self.tx_offloads:
            raise LinkError(f"{self!r} takes no offload metadata")
        reason = check(frame, meta)
        if reason is not None:
            raise LinkError(f"bad offload metadata: {reason}")
        if meta.gso_size > self.mtu:
            raise LinkError(f"gso_size {meta.gso_size} exceeds the MTU {self.mtu}")
        if meta.gso_type & ~GSO_ECN in (GSO_TCPV4, GSO_TCPV6) and meta.flags & NEEDS_CSUM:
            pieces = cut_tcp(frame, meta)
            fd, stats = self._fd, self._stats
            sent = 0
            # _send's work, inline while the kernel takes every piece; the rest (an error
            # to raise, frames waiting, EAGAIN) goes through _send.
            for parts in pieces:
                if self._error is not None or self._tx_queue:
                    break
                try:
                    os.writev(fd, parts)
                except BlockingIOError:
                    break
                except OSError as exc:
                    sent += 1
                    self._write_failed(exc)
                    continue
                sent += 1
                stats.tx_packets += 1
                stats.tx_bytes += len(parts[0]) + len(parts[1])
            for header, payload in pieces[sent:]:
                self._send((header, payload), len(header) + len(payload))
        else:
            for piece in segment(frame, meta):
                self._check_frame(len(piece))
                self._send((piece,), len(piece))

    async def writev(self, parts: Sequence[Buffer], meta: FrameMeta | None = None) -> None:
        """Send ONE frame gathered from ``parts`` with one ``writev`` system call: the
        pieces (headers, payload views) are never joined in Python (``Mirage_net.writev``).

        Raises:
            LinkError: as :meth:`transmit`.
        """
        length = sum(len(p) for p in parts)
        self._check_frame(length, meta)
        if self._vnet:
            self._send((self._header(meta), *parts), length)
        else:
            self._send(tuple(parts), length)

    def _header(self, meta: FrameMeta | None) -> bytes:
        if meta is None:
            return self._plain_hdr
        return VNET_HDR.pack(*meta, 0)

    def _send(self, parts: tuple[Buffer, ...], length: int) -> None:
        if self._error is not None:
            raise self._error
        if self._tx_queue:
            # Frames already waiting go first, or the kernel would see them out of order.
            self._enqueue(parts)
            return
        try:
            if len(parts) == 1:
                os.write(self._fd, parts[0])  # a plain frame: no iovec to build
            else:
                os.writev(self._fd, parts)
        except BlockingIOError:
            self._enqueue(parts)
            return
        except OSError as exc:
            self._write_failed(exc)
            return
        # A tun write takes the whole frame or nothing, so there is no partial write.
        self._stats.tx_packets += 1
        self._stats.tx_bytes += length

    def _enqueue(self, parts: tuple[Buffer, ...]) -> None:
        if len(self._tx_queue) >= _TX_QUEUE_LIMIT:
            self._stats.tx_dropped += 1
            return
        if self._writer_loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait on: the frame cannot wait, so it is lost
                self._stats.tx_dropped += 1
                return
            loop.add_writer(self._fd, self._flush)
            self._writer_loop = loop
        # Views may point into buffers their owner reuses: a frame that waits owns its bytes.
        self._tx_queue.append(tuple(p if isinstance(p, bytes) else bytes(p) for p in parts))

    def _flush(self) -> None:
        """Writer callback: send queued frames in order until the kernel pushes back again."""
        queue = self._tx_queue
        fd = self._fd
        stats = self._stats
        while queue:
            parts = queue[0]
            try:
                os.writev(fd, parts)
            except BlockingIOError:
                return
            except OSError as exc:
                queue.popleft()
                try:
                    self._write_failed(exc)
                except LinkError:
                    return  # _fail() has emptied the queue and told the listener
                continue
            queue.popleft()
            stats.tx_packets += 1
            stats.tx_bytes += sum(len(p) for p in parts) - (VNET_HDR_LEN if self._vnet else 0)
        self._remove_writer()

    def _write_failed(self, exc: OSError) -> None:
        self._stats.tx_dropped += 1
        if exc.errno in _TRANSIENT_TX_ERRORS:
            # The kernel refuses frames while the interface is down; a real NIC with no
            # carrier also loses them, so this is a drop, not an error.
            log.debug("%r dropped a frame: %s", self, exc)
            return
        raise self._fail(exc)

    def _remove_writer(self) -> None:
        loop = self._writer_loop
        self._writer_loop = None
        if loop is not None and not loop.is_closed():
            loop.remove_writer(self._fd)

    # -- receiving -------------------------------------------------------------------------
    def _start_listening(self) -> None:
        if self._error is not None:
            # The device went away earlier: end listen() at once with that error.
            if self._listen_done is not None:
                self._listen_done.set_exception(self._error)
            return
        if self._vnet:
            self._set_rx_offloads(self._on_offload_frame is not None)
        loop = asyncio.get_running_loop()
        loop.add_reader(self._fd, self._on_readable)
        self._reader_loop = loop

    def _set_rx_offloads(self, on: bool) -> None:
        """What the kernel may hand over unfinished: everything the link advertises while a
        listener takes metadata, else nothing (the kernel then completes checksums and
        segments before the frame reaches the descriptor)."""
        flags = 0
        if on:
            flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6
            if self.offloads.uso:
                flags |= TUN_F_USO4 | TUN_F_USO6
        try:
            fcntl.ioctl(self._fd, TUNSETOFFLOAD, flags)
        except OSError as exc:
            log.warning("%r: cannot set receive offloads: %s", self, exc)

    def _stop_listening(self) -> None:
        loop = self._reader_loop
        self._reader_loop = None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._fd)

    def _on_readable(self) -> None:
        fd = self._fd
        deliver = self._deliver
        deliver_offload = self._deliver_offload
        buf = [self._rbuf]
        view = self._rview
        vnet = self._vnet
        # With IFF_VNET_HDR, each frame comes behind its virtio_net_hdr.
        skip = VNET_HDR_LEN if vnet else 0
        unpack = VNET_HDR.unpack_from
        for _ in range(_READ_BATCH):
            try:
                n = os.readv(fd, buf)
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(exc)
                return
            if n <= skip:
                if not n:
                    # tun never returns an empty frame from a live device; carrying on would
                    # spin the loop on a descriptor that stays readable.
                    self._fail(OSError(errno.ENODEV, "end of file on the TAP device"))
                    return
                self._stats.rx_dropped += 1  # a header without a frame
                continue
            if vnet:
                flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, _ = unpack(view)
                if flags or gso_type:
                    deliver_offload(view[skip:n], FrameMeta(flags, gso_type, hdr_len, gso_size,
                                                            csum_start, csum_offset))  # fmt: skip
                else:
                    deliver(view[skip:n])
            else:
                deliver(view[:n])
            if self._reader_loop is None:  # the listener disconnected the link meanwhile
                return

    # -- failure and closing -----------------------------------------------------------------
    def _fail(self, exc: OSError) -> LinkError:
        """The device is unusable (deleted with its namespace, or detached): stop the
        callbacks, drop what waits, and end ``listen`` with the error."""
        if self._error is None:
            reason = exc.strerror or str(exc)
            if exc.errno in (errno.EBADFD, errno.ENODEV):
                # What tun answers once its interface is unregistered, which happens to a
                # TAP device whose network namespace is deleted.
                reason += " (the device is gone: was its namespace deleted?)"
            self._error = LinkError(
                exc.errno or errno.EIO, f"TAP device {self.name!r} failed: {reason}"
            )
            self._error.__cause__ = exc
            log.warning("%s", self._error)
        self._stop_listening()
        self._remove_writer()
        self._stats.tx_dropped += len(self._tx_queue)
        self._tx_queue.clear()
        done = self._listen_done
        if done is not None and not done.done():
            done.set_exception(self._error)
        return self._error

    def close(self) -> None:
        """Close the device now, from synchronous code (error paths, finalizers).

        Same effect as ``await disconnect()``: ``listen`` returns, later writes raise
        :class:`LinkError`, and the kernel deletes the (non-persistent) interface.
        """
        if self._closed:
            return
        self._closed = True
        self._close()
        done = self._listen_done
        if done is not None and not done.done():
            # Closing after the loop itself closed (a late finalizer) must still release the
            # device; no one can be waiting on that loop any more.
            with contextlib.suppress(RuntimeError):
                done.set_result(None)

    def _close(self) -> None:
        self._stop_listening()
        self._remove_writer()
        self._stats.tx_dropped += len(self._tx_queue)
        self._tx_queue.clear()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<TapLink {self.name} {self.mac} mtu={self.mtu}{state}>"
