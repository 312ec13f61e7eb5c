"""``cryptography`` only where it is needed: netstack's own TLS and its certificate helpers
are the ``tls`` extra (``pip install 'netstack[tls]'``). Plain TCP never loads it, TLS with
OpenSSL (an ``ssl.SSLContext``) works without it, and without it netstack's TLS names the
extra it needs. "Without it" is a child interpreter in which ``import cryptography`` fails
(``sys.modules["cryptography"] = None``), as it does where the package is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from netstack.tls import certs

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0

#: Run first in the child: cryptography cannot be imported.
WITHOUT = "import sys\nsys.modules['cryptography'] = None\n"

#: Two stacks on a memory cable, an echo server on b, one exchange from a (``ssl`` and
#: ``server_ssl`` given by the code before it); then what was loaded.
ECHO = """
import asyncio, sys
import netstack
from netstack.link import MemoryLink

async def echo(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()

async def main():
    a_link, b_link = MemoryLink.pair()
    async with await netstack.Stack.open(a_link, ipv4="198.18.0.1/24") as a, \\
               await netstack.Stack.open(b_link, ipv4="198.18.0.2/24") as b:
        await b.start_server(echo, port=7, ssl=server_ssl)
        reader, writer = await a.open_connection(
            "198.18.0.2", 7, ssl=ssl, server_hostname=hostname)
        writer.write(b"hello\\n")
        assert await reader.readline() == b"hello\\n"
        writer.close()

netstack.run(main())
print(sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "cryptography" and v))
print(sorted(m for m in sys.modules if m.startswith("netstack.tls.")))
"""


def run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=TIMEOUT, env=dict(os.environ),
    )  # fmt: skip


def test_the_tls_extra_holds_cryptography() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("cryptography")]
    assert [d for d in project["optional-dependencies"]["tls"] if d.startswith("cryptography")]


def test_plain_tcp_never_loads_cryptography() -> None:
    done = run_child("ssl = server_ssl = hostname = None\n" + ECHO)
    assert done.returncode == 0, done.stderr
    crypto, tls = done.stdout.splitlines()
    assert crypto == "[]" and tls == "[]", done.stdout


def test_openssl_tls_works_without_cryptography(tmp_path: Path) -> None:
    ca, ca_key = certs.make_ca("extra test CA")
    cert, key = certs.issue(ca, ca_key, "server.test", dns_names=["server.test"])
    certs.write_pem(tmp_path / "server.pem", cert, key)
    certs.write_pem(tmp_path / "ca.pem", ca)
    contexts = textwrap.dedent(
        f"""
        import ssl as ssl_module
        server_ssl = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
        server_ssl.load_cert_chain({str(tmp_path / "server.pem")!r})
        ssl = ssl_module.create_default_context(cafile={str(tmp_path / "ca.pem")!r})
        hostname = "server.test"
        """
    )
    done = run_child(WITHOUT + contexts + ECHO)
    assert done.returncode == 0, done.stderr
    crypto, tls = done.stdout.splitlines()
    assert crypto == "[]" and "netstack.tls.stream" in tls, done.stdout
    assert "netstack.tls.config" not in tls, tls


def test_netstack_tls_names_the_extra() -> None:
    code = WITHOUT + textwrap.dedent(
        """
        import netstack.tls
        assert issubclass(netstack.tls.TLSError, OSError)  # errors need nothing more
        for attempt in ("from netstack.tls import TLSConfig", "from netstack.tls import certs",
                        "netstack.tls.make_ca"):
            try:
                exec(attempt)
            except ModuleNotFoundError as exc:
                print(exc.name, "|", exc)
            else:
                print("imported:", attempt)
        """
    )
    done = run_child(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, lines
    for line in lines:
        assert line.startswith("cryptography |"), line
        assert "pip install 'netstack[tls]'" in line, line


def test_demo_without_the_tls_extra() -> None:
    code = WITHOUT + "import runpy\nrunpy.run_module('netstack', run_name='__main__')\n"
    env = dict(os.environ, NETSTACK_LOOP=os.environ.get("NETSTACK_LOOP", "asyncio"))
    done = subprocess.run(
        [sys.executable, "-c", code, "demo", "--seed", "3"],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: netstack.tls.TLSConfig" in done.stdout, done.stdout
    assert "pip install 'netstack[tls]'" in done.stdout
    assert "delta resolves www.demo.test" in done.stdout and "done." in done.stdout
