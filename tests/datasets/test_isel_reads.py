"""Plain xarray/dask indexing of a lazy stack reads only the frames indexed (bytes counted at the server)."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pytest

import perc_platform as pp
from perc_platform.datasets import _fused_reads
from perc_platform.storage.policy import grant_host
from perc_platform.testing import write_stack
from tests.io.mrc_helpers import mrcfile_read

N, BOX = 3000, 32
IMAGE_BYTES = BOX * BOX * 4


@pytest.fixture(scope="module")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("isel")
    write_stack(folder / "stack.mrcs", N, (BOX, BOX), seed=5)
    return folder


@pytest.mark.parametrize("chunk_size", [None, 200])  # one chunk for the whole stack; 15 chunks
def test_isel_with_a_list_of_ten_random_particles_moves_only_their_bytes(
        stack_dir: Path, server_factory, chunk_size: int | None) -> None:
    srv = server_factory(stack_dir)
    grant_host(srv.url)
    images = pp.open_particles(f"{srv.url}/stack.mrcs", chunk_size=chunk_size)
    picks = np.random.default_rng(11).choice(N, 10, replace=False)  # unsorted, across chunks
    srv.reset_counts()
    values = images.isel(particle=picks).values
    moved = srv.bytes_sent
    assert moved <= 1.05 * picks.size * IMAGE_BYTES, f"moved {moved / (picks.size * IMAGE_BYTES):.1f}x"
    np.testing.assert_array_equal(values, mrcfile_read(stack_dir / "stack.mrcs")[picks])


def test_isel_of_a_catalog_source_and_a_computed_reduction_stay_exact(stack_dir: Path, server_factory) -> None:
    import intake

    from perc_platform.catalogs import catalog_path

    srv = server_factory(stack_dir)

    grant_host(srv.url)
    cat = intake.open_catalog(str(catalog_path()))
    images = cat.local_particles(urlpath=f"{srv.url}/stack.mrcs").to_dask()["image"]
    picks = [5, 600, 600, 2999, 7]  # with a repeat
    srv.reset_counts()
    (mean,) = dask.compute(images.isel(particle=picks).mean(dim=("y", "x")))
    assert srv.bytes_sent <= 1.05 * 4 * IMAGE_BYTES  # the repeat is read once
    expected = mrcfile_read(stack_dir / "stack.mrcs")[picks].astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(mean.values, expected, rtol=1e-5)
    # slices still go through dask's own getter fusion, exactly as before
    srv.reset_counts()
    np.testing.assert_array_equal(images[10:13].values, mrcfile_read(stack_dir / "stack.mrcs")[10:13])
    assert srv.bytes_sent <= 1.05 * 3 * IMAGE_BYTES


def test_the_optimisation_keeps_a_user_choice_to_switch_array_optimisation_off() -> None:
    with dask.config.set({"array_optimize": False}):
        _fused_reads.install()
        assert dask.config.get("array_optimize") is False


def test_the_installed_optimisation_pickles_with_dask_config() -> None:
    # dask sends its configuration to spawned worker processes (LocalCluster, dask worker --nanny)
    import pickle

    _fused_reads.install()
    again = pickle.loads(pickle.dumps(dask.config.config))
    assert getattr(again["array_optimize"], "perc_fused_reads", False)
