"""netstack: an asyncio-native TCP/IP stack written in Python."""

from .contract import NetworkStack, StackServer
from .errors import (
    AddressInUseError,
    ClosedError,
    LinkError,
    MessageTooLargeError,
    NetstackError,
    NoRouteError,
    ParseError,
)
from .host import HostStack
from .interface import Interface
from .runner import run
from .stack import Stack, StackConfig

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
]
