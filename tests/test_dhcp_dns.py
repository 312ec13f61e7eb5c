"""DHCP and DNS together through whole stacks, the issue's scenario: one netstack host serves
DHCP and DNS on an in-memory switch; 20 netstack hosts open with ``Stack.open(dhcp=True)``,
get their address, router and name server from it, and then find each other by name, their
names published in DNS from their leases."""

from __future__ import annotations

import asyncio
import socket

import pytest

import netstack.dhcp
import netstack.dns
from netstack import Stack, StackConfig
from netstack.dhcp import DhcpClientConfig
from netstack.link import Switch

#: RFC 5227's probe timings shortened so that a test takes milliseconds, not seconds.
QUICK = DhcpClientConfig(probe_wait=0.02, probe_min=0.02, probe_max=0.05, announce_wait=0.05)
ZONE = {
    "lab.test.": {
        "@": [("SOA", "ns admin 1 3600 600 86400 60"), ("NS", "ns")],
        "ns": [("A", "198.18.0.1")],
        "gateway": [("A", "198.18.0.1")],
    }
}


async def test_twenty_clients_configure_themselves_and_resolve_each_other() -> None:
    switch = Switch()
    server_stack = await Stack.open(switch.port(), ipv4="198.18.0.1/24", hostname="gateway")
    clients: list[Stack] = []
    try:
        names = await netstack.dns.serve(server_stack, ZONE)
        dhcp = await netstack.dhcp.serve(
            server_stack, pool="198.18.0.100-198.18.0.149", router="198.18.0.1",
            dns="198.18.0.1", domain="lab.test",
        )  # fmt: skip
        dhcp.register_names(names, "lab.test")
        config = StackConfig(dhcp=QUICK)
        clients = list(
            await asyncio.gather(
                *(
                    Stack.open(switch.port(), dhcp=True, hostname=f"host{i}", config=config)
                    for i in range(20)
                )
            )
        )
        for stack in clients:
            assert stack.dhcp is not None and stack.dhcp.lease is not None
            assert stack.dns_servers == ["198.18.0.1"]
            assert str(stack.addresses[0].ip) == stack.dhcp.lease.address
        # Every client finds every other by name (search domain from option 15 not needed:
        # the names are given whole), and reaches it.
        for i, stack in enumerate(clients):
            peer = clients[(i + 7) % 20]
            assert peer.dhcp is not None and peer.dhcp.lease is not None
            found = await stack.resolve(f"host{(i + 7) % 20}.lab.test", family=socket.AF_INET)
            assert found == [peer.dhcp.lease.address]
            assert await stack.ping(f"host{(i + 7) % 20}.lab.test", timeout=2.0) > 0
        # A TCP connection by name.
        server = await clients[3].start_server(_hello, port=7)
        reader, writer = await clients[4].open_connection("host3.lab.test", 7)
        assert await reader.readline() == b"hello from host3\n"
        writer.close()
        server.close()
        with pytest.raises(socket.gaierror):
            await clients[0].resolve("nobody.lab.test")
        # A client that leaves releases its address, and its name goes with it.
        gone = clients.pop()
        await gone.close()
        await asyncio.sleep(0.05)
        clients[0].dns.cache.clear()
        with pytest.raises(socket.gaierror):
            await clients[0].resolve("host19.lab.test")
        dhcp.close()
        names.close()
    finally:
        for stack in clients:
            await stack.close()
        await server_stack.close()


async def _hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello from host3\n")
    await writer.drain()
    writer.close()
