"""A real Dask cluster for the cluster tests: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

The cluster and the served data are started once for the folder; each test connects the platform to it
through ``PERC_SCHEDULER_ADDRESS`` (``cluster_client``) and disconnects at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from distributed import Client

from perc_platform.cluster import close_client, get_client
from perc_platform.storage.policy import grant_host
from perc_platform.testing import LoopbackServer, write_stack, write_star

DASK = Path(sys.executable).with_name("dask")
N, BOX, CHUNK = 600, 32, 40
WORKERS = 2


@dataclasses.dataclass
class DaskProcesses:
    """The scheduler and worker processes of the test cluster."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    log_dir: Path

    def wait_for_workers(self, n: int = WORKERS, timeout: float = 30) -> None:
        with Client(self.address, set_as_default=False) as client:
            client.wait_for_workers(n, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    """SIGTERM the processes (ours), wait for them together, SIGKILL what is left after 10 s."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in running:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="package")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskProcesses]:
    """``dask scheduler`` + two ``dask worker`` processes (1 thread, 1 GiB each) from this environment."""
    folder = tmp_path_factory.mktemp("dask-cluster")
    env = {k: v for k, v in os.environ.items() if k != "PERC_SCHEDULER_ADDRESS"}
    env["PERC_CACHE_DIR"] = str(folder / "worker-cache")
    scheduler_file = folder / "scheduler.json"
    logs = []

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process below
        logs.append(log)
        return subprocess.Popen([str(DASK), *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)

    # All three start at once (the workers wait for the scheduler file), and stop at once.
    scheduler = spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                      f"127.0.0.1:{_free_port()}", "--scheduler-file", str(scheduler_file))
    workers = [spawn(f"worker-{i}", "worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                     "--nthreads", "1", "--memory-limit", "1GiB", "--dashboard-address", "127.0.0.1:0",
                     "--name", f"worker-{i}", "--local-directory", str(folder / f"worker-{i}"))
               for i in range(WORKERS)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            if scheduler.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dask scheduler did not start: {(folder / 'scheduler.log').read_text()}")
            time.sleep(0.05)
        cluster = DaskProcesses(json.loads(scheduler_file.read_text())["address"], scheduler, workers, folder)
        cluster.wait_for_workers(timeout=60)
        yield cluster
    finally:
        _stop(*workers)
        _stop(scheduler)
        for log in logs:
            log.close()


@pytest.fixture
def cluster_client(dask_cluster: DaskProcesses, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The platform's client, connected to the test cluster through PERC_SCHEDULER_ADDRESS."""
    dask_cluster.wait_for_workers()
    monkeypatch.setenv("PERC_SCHEDULER_ADDRESS", dask_cluster.address)
    close_client()
    client = get_client()
    try:
        yield client
    finally:
        close_client()


@dataclasses.dataclass
class ServedStack:
    """A particle stack with its STAR file on a loopback HTTP server, and its values read by mrcfile."""

    folder: Path
    server: LoopbackServer
    values: np.ndarray

    @property
    def stack_url(self) -> str:
        return f"{self.server.url}/stack.mrcs"

    @property
    def star_url(self) -> str:
        return f"{self.server.url}/particles.star"


@pytest.fixture(scope="package")
def stack_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cluster-data")
    write_stack(folder / "stack.mrcs", N, (BOX, BOX), seed=11)
    write_star(folder / "particles.star", "stack.mrcs", N, seed=11)
    return folder


@pytest.fixture(scope="package")
def stack_values(stack_folder: Path) -> np.ndarray:
    with mrcfile.open(stack_folder / "stack.mrcs", permissive=True) as mrc:
        return np.array(mrc.data)


@pytest.fixture(scope="package")
def _package_server(stack_folder: Path) -> Iterator[LoopbackServer]:
    with LoopbackServer(stack_folder) as server:
        yield server


@pytest.fixture
def served(stack_folder: Path, stack_values: np.ndarray, _package_server: LoopbackServer) -> ServedStack:
    """The stack over HTTP (its host allowed by the network policy), request counts reset for this test."""
    _package_server.reset_counts()
    grant_host(_package_server.url)
    return ServedStack(stack_folder, _package_server, stack_values)


def scheduler_prefixes(client: Client) -> set[str]:
    """Task prefixes the scheduler knows (what the dashboard's progress and task stream show)."""
    return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))

