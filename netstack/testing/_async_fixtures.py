"""The plugin's async fixtures, once per pytest-asyncio loop scope (``_netstack_stack_pair_module``
...), registered by :func:`netstack.testing.pytest_configure` when pytest-asyncio is
installed; the public fixtures of :mod:`netstack.testing` pick the one for the loop scope of
the test that asks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from . import _ASYNC_FIXTURES, _LOOP_SCOPES


def _declare(name: str, scope: str, opener: Any) -> Any:
    async def fixture(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        async with opener(request) as value:
            yield value

    hidden = f"_netstack_{name}_{scope}"
    fixture.__name__ = fixture.__qualname__ = hidden
    loop_scope: Any = scope  # one of pytest's scope names (a Literal to the type checker)
    return pytest_asyncio.fixture(fixture, loop_scope=loop_scope, name=hidden)


for _name, _opener in _ASYNC_FIXTURES.items():
    for _scope in _LOOP_SCOPES:
        globals()[f"_netstack_{_name}_{_scope}"] = _declare(_name, _scope, _opener)
