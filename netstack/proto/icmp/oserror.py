"""The error a socket reports for an ICMP (RFC 792) or ICMPv6 (RFC 4443) error message: one
table for both families, used by every transport, by ``Stack.ping`` and by ``HostStack.ping``
(whose raw ICMP sockets see the messages themselves).

The errno values are the Linux kernel's (its ``icmp_err_convert`` table and
``icmpv6_err_convert``), so that an application sees the same errors on netstack as on the
operating system's own stack; ``tests/peers/test_kernel_icmp_errors.py`` asks the kernel for
each message and compares. Where Linux tells no socket at all (an IPv4 Destination
Unreachable code above 15, Time Exceeded in reassembly, Source Quench, Redirect), the
functions return ``None`` and the message changes nothing for the transport.

The exception's class follows from its errno as Python's ``OSError`` picks it
(``ECONNREFUSED`` is a :class:`ConnectionRefusedError`, ``EACCES`` a
:class:`PermissionError`), except for the two messages that say the peer does not speak the
protocol at all -- IPv4's Protocol Unreachable and IPv6's Parameter Problem code 1, its
counterpart (RFC 8200 4) -- which are :class:`ConnectionRefusedError` whatever their errno,
because RFC 1122 4.2.3.9 makes Protocol and Port Unreachable hard errors for TCP, and TCP
tells hard from soft errors by that class.
"""

from __future__ import annotations

import errno

from ..icmpv6.wire import Icmp6Type, ParameterProblemCode6, UnreachableCode6
from .wire import IcmpType, TimeExceededCode, UnreachableCode

__all__ = ["to_oserror", "to_oserror6"]

_NET_UNREACHABLE = (errno.ENETUNREACH, "Network is unreachable")
_HOST_UNREACHABLE = (errno.EHOSTUNREACH, "No route to host")
_PROHIBITED = (errno.EACCES, "Communication administratively prohibited")

#: IPv4 Destination Unreachable codes 0..15 (RFC 792, RFC 1122 3.2.2.1, RFC 1812 5.2.7.1).
_UNREACHABLE: dict[int, tuple[int, str]] = {
    UnreachableCode.NET: _NET_UNREACHABLE,
    UnreachableCode.HOST: _HOST_UNREACHABLE,
    UnreachableCode.PROTOCOL: (errno.ENOPROTOOPT, "Protocol unreachable"),
    UnreachableCode.PORT: (errno.ECONNREFUSED, "Connection refused (port unreachable)"),
    UnreachableCode.FRAGMENTATION_NEEDED: (
        errno.EMSGSIZE,
        "Message too long (fragmentation needed)",
    ),
    UnreachableCode.SOURCE_ROUTE_FAILED: (
        errno.EOPNOTSUPP,
        "Operation not supported (source route failed)",
    ),
    UnreachableCode.NET_UNKNOWN: (errno.ENETUNREACH, "Network is unreachable (unknown)"),
    UnreachableCode.HOST_UNKNOWN: (errno.EHOSTDOWN, "Host is down (unknown)"),
    UnreachableCode.HOST_ISOLATED: (errno.ENONET, "Machine is not on the network (isolated)"),
    UnreachableCode.NET_PROHIBITED: (
        errno.ENETUNREACH,
        "Network is unreachable (administratively prohibited)",
    ),
    UnreachableCode.HOST_PROHIBITED: (
        errno.EHOSTUNREACH,
        "No route to host (administratively prohibited)",
    ),
    UnreachableCode.NET_TOS: (errno.ENETUNREACH, "Network is unreachable for the TOS"),
    UnreachableCode.HOST_TOS: (errno.EHOSTUNREACH, "No route to host for the TOS"),
    UnreachableCode.ADMIN_PROHIBITED: (
        errno.EHOSTUNREACH,
        "No route to host (communication administratively prohibited)",
    ),
    UnreachableCode.PRECEDENCE_VIOLATION: (
        errno.EHOSTUNREACH,
        "No route to host (precedence violation)",
    ),
    UnreachableCode.PRECEDENCE_CUTOFF: (
        errno.EHOSTUNREACH,
        "No route to host (precedence cutoff)",
    ),
}

#: ICMPv6 Destination Unreachable codes 0..6 (RFC 4443 3.1); later codes (RFC 6550's 7,
#: RFC 8883's 8) are protocol errors, as unknown codes of a known type.
_UNREACHABLE6: dict[int, tuple[int, str]] = {
    UnreachableCode6.NO_ROUTE: _NET_UNREACHABLE,
    UnreachableCode6.ADMIN_PROHIBITED: _PROHIBITED,
    UnreachableCode6.BEYOND_SCOPE: (errno.EHOSTUNREACH, "No route to host (beyond scope)"),
    UnreachableCode6.ADDRESS: _HOST_UNREACHABLE,
    UnreachableCode6.PORT: (errno.ECONNREFUSED, "Connection refused (port unreachable)"),
    UnreachableCode6.SOURCE_POLICY: (
        errno.EACCES,
        "Communication administratively prohibited (source address policy)",
    ),
    UnreachableCode6.REJECT_ROUTE: (
        errno.EACCES,
        "Communication administratively prohibited (reject route)",
    ),
}


def to_oserror(type_: int, code: int) -> OSError | None:
    """The error a socket reports for an ICMP error message of ``type_`` and ``code``; None
    for a message that is no error to report."""
    if type_ == IcmpType.DEST_UNREACHABLE:
        entry = _UNREACHABLE.get(code)
        if entry is None:
            return None  # a code no RFC defines: Linux drops the message
        if code == UnreachableCode.PROTOCOL or code == UnreachableCode.PORT:
            return ConnectionRefusedError(*entry)
        return OSError(*entry)
    if type_ == IcmpType.TIME_EXCEEDED:
        if code == TimeExceededCode.REASSEMBLY:
            # The destination had some fragments and gave up on the rest: a lost datagram,
            # which says nothing about the path (Linux tells no socket either).
            return None
        return OSError(errno.EHOSTUNREACH, "No route to host (time exceeded)")
    if type_ == IcmpType.PARAMETER_PROBLEM:
        return OSError(errno.EPROTO, "Protocol error (parameter problem)")
    return None


def to_oserror6(type_: int, code: int) -> OSError | None:
    """The error a socket reports for an ICMPv6 error message of ``type_`` and ``code``; None
    for an informational message (types 128 and up)."""
    if type_ == Icmp6Type.DEST_UNREACHABLE:
        entry = _UNREACHABLE6.get(code)
        if entry is None:
            return OSError(errno.EPROTO, f"Protocol error (destination unreachable, code {code})")
        return OSError(*entry)
    if type_ == Icmp6Type.PACKET_TOO_BIG:
        return OSError(errno.EMSGSIZE, "Message too long (packet too big)")
    if type_ == Icmp6Type.TIME_EXCEEDED:
        return OSError(errno.EHOSTUNREACH, "No route to host (time exceeded)")
    if type_ == Icmp6Type.PARAMETER_PROBLEM:
        if code == ParameterProblemCode6.UNRECOGNIZED_NEXT_HEADER:
            return ConnectionRefusedError(errno.EPROTO, "Protocol error (unrecognized next header)")
        return OSError(errno.EPROTO, "Protocol error (parameter problem)")
    if type_ < 128:
        # RFC 4443 2.4 (a): an error message of unknown type MUST be passed to the upper
        # layer that sent the packet it quotes.
        return OSError(errno.EPROTO, f"Protocol error (ICMPv6 error type {type_})")
    return None
