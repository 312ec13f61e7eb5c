"""The errors ICMP and ICMPv6 error messages become (netstack/proto/icmp/oserror.py), for the
transports, Stack.ping and HostStack.ping alike. The kernel's own answers are compared in
tests/peers/test_kernel_icmp_errors.py (root); these hold without it."""

from __future__ import annotations

import errno

import pytest

from netstack.proto.icmp.oserror import to_oserror, to_oserror6
from netstack.proto.icmp.wire import ERROR_TYPES, IcmpType, UnreachableCode
from netstack.proto.icmpv6.wire import Icmp6Type, ParameterProblemCode6, UnreachableCode6


@pytest.mark.parametrize("type_", [5, 42, 100, 127])
def test_rfc4443_unknown_error_types_reach_the_sender(type_: int) -> None:
    # RFC 4443 2.4 (a): an error message of unknown type MUST be passed to the upper layer.
    error = to_oserror6(type_, 0)
    assert error is not None and error.errno == errno.EPROTO


@pytest.mark.parametrize("type_", range(128, 256))
def test_rfc4443_informational_messages_are_no_errors(type_: int) -> None:
    assert to_oserror6(type_, 0) is None


def test_icmp_types_that_are_no_errors() -> None:
    for type_ in range(256):
        if type_ not in ERROR_TYPES:
            assert to_oserror(type_, 0) is None, type_
    # Source Quench and Redirect are errors on the wire, but nothing a socket reports.
    assert to_oserror(IcmpType.SOURCE_QUENCH, 0) is None
    assert to_oserror(IcmpType.REDIRECT, 1) is None


def test_hard_errors_are_connection_refused() -> None:
    """RFC 1122 4.2.3.9: Protocol and Port Unreachable are hard errors for TCP, which tells
    them by the class; IPv6's counterparts are Port Unreachable and Parameter Problem code 1
    (RFC 8200 4: an unrecognised Next Header)."""
    hard = {
        (IcmpType.DEST_UNREACHABLE, UnreachableCode.PROTOCOL),
        (IcmpType.DEST_UNREACHABLE, UnreachableCode.PORT),
    }
    for type_ in ERROR_TYPES:
        for code in range(256):
            error = to_oserror(type_, code)
            assert isinstance(error, ConnectionRefusedError) == ((type_, code) in hard)
    hard6 = {
        (Icmp6Type.DEST_UNREACHABLE, UnreachableCode6.PORT),
        (Icmp6Type.PARAMETER_PROBLEM, ParameterProblemCode6.UNRECOGNIZED_NEXT_HEADER),
    }
    for type_ in range(128):
        for code in range(256):
            error = to_oserror6(type_, code)
            assert isinstance(error, ConnectionRefusedError) == ((type_, code) in hard6)


#: What Linux 6.18 reports on a connected UDP socket with IP_RECVERR / IPV6_RECVERR.
LINUX4 = {
    0: "ENETUNREACH", 1: "EHOSTUNREACH", 2: "ENOPROTOOPT", 3: "ECONNREFUSED", 4: "EMSGSIZE",
    5: "EOPNOTSUPP", 6: "ENETUNREACH", 7: "EHOSTDOWN", 8: "ENONET", 9: "ENETUNREACH",
    10: "EHOSTUNREACH", 11: "ENETUNREACH", 12: "EHOSTUNREACH", 13: "EHOSTUNREACH",
    14: "EHOSTUNREACH", 15: "EHOSTUNREACH",
}  # fmt: skip
LINUX6 = {
    0: "ENETUNREACH", 1: "EACCES", 2: "EHOSTUNREACH", 3: "EHOSTUNREACH", 4: "ECONNREFUSED",
    5: "EACCES", 6: "EACCES", 7: "EPROTO", 8: "EPROTO",
}  # fmt: skip


def test_destination_unreachable_as_linux() -> None:
    for code, name in LINUX4.items():
        error = to_oserror(IcmpType.DEST_UNREACHABLE, code)
        assert error is not None and error.errno == getattr(errno, name), code
    # Codes no RFC defines: Linux tells no socket.
    assert to_oserror(IcmpType.DEST_UNREACHABLE, 16) is None
    for code, name in LINUX6.items():
        error = to_oserror6(Icmp6Type.DEST_UNREACHABLE, code)
        assert error is not None and error.errno == getattr(errno, name), code


def test_time_exceeded_parameter_problem_and_packet_too_big() -> None:
    error = to_oserror(IcmpType.TIME_EXCEEDED, 0)
    assert error is not None and error.errno == errno.EHOSTUNREACH
    assert to_oserror(IcmpType.TIME_EXCEEDED, 1) is None  # reassembly: a lost datagram
    for code in range(3):
        error = to_oserror(IcmpType.PARAMETER_PROBLEM, code)
        assert error is not None and error.errno == errno.EPROTO
    for code in range(2):
        error = to_oserror6(Icmp6Type.TIME_EXCEEDED, code)
        assert error is not None and error.errno == errno.EHOSTUNREACH
    for code in range(4):
        error = to_oserror6(Icmp6Type.PARAMETER_PROBLEM, code)
        assert error is not None and error.errno == errno.EPROTO
    error = to_oserror6(Icmp6Type.PACKET_TOO_BIG, 0)
    assert error is not None and error.errno == errno.EMSGSIZE
