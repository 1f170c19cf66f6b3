"""A second loopback listener standing for a foreign host, and request counts that wait for the server's log."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from perc_platform.testing import LoopbackServer


def settled_count(server: LoopbackServer, pattern: str = "*", expected: int = 1, timeout: float = 2.0) -> int:
    """Requests matching ``pattern`` once the server logged them (it logs as it answers, after the headers)."""
    deadline = time.monotonic() + timeout
    while server.count(pattern=pattern) < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.count(pattern=pattern)


@pytest.fixture
def foreign() -> Iterator[LoopbackServer]:
    """A listener for a host nobody allowed: it serves a valid-looking stack and must receive nothing."""
    with LoopbackServer() as server:
        yield server
        time.sleep(0.05)  # a request in flight would be logged by now
        assert server.requests == [], f"the foreign host was reached: {server.requests}"
