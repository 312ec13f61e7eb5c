"""Packet captures: write libpcap files, read libpcap and pcapng files, record a link.

Formats:

- libpcap, the classic tcpdump "savefile" format (draft-ietf-opsawg-pcap): a 24-byte file
  header (magic ``0xa1b2c3d4`` for microsecond timestamps, ``0xa1b23c4d`` for nanosecond ones),
  then per packet a 16-byte record header (seconds, fraction, captured length, original length)
  and the bytes. Files come in the byte order of the machine that wrote them, so the reader
  takes both; this writer always writes little-endian.
  The upper bits of the file header's link-type field carry FCS information, as libpcap
  defines; the link type is the low 26 bits.
- pcapng, "PCAP Now Generic" (draft-ietf-opsawg-pcapng): a sequence of blocks, each
  ``type, total length, body, total length``. A Section Header Block (type ``0x0a0d0d0a``,
  section 4.1) starts every section and fixes its byte order with the magic ``0x1a2b3c4d``;
  Interface Description Blocks (type 1, section 4.2) list the section's interfaces, each with
  its own link type and, in the ``if_tsresol`` option (code 9), its timestamp unit: a negative
  power of ten, or of two when the top bit is set, microseconds when absent; ``if_tsoffset``
  (code 14) adds whole seconds. Packets come in Enhanced Packet Blocks (type 6, section 4.3),
  Simple Packet Blocks (type 3, section 4.4: interface 0, no timestamp) and the obsolete
  Packet Block (type 2, appendix A). Every other block is skipped.

:class:`PcapWriter` writes libpcap files cheaply (one precompiled struct per record, a
buffered file). :func:`read_pcap` reads either format, and raises :class:`ParseError` on a
truncated or malformed file, with every length bounded before anything is read.
:class:`PcapLink` wraps any :class:`~netstack.link.base.Link` and records every frame it sends
and receives, like smoltcp's pcap middleware. Over a link with offloads it records what the
wire carries: a super-segment is cut into its MTU-sized frames and a partial checksum is
completed, in software, before it is written (the link itself still gets the frame and its
metadata unchanged), so a capture always decodes with valid checksums.
"""

from __future__ import annotations

import inspect
import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple, Protocol, Self

from ..errors import LinkError, ParseError
from .base import Buffer, FrameCallback, Link, LinkStats, MacAddress, OffloadFrameCallback
from .offload import FrameMeta, Offloads, offloads_of, segment

__all__ = [
    "LINKTYPE_ETHERNET",
    "PcapLink",
    "PcapRecord",
    "PcapWriter",
    "PcapngInterface",
    "PcapngWriter",
    "read_pcap",
]

#: The link type of Ethernet frames (``LINKTYPE_ETHERNET``/``DLT_EN10MB``).
LINKTYPE_ETHERNET = 1

#: No block or record this reader accepts is longer than this; a larger length is garbage.
MAX_BLOCK_LEN = 64 * 1024 * 1024

_WRITE_BUFFER = 64 * 1024

_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_PCAP_VERSION = (2, 4)
# libpcap keeps FCS information in the top six bits of the link-type field.
_PCAP_LINKTYPE_MASK = 0x03FFFFFF

# The writer always uses little-endian order, so its output does not depend on the machine.
_PCAP_FILE_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")

# Classic pcap magic as it appears in the first four bytes -> (byte order, fraction units).
_PCAP_MAGICS: dict[bytes, tuple[str, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}

_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"  # a palindrome: the same in either byte order
_PCAPNG_BOM_LE = b"\x4d\x3c\x2b\x1a"
_PCAPNG_BOM_BE = b"\x1a\x2b\x3c\x4d"
_PCAPNG_VERSION_MAJOR = 1

_BT_PB = 2
_BT_IDB = 1
_BT_SPB = 3
_BT_EPB = 6

_OPT_ENDOFOPT = 0
_SHB_USERAPPL = 4
_IF_NAME = 2
_IF_TSRESOL = 9
_IF_TSOFFSET = 14

# The writer's blocks, little-endian: block type and total length, then the fixed body.
_PCAPNG_HEAD = struct.Struct("<II")
_PCAPNG_SHB_BODY = struct.Struct("<IHHq")  # byte-order magic, version 1.0, length unknown
_PCAPNG_IDB_BODY = struct.Struct("<HHI")
_PCAPNG_EPB_HEAD = struct.Struct("<IIIIIII")  # type, length, interface, ts high/low, lengths
_PCAPNG_OPTION = struct.Struct("<HH")
_U32LE = struct.Struct("<I")

# Minimum total lengths: 12 bytes of framing plus the fixed part of the body.
_MIN_SHB_LEN = 28
_MIN_BLOCK_LEN = 12
_MIN_LEN = {_BT_IDB: 20, _BT_PB: 32, _BT_SPB: 16, _BT_EPB: 32}


class PcapRecord(NamedTuple):
    """One captured packet.

    Attributes:
        timestamp: seconds since the Unix epoch (``0.0`` for a pcapng Simple Packet Block,
            which carries no time).
        linktype: the link type of the interface it was captured on (1 for Ethernet).
        data: the captured bytes, possibly fewer than ``orig_len``.
        orig_len: the packet's length on the wire.
        interface: the index of the pcapng interface it was captured on (0 in a libpcap
            file, which has one).
    """

    timestamp: float
    linktype: int
    data: bytes
    orig_len: int
    interface: int = 0


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _Writable(Protocol):
    def write(self, data: Buffer, /) -> object: ...

    def flush(self) -> None: ...


PathLike = str | os.PathLike[str]


# -- writing ---------------------------------------------------------------------------------


class _CaptureFile:
    """The file under a capture writer: opened from a path (and closed with the writer) or
    a file object (flushed, but left open)."""

    __slots__ = ("_file", "_owned", "_closed")

    def __init__(self, path_or_fileobj: PathLike | _Writable) -> None:
        self._closed = False
        self._file: _Writable
        self._owned: BinaryIO | None = None
        if isinstance(path_or_fileobj, str | os.PathLike):
            self._file = self._owned = open(path_or_fileobj, "wb", buffering=_WRITE_BUFFER)
        else:
            self._file = path_or_fileobj

    def _start(self, header: bytes) -> None:
        try:
            self._file.write(header)
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def flush(self) -> None:
        """Push buffered records to the operating system; does nothing once closed.

        Raises:
            OSError: writing to the file failed.
        """
        if not self._closed:
            self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if the writer opened it. Safe to call more than once.

        Raises:
            OSError: writing the last records failed.
        """
        if self._closed:
            return
        self._closed = True
        if self._owned is not None:
            self._owned.close()
        else:
            self._file.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PcapWriter(_CaptureFile):
    """Writes packets to a libpcap file.

    Args:
        path_or_fileobj: a path (the file is created, or truncated, and closed by
            :meth:`close`) or a binary file object opened for writing (flushed, but left open,
            by :meth:`close`).
        linktype: the link type of every packet; 1 is Ethernet.
        snaplen: the most bytes kept of each packet; longer packets are cut, and their
            original length recorded.
        nanosecond: write nanosecond timestamps (magic ``0xa1b23c4d``) instead of
            microsecond ones.

    Raises:
        ValueError: ``linktype`` or ``snaplen`` is out of range.
        OSError: the file cannot be created or written.
    """

    __slots__ = ("_units", "linktype", "snaplen", "nanosecond")

    def __init__(
        self,
        path_or_fileobj: PathLike | _Writable,
        *,
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int = 262144,
        nanosecond: bool = False,
    ) -> None:
        if not 0 <= linktype <= _PCAP_LINKTYPE_MASK:
            raise ValueError(f"linktype must be between 0 and {_PCAP_LINKTYPE_MASK}")
        if not 1 <= snaplen <= MAX_BLOCK_LEN:
            raise ValueError(f"snaplen must be between 1 and {MAX_BLOCK_LEN}")
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self._units = 1_000_000_000 if nanosecond else 1_000_000
        super().__init__(path_or_fileobj)
        magic = _PCAP_MAGIC_NS if nanosecond else _PCAP_MAGIC_US
        self._start(_PCAP_FILE_HEADER.pack(magic, *_PCAP_VERSION, 0, 0, snaplen, linktype))

    def write(self, frame: Buffer, timestamp: float) -> None:
        """Append one packet.

        Args:
            frame: the packet's bytes (for Ethernet, the frame without FCS).
            timestamp: when it was seen, in seconds since the Unix epoch (``time.time()``).

        Raises:
            ValueError: the writer is closed, or ``timestamp`` does not fit the format
                (negative, not finite, or past 2106).
            OSError: writing to the file failed.
        """
        if self._closed:
            raise ValueError("write to a closed PcapWriter")
        if not 0.0 <= timestamp < 4294967296.0:
            raise ValueError(f"timestamp {timestamp!r} does not fit in a pcap record")
        length = frame.nbytes if isinstance(frame, memoryview) else len(frame)
        seconds = int(timestamp)
        units = self._units
        fraction = round((timestamp - seconds) * units)
        if fraction >= units:  # rounded up to the next second
            seconds += 1
            fraction -= units
        caplen = length if length <= self.snaplen else self.snaplen
        write = self._file.write
        write(_PCAP_RECORD.pack(seconds & 0xFFFFFFFF, fraction, caplen, length))
        if caplen < length:
            write(memoryview(frame).cast("B")[:caplen])
        else:
            write(frame)


def _option(code: int, value: bytes) -> bytes:
    """One pcapng option: code, length, value padded to 32 bits (pcapng 3.5)."""
    return _PCAPNG_OPTION.pack(code, len(value)) + value + bytes(-len(value) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    """A whole pcapng block: type, total length, body, total length (pcapng 3.1)."""
    length = 12 + len(body)
    return _PCAPNG_HEAD.pack(block_type, length) + body + _U32LE.pack(length)


class PcapngWriter(_CaptureFile):
    """Writes a pcapng file with any number of interfaces, so one file can hold a whole
    network (one interface per link), as Wireshark shows it.

    The file is one little-endian section: a Section Header Block, then an Interface
    Description Block for each :meth:`add_interface` (named with ``if_name``, its timestamp
    unit in ``if_tsresol``), and an Enhanced Packet Block per packet. :func:`read_pcap` reads
    it back, with each record's ``interface``.

    Args:
        path_or_fileobj: a path (created or truncated, closed by :meth:`close`) or a binary
            file object opened for writing (flushed, but left open, by :meth:`close`).
        application: written as the section's ``shb_userappl`` option.

    Raises:
        OSError: the file cannot be created or written.
    """

    __slots__ = ("_interfaces", "path")

    def __init__(
        self, path_or_fileobj: PathLike | _Writable, *, application: str = "netstack"
    ) -> None:
        self._interfaces: list[PcapngInterface] = []
        self.path = (
            Path(path_or_fileobj) if isinstance(path_or_fileobj, str | os.PathLike) else None
        )
        super().__init__(path_or_fileobj)
        body = _PCAPNG_SHB_BODY.pack(0x1A2B3C4D, 1, 0, -1)
        body += _option(_SHB_USERAPPL, application.encode()) + _option(_OPT_ENDOFOPT, b"")
        self._start(_block(0x0A0D0D0A, body))

    @property
    def interfaces(self) -> list[PcapngInterface]:
        """The interfaces added so far, in order (their index is their pcapng id)."""
        return list(self._interfaces)

    def add_interface(
        self,
        name: str,
        *,
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int = 262144,
        nanosecond: bool = False,
    ) -> PcapngInterface:
        """Describe one more interface; returns the handle that writes its packets.

        Args:
            name: the interface's name (``if_name``), e.g. the link's or host's name.
            linktype: the link type of its packets; 1 is Ethernet.
            snaplen: the most bytes kept of each packet.
            nanosecond: nanosecond timestamps (``if_tsresol`` 9) instead of microseconds.

        Raises:
            ValueError: the writer is closed, or ``linktype``/``snaplen`` is out of range.
            OSError: writing to the file failed.
        """
        if self._closed:
            raise ValueError("add_interface on a closed PcapngWriter")
        if not 0 <= linktype <= 0xFFFF:
            raise ValueError("linktype must be between 0 and 65535")
        if not 1 <= snaplen <= MAX_BLOCK_LEN:
            raise ValueError(f"snaplen must be between 1 and {MAX_BLOCK_LEN}")
        options = _option(_IF_NAME, name.encode())
        options += _option(_IF_TSRESOL, bytes((9 if nanosecond else 6,)))
        body = _PCAPNG_IDB_BODY.pack(linktype, 0, snaplen) + options + _option(0, b"")
        self._file.write(_block(_BT_IDB, body))
        iface = PcapngInterface(self, len(self._interfaces), name, snaplen, nanosecond)
        self._interfaces.append(iface)
        return iface

    def write(self, frame: Buffer, timestamp: float, interface: int = 0) -> None:
        """Append one packet seen on ``interface`` (an index from :meth:`add_interface`).

        Raises:
            ValueError: the writer is closed, the interface is unknown, or ``timestamp`` is
                negative or not finite.
            OSError: writing to the file failed.
        """
        if self._closed:
            raise ValueError("write to a closed PcapngWriter")
        if not 0 <= interface < len(self._interfaces):
            raise ValueError(f"unknown interface {interface}")
        self._interfaces[interface].write(frame, timestamp)

    def _write_packet(
        self, interface: int, snaplen: int, units: int, frame: Buffer, timestamp: float
    ) -> None:
        if self._closed:
            raise ValueError("write to a closed PcapngWriter")
        if not 0.0 <= timestamp < 1.8e10:  # beyond year 2500 is not a time
            raise ValueError(f"timestamp {timestamp!r} does not fit in a pcapng block")
        length = frame.nbytes if isinstance(frame, memoryview) else len(frame)
        caplen = length if length <= snaplen else snaplen
        pad = -caplen % 4
        total = 32 + caplen + pad
        ticks = round(timestamp * units)
        write = self._file.write
        write(
            _PCAPNG_EPB_HEAD.pack(
                _BT_EPB, total, interface, ticks >> 32, ticks & 0xFFFFFFFF, caplen, length
            )
        )
        write(memoryview(frame).cast("B")[:caplen] if caplen < length else frame)
        write(bytes(pad) + _U32LE.pack(total))


class PcapngInterface:
    """One interface of a :class:`PcapngWriter`: writes its packets, with the same
    ``write(frame, timestamp)`` / ``flush()`` / ``close()`` as :class:`PcapWriter`.
    ``close()`` only stops this handle; the file stays open until the writer is closed."""

    __slots__ = ("writer", "index", "name", "_snaplen", "_units", "_closed")

    def __init__(
        self, writer: PcapngWriter, index: int, name: str, snaplen: int, nanosecond: bool
    ) -> None:
        self.writer = writer
        self.index = index
        self.name = name
        self._snaplen = snaplen
        self._units = 1_000_000_000 if nanosecond else 1_000_000
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or self.writer.closed

    def write(self, frame: Buffer, timestamp: float) -> None:
        """Append one packet on this interface.

        Raises:
            ValueError: this handle or the writer is closed, or the timestamp is out of range.
            OSError: writing to the file failed.
        """
        if self._closed:
            raise ValueError(f"write to closed interface {self.name!r}")
        self.writer._write_packet(self.index, self._snaplen, self._units, frame, timestamp)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        """Stop writing on this interface (its blocks so far are flushed)."""
        if not self._closed:
            self._closed = True
            self.writer.flush()

    def __repr__(self) -> str:
        return f"<PcapngInterface {self.index} {self.name!r}>"


# -- reading ---------------------------------------------------------------------------------


def read_pcap(path_or_fileobj: PathLike | _Readable) -> Iterator[PcapRecord]:
    """Read the packets of a libpcap or pcapng file, lazily, in file order.

    Classic pcap files are accepted in either byte order with micro- or nanosecond
    timestamps; pcapng files may have several sections (each with its own byte order) and
    several interfaces per section (each with its own link type and timestamp unit).

    Args:
        path_or_fileobj: a path, or a binary file object positioned at the start of a capture.
            A path is opened when iteration starts and closed when it ends.

    Returns:
        An iterator of :class:`PcapRecord`. Records before a defect are yielded before the
        error is raised, so a file whose last record is cut short still gives the others.

    Raises:
        ParseError: the file is not a capture, or is truncated or malformed; ``reason`` says
            how (for example ``truncated_record`` or ``block_too_long``).
        OSError: reading the file failed.
    """
    if isinstance(path_or_fileobj, str | os.PathLike):
        with open(path_or_fileobj, "rb") as file:
            yield from _read_stream(file)
    else:
        yield from _read_stream(path_or_fileobj)


def _read(file: _Readable, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end of the file."""
    data = file.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = file.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _read_stream(file: _Readable) -> Iterator[PcapRecord]:
    magic = _read(file, 4)
    if len(magic) < 4:
        raise ParseError("truncated_file_header", f"{len(magic)} bytes")
    if magic == _PCAPNG_SHB:
        return _read_pcapng(file)
    known = _PCAP_MAGICS.get(bytes(magic))
    if known is None:
        raise ParseError("unknown_magic", magic.hex())
    return _read_classic(file, *known)


def _read_classic(file: _Readable, order: str, units: int) -> Iterator[PcapRecord]:
    header = _read(file, 20)
    if len(header) < 20:
        raise ParseError("truncated_file_header", f"{4 + len(header)} of 24 bytes")
    major, minor, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII", header)
    # libpcap reads 2.0 to 2.4; other versions differ in layout or are not pcap at all.
    if major != 2 or minor > 4:
        raise ParseError("unsupported_version", f"{major}.{minor}")
    # The time zone and accuracy fields are always zero in practice and ignored, as libpcap
    # does; the link type keeps only its low bits (see _PCAP_LINKTYPE_MASK).
    linktype = network & _PCAP_LINKTYPE_MASK
    record = struct.Struct(order + "IIII")
    while True:
        head = _read(file, 16)
        if not head:
            return
        if len(head) < 16:
            raise ParseError("truncated_record_header", f"{len(head)} of 16 bytes")
        seconds, fraction, caplen, orig_len = record.unpack(head)
        if caplen > MAX_BLOCK_LEN:
            raise ParseError("record_too_long", f"captured length {caplen}")
        data = _read(file, caplen)
        if len(data) < caplen:
            raise ParseError("truncated_record", f"{len(data)} of {caplen} bytes")
        yield PcapRecord(seconds + fraction / units, linktype, data, orig_len)


class _Order:
    """The structs of one pcapng byte order."""

    __slots__ = ("u32", "version", "idb", "option", "i64", "epb", "pb")

    def __init__(self, prefix: str) -> None:
        self.u32 = struct.Struct(prefix + "I")
        self.version = struct.Struct(prefix + "HH")
        self.idb = struct.Struct(prefix + "HHI")
        self.option = struct.Struct(prefix + "HH")
        self.i64 = struct.Struct(prefix + "q")
        self.epb = struct.Struct(prefix + "IIIII")
        self.pb = struct.Struct(prefix + "HHIIII")


_LITTLE = _Order("<")
_BIG = _Order(">")


class _Interface(NamedTuple):
    linktype: int
    snaplen: int
    units: int  # timestamp ticks per second
    offset: int  # seconds added to every timestamp


def _check_block_len(length: int, minimum: int) -> None:
    if length < minimum:
        raise ParseError("block_too_short", f"{length} bytes, at least {minimum} needed")
    if length > MAX_BLOCK_LEN:
        raise ParseError("block_too_long", f"{length} bytes")
    if length % 4:
        raise ParseError("block_length_unaligned", f"{length} bytes")


def _read_body(file: _Readable, order: _Order, length: int, consumed: int) -> bytes:
    """The rest of a block after its first ``consumed`` bytes, trailer checked and removed."""
    rest = _read(file, length - consumed)
    if len(rest) < length - consumed:
        raise ParseError("truncated_block", f"{consumed + len(rest)} of {length} bytes")
    (trailer,) = order.u32.unpack_from(rest, len(rest) - 4)
    if trailer != length:
        raise ParseError("block_length_mismatch", f"header {length}, trailer {trailer}")
    return rest[:-4]


def _read_pcapng(file: _Readable) -> Iterator[PcapRecord]:
    block_type = _PCAPNG_SHB
    order = _LITTLE
    interfaces: list[_Interface] = []
    while True:
        if block_type == _PCAPNG_SHB:
            order = _read_section_header(file)
            interfaces = []
        else:
            (code,) = order.u32.unpack(block_type)
            record = _read_block(file, order, code, interfaces)
            if record is not None:
                yield record
        block_type = _read(file, 4)
        if not block_type:
            return
        if len(block_type) < 4:
            raise ParseError("truncated_block", f"{len(block_type)} bytes of a block type")


def _read_section_header(file: _Readable) -> _Order:
    """Read a Section Header Block after its type; returns the section's byte order."""
    head = _read(file, 8)
    if len(head) < 8:
        raise ParseError("truncated_block", "section header")
    bom = head[4:8]
    if bom == _PCAPNG_BOM_LE:
        order = _LITTLE
    elif bom == _PCAPNG_BOM_BE:
        order = _BIG
    else:
        raise ParseError("bad_byte_order_magic", bom.hex())
    (length,) = order.u32.unpack_from(head, 0)
    _check_block_len(length, _MIN_SHB_LEN)
    body = _read_body(file, order, length, 12)
    major, minor = order.version.unpack_from(body, 0)
    if major != _PCAPNG_VERSION_MAJOR:
        raise ParseError("unsupported_version", f"pcapng {major}.{minor}")
    return order


def _read_block(
    file: _Readable, order: _Order, code: int, interfaces: list[_Interface]
) -> PcapRecord | None:
    """Read one block other than a section header, after its type."""
    head = _read(file, 4)
    if len(head) < 4:
        raise ParseError("truncated_block", "block length")
    (length,) = order.u32.unpack(head)
    _check_block_len(length, _MIN_LEN.get(code, _MIN_BLOCK_LEN))
    body = _read_body(file, order, length, 8)
    if code == _BT_EPB:
        iface_id, high, low, caplen, orig_len = order.epb.unpack_from(body, 0)
        return _packet(body, 20, interfaces, iface_id, (high << 32) | low, caplen, orig_len)
    if code == _BT_SPB:
        if not interfaces:
            raise ParseError("unknown_interface", "simple packet block before any interface")
        (orig_len,) = order.u32.unpack_from(body, 0)
        iface = interfaces[0]
        # The captured length is implied: the packet, cut to the snap length and the block.
        caplen = min(orig_len, len(body) - 4)
        if iface.snaplen:
            caplen = min(caplen, iface.snaplen)
        return PcapRecord(0.0, iface.linktype, body[4 : 4 + caplen], orig_len, 0)
    if code == _BT_PB:
        iface_id, _drops, high, low, caplen, orig_len = order.pb.unpack_from(body, 0)
        return _packet(body, 20, interfaces, iface_id, (high << 32) | low, caplen, orig_len)
    if code == _BT_IDB:
        interfaces.append(_parse_interface(body, order))
    return None


def _packet(
    body: bytes,
    start: int,
    interfaces: list[_Interface],
    iface_id: int,
    ticks: int,
    caplen: int,
    orig_len: int,
) -> PcapRecord:
    if iface_id >= len(interfaces):
        raise ParseError("unknown_interface", f"interface {iface_id} of {len(interfaces)}")
    if caplen > len(body) - start:
        raise ParseError("captured_length_overrun", f"{caplen} bytes in a {len(body)}-byte body")
    iface = interfaces[iface_id]
    timestamp = iface.offset + ticks / iface.units
    return PcapRecord(timestamp, iface.linktype, body[start : start + caplen], orig_len, iface_id)


def _parse_interface(body: bytes, order: _Order) -> _Interface:
    linktype, _reserved, snaplen = order.idb.unpack_from(body, 0)
    units = 1_000_000
    offset = 0
    pos = 8
    end = len(body)
    while pos + 4 <= end:
        option, size = order.option.unpack_from(body, pos)
        if option == _OPT_ENDOFOPT:
            break
        pos += 4
        if pos + size > end:
            raise ParseError("option_overrun", f"option {option} of {size} bytes")
        if option == _IF_TSRESOL:
            if size != 1:
                raise ParseError("bad_if_tsresol", f"{size} bytes")
            resolution = body[pos]
            # Top bit set: a negative power of two; clear: a negative power of ten.
            units = 1 << (resolution & 0x7F) if resolution & 0x80 else 10**resolution
        elif option == _IF_TSOFFSET:
            if size != 8:
                raise ParseError("bad_if_tsoffset", f"{size} bytes")
            (offset,) = order.i64.unpack_from(body, pos)
        pos += (size + 3) & ~3
    return _Interface(linktype, snaplen, units, offset)


# -- recording a link ------------------------------------------------------------------------


def _sync_transmit(link: object) -> Callable[..., None] | None:
    transmit = getattr(link, "transmit", None)
    if not callable(transmit) or inspect.iscoroutinefunction(transmit):
        return None
    return transmit  # type: ignore[no-any-return]


class PcapLink:
    """A link that records every frame it sends and receives in a libpcap or pcapng file.

    It wraps any :class:`~netstack.link.base.Link` and otherwise behaves exactly like it:
    ``mac``, ``mtu``, ``stats()``, ``reset_stats()`` and every other public attribute are the
    inner link's. Frames are recorded before they are handed to the inner link (a frame the
    inner link then rejects is still in the capture: it is what the stack tried to send) and
    before a received frame reaches the listener, stamped with ``time.time()``.

    When the inner link has a synchronous ``transmit(frame)`` (as this package's links do),
    so has the wrapper, and the stack keeps its coroutine-free send path; otherwise the
    wrapper has no ``transmit`` attribute either, and callers fall back to ``write``.

    Args:
        link: the link to record.
        path: the capture file to create (an existing file is replaced): libpcap, or pcapng
            when its name ends in ``.pcapng``; or a :class:`PcapngWriter` shared by several
            links, each recorded as its own interface of one file.
        nanosecond: write nanosecond timestamps instead of microsecond ones.
        name: the pcapng interface's name; the link's MAC address when ``None``.

    Raises:
        OSError: the capture file cannot be created.
    """

    __slots__ = ("_link", "_writer", "_owned_writer", "path")

    def __new__(
        cls,
        link: Link,
        path: PathLike | PcapngWriter,
        *,
        nanosecond: bool = False,
        name: str | None = None,
    ) -> PcapLink:
        target: type[PcapLink] = cls
        if cls is PcapLink and _sync_transmit(link) is not None:
            target = _TransmittingPcapLink
        return object.__new__(target)

    def __init__(
        self,
        link: Link,
        path: PathLike | PcapngWriter,
        *,
        nanosecond: bool = False,
        name: str | None = None,
    ) -> None:
        self._link = link
        self._owned_writer: PcapngWriter | None = None
        self._writer: PcapWriter | PcapngInterface | None
        label = name if name is not None else str(link.mac)
        if isinstance(path, PcapngWriter):
            self.path = path.path
            self._writer = path.add_interface(label, nanosecond=nanosecond)
        elif Path(path).suffix == ".pcapng":
            self.path = Path(path)
            self._owned_writer = PcapngWriter(self.path)
            self._writer = self._owned_writer.add_interface(label, nanosecond=nanosecond)
        else:
            self.path = Path(path)
            self._writer = PcapWriter(self.path, linktype=LINKTYPE_ETHERNET, nanosecond=nanosecond)

    @property
    def link(self) -> Link:
        """The wrapped link."""
        return self._link

    @property
    def mac(self) -> MacAddress:
        """The inner link's MAC address."""
        return self._link.mac

    @mac.setter
    def mac(self, value: MacAddress) -> None:
        self._link.mac = value

    @property
    def mtu(self) -> int:
        """The inner link's MTU."""
        return self._link.mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self._link.mtu = value

    @property
    def offloads(self) -> Offloads:
        """The inner link's offloads (the capture records the frames the wire carries)."""
        return offloads_of(self._link)

    def _record(self, frame: Buffer, meta: FrameMeta | None = None) -> None:
        writer = self._writer
        if writer is None:
            return
        try:
            if meta is None:
                writer.write(frame, time.time())
                return
            try:
                pieces = segment(frame, meta)
            except ValueError:
                pieces = [bytearray(frame)]  # metadata the link will refuse: as it came
            now = time.time()
            for piece in pieces:
                writer.write(piece, now)
        except OSError as exc:
            raise LinkError(f"recording to {self.path} failed: {exc}") from exc

    async def write(self, frame: Buffer, meta: FrameMeta | None = None) -> None:
        """Record one frame, then send it on the inner link.

        Args:
            frame: the whole Ethernet frame.
            meta: its offload metadata (only for an inner link with offloads); the frames
                the wire carries for it are recorded.

        Raises:
            LinkError: the inner link failed, or writing the capture failed.
        """
        self._record(frame, meta)
        if meta is None:
            await self._link.write(frame)
        else:
            await self._link.write(frame, meta)  # type: ignore[call-arg]

    async def writev(self, parts: Sequence[Buffer], meta: FrameMeta | None = None) -> None:
        """Record the frame gathered from ``parts``, then send it on the inner link.

        Args:
            parts: pieces of ONE frame, in order.
            meta: its offload metadata, as for :meth:`write`.

        Raises:
            LinkError: the inner link failed, or writing the capture failed.
        """
        self._record(b"".join(parts), meta)
        if meta is None:
            await self._link.writev(parts)
        else:
            await self._link.writev(parts, meta)  # type: ignore[call-arg]

    async def listen(
        self, on_frame: FrameCallback, *, on_offload_frame: OffloadFrameCallback | None = None
    ) -> None:
        """Listen on the inner link, recording each frame before ``on_frame`` gets it.

        Args:
            on_frame: called with each received frame (a view valid only during the call).
            on_offload_frame: called with frames that come with offload metadata (only
                over an inner link with offloads); recorded as the wire's frames.

        Raises:
            LinkError: the inner link failed. A capture write failure is raised from the
                frame callback, after ``on_frame`` has had the frame.
        """
        record = self._record

        def recorded(frame: memoryview) -> None:
            try:
                record(frame)
            finally:
                on_frame(frame)

        if on_offload_frame is None or not offloads_of(self._link):
            await self._link.listen(recorded)
            return

        def recorded_offload(frame: memoryview, meta: FrameMeta) -> None:
            try:
                record(frame, meta)
            finally:
                on_offload_frame(frame, meta)

        await self._link.listen(recorded, on_offload_frame=recorded_offload)  # type: ignore[call-arg]

    def stats(self) -> LinkStats:
        """The inner link's counters.

        Returns:
            A snapshot of the inner link's :class:`LinkStats`.
        """
        return self._link.stats()

    def reset_stats(self) -> None:
        """Reset the inner link's counters."""
        self._link.reset_stats()

    async def disconnect(self) -> None:
        """Disconnect the inner link, then close the capture file.

        Raises:
            LinkError: the inner link failed to disconnect (the file is closed anyway).
        """
        try:
            await self._link.disconnect()
        finally:
            self.close()

    def flush(self) -> None:
        """Push recorded frames to the file; does nothing once closed.

        Raises:
            OSError: writing the capture failed.
        """
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Stop recording and close the capture file, leaving the inner link as it is.
        Safe to call more than once.

        Raises:
            OSError: writing the last frames failed.
        """
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        owned, self._owned_writer = self._owned_writer, None
        if owned is not None:
            owned.close()

    @property
    def recording(self) -> bool:
        """True until :meth:`close` or :meth:`disconnect`."""
        return self._writer is not None

    def __getattr__(self, name: str) -> Any:
        # Reached only for names the wrapper lacks: forward public ones to the inner link,
        # but never ``transmit``, whose absence tells callers to use ``write``.
        if name.startswith("_") or name == "transmit":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self._link, name)

    def __repr__(self) -> str:
        return f"<PcapLink {self._link!r} -> {str(self.path)!r}>"


class _TransmittingPcapLink(PcapLink):
    """A :class:`PcapLink` over a link with a synchronous ``transmit``."""

    __slots__ = ("_inner_transmit",)

    def __init__(
        self,
        link: Link,
        path: PathLike | PcapngWriter,
        *,
        nanosecond: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(link, path, nanosecond=nanosecond, name=name)
        transmit = _sync_transmit(link)
        if transmit is None:  # pragma: no cover - __new__ checked it
            raise TypeError(f"{link!r} has no synchronous transmit()")
        self._inner_transmit = transmit

    def transmit(self, frame: bytes | bytearray, meta: FrameMeta | None = None) -> None:
        """Record one frame, then hand it to the inner link's ``transmit`` without waiting.

        Args:
            frame: the whole Ethernet frame; the inner link takes ownership of it.
            meta: its offload metadata (only for an inner link with offloads); the frames
                the wire carries for it are recorded.

        Raises:
            LinkError: the inner link refused the frame, or writing the capture failed.
        """
        if self._writer is not None:
            self._record(frame, meta)
        if meta is None:
            self._inner_transmit(frame)
        else:
            self._inner_transmit(frame, meta)
