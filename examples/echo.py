"""An echo server (RFC 862) on netstack, on an in-memory cable: no root, no devices.

    python examples/echo.py

Two stacks, 198.18.0.1 and 198.18.0.2, joined by a MemoryLink pair; b serves echo on TCP
port 7 with asyncio's own streams, a sends a few lines and a larger block and reads them back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import netstack
from netstack.link import MemoryLink


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Everything received goes back, until the client half-closes."""
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main() -> None:
    a_link, b_link = MemoryLink.pair()
    async with await netstack.Stack.open(a_link, ipv4="198.18.0.1/24") as a, \
               await netstack.Stack.open(b_link, ipv4="198.18.0.2/24") as b:  # fmt: skip
        server = await b.start_server(echo, port=7)
        print(f"echo server on {server.addresses}")

        reader, writer = await a.open_connection("198.18.0.2", 7)
        for line in (b"hello\n", b"from netstack\n"):
            writer.write(line)
            print("echoed", await reader.readline())

        block = os.urandom(1 << 20)
        writer.write(block)
        writer.write_eof()  # half-close: the echo of what is in flight still comes back
        back = await reader.read()
        same = hashlib.sha256(back).digest() == hashlib.sha256(block).digest()
        print(f"1 MiB echoed intact: {same}")
        writer.close()
        await writer.wait_closed()

        tcp = a.stats()["tcp"]
        print(f"a's TCP: {tcp['tx_segments']} segments out, {tcp['retransmits']} retransmitted")
        server.close()
        await server.wait_closed()
        if not same:
            raise SystemExit("the echo came back changed")


if __name__ == "__main__":
    netstack.run(main())
