"""Read by ``mypy --strict netstack``, imported by nothing: each function below fails the type
check when :class:`~netstack.Stack`, :class:`~netstack.HostStack` or their servers stop
satisfying the contract of :mod:`netstack.contract` (a parameter renamed, a type narrowed, a
method missing). Kept apart from the contract so that :mod:`netstack.contract` imports neither
class and no import cycle can pass through it.
"""

from __future__ import annotations

from .contract import NetworkStack, StackServer
from .drivers.tcp import Server
from .host import HostServer, HostStack
from .stack import Stack

__all__: list[str] = []


def _stack(stack: Stack) -> NetworkStack:
    return stack


def _host_stack(stack: HostStack) -> NetworkStack:
    return stack


def _server(server: Server) -> StackServer:
    return server


def _host_server(server: HostServer) -> StackServer:
    return server
