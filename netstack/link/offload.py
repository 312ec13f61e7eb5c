"""Offloads on a link: the metadata that travels with a frame (``virtio_net_hdr``'s fields),
what a link advertises it can take, and the software fallback that turns an offloaded frame
into the frames a wire carries.

A link that advertises :class:`Offloads` may be handed, with its ``transmit``/``write``/
``writev``, a :class:`FrameMeta` next to a frame, and may hand one to a listener that asked
for them (``listen(on_frame, on_offload_frame=...)``). The metadata is the Linux/virtio
contract (virtio 1.2 5.1.6 "Device Operation", ``include/uapi/linux/virtio_net.h``):

- ``NEEDS_CSUM``: the transport checksum is partial. The checksum field at
  ``csum_start + csum_offset`` holds the folded sum of the pseudo-header (length included),
  not complemented; the one who completes it sums ``frame[csum_start:]`` and stores the
  complement there.
- ``DATA_VALID``: the receiver of the frame (netstack) may take the transport checksum as
  verified (the kernel did, or the data never crossed a wire).
- ``gso_type``/``gso_size``: the frame is a super-segment of a TCP stream (or of UDP
  datagrams) to be cut into pieces carrying ``gso_size`` bytes of payload each, every piece
  with its own headers and checksum (the IP total length of the super-segment may exceed the
  MTU; it never exceeds 65 535).

:func:`check` judges metadata from outside (a hostile or broken peer): a reason string for
what is wrong, so the receiver counts a drop instead of trusting it. :func:`segment` is the
software GSO: the frames the wire would carry, each complete with its checksums.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from ..proto.checksum import checksum, mod_ffff, pseudo_header_sum, pseudo_header_sum6

__all__ = [
    "DATA_VALID",
    "GSO_ECN",
    "GSO_NONE",
    "GSO_TCPV4",
    "GSO_TCPV6",
    "GSO_UDP_L4",
    "NEEDS_CSUM",
    "NO_OFFLOADS",
    "FrameMeta",
    "OffloadFrame",
    "Offloads",
    "VNET_HDR",
    "SOFT_GSO",
    "check",
    "csum_trusted",
    "cut_tcp",
    "offloads_of",
    "segment",
    "tx_offloads_of",
]

# virtio_net_hdr flags and gso types (include/uapi/linux/virtio_net.h).
NEEDS_CSUM = 1
DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3  # UFO: IP fragmentation of one datagram; never taken (see check())
GSO_TCPV6 = 4
GSO_UDP_L4 = 5  # USO: a train of UDP datagrams of gso_size bytes each
GSO_ECN = 0x80

#: The header IFF_VNET_HDR puts before each frame with TUNSETVNETHDRSZ 12 (virtio 1.x's
#: ``virtio_net_hdr_v1``: the legacy 10 bytes and ``num_buffers``), in the host's byte order
#: (tun's legacy default on little-endian machines, virtio 1.x's little endian on them too).
VNET_HDR = struct.Struct("=BBHHHHH")

_ETH = 14
#: The most pieces a super-segment may be cut into: 64 KiB at TCP's smallest MSS (64).
MAX_SEGMENTS = 1024
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP_SEQ = struct.Struct("!I")
_U16 = struct.Struct("!H")
_TCP, _UDP = 6, 17
_FIN, _PSH, _CWR = 0x01, 0x08, 0x80


class FrameMeta(NamedTuple):
    """What travels with one frame besides its bytes: ``virtio_net_hdr``'s fields."""

    flags: int = 0
    gso_type: int = GSO_NONE
    #: Bytes of headers (Ethernet, IP, transport) of a super-segment; a hint.
    hdr_len: int = 0
    #: Payload bytes per piece of a super-segment (the MSS for TCP).
    gso_size: int = 0
    #: Where the checksummed part starts (the transport header), from the frame's start.
    csum_start: int = 0
    #: Where the checksum field is, from ``csum_start`` (16 for TCP, 6 for UDP).
    csum_offset: int = 0


@dataclass(frozen=True, slots=True)
class Offloads:
    """What a link can take and give beyond whole, checksummed, MTU-sized frames.

    Args:
        csum: frames with a partial transport checksum (``NEEDS_CSUM``) may be handed to it;
            it may deliver frames marked ``NEEDS_CSUM`` or ``DATA_VALID``.
        tso4: TCP/IPv4 super-segments (``GSO_TCPV4``) both ways.
        tso6: TCP/IPv6 super-segments (``GSO_TCPV6``) both ways.
        uso: it may deliver UDP super-datagrams (``GSO_UDP_L4``).
    """

    csum: bool = False
    tso4: bool = False
    tso6: bool = False
    uso: bool = False

    def __bool__(self) -> bool:
        return self.csum or self.tso4 or self.tso6 or self.uso


NO_OFFLOADS = Offloads()
#: What a link that cuts TCP super-segments itself, in software, just before the wire takes
#: (Linux's GSO in front of a device without TSO): super-segments, but no partial checksums
#: on single frames (TCP completes those as cheaply as the link would).
SOFT_GSO = Offloads(tso4=True, tso6=True)


class OffloadFrame(bytearray):
    """A frame being built whose offload metadata rides with it down the layers (through
    IP, ARP's and neighbour discovery's queues) to the Ethernet layer, which hands both to
    the link. Only made for an interface whose link advertised the offload."""

    __slots__ = ("meta",)

    meta: FrameMeta


def offloads_of(link: object) -> Offloads:
    """The offloads ``link`` advertises; none for a link that knows nothing of them."""
    offloads = getattr(link, "offloads", None)
    return offloads if isinstance(offloads, Offloads) else NO_OFFLOADS


def tx_offloads_of(link: object) -> Offloads:
    """What ``link`` takes from a stack: its ``tx_offloads`` where it has them (a link that
    segments in software takes super-segments without giving any), else its offloads."""
    offloads = getattr(link, "tx_offloads", None)
    return offloads if isinstance(offloads, Offloads) else offloads_of(link)


class _Headers(NamedTuple):
    version: int
    l4: int  # offset of the transport header in the frame
    proto: int
    end: int  # the end of the IP datagram in the frame
    l4_len: int  # transport header length (TCP data offset, 8 for UDP)


def _headers(frame: memoryview | bytes | bytearray) -> _Headers | str:
    """Parse just enough of an IPv4/IPv6 frame to place the transport header; a reason
    string when it is not a plain (unfragmented, no extension headers) TCP or UDP packet."""
    n = len(frame)
    if n < _ETH + 20:
        return "offload_truncated"
    ethertype = _U16.unpack_from(frame, 12)[0]
    if ethertype == 0x0800:
        vihl, _, total, _, frag, _, proto, _, _, _ = _IPV4.unpack_from(frame, _ETH)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or total < ihl or _ETH + total > n:
            return "offload_bad_ip_length"
        if frag & 0x3FFF:
            return "offload_fragment"
        version, l4, end = 4, _ETH + ihl, _ETH + total
    elif ethertype == 0x86DD:
        if n < _ETH + 40:
            return "offload_truncated"
        first, plen, proto, _, _, _ = _IPV6.unpack_from(frame, _ETH)
        if first >> 28 != 6 or _ETH + 40 + plen > n:
            return "offload_bad_ip_length"
        version, l4, end = 6, _ETH + 40, _ETH + 40 + plen
    else:
        return "offload_not_ip"
    if proto == _TCP:
        if end - l4 < 20:
            return "offload_truncated"
        l4_len = (frame[l4 + 12] >> 4) * 4
        if l4_len < 20 or l4 + l4_len > end:
            return "offload_bad_l4_length"
    elif proto == _UDP:
        if end - l4 < 8:
            return "offload_truncated"
        l4_len = 8
    else:
        return "offload_not_tcp_udp"
    return _Headers(version, l4, proto, end, l4_len)


def check(frame: memoryview | bytes | bytearray, meta: FrameMeta) -> str | None:
    """Judge received metadata against the frame it came with.

    Returns:
        None when the metadata is sound: ``csum_start``/``csum_offset`` name the transport
        checksum of a plain TCP or UDP packet, the GSO type matches the packet's family and
        protocol, ``gso_size`` is usable; else the reason to drop the frame (``stats()``).
    """
    if meta.flags & ~(NEEDS_CSUM | DATA_VALID):
        return "offload_bad_flags"
    gso = meta.gso_type & ~GSO_ECN
    if gso not in (GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4):
        return "offload_bad_gso_type"  # UFO (GSO_UDP) is deprecated and never enabled
    if not meta.flags & NEEDS_CSUM and gso == GSO_NONE:
        return None  # nothing to act on: DATA_VALID alone is a hint (see csum_trusted())
    headers = _headers(frame)
    if isinstance(headers, str):
        return headers
    if meta.flags & NEEDS_CSUM:
        if meta.csum_start != headers.l4:
            return "offload_bad_csum_start"
        want = 16 if headers.proto == _TCP else 6
        if meta.csum_offset != want:
            return "offload_bad_csum_offset"
    if gso != GSO_NONE:
        if gso == GSO_TCPV4 and (headers.version, headers.proto) != (4, _TCP):
            return "offload_gso_mismatch"
        if gso == GSO_TCPV6 and (headers.version, headers.proto) != (6, _TCP):
            return "offload_gso_mismatch"
        if gso == GSO_UDP_L4 and headers.proto != _UDP:
            return "offload_gso_mismatch"
        if not meta.flags & NEEDS_CSUM:
            # Linux marks every GSO packet it hands a tun device NEEDS_CSUM (the pieces'
            # checksums are computed when it is cut); without it there is nothing to trust.
            return "offload_gso_without_csum"
        if not 1 <= meta.gso_size <= 65535 - 40:
            return "offload_bad_gso_size"
        if (headers.end - headers.l4 - headers.l4_len) // meta.gso_size > MAX_SEGMENTS:
            # A tiny gso_size would make cutting the frame cost thousands of allocations.
            return "offload_too_many_segments"
    return None


def csum_trusted(frame: memoryview | bytes | bytearray, meta: FrameMeta) -> bool:
    """Whether the receiver may skip verifying the transport checksum of ``frame`` whose
    metadata passed :func:`check`: a partial checksum is never verified (the data never
    crossed a wire: Linux's CHECKSUM_PARTIAL on receive), ``DATA_VALID`` is believed for a
    plain TCP or UDP packet (not a fragment, no IPv6 extension headers), where the checksum
    it vouches for is the one the transport would check."""
    if meta.flags & NEEDS_CSUM:
        return True
    return bool(meta.flags & DATA_VALID) and not isinstance(_headers(frame), str)


def _l4_checksum(piece: bytearray, h: _Headers, end: int) -> None:
    """The full transport checksum of one piece, from scratch (pseudo-header included)."""
    l4 = h.l4
    length = end - l4
    field = l4 + (16 if h.proto == _TCP else 6)
    _U16.pack_into(piece, field, 0)
    if h.version == 4:
        base = pseudo_header_sum(bytes(piece[_ETH + 12 : _ETH + 16]),
                                 bytes(piece[_ETH + 16 : _ETH + 20]), h.proto, length)  # fmt: skip
    else:
        base = pseudo_header_sum6(bytes(piece[_ETH + 8 : _ETH + 24]),
                                  bytes(piece[_ETH + 24 : _ETH + 40]), h.proto, length)  # fmt: skip
    value = checksum(memoryview(piece)[l4:end], base)
    if value == 0 and h.proto == _UDP:
        value = 0xFFFF  # RFC 768: a computed zero is sent as all ones
    _U16.pack_into(piece, field, value)


def _set_ip_length(piece: bytearray, h: _Headers, ip_len: int, ident_step: int) -> None:
    if h.version == 4:
        _U16.pack_into(piece, _ETH + 2, ip_len)
        ident = (_U16.unpack_from(piece, _ETH + 4)[0] + ident_step) & 0xFFFF
        _U16.pack_into(piece, _ETH + 4, ident)
        _U16.pack_into(piece, _ETH + 10, 0)
        _U16.pack_into(piece, _ETH + 10, checksum(memoryview(piece)[_ETH : h.l4]))
    else:
        _U16.pack_into(piece, _ETH + 4, ip_len - 40)


def segment(frame: bytes | bytearray | memoryview, meta: FrameMeta | None) -> list[bytearray]:
    """The frames a wire carries for ``frame`` and its metadata: software GSO and checksum.

    A TCP super-segment becomes pieces of ``gso_size`` payload bytes with the sequence
    number advanced, FIN and PSH only on the last piece and CWR only on the first (as Linux's
    ``tcp_gso_segment``), IPv4's Identification counting up and every checksum computed. UDP
    super-datagrams become datagrams of ``gso_size`` bytes. A frame with only a partial
    checksum gets it completed. Frames without metadata come back as they are.

    Raises:
        ValueError: the metadata does not fit the frame (see :func:`check`).
    """
    if meta is None or (meta.flags == 0 and meta.gso_type == GSO_NONE):
        return [bytearray(frame)]
    reason = check(frame, meta)
    if reason is not None:
        raise ValueError(reason)
    if not meta.flags & NEEDS_CSUM and meta.gso_type == GSO_NONE:
        return [bytearray(frame)]  # DATA_VALID alone: nothing to do
    gso = meta.gso_type & ~GSO_ECN
    h = _headers(frame)
    assert not isinstance(h, str)  # check() parsed it
    hdr_end = h.l4 + h.l4_len
    payload = memoryview(frame)[hdr_end : h.end]
    size = meta.gso_size if gso != GSO_NONE else len(payload) or 1
    if gso == GSO_NONE or len(payload) <= size:
        whole = bytearray(memoryview(frame)[: h.end])
        if meta.flags & NEEDS_CSUM:
            _l4_checksum(whole, h, h.end)
        return [whole]
    header = bytes(memoryview(frame)[:hdr_end])
    pieces: list[bytearray] = []
    n = len(payload)
    count = -(-n // size)
    seq = _TCP_SEQ.unpack_from(header, h.l4 + 4)[0] if h.proto == _TCP else 0
    flags = header[h.l4 + 13] if h.proto == _TCP else 0
    for i in range(count):
        chunk = payload[i * size : (i + 1) * size]
        piece = bytearray(header)
        piece += chunk
        end = len(piece)
        _set_ip_length(piece, h, end - _ETH, i)
        if h.proto == _TCP:
            _TCP_SEQ.pack_into(piece, h.l4 + 4, (seq + i * size) & 0xFFFFFFFF)
            f = flags
            if i:
                f &= ~_CWR
            if i != count - 1:
                f &= ~(_FIN | _PSH)
            piece[h.l4 + 13] = f
        else:
            _U16.pack_into(piece, h.l4 + 4, end - h.l4)
        _l4_checksum(piece, h, end)
        pieces.append(piece)
    return pieces


_SEQ_ONLY = struct.Struct("!I")


_HEADER_STRUCTS: dict[tuple[int, int, bool], struct.Struct] = {}


def _header_struct(l4: int, hdr_end: int, v4: bool) -> struct.Struct:
    """A piece's headers in one ``pack``: the constant stretches as bytes, and between them
    IPv4's identification and header checksum, TCP's sequence number and checksum."""
    key = (l4, hdr_end, v4)
    st = _HEADER_STRUCTS.get(key)
    if st is None:
        if v4:
            fmt = f"!18sH4sH{l4 + 4 - 26}sI8sH{hdr_end - l4 - 18}s"
        else:
            fmt = f"!{l4 + 4}sI8sH{hdr_end - l4 - 18}s"
        st = _HEADER_STRUCTS[key] = struct.Struct(fmt)
    return st


def cut_tcp(
    frame: bytes | bytearray | memoryview, meta: FrameMeta
) -> list[tuple[bytes, memoryview]]:
    """Software GSO for a TCP super-segment a stack built itself: ``(headers, payload view)``
    per piece, every checksum complete (what :func:`segment` gives, without copying
    payloads and without summing the headers piece by piece: only the sequence number,
    IPv4's identification and the lengths change between pieces, so the headers' sums are
    the first piece's plus those changes, RFC 1624 style).

    ``meta`` must have passed :func:`check` (``GSO_TCPV4``/``GSO_TCPV6`` with
    ``NEEDS_CSUM``): the TCP checksum field holds the folded pseudo-header sum, the
    length of the whole TCP super-segment included.
    """
    view = memoryview(frame)
    l4 = meta.csum_start
    hdr_end = l4 + ((frame[l4 + 12] >> 4) << 2)
    size = meta.gso_size
    total = len(frame)
    v4 = frame[12] == 0x08
    if v4:
        end = _ETH + _U16.unpack_from(frame, _ETH + 2)[0]
    else:
        end = _ETH + 40 + _U16.unpack_from(frame, _ETH + 4)[0]
    if end < total:
        total = end
    header = bytearray(view[:hdr_end])
    tcp_len = total - l4
    # The pseudo-header sum without the length: what TCP left in the field, less the length.
    pseudo = (_U16.unpack_from(header, l4 + 16)[0] - tcp_len) % 0xFFFF
    seq0 = _SEQ_ONLY.unpack_from(header, l4 + 4)[0]
    flags = header[l4 + 13]
    _U16.pack_into(header, l4 + 16, 0)
    _SEQ_ONLY.pack_into(header, l4 + 4, 0)
    ident0 = 0
    if v4:
        ident0 = _U16.unpack_from(header, _ETH + 4)[0]
        _U16.pack_into(header, _ETH + 4, 0)
        _U16.pack_into(header, _ETH + 10, 0)
    pieces: list[tuple[bytes, memoryview]] = []
    count = max(1, -(-(total - hdr_end) // size))
    last = count - 1
    thl = hdr_end - l4
    at = hdr_end
    prev_f = prev_m = -1
    ip_sum = tcp_sum = 0
    build = _header_struct(l4, hdr_end, v4).pack
    parts: tuple[bytes, ...] = ()
    for i in range(count):
        stop = at + size
        if stop > total:
            stop = total
        m = stop - at
        f = flags
        if i:
            f &= ~_CWR
        if i != last:
            f &= ~(_FIN | _PSH)
        if f != prev_f or m != prev_m:
            # The headers with the changing fields zeroed, and their sums: once for the
            # first piece, the ones after it, and the last.
            header[l4 + 13] = f
            if v4:
                _U16.pack_into(header, _ETH + 2, hdr_end - _ETH + m)
                ip_sum = int.from_bytes(header[_ETH:l4], "big") % 0xFFFF
                parts = (
                    bytes(header[:18]),
                    bytes(header[20:24]),
                    bytes(header[26 : l4 + 4]),
                    bytes(header[l4 + 8 : l4 + 16]),
                    bytes(header[l4 + 18 : hdr_end]),
                )
            else:
                _U16.pack_into(header, _ETH + 4, hdr_end - _ETH - 40 + m)
                parts = (
                    bytes(header[: l4 + 4]),
                    bytes(header[l4 + 8 : l4 + 16]),
                    bytes(header[l4 + 18 : hdr_end]),
                )
            tcp_sum = int.from_bytes(header[l4:hdr_end], "big") % 0xFFFF + pseudo + thl + m
            prev_f, prev_m = f, m
        seq = (seq0 + i * size) & 0xFFFFFFFF
        payload = view[at:stop]
        value = int.from_bytes(payload, "little")
        s = ((value % 0xFFFF if m <= 240 else mod_ffff(value)) * 256 + tcp_sum + seq) % 0xFFFF
        csum = 0xFFFF - s if s else 0
        if v4:
            ident = (ident0 + i) & 0xFFFF
            s = (ip_sum + ident) % 0xFFFF
            c0, c1, c2, c3, c4 = parts
            hdr = build(c0, ident, c1, 0xFFFF - s if s else 0, c2, seq, c3, csum, c4)
        else:
            c0, c3, c4 = parts
            hdr = build(c0, seq, c3, csum, c4)
        pieces.append((hdr, payload))
        at = stop
    return pieces
