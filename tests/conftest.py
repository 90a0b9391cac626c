"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from writer_magics.server import ServerHandle, start_server


@pytest.fixture(scope="module")
def server_module() -> Iterator[ServerHandle]:
    """One bundled Writer-compatible server per test module (127.0.0.1, free port, no key)."""
    with start_server() as handle:
        yield handle


@pytest.fixture
def server(server_module: ServerHandle) -> ServerHandle:
    """The module's server with an empty request log and fresh ``xN`` fault counters.

    Use ``server.url`` as the base URL (no ``/v1``); ``server.requests`` lists what was
    received and ``server.wait_for_requests(n)`` waits until ``n`` responses finished.
    """
    server_module.clear()
    return server_module
