"""Acceptance 4: the dashboard answers on /status while a job runs, and the task names say what runs."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
from dask.utils import key_split
from distributed import Client, futures_of, get_task_stream, wait

import perc_platform as pp
from perc_platform.cluster import dashboard_url, prefetch_chunks
from perc_platform.storage.policy import grant_host
from perc_platform.testing import LoopbackServer
from tests.cluster.conftest import CHUNK, ServedStack, scheduler_prefixes

pytestmark = pytest.mark.cluster


def test_dashboard_answers_while_a_job_runs_and_names_are_readable(cluster_client: Client,
                                                                   served: ServedStack) -> None:
    with LoopbackServer(served.folder, latency=0.05) as slow:
        grant_host(slow.url)
        images = pp.open_particles(f"{slow.url}/stack.mrcs", chunk_size=6)  # >= 2.5 s of reads
        persisted = cluster_client.persist(images.data)
        futures = futures_of(persisted)
        link = dashboard_url()
        assert link is not None and link.startswith("http://127.0.0.1:") and link.endswith("/status")
        with urllib.request.urlopen(link, timeout=30) as response:
            page = response.read().decode()
            assert response.status == 200
        running = sum(f.status == "pending" for f in futures)
        assert running > 0, "the job ended before the dashboard answered"
        assert "bokeh" in page.lower()
        wait(futures)
        np.testing.assert_array_equal(persisted.compute(), served.values)

    # Reads and prefetches show on the dashboard under their own names (task prefixes are key names).
    images = pp.open_particles(served.stack_url, chunk_size=CHUNK)
    with get_task_stream(cluster_client) as stream:
        chunks = list(prefetch_chunks(images, ahead=3))
        images.values  # noqa: B018 - a plain read
    np.testing.assert_array_equal(np.concatenate(chunks), served.values)
    assert {"perc-read-mrc", "perc-fetch"} <= {key_split(task["key"]) for task in stream.data}
    assert {"perc-read-mrc", "perc-fetch"} <= scheduler_prefixes(cluster_client)  # the progress bars' names
    assert key_split(futures[0].key) == "perc-read-mrc"
