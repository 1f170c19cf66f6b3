"""Acceptance 3 and the worker plugin: datasets shared by name across processes; workers get the config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from distributed import Client

import perc_platform as pp
from perc_platform.cluster import (
    attach_dataset,
    cluster_info,
    list_datasets,
    publish_dataset,
    register_config_plugin,
    unpublish_dataset,
)
from perc_platform.config import get_config
from perc_platform.datasets import select_particles
from perc_platform.errors import DataNotFoundError, ParameterError
from tests.cluster.conftest import CHUNK, DaskProcesses, ServedStack

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]

ATTACH = textwrap.dedent("""
    import json, sys
    from perc_platform.cluster import attach_dataset, close_client
    images = attach_dataset(sys.argv[1])
    values = images.values
    print(json.dumps({"shape": list(values.shape), "sum": float(values.astype("float64").sum()),
                      "first": float(values[0, 0, 0]), "class_number": images["class_number"].values.tolist(),
                      "pixel_size": images.attrs["pixel_size"]}))
    close_client()
""")


def test_a_published_slice_is_attached_from_another_process_without_reading_files(
        cluster_client: Client, dask_cluster: DaskProcesses, served: ServedStack) -> None:
    images = pp.open_particles(served.stack_url, star=served.star_url, chunk_size=CHUNK)
    picks = np.flatnonzero(images["class_number"].values == 2)
    train = select_particles(images, picks)
    publish_dataset(train, "cluster-test-class-2")
    try:
        assert "cluster-test-class-2" in list_datasets()
        with pytest.raises(ParameterError, match="already published"):
            publish_dataset(train, "cluster-test-class-2")
        reads = served.server.count("GET")
        assert reads > 0  # the publisher read the particles once, on the workers

        env = {**os.environ, "PERC_SCHEDULER_ADDRESS": dask_cluster.address}
        result = subprocess.run([sys.executable, "-c", ATTACH, "cluster-test-class-2"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        got = json.loads(result.stdout.strip().splitlines()[-1])
        want = served.values[picks]
        assert got["shape"] == list(want.shape)
        np.testing.assert_allclose(got["sum"], want.astype(np.float64).sum(), rtol=1e-9)
        assert got["first"] == float(want[0, 0, 0])
        assert got["class_number"] == [2] * picks.size
        assert got["pixel_size"] == images.attrs["pixel_size"]
        assert served.server.count("GET") == reads, "attaching read the files again"

        attached = attach_dataset("cluster-test-class-2")  # in this process too
        np.testing.assert_array_equal(attached.values, want)
        assert served.server.count("GET") == reads
    finally:
        unpublish_dataset("cluster-test-class-2")
    assert "cluster-test-class-2" not in list_datasets()
    with pytest.raises(DataNotFoundError, match="cluster-test-class-2"):
        attach_dataset("cluster-test-class-2")


def test_every_worker_gets_the_platform_config(cluster_client: Client, isolated_cache: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def worker_config() -> dict[str, object]:
        from perc_platform.config import get_config

        return get_config().model_dump(exclude={"scheduler_address"})

    mine = get_config().model_dump(exclude={"scheduler_address"})
    seen = cluster_client.run(worker_config)
    assert len(seen) == 2 and all(cfg == mine for cfg in seen.values())
    assert all(Path(str(cfg["cache_dir"])) == isolated_cache for cfg in seen.values())
    assert cluster_info(cluster_client)["config_plugin"]

    # A changed setting reaches the workers when the plugin is registered again (get_client does it).
    monkeypatch.setenv("PERC_EMPIAR_FILES_URL", "http://mirror.lab.example/empiar")
    monkeypatch.setenv("PERC_READ_TIMEOUT", "33")
    register_config_plugin(cluster_client)
    seen = cluster_client.run(worker_config)
    assert {cfg["empiar_files_url"] for cfg in seen.values()} == {"http://mirror.lab.example/empiar"}
    assert {cfg["read_timeout"] for cfg in seen.values()} == {33.0}
    assert all(os.path.isdir(str(cfg["cache_dir"])) for cfg in seen.values())
