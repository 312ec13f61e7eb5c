"""asyncssh on netstack through ``netstack.use``, as its documentation shows it: a server
(``asyncssh.listen`` with generated host keys, public-key authentication, a process handler,
SFTP, TCP forwarding allowed by its ``SSHServer``) and a client (``asyncssh.connect``,
``conn.run``, ``start_sftp_client``, ``forward_local_port``), in memory, and the kernel's
OpenSSH client against the server over TAP. No glue beyond the switch.

asyncssh's local port forwarding binds an operating-system socket itself
(``socket.bind``, which no event loop method sees) and hands it to ``create_server(sock=)``,
so it can listen only on addresses the host has too: the wildcard, as here (the switch then
listens on the stack at the port the kernel chose), not a netstack stack's own address."""

from __future__ import annotations

import asyncio
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import CLIENT_IP, SERVER_IP, STEP, Kernel, Net

import netstack

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # cryptography deprecates DSA, which asyncssh imports
    import asyncssh


class Server(asyncssh.SSHServer):
    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:  # fmt: skip
        return True  # asyncssh refuses every forwarding unless told


async def shell(process: asyncssh.SSHServerProcess[str]) -> None:
    """Greets the client by its address and command, then echoes its input."""
    peer = process.get_extra_info("peername")[0]
    process.stdout.write(f"hello {peer}, you ran {process.command!r}\n")
    async for line in process.stdin:
        process.stdout.write(line.upper())
    process.exit(3)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


class Keys:
    def __init__(self) -> None:
        self.host = asyncssh.generate_private_key("ssh-ed25519")
        self.client = asyncssh.generate_private_key("ssh-ed25519")

    def authorized(self) -> Any:
        return asyncssh.import_authorized_keys(self.client.export_public_key().decode())


async def listen(stack: netstack.Stack, host: str, keys: Keys, **options: Any) -> Any:
    with netstack.use(stack):
        return await asyncssh.listen(
            host, 8022, server_factory=Server, server_host_keys=[keys.host],
            authorized_client_keys=keys.authorized(), process_factory=shell, **options,
        )  # fmt: skip


async def test_command_sftp_and_forwarding(net: Net, tmp_path: Path) -> None:
    keys = Keys()
    (tmp_path / "served").mkdir()
    with netstack.use(net.server):
        await asyncio.start_server(echo, SERVER_IP, 7)  # what the forwarding reaches
    served = str(tmp_path / "served").encode()
    acceptor = await listen(
        net.server, SERVER_IP, keys, sftp_factory=lambda chan: asyncssh.SFTPServer(chan, served)
    )
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                async with asyncssh.connect("server.test", 8022, username="user",
                                            client_keys=[keys.client],
                                            known_hosts=None) as conn:  # fmt: skip
                    result = await conn.run("greet", input="one\ntwo\n")
                    assert result.stdout == (
                        f"hello {CLIENT_IP}, you ran 'greet'\nONE\nTWO\n"
                    )  # fmt: skip
                    assert result.exit_status == 3
                    assert conn.get_extra_info("peername")[0] == SERVER_IP

                    data = os.urandom(1 << 20)
                    (tmp_path / "local").write_bytes(data)
                    async with conn.start_sftp_client() as sftp:
                        await sftp.put(str(tmp_path / "local"), "remote")
                        assert (tmp_path / "served" / "remote").read_bytes() == data
                        await sftp.get("remote", str(tmp_path / "back"))
                    assert (tmp_path / "back").read_bytes() == data

                    listener = await conn.forward_local_port("", 0, SERVER_IP, 7)
                    reader, writer = await asyncio.open_connection(
                        CLIENT_IP, listener.get_port()
                    )  # fmt: skip
                    writer.write(data)
                    writer.write_eof()
                    assert await reader.read() == data
                    writer.close()
                    listener.close()
    finally:
        acceptor.close()
        await acceptor.wait_closed()


async def test_wrong_key_is_refused(net: Net) -> None:
    keys = Keys()
    acceptor = await listen(net.server, SERVER_IP, keys)
    try:
        async with asyncio.timeout(STEP):
            with netstack.use(net.client):
                stranger = asyncssh.generate_private_key("ssh-ed25519")
                with pytest.raises(asyncssh.PermissionDenied):
                    await asyncssh.connect(SERVER_IP, 8022, username="user",
                                           client_keys=[stranger], known_hosts=None)  # fmt: skip
    finally:
        acceptor.close()
        await acceptor.wait_closed()


@pytest.mark.peers
async def test_kernel_openssh_client(kernel: Kernel, tmp_path: Path) -> None:
    """The kernel's OpenSSH client, in the namespace, runs a command on asyncssh's server on
    a stack on the TAP device."""
    from netstack.testing import require_program

    ssh = require_program("ssh")
    keys = Keys()
    identity = tmp_path / "id_ed25519"
    keys.client.write_private_key(str(identity))
    identity.chmod(0o600)
    acceptor = await listen(kernel.stack, "0.0.0.0", keys)
    try:
        out = await kernel.run(
            ssh, "-F", "/dev/null", "-i", str(identity), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-p", "8022", f"user@{kernel.stack_ip}", "uptime", status=3,
        )  # fmt: skip
        assert out == f"hello {kernel.ip}, you ran 'uptime'\n"
    finally:
        acceptor.close()
        await acceptor.wait_closed()
