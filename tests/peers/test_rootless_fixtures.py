"""The pytest plugin's TAP fixtures without root: run as an unprivileged user (uid 65534),
``tap_netns`` is a user and network namespace of that user's (``UserNamespace``) with the TAP
device made inside and passed out, and ``tap_stack`` talks to the kernel in it as it does
when root makes them.

Root is needed only to set the test up: a private mount namespace with a 0666 node for
/dev/net/tun (mode 0600 on some machines, 0666 on most), in which a child pytest runs the
user's tests under ``setpriv``; nothing outside changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from netstack.testing import require_net_admin, require_program

INNER = """
import os

from netstack.netns import UserNamespace


async def test_a_tap_stack_without_root(tap_netns, tap_stack):
    assert os.getuid() == 65534
    assert isinstance(tap_netns.namespace, UserNamespace)
    await tap_stack.ping("198.18.0.1", timeout=5.0)
    shown = await tap_netns.arun("ip", "-6", "addr", "show", "dev", tap_netns.dev)
    assert "fd00:198:18::1/64" in shown.stdout, shown.stdout  # as open_tap_in_namespace does
    pinged = await tap_netns.arun("ping", "-c", "1", "-W", "5", "198.18.0.2", check=False)
    assert pinged.returncode == 0, pinged.stderr

    async def echo(reader, writer):
        writer.write(b"echo " + await reader.readline())
        await writer.drain()
        writer.close()

    server = await tap_stack.start_server(echo, port=7)
    client = (
        "import socket; s = socket.create_connection(('198.18.0.2', 7), timeout=5); "
        "s.sendall(b'hello\\\\n'); print(s.recv(100).decode(), end='')"
    )
    got = await tap_netns.arun("python3", "-c", client)
    assert got.stdout == "echo hello\\n", got
    server.close()
"""


def test_tap_fixtures_without_root() -> None:
    require_net_admin()
    for program in ("unshare", "setpriv", "mknod", "nsenter", "ping", "python3"):
        require_program(program)
    # Not under pytest's own temporary directory, which only root may enter.
    with tempfile.TemporaryDirectory(prefix="netstack-rootless-") as name:
        where = Path(name)
        where.chmod(0o755)
        (where / "pytest.ini").write_text(
            "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        )
        (where / "test_inner.py").write_text(INNER)
        for file in ("pytest.ini", "test_inner.py"):
            (where / file).chmod(0o644)
        script = (
            "mount -t tmpfs -o mode=755 tmpfs /dev/net && mknod -m 666 /dev/net/tun c 10 200 && "
            "exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "
            f"{sys.executable} -m pytest -q -p no:cacheprovider test_inner.py"
        )
        env = {**os.environ, "HOME": name, "NETSTACK_REQUIRE_PEERS": "1"}
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True, text=True, cwd=where, env=env, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout, proc.stdout
