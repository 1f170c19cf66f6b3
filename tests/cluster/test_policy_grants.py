"""Hosts granted to the network policy in the client process reach the cluster's workers."""

from __future__ import annotations

import numpy as np
import pytest
from distributed import Client

from perc_platform.cluster import config_environment
from perc_platform.errors import NetworkPolicyError
from perc_platform.storage import policy

pytestmark = pytest.mark.cluster


def test_config_environment_carries_granted_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERC_EXTRA_HOSTS", '["lab.example.org"]')
    policy.grant_host("catalogs.example.org:8080")
    assert config_environment()["PERC_EXTRA_HOSTS"] == '["catalogs.example.org:8080", "lab.example.org"]'


def test_a_host_granted_after_the_client_started_reaches_the_workers(cluster_client: Client) -> None:
    def _check_on_worker(url: str) -> str:  # nested, so that it travels by value (workers cannot import tests)
        from perc_platform.storage import policy as worker_policy

        try:
            return worker_policy.check_url(url)
        except NetworkPolicyError as exc:
            return f"refused: {exc}"

    url = "http://granted.example.org:8123/stack.mrcs"
    assert all(r.startswith("refused") for r in cluster_client.run(_check_on_worker, url).values())
    policy.grant_host("granted.example.org:8123")
    assert set(cluster_client.run(_check_on_worker, url).values()) == {url}
    assert all(r.startswith("refused") for r in cluster_client.run(_check_on_worker, "http://other.example.org/x")
               .values())


def test_a_url_the_caller_opened_is_read_on_the_workers_without_a_grant(cluster_client: Client,
                                                                         stack_folder, stack_values) -> None:
    """The caller's URL travels in the graph as a ``CallerURL``: workers read it, and only it."""
    import perc_platform as pp
    from perc_platform.testing import LoopbackServer

    def _check_on_worker(url: str) -> str:
        from perc_platform.storage import policy as worker_policy

        try:
            return worker_policy.check_url(url)
        except NetworkPolicyError as exc:
            return f"refused: {exc}"

    with LoopbackServer(stack_folder) as server:
        url = f"{server.url}/stack.mrcs"
        images = pp.open_particles(url, chunk_size=4)
        server.reset_counts()  # the header was read here; what follows is read by the worker processes
        values = cluster_client.compute(images.data).result()
        assert server.count(pattern="/stack.mrcs") >= 1
        assert all(r.startswith("refused") for r in cluster_client.run(_check_on_worker, url).values())
    np.testing.assert_array_equal(values, stack_values)
