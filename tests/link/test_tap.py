"""TapLink against the Linux kernel: frames round-trip through a TAP device whose kernel side
lives in a throwaway network namespace (198.18.0.1 there, netstack's 198.18.0.2 here).

The tests that need root skip without it, unless NETSTACK_REQUIRE_PEERS=1 (CI), where they fail.
Frames are built by hand here so that these tests depend on nothing but the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
from test_offload import tcp4, tcp_checksum_ok, tso4

from netstack.errors import LinkError
from netstack.link.base import MacAddress
from netstack.link.offload import NO_OFFLOADS, SOFT_GSO, segment
from netstack.link.tap import TapLink
from netstack.netns import (
    Namespace,
    NamespaceError,
    have_net_admin,
    open_tap_in_namespace,
    tap_unavailable_reason,
)

KERNEL_IP = ipaddress.IPv4Address("198.18.0.1")
OUR_IP = ipaddress.IPv4Address("198.18.0.2")
BROADCAST = b"\xff" * 6
ETH_ARP = 0x0806
ETH_IPV4 = 0x0800
#: Seconds a whole test may take; a kernel answer takes milliseconds.
TEST_TIMEOUT = 15.0
#: Seconds to wait for one answer from the kernel.
REPLY_TIMEOUT = 5.0

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_ICMP_ECHO = struct.Struct("!BBHHH")


def require_tap() -> None:
    """Skip (or, when peers are required, fail) where TAP sandboxes cannot be built."""
    if have_net_admin():
        return
    reason = f"TAP sandbox unavailable: {tap_unavailable_reason()}"
    if os.environ.get("NETSTACK_REQUIRE_PEERS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


# -- frames built by hand -----------------------------------------------------------------------
def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def arp_frame(
    op: int,
    src_mac: bytes,
    sender_ip: ipaddress.IPv4Address,
    target_ip: ipaddress.IPv4Address,
    *,
    dst_mac: bytes = BROADCAST,
    target_mac: bytes = bytes(6),
) -> bytes:
    eth = _ETH.pack(dst_mac, src_mac, ETH_ARP)
    arp = _ARP.pack(1, ETH_IPV4, 6, 4, op, src_mac, sender_ip.packed, target_mac, target_ip.packed)
    return eth + arp


@dataclass
class Arp:
    eth_dst: bytes
    eth_src: bytes
    op: int
    sender_mac: bytes
    sender_ip: ipaddress.IPv4Address
    target_mac: bytes
    target_ip: ipaddress.IPv4Address


def parse_arp(frame: memoryview) -> Arp | None:
    if len(frame) < _ETH.size + _ARP.size:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_ARP:
        return None
    _, ptype, _, _, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, _ETH.size)
    if ptype != ETH_IPV4:
        return None
    return Arp(dst, src, op, sha, ipaddress.IPv4Address(spa), tha, ipaddress.IPv4Address(tpa))


def icmp_echo_frame(src_mac: bytes, dst_mac: bytes, ident: int, seq: int, payload: bytes) -> bytes:
    icmp = _ICMP_ECHO.pack(8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    total = _IPV4.size + len(icmp)
    header = _IPV4.pack(0x45, 0, total, 0x1234, 0x4000, 64, 1, 0, OUR_IP.packed, KERNEL_IP.packed)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return _ETH.pack(dst_mac, src_mac, ETH_IPV4) + header + icmp


def parse_echo_reply(frame: memoryview) -> tuple[int, int, bytes] | None:
    """(ident, seq, payload) of a valid ICMP echo reply from the kernel to us, else None."""
    if len(frame) < _ETH.size + _IPV4.size + _ICMP_ECHO.size:
        return None
    if _ETH.unpack_from(frame)[2] != ETH_IPV4:
        return None
    ip = bytes(frame[_ETH.size :])
    ver_ihl, _, total, _, _, _, proto, _, src, dst = _IPV4.unpack_from(ip)
    ihl = (ver_ihl & 0x0F) * 4
    if proto != 1 or src != KERNEL_IP.packed or dst != OUR_IP.packed:
        return None
    assert checksum(ip[:ihl]) == 0, "bad IPv4 header checksum from the kernel"
    icmp = ip[ihl:total]
    assert checksum(icmp) == 0, "bad ICMP checksum from the kernel"
    kind, code, _, ident, seq = _ICMP_ECHO.unpack_from(icmp)
    if kind != 0 or code != 0:
        return None
    return ident, seq, icmp[_ICMP_ECHO.size :]


# -- fixtures and helpers -------------------------------------------------------------------
@dataclass
class Sandbox:
    ns: Namespace
    link: TapLink


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    require_tap()
    with Namespace.create() as ns:
        link = open_tap_in_namespace(ns)
        try:
            yield Sandbox(ns, link)
        finally:
            link.close()


@contextlib.asynccontextmanager
async def listening(
    link: TapLink, on_frame: Callable[[memoryview], None]
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``link.listen(on_frame)`` for the body; disconnect and reap it afterwards."""
    task = asyncio.create_task(link.listen(on_frame))
    await asyncio.sleep(0)  # let listen() register its reader before the body sends
    try:
        yield task
    finally:
        await link.disconnect()
        await asyncio.wait_for(task, REPLY_TIMEOUT)


def kernel_mac(sb: Sandbox) -> MacAddress:
    info = json.loads(sb.ns.ip("-j", "link", "show", "dev", sb.link.name).stdout)
    return MacAddress(info[0]["address"])


def arp_reply_waiter(link: TapLink) -> tuple[asyncio.Future[Arp], Callable[[memoryview], None]]:
    """A future for the kernel's ARP reply to us, and the frame callback that resolves it."""
    reply: asyncio.Future[Arp] = asyncio.get_running_loop().create_future()

    def on_frame(frame: memoryview) -> None:
        arp = parse_arp(frame)
        if arp is None or arp.op != 2 or arp.sender_ip != KERNEL_IP or reply.done():
            return
        reply.set_result(arp)

    return reply, on_frame


def check_arp_reply(arp: Arp, link: TapLink) -> None:
    assert arp.eth_dst == link.mac, "the reply goes to netstack's MAC"
    assert arp.target_mac == link.mac
    assert arp.target_ip == OUR_IP
    assert arp.sender_mac == arp.eth_src
    assert arp.sender_mac != link.mac, "the kernel's side has a MAC of its own"


# -- tests against the kernel ---------------------------------------------------------------
async def test_arp_request_by_transmit_gets_kernel_reply(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        link = sandbox.link
        peer_mac = kernel_mac(sandbox)  # while the device exists: disconnect deletes it
        reply, on_frame = arp_reply_waiter(link)
        async with listening(link, on_frame):
            link.transmit(arp_frame(1, link.mac, OUR_IP, KERNEL_IP))
            arp = await asyncio.wait_for(reply, REPLY_TIMEOUT)
        check_arp_reply(arp, link)
        assert arp.sender_mac == peer_mac

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_arp_request_by_write_and_writev(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        link = sandbox.link
        frame = arp_frame(1, link.mac, OUR_IP, KERNEL_IP)
        for send in (link.write, lambda f: link.writev([f[:14], memoryview(f)[14:]])):
            reply, on_frame = arp_reply_waiter(link)
            task = asyncio.create_task(link.listen(on_frame))
            await asyncio.sleep(0)
            try:
                await send(frame)
                check_arp_reply(await asyncio.wait_for(reply, REPLY_TIMEOUT), link)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await link.disconnect()

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_icmp_echo_round_trips_through_the_kernel(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        link = sandbox.link
        peer_mac = kernel_mac(sandbox)
        payload = bytes(range(56))
        replies: asyncio.Queue[tuple[int, int, bytes]] = asyncio.Queue()
        arp_requests = 0

        def on_frame(frame: memoryview) -> None:
            nonlocal arp_requests
            arp = parse_arp(frame)
            if arp is not None and arp.op == 1 and arp.target_ip == OUR_IP:
                # The kernel does not learn addresses from IP packets, so it asks for ours.
                arp_requests += 1
                link.transmit(
                    arp_frame(
                        2,
                        link.mac,
                        OUR_IP,
                        arp.sender_ip,
                        dst_mac=arp.sender_mac,
                        target_mac=arp.sender_mac,
                    )
                )
                return
            echo = parse_echo_reply(frame)
            if echo is not None:
                replies.put_nowait(echo)

        async with listening(link, on_frame):
            for seq in (1, 2, 3):
                link.transmit(icmp_echo_frame(link.mac, peer_mac, 0x4E53, seq, payload))
                reply = await asyncio.wait_for(replies.get(), REPLY_TIMEOUT)
                assert reply == (0x4E53, seq, payload)
        assert arp_requests >= 1

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_stats_count_packets_and_bytes(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        link = sandbox.link
        seen: list[int] = []
        replies = 0
        got_all = asyncio.get_running_loop().create_future()

        def on_frame(frame: memoryview) -> None:
            nonlocal replies
            seen.append(len(frame))
            arp = parse_arp(frame)
            if arp is not None and arp.op == 2 and arp.sender_ip == KERNEL_IP:
                replies += 1
                if replies == 3 and not got_all.done():
                    got_all.set_result(None)

        link.reset_stats()
        assert link.stats().as_dict() == dict.fromkeys(link.stats().as_dict(), 0)
        frame = arp_frame(1, link.mac, OUR_IP, KERNEL_IP)
        async with listening(link, on_frame):
            for _ in range(3):
                link.transmit(frame)
            await asyncio.wait_for(got_all, REPLY_TIMEOUT)
            stats = link.stats()
        assert stats.tx_packets == 3
        assert stats.tx_bytes == 3 * len(frame)
        assert stats.tx_dropped == 0
        # The kernel also sends IPv6 housekeeping frames; every frame delivered is counted.
        assert stats.rx_packets == len(seen) >= 3
        assert stats.rx_bytes == sum(seen)
        assert stats.rx_dropped == 0

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_frames_to_a_down_interface_are_dropped_not_raised(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        link = sandbox.link
        sandbox.ns.ip("link", "set", "dev", link.name, "down")
        link.transmit(arp_frame(1, link.mac, OUR_IP, KERNEL_IP))  # the kernel answers EIO
        assert link.stats().tx_dropped == 1
        assert link.stats().tx_packets == 0
        await link.disconnect()

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_disconnect_ends_listen_and_later_sends_raise(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        link = sandbox.link
        task = asyncio.create_task(link.listen(lambda frame: None))
        await asyncio.sleep(0.05)
        await link.disconnect()
        await asyncio.wait_for(task, REPLY_TIMEOUT)  # returns, rather than raising
        frame = arp_frame(1, link.mac, OUR_IP, KERNEL_IP)
        with pytest.raises(LinkError):
            link.transmit(frame)
        with pytest.raises(LinkError):
            await link.write(frame)
        with pytest.raises(LinkError):
            link.fileno()
        with pytest.raises(LinkError):
            await link.listen(lambda frame: None)
        # Not persistent: the kernel deleted the device with its descriptor.
        with pytest.raises(NamespaceError):
            sandbox.ns.ip("link", "show", "dev", link.name)
        await link.disconnect()  # a second disconnect is harmless

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_deleted_namespace_fails_listen_with_link_error(sandbox: Sandbox) -> None:
    async def scenario() -> None:
        link = sandbox.link
        task = asyncio.create_task(link.listen(lambda frame: None))
        await asyncio.sleep(0.05)
        sandbox.ns.delete()  # unregisters the device under the open descriptor
        with pytest.raises(LinkError, match="gone"):
            await asyncio.wait_for(task, REPLY_TIMEOUT)
        with pytest.raises(LinkError):
            link.transmit(arp_frame(1, link.mac, OUR_IP, KERNEL_IP))
        await link.disconnect()

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_uvloop_round_trip(sandbox: Sandbox) -> None:
    uvloop = pytest.importorskip("uvloop")
    link = sandbox.link

    async def on_uvloop() -> Arp:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        reply, on_frame = arp_reply_waiter(link)
        async with listening(link, on_frame):
            link.transmit(arp_frame(1, link.mac, OUR_IP, KERNEL_IP))
            return await asyncio.wait_for(reply, REPLY_TIMEOUT)

    def run() -> Arp:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(on_uvloop())

    arp = await asyncio.wait_for(asyncio.to_thread(run), TEST_TIMEOUT)
    check_arp_reply(arp, link)


async def test_namespace_delete_kills_processes_and_is_idempotent() -> None:
    require_tap()

    async def scenario() -> None:
        ns = Namespace.create()
        try:
            assert ns.exists()
            tracked = ns.popen("sleep", "60")
            # Started in the background by a shell that exits: only `ip netns pids` finds it.
            out = ns.run("sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!", timeout=5).stdout
            stray = int(out.strip())
            await asyncio.sleep(0.1)
            assert stray in ns.pids()
            assert tracked.pid in ns.pids()
        finally:
            ns.delete()
        assert not ns.exists()
        assert ns.pids() == []
        assert tracked.poll() is not None
        assert not _alive(stray)
        ns.delete()  # a second delete is harmless

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for its (non-reaping) parent."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


# -- tests that need no privileges ----------------------------------------------------------
async def test_open_without_privileges_names_the_capability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def denied(path: str, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(LinkError, match="needs CAP_NET_ADMIN") as info:
        await asyncio.wait_for(asyncio.to_thread(TapLink.open, "nst-noperm"), TEST_TIMEOUT)
    assert info.value.errno == errno.EPERM


async def test_open_without_tun_device_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(path: str, flags: int, mode: int = 0o777) -> int:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(os, "open", missing)
    with pytest.raises(LinkError, match="/dev/net/tun missing"):
        TapLink.open("nst-notun")


async def test_tunsetiff_refused_closes_the_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    real_open = os.open
    opened: list[int] = []

    def open_devnull(path: str, flags: int, mode: int = 0o777) -> int:
        fd = real_open(os.devnull, os.O_RDWR)
        opened.append(fd)
        return fd

    def refuse(fd: int, request: int, arg: bytes = b"") -> bytes:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "open", open_devnull)
    monkeypatch.setattr(fcntl, "ioctl", refuse)
    with pytest.raises(LinkError, match="cannot create TAP device 'nst-eperm'.*CAP_NET_ADMIN"):
        TapLink.open("nst-eperm")
    monkeypatch.undo()
    with pytest.raises(OSError):
        os.fstat(opened[0])


@pytest.mark.parametrize("name", ["a" * 16, "bad/name", "with space", "..", "naïve"])
async def test_bad_device_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        TapLink.open(name)


@pytest.mark.parametrize(
    ("v4", "v6"),
    [
        ("10.0.0.1/24", None),
        ("198.18.0.1/8", None),  # the prefix would reach beyond 198.18.0.0/15
        ("192.168.1.1/24", None),
        (None, "2001:db8::1/64"),
        (None, "fe80::1/64"),
        (None, "fd00::1/7"),
        ("fd00::1/64", None),  # the wrong family
    ],
)
async def test_sandbox_refuses_addresses_outside_the_safe_ranges(
    v4: str | None, v6: str | None
) -> None:
    # A namespace that was never created: the check must come before anything is touched.
    ns = Namespace("netstack-never-created")
    with pytest.raises(ValueError, match="outside"):
        open_tap_in_namespace(ns, kernel_ipv4=v4, kernel_ipv6=v6, dev="nst-unsafe")


def _pushing_back() -> tuple[TapLink, socket.socket]:
    """A TAP link on a socket pair standing in for the descriptor, and the far end: the
    pair's small buffers make write() answer EAGAIN, as a busy device would."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setblocking(False)
    theirs.setblocking(False)
    return TapLink(ours.detach(), "fake0", mtu=1500), theirs


async def test_transmit_queues_in_order_when_the_device_pushes_back() -> None:
    """Drive the queue with a socket pair standing in for the TAP descriptor."""

    async def scenario() -> None:
        link, theirs = _pushing_back()
        try:
            sent = 3000
            for seq in range(sent):
                link.transmit(
                    BROADCAST + bytes(link.mac) + struct.pack("!HI", 0x88B5, seq) + bytes(400)
                )
            stats = link.stats()
            queued = sent - stats.tx_packets - stats.tx_dropped
            assert stats.tx_packets > 0
            assert queued == 1024
            assert stats.tx_dropped == sent - stats.tx_packets - 1024

            received: list[int] = []
            expected = stats.tx_packets + queued
            for _ in range(100_000):
                if len(received) == expected:
                    break
                try:
                    data = theirs.recv(2048)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                received.append(struct.unpack_from("!I", data, 14)[0])
            assert received == sorted(received) and len(received) == expected
            assert received[: stats.tx_packets] == list(range(stats.tx_packets))
            await asyncio.sleep(0)
            assert link.stats().tx_packets == expected
        finally:
            await link.disconnect()
            theirs.close()

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_software_gso_cuts_in_order_when_the_device_pushes_back() -> None:
    """Without offloads a TAP link still takes super-segments (``tx_offloads``) and cuts
    them itself. When write() answers EAGAIN part way through one (a socket pair with a
    small buffer stands in for the descriptor), the rest of its pieces wait in the queue,
    and the far end gets every piece in order, each as segment() cuts it."""

    async def scenario() -> None:
        link, theirs = _pushing_back()
        try:
            assert link.tx_offloads == SOFT_GSO and link.offloads == NO_OFFLOADS
            frames = [tcp4(bytes([i]) * 7500, seq=i * 7500) for i in range(40)]
            expected = [bytes(p) for f in frames for p in segment(f, tso4())]
            for frame in frames:
                link.transmit(frame, tso4())
            stats = link.stats()
            assert 0 < stats.tx_packets < len(expected) and stats.tx_dropped == 0
            received: list[bytes] = []
            for _ in range(100_000):
                if len(received) == len(expected):
                    break
                try:
                    received.append(theirs.recv(2048))
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            assert received == expected
            assert all(tcp_checksum_ok(p) for p in received)
            assert link.stats().tx_packets == len(expected)
        finally:
            await link.disconnect()
            theirs.close()

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)


async def test_without_software_gso_a_plain_link_takes_no_metadata() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    link = TapLink(ours.detach(), "fake0", mtu=1500, gso=False)
    try:
        assert link.tx_offloads == NO_OFFLOADS
        with pytest.raises(LinkError, match="no offload metadata"):
            link.transmit(tcp4(bytes(3000)), tso4())
        soft = TapLink(os.dup(link.fileno()), "fake1", mtu=1500)
        with pytest.raises(LinkError, match="exceeds the MTU"):
            soft.transmit(tcp4(bytes(3000)), tso4(1600))
        soft.close()
    finally:
        await link.disconnect()
        theirs.close()


async def test_receive_batches_and_end_of_device_fails_listen() -> None:
    async def scenario() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        link = TapLink(ours.detach(), "fake1", mtu=1500)
        frames = [BROADCAST + bytes(6) + struct.pack("!HI", 0x88B5, i) for i in range(200)]
        for frame in frames:
            theirs.send(frame)
        got: list[bytes] = []
        task = asyncio.create_task(link.listen(lambda frame: got.append(bytes(frame))))
        for _ in range(1000):
            if len(got) == len(frames):
                break
            await asyncio.sleep(0.001)
        assert got == frames
        theirs.close()  # the other end goes away: reads now return nothing
        with pytest.raises(LinkError):
            await asyncio.wait_for(task, REPLY_TIMEOUT)
        assert link.stats().rx_packets == len(frames)
        await link.disconnect()

    await asyncio.wait_for(scenario(), TEST_TIMEOUT)
