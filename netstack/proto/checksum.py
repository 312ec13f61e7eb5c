"""The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers (RFC 768, RFC 9293 3.1,
RFC 8200 8.1).

The ones'-complement sum of 16-bit words equals the big-endian integer of the data modulo
0xFFFF, because 0x10000 = 1 (mod 0xFFFF) (RFC 1071 2.(B), "byte order independence" and
deferred carries taken to the limit). ``int.from_bytes(...) % 0xFFFF`` does that in C: about
3 µs for 1460 bytes here, where a Python loop over words takes ~50 µs.

The little-endian integer is read about a fifth faster than the big-endian one, and it is the
same sum with its bytes swapped (RFC 1071 2.(B)): 0x100 * L = S (mod 0xFFFF), with an odd
trailing byte already in the right place. So the sums here are ``L % 0xFFFF * 256``.
"""

from __future__ import annotations

__all__ = ["checksum", "ones_sum", "pseudo_header_sum", "pseudo_header_sum6", "verify"]

Buffer = bytes | bytearray | memoryview


def ones_sum(data: Buffer, initial: int = 0) -> int:
    """The ones'-complement sum of ``data`` plus ``initial``, reduced modulo 0xFFFF.

    An odd trailing byte is padded with a zero byte on the right (RFC 1071 4.1). The result is
    in 0..0xFFFE; 0 stands for both +0 and -0 (0xFFFF).
    """
    return (int.from_bytes(data, "little") % 0xFFFF * 256 + initial) % 0xFFFF


def checksum(data: Buffer, initial: int = 0) -> int:
    """The Internet checksum of ``data`` (the complement of the ones'-complement sum).

    ``initial`` adds further 16-bit words, typically :func:`pseudo_header_sum`. The checksum
    field inside ``data`` must be zero while computing.
    """
    value = int.from_bytes(data, "little")
    s = (value % 0xFFFF * 256 + initial) % 0xFFFF
    if s == 0:
        # A non-zero sum that is a multiple of 0xFFFF folds to 0xFFFF (negative zero), whose
        # complement is 0; only all-zero input sums to +0, whose complement is 0xFFFF.
        return 0 if value or initial else 0xFFFF
    return 0xFFFF - s


def verify(data: Buffer, initial: int = 0) -> bool:
    """True when ``data`` (checksum field included) sums to all ones, i.e. the checksum holds."""
    value = int.from_bytes(data, "little")
    return bool(value or initial) and (value % 0xFFFF * 256 + initial) % 0xFFFF == 0


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Sum of the IPv4 pseudo-header: source, destination, zero, protocol, length (RFC 768)."""
    return int.from_bytes(src + dst, "big") % 0xFFFF + proto + length


def pseudo_header_sum6(src: bytes, dst: bytes, next_header: int, length: int) -> int:
    """Sum of the IPv6 pseudo-header (RFC 8200 8.1): 32-bit length and next header."""
    return (
        int.from_bytes(src + dst, "big") % 0xFFFF + next_header + (length >> 16) + (length & 0xFFFF)
    )
