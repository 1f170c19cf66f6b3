"""Shared fixtures: the real data in ../shared/data (used in place), an isolated cache, a loopback server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from perc_platform.testing import LoopbackServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA; this machine has no GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared() -> Path:
    """The folder of real public data beside the repo (../shared/data)."""
    if not SHARED.is_dir():
        pytest.fail(f"real test data not found at {SHARED}: the tests expect ../shared/data beside the repo")
    return SHARED


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty PERC_CACHE_DIR."""
    cache = tmp_path_factory.mktemp("perc-cache")
    monkeypatch.setenv("PERC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(autouse=True)
def _no_granted_hosts() -> Iterator[None]:
    """Hosts granted to the network policy (``grant_host``) last for one test only."""
    yield
    from perc_platform.storage import policy

    policy._revoke_all()


@pytest.fixture
def server_factory() -> Iterator[type[LoopbackServer]]:
    """Start LoopbackServers that are stopped at the end of the test: ``server_factory(root, ...)``."""
    started: list[LoopbackServer] = []

    def make(root: Path | None = None, **kwargs: object) -> LoopbackServer:
        srv = LoopbackServer(root, **kwargs).start()  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield make  # type: ignore[misc]
    for srv in started:
        srv.stop()
