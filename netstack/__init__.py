"""netstack: an asyncio-native TCP/IP stack written in Python.

``import netstack`` is cheap: the stacks (and asyncio, the protocols, dnspython) are imported
on first use of a name that needs them (PEP 562), so that the pytest plugin, which loads
wherever netstack is installed, costs nothing in projects that do not use it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AddressInUseError,
    ClosedError,
    LinkError,
    MessageTooLargeError,
    NetstackError,
    NoRouteError,
    ParseError,
)

if TYPE_CHECKING:
    from . import dhcp as dhcp
    from . import dns as dns
    from . import gateway as gateway
    from . import link as link
    from . import testing as testing
    from . import tls as tls
    from .contract import NetworkStack, StackServer
    from .host import HostStack
    from .interface import Interface
    from .runner import run
    from .stack import Stack, StackConfig
    from .switch import use

__version__ = "0.1.0"

__all__ = [
    "AddressInUseError",
    "ClosedError",
    "HostStack",
    "Interface",
    "LinkError",
    "MessageTooLargeError",
    "NetstackError",
    "NetworkStack",
    "NoRouteError",
    "ParseError",
    "Stack",
    "StackConfig",
    "StackServer",
    "__version__",
    "run",
    "use",
]

#: Where each name of the API is defined, imported when first asked for.
_LAZY = {
    "HostStack": ".host",
    "Interface": ".interface",
    "NetworkStack": ".contract",
    "Stack": ".stack",
    "StackConfig": ".stack",
    "StackServer": ".contract",
    "run": ".runner",
    "use": ".switch",
}
#: Subpackages reachable as attributes after a bare ``import netstack`` (``netstack.dns.serve``).
_SUBMODULES = frozenset({"dhcp", "dns", "gateway", "link", "testing", "tls"})


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})
