"""The three kinds of code (STYLE.md, "Three kinds of code") hold in netstack/proto, in TLS's
sans-IO modules (``netstack/tls``: ``wire``, ``record``, ``key_schedule``, ``connection``,
``errors``, ``certs``) and in the DNS cache (``netstack/dns/cache.py``).

- wire modules (``wire.py``, and ``checksum.py``, which every wire module imports) may import
  only ``struct``, ``enum``, ``ipaddress``, ``typing``, ``collections.abc``, ``dataclasses``,
  ``__future__`` and netstack's own ``errors``, ``proto.checksum`` and other ``wire`` modules;
- machine modules (everything else under netstack/proto) must not import ``asyncio``,
  ``time``, ``socket``, ``os``, ``random``, ``threading`` or ``selectors``, nor any of their
  submodules, whether by ``import x`` or ``from x import y``.

Imports are read with ``ast`` (anywhere in the module, also inside functions and
``if TYPE_CHECKING:`` blocks), and relative imports are resolved against the module's package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "netstack"
PROTO = PACKAGE_ROOT / "proto"

WIRE_ALLOWED_STDLIB = frozenset(
    {"struct", "enum", "ipaddress", "typing", "collections.abc", "dataclasses", "__future__"}
)
WIRE_ALLOWED_NETSTACK = frozenset({"netstack.errors", "netstack.proto.checksum"})
MACHINE_FORBIDDEN = frozenset(
    {"asyncio", "time", "socket", "os", "random", "threading", "selectors"}
)


def module_name(path: Path) -> str:
    """``netstack/proto/ipv4/wire.py`` -> ``netstack.proto.ipv4.wire``."""
    relative = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def is_wire(module: str) -> bool:
    return module.rsplit(".", 1)[-1] == "wire" or module == "netstack.proto.checksum"


def _resolve(node: ast.ImportFrom, package: str) -> str:
    """The absolute name of the module a ``from ... import`` statement reads from."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    if node.level > 1:
        parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """Every module an import statement names, as (line, absolute dotted name).

    ``from x import y`` yields both ``x`` and ``x.y``, since ``y`` may be a submodule.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"


def _wire_allows(name: str) -> bool:
    if name in WIRE_ALLOWED_STDLIB or name in WIRE_ALLOWED_NETSTACK:
        return True
    # another wire module, e.g. netstack.proto.ethernet.wire (or a name imported from one)
    parts = name.split(".")
    return parts[0] == "netstack" and "wire" in parts[1:]


def _machine_forbids(name: str) -> bool:
    return name.split(".")[0] in MACHINE_FORBIDDEN


def forbidden_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports in ``source`` (the text of ``module``) that its kind may not have, each as
    ``"<module>:<line>: <kind> module imports <name>"``."""
    package = module if is_package else module.rpartition(".")[0]
    wire = is_wire(module)
    kind = "wire" if wire else "machine"
    problems: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        bad: list[str] = []
        if isinstance(node, ast.Import):
            check = (lambda n: not _wire_allows(n)) if wire else _machine_forbids
            bad = [alias.name for alias in node.names if check(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            members = [f"{base}.{a.name}" for a in node.names if a.name != "*"]
            if not wire:
                bad = [base] if _machine_forbids(base) else []
            elif not _wire_allows(base):
                # "from x import y" is fine when y is itself an allowed module
                # ("from collections import abc", "from ..ipv4 import wire").
                if node.module is None:  # "from . import y": name the modules, not "."
                    bad = [m for m in members if not _wire_allows(m)]
                elif not members or not all(_wire_allows(m) for m in members):
                    bad = [base]
        problems += [
            (node.lineno, f"{module}:{node.lineno}: {kind} module imports {n}") for n in bad
        ]
    return [text for _, text in sorted(problems)]


#: Sans-IO modules outside netstack/proto (their drivers, ``tls/driver.py``, ``tls/stream.py``,
#: ``tls/config.py`` and ``dns/resolver.py``, may do I/O).
SANS_IO_ELSEWHERE = [
    PACKAGE_ROOT / "tls" / name
    for name in (
        "wire.py",
        "record.py",
        "key_schedule.py",
        "connection.py",
        "errors.py",
        "certs.py",
    )
] + [PACKAGE_ROOT / "dns" / name for name in ("cache.py", "answers.py")]


def proto_modules() -> list[Path]:
    return sorted(PROTO.rglob("*.py")) + SANS_IO_ELSEWHERE


def test_proto_modules_exist() -> None:
    names = {module_name(p) for p in proto_modules()}
    for expected in (
        "netstack.proto.checksum",
        "netstack.proto.ethernet.wire",
        "netstack.proto.arp.wire",
        "netstack.proto.ipv4.wire",
        "netstack.proto.icmp.wire",
        "netstack.proto.udp.wire",
        "netstack.proto.ndp.wire",
        "netstack.proto.mld.wire",
        "netstack.proto.neighbour.cache",
        "netstack.tls.wire",
        "netstack.tls.connection",
        "netstack.dns.cache",
        "netstack.dns.answers",
    ):
        assert expected in names


def test_proto_imports_follow_the_layering() -> None:
    problems: list[str] = []
    for path in proto_modules():
        problems += forbidden_imports(
            path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"
        )
    assert not problems, "forbidden imports:\n" + "\n".join(problems)


# -- the checker itself ----------------------------------------------------------------------

CURRENT_WIRE = """
from __future__ import annotations
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple
import ipaddress
from ...errors import ParseError
from ..checksum import checksum
from .. import checksum as checksum_module
from ..ethernet.wire import ETHERNET_HEADER_LEN
from netstack.proto.ipv4 import wire as ipv4_wire
"""


def test_checker_accepts_allowed_wire_imports() -> None:
    assert forbidden_imports(CURRENT_WIRE, "netstack.proto.udp.wire") == []


@pytest.mark.parametrize(
    ("line", "offender"),
    [
        ("import asyncio", "asyncio"),
        ("import time", "time"),
        ("import collections", "collections"),
        ("from os import path", "os"),
        ("import logging", "logging"),
        ("from ..layer import Layer", "netstack.proto.layer"),
        ("from ...link.pcap import read_pcap", "netstack.link.pcap"),
        ("from .cache import ArpCache", "netstack.proto.arp.cache"),
        ("from . import cache", "netstack.proto.arp.cache"),
        ("import netstack.stack", "netstack.stack"),
    ],
)
def test_checker_rejects_other_wire_imports(line: str, offender: str) -> None:
    problems = forbidden_imports(f"import struct\n{line}\n", "netstack.proto.arp.wire")
    assert problems == [f"netstack.proto.arp.wire:2: wire module imports {offender}"]


def test_ndp_and_mld_codecs_are_held_to_the_wire_rules() -> None:
    # Neighbour discovery and MLD messages ride in ICMPv6 but are protocols of their own,
    # each with its wire module (RFC 4861, RFC 3810).
    for module in ("netstack.proto.ndp.wire", "netstack.proto.mld.wire"):
        assert is_wire(module)
        assert forbidden_imports("import random\n", module) == [
            f"{module}:1: wire module imports random"
        ]


def test_checksum_module_is_held_to_the_wire_rules() -> None:
    problems = forbidden_imports("import random\n", "netstack.proto.checksum")
    assert problems == ["netstack.proto.checksum:1: wire module imports random"]


@pytest.mark.parametrize(
    "line",
    [
        "import asyncio",
        "import asyncio.events",
        "from asyncio import Future",
        "import time",
        "from time import monotonic",
        "import socket",
        "import os",
        "import os.path",
        "from os import urandom",
        "import random as rnd",
        "import threading",
        "import selectors",
    ],
)
def test_checker_rejects_forbidden_machine_imports(line: str) -> None:
    source = f"from __future__ import annotations\n\nimport heapq\n{line}\n"
    problems = forbidden_imports(source, "netstack.proto.tcp.connection")
    assert len(problems) == 1
    assert problems[0].startswith("netstack.proto.tcp.connection:4: machine module imports ")
    assert problems[0].rsplit(" ", 1)[1].split(".")[0] in MACHINE_FORBIDDEN


def test_checker_finds_imports_anywhere_in_a_module() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import asyncio\n"
        "def later() -> None:\n"
        "    import time\n"
    )
    assert forbidden_imports(source, "netstack.proto.arp.cache") == [
        "netstack.proto.arp.cache:3: machine module imports asyncio",
        "netstack.proto.arp.cache:5: machine module imports time",
    ]


def test_checker_accepts_ordinary_machine_imports() -> None:
    source = (
        "import heapq\nimport logging\nimport errno\nfrom dataclasses import dataclass\n"
        "from ..ipv4.wire import IPv4Header\nfrom .cache import ArpCache\n"
        "from ...errors import ParseError\n"
    )
    assert forbidden_imports(source, "netstack.proto.arp.layer") == []


def test_checker_resolves_relative_imports_in_a_package() -> None:
    # In netstack/proto/ethernet/__init__.py, "from .wire import x" is ethernet.wire itself.
    assert module_name(PROTO / "ethernet" / "__init__.py") == "netstack.proto.ethernet"
    tree = ast.parse("from .wire import parse\nfrom .. import checksum\n")
    assert list(imported_modules(tree, "netstack.proto.ethernet", is_package=True)) == [
        (1, "netstack.proto.ethernet.wire"),
        (1, "netstack.proto.ethernet.wire.parse"),
        (2, "netstack.proto"),
        (2, "netstack.proto.checksum"),
    ]


def test_current_wire_module_with_asyncio_added_fails() -> None:
    path = PROTO / "udp" / "wire.py"
    source = path.read_text(encoding="utf-8")
    assert forbidden_imports(source, "netstack.proto.udp.wire") == []
    tampered = source.replace("import struct\n", "import struct\nimport asyncio\n", 1)
    assert tampered != source
    problems = forbidden_imports(tampered, "netstack.proto.udp.wire")
    assert len(problems) == 1 and problems[0].endswith("wire module imports asyncio")


def test_current_machine_module_with_asyncio_added_fails() -> None:
    path = PROTO / "neighbour" / "cache.py"
    source = path.read_text(encoding="utf-8")
    assert forbidden_imports(source, "netstack.proto.neighbour.cache") == []
    tampered = source + "\nimport asyncio\n"
    problems = forbidden_imports(tampered, "netstack.proto.neighbour.cache")
    assert len(problems) == 1 and problems[0].endswith("machine module imports asyncio")
