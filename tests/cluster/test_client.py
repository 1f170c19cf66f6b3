"""``get_client``: nothing at import, one client per process, the configured scheduler when there is one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from distributed import Client

from perc_platform.cluster import get_client
from tests.cluster.conftest import DaskProcesses

pytestmark = pytest.mark.cluster

IMPORT_ONLY = """
import psutil, perc_platform, perc_platform.cluster
from distributed.client import _get_global_client
assert _get_global_client() is None, "a client exists after import"
assert perc_platform.cluster.dashboard_url() is None
assert psutil.Process().children(recursive=True) == [], "processes started at import"
print("ok")
"""


def test_importing_starts_nothing() -> None:
    result = subprocess.run([sys.executable, "-c", IMPORT_ONLY], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_get_client_connects_to_the_configured_scheduler_and_reuses_it(cluster_client: Client,
                                                                       dask_cluster: DaskProcesses) -> None:
    assert cluster_client.scheduler is not None
    assert cluster_client.scheduler.address == dask_cluster.address
    assert get_client() is cluster_client
    assert len(cluster_client.scheduler_info(n_workers=-1)["workers"]) == 2
