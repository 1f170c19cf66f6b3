"""Training stacked region SIRENs: mini-batches of voxels, Adam, a step cap and early stopping.

``fit_regions`` fits any number of regions at once on one device: every step and every check is one
batched model call over all the regions still fitting (``siren_forward``'s stacked ``baddbmm``), never a
Python loop per region. Each region has its own random generator (initial weights, mini-batches, check
voxels) and its own loss term and Adam moments, so a region's result does not depend on which regions
are fitted beside it: the same regions fitted as separate Dask tasks give the same weights as one
batched fit in process.

On a GPU the voxels go to the device once (pinned memory, non-blocking copies); each step's voxel
indices are drawn on the host a check interval ahead and copied the same way while the device works,
and the host waits on the device only at the checks (every ``check_every`` steps), never per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from perc_platform.errors import ParameterError
from perc_platform.neural_maps._precision import PRECISIONS, StackedAdam, precision_name, resolve_precision
from perc_platform.neural_maps._siren import SirenConfig, init_siren, siren_forward
from perc_platform.neural_maps._train_data import FitData, Region

__all__ = ["FitSettings", "fit_regions", "region_seed"]

ProgressFn = Callable[[int, int, str], None]


@dataclass(frozen=True)
class FitSettings:
    """How each region is fitted.

    ``max_steps`` caps the Adam steps (the reference has no cap); a region stops early when the mean
    absolute error on its check points (values normalised to [0, 1]) reaches ``target_mae``, or its mean
    squared error reaches ``target_loss`` (the reference's 1e-5), or it has not improved for ``patience``
    checks. Each step draws ``batch_size`` random points per region.

    ``subdivisions``: training points per voxel along each axis. With a spline base (the default of
    :func:`fit_neural_map`), 2 adds the half-voxel points, where the target is the map's band-limited
    (Fourier) interpolation; 1 fits the voxel centres only. Defaults from the sweep in
    ``benchmarks/bench_neural.py`` (see its docstring).

    ``precision``: ``"auto"`` (default: mixed on CUDA, float32 elsewhere), ``"float32"``, ``"mixed"``
    (autocast in bfloat16 where the device supports it, else float16 with a GradScaler), or the autocast
    type by name (``"bfloat16"``, ``"float16"``). Weights, optimiser, loss and errors stay float32; a
    region whose mixed fit ends above ``target_mae`` is refitted in float32 (``stats["refit_float32"]``).
    """

    max_steps: int = 300
    batch_size: int = 4096
    learning_rate: float = 1e-4
    target_mae: float = 0.005
    target_loss: float = 1e-5
    check_every: int = 25
    check_points: int = 16384
    patience: int = 4
    seed: int = 0
    subdivisions: int = 2
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.subdivisions not in (1, 2):
            raise ParameterError(f"subdivisions={self.subdivisions}: use 1 (voxel centres) or 2 (half voxels)")
        if self.max_steps < 0 or self.batch_size < 1 or self.check_every < 1 or self.check_points < 1:
            raise ParameterError(f"invalid fit settings {self}; steps >= 0 and batch/check sizes >= 1")
        if self.precision not in PRECISIONS:
            raise ParameterError(f"precision={self.precision!r}: use one of {', '.join(PRECISIONS)}")
        if not self.learning_rate > 0:
            raise ParameterError(f"learning_rate={self.learning_rate} must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def region_seed(seed: int, region: int) -> int:
    """The seed of one region's generator, derived from the fit's seed and the region's index."""
    return int(np.random.SeedSequence([int(seed), int(region)]).generate_state(1)[0])


def fit_regions(values: list[np.ndarray], seeds: list[int], config: SirenConfig, settings: FitSettings,
                device: str | torch.device = "cpu", progress: ProgressFn | None = None, *,
                residual: bool = False) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Fit one SIREN per region (values normalised to [0, 1]) in one batched model on ``device``.

    With ``residual`` the targets are residuals over a base on a grid of ``settings.subdivisions`` points
    per voxel: the output layer starts at zero (the fit starts from the base), and a region whose check
    error ends above that of a zero residual gets a zero residual back (``stats["residual_dropped"]``).

    In mixed precision (``settings.precision``), the regions whose float32 check MAE ends above
    ``target_mae`` are fitted again in float32 and keep whichever weights score lower
    (``stats["refit_float32"]``, ``stats["mixed_mae"]``, ``stats["precision"]`` of the weights kept).

    Returns the stacked weights ``(R, ...)`` as float32 NumPy arrays in the order given, and per region
    the steps taken, the final check MAE/MSE, why it stopped and its share of the fit time.
    """
    if len(values) != len(seeds) or not values:
        raise ParameterError("fit_regions needs one seed per region and at least one region")
    dev = torch.device(device)
    dtype = resolve_precision(settings.precision, dev)
    weights, stats = _fit(values, seeds, config, settings, dev, progress, residual, dtype)
    for s in stats:
        s.update(precision=precision_name(dtype), refit_float32=False)
    above = [r for r, s in enumerate(stats) if dtype is not None and not s["mae"] <= settings.target_mae]
    if above:
        if progress is not None:
            progress(0, len(above), f"regions {above} ended above target_mae in {precision_name(dtype)}: "
                                    "refitting them in float32")
        again, again_stats = _fit([values[r] for r in above], [seeds[r] for r in above], config, settings, dev,
                                  progress, residual, None)
        for row, r in enumerate(above):
            mixed = stats[r]
            redo = {**again_stats[row], "precision": "float32", "refit_float32": True, "mixed_mae": mixed["mae"],
                    "seconds": mixed["seconds"] + again_stats[row]["seconds"]}
            if redo["mae"] <= mixed["mae"]:
                for name in weights:
                    weights[name][r] = again[name][row]
                stats[r] = redo
            else:  # float32 did no better: keep the mixed weights, say what float32 reached
                mixed.update(refit_float32=True, mixed_mae=mixed["mae"], float32_mae=redo["mae"],
                             seconds=redo["seconds"])
    return weights, stats


def _fit(values: list[np.ndarray], seeds: list[int], config: SirenConfig, settings: FitSettings,
         dev: torch.device, progress: ProgressFn | None, residual: bool,
         dtype: torch.dtype | None) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """The batched fit in one precision (``dtype``: the autocast type, ``None`` for float32)."""
    start = time.perf_counter()
    subdivisions = settings.subdivisions if residual else 1
    regions = [Region(v, s, settings.check_points, subdivisions) for v, s in zip(values, seeds, strict=True)]
    data = FitData(regions, dev)
    weights = {k: v.to(dev) for k, v in init_siren(config, list(seeds)).items()}
    last = config.hidden_layers
    if residual:
        weights[f"w{last}"].zero_()
        weights[f"b{last}"].zero_()
        for reg in regions:  # a zero residual: the base's error
            reg.mae, reg.mse = reg.start_mae, reg.start_mse
    names = list(weights)
    params = [weights[k].clone().requires_grad_(True) for k in names]
    optimiser = StackedAdam(params, settings.learning_rate)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)  # bfloat16 needs no scaling
    active = list(range(len(regions)))
    rows = torch.arange(len(regions), device=dev)  # the FitData rows of the active regions
    step = 0
    chunk = data.draw(regions, active, min(settings.check_every, settings.max_steps), settings.batch_size) \
        if settings.max_steps else None
    while active and step < settings.max_steps and chunk is not None:
        for j in range(chunk.shape[1]):  # no host sync in here: the device runs ahead of the host
            x, y = data.points(rows, chunk[:, j])
            pred = siren_forward(dict(zip(names, params, strict=True)), x, config.omega_0, dtype)
            # Sum of per-region means, in float32: each region's gradient is that of its own MSE.
            loss = (pred.float() - y).pow(2).mean(dim=1).sum()
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
        step += chunk.shape[1]
        left = settings.max_steps - step
        # the next interval's indices, drawn and copied while the device works through this one
        ahead = data.draw(regions, active, min(settings.check_every, left), settings.batch_size) if left else None
        keep = _check(regions, active, rows, dict(zip(names, params, strict=True)), data, config, step, settings)
        if len(keep) < len(active):
            kept = [i for i, r in enumerate(active) if r in keep]
            done = [i for i, r in enumerate(active) if r not in keep]
            sel = torch.tensor(kept, dtype=torch.long, device=dev)
            for name, p in zip(names, params, strict=True):
                _store(weights[name], p.detach(), [active[i] for i in done], done)
            if keep:
                params, optimiser = optimiser.select(sel)
                rows = rows.index_select(0, sel)
                ahead = None if ahead is None else ahead.index_select(0, sel)
            active = keep
        chunk = ahead
        if progress is not None:
            finished = len(regions) - len(active)
            worst = max((regions[r].mae for r in active), default=max(reg.mae for reg in regions))
            progress(finished, len(regions), f"step {step}: {len(active)} regions fitting, worst MAE {worst:.4f}")
    for name, p in zip(names, params, strict=True):
        _store(weights[name], p.detach(), active, list(range(len(active))))
    for r in active:
        regions[r].steps = step
    dropped = [r for r, reg in enumerate(regions) if residual and not reg.mse < reg.start_mse]
    for r in dropped:  # the residual made this region worse than the base alone: keep the base
        weights[f"w{last}"][r] = 0.0
        weights[f"b{last}"][r] = 0.0
        regions[r].mae, regions[r].mse = regions[r].start_mae, regions[r].start_mse
    elapsed = time.perf_counter() - start
    stats = [{"steps": reg.steps, "mae": reg.mae, "mse": reg.mse, "stopped": reg.reason,
              "residual_dropped": r in dropped, "seconds": elapsed / len(regions),
              "points": int(reg.flat.numel())} for r, reg in enumerate(regions)]
    return {k: v.cpu().numpy() for k, v in weights.items()}, stats


def _store(target: torch.Tensor, source: torch.Tensor, regions: list[int], rows: list[int]) -> None:
    if regions:
        target[torch.tensor(regions, device=target.device)] = source[torch.tensor(rows, device=source.device)]


#: Check points scored per model call (regions x points), which bounds the check's memory.
CHECK_POINTS_PER_CALL = 2 ** 21


def _check(regions: list[Region], active: list[int], rows: torch.Tensor, params: dict[str, torch.Tensor],
           data: FitData, config: SirenConfig, step: int, settings: FitSettings) -> list[int]:
    """Score the active regions on their check points in float32; return those that keep fitting.

    All active regions are scored in one model call (several only when they exceed
    :data:`CHECK_POINTS_PER_CALL`), and the scores come to the host in one copy: the fit's one sync.
    """
    group = max(1, CHECK_POINTS_PER_CALL // data.check.shape[1])
    scores = []
    with torch.no_grad():
        for g in range(0, len(active), group):
            part = rows[g:g + group]
            x, y = data.points(part, data.check.index_select(0, part))
            one = {k: v[g:g + group] for k, v in params.items()}
            err = (siren_forward(one, x, config.omega_0) - y) * data.check_mask.index_select(0, part)
            count = data.check_count.index_select(0, part)
            scores.append(torch.stack([err.abs().sum(dim=1) / count, err.pow(2).sum(dim=1) / count], dim=1))
        host = torch.cat(scores).cpu().tolist()
    keep = []
    for r, (mae, mse) in zip(active, host, strict=True):
        reg = regions[r]
        reg.mae, reg.mse, reg.steps = float(mae), float(mse), step
        if reg.mae < reg.best - 1e-5:
            reg.best, reg.since_best = reg.mae, 0
        else:
            reg.since_best += 1
        if reg.mae <= settings.target_mae:
            reg.reason = "target_mae"
        elif reg.mse <= settings.target_loss:
            reg.reason = "target_loss"
        elif reg.since_best >= settings.patience:
            reg.reason = "plateau"
        else:
            keep.append(r)
    return keep
