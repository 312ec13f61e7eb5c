"""Test an application under a bad network: a pytest test on netstack's ``network`` fixture.

    pytest examples/test_lossy_network.py       (needs pytest-asyncio: pip install netstack[test])

The application is a small line protocol (a key-value store: ``SET key value``, ``GET key``)
served over TCP. Its clients reach it through a switch port that loses 5 % of the frames and
reorders 2 %, seeded: TCP retransmits, and the test checks every answer arrives whole and in
order and that the loss really happened. A failure prints the seed, so the same losses can be
replayed; ``--netstack-pcap=DIR`` keeps a capture of the failed test.

The marker makes it run under pytest-asyncio's default strict mode as in auto mode.
"""

from __future__ import annotations

import asyncio

import pytest

from netstack.link import Impairment


async def key_value_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The application under test: one command per line, one answer per line."""
    store: dict[str, str] = {}
    while line := await reader.readline():
        command, _, rest = line.decode().rstrip("\n").partition(" ")
        if command == "SET":
            key, _, value = rest.partition(" ")
            store[key] = value
            writer.write(b"OK\n")
        elif command == "GET":
            writer.write(f"{store.get(rest, '')}\n".encode())
        else:
            writer.write(b"ERROR\n")
        await writer.drain()
    writer.close()


@pytest.mark.asyncio
async def test_key_value_store_over_a_lossy_network(network):
    server = await network.host("198.18.0.10/24")
    client = await network.host(
        "198.18.0.20/24", impairment=Impairment(loss=0.05, reorder=0.02, seed=2026)
    )
    await server.start_server(key_value_server, port=6379)

    reader, writer = await client.open_connection("198.18.0.10", 6379)
    values = {f"key{i}": f"value{i}-" + "x" * (i * 37 % 3000) for i in range(300)}
    for key, value in values.items():
        writer.write(f"SET {key} {value}\n".encode())
    for key in values:
        writer.write(f"GET {key}\n".encode())
    await writer.drain()

    answers = [await reader.readline() for _ in range(2 * len(values))]
    assert answers[: len(values)] == [b"OK\n"] * len(values)
    assert answers[len(values) :] == [f"{v}\n".encode() for v in values.values()]
    writer.close()

    # The network was bad, and TCP made up for it.
    assert client.link.stats().tx_dropped + client.link.stats().rx_dropped > 0
    assert client.stats()["tcp"]["retransmits"] + server.stats()["tcp"]["retransmits"] > 0
