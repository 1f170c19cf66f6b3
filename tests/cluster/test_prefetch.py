"""Prefetch for trainers: chunks come back in order, at most ``ahead`` wait on the cluster, nothing leaks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from distributed import Client, futures_of, wait

import perc_platform as pp
from perc_platform.cluster import ClusterChunkReader, prefetch_chunks
from perc_platform.cluster._prefetch import ChunkSegment
from perc_platform.datasets import select_particles
from perc_platform.errors import InputError, ParameterError
from tests.cluster.conftest import CHUNK, ServedStack

pytestmark = pytest.mark.cluster


def _segments(reader: ClusterChunkReader, order: list[int]) -> list[ChunkSegment]:
    return [ChunkSegment(b, np.arange(*reader.blocks[b], dtype=np.int64)) for b in order]


def test_chunks_arrive_in_order_with_at_most_ahead_in_flight(cluster_client: Client, served: ServedStack) -> None:
    images = pp.open_particles(served.stack_url, chunk_size=CHUNK)
    order = list(np.random.default_rng(0).permutation(len(images.data.chunks[0])))
    got = list(prefetch_chunks(images, order, ahead=3))
    assert [len(c) for c in got] == [CHUNK] * len(order)
    for block, chunk in zip(order, got, strict=True):
        np.testing.assert_array_equal(chunk, served.values[block * CHUNK:(block + 1) * CHUNK])

    reader = ClusterChunkReader(images, ahead=3)
    segments = _segments(reader, order)
    reader.prefetch(segments)
    for segment in segments:
        assert reader.in_flight <= 3
        np.testing.assert_array_equal(reader.read(segment), served.values[segment.particles])
    assert reader.in_flight == 0


def test_segments_of_a_selection_and_random_access(cluster_client: Client, served: ServedStack) -> None:
    images = pp.open_particles(served.stack_url, chunk_size=CHUNK)
    picks = np.sort(np.random.default_rng(1).choice(len(served.values), 50, replace=False))
    subset = select_particles(images, picks, chunk_size=7)
    reader = ClusterChunkReader(subset, ahead=2)
    assert reader.source is not None  # reads go straight to the files, only the selected particles
    assert reader.blocks[0] == (0, 7) and reader.blocks[-1][1] == picks.size
    np.testing.assert_array_equal(reader.read(ChunkSegment(1, np.array([8, 10]))), served.values[picks[[8, 10]]])
    shuffled = np.random.default_rng(2).permutation(picks.size)
    np.testing.assert_array_equal(reader.read_indices(shuffled), served.values[picks[shuffled]])

    copy = pickle.loads(pickle.dumps(reader))  # what a DataLoader worker receives
    assert copy.in_flight == 0
    np.testing.assert_array_equal(copy.read(ChunkSegment(0, np.arange(7))), served.values[picks[:7]])


def test_a_persisted_dataset_is_prefetched_from_cluster_memory(cluster_client: Client,
                                                               served: ServedStack) -> None:
    images = pp.open_particles(served.stack_url, chunk_size=CHUNK).persist()
    wait(futures_of(images))
    reads = served.server.count("GET")
    assert ClusterChunkReader(images).source is None  # the generic path: blocks from the cluster's memory
    chunks = list(prefetch_chunks(images, ahead=4))
    np.testing.assert_array_equal(np.concatenate(chunks), served.values)
    assert served.server.count("GET") == reads


def test_abandoned_prefetches_are_released(cluster_client: Client, served: ServedStack) -> None:
    images = pp.open_particles(served.stack_url, chunk_size=CHUNK)
    reader = ClusterChunkReader(images, ahead=2)
    blocks = len(reader.blocks)
    reader.prefetch(_segments(reader, [0, 1]))  # an epoch that stops before reading these
    assert reader.in_flight == 2
    later = _segments(reader, [b % blocks for b in range(2, 2 + 4 * 2 + 2)])
    for segment in later:
        reader.prefetch([segment])
        reader.read(segment)
    assert reader.in_flight == 0
    reader.prefetch(_segments(reader, [3, 4]))
    reader.clear()
    assert reader.in_flight == 0


def test_bad_input_is_refused(cluster_client: Client, served: ServedStack) -> None:
    with pytest.raises(InputError, match="dask-backed"):
        ClusterChunkReader(np.zeros((2, 3, 3)))  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="ahead=0"):
        ClusterChunkReader(pp.open_particles(served.stack_url), ahead=0)
