"""Acceptance 1 and 2: a catalog pipeline end to end on a real multi-process cluster, also when a worker dies.

Remote stack (loopback HTTP) -> intake catalog -> lazy dataset -> reductions and a torch epoch, computed on
``dask scheduler`` + two ``dask worker`` processes and compared with the same computation run locally.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import dask
import intake
import numpy as np
import pytest
import torch
import xarray as xr
from dask.utils import key_split
from distributed import Client, get_task_stream

from perc_platform.cluster import ClusterChunkReader
from perc_platform.storage.policy import grant_host
from perc_platform.testing import LoopbackServer
from tests.cluster.conftest import CHUNK, DaskProcesses, ServedStack, scheduler_prefixes

pytestmark = pytest.mark.cluster


def _catalog(folder: Path, stack_url: str, star_url: str, chunk: int = CHUNK) -> Path:
    path = folder / "lab.yaml"
    path.write_text(f"""sources:
  particles:
    description: a lab's particle stack on its HTTP mirror
    driver: mrc_stack
    args:
      urlpath: "{stack_url}"
      star: "{star_url}"
      chunk_size: {chunk}
""")
    return path


def _reductions(images: xr.DataArray) -> tuple[xr.DataArray, ...]:
    return (images.mean("particle"), images.std(("y", "x")),
            images.mean(("y", "x")).groupby("class_number").mean())


def _epoch(images: xr.DataArray, reader: object | None) -> tuple[np.ndarray, np.ndarray]:
    from perc_platform.ml import ParticleLoader

    loader = ParticleLoader(images, batch_size=64, mode="stream", device="cpu", seed=3, reader=reader,
                            buffer_bytes=4 * CHUNK * images.shape[1] * images.shape[2] * 4)
    batches = list(loader)
    assert all(isinstance(b["image"], torch.Tensor) for b in batches)
    return (torch.cat([b["image"] for b in batches]).numpy(), torch.cat([b["index"] for b in batches]).numpy())


def test_catalog_pipeline_on_the_cluster_equals_local(cluster_client: Client, served: ServedStack,
                                                      tmp_path: Path) -> None:
    cat = intake.open_catalog(str(_catalog(tmp_path, served.stack_url, served.star_url)))
    images = cat.particles.to_dask()["image"]
    assert images.data.npartitions == len(served.values) // CHUNK

    on_cluster = dask.compute(*_reductions(images))  # the platform's client is the default scheduler
    # The reads show under their own name in the dashboard's task stream, also in a lone reduction (dask
    # would otherwise fuse them into the reduction's first step and name the tasks after it).
    with get_task_stream(cluster_client) as stream:
        images.mean("particle").compute()
    assert "perc-read-mrc" in {key_split(task["key"]) for task in stream.data}
    with dask.config.set(scheduler="synchronous"):
        local = dask.compute(*_reductions(images))
    for got, want in zip(on_cluster, local, strict=True):
        xr.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(on_cluster[0].values, served.values.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(on_cluster[1].values, served.values.std(axis=(1, 2)), rtol=1e-5)

    # One torch epoch with chunks prefetched on the cluster equals the same epoch read in this process.
    reader = ClusterChunkReader(images, ahead=4, client=cluster_client)
    got_images, got_index = _epoch(images, reader)
    want_images, want_index = _epoch(images, None)
    np.testing.assert_array_equal(got_index, want_index)
    np.testing.assert_array_equal(got_images, want_images)
    assert sorted(got_index.tolist()) == list(range(len(served.values)))
    np.testing.assert_array_equal(got_images, served.values[got_index])
    assert reader.in_flight == 0
    assert "perc-fetch" in scheduler_prefixes(cluster_client)


def _busy_worker(client: Client, name: str, done: int = 0, timeout: float = 20) -> str:
    """A worker running or holding tasks whose prefix contains ``name``, once ``done`` of them have finished
    in a job still running (fused tasks carry every fused name, e.g. ``mean_chunk-perc-read-mrc``)."""
    def activity(dask_scheduler: Any) -> tuple[int, dict[str, int]]:
        finished = 0
        for tg in dask_scheduler.task_groups.values():
            states = tg.states
            if name in tg.name and states["processing"] + states["queued"] + states["waiting"]:
                finished += states["memory"] + states["released"] + states["forgotten"]
        busy: dict[str, int] = {}
        for ts in dask_scheduler.tasks.values():
            holders = [ts.processing_on] if ts.state == "processing" else list(ts.who_has or ())
            if name in ts.group.name:
                for ws in holders:
                    if ws is not None:
                        busy[ws.address] = busy.get(ws.address, 0) + 1
        return finished, busy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished, busy = client.run_on_scheduler(activity)
        if finished >= done and busy:
            return max(busy, key=lambda a: busy[a])
        time.sleep(0.02)
    raise AssertionError(f"no worker busy with {name} tasks within {timeout} s")


def _sigkill(client: Client, address: str) -> str:
    pid = int(client.run(os.getpid, workers=[address])[address])
    os.kill(pid, signal.SIGKILL)
    return address


def _gone(client: Client, address: str, timeout: float = 20) -> bool:
    """True once the scheduler has dropped the worker at ``address``."""
    deadline = time.monotonic() + timeout
    while address in client.scheduler_info(n_workers=-1)["workers"]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("stage", ["reductions", "torch-epoch"])
def test_sigkill_of_a_worker_mid_computation_gives_the_right_result(
        cluster_client: Client, dask_cluster: DaskProcesses, served: ServedStack, tmp_path: Path,
        stage: str) -> None:
    with LoopbackServer(served.folder, latency=0.02) as slow:  # ~1 s of reads: time to kill in the middle
        grant_host(slow.url)
        url = slow.url
        cat = intake.open_catalog(str(_catalog(tmp_path, f"{url}/stack.mrcs", f"{url}/particles.star", chunk=10)))
        images = cat.particles.to_dask()["image"]
        if stage == "reductions":
            future = cluster_client.compute(images.mean(("y", "x")).sum())
            victim = _busy_worker(cluster_client, "perc-read-mrc", done=6)
            assert future.status == "pending"
            _sigkill(cluster_client, victim)
            result = float(future.result(timeout=60))
            np.testing.assert_allclose(result, served.values.mean(axis=(1, 2)).sum(), rtol=1e-5)
        else:
            from perc_platform.ml import ParticleLoader

            reader = ClusterChunkReader(images, ahead=6, client=cluster_client)
            loader = ParticleLoader(images, batch_size=32, mode="stream", device="cpu", seed=5, reader=reader,
                                    buffer_bytes=64 * images.shape[1] * images.shape[2] * 4)
            seen, victim = [], ""
            for i, batch in enumerate(loader):
                seen.append((batch["index"].numpy(), batch["image"].numpy()))
                if i == 2:
                    victim = _sigkill(cluster_client, _busy_worker(cluster_client, "perc-fetch"))
            assert victim and len(seen) == len(loader)
            index = np.concatenate([s[0] for s in seen])
            assert sorted(index.tolist()) == list(range(len(served.values)))
            np.testing.assert_array_equal(np.concatenate([s[1] for s in seen]), served.values[index])
        assert _gone(cluster_client, victim), "the killed worker is still registered"
