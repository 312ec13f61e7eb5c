"""DHCP through whole stacks on an in-memory switch: netstack's server configures netstack's
clients, which then reach the server and each other; the lease database survives a server
restart; leases end, are released, and conflicting addresses are declined."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import netstack.dhcp
from netstack import AddressInUseError, Stack
from netstack.dhcp import (
    AddressDeclined,
    DhcpClientConfig,
    DhcpState,
    LeaseAcquired,
    LeaseExpired,
    LeaseRenewed,
)
from netstack.link import Switch
from netstack.link.base import MacAddress
from netstack.proto.dhcp.wire import (
    BootOp,
    DhcpMessage,
    MessageType,
    OptionCode,
    build,
    encode_classless_routes,
    encode_u16,
)

#: RFC 5227's probe timings shortened so that a test takes milliseconds, not seconds.
QUICK = DhcpClientConfig(probe_wait=0.02, probe_min=0.02, probe_max=0.05, announce_wait=0.05)


class Net:
    def __init__(self) -> None:
        self.switch = Switch()
        self.stacks: list[Stack] = []

    async def host(self, ipv4: str | None = None, mac: str | None = None) -> Stack:
        link = self.switch.port(mac=MacAddress(mac) if mac else None)
        stack = await Stack.open(link, ipv4=ipv4)
        self.stacks.append(stack)
        return stack

    async def close(self) -> None:
        for stack in self.stacks:
            await stack.close()


@pytest.fixture
async def net() -> AsyncIterator[Net]:
    n = Net()
    try:
        yield n
    finally:
        await n.close()


async def next_event(driver: netstack.dhcp.DhcpClientDriver, timeout: float = 10.0) -> object:
    return await asyncio.wait_for(driver.events.get(), timeout)


async def test_server_configures_twenty_clients_that_reach_each_other(
    net: Net, tmp_path: Path
) -> None:
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(
        server_stack, router="198.18.0.1", dns=["198.18.0.53", "198.18.0.54"], domain="lan.test",
        leases_path=tmp_path / "leases.json",
    )  # fmt: skip
    clients = [await net.host() for _ in range(20)]
    drivers = await asyncio.gather(
        *(netstack.dhcp.configure(c, config=QUICK, timeout=10) for c in clients)
    )
    addresses = [d.lease.address for d in drivers if d.lease is not None]
    assert len(set(addresses)) == 20
    for address in addresses:
        assert ipaddress.IPv4Address("198.18.0.100") <= ipaddress.IPv4Address(address)
        assert ipaddress.IPv4Address(address) <= ipaddress.IPv4Address("198.18.0.199")
    for stack, driver in zip(clients, drivers, strict=True):
        lease = driver.lease
        assert lease is not None and driver.state is DhcpState.BOUND
        assert [str(a) for a in stack.addresses] == [lease.interface]
        assert lease.router == "198.18.0.1" and lease.domain == "lan.test"
        assert lease.dns_servers == ("198.18.0.53", "198.18.0.54")
        assert any(str(r.network) == "0.0.0.0/0" and str(r.gateway) == "198.18.0.1"
                   for r in stack.routes)  # fmt: skip
        assert not stack.ipv4.accept_any_unicast
        assert isinstance(driver.events.get_nowait(), LeaseAcquired)
    assert sorted(lease.address for lease in server.leases) == sorted(addresses)
    # The clients reach the server and each other.
    for stack in clients:
        assert await stack.ping("198.18.0.1", timeout=2.0) > 0
    for i, stack in enumerate(clients):
        assert await stack.ping(addresses[(i + 1) % 20], timeout=2.0) > 0
    saved = json.loads((tmp_path / "leases.json").read_text())
    assert sorted(e["address"] for e in saved["leases"]) == sorted(addresses)
    assert list(tmp_path.iterdir()) == [tmp_path / "leases.json"]  # no temporary files left
    for driver in drivers:
        await driver.close()
    assert server.leases == []
    assert all(stack.addresses == [] for stack in clients)
    assert server.stats()["releases"] == 20
    server.close()
    await server.wait_closed()


async def test_restarted_server_renews_the_same_address(net: Net, tmp_path: Path) -> None:
    path = tmp_path / "leases.json"
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(server_stack, lease_time=2, leases_path=path)
    client = await net.host()
    driver = await netstack.dhcp.configure(client, config=QUICK, timeout=5)
    assert driver.lease is not None
    address = driver.lease.address
    assert isinstance(await next_event(driver), LeaseAcquired)
    server.close()
    # A new server on the same database: the client's renewal at T1 (1 s) is acknowledged.
    restarted = await netstack.dhcp.serve(server_stack, lease_time=2, leases_path=path)
    assert [lease.address for lease in restarted.leases] == [address]
    event = await next_event(driver)
    assert isinstance(event, LeaseRenewed) and event.lease.address == address
    # Someone else never gets that address from the restarted server.
    other = await net.host()
    other_driver = await netstack.dhcp.configure(other, config=QUICK, timeout=5)
    assert other_driver.lease is not None and other_driver.lease.address != address
    assert restarted.stats()["acks_sent"] >= 2
    restarted.close()


async def test_remembered_lease_is_asked_for_again(net: Net) -> None:
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(server_stack)
    first = await net.host()
    driver = await netstack.dhcp.configure(first, config=QUICK, timeout=5)
    lease = driver.lease
    assert lease is not None
    await driver.close(release=False)
    # The same host, restarted: INIT-REBOOT with the remembered lease.
    again = await netstack.dhcp.configure(first, config=QUICK, timeout=5, remembered=lease)
    assert again.lease is not None and again.lease.address == lease.address
    assert again.client.discovers_sent == 0
    await again.close()
    server.close()


async def test_lease_expiry_removes_the_address(net: Net) -> None:
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(server_stack, router="198.18.0.1", lease_time=2)
    client = await net.host()
    driver = await netstack.dhcp.configure(client, config=QUICK, timeout=5)
    lease = driver.lease
    assert lease is not None and [str(a) for a in client.addresses] == [lease.interface]
    server.close()  # nobody will renew it
    assert isinstance(await next_event(driver), LeaseAcquired)
    event = await next_event(driver, timeout=5.0)
    assert event == LeaseExpired(lease)
    assert client.addresses == []
    assert not any(r.gateway is not None for r in client.routes)
    assert client.ipv4.accept_any_unicast  # looking for a new lease
    assert driver.state is DhcpState.SELECTING
    await driver.close()
    assert not client.ipv4.accept_any_unicast


async def test_conflicting_address_is_declined(net: Net) -> None:
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(server_stack, pool="198.18.0.100-198.18.0.101")
    squatter = await net.host("198.18.0.100/24")  # not known to the server
    client = await net.host()
    config = DhcpClientConfig(probe_wait=0.02, probe_min=0.02, probe_max=0.05,
                              announce_wait=0.05, decline_wait=0.2)  # fmt: skip
    driver = await netstack.dhcp.configure(client, config=config, timeout=5)
    assert driver.lease is not None and driver.lease.address == "198.18.0.101"
    assert isinstance(await next_event(driver), AddressDeclined)
    assert isinstance(await next_event(driver), LeaseAcquired)
    assert server.stats()["declines"] == 1
    assert client.stats()["arp"]["probe_conflicts"] >= 1
    assert await client.ping("198.18.0.100", timeout=2.0) > 0  # the squatter is untouched
    assert squatter.addresses[0].ip == ipaddress.IPv4Address("198.18.0.100")
    await driver.close()


async def test_classless_routes_and_mtu_are_applied(net: Net) -> None:
    server_stack = await net.host("198.18.0.1/24")
    routes = encode_classless_routes([
        (bytes([0, 0, 0, 0]), 0, bytes([198, 18, 0, 254])),
        (bytes([10, 0, 0, 0]), 8, bytes([198, 18, 0, 253])),
    ])  # fmt: skip
    server = await netstack.dhcp.serve(
        server_stack, router="198.18.0.1", options={121: routes, 26: encode_u16(1400)}
    )
    client = await net.host()
    driver = await netstack.dhcp.configure(client, config=QUICK, timeout=5)
    got = {(str(r.network), str(r.gateway)) for r in client.routes if r.gateway is not None}
    # RFC 3442: the classless routes, and not the Router option.
    assert got == {("0.0.0.0/0", "198.18.0.254"), ("10.0.0.0/8", "198.18.0.253")}
    assert client.ipv4.mtu == 1400
    await driver.close()
    assert client.ipv4.mtu == 1500
    assert not any(r.gateway is not None for r in client.routes)
    server.close()


async def test_no_server_times_out_cleanly(net: Net) -> None:
    client = await net.host()
    with pytest.raises(TimeoutError, match="no DHCP lease within 0.3 s"):
        await netstack.dhcp.configure(client, config=QUICK, timeout=0.3)
    assert not client.ipv4.accept_any_unicast
    assert client.arp.probing == set()  # no probe, nor its conflict handler, left behind
    # Port 68 is free again.
    driver_port = await client.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        local_addr=("0.0.0.0", 68))  # fmt: skip
    driver_port[0].close()


async def test_client_closes_with_the_stack(net: Net) -> None:
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(server_stack)
    client = await net.host()
    driver = await netstack.dhcp.configure(client, config=QUICK, timeout=5)
    await client.close()
    await asyncio.sleep(0)
    assert driver.closed
    await driver.close()  # nothing left to do, no error
    server.close()


async def test_second_client_on_a_stack_is_refused(net: Net) -> None:
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(server_stack)
    client = await net.host()
    driver = await netstack.dhcp.configure(client, config=QUICK, timeout=5)
    with pytest.raises(AddressInUseError):
        await netstack.dhcp.configure(client, config=QUICK, timeout=5)
    async with driver:
        pass
    assert driver.closed and client.addresses == []
    async with server:
        pass
    assert server.closed


async def test_serve_checks_its_arguments(net: Net, tmp_path: Path) -> None:
    stack = await net.host("198.18.0.1/24")
    with pytest.raises(ValueError, match="on no network"):
        await netstack.dhcp.serve(stack, pool="10.0.0.10-10.0.0.20")
    with pytest.raises(ValueError, match="first-last"):
        await netstack.dhcp.serve(stack, pool="198.18.0.10")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="lease database"):
        await netstack.dhcp.serve(stack, leases_path=bad)
    with pytest.raises(TypeError):
        await netstack.dhcp.serve(stack, options={42: 7})  # type: ignore[dict-item]


async def test_reservations_through_serve(net: Net) -> None:
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(
        server_stack, reservations={"02:00:00:00:0a:01": "198.18.0.77"}
    )
    client = await net.host(mac="02:00:00:00:0a:01")
    driver = await netstack.dhcp.configure(client, config=QUICK, timeout=5)
    assert driver.lease is not None and driver.lease.address == "198.18.0.77"
    await driver.close()
    server.close()


async def test_a_flood_of_discovers_does_not_starve_a_real_client(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    # DISCOVERs from 3 000 random hardware addresses (unicast to the server from a host on
    # the link: the server's side is the same as for broadcasts), then a real client. The
    # flood holds at most half the pool; the client gets its lease at once.
    server_stack = await net.host("198.18.0.1/24")
    server = await netstack.dhcp.serve(server_stack, pool="198.18.0.100-198.18.0.149")
    attacker = await net.host("198.18.0.2/24")
    transport, _ = await attacker.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("0.0.0.0", 68), remote_addr=("198.18.0.1", 67)
    )
    rng = random.Random(18)
    caplog.set_level("WARNING", logger="netstack.dhcp.server")
    discover = {OptionCode.MESSAGE_TYPE: bytes((MessageType.DISCOVER,))}
    for i in range(3000):
        chaddr = bytes([0x02]) + rng.randbytes(5)
        msg = DhcpMessage(op=BootOp.REQUEST, xid=i, chaddr=chaddr, options=discover)
        transport.sendto(build(msg))
        if i % 100 == 0:
            await asyncio.sleep(0)
    async with asyncio.timeout(10):
        while server.stats()["discovers"] < 3000:
            await asyncio.sleep(0.02)
    transport.close()
    client = await net.host()
    driver = await netstack.dhcp.configure(client, config=QUICK, timeout=5)
    assert driver.lease is not None
    stats = server.stats()
    assert stats["offers_outstanding"] <= 25 and stats["offers_evicted"] >= 2975
    address = ipaddress.IPv4Address(str(driver.lease.address).split("/")[0])
    assert ipaddress.IPv4Address("198.18.0.100") <= address <= ipaddress.IPv4Address("198.18.0.149")
    assert [lease.mac for lease in server.leases] == [str(client.link.mac)]
    assert not [r for r in caplog.records if "exhausted" in r.getMessage()]
    await driver.close()
    server.close()


async def test_a_server_for_each_interface_of_a_router() -> None:
    """A router with two client networks serves each its own pool (``interface=``): a
    client gets the pool of the network it is on; one interface takes one server, and the
    port goes when the last closes."""
    from netstack.link import MemoryLink

    a_link, r_a = MemoryLink.pair()
    b_link, r_b = MemoryLink.pair()
    router = await Stack.open(r_a, ipv4="198.18.1.1/24")
    a = await Stack.open(a_link)
    b = await Stack.open(b_link)
    try:
        second = await router.add_interface(r_b, ipv4="198.18.3.1/24", name="work")
        first = router.interfaces[0]
        one = await netstack.dhcp.serve(router, pool="198.18.1.100-198.18.1.110",
                                        router="198.18.1.1", interface=first)  # fmt: skip
        with pytest.raises(ValueError, match="no network"):
            await netstack.dhcp.serve(router, pool="198.18.1.100-198.18.1.110", interface=second)
        two = await netstack.dhcp.serve(router, pool="198.18.3.50-198.18.3.60",
                                        router="198.18.3.1", interface=second.index)  # fmt: skip
        with pytest.raises(AddressInUseError):
            await netstack.dhcp.serve(router, pool="198.18.3.61-198.18.3.62", interface=second)
        with pytest.raises(AddressInUseError):
            await netstack.dhcp.serve(router, pool="198.18.1.111-198.18.1.112")
        lease_a = (await netstack.dhcp.configure(a, config=QUICK, timeout=10)).lease
        lease_b = (await netstack.dhcp.configure(b, config=QUICK, timeout=10)).lease
        assert lease_a is not None and lease_b is not None
        assert (str(lease_a.address), str(lease_a.router)) == ("198.18.1.100", "198.18.1.1")
        assert str(lease_b.address).startswith("198.18.3.") and str(lease_b.router) == (
            "198.18.3.1"
        )
        assert [r.address for r in two.leases] == [str(lease_b.address)]
        one.close()
        two.close()
        # The port is free again for a server of the whole stack.
        (await netstack.dhcp.serve(router, pool="198.18.1.120-198.18.1.121")).close()
    finally:
        for s in (a, b, router):
            await s.close()
