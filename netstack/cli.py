"""The ``netstack`` command line (also ``python -m netstack``).

netstack demo [--pcap FILE] [--seed N]   the whole stack on an in-memory network
netstack serve --tap DEV --ipv4 A/LEN [--echo PORT] [--http PORT] [--dns ZONE] [--dhcp POOL]
                                         servers on a TAP device (or --sandbox)
netstack ping HOST [-c N] [-s SIZE] ...  ICMP echo from a netstack host on a TAP device
netstack bench [--seconds S] [--json]    a quick measurement on an in-memory link
netstack firewall --lan-tap DEV --uplink-tap DEV [--rules FILE] ...
                                         route, masquerade and filter between two TAP
                                         devices, DHCP and DNS for the clients (or --sandbox)
netstack gateway --netns NS [--dns-server ADDR] [--forward tcp:HOSTPORT:GUESTPORT] ...
                                         (or --pid PID, --rootless, --sandbox)
                                         user-mode networking for namespace NS: its every
                                         TCP/UDP flow relayed through this process's sockets
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import ipaddress
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import __version__
from . import dhcp as dhcp_service
from . import dns as dns_service
from .addressing import format_ip
from .errors import NetstackError
from .link.base import Link
from .link.memory import Impairment, MemoryLink, Switch
from .link.pcap import PcapLink
from .proto.dhcp.client import DhcpClientConfig
from .proto.ipv6.addrconf import AddrconfConfig
from .proto.ipv6.layer import IPv6Config
from .runner import loop_name, run
from .stack import Stack, StackConfig

__all__ = ["main"]


# -- demo -------------------------------------------------------------------------------------
class _Report:
    def __init__(self) -> None:
        self.step = 0

    def section(self, title: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {title}")

    def line(self, text: str) -> None:
        print(f"    {text}")


class _UdpEcho(asyncio.DatagramProtocol):
    """The echo service of RFC 862 over UDP: every datagram goes back to its sender."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class _UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.errors: asyncio.Queue[OSError] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.errors.put_nowait(exc)


async def _tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """RFC 862 over TCP: everything received goes back, until the client is done."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _http_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.readuntil(b"\r\n\r\n")
    path = request.split(b" ", 2)[1].decode(errors="replace")
    body = f"hello from netstack, you asked for {path}\n".encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    writer.close()


def _openssl_client(ca: Any) -> ssl.SSLContext:
    from cryptography.hazmat.primitives import serialization

    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return ctx


async def _demo_pinata(
    report: _Report, alpha: Stack, beta: Stack, gamma: Stack, delta: Stack
) -> None:
    """MirageOS's Bitcoin Piñata: a TLS server hands its secret only to clients whose
    certificate its own CA signed. netstack's TLS 1.3 serves it; the clients are netstack's
    TLS and OpenSSL (an ssl.SSLContext), over the same TCP."""
    from .tls import TLSConfig
    from .tls import certs as tls_certs

    ca, ca_key = tls_certs.make_ca("Piñata CA")
    server_cert, server_key = tls_certs.issue(
        ca, ca_key, "pinata.demo.test", ips=["198.18.0.2"], dns_names=["pinata.demo.test"]
    )
    client_cert, client_key = tls_certs.issue(ca, ca_key, "alpha", client=True)
    secret = os.urandom(8).hex()

    async def pinata(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        who = writer.get_extra_info("peercert")
        name = dict(x for rdn in who["subject"] for x in rdn)["commonName"]
        writer.write(f"well done {name}, the secret is {secret}\n".encode())
        await writer.drain()
        writer.close()

    guarded = TLSConfig.server(
        [server_cert], server_key, cafile=[ca], verify_client=True, alpn_protocols=["pinata"]
    )
    vault = await beta.start_server(pinata, port=8443, ssl=guarded)
    with_cert = TLSConfig.client(
        cafile=[ca], certfile=[client_cert], keyfile=client_key, alpn_protocols=["pinata"]
    )
    reader, writer = await alpha.open_connection(
        "198.18.0.2", 8443, ssl=with_cert, server_hostname="pinata.demo.test"
    )
    answer = (await asyncio.wait_for(reader.readline(), 5.0)).decode().strip()
    cipher = writer.get_extra_info("cipher")
    report.line(f"alpha (netstack TLS, with a certificate): {cipher[1]} {cipher[0]}, ALPN "
                f"{writer.get_extra_info('alpn_protocol')}: {answer!r}")  # fmt: skip
    writer.close()
    for label, client_config in (
        ("gamma (netstack TLS, no certificate)", TLSConfig.client(cafile=[ca])),
        ("delta (OpenSSL, no certificate)", _openssl_client(ca)),
    ):
        client_host = gamma if label.startswith("gamma") else delta
        try:
            reader, writer = await client_host.open_connection(
                "198.18.0.2", 8443, ssl=client_config, server_hostname="pinata.demo.test"
            )
            data = await asyncio.wait_for(reader.read(100), 5.0)
            outcome = f"got {data!r}" if data else "connection closed"
            writer.close()
        except (ssl.SSLError, ConnectionError) as exc:
            outcome = f"refused: {type(exc).__name__}: {exc}"
        report.line(f"{label}: {outcome}")
    vault.close()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


async def _demo_gateway(
    report: _Report, gamma: Stack, beta: Stack, quick: DhcpClientConfig
) -> None:
    """netstack.gateway with gamma as its "host": zeta, on a cable of its own, has a network
    that exists only inside the gateway, and whatever it opens leaves through gamma."""
    from . import gateway

    g_link, gw_link = MemoryLink.pair()
    gw = await gateway.start(
        gw_link, host=gamma, network="198.19.0.0/24", ipv6=None, dns_servers=["198.18.0.3"]
    )
    zeta = await Stack.open(g_link, dhcp=True, hostname="zeta", config=StackConfig(dhcp=quick))
    try:
        lease = zeta.dhcp.lease if zeta.dhcp is not None else None
        if lease is not None:
            report.line(f"zeta's lease from the gateway: {lease.interface}, router "
                        f"{lease.router}, name server {', '.join(lease.dns_servers)}")  # fmt: skip
        seen: list[str] = []

        async def web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("peername")[0])
            await _http_server(reader, writer)

        server = await beta.start_server(web, port=8080)
        reader, writer = await zeta.open_connection("198.18.0.2", 8080)
        writer.write(b"GET /through-the-gateway HTTP/1.1\r\nHost: beta\r\n\r\n")
        response = await asyncio.wait_for(reader.read(-1), 5.0)
        writer.close()
        server.close()
        status = response.split(b"\r\n", 1)[0].decode()
        report.line(f"zeta -> http://198.18.0.2:8080/: {status}; beta saw the request come "
                    f"from {', '.join(seen)} (gamma)")  # fmt: skip
        found = await zeta.resolve("www.demo.test")
        report.line(f"zeta resolves www.demo.test through the gateway's DNS: {found[0]}")
        rtt = await zeta.ping("198.18.0.2")
        report.line(f"ping zeta -> beta, answered once gamma's own ping was: {_ms(rtt)}")
        try:
            await zeta.open_connection("198.18.0.2", 9)
        except OSError as exc:
            report.line(f"zeta -> beta port 9 (gamma's connect refused): {type(exc).__name__}")
        stats = gw.stats()
        report.line(f"the gateway relayed {stats['tcp_flows']} TCP flow(s), "
                    f"{stats['dns_answers']} DNS answer(s), {stats['echo_replies']} echo "
                    f"reply(ies); {stats['tcp_connect_failed']} connect refused")  # fmt: skip
    finally:
        await zeta.close()
        await gw.close()


async def _demo(pcap: str | None, seed: int) -> int:
    report = _Report()
    print(f"netstack {__version__} demo — {loop_name()} event loop, impairment seed {seed}")
    switch = Switch()
    names = ["alpha", "beta", "gamma"]
    hosts: dict[str, Stack] = {}
    capture: PcapLink | None = None
    try:
        report.section("Three dual-stack hosts on an in-memory learning switch")
        links: list[Link] = []
        for name in names:
            link: Link = switch.port()
            if pcap and name == "alpha":
                link = capture = PcapLink(link, pcap)
            links.append(link)
        # Opened together: each waits for IPv6 duplicate address detection (RFC 4862 5.4),
        # its waits shortened for a memory network. No router answers on this network, so one
        # router solicitation each, sent at once: no frame later on depends on the clock, and
        # the lossy part below replays exactly.
        config = StackConfig(
            ipv6=IPv6Config(
                addrconf=AddrconfConfig(max_rtr_solicitations=1, retrans_timer=0.1,
                                        max_rtr_solicitation_delay=0.1)
            )
        )  # fmt: skip
        opened = await asyncio.gather(
            *(
                Stack.open(link, ipv4=f"198.18.0.{i}/24", ipv6=f"fd00:198:18::{i}/64",
                           hostname=name, config=config)
                for i, (name, link) in enumerate(zip(names, links, strict=True), start=1)
            )
        )  # fmt: skip
        for i, (name, stack) in enumerate(zip(names, opened, strict=True), start=1):
            hosts[name] = stack
            report.line(f"{name:6} {stack.mac}  198.18.0.{i}/24  fd00:198:18::{i}/64")
        alpha, beta, gamma = hosts["alpha"], hosts["beta"], hosts["gamma"]

        report.section("ARP: alpha resolves beta (RFC 826); the first packet waits, not lost")
        rtt = await alpha.ping("198.18.0.2")
        report.line(f"first ping alpha -> beta: {_ms(rtt)} (ARP request, reply, then echo)")
        for ip, mac, state in alpha.arp_table():
            report.line(f"alpha's ARP cache: {ip} is at {mac} ({state})")
        arp = alpha.stats()["arp"]
        report.line(f"alpha sent {arp['requests_sent']} ARP request(s), answered by beta")

        report.section("ICMP echo between every pair (RFC 792)")
        for src_name, src in hosts.items():
            for i, dst_name in enumerate(names, start=1):
                if dst_name == src_name:
                    continue
                rtts = [await src.ping(f"198.18.0.{i}") for _ in range(3)]
                best = min(rtts)
                report.line(f"{src_name:6} -> {dst_name:6} 3 replies, best {_ms(best)}")

        report.section("UDP echo (RFC 862 over RFC 768): gamma serves port 7")
        await gamma.create_datagram_endpoint(_UdpEcho, local_addr=("0.0.0.0", 7))
        for name in ("alpha", "beta"):
            transport, client = await hosts[name].create_datagram_endpoint(
                _UdpClient, remote_addr=("198.18.0.3", 7)
            )
            message = f"hello from {name}".encode()
            transport.sendto(message)
            data, addr = await asyncio.wait_for(client.queue.get(), 2.0)
            sock = transport.get_extra_info("sockname")
            report.line(f"{name} {sock[0]}:{sock[1]} -> {addr[0]}:{addr[1]}: echoed {data!r}")
            transport.close()

        report.section("IPv4 fragmentation and reassembly (RFC 791, RFC 815)")
        transport, client = await alpha.create_datagram_endpoint(
            _UdpClient, remote_addr=("198.18.0.3", 7)
        )
        blob = os.urandom(60000)
        before = alpha.stats()["ipv4"]["fragments_sent"]
        transport.sendto(blob)
        data, _ = await asyncio.wait_for(client.queue.get(), 2.0)
        sent = alpha.stats()["ipv4"]["fragments_sent"] - before
        same = hashlib.sha256(data).digest() == hashlib.sha256(blob).digest()
        report.line(f"60000-byte datagram: {sent} fragments out, echoed back intact: {same}")
        rtt = await alpha.ping("198.18.0.2", size=4000)
        report.line(f"ping -s 4000 alpha -> beta: {_ms(rtt)} (fragmented both ways)")
        transport.close()

        report.section("Port unreachable (RFC 792, RFC 1122 4.1.3.1) for a closed port")
        transport, client = await alpha.create_datagram_endpoint(
            _UdpClient, remote_addr=("198.18.0.2", 9999)
        )
        transport.sendto(b"anyone there?")
        error = await asyncio.wait_for(client.errors.get(), 2.0)
        report.line(f"beta answered ICMP port unreachable -> {type(error).__name__}: {error}")
        transport.close()

        report.section("A lossy port: 20% loss on beta's link, both directions (seeded)")
        # The hosts' second gratuitous ARP (RFC 5227 2.3, 2 s after the first) must not
        # cross the port while it is lossy, or the run would depend on the clock.
        while any(host.arp.announcing for host in hosts.values()):
            await asyncio.sleep(0.05)
        port = beta.link
        assert hasattr(port, "impairment")
        port.impairment = Impairment(loss=0.2, seed=seed)
        answered = 0
        for _ in range(20):
            try:
                await alpha.ping("198.18.0.2", timeout=0.2)
                answered += 1
            except TimeoutError:
                pass
        port.impairment = None
        report.line(f"20 pings alpha -> beta over the lossy port: {answered} answered")

        report.section("TCP echo (RFC 862 over RFC 9293): beta serves port 7")
        echo = await beta.start_server(_tcp_echo, port=7)
        reader, writer = await alpha.open_connection("198.18.0.2", 7)
        sock, peer = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
        report.line(f"alpha {sock[0]}:{sock[1]} connected to {peer[0]}:{peer[1]} (handshake done)")
        writer.write(b"hello over TCP\n")
        line = await asyncio.wait_for(reader.readline(), 2.0)
        report.line(f"echoed: {line!r}")
        blob = os.urandom(1 << 20)
        merged = beta.stats()["tcp"]["gro_merged"]
        started = time.perf_counter()
        writer.write(blob)
        writer.write_eof()  # half-close: the echo keeps flowing back
        back = await asyncio.wait_for(reader.read(-1), 30.0)
        elapsed = time.perf_counter() - started
        same = hashlib.sha256(back).digest() == hashlib.sha256(blob).digest()
        merged = beta.stats()["tcp"]["gro_merged"] - merged
        report.line(
            f"1 MiB there and back after write_eof(): intact {same}, "
            f"{len(blob) * 16 / elapsed / 1e6:.0f} Mbit/s both ways; beta took {merged} "
            "segments inside the one before them (GRO)"
        )
        writer.close()
        await writer.wait_closed()
        # Loss recovery (RFC 8985 RACK-TLP, RFC 6937 PRR, RFC 6675 SACK): the same echo with
        # 5 % of beta's frames lost both ways.
        port.impairment = Impairment(loss=0.05, seed=seed + 1)
        before = alpha.stats()["tcp"]
        reader, writer = await alpha.open_connection("198.18.0.2", 7)
        writer.write(blob)
        writer.write_eof()
        back = await asyncio.wait_for(reader.read(-1), 60.0)
        writer.close()
        await writer.wait_closed()
        port.impairment = None
        tcp = alpha.stats()["tcp"]
        recovered = {
            name: tcp[name] - before[name]
            for name in ("fast_recoveries", "loss_probes", "timeouts", "retransmits")
        }
        report.line(
            f"1 MiB echoed with 5% of beta's frames lost: intact {back == blob}; alpha: "
            + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in recovered.items())
        )
        echo.close()

        report.section("HTTP/1.1 over TCP: gamma serves a page, alpha fetches it")
        web = await gamma.start_server(_http_server, port=80)
        reader, writer = await alpha.open_connection("198.18.0.3", 80)
        writer.write(b"GET /hello HTTP/1.1\r\nHost: gamma\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(reader.read(-1), 5.0)
        head, _, body = response.partition(b"\r\n\r\n")
        report.line(f"status: {head.splitlines()[0].decode()}; body: {body.decode().strip()!r}")
        writer.close()
        web.close()
        try:
            await alpha.open_connection("198.18.0.3", 81)
        except ConnectionRefusedError as exc:
            report.line(f"port 81 (nobody listens): {type(exc).__name__}: {exc}")
        tcp = alpha.stats()["tcp"]
        report.line(
            f"alpha's TCP: {tcp['active_opens']} connections opened, "
            f"{tcp['retransmits']} retransmissions, states {tcp['states']}"
        )

        report.section("IPv6 (RFC 8200): addresses after DAD, neighbour discovery (RFC 4861)")
        for address in alpha.addresses:
            if address.version == 6:
                origin = getattr(address, "origin", "")
                report.line(f"alpha {str(address):28} {address.state} ({origin})")
        beta_ll = next(str(a.ip) for a in beta.addresses if a.version == 6 and a.ip.is_link_local)
        rtt = await alpha.ping("fd00:198:18::2")
        report.line(f"ping alpha -> fd00:198:18::2: {_ms(rtt)} (NS to beta's group, NA, echo)")
        rtt = await alpha.ping(beta_ll)
        report.line(f"ping alpha -> {beta_ll} (link-local): {_ms(rtt)}")
        for ip6, mac6, nud in alpha.ipv6.neighbours.entries():
            shown = mac6.hex(":") if mac6 else "?"
            report.line(f"alpha's neighbour cache: {format_ip(ip6)} is at {shown} ({nud.value})")
        rtt = await alpha.ping("fd00:198:18::3", size=4000)
        frags = alpha.stats()["ipv6"]["fragments_sent"]
        report.line(
            f"ping -s 4000 alpha -> gamma: {_ms(rtt)} ({frags} fragments out, RFC 8200 4.5)"
        )
        echo6 = await beta.start_server(_tcp_echo, port=7)  # host=None: both families
        reader, writer = await alpha.open_connection("fd00:198:18::2", 7)
        peer6 = writer.get_extra_info("peername")
        writer.write(b"hello over TCP/IPv6\n")
        line = await asyncio.wait_for(reader.readline(), 2.0)
        report.line(f"TCP echo over IPv6 with [{peer6[0]}]:{peer6[1]}: {line!r}")
        writer.close()
        await writer.wait_closed()
        report.line(f"beta's echo server listens on {echo6.addresses}")
        echo6.close()

        report.section("Several interfaces: alpha joins a second network, epsilon is on it")
        near, far = MemoryLink.pair()
        # epsilon opens while alpha adds the interface: both wait for IPv6 DAD at once.
        epsilon, eth1 = await asyncio.gather(
            Stack.open(far, ipv4="198.18.2.2/24", ipv6="fd00:198:2::2/64", hostname="epsilon",
                       config=config),
            alpha.add_interface(near, ipv4="198.18.2.1/24", ipv6="fd00:198:2::1/64"),
        )  # fmt: skip
        hosts["epsilon"] = epsilon
        for iface in alpha.interfaces:
            shown = ", ".join(str(a) for a in iface.addresses if not a.ip.is_link_local)
            report.line(f"alpha {iface.name} (index {iface.index}) {iface.mac}  {shown}")
        for target, who in (
            ("198.18.0.2", "beta"),
            ("198.18.2.2", "epsilon"),
            ("fd00:198:18::2", "beta"),
            ("fd00:198:2::2", "epsilon"),
        ):
            before = {i.name: i.stats()["link"]["tx_packets"] for i in alpha.interfaces}
            rtt = await alpha.ping(target)
            out_of = [
                i.name for i in alpha.interfaces if i.stats()["link"]["tx_packets"] > before[i.name]
            ]
            # Like connect(2) on a UDP socket: the source address the stack picks for it.
            probe, _ = await alpha.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=(target, 9)
            )
            source = probe.get_extra_info("sockname")[0]
            probe.close()
            report.line(f"ping alpha -> {who:7} {target:15} out of {'+'.join(out_of)}, "
                        f"from {source}: {_ms(rtt)}")  # fmt: skip
        epsilon_ll = next(
            str(a.ip) for a in epsilon.addresses if a.version == 6 and a.ip.is_link_local
        )
        rtt = await alpha.ping(f"{epsilon_ll}%{eth1.name}")
        report.line(f"ping alpha -> {epsilon_ll}%{eth1.name} (link-local, zone): {_ms(rtt)}")
        echo_far = await epsilon.start_server(_tcp_echo, port=7)
        reader, writer = await alpha.open_connection("198.18.2.2", 7)
        writer.write(b"hello across eth1\n")
        line = await asyncio.wait_for(reader.readline(), 2.0)
        sock = writer.get_extra_info("sockname")
        report.line(f"TCP echo alpha {sock[0]}:{sock[1]} -> epsilon: {line!r}")
        writer.close()
        await writer.wait_closed()
        echo_far.close()
        routes = [f"{r.network} {r.interface}" for r in alpha.routes if r.network.version == 4]
        report.line(f"alpha's IPv4 routes: {', '.join(routes)}")

        report.section("Forwarding (RFC 1812, RFC 8200): alpha routes between its networks")
        alpha.forwarding = True
        beta.add_route("198.18.0.0/16", "198.18.0.1")
        beta.add_route("fd00:198:2::/64", "fd00:198:18::1")
        epsilon.add_route("0.0.0.0/0", "198.18.2.1")
        epsilon.add_route("::/0", "fd00:198:2::1")
        for target in ("198.18.2.2", "fd00:198:2::2"):
            rtt = await beta.ping(target)
            report.line(f"ping beta -> epsilon {target:15} through alpha: {_ms(rtt)}")
        echo_far = await epsilon.start_server(_tcp_echo, port=7)
        reader, writer = await beta.open_connection("fd00:198:2::2", 7)
        writer.write(b"routed by alpha\n")
        line = await asyncio.wait_for(reader.readline(), 2.0)
        report.line(f"TCP echo beta -> epsilon over IPv6: {line!r}")
        writer.close()
        await writer.wait_closed()
        echo_far.close()
        try:
            await beta.ping("198.18.9.9", timeout=1.0)
        except OSError as exc:
            report.line(f"ping beta -> 198.18.9.9 (alpha has no route): {exc.strerror or exc}")
        fwd = alpha.stats()["forward"]
        report.line(f"alpha forwarded {fwd['forwarded4']} IPv4 and {fwd['forwarded6']} IPv6 "
                    f"datagrams, {fwd['no_route']} without a route")  # fmt: skip
        alpha.forwarding = False

        report.section("DHCP (RFC 2131) and DNS (RFC 1035): gamma serves both, delta joins")
        zone = {
            "demo.test.": {
                "@": [("SOA", "ns admin 1 3600 600 86400 60"), ("NS", "ns")],
                "ns": [("A", "198.18.0.3")],
                "www": [("A", "198.18.0.3"), ("AAAA", "fd00:198:18::3")],
            }
        }
        name_server = await dns_service.serve(gamma, zone)
        leases = await dhcp_service.serve(
            gamma, pool="198.18.0.100-198.18.0.149", router="198.18.0.3", dns="198.18.0.3",
            domain="demo.test", lease_time=600,
        )  # fmt: skip
        leases.register_names(name_server, "demo.test")  # clients' host names go into DNS
        # RFC 5227's ARP probe of the offered address, with its waits shortened for the demo.
        quick = DhcpClientConfig(probe_wait=0.05, probe_min=0.05, probe_max=0.1, announce_wait=0.1)
        delta = await Stack.open(
            switch.port(), dhcp=True, hostname="delta", config=StackConfig(dhcp=quick)
        )
        hosts["delta"] = delta
        lease = delta.dhcp.lease if delta.dhcp is not None else None
        if lease is not None:
            report.line(
                f"delta's lease: {lease.interface}, router {lease.router}, "
                f"name servers {', '.join(lease.dns_servers)}, domain {lease.domain}, "
                f"{lease.lease_time} s (renew at {lease.t1} s)"
            )
        found = await delta.resolve("www.demo.test")
        report.line(f"delta resolves www.demo.test: {', '.join(found)} (A and AAAA)")
        web = await gamma.start_server(_http_server, port=80)
        reader, writer = await delta.open_connection("www.demo.test", 80)
        writer.write(b"GET /by-name HTTP/1.1\r\nHost: www.demo.test\r\n\r\n")
        response = await asyncio.wait_for(reader.read(-1), 5.0)
        status = response.split(b"\r\n", 1)[0].decode()
        report.line(f"delta -> http://www.demo.test/: {status}")
        writer.close()
        web.close()
        alpha.dns.servers.append("198.18.0.3")
        found = await alpha.resolve("delta.demo.test")
        report.line(f"alpha resolves delta.demo.test (published from the lease): {found[0]}")
        rtt = await alpha.ping("delta.demo.test")
        report.line(f"ping alpha -> delta.demo.test: {_ms(rtt)}")
        try:
            await alpha.resolve("nobody.demo.test")
        except OSError as exc:
            report.line(f"nobody.demo.test: {type(exc).__name__}: {exc}")
        served = name_server.stats()
        report.line(
            f"gamma's DNS server: {served['udp_queries']} queries over UDP, "
            f"answers {served['rcodes']}; DHCP leases: "
            f"{', '.join(f'{x.hostname}={x.address}' for x in leases.leases)}"
        )

        report.section("A user-mode gateway: zeta's every flow relayed through gamma's sockets")
        await _demo_gateway(report, gamma, beta, quick)

        report.section("TLS 1.3 (RFC 8446): the Piñata, a secret behind client certificates")
        try:
            from .tls import TLSConfig  # noqa: F401  (netstack's TLS is the tls extra)
        except ModuleNotFoundError as exc:
            report.line(f"skipped: {exc}")
        else:
            await _demo_pinata(report, alpha, beta, gamma, delta)

        report.section("Counters (stack.stats())")
        for name, host in hosts.items():
            s = host.stats()
            drops = {
                f"{layer}.{reason}": n
                for layer, counters in s.items()
                if isinstance(counters, dict)
                for reason, n in counters.get("drops", {}).items()
            }
            report.line(
                f"{name:6} frames in/out {s['link']['rx_packets']}/{s['link']['tx_packets']}, "
                f"ipv4 {s['ipv4']['rx_packets']}/{s['ipv4']['tx_packets']}, "
                f"ipv6 {s['ipv6']['rx_packets']}/{s['ipv6']['tx_packets']}, "
                f"udp {s['udp']['rx_packets']}/{s['udp']['tx_packets']}, "
                f"tcp {s['tcp']['rx_segments']}/{s['tcp']['tx_segments']}, "
                f"drops {drops or 'none'}"
            )
        switch_stats = switch.stats
        report.line(
            f"switch: {switch_stats.forwarded} forwarded, {switch_stats.flooded} flooded, "
            f"{switch_stats.learned} addresses learned"
        )
    finally:
        for host in hosts.values():
            await host.close()
    if capture is not None:
        print(f"\nalpha's frames are in {pcap} (open it with wireshark or tshark -r)")
    print("\ndone.")
    return 0


# -- ping -------------------------------------------------------------------------------------
async def _ping(args: argparse.Namespace) -> int:
    sandbox = None
    if args.sandbox:
        from .netns import Namespace, open_tap_in_namespace

        sandbox = Namespace.create()
        link: Link = open_tap_in_namespace(sandbox)
        ipv4 = "198.18.0.2/24"
        host = args.host or "198.18.0.1"
    else:
        if not args.tap or not args.ipv4 or not args.host:
            print("netstack ping: give HOST, --tap DEV and --ipv4 A.B.C.D/LEN, or --sandbox")
            return 2
        from .link.tap import TapLink

        link = TapLink.open(args.tap)
        ipv4 = args.ipv4
        host = args.host
    try:
        async with await Stack.open(link, ipv4=ipv4, gateway=args.gateway) as stack:
            where = f" (kernel in namespace {sandbox.name})" if sandbox else ""
            print(f"PING {host} from {ipv4}{where}: {args.size} data bytes")
            received = 0
            rtts: list[float] = []
            for seq in range(1, args.count + 1):
                try:
                    rtt = await stack.ping(host, timeout=args.timeout, size=args.size)
                    received += 1
                    rtts.append(rtt)
                    print(f"{args.size + 8} bytes from {host}: icmp_seq={seq} time={_ms(rtt)}")
                except (TimeoutError, OSError) as exc:
                    print(f"from {host}: icmp_seq={seq} {exc}")
                if seq < args.count:
                    await asyncio.sleep(args.interval)
            loss = 100.0 * (args.count - received) / args.count
            print(f"--- {host} ping statistics ---")
            print(f"{args.count} transmitted, {received} received, {loss:.0f}% packet loss")
            if rtts:
                avg = sum(rtts) / len(rtts)
                print(f"rtt min/avg/max = {_ms(min(rtts))} / {_ms(avg)} / {_ms(max(rtts))}")
            return 0 if received else 1
    finally:
        if sandbox is not None:
            sandbox.delete()


# -- serve ------------------------------------------------------------------------------------
class _UdpEchoServer(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


async def _web_page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A small HTTP/1.1 server: every GET gets a page naming the path, keep-alive honoured."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                break
            parts = head.split(b" ", 2)
            path = parts[1].decode(errors="replace") if len(parts) > 1 else "/"
            body = f"netstack {__version__} served {path}\n".encode()
            close = b"connection: close" in head.lower()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                + f"Content-Length: {len(body)}\r\n".encode()
                + (b"Connection: close\r\n" if close else b"")
                + b"\r\n" + body
            )  # fmt: skip
            await writer.drain()
            if close:
                break
    finally:
        writer.close()


async def _wait(seconds: float | None) -> None:
    """``seconds``, or until cancelled (Ctrl-C) when None."""
    if seconds is not None:
        await asyncio.sleep(seconds)
    else:
        await asyncio.Event().wait()


async def _serve(args: argparse.Namespace) -> int:
    sandbox = None
    if args.sandbox:
        from .netns import Namespace, open_tap_in_namespace

        sandbox = Namespace.create()
        link: Link = open_tap_in_namespace(sandbox)
        ipv4, ipv6 = "198.18.0.2/24", args.ipv6 or "fd00:198:18::2/64"
    else:
        if not args.tap or not (args.ipv4 or args.ipv6):
            print("netstack serve: give --tap DEV and --ipv4 A.B.C.D/LEN (or --ipv6), "
                  "or --sandbox")  # fmt: skip
            return 2
        from .link.tap import TapLink

        link = TapLink.open(args.tap)
        ipv4, ipv6 = args.ipv4, args.ipv6
    if not (args.echo or args.http or args.dns or args.dhcp):
        args.echo, args.http = 7, 80
    try:
        async with await Stack.open(
            link, ipv4=ipv4, ipv6=ipv6, gateway=args.gateway, hostname="netstack"
        ) as stack:
            where = f" (the kernel in namespace {sandbox.name} is 198.18.0.1)" if sandbox else ""
            addresses = ", ".join(str(a) for a in stack.addresses)
            print(f"netstack {__version__} serving on {addresses}{where}", flush=True)
            if args.echo:
                await stack.start_server(_tcp_echo, port=args.echo)
                await stack.create_datagram_endpoint(_UdpEchoServer, local_addr=(None, args.echo))
                print(f"echo (RFC 862) on TCP and UDP port {args.echo}", flush=True)
            if args.http:
                await stack.start_server(_web_page, port=args.http)
                print(f"HTTP on port {args.http}", flush=True)
            if args.dns:
                name_server = await dns_service.serve(stack, args.dns)
                zones = ", ".join(str(z.origin) for z in name_server.zones)
                print(f"DNS (authoritative for {zones}) on port 53", flush=True)
            if args.dhcp:
                leases = await dhcp_service.serve(stack, pool=args.dhcp)
                print(f"DHCP serving {args.dhcp} ({leases.address})", flush=True)
            try:
                await _wait(args.seconds)
            finally:
                s = stack.stats()
                print(
                    f"frames in/out {s['link']['rx_packets']}/{s['link']['tx_packets']}, "
                    f"tcp connections accepted {s['tcp']['passive_opens']}", flush=True,
                )  # fmt: skip
        return 0
    finally:
        if sandbox is not None:
            sandbox.delete()


# -- firewall ---------------------------------------------------------------------------------
def _resident_mb() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _client_spec(spec: str) -> tuple[str, str, str, str | None]:
    """``NAME=DEV,A.B.C.D/LEN[,IPV6/64]`` -> (name, device, IPv4, IPv6 or None), checked."""
    name, sep, rest = spec.partition("=")
    parts = rest.split(",")
    if not sep or not name or len(parts) not in (2, 3) or not parts[0]:
        raise ValueError(f"--client {spec!r}: give NAME=DEV,A.B.C.D/LEN[,IPV6/64]")
    try:
        ipaddress.IPv4Interface(parts[1])
        if len(parts) == 3:
            ipaddress.IPv6Interface(parts[2])
    except ValueError as exc:
        raise ValueError(f"--client {spec!r}: {exc}") from None
    return name, parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _reload_rules(fw: Any, path: str) -> None:
    try:
        with open(path) as file:
            fw.reload(file.read())
    except (OSError, ValueError) as exc:
        print(f"netstack firewall: {path} not reloaded, the rules in force stay: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip
        return
    print(f"netstack firewall: {path} reloaded, {len(fw.stack.filter.rules)} rules",
          flush=True)  # fmt: skip


async def _firewall(args: argparse.Namespace) -> int:
    from . import firewall
    from .link.tap import TapLink

    rules = firewall.DEFAULT_RULES
    if args.rules:
        with open(args.rules) as file:
            rules = file.read()
    specs = [_client_spec(spec) for spec in args.client]  # checked before a device is opened
    namespaces = []
    lan_link: TapLink
    uplink_link: TapLink
    try:
        if args.sandbox:
            from .netns import Namespace, open_tap_in_namespace

            namespaces = [Namespace.create(), Namespace.create()]
            client, uplink = namespaces
            lan_link = open_tap_in_namespace(client, kernel_ipv4=None, kernel_ipv6=None)
            kernel = str(ipaddress.IPv4Interface(args.uplink).network.network_address + 1)
            uplink_link = open_tap_in_namespace(
                uplink, kernel_ipv4=f"{kernel}/24", kernel_ipv6=None
            )
            gateway = args.gateway or kernel
            print(f"clients: namespace {client.name}, device {lan_link.name} (try: ip netns exec "
                  f"{client.name} busybox udhcpc -i {lan_link.name} -q)", flush=True)  # fmt: skip
            print(f"uplink: namespace {uplink.name}, the kernel at {kernel}", flush=True)
        else:
            if not args.lan_tap or not args.uplink_tap:
                print("netstack firewall: give --lan-tap DEV and --uplink-tap DEV, or --sandbox")
                return 2
            lan_link, uplink_link = TapLink.open(args.lan_tap), TapLink.open(args.uplink_tap)
            gateway = args.gateway
        clients = [
            firewall.ClientNetwork(TapLink.open(dev), ipv4, name=name, ipv6=ipv6)
            for name, dev, ipv4, ipv6 in specs
        ]
        fw = await firewall.start(
            lan_link, uplink_link, lan=args.lan, uplink=args.uplink, gateway=gateway,
            rules=rules, pool=args.dhcp, domain=args.domain, zone=args.dns, lan6=args.lan6,
            uplink6=args.uplink6, gateway6=args.gateway6, clients=clients,
        )  # fmt: skip
        if args.rules:
            # SIGHUP: the rule file again, in place at once; tracked flows go on.
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, _reload_rules, fw, args.rules
            )
        try:
            print(f"netstack firewall: clients on eth0 {args.lan}, uplink {args.uplink}"
                  f"{f' via {gateway}' if gateway else ''}; {len(fw.stack.filter.rules)} rules, "
                  f"DHCP {fw.dhcp.address}, DNS for {args.domain}", flush=True)  # fmt: skip
            await _wait(args.seconds)
        finally:
            stats = fw.stats()
            conntrack = stats["netfilter"]["conntrack"]
            print(f"forwarded {stats['forward']['forwarded4']}, flows tracked "
                  f"{conntrack['flows']}, DHCP leases {len(fw.dhcp.leases)}, resident memory "
                  f"{_resident_mb():.1f} MiB", flush=True)  # fmt: skip
            for rule in stats["rules"]:
                print(f"  {rule['packets']:8} packets  {rule['rule']}", flush=True)
            await fw.close()
        return 0
    finally:
        for ns in namespaces:
            ns.delete()


# -- gateway ----------------------------------------------------------------------------------
async def _gateway(args: argparse.Namespace) -> int:
    from .gateway import PortForward
    from .netns import Namespace

    for text in args.forward:
        PortForward.parse(text)  # a bad forward stops it before anything is made
    if args.rootless or args.pid is not None:
        return await _gateway_rootless(args)
    if args.sandbox:
        # The guest and the "host" side are both throwaway namespaces: the gateway's host
        # sockets are made in the second, which has nothing but its loopback device.
        with Namespace.create() as guest, Namespace.create() as host:
            print(f"guest: namespace {guest.name} (try: ip netns exec {guest.name} ping "
                  f"10.0.2.2); host side: namespace {host.name}", flush=True)  # fmt: skip
            args.configure = True
            with host.entered():
                return await _gateway_for(args, guest)
    if not args.netns:
        print("netstack gateway: give --netns NS, --pid PID or --rootless, or --sandbox")
        return 2
    ns = Namespace(args.netns)
    if not ns.exists():
        print(f"netstack gateway: no network namespace {args.netns!r} (ip netns list)")
        return 2
    return await _gateway_for(args, ns)


async def _gateway_rootless(args: argparse.Namespace) -> int:
    """The guest is a user and network namespace (a process's, or one made here with
    ``unshare --user --map-root-user --net``): its TAP device is made inside by a helper and
    passed out, so no privilege is needed (slirp4netns's way)."""
    from .netns import NamespaceError, UserNamespace, open_tap_in_process

    net = ipaddress.IPv4Network(args.network)
    holder: UserNamespace | None = None
    pid = args.pid
    try:
        if pid is None:
            try:
                holder = UserNamespace.create()
            except NamespaceError as exc:
                print(f"netstack gateway: --rootless: {exc} (are unprivileged user namespaces "
                      "allowed?)")  # fmt: skip
                return 1
            pid = holder.pid
            print(f"guest: process {pid} (enter it: nsenter --target {pid} --user --net "
                  f"--preserve-credentials)", flush=True)  # fmt: skip
            args.configure = True
        configure = args.configure
        link = open_tap_in_process(
            pid, name=args.tap, mtu=args.mtu,
            ipv4=f"{net.network_address + 100}/{net.prefixlen}" if configure else None,
            gateway=str(net.network_address + 2) if configure else None,
        )  # fmt: skip
        return await _run_gateway(args, link, f"process {pid}")
    finally:
        if holder is not None:
            holder.delete()


async def _gateway_for(args: argparse.Namespace, ns: Any) -> int:
    from .link.tap import TapLink

    net = ipaddress.IPv4Network(args.network)
    link = TapLink.open(f"nsg{os.getpid()}"[:15], mtu=args.mtu)
    dev = args.tap
    try:
        # The device is made here (in this process's namespace, the "host" side) and its
        # kernel side moved into the guest's namespace, as slirp4netns does.
        ns.move_link(link.name)
        ns.ip("link", "set", "dev", link.name, "name", dev)
        if args.configure:
            ns.ip("addr", "add", f"{net.network_address + 100}/{net.prefixlen}", "dev", dev)
        ns.ip("link", "set", "dev", dev, "up")
        if args.configure:
            ns.ip("route", "add", "default", "via", str(net.network_address + 2))
    except BaseException:
        link.close()
        raise
    return await _run_gateway(args, link, f"namespace {ns.name}")


async def _run_gateway(args: argparse.Namespace, link: Any, where: str) -> int:
    from . import gateway

    forwards = [gateway.PortForward.parse(text) for text in args.forward]
    gw = await gateway.start(
        link, network=args.network, ipv6=None if args.no_ipv6 else args.ipv6,
        dns_servers=args.dns_server, forwards=forwards, host_loopback=args.host_loopback,
    )  # fmt: skip
    try:
        print(f"netstack gateway: {where} device {args.tap}, gateway {gw.address}, "
              f"DNS {gw.dns_address} -> {', '.join(gw.dns_servers) or 'none'}, guest "
              f"{gw.guest}{' (configured)' if args.configure else ' (DHCP)'}"
              f"{''.join(f', forward {f.proto} {f.host_port}->{f.guest_port}' for f in forwards)}",
              flush=True)  # fmt: skip
        await _wait(args.seconds)
    finally:
        stats = gw.stats()
        print(f"relayed {stats['tcp_flows']} TCP flows ({stats['tcp_bytes_out']} bytes out, "
              f"{stats['tcp_bytes_in']} in), {stats['udp_flows']} UDP flows, "
              f"{stats['echo_replies']} echo replies, {stats['dns_answers']} DNS answers; "
              f"resident memory {_resident_mb():.1f} MiB", flush=True)  # fmt: skip
        await gw.close()
    return 0


# -- bench ------------------------------------------------------------------------------------
async def _bench(args: argparse.Namespace) -> int:
    """A quick look at this machine's netstack: ping RTT, UDP echoes and TCP bulk over a
    memory link (the full, compared measurements are ``python -m benchmarks`` in the
    repository)."""
    import json
    import statistics

    seconds = args.seconds
    results: list[dict[str, Any]] = []
    a_link, b_link = MemoryLink.pair()
    async with await Stack.open(a_link, ipv4="198.18.0.1/24") as a, \
               await Stack.open(b_link, ipv4="198.18.0.2/24") as b:  # fmt: skip
        await a.ping("198.18.0.2")
        rtts = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            rtts.append(await a.ping("198.18.0.2"))
        results.append({"bench": "ping_rtt", "value": round(statistics.median(rtts) * 1e6, 1),
                        "unit": "us", "samples": len(rtts)})  # fmt: skip
        await b.create_datagram_endpoint(_UdpEchoServer, local_addr=("198.18.0.2", 7))
        transport, client = await a.create_datagram_endpoint(
            _UdpClient, remote_addr=("198.18.0.2", 7)
        )
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            transport.sendto(b"x" * 64)
            await client.queue.get()
            done += 1
        results.append({"bench": "udp_echo", "unit": "round trips/s",
                         "value": round(done / (time.perf_counter() - start))})  # fmt: skip
        transport.close()
        received: asyncio.Queue[int] = asyncio.Queue()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            total = 0
            while data := await reader.read(1 << 20):
                total += len(data)
            received.put_nowait(total)
            writer.close()

        server = await b.start_server(sink, port=5001)
        reader, writer = await a.open_connection("198.18.0.2", 5001)
        chunk = bytes(65536)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            writer.write(chunk)
            await writer.drain()
        writer.write_eof()
        total = await asyncio.wait_for(received.get(), 30)
        elapsed = time.perf_counter() - start
        results.append({"bench": "tcp_bulk", "unit": "Mbit/s", "mtu": 1500,
                        "value": round(total * 8 / elapsed / 1e6, 1)})  # fmt: skip
        writer.close()
        server.close()
    for r in results:
        if args.json:
            print(json.dumps({**r, "loop": loop_name()}))
        else:
            print(f"{r['bench']:10} {r['value']:>10} {r['unit']}")
    return 0


# -- main -------------------------------------------------------------------------------------
#: What ``netstack --help`` says first (plain text: argparse prints it as it is).
DESCRIPTION = (
    "netstack, an asyncio-native TCP/IP stack in Python: run it on an in-memory network "
    "(demo, bench) or on a TAP device (serve, ping). Also runs as python -m netstack."
)


def _until_and_sandbox(parser: argparse.ArgumentParser, sandbox: str) -> None:
    """The options of a command that runs until interrupted, on TAP devices or in a sandbox."""
    parser.add_argument("--for", dest="seconds", type=float, metavar="SECONDS",
                        help="stop after this long (default: until interrupted)")  # fmt: skip
    parser.add_argument("--sandbox", action="store_true", help=sandbox)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="netstack", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"netstack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=description)

    demo = command(
        "demo",
        "run the whole stack on an in-memory network",
        "Three hosts and a DHCP client on an in-memory switch: ARP, ping, UDP, fragments, "
        "loss, TCP, HTTP, IPv6, DHCP, DNS, a user-mode gateway and TLS (the TLS part needs "
        "the tls extra: "
        "pip install 'netstack[tls]'), each step printed as it happens.",
    )
    demo.add_argument("--pcap", metavar="FILE", help="record one host's frames in FILE")
    demo.add_argument("--seed", type=int, default=None,
                      help="seed of the lossy-link part (default: from the clock)")  # fmt: skip

    serve = command(
        "serve",
        "run servers on a TAP device (Ctrl-C to stop)",
        "Echo (TCP and UDP) and HTTP by default, DNS and DHCP on request, on a TAP device; "
        "with --sandbox, in a throwaway network namespace whose kernel is the client (root).",
    )
    serve.add_argument("--tap", metavar="DEV", help="TAP device to use (created if absent)")
    serve.add_argument("--ipv4", metavar="A.B.C.D/LEN", help="netstack's address on it")
    serve.add_argument("--ipv6", metavar="ADDR/LEN|auto", help="an IPv6 address, or SLAAC")
    serve.add_argument("--gateway", metavar="A.B.C.D", help="default router")
    serve.add_argument("--echo", type=int, metavar="PORT", help="echo on TCP and UDP")
    serve.add_argument("--http", type=int, metavar="PORT", help="a small HTTP server")
    serve.add_argument("--dns", metavar="ZONEFILE", help="serve a zone on port 53")
    serve.add_argument("--dhcp", metavar="FIRST-LAST", help="serve DHCP leases from a pool")
    _until_and_sandbox(
        serve, "make a network namespace whose kernel is at 198.18.0.1 and serve it (root)"
    )

    bench = command(
        "bench",
        "a quick measurement on an in-memory link",
        "Ping round trips, UDP echoes and TCP bulk between two stacks on an in-memory "
        "cable (the repository's benchmarks compare more, beside the kernel).",
    )
    bench.add_argument("--seconds", type=float, default=1.0,
                       help="how long each measurement runs (default: 1)")  # fmt: skip
    bench.add_argument("--json", action="store_true", help="one JSON object per line")

    ping = command(
        "ping",
        "ping from a netstack host on a TAP device",
        "ICMP echo requests from a netstack host on a TAP device; with --sandbox, to the "
        "kernel of a throwaway network namespace (root).",
    )
    ping.add_argument("host", nargs="?", help="IPv4 address to ping")
    ping.add_argument("-c", "--count", type=int, default=4,
                      help="requests to send (default: 4)")  # fmt: skip
    ping.add_argument("-s", "--size", type=int, default=56,
                      help="data bytes per request (default: 56)")  # fmt: skip
    ping.add_argument("-i", "--interval", type=float, default=1.0,
                      help="seconds between requests (default: 1)")  # fmt: skip
    ping.add_argument("-W", "--timeout", type=float, default=1.0,
                      help="seconds to wait for each reply (default: 1)")  # fmt: skip
    ping.add_argument("--tap", metavar="DEV", help="TAP device to use (created if absent)")
    ping.add_argument("--ipv4", metavar="A.B.C.D/LEN", help="netstack's address on it")
    ping.add_argument("--gateway", metavar="A.B.C.D", help="default router")
    ping.add_argument(
        "--sandbox",
        action="store_true",
        help="make a network namespace whose kernel is at 198.18.0.1 and ping it (root)",
    )

    fw = command(
        "firewall",
        "route, masquerade and filter between two TAP devices (Ctrl-C to stop)",
        "A firewall as MirageOS's QubesOS firewall: the clients on one TAP device (eth0), "
        "the uplink on another; routes between them, masquerades the clients behind its "
        "uplink address, filters with a rule file (the text form of netstack's packet filter; "
        "by default the clients may use the web, DNS and ping, and nothing comes in), and "
        "serves DHCP and DNS to the clients. With --sandbox, the two sides are throwaway "
        "network namespaces (root).",
    )
    fw.add_argument("--lan-tap", metavar="DEV", help="the clients' TAP device")
    fw.add_argument("--uplink-tap", metavar="DEV", help="the uplink's TAP device")
    fw.add_argument("--lan", metavar="A.B.C.D/LEN", default="198.18.1.1/24",
                    help="the address on the clients' side (default: 198.18.1.1/24)")  # fmt: skip
    fw.add_argument("--uplink", metavar="A.B.C.D/LEN", default="198.18.2.2/24",
                    help="the address on the uplink (default: 198.18.2.2/24)")  # fmt: skip
    fw.add_argument("--gateway", metavar="A.B.C.D", help="the next router on the uplink")
    fw.add_argument("--rules", metavar="FILE", help="the filter's rules (default: built in)")
    fw.add_argument("--dhcp", metavar="FIRST-LAST",
                    help="the DHCP pool (default: .100 to .199 of the clients' side)")  # fmt: skip
    fw.add_argument("--domain", default="lan.test",
                    help="the clients' DNS domain (default: lan.test)")  # fmt: skip
    fw.add_argument("--dns", metavar="ZONEFILE",
                    help="the zone to serve instead of the built-in one")  # fmt: skip
    fw.add_argument("--client", metavar="NAME=DEV,A.B.C.D/LEN[,IPV6/64]", action="append",
                    default=[], help="one more client network on TAP device DEV, called "
                    "NAME in the rules (repeatable; each its own DHCP pool)")  # fmt: skip
    fw.add_argument("--lan6", metavar="IPV6/64",
                    help="an IPv6 address on the clients' side: its /64 is advertised (SLAAC) "
                    "and routed to the uplink, untranslated, through the same rules")  # fmt: skip
    fw.add_argument("--uplink6", metavar="IPV6/LEN", help="the IPv6 address on the uplink")
    fw.add_argument("--gateway6", metavar="IPV6", help="the next IPv6 router on the uplink")
    _until_and_sandbox(fw, "the clients and the uplink in two new network namespaces (root)")

    gw = command(
        "gateway",
        "user-mode networking for a network namespace (Ctrl-C to stop)",
        "A user-mode gateway, as slirp4netns: namespace NS gets a TAP device whose every TCP "
        "and UDP flow, to any address, netstack terminates and relays through this "
        "process's own sockets (run it where those should be made: ip netns exec HOST "
        "netstack gateway ...). The guest network is slirp's: the gateway at .2, DNS at .3 "
        "(forwarded to --dns-server), the guest at .100 by DHCP (or --configure), IPv6 "
        "by Router Advertisements; ping through the host's ping sockets; --forward relays "
        "a host port into the guest. Needs root (CAP_NET_ADMIN) for the TAP device.",
    )
    gw.add_argument("--netns", metavar="NS",
                    help="the guest's network namespace (a name from ip netns list)")  # fmt: skip
    gw.add_argument("--pid", type=int, metavar="PID",
                    help="instead of --netns: the user and network namespaces of process PID "
                         "(a rootless container's); no privilege needed")  # fmt: skip
    gw.add_argument("--rootless", action="store_true",
                    help="make the guest a new user and network namespace (unshare --user "
                         "--map-root-user --net) and attach it without privilege; it says "
                         "how to enter it")  # fmt: skip
    gw.add_argument("--tap", default="tap0", metavar="DEV",
                    help="the device's name in the guest (default: tap0)")  # fmt: skip
    gw.add_argument("--network", default="10.0.2.0/24", metavar="A.B.C.D/LEN",
                    help="the guest's network (default: 10.0.2.0/24)")  # fmt: skip
    gw.add_argument("--ipv6", default="fd00::/64", metavar="PREFIX/64",
                    help="the prefix advertised for SLAAC (default: fd00::/64)")  # fmt: skip
    gw.add_argument("--no-ipv6", action="store_true", help="no IPv6 for the guest")
    gw.add_argument("--dns-server", action="append", default=[], metavar="ADDR",
                    help="a DNS server the guest's queries go to (repeatable)")  # fmt: skip
    gw.add_argument("--forward", action="append", default=[], metavar="SPEC",
                    help="tcp|udp:HOSTPORT:GUESTPORT or "
                         "tcp|udp:HOSTADDR:HOSTPORT:GUESTADDR:GUESTPORT (repeatable)")  # fmt: skip
    gw.add_argument("--mtu", type=int, default=None, help="the device's MTU (default: 1500)")
    gw.add_argument("--configure", action="store_true",
                    help="give the guest its address and default route (as slirp4netns "
                         "--configure) instead of waiting for its DHCP client")  # fmt: skip
    gw.add_argument("--host-loopback", action="store_true",
                    help="the gateway's address reaches this side's loopback")  # fmt: skip
    _until_and_sandbox(gw, "the guest and the host side in two new network namespaces, the "
                           "guest configured (root)")  # fmt: skip
    return parser


def _terminate(signum: int, frame: object) -> None:
    # Unwind like Ctrl-C, so that a sandbox namespace is deleted on the way out.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command == "demo":
            seed = args.seed if args.seed is not None else int(time.time()) & 0xFFFF
            return run(_demo(args.pcap, seed))
        if args.command == "ping":
            return run(_ping(args))
        if args.command == "serve":
            return run(_serve(args))
        if args.command == "bench":
            return run(_bench(args))
        if args.command == "firewall":
            return run(_firewall(args))
        if args.command == "gateway":
            return run(_gateway(args))
    except (NetstackError, OSError, ValueError) as exc:
        print(f"netstack {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
