"""Acceptance 5: the CUDA paths (tests marked ``gpu``) -- pinned host batches, non_blocking copies on a side
stream with the next batch prefetched, transforms on the device -- give what the CPU path gives. Skipped without
CUDA; the feeder test also runs on the CPU, through the same code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from perc_platform.ml import ParticleLoader
from perc_platform.ml import transforms as T
from perc_platform.ml._device import DeviceFeeder

PIPELINE = [T.Standardize(), T.RandomFlip(), T.RandomRotate90(), T.CircularMask(), T.GaussianBlur(1.0),
            T.FourierCrop(32)]


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["stream", "memory"])
@pytest.mark.parametrize("workers", [0, 2])
def test_cuda_batches_match_the_cpu_path(sta: xr.DataArray, mode: str, workers: int) -> None:
    gpu = ParticleLoader(sta, 32, mode, device="cuda", seed=4, transforms=PIPELINE, num_workers=workers)
    cpu = ParticleLoader(sta, 32, mode, device="cpu", seed=4, transforms=PIPELINE, num_workers=workers)
    assert gpu.batches.pin and gpu._feeder._stream is not None
    for g, c in zip(gpu, cpu, strict=True):
        assert g["image"].is_cuda and g["index"].is_cuda and g["defocus_u"].is_cuda
        torch.testing.assert_close(g["index"].cpu(), c["index"])
        # Random draws differ between the CUDA and CPU generators: compare the unrandomised pipeline instead.
    plain = [T.Standardize(), T.CircularMask(), T.GaussianBlur(1.0), T.FourierCrop(32)]
    gpu = ParticleLoader(sta, 32, mode, device="cuda", seed=4, transforms=plain, num_workers=workers)
    cpu = ParticleLoader(sta, 32, mode, device="cpu", seed=4, transforms=plain, num_workers=workers)
    for g, c in zip(gpu, cpu, strict=True):
        torch.testing.assert_close(g["image"].cpu(), c["image"], rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_host_batches_are_pinned_and_copies_non_blocking(sta: xr.DataArray) -> None:
    loader = ParticleLoader(sta, 32, "stream", device="cuda", seed=1)
    assert loader._feeder.non_blocking and loader._feeder.pin
    host = next(iter(loader.batches))[2]
    assert host["image"].is_pinned()
    memory = ParticleLoader(sta, 32, "memory", device="cuda", seed=1, memory_on_device=False)
    assert next(iter(memory.batches))[2]["image"].is_pinned()


@pytest.mark.parametrize("device", [pytest.param("cuda", marks=pytest.mark.gpu), "cpu"])
def test_feeder_prefetches_one_batch_ahead(device: str) -> None:
    """The same feeder code on both devices; on CUDA it copies on a side stream."""
    feeder = DeviceFeeder(torch.device(device), T.Standardize(), seed=0)
    assert (feeder._stream is not None) == (device == "cuda")
    prepared: list[int] = []

    def source():  # type: ignore[no-untyped-def]
        for k in range(3):
            prepared.append(k)
            yield 0, k, {"image": torch.randn(4, 16, 16), "index": torch.arange(4)}

    it = feeder.feed(source(), epoch=0)
    _shard, k, batch = next(it)
    assert k == 0 and prepared == [0, 1]  # batch 1 is already on its way while batch 0 is in use
    assert batch["image"].device.type == device
    np.testing.assert_allclose(batch["image"].mean(dim=(1, 2)).cpu().numpy(), 0, atol=1e-5)
    assert [k for _, k, _ in it] == [1, 2]
    assert feeder._in_flight == []  # host batches released only once their copies are done


@pytest.mark.gpu
def test_memory_mode_keeps_the_images_on_the_gpu(sta: xr.DataArray) -> None:
    plain = [T.Standardize(), T.CircularMask()]
    gpu = ParticleLoader(sta, 32, "memory", device="cuda", seed=2, transforms=plain)
    assert gpu.batches.on_device is not None and gpu.batches.on_device.type == "cuda"
    assert "kept on cuda" in gpu.mode_reason
    assert not gpu.dataset.materialized  # read to the GPU through pinned staging arrays, no host copy
    host_batch = next(iter(gpu.batches))[2]
    assert host_batch["image"].is_cuda  # gathered on the device: no host image, nothing to pin
    cpu = ParticleLoader(sta, 32, "memory", device="cpu", seed=2, transforms=plain)
    for epoch in range(2):
        for g, c in zip(gpu, cpu, strict=True):
            assert g["image"].is_cuda and g["index"].is_cuda
            torch.testing.assert_close(g["index"].cpu(), c["index"], msg=f"epoch {epoch}")
            torch.testing.assert_close(g["image"].cpu(), c["image"], rtol=1e-5, atol=1e-5)
    hosted = ParticleLoader(sta, 32, "memory", device="cuda", seed=2, memory_on_device=False)
    assert hosted.batches.on_device is None and next(iter(hosted.batches))[2]["image"].is_pinned()
