"""TCP urgent data (RFC 9293 3.8.5, RFC 6093) between netstack and the Linux kernel over TAP:
a Python socket in the namespace with ``MSG_OOB``, ``SO_OOBINLINE`` and ``SIOCATMARK`` must
agree with netstack on where the urgent data ends, both ways."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from peerkit import in_netns, peer, wait_listening

from netstack import Stack
from netstack.testing import TapSandbox

pytestmark = pytest.mark.peers

KERNEL = "198.18.0.1"
NETSTACK = "198.18.0.2"
TIMEOUT = 30.0

#: A kernel server: reads one connection to its end, with the urgent byte out of band
#: (``recv(MSG_OOB)``) or in line (``SO_OOBINLINE``), noting at which stream offsets
#: ``SIOCATMARK`` says the reader is at the urgent mark.
KERNEL_SERVER = r"""
import fcntl, json, select, socket, struct, sys

SIOCATMARK = 0x8905
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
inline = mode == "inline"
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(1)
srv.settimeout(20)
conn, _ = srv.accept()
if inline:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
data, oob, marks = bytearray(), bytearray(), []
while True:
    at_mark = struct.unpack("i", fcntl.ioctl(conn, SIOCATMARK, b"\0" * 4))[0]
    if at_mark and len(data) not in marks:
        marks.append(len(data))
    readable, _, urgent = select.select([conn], [], [] if inline else [conn], 20)
    if not readable and not urgent:
        break
    if urgent:
        try:
            oob += conn.recv(1, socket.MSG_OOB)
        except OSError:
            pass  # the pointer came before its byte
    if readable:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
print(json.dumps({"data": data.decode(), "oob": oob.decode(), "marks": marks}))
"""

#: A kernel client: normal data, then ``send(MSG_OOB)``, then more, each write on its own.
KERNEL_CLIENT = r"""
import socket, sys, time

conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
conn.sendall(b"abc")
time.sleep(0.05)
conn.send(b"XYZ", socket.MSG_OOB)
time.sleep(0.05)
conn.sendall(b"def")
conn.shutdown(socket.SHUT_WR)
assert conn.recv(10) == b""
conn.close()
print("sent")
"""


async def send_with_urgent(stack: Stack, port: int) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                transport, _ = await stack.create_connection(asyncio.Protocol, KERNEL, port)
                break
            except ConnectionRefusedError:
                await asyncio.sleep(0.1)
    transport.write(b"normal ")
    await asyncio.sleep(0.05)
    transport.write_urgent(b"URGENT!")  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    transport.write(b" tail")
    transport.write_eof()
    await asyncio.sleep(0.2)
    transport.close()


@pytest.mark.parametrize("mode", ["oob", "inline"])
async def test_kernel_receives_netstacks_urgent_data(
    tap_stack: Stack, tap_netns: TapSandbox, mode: str
) -> None:
    """netstack writes "normal ", then "URGENT!" as urgent data, then " tail". The kernel puts
    the last byte of the urgent data (the one before the pointer) out of band, or, with
    SO_OOBINLINE, leaves it in line with the mark in front of it: either way the pointer
    netstack sent is where Linux expects it (the octet after the urgent data)."""
    port = 9100 if mode == "oob" else 9101
    async with peer(
        tap_netns, sys.executable, "-c", KERNEL_SERVER, KERNEL, str(port), mode
    ) as proc:
        await wait_listening(tap_netns, port)
        await send_with_urgent(tap_stack, port)
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out.decode().strip().splitlines()[-1])
    if mode == "oob":
        assert result["data"] == "normal URGENT tail"
        assert result["oob"] == "!"
    else:
        assert result["data"] == "normal URGENT! tail"
        assert result["oob"] == ""
        assert result["marks"] == [len("normal URGENT")]


class UrgentReceiver(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.marks: list[int] = []
        self.eof: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def urgent_data_received(self, mark: int) -> None:
        self.marks.append(mark)

    def eof_received(self) -> None:
        if not self.eof.done():
            self.eof.set_result(None)


async def test_netstack_receives_the_kernels_urgent_data(
    tap_stack: Stack, tap_netns: TapSandbox
) -> None:
    """The kernel sends "abc", then "XYZ" with MSG_OOB, then "def": netstack keeps all of it
    in line and reports one urgent mark, after "XYZ" (stream offset 6)."""
    receivers: list[UrgentReceiver] = []

    def factory() -> UrgentReceiver:
        receivers.append(UrgentReceiver())
        return receivers[-1]

    server = await tap_stack.create_server(factory, port=9102)
    text = await in_netns(tap_netns, sys.executable, "-c", KERNEL_CLIENT, NETSTACK, "9102")
    assert text.strip() == "sent"
    (receiver,) = receivers
    await asyncio.wait_for(receiver.eof, TIMEOUT)
    assert bytes(receiver.data) == b"abcXYZdef"
    assert receiver.marks == [6]
    server.close()
