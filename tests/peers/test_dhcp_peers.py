"""DHCP against implementations nobody on this project wrote (PEERS.md): netstack's client
against dnsmasq's server, and busybox's udhcpc against netstack's server, over a TAP device in
a network namespace. dnsmasq runs with its DNS off (``--port=0``) and reads no resolver or hosts
file; udhcpc runs a script that only prints what it was given, so the kernel never takes the
address."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest
from peerkit import in_netns, peer, tshark_problems

import netstack.dhcp
from netstack import Stack
from netstack.dhcp import DhcpClientConfig, DhcpState, LeaseAcquired, LeaseRenewed
from netstack.link import PcapLink
from netstack.testing import TapSandbox, require_program

pytestmark = pytest.mark.peers

#: RFC 5227's probe timings shortened; the probes themselves still go to the kernel.
QUICK = DhcpClientConfig(probe_wait=0.1, probe_min=0.1, probe_max=0.2, announce_wait=0.2)


async def wait_udp_listening(sandbox: TapSandbox, port: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not (await in_netns(sandbox, "ss", "-Hlun", f"sport = :{port}")).strip():
            await asyncio.sleep(0.05)


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)


def dnsmasq_argv(dnsmasq: str, sandbox: TapSandbox, leases: Path, lease_time: int) -> list[str]:
    return [
        dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
        "--bind-interfaces", f"--interface={sandbox.dev}", "--port=0", "--user=root",
        "--pid-file=", "--log-facility=-", "--log-dhcp", "--no-ping", "--dhcp-authoritative",
        f"--dhcp-range=198.18.0.100,198.18.0.150,255.255.255.0,{lease_time}",
        "--dhcp-option=option:router,198.18.0.1",
        "--dhcp-option=option:dns-server,198.18.0.53,198.18.0.54",
        "--dhcp-option=option:domain-name,peer.test",
        f"--dhcp-leasefile={leases}",
    ]  # fmt: skip


async def test_netstack_client_against_dnsmasq(tap_netns: TapSandbox, tmp_path: Path) -> None:
    dnsmasq = require_program("dnsmasq")
    tshark = require_program("tshark")
    leases = tmp_path / "dnsmasq.leases"
    capture = tmp_path / "dhcp-client.pcap"
    async with peer(tap_netns, *dnsmasq_argv(dnsmasq, tap_netns, leases, 120)) as proc:
        await wait_udp_listening(tap_netns, 67)
        link = PcapLink(tap_netns.link, capture)
        stack = await Stack.open(link, hostname="netstack-peer")
        try:
            driver = await netstack.dhcp.configure(stack, config=QUICK, timeout=20)
            lease = driver.lease
            assert lease is not None and driver.state is DhcpState.BOUND
            assert re.fullmatch(r"198\.18\.0\.1([0-4][0-9]|50)", lease.address), lease
            assert lease.prefix_len == 24 and lease.server_id == "198.18.0.1"
            assert lease.router == "198.18.0.1"
            assert lease.dns_servers == ("198.18.0.53", "198.18.0.54")
            assert lease.domain == "peer.test" and lease.lease_time == 120
            assert [str(a) for a in stack.addresses] == [lease.interface]
            assert isinstance(driver.events.get_nowait(), LeaseAcquired)
            # The kernel and netstack reach each other with the leased address.
            assert await stack.ping("198.18.0.1", timeout=2.0) > 0
            await in_netns(tap_netns, "ping", "-c", "2", "-i", "0.2", "-W", "2", lease.address)
            # dnsmasq recorded the lease for our MAC (and host name).
            await wait_for(lambda: leases.exists() and lease.address in leases.read_text())
            record = leases.read_text()
            assert stack.mac.lower() in record.lower() and "netstack-peer" in record
            # RELEASE on close: dnsmasq forgets the lease.
            await driver.close()
            assert stack.addresses == []
            await wait_for(lambda: lease.address not in leases.read_text())
        finally:
            await stack.close()
            link.close()
        proc.kill()
        _, err = await proc.communicate()
    log = err.decode(errors="replace")
    for step in ("DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPACK", "DHCPRELEASE"):
        assert step in log, log
    assert await tshark_problems(tshark, capture, "bootp || arp") == ""


async def test_netstack_client_renews_and_reboots_with_dnsmasq(
    tap_netns: TapSandbox, tmp_path: Path
) -> None:
    dnsmasq = require_program("dnsmasq")
    leases = tmp_path / "dnsmasq.leases"
    async with peer(tap_netns, *dnsmasq_argv(dnsmasq, tap_netns, leases, 120)):
        await wait_udp_listening(tap_netns, 67)
        stack = await Stack.open(tap_netns.link, close_link=False)
        try:
            first = await netstack.dhcp.configure(stack, config=QUICK, timeout=20)
            lease = first.lease
            assert lease is not None
            assert isinstance(first.events.get_nowait(), LeaseAcquired)
            # dnsmasq's shortest lease is two minutes: the renewal (a unicast REQUEST from
            # the leased address, RFC 2131 4.4.5) is asked for now instead of at T1.
            first.renew()
            assert first.state is DhcpState.RENEWING
            renewed = await asyncio.wait_for(first.events.get(), 10.0)
            assert isinstance(renewed, LeaseRenewed) and renewed.lease.address == lease.address
            assert first.state is DhcpState.BOUND
            await first.close(release=False)
            # A restarted client asks for its remembered address (INIT-REBOOT, RFC 2131 3.2).
            again = await netstack.dhcp.configure(stack, config=QUICK, timeout=20, remembered=lease)
            assert again.lease is not None and again.lease.address == lease.address
            assert again.client.discovers_sent == 0
            await again.close()
        finally:
            await stack.close()


def udhcpc_script(tmp_path: Path, *, apply: bool = False) -> Path:
    """A udhcpc script printing the lease; with ``apply``, also adding the address to the
    kernel's interface once bound."""
    script = tmp_path / ("udhcpc-apply.sh" if apply else "udhcpc.sh")
    text = (
        "#!/bin/sh\n"
        'echo "event=$1 ip=$ip subnet=$subnet router=$router dns=$dns domain=$domain '
        'lease=$lease serverid=$serverid"\n'
    )
    if apply:
        text += 'if [ "$1" = bound ]; then ip addr add "$ip/$mask" dev "$interface"; fi\n'
    script.write_text(text)
    script.chmod(0o755)
    return script


def parse_bound(output: str) -> dict[str, str]:
    line = next((ln for ln in output.splitlines() if ln.startswith("event=bound")), None)
    assert line is not None, output
    fields = dict(pair.split("=", 1) for pair in re.findall(r"\w+=\S*", line))
    dns = re.search(r"dns=([\d. ]*?) domain=", line)
    assert dns is not None
    fields["dns"] = dns.group(1).strip()
    return fields


async def test_udhcpc_against_netstack_server(tap_netns: TapSandbox, tmp_path: Path) -> None:
    busybox = require_program("busybox")
    tshark = require_program("tshark")
    capture = tmp_path / "dhcp-server.pcap"
    link = PcapLink(tap_netns.link, capture)
    stack = await Stack.open(link, ipv4=tap_netns.stack_ipv4)
    script = udhcpc_script(tmp_path)
    try:
        server = await netstack.dhcp.serve(
            stack, pool="198.18.0.100-198.18.0.150", router="198.18.0.2",
            dns=["198.18.0.53", "198.18.0.54"], domain="peer.test", lease_time=600,
            leases_path=tmp_path / "leases.json",
        )  # fmt: skip
        kernel_mac = await in_netns(tap_netns, "cat", f"/sys/class/net/{tap_netns.dev}/address")
        kernel_mac = kernel_mac.strip().lower()
        udhcpc = [busybox, "udhcpc", "-i", tap_netns.dev, "-n", "-q", "-f", "-s", str(script),
                  "-t", "5", "-T", "1", "-x", "hostname:kernel-peer"]  # fmt: skip
        out = await in_netns(tap_netns, *udhcpc, timeout=30)
        fields = parse_bound(out)
        assert fields["ip"] == "198.18.0.100"
        assert fields["subnet"] == "255.255.255.0"
        assert fields["router"] == "198.18.0.2"
        assert fields["dns"].split() == ["198.18.0.53", "198.18.0.54"]
        assert fields["domain"] == "peer.test"
        assert fields["lease"] == "600" and fields["serverid"] == "198.18.0.2"
        [record] = server.leases
        assert record.address == "198.18.0.100" and record.mac == kernel_mac
        assert record.hostname == "kernel-peer"
        # The kernel was not given the address: netstack's server never took it.
        addresses = await in_netns(tap_netns, "ip", "-4", "-o", "addr", "show", tap_netns.dev)
        assert "198.18.0.100" not in addresses
        # Again, now letting the script give the kernel the address, and releasing (USR2;
        # udhcpc sends its RELEASE through the kernel, from the leased address): the same
        # address (the server remembers the client), then freed.
        applying = [a for a in udhcpc if a != "-q"]
        applying[applying.index(str(script))] = str(udhcpc_script(tmp_path, apply=True))
        async with peer(tap_netns, *applying) as proc:
            assert proc.stdout is not None
            lines = []
            async with asyncio.timeout(30):
                while not lines or not lines[-1].startswith("event=bound"):
                    lines.append((await proc.stdout.readline()).decode())
            assert parse_bound(lines[-1])["ip"] == "198.18.0.100"
            proc.send_signal(signal.SIGUSR2)
            await wait_for(lambda: server.leases == [])
        stats = server.stats()
        assert stats["releases"] == 1 and stats["acks_sent"] == 2 and stats["drops"] == {}
        server.close()
    finally:
        await stack.close()
        link.close()
    assert await tshark_problems(tshark, capture, "bootp || arp") == ""


DISCOVER_FLOOD = """
import random, socket, sys
from netstack.proto.dhcp.wire import BootOp, DhcpMessage, DhcpFlags, MessageType, OptionCode, build
dev, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.bind(("0.0.0.0", 68))
rng = random.Random(18)
sent = 0
for i in range(count):
    chaddr = bytes([0x02]) + rng.randbytes(5)
    msg = DhcpMessage(op=BootOp.REQUEST, xid=i, chaddr=chaddr,
                      options={OptionCode.MESSAGE_TYPE: bytes((MessageType.DISCOVER,))})
    try:
        s.sendto(build(msg), ("255.255.255.255", 67))
        sent += 1
    except OSError:
        pass
print(sent)
"""


async def test_udhcpc_gets_a_lease_after_a_discover_flood(
    tap_netns: TapSandbox, tmp_path: Path
) -> None:
    # DISCOVERs from random hardware addresses, broadcast by the kernel, then busybox's
    # udhcpc: the flood holds at most half the pool, and udhcpc is bound at once.
    busybox = require_program("busybox")
    stack = await Stack.open(tap_netns.link, ipv4=tap_netns.stack_ipv4, close_link=False)
    try:
        server = await netstack.dhcp.serve(stack, pool="198.18.0.100-198.18.0.150")
        out = await in_netns(tap_netns, sys.executable, "-c", DISCOVER_FLOOD, tap_netns.dev,
                             "3000")  # fmt: skip
        assert int(out.split()[-1]) >= 1000
        await wait_for(lambda: server.stats()["discovers"] >= 1000)
        await asyncio.sleep(0.5)
        udhcpc = [busybox, "udhcpc", "-i", tap_netns.dev, "-n", "-q", "-f",
                  "-s", str(udhcpc_script(tmp_path)), "-t", "3", "-T", "1"]  # fmt: skip
        fields = parse_bound(await in_netns(tap_netns, *udhcpc, timeout=30))
        assert 100 <= int(fields["ip"].split(".")[-1]) <= 150
        assert [lease.address for lease in server.leases] == [fields["ip"]]
        stats = server.stats()
        assert stats["offers_outstanding"] <= 25 and "pool_exhausted" not in stats["drops"]
        server.close()
    finally:
        await stack.close()
