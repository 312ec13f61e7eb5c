"""Helpers shared by the real-peer tests: running programs in the test namespace without
blocking the event loop, a small HTTP server on netstack, and asking tshark about a capture."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path

from netstack.testing import TapSandbox

TIMEOUT = 30.0


async def in_netns(
    sandbox: TapSandbox, *argv: str, timeout: float = TIMEOUT, check: bool = True
) -> str:
    """Run a command in the namespace without blocking the loop (netstack must answer it);
    its output (stdout and stderr), asserting it succeeded (with ``check``)."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", sandbox.name, *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    if check:
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{text}"
    return text


async def kernel_link_local(sandbox: TapSandbox) -> str:
    """The link-local address of the kernel's side of the TAP device."""
    out = await in_netns(sandbox, "ip", "-j", "-6", "addr", "show", "dev", sandbox.dev)
    for iface in json.loads(out):
        for addr in iface.get("addr_info", []):
            if addr.get("scope") == "link":
                return str(addr["local"])
    raise AssertionError(f"no link-local address on {sandbox.dev}: {out}")


async def tshark_problems(tshark: str, capture: Path, which: str) -> str:
    """Frames matching ``which`` that tshark finds malformed or with a bad checksum (its
    checksum validation is off by default: PEERS.md). What TCP carries is read as plain data:
    the tests' streams are arbitrary bytes, and tshark's heuristic dissectors take some for a
    protocol they then find malformed (random bytes looked like a Thrift call once)."""
    proc = await asyncio.create_subprocess_exec(
        tshark, "-n", "-r", str(capture),
        "-d", "tcp.port==1-65535,data",
        "-o", "ip.check_checksum:TRUE",
        "-o", "udp.check_checksum:TRUE",
        "-o", "tcp.check_checksum:TRUE",
        "-Y", f"({which}) && (_ws.malformed || _ws.expert.severity >= error)",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60.0)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def tshark_count(tshark: str, capture: Path, which: str) -> int:
    """How many frames of ``capture`` match the display filter ``which``."""
    proc = await asyncio.create_subprocess_exec(
        tshark, "-n", "-r", str(capture), "-Y", which,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60.0)
    assert proc.returncode == 0, err.decode()
    return len(out.decode().splitlines())


def body(size: int, seed: int = 2544) -> bytes:
    """Deterministic bytes without a short period, so a misplaced segment changes the hash."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.asynccontextmanager
async def peer(sandbox: TapSandbox, *argv: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A long-running peer in the namespace (stdout and stderr piped), killed afterwards."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", sandbox.name, *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 5.0)


async def finished(proc: asyncio.subprocess.Process, timeout: float = TIMEOUT) -> str:
    """Wait for a peer to exit by itself; its output."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    text = (out + err).decode(errors="replace")
    assert proc.returncode == 0, f"peer exited {proc.returncode}:\n{text}"
    return text


async def wait_listening(sandbox: TapSandbox, port: int, timeout: float = 10.0) -> None:
    """Wait until something in the namespace listens on TCP ``port``."""
    async with asyncio.timeout(timeout):
        while True:
            out = await in_netns(sandbox, "ss", "-Hltn", f"sport = :{port}")
            if out.strip():
                return
            await asyncio.sleep(0.05)


class HttpServer:
    """A tiny HTTP/1.1 server on netstack: ``GET /<size>`` answers ``size`` bytes of
    :func:`body`, ``POST`` the SHA-256 of the request body in hex; connections stay open for
    more requests until the client closes."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.errors: list[BaseException] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    assert exc.partial == b"", exc.partial
                    break
                request_line = head.split(b"\r\n", 1)[0].decode()
                method, target, _ = request_line.split(" ", 2)
                self.requests += 1
                if method == "POST":
                    length = re.search(rb"\r\ncontent-length: *(\d+)\r\n", head, re.I)
                    assert length is not None, head
                    # read() in a loop: readexactly(n > limit) hangs (see test_readexactly_...)
                    digest, remaining = hashlib.sha256(), int(length[1])
                    while remaining:
                        chunk = await reader.read(min(remaining, 256 * 1024))
                        assert chunk, "EOF inside the request body"
                        digest.update(chunk)
                        remaining -= len(chunk)
                    data = digest.hexdigest().encode()
                else:
                    assert method == "GET", request_line
                    data = body(int(target.lstrip("/")))
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    + f"Content-Length: {len(data)}\r\n\r\n".encode()
                )
                view = memoryview(data)
                for start in range(0, len(view), 256 * 1024):
                    writer.write(view[start : start + 256 * 1024])
                    await writer.drain()
        except BaseException as exc:
            self.errors.append(exc)
            raise
        finally:
            writer.close()


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while chunk := await reader.read(256 * 1024):
        chunks.append(chunk)
    return b"".join(chunks)


# -- 1. curl downloads from netstack -----------------------------------------------------------
