"""Whole IPv4 datagrams taken apart and put together outside the layer's own send path: a
reassembled datagram as one buffer (what the INPUT hook sees), and the fragmentation of a
datagram that is already built (a forwarded one, or one a hook has seen), RFC 791 3.2 and
RFC 1812 5.2.6."""

from __future__ import annotations

from ...errors import ParseError
from ..checksum import checksum
from ..ethernet.wire import ETHERNET_HEADER_LEN
from .wire import (
    FLAG_DF,
    FLAG_MF,
    IPV4_HEADER_LEN,
    OFFSET_MASK,
    IPv4Header,
    build_header_into,
    iter_options,
)

__all__ = ["datagram4", "fragment4"]


def datagram4(header: IPv4Header, payload: memoryview | bytes) -> bytearray:
    """A whole (reassembled) datagram: ``header`` with its length, fragment fields and
    checksum made right for ``payload``, then the payload."""
    hlen = IPV4_HEADER_LEN + len(header.options)
    buf = bytearray(hlen + len(payload))
    buf[IPV4_HEADER_LEN:hlen] = header.options
    build_header_into(buf, 0, len(buf), header.ident, header.flags_fragment & FLAG_DF,
                      header.ttl, header.proto, header.src, header.dst, header.tos)  # fmt: skip
    if header.options:
        buf[0] = 0x40 | (hlen >> 2)
        buf[10] = buf[11] = 0
        c = checksum(buf[:hlen])
        buf[10], buf[11] = c >> 8, c & 0xFF
    buf[hlen:] = payload
    return buf


def _copied_options(options: bytes) -> bytes:
    """RFC 791 3.1: the options whose "copied" flag is set, which every fragment carries,
    padded to 4 bytes."""
    out = bytearray()
    for opt in iter_options(options):
        if opt.kind & 0x80:
            out.append(opt.kind)
            out.append(len(opt.data) + 2)
            out += opt.data
    out += bytes(-len(out) % 4)
    return bytes(out)


def fragment4(datagram: memoryview, mtu: int) -> list[bytearray]:
    """RFC 791 3.2 "Fragmentation" (RFC 1812 5.2.6) of a whole IPv4 datagram (or a fragment
    of one, whose offset and MF the pieces continue) into frames (Ethernet headroom first)
    of at most ``mtu`` bytes of IP each. The caller checked DF.

    Raises:
        ParseError: malformed options.
    """
    hlen = (datagram[0] & 0x0F) << 2
    total = (datagram[2] << 8) | datagram[3]
    first_header = bytes(datagram[:hlen])
    later_options = _copied_options(first_header[IPV4_HEADER_LEN:]) if hlen > 20 else b""
    ff = (datagram[6] << 8) | datagram[7]
    base = (ff & OFFSET_MASK) << 3
    more = ff & FLAG_MF
    payload = datagram[hlen:total]
    n = len(payload)
    out = []
    offset = 0
    while offset < n:
        header = first_header if offset == 0 else first_header[:20] + later_options
        h = len(header)
        step = (mtu - h) & ~7
        if step <= 0:
            raise ParseError("fragment_no_room", "options leave no room in the MTU")
        chunk = payload[offset : offset + step]
        last = offset + len(chunk) >= n
        frame = bytearray(ETHERNET_HEADER_LEN + h + len(chunk))
        at = ETHERNET_HEADER_LEN
        frame[at : at + h] = header
        frame[at + h :] = chunk
        frame[at] = 0x40 | (h >> 2)
        length = h + len(chunk)
        frame[at + 2], frame[at + 3] = length >> 8, length & 0xFF
        flags = (ff & FLAG_DF) | (more if last else FLAG_MF) | ((base + offset) >> 3)
        frame[at + 6], frame[at + 7] = flags >> 8, flags & 0xFF
        frame[at + 10] = frame[at + 11] = 0
        c = checksum(memoryview(frame)[at : at + h])
        frame[at + 10], frame[at + 11] = c >> 8, c & 0xFF
        out.append(frame)
        offset += len(chunk)
    return out
