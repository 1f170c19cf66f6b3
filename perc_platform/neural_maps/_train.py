"""Training stacked region SIRENs: mini-batches of voxels, Adam, a step cap and early stopping.

``fit_regions`` fits any number of regions at once on one device (all regions in one batched model).
Each region has its own random generator (initial weights, mini-batches, check voxels) and its own loss
term and Adam moments, so a region's result does not depend on which regions are fitted beside it: the
same regions fitted as separate Dask tasks give the same weights as one batched fit in process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from perc_platform.errors import ParameterError
from perc_platform.neural_maps._regions import local_coords
from perc_platform.neural_maps._siren import SirenConfig, init_siren, siren_forward

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

    def __post_init__(self) -> None:
        if self.subdivisions not in (1, 2):
            raise ParameterError(f"subdivisions={self.subdivisions}: use 1 (voxel centres) or 2 (half voxels)")
        if self.max_steps < 0 or self.batch_size < 1 or self.check_every < 1 or self.check_points < 1:
            raise ParameterError(f"invalid fit settings {self}; steps >= 0 and batch/check sizes >= 1")
        if not self.learning_rate > 0:
            raise ParameterError(f"learning_rate={self.learning_rate} must be positive")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def region_seed(seed: int, region: int) -> int:
    """The seed of one region's generator, derived from the fit's seed and the region's index."""
    return int(np.random.SeedSequence([int(seed), int(region)]).generate_state(1)[0])


class _Region:
    """One region's data and random state during a fit."""

    def __init__(self, values: np.ndarray, seed: int, settings: FitSettings, subdivisions: int = 1) -> None:
        self.shape = values.shape
        self.subdivisions = subdivisions
        self._lower = torch.zeros(3)
        # the region's voxel centres span 0 .. (n - 1) / subdivisions in voxel units
        self._upper = (torch.tensor(self.shape, dtype=torch.float32) - 1) / subdivisions
        self.flat = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
        self.gen = torch.Generator().manual_seed(seed)
        n = self.flat.numel()
        self.check = (torch.arange(n) if n <= settings.check_points
                      else torch.randint(0, n, (settings.check_points,), generator=self.gen))
        self.start_mse = float(self.flat[self.check].pow(2).mean())  # the error of a zero residual
        self.best = float("inf")
        self.since_best = 0
        self.steps = 0
        self.mae = float("nan")
        self.mse = float("nan")
        self.reason = "max_steps"

    def coords(self, idx: torch.Tensor) -> torch.Tensor:
        """Flat voxel indices -> (N, 3) coordinates (z, y, x) scaled to [-1, 1]."""
        _, ny, nx = self.shape
        zyx = torch.stack([idx // (ny * nx), (idx // nx) % ny, idx % nx], dim=-1).to(torch.float32)
        zyx = zyx / self.subdivisions
        return local_coords(zyx, self._lower, self._upper)  # the scaling NeuralMap queries use

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, self.flat.numel(), (size,), generator=self.gen)
        return self.coords(idx), self.flat[idx]


def _adam_step(params: dict[str, torch.Tensor], moments: dict[str, list[torch.Tensor]], step: int,
               lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """Adam, elementwise, so every region's slice is updated independently of the others."""
    b1, b2 = betas
    c1, c2 = 1 - b1 ** step, 1 - b2 ** step
    with torch.no_grad():
        for name, p in params.items():
            if p.grad is None:
                continue
            m, v = moments[name]
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(eps), value=-lr / c1)
            p.grad = None


def fit_regions(values: list[np.ndarray], seeds: list[int], config: SirenConfig, settings: FitSettings,
                device: str | torch.device = "cpu", progress: ProgressFn | None = None, *,
                residual: bool = False) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Fit one SIREN per region (values normalised to [0, 1]) in one batched model on ``device``.

    With ``residual`` the targets are residuals over a base on a grid of ``settings.subdivisions`` points
    per voxel: the output layer starts at zero (the fit starts from the base), and a region whose check
    error ends above that of a zero residual gets a zero residual back (``stats["residual_dropped"]``).

    Returns the stacked weights ``(R, ...)`` as float32 NumPy arrays in the order given, and per region
    the steps taken, the final check MAE/MSE, why it stopped and its share of the fit time.
    """
    if len(values) != len(seeds) or not values:
        raise ParameterError("fit_regions needs one seed per region and at least one region")
    dev = torch.device(device)
    start = time.perf_counter()
    subdivisions = settings.subdivisions if residual else 1
    regions = [_Region(v, s, settings, subdivisions) for v, s in zip(values, seeds, strict=True)]
    weights = {k: v.to(dev) for k, v in init_siren(config, list(seeds)).items()}
    last = config.hidden_layers
    if residual:
        weights[f"w{last}"].zero_()
        weights[f"b{last}"].zero_()
        for reg in regions:  # a zero residual: the base's error
            reg.mae, reg.mse = float(reg.flat[reg.check].abs().mean()), reg.start_mse
    active = list(range(len(regions)))
    params = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
    moments = {k: [torch.zeros_like(v), torch.zeros_like(v)] for k, v in weights.items()}
    step = 0
    while active and step < settings.max_steps:
        step += 1
        pairs = [regions[r].batch(settings.batch_size) for r in active]
        x = torch.stack([p[0] for p in pairs]).to(dev)
        y = torch.stack([p[1] for p in pairs]).to(dev)
        pred = siren_forward(params, x, config.omega_0)
        # Sum of per-region means: each region's gradient is that of its own MSE.
        loss = (pred - y).pow(2).mean(dim=1).sum()
        loss.backward()
        _adam_step(params, moments, step, settings.learning_rate)
        if step % settings.check_every and step < settings.max_steps:
            continue
        keep = _check(regions, active, params, config, step, settings, dev)
        if len(keep) < len(active):
            rows = torch.tensor([active.index(r) for r in keep], dtype=torch.long, device=dev)
            done = [i for i, r in enumerate(active) if r not in keep]
            for name in weights:
                _store(weights[name], params[name].detach(), [active[i] for i in done], done)
                params[name] = params[name].detach().index_select(0, rows).requires_grad_(True)
                moments[name] = [m.index_select(0, rows) for m in moments[name]]
            active = keep
        if progress is not None:
            finished = len(regions) - len(active)
            worst = max((regions[r].mae for r in active), default=max(reg.mae for reg in regions))
            progress(finished, len(regions), f"step {step}: {len(active)} regions fitting, worst MAE {worst:.4f}")
    for name in weights:
        _store(weights[name], params[name].detach(), active, list(range(len(active))))
    for r in active:
        regions[r].steps = step
    dropped = [r for r, reg in enumerate(regions) if residual and not reg.mse < reg.start_mse]
    for r in dropped:  # the residual made this region worse than the base alone: keep the base
        weights[f"w{last}"][r] = 0.0
        weights[f"b{last}"][r] = 0.0
    elapsed = time.perf_counter() - start
    stats = [{"steps": reg.steps, "mae": reg.mae, "mse": reg.mse, "stopped": reg.reason,
              "residual_dropped": r in dropped, "seconds": elapsed / len(regions),
              "points": int(reg.flat.numel())} for r, reg in enumerate(regions)]
    return {k: v.cpu().numpy() for k, v in weights.items()}, stats


def _store(target: torch.Tensor, source: torch.Tensor, regions: list[int], rows: list[int]) -> None:
    if regions:
        target[torch.tensor(regions, device=target.device)] = source[torch.tensor(rows, device=source.device)]


def _check(regions: list[_Region], active: list[int], params: dict[str, torch.Tensor], config: SirenConfig,
           step: int, settings: FitSettings, dev: torch.device) -> list[int]:
    """Score the active regions on their check voxels; return those that keep fitting."""
    keep = []
    with torch.no_grad():
        for row, r in enumerate(active):
            reg = regions[r]
            one = {k: v[row:row + 1] for k, v in params.items()}
            pred = siren_forward(one, reg.coords(reg.check)[None].to(dev), config.omega_0)[0].cpu()
            err = pred - reg.flat[reg.check]
            reg.mae, reg.mse, reg.steps = float(err.abs().mean()), float(err.pow(2).mean()), step
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
