"""netstack's NAT between two Linux kernels, checked from captures taken on both sides at once
(PEERS.md): tshark runs in the client's namespace and in the uplink's, on the kernels' own
ends of the TAP devices, while the client's kernel talks TCP (curl), UDP (a datagram echoed)
and ICMP echo (ping) to the uplink through netstack's masquerade, and sends a datagram to a
closed port, whose ICMP port unreachable comes back.

Every datagram netstack forwarded is matched with the one it came from on the other side
(by what NAT leaves alone: IP identification, TCP sequence numbers, ICMP sequence), and
checked: addresses and ports (echo identifiers) rewritten consistently, one external port per
internal one and back, TTL one less, nothing else changed, the checksums tshark computes
valid; the ICMP error translated outer and inner (its quoted datagram names the client);
and no client address ever on the uplink's wire, quoted or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from netstack import Stack
from netstack.netns import Namespace, open_tap_in_namespace
from netstack.testing import require_net_admin, require_program

pytestmark = pytest.mark.peers

CLIENT, ROUTER_IN, ROUTER_OUT, SERVER = "198.18.1.10", "198.18.1.1", "198.18.2.2", "198.18.2.1"
FIELDS = (
    "frame.number", "eth.src", "ip.src", "ip.dst", "ip.id", "ip.ttl", "ip.proto",
    "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
    "udp.srcport", "udp.dstport", "udp.length", "icmp.type", "icmp.code", "icmp.ident",
    "icmp.seq", "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
    "icmp.checksum.status",
)  # fmt: skip
#: The fields NAT never changes.
KEPT = ("ip.id", "ip.proto", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
        "udp.length", "icmp.type", "icmp.code", "icmp.seq")  # fmt: skip
#: tshark's checksum status values (Wireshark's proto_checksum_enum_e).
GOOD, UNVERIFIED = "1", "2"
UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.2.1", 7000))
while True:
    data, addr = s.recvfrom(2048)
    s.sendto(data, addr)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect(("198.18.2.1", int(sys.argv[1])))
s.send(b"through the NAT " * 8)
try:
    print(len(s.recv(2048)))
except ConnectionRefusedError:
    print("refused")
"""


async def run(ns: Namespace, *argv: str, timeout: float = 30.0) -> str:
    done = await ns.arun(*argv, check=False, timeout=timeout)
    return (done.stdout + done.stderr).strip()


def tshark_fields(tshark: str) -> list[str]:
    """tshark's arguments for one line of :data:`FIELDS` a frame (repeated fields, as the
    outer and quoted headers of an ICMP error, joined by ','), checksums validated."""
    argv = [tshark, "-n", "-T", "fields", "-E", "aggregator=,",
            "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
            "-o", "tcp.check_checksum:TRUE"]  # fmt: skip
    for f in FIELDS:
        argv += ["-e", f]
    return argv


@contextlib.asynccontextmanager
async def capturing(
    ns: Namespace, dev: str, to: str, tshark: str
) -> AsyncIterator[list[dict[str, str]]]:
    """tshark live on ``dev`` inside ``ns``: the IPv4 frames it decodes, as {field: value},
    from when it captures (a ping to ``to``, netstack's address, is seen) until the block
    ends."""
    proc = ns.popen(*tshark_fields(tshark), "-l", "-i", dev, "-f", "ip",
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    seen: list[dict[str, str]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(dict(zip(FIELDS, line.rstrip("\n").split("\t"), strict=True)))

    loop = asyncio.get_running_loop()
    reader = loop.run_in_executor(None, read)
    try:
        try:
            async with asyncio.timeout(30):  # tshark takes a second or two to start
                while not any(f["ip.dst"] == to for f in seen):
                    await run(ns, "ping", "-c", "1", "-W", "1", to)
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"tshark on {dev} captured nothing") from None
        yield seen
    finally:
        await asyncio.sleep(0.5)  # the last frames
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(reader, 20)
            await asyncio.wait_for(loop.run_in_executor(None, proc.wait), 20)
        except TimeoutError:
            proc.kill()


def key(f: dict[str, str]) -> tuple[str, ...]:
    """What NAT leaves alone in a datagram: its identification and transport sequence."""
    return tuple(f[name] for name in KEPT)


def covering(f: dict[str, str], frames: list[dict[str, str]]) -> dict[str, str] | None:
    """The TCP super-segment ``f`` was cut from: with offloads on, a kernel hands its TAP
    device segments of up to 64 KiB, which tshark sees whole and netstack cuts to the
    wire's size as a router must (its own identification numbers are the super-segment's
    and on)."""
    if f["ip.proto"] != "6" or not f["tcp.len"]:
        return None
    seq, end = int(f["tcp.seq_raw"]), int(f["tcp.seq_raw"]) + int(f["tcp.len"])
    for o in frames:
        if o["ip.proto"] != "6" or o["tcp.ack_raw"] != f["tcp.ack_raw"] or not o["tcp.len"]:
            continue
        start = int(o["tcp.seq_raw"])
        if (seq - start) % 2**32 < int(o["tcp.len"]) and (end - start) % 2**32 <= int(o["tcp.len"]):
            return o
    return None


def ports(f: dict[str, str]) -> tuple[str, str, str]:
    """(protocol, source port or echo identifier, destination port), outer header."""
    proto = f["ip.proto"].split(",")[0]
    if proto == "6":
        return proto, f["tcp.srcport"], f["tcp.dstport"]
    if proto == "17":
        return proto, f["udp.srcport"], f["udp.dstport"]
    return proto, f["icmp.ident"].split(",")[0], ""


async def test_every_translated_datagram_maps_back_in_both_captures(tmp_path: Path) -> None:
    require_net_admin()
    tshark = require_program("tshark")
    require_program("curl")
    require_program("ping")
    with Namespace.create() as client, Namespace.create() as uplink:
        lan = open_tap_in_namespace(client, kernel_ipv4=f"{CLIENT}/24", kernel_ipv6=None)
        up = open_tap_in_namespace(uplink, kernel_ipv4=f"{SERVER}/24", kernel_ipv6=None)
        client.ip("route", "add", "default", "via", ROUTER_IN)
        stack = await Stack.open(lan, ipv4=f"{ROUTER_IN}/24")
        try:
            outside = await stack.add_interface(up, ipv4=f"{ROUTER_OUT}/24", name="uplink")
            stack.nat.masquerade(outside)
            stack.forwarding = True
            macs = {str(i.mac) for i in stack.interfaces}
            (tmp_path / "www").mkdir()
            (tmp_path / "www" / "index.html").write_text("hello\n" * 500)
            uplink.popen(sys.executable, "-m", "http.server", "-b", SERVER, "-d",
                         str(tmp_path / "www"), "80", stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)  # fmt: skip
            uplink.popen(sys.executable, "-c", UDP_ECHO)
            async with asyncio.timeout(20):
                while "80" not in await run(uplink, "ss", "-Hltn", "sport = :80"):
                    await asyncio.sleep(0.05)
                while "7000" not in await run(uplink, "ss", "-Hlun", "sport = :7000"):
                    await asyncio.sleep(0.05)
            async with capturing(client, lan.name, ROUTER_IN, tshark) as inside, \
                    capturing(uplink, up.name, ROUTER_OUT, tshark) as outside_frames:  # fmt: skip
                page = await run(client, "curl", "-sS", "--max-time", "10",
                                 f"http://{SERVER}/")  # fmt: skip
                assert page == ("hello\n" * 500).strip(), page
                echoed = await run(client, sys.executable, "-c", UDP_CLIENT, "7000")
                assert echoed == "128", echoed
                refused = await run(client, sys.executable, "-c", UDP_CLIENT, "9999")
                assert refused == "refused", refused
                pinged = await run(client, "ping", "-c", "3", "-i", "0.2", "-W", "2", SERVER)
                assert " 3 received" in pinged, pinged
        finally:
            await stack.close()

    # (The pings that showed the captures running are netstack's own, not forwarded.)
    by_key_in = {key(f): f for f in inside}
    by_key_out = {key(f): f for f in outside_frames}
    mapping: dict[tuple[str, str], str] = {}  # (protocol, internal port) -> external port
    checked = {"6": 0, "17": 0, "1": 0, "error": 0}
    # Outward: every datagram netstack sent on the uplink came from the client, translated.
    for f in outside_frames:
        if f["eth.src"] not in macs or f["ip.src"] != ROUTER_OUT or f["icmp.type"] == "0":
            continue  # (an echo reply from netstack is its own answer to the marker ping)
        orig = by_key_in.get(key(f)) or covering(f, inside)
        assert orig is not None, f
        assert (orig["ip.src"], orig["ip.dst"], f["ip.dst"]) == (CLIENT, SERVER, SERVER), f
        assert int(f["ip.ttl"]) == int(orig["ip.ttl"]) - 1
        proto, sport, dport = ports(f)
        o_proto, o_sport, o_dport = ports(orig)
        assert (proto, dport) == (o_proto, o_dport)
        assert mapping.setdefault((proto, o_sport), sport) == sport, (f, mapping)
        statuses = [f[c] for c in FIELDS[-4:] if f[c]]
        assert statuses and all(s == GOOD for s in statuses), f
        checked[proto] += 1
    # One external port per internal one, and back.
    assert len(set(mapping.values())) == len(mapping), mapping
    back = {(p, ext): internal for (p, internal), ext in mapping.items()}
    # Inward: every datagram netstack sent to the client came from the uplink, translated
    # back with the same mapping.
    for f in inside:
        if f["eth.src"] not in macs or f["ip.src"].split(",")[0] != SERVER:
            continue
        orig = by_key_out.get(key(f)) or covering(f, outside_frames)
        assert orig is not None, f
        assert f["ip.dst"].split(",")[0] == CLIENT and orig["ip.dst"].split(",")[0] == (
            ROUTER_OUT
        ), f
        assert int(f["ip.ttl"].split(",")[0]) == int(orig["ip.ttl"].split(",")[0]) - 1
        statuses = [f[c] for c in FIELDS[-4:] if f[c]]
        # Every checksum good, the quoted datagram's included (its UDP checksum, over data
        # the quote cuts short, cannot be checked).
        assert statuses and all(set(s.split(",")) <= {GOOD, UNVERIFIED} for s in statuses), f
        assert all(s.split(",")[0] == GOOD for s in statuses), f
        if f["icmp.type"].startswith("3"):
            # The error, outer and quoted: the quote names the client and its own port.
            assert f["ip.src"] == f"{SERVER},{CLIENT}" and f["ip.dst"] == f"{CLIENT},{SERVER}", f
            assert orig["ip.src"] == f"{SERVER},{ROUTER_OUT}", orig
            assert back[("17", orig["udp.srcport"])] == f["udp.srcport"], (f, orig)
            assert f["udp.dstport"] == orig["udp.dstport"] == "9999"
            checked["error"] += 1
            continue
        proto, sport, dport = ports(f)
        o_proto, o_sport, o_dport = ports(orig)
        if proto == "1":  # an echo reply: the identifier is where the port would be
            assert back[("1", orig["icmp.ident"])] == f["icmp.ident"], (f, orig)
        else:
            assert (proto, sport) == (o_proto, o_sport)
            assert back[(proto, o_dport)] == dport, (f, orig, back)
        checked[proto] += 1
    assert checked["6"] >= 10 and checked["17"] >= 3 and checked["1"] >= 6, checked
    assert checked["error"] == 1, checked
    # No client address on the uplink's wire, in any header, quoted ones included.
    assert not [f for f in outside_frames if CLIENT in f["ip.src"] + f["ip.dst"]]
