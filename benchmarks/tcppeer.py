"""The kernel-side TCP peers of :mod:`benchmarks.tcp`, run inside a benchmark's network
namespace (``ip netns exec NS python tcppeer.py ...``) or, for the loopback comparisons, in
the caller's namespace on 127.0.0.1. Standard library only (started with ``python -I -S``),
so that it starts fast; the asyncio ones run on asyncio's own loop.

Every command prints one JSON object as its last line, and is bounded in time. Commands that
listen print ``ready PORT`` first (PORT is the port bound, useful with port 0).

``sink HOST PORT MAX_SECONDS``: accept one connection and read it (``recv_into`` a 1 MiB
buffer) until EOF; print ``{"bytes", "seconds"}``, ``seconds`` from accept to EOF.

``source HOST PORT SECONDS``: connect, ``sendall`` 64 KiB chunks for SECONDS, half-close,
wait for the peer's EOF; print ``{"bytes", "seconds", "connect_seconds", "seconds_to_eof"}``,
``seconds`` from connected to the last ``sendall`` returning, ``seconds_to_eof`` from
connected to the peer's EOF (everything sent was received by then).

``fetch HOST PORT MAX_SECONDS``: connect and read (``recv_into`` a 1 MiB buffer) until EOF;
print ``{"bytes", "seconds"}``, ``seconds`` from connected to EOF.

``give HOST PORT SECONDS MAX_SECONDS``: accept one connection, ``sendall`` 64 KiB chunks for
SECONDS, half-close, wait for the peer's EOF; print ``{"bytes", "seconds"}``.

``echo HOST PORT MAX_SECONDS SIZE``: an asyncio server; per connection: read exactly SIZE
bytes, write them back, close (the server closes first, as an HTTP/1.0 server does). Runs
until its standard input closes or MAX_SECONDS pass; prints ``{"connections", "errors"}``.

``connect HOST PORT SECONDS CONCURRENCY SIZE``: an asyncio client; CONCURRENCY workers each
repeat: connect, write SIZE bytes, read SIZE bytes, read EOF, close; for SECONDS (a
connection under way then is finished). Prints ``{"connections", "errors", "seconds",
"rate", "durations"}`` (each completed cycle's seconds).

``hold HOST PORT COUNT MAX_SECONDS``: open COUNT idle connections (blocking connects, one
after the other), print ``{"opened", "errors", "seconds"}``, keep them until standard input
closes or MAX_SECONDS pass, then close them (and print the same line again).

``accept HOST PORT MAX_SECONDS``: listen (backlog 4096) and keep every accepted connection
idle until standard input closes or MAX_SECONDS pass; print ``{"accepted"}``.

``recvgaps HOST PORT MAX_SECONDS``: as ``sink``, and also count stalls: gaps of more than
0.1 s between two reads that returned data; print ``{"bytes", "seconds", "stalls",
"stall_seconds"}``.

``sendn HOST PORT BYTES``: connect, ``sendall`` BYTES in 64 KiB chunks, half-close, wait for
the peer's EOF; print ``{"bytes", "seconds"}``, ``seconds`` from connected to that EOF.

The peers only talk to the address they are given, which the benchmarks take from
198.18.0.0/15 inside namespaces they create, or 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import sys
import time
from typing import Any

CHUNK = 64 * 1024
READ = 1024 * 1024
#: No single blocking socket operation of a peer waits longer than this.
IO_TIMEOUT = 10.0


def _ready(sock: socket.socket) -> None:
    print(f"ready {sock.getsockname()[1]}", flush=True)


def _listener(host: str, port: int, backlog: int = 128) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def _stdin_closed(timeout: float) -> bool:
    """Whether standard input reached EOF (waiting at most ``timeout`` seconds)."""
    ready, _, _ = select.select([sys.stdin.fileno()], [], [], timeout)
    return bool(ready) and not os.read(sys.stdin.fileno(), 4096)


def sink(host: str, port: int, max_seconds: float) -> dict[str, Any]:
    lsock = _listener(host, port)
    lsock.settimeout(max_seconds)
    _ready(lsock)
    conn, _ = lsock.accept()
    result = _read_to_eof(conn, max_seconds)
    lsock.close()
    return result


def _read_to_eof(conn: socket.socket, max_seconds: float) -> dict[str, Any]:
    """Read ``conn`` (``recv_into`` a 1 MiB buffer) until EOF, then close it; the bytes and
    the seconds from now to EOF."""
    start = time.monotonic()
    deadline = start + max_seconds
    conn.settimeout(IO_TIMEOUT)
    buf = bytearray(READ)
    recv_into = conn.recv_into
    total = 0
    while time.monotonic() < deadline:
        n = recv_into(buf)
        if not n:
            break
        total += n
    elapsed = time.monotonic() - start
    conn.close()
    return {"bytes": total, "seconds": round(elapsed, 6)}


#: A gap between reads longer than this is a stall.
STALL = 0.1


def recvgaps(host: str, port: int, max_seconds: float) -> dict[str, Any]:
    lsock = _listener(host, port)
    lsock.settimeout(max_seconds)
    _ready(lsock)
    conn, _ = lsock.accept()
    start = last = time.monotonic()
    deadline = start + max_seconds
    conn.settimeout(max_seconds)
    buf = bytearray(READ)
    total = stalls = 0
    stalled = 0.0
    while time.monotonic() < deadline:
        n = conn.recv_into(buf)
        now = time.monotonic()
        if not n:
            break
        if now - last > STALL:
            stalls += 1
            stalled += now - last
        last = now
        total += n
    elapsed = time.monotonic() - start
    conn.close()
    lsock.close()
    return {
        "bytes": total,
        "seconds": round(elapsed, 6),
        "stalls": stalls,
        "stall_seconds": round(stalled, 3),
    }


def sendn(host: str, port: int, size: int) -> dict[str, Any]:
    sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
    sock.settimeout(120.0)
    start = time.monotonic()
    chunk = bytes(CHUNK)
    left = size
    while left > 0:
        n = min(left, CHUNK)
        sock.sendall(chunk[:n])
        left -= n
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):
        pass
    elapsed = time.monotonic() - start
    sock.close()
    return {"bytes": size, "seconds": round(elapsed, 6)}


def source(host: str, port: int, seconds: float) -> dict[str, Any]:
    t0 = time.monotonic()
    sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
    start = time.monotonic()
    chunk = bytes(CHUNK)
    sendall = sock.sendall
    total = 0
    end = start + seconds
    while time.monotonic() < end:
        sendall(chunk)
        total += CHUNK
    elapsed = time.monotonic() - start
    sock.shutdown(socket.SHUT_WR)
    while sock.recv(65536):  # until the receiver has taken everything and closed
        pass
    to_eof = time.monotonic() - start
    sock.close()
    return {
        "bytes": total,
        "seconds": round(elapsed, 6),
        "connect_seconds": round(start - t0, 6),
        "seconds_to_eof": round(to_eof, 6),
    }


def fetch(host: str, port: int, max_seconds: float) -> dict[str, Any]:
    return _read_to_eof(socket.create_connection((host, port), timeout=IO_TIMEOUT), max_seconds)


def give(host: str, port: int, seconds: float, max_seconds: float) -> dict[str, Any]:
    lsock = _listener(host, port)
    lsock.settimeout(max_seconds)
    _ready(lsock)
    conn, _ = lsock.accept()
    conn.settimeout(IO_TIMEOUT)
    start = time.monotonic()
    chunk = bytes(CHUNK)
    total = 0
    while time.monotonic() < start + seconds:
        conn.sendall(chunk)
        total += CHUNK
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(65536):
        pass
    elapsed = time.monotonic() - start
    conn.close()
    lsock.close()
    return {"bytes": total, "seconds": round(elapsed, 6)}


async def _echo(host: str, port: int, max_seconds: float, size: int) -> dict[str, Any]:
    counts = {"connections": 0, "errors": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.readexactly(size)
            writer.write(data)
            await writer.drain()
            counts["connections"] += 1
        except (OSError, asyncio.IncompleteReadError):
            counts["errors"] += 1
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port, backlog=4096)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    fd = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(fd, 4096) and not stop.done():
            stop.set_result(None)

    loop.add_reader(fd, on_stdin)
    try:
        await asyncio.wait_for(stop, max_seconds)
    except TimeoutError:
        pass
    loop.remove_reader(fd)
    server.close()
    return counts


async def _connect(
    host: str, port: int, seconds: float, concurrency: int, size: int
) -> dict[str, Any]:
    payload = bytes(size)
    counts = {"connections": 0, "errors": 0}
    durations: list[float] = []
    start = time.monotonic()
    end = start + seconds

    async def worker() -> None:
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(payload)
                await reader.readexactly(size)
                await reader.read()  # the server's EOF
                writer.close()
                await writer.wait_closed()
            except (OSError, asyncio.IncompleteReadError):
                counts["errors"] += 1
                await asyncio.sleep(0.01)
                continue
            durations.append(round(time.perf_counter() - t, 6))
            counts["connections"] += 1

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))), seconds + IO_TIMEOUT
    )
    elapsed = time.monotonic() - start
    return {
        **counts,
        "seconds": round(elapsed, 6),
        "rate": round(counts["connections"] / elapsed, 1),
        "durations": durations,
    }


def hold(host: str, port: int, count: int, max_seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + max_seconds
    socks: list[socket.socket] = []
    errors = 0
    start = time.monotonic()
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            socks.append(socket.create_connection((host, port), timeout=IO_TIMEOUT))
        except OSError:
            errors += 1
    result = {"opened": len(socks), "errors": errors, "seconds": round(time.monotonic() - start, 6)}
    print(json.dumps(result), flush=True)
    while time.monotonic() < deadline and not _stdin_closed(0.05):
        pass
    for s in socks:
        s.close()
    return result


def accept(host: str, port: int, max_seconds: float) -> dict[str, Any]:
    lsock = _listener(host, port, backlog=4096)
    lsock.setblocking(False)
    _ready(lsock)
    deadline = time.monotonic() + max_seconds
    socks: list[socket.socket] = []
    stdin = sys.stdin.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([lsock, stdin], [], [], 0.05)
        if lsock in ready:
            while True:
                try:
                    conn, _ = lsock.accept()
                except BlockingIOError:
                    break
                socks.append(conn)
        if stdin in ready and not os.read(stdin, 4096):
            break
    for s in socks:
        s.close()
    lsock.close()
    return {"accepted": len(socks)}


def main(argv: list[str]) -> int:
    cmd, args = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "sink" and len(args) == 3:
        result = sink(args[0], int(args[1]), float(args[2]))
    elif cmd == "source" and len(args) == 3:
        result = source(args[0], int(args[1]), float(args[2]))
    elif cmd == "fetch" and len(args) == 3:
        result = fetch(args[0], int(args[1]), float(args[2]))
    elif cmd == "give" and len(args) == 4:
        result = give(args[0], int(args[1]), float(args[2]), float(args[3]))
    elif cmd == "recvgaps" and len(args) == 3:
        result = recvgaps(args[0], int(args[1]), float(args[2]))
    elif cmd == "sendn" and len(args) == 3:
        result = sendn(args[0], int(args[1]), int(args[2]))
    elif cmd == "echo" and len(args) == 4:
        result = asyncio.run(_echo(args[0], int(args[1]), float(args[2]), int(args[3])))
    elif cmd == "connect" and len(args) == 5:
        host, port, seconds, conc, size = args
        result = asyncio.run(_connect(host, int(port), float(seconds), int(conc), int(size)))
    elif cmd == "hold" and len(args) == 4:
        result = hold(args[0], int(args[1]), int(args[2]), float(args[3]))
    elif cmd == "accept" and len(args) == 3:
        result = accept(args[0], int(args[1]), float(args[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
