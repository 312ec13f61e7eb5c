"""The error netstack reports for each ICMP and ICMPv6 message is the one the Linux kernel
reports for it (the tables of netstack/proto/icmp/oserror.py, which Stack's TCP, UDP and ping
and HostStack's ping share).

The kernel is asked in a fresh network namespace (icmp_errno_probe.py): a connected UDP socket
with IP_RECVERR / IPV6_RECVERR, and each message sent to it over loopback from a raw socket,
quoting the socket's datagram.
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pytest

from netstack.proto.icmp.oserror import to_oserror, to_oserror6
from netstack.testing import require_net_admin

pytestmark = pytest.mark.peers

PROBE = Path(__file__).with_name("icmp_errno_probe.py")

#: (type, code, rest): every code of every error type and a few beyond, and types that are no
#: errors at all.
MESSAGES4 = [
    *((3, code, 576 if code == 4 else 0) for code in range(21)),
    (4, 0, 0),
    *((5, code, 0x7F000002) for code in range(4)),
    (11, 0, 0),
    (11, 1, 0),
    *((12, code, 0x14000000) for code in range(3)),
    (1, 0, 0),
    (2, 0, 0),
    (6, 0, 0),
    (7, 0, 0),
    (13, 0, 0),
]
MESSAGES6 = [
    *((1, code, 0) for code in range(11)),
    (2, 0, 1280),
    *((3, code, 0) for code in range(3)),
    *((4, code, 6) for code in range(6)),
    (5, 0, 0),
    (100, 0, 0),
    (127, 3, 0),
]


def ours(exc: OSError | None) -> str | None:
    return None if exc is None else errno.errorcode[exc.errno or 0]


def test_icmp_errors_are_the_kernels() -> None:
    require_net_admin()
    from netstack.netns import Namespace

    asked = {"v4": MESSAGES4, "v6": MESSAGES6}
    with Namespace.create() as ns:
        proc = ns.run(sys.executable, str(PROBE), input=json.dumps(asked), timeout=60.0)
    kernel = json.loads(proc.stdout)
    for family, messages, convert in (
        ("v4", MESSAGES4, to_oserror),
        ("v6", MESSAGES6, to_oserror6),
    ):
        expected = {
            tuple(m[:2]): answer for m, answer in zip(messages, kernel[family], strict=True)
        }
        got = {tuple(m[:2]): ours(convert(m[0], m[1])) for m in messages}
        assert got == expected, family
    # The probe heard errors: an empty answer would prove nothing.
    assert kernel["v6"].count("EPROTO") >= 5 and "ECONNREFUSED" in kernel["v4"]
