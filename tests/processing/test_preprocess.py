"""Preprocessing on the cluster into Zarr: vs an in-memory NumPy reference, resume, memory, catalog."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import dask.array as da
import intake
import numpy as np
import psutil
import pytest
import xarray as xr
from distributed import Client

from perc_platform import open_particles
from perc_platform.catalogs import catalog_path
from perc_platform.errors import FormatError, ParameterError
from perc_platform.processing import fourier_crop, open_preprocessed, preprocess, store_progress, window_mask
from perc_platform.processing._images import normalise_block
from perc_platform.testing import write_stack, write_star


def _reference(images: np.ndarray, box: int) -> np.ndarray:
    """In-memory NumPy reference written from REFERENCE.md and cryoDRGN, for the default parameters."""
    n = images.shape[-1]
    grid = np.linspace(-1, 1, n, endpoint=False)
    r = np.sqrt(grid[None, :] ** 2 + grid[:, None] ** 2)
    windowed = images.astype(np.float64) * np.minimum(1, np.maximum(0, 1 - (r - 0.85) / (0.99 - 0.85)))
    centred = np.fft.fftshift(np.fft.fft2(windowed), axes=(-2, -1))
    lo = n // 2 - box // 2
    small = np.fft.ifft2(np.fft.ifftshift(centred[:, lo:lo + box, lo:lo + box], axes=(-2, -1))).real
    small *= (box / n) ** 2
    g = np.linspace(-1, 1, box, endpoint=False)
    outside = np.sqrt(g[None, :] ** 2 + g[:, None] ** 2) > 0.85
    mean = np.array([im[outside].mean() for im in small])[:, None, None]
    sd = np.array([im[outside].std() for im in small])[:, None, None]
    return ((small - mean) / sd).astype(np.float32)


def _wait_until_idle(client: Client) -> None:
    """Wait until no worker executes a task (cancelled tasks run to their end on the worker)."""
    def executing(dask_worker: Any) -> int:
        return len(dask_worker.state.executing)

    deadline = time.monotonic() + 120
    while sum(client.run(executing).values()) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> xr.DataArray:
    folder = tmp_path_factory.mktemp("stack")
    write_stack(folder / "p.mrcs", 300, (128, 128), seed=3, block=100)
    write_star(folder / "p.star", "p.mrcs", 300, pixel_size=1.5)
    return open_particles(folder / "p.mrcs", star=folder / "p.star", chunk_size=70)


def test_fourier_crop_keeps_band_limited_images_and_pixel_values() -> None:
    n, d = 64, 32
    j, i = np.mgrid[0:n, 0:n]
    image = 3.0 + np.cos(2 * np.pi * (3 * i + 5 * j) / n) + 0.5 * np.sin(2 * np.pi * (7 * i - 2 * j) / n)
    small = fourier_crop(image[None], d)[0]
    jj, ii = np.mgrid[0:d, 0:d] * (n // d)
    expected = 3.0 + np.cos(2 * np.pi * (3 * ii + 5 * jj) / n) + 0.5 * np.sin(2 * np.pi * (7 * ii - 2 * jj) / n)
    np.testing.assert_allclose(small, expected, atol=1e-12)
    with pytest.raises(ParameterError, match="larger"):
        fourier_crop(image[None], 65)


def test_window_and_normalisations() -> None:
    mask = window_mask(64)
    assert mask[32, 32] == 1.0 and mask[0, 0] == 0.0 and mask.min() >= 0 and mask.max() <= 1
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, (4, 32, 32))
    standard = normalise_block(x, "standard")
    np.testing.assert_allclose(standard.mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(standard.std(axis=(1, 2)), 1, atol=1e-12)
    scaled = normalise_block(x, "percentile")
    assert scaled.max() == 1.0 and scaled.min() >= -1.0
    for image, out in zip(x, scaled, strict=True):
        p95 = np.percentile(image[image > 0], 95)
        np.testing.assert_allclose(out, np.clip(image / p95, -1, 1))
    with pytest.raises(ParameterError, match="normalise"):
        normalise_block(x, "zscore")  # type: ignore[arg-type]


@pytest.mark.cluster
def test_preprocess_matches_the_in_memory_reference(client: Client, stack: xr.DataArray, tmp_path: Path) -> None:
    result = preprocess(stack, tmp_path / "out.zarr", box=64, chunk_size=64, mrcs=tmp_path / "out.mrcs")
    assert isinstance(result.data, da.Array) and result.data.chunks[0] == (64, 64, 64, 64, 44)
    assert result.shape == (300, 64, 64) and result.attrs["pixel_size"] == pytest.approx(3.0)
    subset = [0, 7, 63, 64, 150, 299]
    expected = _reference(stack.values[subset], 64)
    np.testing.assert_allclose(result.values[subset], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result["defocus_u"].values, stack["defocus_u"].values)
    assert list(result["image_name"].values[:2]) == list(stack["image_name"].values[:2])
    # The optional .mrcs holds the same images and opens with its STAR file.
    written = open_particles(tmp_path / "out.mrcs", star=tmp_path / "out.star")
    np.testing.assert_array_equal(written.values, result.values)
    assert written.attrs["pixel_size"] == pytest.approx(3.0)


@pytest.mark.cluster
def test_a_seeded_random_subset(client: Client, stack: xr.DataArray, tmp_path: Path) -> None:
    """``random=N`` keeps N particles drawn with the seed (sorted); the store says which ones."""
    result = preprocess(stack, tmp_path / "sub.zarr", box=64, chunk_size=32, random=50, seed=7)
    chosen = np.sort(np.random.default_rng(7).choice(300, size=50, replace=False))
    np.testing.assert_array_equal(result["source_index"].values, chosen)
    np.testing.assert_allclose(result.values, _reference(stack.values[chosen], 64), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(result["image_name"].values, stack["image_name"].values[chosen])
    with pytest.raises(ParameterError, match="other parameters"):
        preprocess(stack, tmp_path / "sub.zarr", box=64, chunk_size=32, random=50, seed=8)
    with pytest.raises(ParameterError, match="random=400"):
        preprocess(stack, tmp_path / "big.zarr", random=400)


@pytest.mark.cluster
def test_resume_after_an_interruption_skips_finished_chunks(client: Client, stack: xr.DataArray,
                                                            tmp_path: Path) -> None:
    store = tmp_path / "out.zarr"
    seen: list[int] = []

    def interrupt(done: int, total: int) -> None:
        seen.append(done)
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        preprocess(stack, store, box=64, chunk_size=30, progress=interrupt)
    _wait_until_idle(client)  # chunks already running when interrupted finish and write their markers
    done, total = store_progress(store)
    assert 2 <= done < total == 10
    with pytest.raises(FormatError, match="incomplete"):
        open_preprocessed(store)
    markers = {p.name: p.stat().st_mtime_ns for p in (store / ".perc-done").iterdir()}
    progress: list[tuple[int, int]] = []
    result = preprocess(stack, store, box=64, chunk_size=30, progress=lambda d, t: progress.append((d, t)))
    assert len(progress) == total - done and progress[-1] == (total, total)
    for name, mtime in markers.items():  # finished chunks were not redone
        assert (store / ".perc-done" / name).stat().st_mtime_ns == mtime
    assert f"computed {total - done} of {total} chunks ({done} already done)" in result.attrs["history"]
    np.testing.assert_allclose(result.values, _reference(stack.values, 64), rtol=1e-5, atol=1e-5)
    with pytest.raises(ParameterError, match="other parameters"):
        preprocess(stack, store, box=32, chunk_size=30)
    again = preprocess(stack, store, box=32, chunk_size=30, overwrite=True)
    assert again.shape == (300, 32, 32)


@pytest.mark.cluster
def test_client_memory_stays_flat(client: Client, tmp_path: Path) -> None:
    n = 4096  # 256 MiB of 128 x 128 float32
    write_stack(tmp_path / "big.mrcs", n, (128, 128), block=512)
    images = open_particles(tmp_path / "big.mrcs")
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    running = True

    def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = preprocess(images, tmp_path / "big.zarr", box=64)
    finally:
        running = False
        sampler.join()
    assert result.shape == (n, 64, 64)
    growth_mb = (peak - baseline) / 2**20
    assert growth_mb < 64, f"client RSS grew by {growth_mb:.0f} MB while preprocessing 256 MB"


@pytest.mark.cluster
def test_the_store_opens_through_the_catalog(client: Client, stack: xr.DataArray, tmp_path: Path) -> None:
    store = tmp_path / "cat.zarr"
    preprocess(stack.isel(particle=slice(0, 40)), store, box=32, normalise="standard")
    cat = intake.open_catalog(str(catalog_path()))
    ds = cat.simulated.preprocessed(urlpath=str(store)).to_dask()
    images = ds["image"]
    assert images.dims == ("particle", "y", "x") and images.shape == (40, 32, 32)
    assert isinstance(images.data, da.Array)
    np.testing.assert_allclose(images.values.std(axis=(1, 2)), 1.0, rtol=1e-5)
    assert ds.attrs["pixel_size"] == pytest.approx(6.0)


def test_bad_requests_are_refused(stack: xr.DataArray, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="box"):
        preprocess(stack, tmp_path / "a.zarr", box=256)
    with pytest.raises(ParameterError, match="normalise"):
        preprocess(stack, tmp_path / "a.zarr", box=64, normalise="zscore")  # type: ignore[arg-type]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("not a store")
    with pytest.raises(FormatError, match="not a perc preprocessing store"):
        preprocess(stack, tmp_path / "other", box=64, overwrite=True)
    assert (tmp_path / "other" / "file.txt").exists()  # never deleted, even with overwrite
