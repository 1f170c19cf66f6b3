"""The deploy/ files run: each worker command they render joins a real ``dask scheduler`` on 127.0.0.1.

Every deployment's worker command (the SLURM job script dask-jobqueue writes from the profile, the compose
worker service, the Kubernetes DaskCluster worker container) is started here as a process, exactly as
rendered except for what the platform cannot provide on this machine: the scheduler's address (ours on
127.0.0.1), the dashboard address (127.0.0.1:0 rather than a fixed port on every interface) and scratch
folders (a temporary one). The worker must connect, report the settings the file asked for, and stop.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dask.utils import parse_timedelta
from distributed import Client

from perc_platform.cluster import slurm_cluster
from tests.cluster.conftest import _free_port, _stop

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path_factory.mktemp("scheduler") / "scheduler.log").open("wb")
    proc = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                             "--dashboard-address", "127.0.0.1:0", "--no-show"], stdout=log, stderr=log)
    address = f"tcp://127.0.0.1:{port}"
    try:
        with Client(address, timeout="60s", set_as_default=False):
            pass
        yield address
    finally:
        _stop(proc)
        log.close()


def _run_worker(command: str, address: str, tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Start ``command`` (a shell line), wait until it joins ``address``; return its lifetime settings; stop it."""
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmp_path),
                   **(env or {})}
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], env=environment, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        with Client(address, timeout="60s", set_as_default=False) as client:
            deadline = time.monotonic() + 90
            while not client.scheduler_info()["workers"]:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"the worker did not join (exit {proc.returncode}): {command}\n"
                                f"{(tmp_path / 'worker.log').read_text()[-3000:]}")
                time.sleep(0.2)
            facts = client.run(lambda dask_worker: {"lifetime": dask_worker.lifetime or 0.0,
                                                    "nthreads": float(dask_worker.state.nthreads)})
            return next(iter(facts.values()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        _stop(proc)
        log.close()
        assert proc.returncode is not None


def _local(args: list[str], tmp_path: Path) -> list[str]:
    """``args`` with the dashboard on 127.0.0.1:0 and scratch in ``tmp_path``; """
    out = list(args)
    for flag, value in (("--dashboard-address", "127.0.0.1:0"), ("--local-directory", str(tmp_path))):
        if flag in out:
            out[out.index(flag) + 1] = value
    return out


def test_the_slurm_job_script_worker_joins_a_scheduler_and_leaves_before_the_walltime(
        scheduler: str, tmp_path: Path) -> None:
    profile = DEPLOY / "slurm" / "perc-slurm.yaml"
    cluster = slurm_cluster(profile, share_config=False,
                            scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"})
    try:
        script = cluster.job_script()
        own = cluster.scheduler_address
    finally:
        cluster.close()
    command = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    args = _local(shlex.split(command.replace(own, scheduler)), tmp_path)
    # $TMPDIR (the profile's local-directory) is expanded by the job's shell, as on the cluster.
    line = " ".join(a if a.startswith("$") else shlex.quote(a) for a in args)
    facts = _run_worker(line, scheduler, tmp_path)
    walltime = sum(int(x) * 60 ** i for i, x in enumerate(reversed(
        yaml.safe_load(profile.read_text())["jobqueue"]["slurm"]["walltime"].split(":"))))
    extra = args[args.index("--lifetime"):]
    lifetime, stagger = parse_timedelta(extra[1]), parse_timedelta(extra[3])
    assert lifetime - stagger <= facts["lifetime"] <= lifetime + stagger
    assert lifetime + stagger < walltime - 5 * 60, "workers must leave well before SLURM kills the job"
    assert facts["nthreads"] == 8


def test_the_compose_worker_command_joins_a_scheduler(scheduler: str, tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "docker" / "compose.yaml").read_text())
    args = list(compose["services"]["worker"]["command"])
    assert args[2] == "tcp://scheduler:8786"
    args[2] = scheduler
    facts = _run_worker(shlex.join(_local(args, tmp_path)), scheduler, tmp_path)
    assert facts["nthreads"] == float(args[args.index("--nthreads") + 1])


def test_the_kubernetes_worker_container_joins_a_scheduler(scheduler: str, tmp_path: Path) -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "perc-cluster.yaml").read_text()) if d]
    cluster = next(d for d in docs if d["kind"] == "DaskCluster")
    args = [str(a) for a in cluster["spec"]["worker"]["spec"]["containers"][0]["args"]]
    # The operator sets these two variables; Kubernetes expands $(NAME) in args before the container starts.
    env = {"DASK_SCHEDULER_ADDRESS": scheduler, "DASK_WORKER_NAME": "perc-worker-0"}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in args]
    if "--dashboard-address" in args:
        args[args.index("--dashboard-address") + 1] = "127.0.0.1:0"
    facts = _run_worker(shlex.join(args), scheduler, tmp_path, env=env)
    assert facts["nthreads"] == float(args[args.index("--nthreads") + 1])
