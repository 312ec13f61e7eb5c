"""DHCP messages (RFC 2131 2, the BOOTP layout of RFC 951) and their options (RFC 2132), with
long and split options (RFC 3396), option overload (RFC 2132 9.3), classless static routes
(RFC 3442) and node-specific client identifiers (RFC 4361).

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +---------------+---------------+---------------+---------------+
    |     op (1)    |   htype (1)   |   hlen (1)    |   hops (1)    |
    +---------------+---------------+---------------+---------------+
    |                            xid (4)                            |
    +-------------------------------+-------------------------------+
    |           secs (2)            |           flags (2)           |
    +-------------------------------+-------------------------------+
    |                          ciaddr  (4)                          |
    |                          yiaddr  (4)                          |
    |                          siaddr  (4)                          |
    |                          giaddr  (4)                          |
    +---------------------------------------------------------------+
    |                          chaddr  (16)                         |
    |                          sname   (64)                         |
    |                          file    (128)                        |
    +---------------------------------------------------------------+
    |          magic cookie 99.130.83.99 (4), then options          |
    +---------------------------------------------------------------+

Options are code, length, value triples, except Pad (0) and End (255), which are one byte
(RFC 2132 2, 3.1, 3.2). :func:`parse` gathers them into one ``dict`` from option code to
value: the instances of an option are concatenated in the order RFC 3396 5 gives (the options
field, then ``file``, then ``sname`` when Option Overload (52) says they hold options), so a
long option split in pieces arrives whole. :func:`build` writes them back, splitting values
longer than 255 bytes into consecutive instances (RFC 3396 6), ends them with End and pads the
message to BOOTP's 300 bytes (RFC 1542 2.1).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from ...errors import ParseError

__all__ = [
    "BOOTP_MIN_LEN",
    "BootOp",
    "DhcpFlags",
    "DhcpMessage",
    "MAGIC_COOKIE",
    "MessageType",
    "OptionCode",
    "build",
    "client_id",
    "decode_classless_routes",
    "decode_ip",
    "decode_ips",
    "decode_text",
    "decode_u16",
    "decode_u32",
    "duid_ll",
    "encode_classless_routes",
    "encode_ips",
    "encode_u16",
    "encode_u32",
    "mask_to_prefix",
    "parse",
    "prefix_to_mask",
]

_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

#: RFC 2131 3: the first four octets of the options field.
MAGIC_COOKIE = b"\x63\x82\x53\x63"
#: Bytes before the options: the fixed fields and the cookie.
HEADER_LEN = _FIXED.size + len(MAGIC_COOKIE)
#: RFC 1542 2.1: a BOOTP message is at least 300 bytes (the 64-byte vend field of RFC 951).
BOOTP_MIN_LEN = 300
ZERO = b"\x00\x00\x00\x00"

SNAME_LEN = 64
FILE_LEN = 128


class BootOp(IntEnum):
    """RFC 2131 2: ``op``."""

    REQUEST = 1
    REPLY = 2


class DhcpFlags(IntFlag):
    """RFC 2131 2, figure 2: only the leftmost bit is defined."""

    BROADCAST = 0x8000


class MessageType(IntEnum):
    """RFC 2132 9.6: DHCP Message Type (option 53)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class OptionCode(IntEnum):
    """The options netstack reads or writes (RFC 2132 unless noted)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVERS = 6
    HOSTNAME = 12
    DOMAIN_NAME = 15
    INTERFACE_MTU = 26
    BROADCAST_ADDRESS = 28
    STATIC_ROUTES = 33
    NTP_SERVERS = 42
    VENDOR_SPECIFIC = 43
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS_ID = 60
    CLIENT_ID = 61
    DOMAIN_SEARCH = 119  # RFC 3397
    CLASSLESS_STATIC_ROUTES = 121  # RFC 3442
    END = 255


@dataclass(slots=True)
class DhcpMessage:
    """One DHCP message. Addresses are 4 packed bytes; ``chaddr`` is the first ``hlen`` bytes
    of the field (the 6-byte MAC on Ethernet); ``sname`` and ``file`` lose their trailing NUL
    padding (and are empty when they were overloaded with options); ``options`` maps each
    option code to its whole value."""

    op: int = BootOp.REQUEST
    xid: int = 0
    chaddr: bytes = bytes(6)
    options: dict[int, bytes] = field(default_factory=dict)
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: bytes = ZERO
    yiaddr: bytes = ZERO
    siaddr: bytes = ZERO
    giaddr: bytes = ZERO
    sname: bytes = b""
    file: bytes = b""

    @property
    def message_type(self) -> int | None:
        """The DHCP Message Type (option 53), or None for a plain BOOTP message."""
        value = self.options.get(OptionCode.MESSAGE_TYPE)
        return value[0] if value else None

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & DhcpFlags.BROADCAST)


def parse(data: bytes | bytearray | memoryview) -> DhcpMessage:
    """Parse a DHCP message (the UDP payload).

    Raises:
        ParseError: shorter than the fixed fields and cookie (``truncated``), a hardware
            address length over 16 (``bad_hlen``), no DHCP magic cookie
            (``bad_magic_cookie``), an option running past its field (``truncated_option``),
            or a malformed Option Overload or Message Type (``bad_overload``,
            ``bad_message_type``).
    """
    n = len(data)
    if n < HEADER_LEN:
        raise ParseError("truncated", f"DHCP message of {n} bytes")
    (
        op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
        sname, file,
    ) = _FIXED.unpack_from(data, 0)  # fmt: skip
    if hlen > 16:
        raise ParseError("bad_hlen", f"hardware address length {hlen}")
    if bytes(data[_FIXED.size : HEADER_LEN]) != MAGIC_COOKIE:
        raise ParseError("bad_magic_cookie", bytes(data[_FIXED.size : HEADER_LEN]).hex())
    pieces: dict[int, list[bytes]] = {}
    _walk(bytes(data[HEADER_LEN:]), pieces)
    overload = pieces.pop(OptionCode.OVERLOAD, None)
    if overload is not None:
        value = b"".join(overload)
        if len(value) != 1 or not 1 <= value[0] <= 3:
            raise ParseError("bad_overload", value.hex())
        # RFC 3396 5: the options field first, then file, then sname; an Overload option
        # inside those fields means nothing.
        if value[0] & 1:
            _walk(file, pieces)
            file = b""
        if value[0] & 2:
            _walk(sname, pieces)
            sname = b""
        pieces.pop(OptionCode.OVERLOAD, None)
    options = {code: b"".join(parts) for code, parts in pieces.items()}
    kind = options.get(OptionCode.MESSAGE_TYPE)
    if kind is not None and len(kind) != 1:
        raise ParseError("bad_message_type", kind.hex())
    return DhcpMessage(
        op=op, xid=xid, chaddr=chaddr[:hlen], options=options, htype=htype, hlen=hlen,
        hops=hops, secs=secs, flags=flags, ciaddr=ciaddr, yiaddr=yiaddr, siaddr=siaddr,
        giaddr=giaddr, sname=sname.rstrip(b"\x00"), file=file.rstrip(b"\x00"),
    )  # fmt: skip


def _walk(buf: bytes, pieces: dict[int, list[bytes]]) -> None:
    """Add the options in ``buf`` to ``pieces`` (code -> values in order), up to End or the
    end of the field.

    Raises:
        ParseError: an option whose length runs past the field.
    """
    i, n = 0, len(buf)
    while i < n:
        code = buf[i]
        if code == OptionCode.PAD:
            i += 1
            continue
        if code == OptionCode.END:
            return
        if i + 1 >= n:
            raise ParseError("truncated_option", f"option {code} has no length")
        end = i + 2 + buf[i + 1]
        if end > n:
            raise ParseError("truncated_option", f"option {code} runs past its field")
        pieces.setdefault(code, []).append(buf[i + 2 : end])
        i = end


def build(msg: DhcpMessage) -> bytes:
    """The bytes of ``msg``: options in the dict's order (Message Type first), long values
    split into instances of at most 255 bytes (RFC 3396 6), End, padded to 300 bytes.

    Raises:
        ValueError: a field out of range, an ``sname``/``file`` too long, or Pad/End given as
            options.
    """
    if len(msg.chaddr) > 16 or msg.hlen > 16:
        raise ValueError("chaddr is at most 16 bytes")
    if len(msg.sname) > SNAME_LEN or len(msg.file) > FILE_LEN:
        raise ValueError("sname is at most 64 bytes and file at most 128")
    for ip in (msg.ciaddr, msg.yiaddr, msg.siaddr, msg.giaddr):
        if len(ip) != 4:
            raise ValueError("addresses are 4 bytes")
    out = bytearray(HEADER_LEN)
    try:
        _FIXED.pack_into(
            out, 0, msg.op, msg.htype, msg.hlen, msg.hops, msg.xid, msg.secs, msg.flags,
            msg.ciaddr, msg.yiaddr, msg.siaddr, msg.giaddr, msg.chaddr, msg.sname, msg.file,
        )  # fmt: skip
    except struct.error as exc:
        raise ValueError(f"a DHCP header field is out of range: {exc}") from None
    out[_FIXED.size :] = MAGIC_COOKIE
    kind = msg.options.get(OptionCode.MESSAGE_TYPE)
    if kind is not None:
        out += bytes((OptionCode.MESSAGE_TYPE, len(kind))) + kind
    for code, value in msg.options.items():
        if code == OptionCode.MESSAGE_TYPE:
            continue
        if not 0 < code < 255:
            raise ValueError(f"option code {code} cannot carry a value")
        if not value:
            out += bytes((code, 0))
        for start in range(0, len(value), 255):
            chunk = value[start : start + 255]
            out += bytes((code, len(chunk))) + chunk
    out.append(OptionCode.END)
    if len(out) < BOOTP_MIN_LEN:
        out += bytes(BOOTP_MIN_LEN - len(out))
    return bytes(out)


# -- option values ------------------------------------------------------------------------------


def decode_ip(value: bytes) -> bytes:
    """One IPv4 address (Server Identifier, Requested IP Address, Subnet Mask).

    Raises:
        ParseError: not 4 bytes (``bad_option_length``).
    """
    if len(value) != 4:
        raise ParseError("bad_option_length", f"{len(value)} bytes for an address")
    return bytes(value)


def decode_ips(value: bytes) -> list[bytes]:
    """A list of IPv4 addresses (Router, Domain Name Server, ...): RFC 2132 says at least one,
    a multiple of four bytes.

    Raises:
        ParseError: empty or not a multiple of 4 bytes (``bad_option_length``).
    """
    if not value or len(value) % 4:
        raise ParseError("bad_option_length", f"{len(value)} bytes for a list of addresses")
    return [bytes(value[i : i + 4]) for i in range(0, len(value), 4)]


def encode_ips(ips: list[bytes] | tuple[bytes, ...]) -> bytes:
    return b"".join(ips)


def decode_u32(value: bytes) -> int:
    """A 32-bit unsigned integer (lease time, T1, T2).

    Raises:
        ParseError: not 4 bytes (``bad_option_length``).
    """
    if len(value) != 4:
        raise ParseError("bad_option_length", f"{len(value)} bytes for a 32-bit value")
    return int(_U32.unpack(value)[0])


def encode_u32(n: int) -> bytes:
    return _U32.pack(n)


def decode_u16(value: bytes) -> int:
    """A 16-bit unsigned integer (Interface MTU, Maximum DHCP Message Size).

    Raises:
        ParseError: not 2 bytes (``bad_option_length``).
    """
    if len(value) != 2:
        raise ParseError("bad_option_length", f"{len(value)} bytes for a 16-bit value")
    return int(_U16.unpack(value)[0])


def encode_u16(n: int) -> bytes:
    return _U16.pack(n)


def decode_text(value: bytes) -> str:
    """An NVT ASCII string (Host Name, Domain Name, Message). RFC 2132 2 says it is not NUL
    terminated; a trailing NUL some senders add is dropped. Bytes outside ASCII become U+FFFD
    rather than failing the message."""
    return bytes(value).rstrip(b"\x00").decode("ascii", errors="replace")


def mask_to_prefix(mask: bytes) -> int:
    """The prefix length of a Subnet Mask (RFC 2132 3.3).

    Raises:
        ParseError: not 4 bytes, or not a contiguous mask (``bad_subnet_mask``).
    """
    if len(mask) != 4:
        raise ParseError("bad_subnet_mask", f"{len(mask)} bytes")
    n = int.from_bytes(mask, "big")
    inverted = ~n & 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise ParseError("bad_subnet_mask", ipaddress.IPv4Address(mask).compressed)
    return 32 - inverted.bit_length()


def prefix_to_mask(prefix: int) -> bytes:
    return ((0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF).to_bytes(4, "big")


def decode_classless_routes(value: bytes) -> list[tuple[bytes, int, bytes]]:
    """RFC 3442 "Classless Route Option Format": (destination, prefix length, router) for
    each route. Each destination descriptor is the prefix length followed by its significant
    octets (``ceil(width / 8)`` of them); bits past the prefix length are cleared.

    Raises:
        ParseError: a width over 32 (``bad_route_width``) or a route cut short
            (``truncated_route``); RFC 3442 gives 5 bytes as the least length.
    """
    routes: list[tuple[bytes, int, bytes]] = []
    i, n = 0, len(value)
    if n < 5:
        raise ParseError("truncated_route", f"{n} bytes of classless routes")
    while i < n:
        width = value[i]
        if width > 32:
            raise ParseError("bad_route_width", str(width))
        significant = (width + 7) // 8
        end = i + 1 + significant + 4
        if end > n:
            raise ParseError("truncated_route", f"route at byte {i} needs {end - i} bytes")
        dest = bytes(value[i + 1 : i + 1 + significant]) + bytes(4 - significant)
        masked = int.from_bytes(dest, "big") & int.from_bytes(prefix_to_mask(width), "big")
        routes.append((masked.to_bytes(4, "big"), width, bytes(value[end - 4 : end])))
        i = end
    return routes


def encode_classless_routes(routes: list[tuple[bytes, int, bytes]]) -> bytes:
    """The value of option 121 for (destination, prefix length, router) routes.

    Raises:
        ValueError: a prefix length outside 0..32 or an address not of 4 bytes.
    """
    out = bytearray()
    for dest, width, router in routes:
        if not 0 <= width <= 32 or len(dest) != 4 or len(router) != 4:
            raise ValueError(f"bad route {dest!r}/{width} via {router!r}")
        out.append(width)
        out += dest[: (width + 7) // 8]
        out += router
    return bytes(out)


def duid_ll(mac: bytes) -> bytes:
    """A DUID-LL (RFC 8415 11.4, type 3) for an Ethernet address (hardware type 1)."""
    return b"\x00\x03\x00\x01" + bytes(mac)


def client_id(iaid: int, duid: bytes) -> bytes:
    """An RFC 4361 6.1 client identifier: type 255, the 4-byte IAID, then the DUID.

    Raises:
        ValueError: an IAID that does not fit in 32 bits.
    """
    if not 0 <= iaid <= 0xFFFFFFFF:
        raise ValueError(f"an IAID is 32 bits, got {iaid}")
    return b"\xff" + _U32.pack(iaid) + bytes(duid)
