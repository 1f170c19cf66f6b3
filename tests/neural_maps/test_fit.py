"""Fitting: the step cap, early stopping, batching independence, dispatch, and errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

import perc_platform.neural_maps as nm
from perc_platform.errors import InputError, ParameterError
from perc_platform.neural_maps._train import region_seed
from tests.neural_maps.conftest import TINY, TINY_FIT


def _blocks(segment: xr.DataArray) -> list[np.ndarray]:
    values, _ = nm.normalise_map(segment.values.astype(np.float64))
    return [values[:20, :20, :20], values[5:21, 10:30, 12:24], values[8:, :24, 17:]]


def test_batched_regions_fit_as_if_alone(segment: xr.DataArray) -> None:
    """Each region's result is independent of its batch mates (what makes distributed == in process)."""
    blocks = _blocks(segment)
    seeds = [region_seed(0, r) for r in range(3)]
    settings = nm.FitSettings(**TINY_FIT)
    together, _ = nm.fit_regions(blocks, seeds, TINY, settings)
    for r in range(3):
        alone, _ = nm.fit_regions([blocks[r]], [seeds[r]], TINY, settings)
        for name in together:
            np.testing.assert_allclose(together[name][r], alone[name][0], rtol=1e-4, atol=1e-5)


def test_fitting_lowers_the_error(segment: xr.DataArray) -> None:
    blocks = _blocks(segment)[:1]
    short = nm.FitSettings(**{**TINY_FIT, "max_steps": 20})
    longer = nm.FitSettings(**{**TINY_FIT, "max_steps": 200})
    _, before = nm.fit_regions(blocks, [1], TINY, short)
    _, after = nm.fit_regions(blocks, [1], TINY, longer)
    assert after[0]["steps"] == 200 and before[0]["steps"] == 20
    assert after[0]["mae"] < 0.7 * before[0]["mae"]


def test_early_stopping(segment: xr.DataArray) -> None:
    blocks = _blocks(segment)
    loose = nm.FitSettings(**{**TINY_FIT, "max_steps": 500, "target_mae": 0.5})
    _, stats = nm.fit_regions(blocks, [1, 2, 3], TINY, loose)
    assert all(s["stopped"] == "target_mae" and s["steps"] == 20 for s in stats)
    stuck = nm.FitSettings(**{**TINY_FIT, "max_steps": 500, "learning_rate": 1e-12, "patience": 2})
    _, stats = nm.fit_regions(blocks[:1], [1], TINY, stuck)
    assert stats[0]["stopped"] == "plateau" and stats[0]["steps"] < 500


def test_progress_is_reported(segment: xr.DataArray) -> None:
    calls: list[tuple[int, int, str]] = []
    nm.fit_neural_map(segment, config=TINY, max_region=24, device="cpu",
                      progress=lambda *a: calls.append(a), **{**TINY_FIT, "max_steps": 40})
    assert calls[-1][0] == calls[-1][1] == 8
    assert any("step 20" in c[2] for c in calls)


def test_bad_input_is_refused(segment: xr.DataArray) -> None:
    with pytest.raises(InputError):
        nm.fit_neural_map(segment.transpose("x", "y", "z"), device="cpu")
    with pytest.raises(ParameterError, match="unknown fit options"):
        nm.fit_neural_map(segment, device="cpu", max_step=3)
    with pytest.raises(InputError, match="constant"):
        nm.fit_neural_map(xr.zeros_like(segment), device="cpu")
    broken = segment.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        nm.fit_neural_map(broken, device="cpu")


@pytest.mark.cluster
def test_distributed_fit_equals_in_process(segment: xr.DataArray) -> None:
    """Acceptance 5: regions as tasks on a real local cluster give the same map as fitting in process."""
    from distributed import Client, LocalCluster

    options: dict[str, Any] = {"config": TINY, "max_region": 24, **TINY_FIT}
    local = nm.fit_neural_map(segment, device="cpu", **options)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster, \
            Client(cluster) as client:
        remote = nm.fit_neural_map(segment, client=client, regions_per_task=3, **options)
        # with no client= given, the active client is used
        active = nm.fit_neural_map(segment, **{**options, "max_steps": 20})
    assert remote.attrs["fit_mode"] == "dask" and active.attrs["fit_mode"] == "dask"
    assert local.attrs["fit_mode"] == "in-process cpu"
    a, b = local.sample().values, remote.sample().values
    span = float(segment.max() - segment.min())
    assert np.abs(a - b).max() / span < 1e-4
    for name in local.params:
        np.testing.assert_allclose(local.params[name].numpy(), remote.params[name].numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_gpu_fit_matches_cpu(segment: xr.DataArray) -> None:
    options: dict[str, Any] = {"config": TINY, "max_region": 24, **TINY_FIT}
    cpu = nm.fit_neural_map(segment, device="cpu", **options)
    gpu = nm.fit_neural_map(segment, device="cuda", regions_per_batch=4, **options)
    span = float(segment.max() - segment.min())
    assert np.abs(cpu.sample().values - gpu.to("cuda").sample().values).mean() / span < 1e-2


def test_all_regions_are_one_model_call_per_step(segment: xr.DataArray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step and each check is one batched SIREN call over every region still fitting, no loop per region."""
    import perc_platform.neural_maps._train as train

    calls: list[tuple[int, ...]] = []
    real = train.siren_forward

    def counted(params: Any, x: Any, *args: Any) -> Any:
        calls.append(tuple(x.shape))
        return real(params, x, *args)

    monkeypatch.setattr(train, "siren_forward", counted)
    blocks = _blocks(segment)
    settings = nm.FitSettings(**{**TINY_FIT, "max_steps": 30, "check_every": 10, "target_mae": 1e-9})
    nm.fit_regions(blocks, [1, 2, 3], TINY, settings)
    assert len(calls) == 30 + 3  # 30 steps and 3 checks
    assert all(shape[0] == 3 for shape in calls)
    assert sum(shape[1] == settings.batch_size for shape in calls) == 30
