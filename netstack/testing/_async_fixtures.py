"""The plugin's async fixtures, once per pytest-asyncio loop scope (``_netstack_stack_pair_module``
...), declared and registered by :func:`netstack.testing.pytest_configure` when pytest-asyncio
is installed; the public fixtures of :mod:`netstack.testing` pick the one for the loop scope
of the test that asks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio


def _declare(name: str, scope: str, opener: Any) -> Any:
    async def fixture(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        async with opener(request) as value:
            yield value

    hidden = f"_netstack_{name}_{scope}"
    fixture.__name__ = fixture.__qualname__ = hidden
    loop_scope: Any = scope  # one of pytest's scope names (a Literal to the type checker)
    return pytest_asyncio.fixture(fixture, loop_scope=loop_scope, name=hidden)


def declare(openers: dict[str, Any], scopes: tuple[str, ...]) -> None:
    """One fixture per opener (an async context manager taking the fixture's request) and
    loop scope, as attributes of this module, where pytest finds them once it is registered
    as a plugin."""
    for name, opener in openers.items():
        for scope in scopes:
            globals()[f"_netstack_{name}_{scope}"] = _declare(name, scope, opener)
