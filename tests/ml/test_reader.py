"""The chunk-reader seam: the readers agree, scatter reads land right, and a custom reader plugs in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import pytest
import xarray as xr

import perc_platform
from perc_platform.errors import TruncatedFileError
from perc_platform.ml import (
    DaskChunkReader,
    MrcChunkReader,
    NumpyChunkReader,
    ParticleLoader,
    Segment,
    chunk_reader_for,
)
from perc_platform.ml._device import default_threads
from perc_platform.ml._reader import read_indices, read_into
from perc_platform.ml._sharding import cut_segments, piece, segments_of
from perc_platform.storage.policy import grant_host
from perc_platform.testing.factories import write_stack


def test_default_readers(sta: xr.DataArray) -> None:
    assert isinstance(chunk_reader_for(sta), MrcChunkReader)
    assert isinstance(chunk_reader_for(sta * 2), DaskChunkReader)
    assert isinstance(chunk_reader_for(sta.load()), NumpyChunkReader)


@pytest.mark.parametrize("kind", ["mrc", "dask", "numpy"])
def test_readers_agree(sta: xr.DataArray, kind: str) -> None:
    values = sta.values
    images = {"mrc": sta, "dask": sta + 0, "numpy": sta.load()}[kind]
    reader = chunk_reader_for(images)
    seg = Segment(2, np.array([33, 34, 40, 47]))
    np.testing.assert_array_equal(reader.read(seg), values[[33, 34, 40, 47]])
    targets = list(np.empty((4, 64, 64), np.float32))
    read_into(reader, seg, targets)
    np.testing.assert_array_equal(np.stack(targets), values[[33, 34, 40, 47]])
    picks = np.array([200, 3, 17, 3, 150])
    np.testing.assert_array_equal(read_indices(reader, picks), values[picks])


def test_scatter_read_into_a_strided_batch_falls_back(sta: xr.DataArray) -> None:
    reader = chunk_reader_for(sta)
    out = np.zeros((4, 64, 128), np.float32)[:, :, ::2]  # not contiguous: read, then copy
    read_into(reader, Segment(0, np.arange(4)), list(out))
    np.testing.assert_array_equal(out, sta.values[:4])


def test_a_stack_truncated_after_opening_fails_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "stack.mrcs"
    write_stack(path, 40, (32, 32))
    images = perc_platform.open_particles(path, chunk_size=8)
    expected = mrcfile.read(path)
    with open(path, "r+b") as f:  # keep the header and 25 whole images: the rest is gone
        f.truncate(1024 + 25 * 32 * 32 * 4 + 100)
    reader = chunk_reader_for(images)
    targets = list(np.empty((8, 32, 32), np.float32))
    read_into(reader, Segment(1, np.arange(8, 16)), targets)  # wholly before the cut: fine
    np.testing.assert_array_equal(np.stack(targets), expected[8:16])
    with pytest.raises(TruncatedFileError, match="stack.mrcs.*truncated"):
        read_into(reader, Segment(3, np.arange(24, 32)), list(np.empty((8, 32, 32), np.float32)))
    with pytest.raises(TruncatedFileError, match="stack.mrcs"):
        list(ParticleLoader(images, 8, "stream", device="cpu"))


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 2), (16, 8)])
def test_reading_threads_default_to_the_usable_cores(monkeypatch: pytest.MonkeyPatch, cores: int,
                                                    threads: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert default_threads() == threads
    assert default_threads(limit=1) == 1


def test_segments_and_pieces() -> None:
    blocks = ((0, 4), (4, 8), (8, 10))
    segs = segments_of(blocks, np.array([9, 1, 2, 5, 8]))
    assert [(s.block, s.particles.tolist()) for s in segs] == [(0, [1, 2]), (1, [5]), (2, [8, 9])]
    assert [s.particles.tolist() for s in cut_segments(segs, 1, 4)] == [[2], [5], [8]]
    sizes = [piece(219, s, 4)[1] - piece(219, s, 4)[0] for s in range(4)]
    assert sum(sizes) == 219 and max(sizes) - min(sizes) <= 1


class CountingReader:
    """A stand-in for a cluster-prefetching reader: it records prefetch hints and reads."""

    def __init__(self, images: xr.DataArray) -> None:
        self.inner = chunk_reader_for(images)
        self.blocks = self.inner.blocks
        self.hints: list[list[int]] = []
        self.reads: list[int] = []

    def read(self, segment: Segment) -> np.ndarray:
        self.reads.append(segment.block)
        return self.inner.read(segment)

    def prefetch(self, segments: list[Segment]) -> None:
        self.hints.append([s.block for s in segments])

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()


def test_a_custom_reader_plugs_in(sta: xr.DataArray) -> None:
    reader = CountingReader(sta)
    loader = ParticleLoader(sta, 32, "stream", device="cpu", seed=0, reader=reader,
                            buffer_bytes=16 * 64 * 64 * 4)
    seen = [i for b in loader for i in b["index"].tolist()]
    assert sorted(seen) == list(range(219))
    assert sorted(reader.reads) == list(range(14))  # every chunk read once, whole
    assert reader.hints and all(len(h) == 1 for h in reader.hints)
    values = sta.values
    for b in ParticleLoader(sta, 64, "memory", device="cpu", reader=CountingReader(sta)):
        np.testing.assert_array_equal(b["image"].numpy(), values[b["index"].numpy()])


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, perc_platform; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_streaming_over_http_reads_each_chunk_once(shared, server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(shared / "particles")
    grant_host(srv.url)
    remote = perc_platform.open_particles(f"{srv.url}/ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs",
                                          chunk_size=32)
    local = perc_platform.open_particles(shared / "particles" / "ay19102021_L3_position6_ribo_it09_bin8_1.82A.mrcs")
    assert isinstance(chunk_reader_for(remote), MrcChunkReader)
    before = srv.bytes_sent
    loader = ParticleLoader(remote, 50, "stream", device="cpu", seed=2)
    values = local.values
    seen = 0
    for b in loader:
        np.testing.assert_array_equal(b["image"].numpy(), values[b["index"].numpy()])
        seen += len(b["index"])
    assert seen == 220
    assert srv.bytes_sent - before == 220 * 64 * 64 * 4  # every image once, whole chunks, nothing more
