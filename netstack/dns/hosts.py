"""Static host tables: names answered without asking a server, as ``/etc/hosts`` does.

A table is a mapping of names to address strings (``{"db.test": ["198.18.0.7"]}``); names
match without regard to case (RFC 4343) and with or without the trailing dot.
:func:`parse_hosts` reads the ``/etc/hosts`` text format (RFC 952's host table, as every Unix
keeps it: an address, then its canonical name and aliases; ``#`` starts a comment).

``localhost`` and names under it (RFC 6761 6.3) always mean the loopback addresses, unless a
table says otherwise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

__all__ = ["LOOPBACK", "hosts_lookup", "is_localhost", "normalize", "parse_hosts"]

#: RFC 6761 6.3: what a ``localhost`` name resolves to, IPv6 first.
LOOPBACK: tuple[str, ...] = ("::1", "127.0.0.1")


def normalize(name: str) -> str:
    """``name`` in the form host tables are matched in: lower case, no trailing dot."""
    return name.rstrip(".").lower()


def is_localhost(name: str) -> bool:
    """Whether ``name`` is ``localhost`` or under it (RFC 6761 6.3)."""
    n = normalize(name)
    return n == "localhost" or n.endswith(".localhost")


def hosts_lookup(hosts: Mapping[str, Sequence[str]] | None, name: str) -> list[str]:
    """The addresses ``hosts`` gives ``name`` (empty when it has none), in table order;
    ``localhost`` names fall back to :data:`LOOPBACK`."""
    want = normalize(name)
    found: Sequence[str] | None = None
    if hosts:
        found = hosts.get(want)
        if found is None:
            # The caller's own spelling ("Db.Test.") is a key we would otherwise miss.
            for key, addresses in hosts.items():
                if normalize(key) == want:
                    found = addresses
                    break
    if found is None:
        return list(LOOPBACK) if is_localhost(want) else []
    return [str(a) for a in found]


def parse_hosts(text: str) -> dict[str, list[str]]:
    """A host table from ``/etc/hosts`` text: every name and alias of a line maps to the
    line's address; a name on several lines gets all their addresses, in order. Lines whose
    first field is not an IP address are skipped.

    Returns:
        ``{name: [address, ...]}`` with names normalized (:func:`normalize`).
    """
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            entries = table.setdefault(normalize(name), [])
            if address not in entries:
                entries.append(address)
    return table
