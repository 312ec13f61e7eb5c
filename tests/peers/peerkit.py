"""Helpers shared by the real-peer tests: running programs in the test namespace without
blocking the event loop, and asking tshark about a capture."""

from __future__ import annotations

import asyncio
from pathlib import Path

from netstack.testing import TapSandbox

TIMEOUT = 30.0


async def in_netns(sandbox: TapSandbox, *argv: str, timeout: float = TIMEOUT) -> str:
    """Run a command in the namespace without blocking the loop (netstack must answer it);
    its output (stdout and stderr), asserting it succeeded."""
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
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{text}"
    return text


async def tshark_problems(tshark: str, capture: Path, which: str) -> str:
    """Frames matching ``which`` that tshark finds malformed or with a bad checksum (its
    checksum validation is off by default: PEERS.md)."""
    proc = await asyncio.create_subprocess_exec(
        tshark, "-n", "-r", str(capture),
        "-o", "ip.check_checksum:TRUE",
        "-o", "udp.check_checksum:TRUE",
        "-o", "tcp.check_checksum:TRUE",
        "-Y", f"({which}) && (_ws.malformed || _ws.expert.severity >= error)",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60.0)
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()
