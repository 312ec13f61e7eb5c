"""Garbage at the services' doors: random datagrams to a stack running the DNS and DHCP
servers and a DHCP client, random bytes into a TLS server over TCP. Nothing may raise into
the event loop; every bad message is a counted drop (or a closed connection for TLS)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netstack.dhcp
import netstack.dns
from netstack import Stack
from netstack.link import MemoryLink
from netstack.tls import TLSConfig, certs

ZONE = {"x.test.": {"@": [("SOA", "ns admin 1 3600 600 86400 60"), ("NS", "ns")],
                    "ns": [("A", "198.18.0.2")]}}  # fmt: skip


class Recorder:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: self.errors.append(context))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads=st.lists(st.binary(max_size=600), min_size=1, max_size=8),
       ports=st.lists(st.sampled_from([53, 67, 68]), min_size=1, max_size=8))  # fmt: skip
async def test_random_datagrams_to_dns_and_dhcp(payloads: list[bytes], ports: list[int]) -> None:
    recorder = Recorder(asyncio.get_running_loop())
    a_link, b_link = MemoryLink.pair()
    async with await Stack.open(a_link, ipv4="198.18.0.1/24") as a, \
               await Stack.open(b_link, ipv4="198.18.0.2/24") as b:  # fmt: skip
        dns_server = await netstack.dns.serve(b, ZONE)
        dhcp_server = await netstack.dhcp.serve(b, pool="198.18.0.100-198.18.0.110")
        transport, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        local_addr=("0.0.0.0", 68))  # fmt: skip
        for data, port in zip(payloads, ports, strict=False):
            transport.sendto(data, ("198.18.0.2", port))
        await asyncio.sleep(0.02)
        transport.close()
        dns_server.close()
        dhcp_server.close()
        assert a.internal_errors == 0 and b.internal_errors == 0
    assert recorder.errors == []


async def test_random_bytes_into_a_tls_server() -> None:
    recorder = Recorder(asyncio.get_running_loop())
    ca, ca_key = certs.make_ca("fuzz CA")
    cert, key = certs.issue(ca, ca_key, "server.test", dns_names=["server.test"])
    a_link, b_link = MemoryLink.pair()
    import random

    rng = random.Random(8446)
    async with await Stack.open(a_link, ipv4="198.18.0.1/24") as a, \
               await Stack.open(b_link, ipv4="198.18.0.2/24") as b:  # fmt: skip
        served: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append(await reader.read(100))
            writer.close()

        server = await b.start_server(handler, port=443, ssl=TLSConfig.server([cert], key))
        for i in range(40):
            reader, writer = await a.open_connection("198.18.0.2", 443)
            # A TLS-looking record header with random contents, or plain noise.
            blob = rng.randbytes(rng.randrange(1, 3000))
            if i % 2:
                blob = bytes((22, 3, 1)) + len(blob).to_bytes(2, "big") + blob
            writer.write(blob)
            try:
                await asyncio.wait_for(reader.read(), 5)
            except (ConnectionError, TimeoutError):
                pass
            writer.close()
        # A real client is still served after all that.
        reader, writer = await a.open_connection(
            "198.18.0.2", 443, ssl=TLSConfig.client(cafile=[ca]), server_hostname="server.test"
        )
        writer.write(b"hello")
        await writer.drain()
        await asyncio.sleep(0.05)
        assert served == [b"hello"]
        writer.close()
        server.close()
        assert a.internal_errors == 0 and b.internal_errors == 0
    assert [e for e in recorder.errors if "exception" in e] == []
