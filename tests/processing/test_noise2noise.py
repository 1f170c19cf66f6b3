"""Noise2Noise pairs from movies, patches and percentile normalisation."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch
import xarray as xr
from scipy.ndimage import gaussian_filter

from perc_platform.errors import ParameterError
from perc_platform.processing import extract_patches, noise2noise_pairs, normalise_percentile


def _movies(n_movies: int = 3, frames: int = 9, size: int = 96, seed: int = 0) -> tuple[xr.DataArray, np.ndarray]:
    """Movies whose frames share one smooth signal and carry independent Gaussian noise."""
    rng = np.random.default_rng(seed)
    signal = np.stack([gaussian_filter(rng.standard_normal((size, size)), 4) * 60 + 5 for _ in range(n_movies)])
    noise = rng.standard_normal((n_movies, frames, size, size)) * 2.0
    data = da.from_array(signal[:, None] + noise, chunks=(1, frames, size, size))
    return xr.DataArray(data, dims=("movie", "frame", "y", "x"), attrs={"pixel_size": 1.0}), signal


def test_odd_and_even_averages_share_the_signal_and_not_the_noise() -> None:
    movies, signal = _movies()
    pairs = noise2noise_pairs(movies)
    assert set(pairs.data_vars) == {"input", "target"}
    assert isinstance(pairs["input"].data, da.Array)  # lazy
    odd, even = pairs["input"].values, pairs["target"].values
    np.testing.assert_allclose(odd, movies.values[:, 0:8:2].mean(axis=1), rtol=1e-5, atol=1e-5)  # frame 9 unused
    np.testing.assert_allclose(even, movies.values[:, 1:8:2].mean(axis=1), rtol=1e-5, atol=1e-5)
    noise_odd, noise_even = (odd - signal).ravel(), (even - signal).ravel()
    limit = 4 / np.sqrt(noise_odd.size)
    assert abs(np.corrcoef(noise_odd, noise_even)[0, 1]) < limit
    assert np.var(noise_odd) == pytest.approx(4.0 / 4, rel=0.05)  # 4 frames of variance 4 each
    assert np.corrcoef(odd.ravel(), even.ravel())[0, 1] > 0.9
    one = noise2noise_pairs(movies.isel(movie=0))  # a single (frame, y, x) movie
    assert one["input"].dims == ("movie", "y", "x") and one.sizes["movie"] == 1
    with pytest.raises(ParameterError, match="two frames"):
        noise2noise_pairs(movies.isel(frame=slice(0, 1)))


def test_patches_tile_as_requested_and_reject_flat_ones() -> None:
    rng = np.random.default_rng(1)
    images = xr.DataArray(rng.standard_normal((2, 128, 96)), dims=("micrograph", "y", "x"))
    tiles = extract_patches(images, 32)
    assert tiles.dims == ("patch", "y", "x") and tiles.shape == (2 * 4 * 3, 32, 32)
    rebuilt = np.zeros_like(images.values)
    for patch, s, y0, x0 in zip(tiles.values, tiles.source.values, tiles.y0.values, tiles.x0.values, strict=True):
        rebuilt[s, y0:y0 + 32, x0:x0 + 32] = patch
    np.testing.assert_array_equal(rebuilt, images.values)
    overlapping = extract_patches(images, 32, stride=16)
    assert overlapping.sizes["patch"] == 2 * 7 * 5
    assert sorted(set(overlapping.y0.values.tolist())) == list(range(0, 97, 16))
    flat = images.values.copy()
    flat[0, :64, :] = 0.5  # an empty region: its patches have no variance
    kept = extract_patches(images.copy(data=flat), 32, min_std=0.1)
    assert kept.sizes["patch"] == 2 * 12 - 2 * 3
    assert not ((kept.source.values == 0) & (kept.y0.values < 64)).any()
    fraction = extract_patches(images, 32, reject_fraction=0.25)
    assert fraction.sizes["patch"] == 18


def test_pairs_are_cut_at_the_same_places_and_feed_torch() -> None:
    movies, _ = _movies(2, 6, 64)
    pairs = normalise_percentile(noise2noise_pairs(movies)["input"])
    assert isinstance(pairs.data, da.Array)
    ds = noise2noise_pairs(movies)
    patches = extract_patches(ds, 32, stride=32, min_std=0.0)
    assert patches.sizes["patch"] == 2 * 4
    for k in range(patches.sizes["patch"]):
        s, y0, x0 = (int(patches[c].values[k]) for c in ("source", "y0", "x0"))
        np.testing.assert_array_equal(patches["target"].values[k], ds["target"].values[s, y0:y0 + 32, x0:x0 + 32])
        np.testing.assert_array_equal(patches["input"].values[k], ds["input"].values[s, y0:y0 + 32, x0:x0 + 32])
    batch = torch.utils.data.TensorDataset(torch.from_numpy(patches["input"].values),
                                           torch.from_numpy(patches["target"].values))
    x, y = batch[0]
    assert x.shape == y.shape == (32, 32)


def test_percentile_normalisation_clips() -> None:
    rng = np.random.default_rng(2)
    images = xr.DataArray(rng.gamma(2.0, 3.0, (3, 40, 40)) - 1.0, dims=("micrograph", "y", "x"))
    out = normalise_percentile(images)
    for image, scaled in zip(images.values, out.values, strict=True):
        p95 = np.percentile(image[image > 0], 95)
        np.testing.assert_allclose(scaled, np.clip(image / p95, -1, 1), rtol=1e-6)
        assert 0.03 < np.mean(scaled == 1.0) < 0.07  # the top 5% of positive values clip at 1
    with pytest.raises(ParameterError, match="percentile"):
        normalise_percentile(images, q=0)
