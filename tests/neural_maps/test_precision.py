"""Mixed precision: the setting, bfloat16/float16 fits on the CPU, the float32 fallback, the Adam and the GPU."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr

import perc_platform.neural_maps as nm
from perc_platform.errors import ParameterError
from perc_platform.neural_maps._precision import StackedAdam, resolve_precision
from perc_platform.neural_maps._train import region_seed
from tests.neural_maps.conftest import TINY, TINY_FIT


def _blocks(segment: xr.DataArray) -> list[np.ndarray]:
    values, _ = nm.normalise_map(segment.values.astype(np.float64))
    return [values[:20, :20, :20], values[5:21, 10:30, 12:24]]


def _numpy_mae(weights: dict[str, np.ndarray], row: int, block: np.ndarray, omega_0: float) -> float:
    """The region's voxel MAE from its weights, in float64 NumPy (independent of the torch code)."""
    grids = np.meshgrid(*(np.linspace(-1.0, 1.0, n) for n in block.shape), indexing="ij")
    h = np.stack([g.ravel() for g in grids], axis=-1)
    n_layers = len(weights) // 2
    for i in range(n_layers):
        h = h @ weights[f"w{i}"][row].astype(np.float64) + weights[f"b{i}"][row].astype(np.float64)
        if i < n_layers - 1:
            h = np.sin(omega_0 * h)
    return float(np.abs(h[:, 0] - block.ravel()).mean())


def test_auto_is_mixed_on_cuda_only() -> None:
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("float32", torch.device("cuda")) is None
    assert resolve_precision("mixed", torch.device("cpu")) == torch.bfloat16
    assert resolve_precision("auto", torch.device("cuda")) in (torch.bfloat16, torch.float16)
    assert resolve_precision("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(ParameterError, match="precision='half'"):
        nm.FitSettings(precision="half")


@pytest.mark.parametrize("precision", ["mixed", "float16"])
def test_mixed_fit_on_cpu_reaches_the_target(segment: xr.DataArray, precision: str) -> None:
    """bfloat16 autocast (and float16 with its GradScaler) on the CPU reach the float32 fit's target."""
    blocks, seeds = _blocks(segment), [region_seed(0, r) for r in range(2)]
    options = {**TINY_FIT, "max_steps": 120, "target_mae": 0.08}
    full, full_stats = nm.fit_regions(blocks, seeds, TINY, nm.FitSettings(**options, precision="float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a GradScaler or autocast complaint
        mixed, stats = nm.fit_regions(blocks, seeds, TINY, nm.FitSettings(**options, precision=precision))
    expected = "bfloat16" if precision == "mixed" else "float16"
    assert all(s["stopped"] == "target_mae" for s in full_stats)
    for r, s in enumerate(stats):
        assert s["precision"] == expected and not s["refit_float32"] and s["stopped"] == "target_mae"
        # the reported MAE is the float32 error of the weights returned, on every voxel of the block
        assert s["mae"] <= 0.08
        assert math.isclose(s["mae"], _numpy_mae(mixed, r, blocks[r], TINY.omega_0), rel_tol=1e-3)
        assert s["steps"] <= 2 * full_stats[r]["steps"]
    # autocast really ran: the trajectory is not the float32 one
    assert not np.allclose(mixed["w1"], full["w1"], atol=1e-6)


def test_mixed_falls_back_to_float32_above_target(segment: xr.DataArray) -> None:
    """A target that mixed precision cannot reach: every region is refitted in float32 and says so."""
    blocks, seeds = _blocks(segment), [region_seed(0, r) for r in range(2)]
    options = {**TINY_FIT, "max_steps": 60, "target_mae": 1e-6}
    full, full_stats = nm.fit_regions(blocks, seeds, TINY, nm.FitSettings(**options, precision="float32"))
    calls: list[str] = []
    kept, stats = nm.fit_regions(blocks, seeds, TINY, nm.FitSettings(**options, precision="mixed"),
                                 progress=lambda done, total, message: calls.append(message))
    assert any("refitting them in float32" in c for c in calls)
    for r, s in enumerate(stats):
        assert s["refit_float32"] and s["mixed_mae"] > 1e-6
        if s["precision"] == "float32":  # the float32 refit scored lower: its weights are the float32 fit's
            assert s["mae"] <= s["mixed_mae"] and s["mae"] == full_stats[r]["mae"]
            for name in kept:
                np.testing.assert_array_equal(kept[name][r], full[name][r])
        else:  # float32 did no better: the mixed weights stay, and what float32 reached is reported
            assert s["precision"] == "bfloat16" and s["float32_mae"] == full_stats[r]["mae"] >= s["mae"]


def test_fit_neural_map_reports_the_refit(segment: xr.DataArray) -> None:
    with pytest.warns(UserWarning, match="above target_mae"):
        nmap = nm.fit_neural_map(segment, config=TINY, base="none", max_region=24, device="cpu",
                                 **{**TINY_FIT, "max_steps": 20, "target_mae": 1e-6, "precision": "mixed"})
    assert nmap.attrs["regions_refit_float32"] == list(range(nmap.tiling.n_regions))
    assert "refitted in float32 after mixed precision" in nmap.attrs["history"]
    assert set(nmap.attrs["precision"]) <= {"float32", "bfloat16"}


def test_adam_step_and_skipped_step_with_grad_scaler() -> None:
    """One step against the Adam formula; a step with an inf gradient changes nothing and halves the scale."""
    w = torch.tensor([[1.0, -2.0]], requires_grad=True)
    opt = StackedAdam([w], lr=0.1)
    w.grad = torch.tensor([[0.5, -4.0]])
    opt.step()
    g = np.array([0.5, -4.0])
    m, v = 0.1 * g / (1 - 0.9), 0.001 * g * g / (1 - 0.999)
    np.testing.assert_allclose(w.detach().numpy()[0], np.array([1.0, -2.0]) - 0.1 * m / (np.sqrt(v) + 1e-8),
                               rtol=1e-5)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before = (w.detach().clone(), opt.state[w]["m"].clone(), float(opt.count))
    (scaler.scale(w.sum()) * float("inf")).backward()  # not finite, scaled or not
    scaler.step(opt)
    scaler.update()
    assert torch.equal(w.detach(), before[0]) and torch.equal(opt.state[w]["m"], before[1])
    assert float(opt.count) == before[2] and scaler.get_scale() == 512.0
    w.grad = None
    (scaler.scale(w.sum())).backward()  # gradient 1 per element, scaled by 512
    scaler.step(opt)
    scaler.update()
    assert float(opt.count) == before[2] + 1
    np.testing.assert_allclose(opt.state[w]["m"].numpy()[0], 0.9 * before[1].numpy()[0] + 0.1, rtol=1e-6)


@pytest.mark.gpu
def test_gpu_auto_fits_in_mixed_precision(segment: xr.DataArray) -> None:
    options: dict[str, Any] = {"config": TINY, "max_region": 24, "base": "none", **TINY_FIT,
                               "target_mae": 0.08, "max_steps": 200}
    gpu = nm.fit_neural_map(segment, device="cuda", **options)
    cpu = nm.fit_neural_map(segment, device="cpu", **options)
    assert cpu.attrs["precision"] == ["float32"]
    # every region was fitted in mixed precision, and kept it or says it was refitted in float32
    assert all(s["precision"] in ("bfloat16", "float16") or s["refit_float32"] for s in gpu.attrs["region_stats"])
    assert not gpu.regions_above_target and not cpu.regions_above_target
    span = float(segment.max() - segment.min())
    assert abs(gpu.attrs["voxel_mae"] - cpu.attrs["voxel_mae"]) < 0.01 * span


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float32", "mixed", "float16"])
def test_gpu_steps_do_not_sync_with_the_host(segment: xr.DataArray, precision: str) -> None:
    """The host waits on the device at checks only: the syncs do not grow with the steps between checks."""
    blocks, seeds = _blocks(segment), [region_seed(0, r) for r in range(2)]

    def syncs(steps: int) -> int:
        settings = nm.FitSettings(**{**TINY_FIT, "max_steps": steps, "check_every": steps, "target_mae": 1e-9},
                                  precision=precision)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                nm.fit_regions(blocks, seeds, TINY, settings, device="cuda")
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    assert syncs(60) == syncs(20)
