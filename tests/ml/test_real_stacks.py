"""Acceptance 1: on the real stacks, batches equal the DataArray values (after the same transforms computed
independently with NumPy), and labels from the STAR class column are right."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
import xarray as xr

from perc_platform.ml import ParticleDataset, ParticleLoader
from perc_platform.ml import transforms as T
from tests.ml.test_transforms import np_fourier_crop, np_minmax, np_percentile, np_soft_mask, np_standardize


def collect(loader: ParticleLoader) -> list[dict[str, torch.Tensor]]:
    return [dict(b) for b in loader]


@pytest.mark.parametrize("mode", ["stream", "memory"])
def test_batches_equal_the_data_array(sta: xr.DataArray, mode: str) -> None:
    values = sta.values
    loader = ParticleLoader(sta, 32, mode, device="cpu", seed=3, buffer_bytes=3 * 16 * 64 * 64 * 4)
    batches = collect(loader)
    assert len(batches) == len(loader) == 7
    seen = np.concatenate([b["index"].numpy() for b in batches])
    assert sorted(seen.tolist()) == list(range(219))
    for b in batches:
        idx = b["index"].numpy()
        assert b["image"].dtype == torch.float32 and b["image"].device.type == "cpu"
        np.testing.assert_array_equal(b["image"].numpy(), values[idx])
        np.testing.assert_array_equal(b["defocus_u"].numpy(), sta.defocus_u.values[idx])
        np.testing.assert_array_equal(b["angle_psi"].numpy(), sta.angle_psi.values[idx])
        assert "micrograph" not in b  # strings do not become tensors


@pytest.mark.parametrize("mode", ["stream", "memory"])
def test_transformed_batches_equal_numpy(sta: xr.DataArray, mode: str) -> None:
    pipeline = [T.Standardize(), T.CircularMask(radius=24, width=6), T.FourierCrop(40)]
    loader = ParticleLoader(sta, 50, mode, device="cpu", seed=1, transforms=pipeline)
    values = sta.values.astype(np.float64)
    for b in loader:
        x = values[b["index"].numpy()]
        want = np_fourier_crop(np_standardize(x) * np_soft_mask(64, 24, 6), 40)
        assert b["image"].shape[1:] == (40, 40)
        np.testing.assert_allclose(b["image"].numpy(), want, rtol=1e-4, atol=2e-4)


def test_relion_stack_with_normalisation_and_blur(relion31: xr.DataArray) -> None:
    pipeline = [T.PercentileNormalize(95), T.GaussianBlur(1.5), T.MinMax()]
    loader = ParticleLoader(relion31, 2, "stream", device="cpu", seed=0, transforms=pipeline)
    values = relion31.values.astype(np.float64)
    seen = 0
    for b in loader:
        x = np_percentile(values[b["index"].numpy()], 95)
        x = np_minmax(scipy.ndimage.gaussian_filter(x, sigma=(0, 1.5, 1.5), mode="mirror", truncate=4.0))
        np.testing.assert_allclose(b["image"].numpy(), x, rtol=1e-4, atol=1e-5)
        seen += len(b["index"])
    assert seen == 5


def test_star_class_column_labels(relion31: xr.DataArray) -> None:
    loader = ParticleLoader(relion31, 2, "memory", device="cpu", labels="class_number")
    assert loader.classes == (1,)
    for b in loader:
        classes = relion31.class_number.values[b["index"].numpy()]
        assert [loader.classes[c] for c in b["label"].tolist()] == classes.tolist()
        np.testing.assert_array_equal(b["image"].numpy(), relion31.values[b["index"].numpy()])


def test_string_column_labels_on_the_tilt_stack(sta: xr.DataArray) -> None:
    loader = ParticleLoader(sta, 64, "stream", device="cpu", labels="group_name")
    assert len(loader.classes or ()) == 6
    for b in loader:
        names = sta.group_name.values[b["index"].numpy()]
        assert [loader.classes[c] for c in b["label"].tolist()] == names.tolist()  # type: ignore[index]


def test_map_style_dataset(relion31: xr.DataArray) -> None:
    ds = ParticleDataset(relion31, labels="class_number")
    assert len(ds) == 5
    item = ds[3]
    assert item["image"].shape == (256, 256) and int(item["index"]) == 3 and int(item["label"]) == 0
    np.testing.assert_array_equal(item["image"].numpy(), relion31.values[3])
    np.testing.assert_array_equal(ds.batch([4, 0])["image"], relion31.values[[4, 0]])
    ds.materialize()
    np.testing.assert_array_equal(ds[-1]["image"].numpy(), relion31.values[4])
    with pytest.raises(IndexError):
        ds[5]
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    first = next(iter(loader))
    np.testing.assert_array_equal(first["image"].numpy(), relion31.values[:2])
