"""``fit_neural_map``: tile a density map, fit its regions on a GPU, on the Dask cluster or in process."""

from __future__ import annotations

import logging
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import xarray as xr

from perc_platform.conventions import validate_volume
from perc_platform.errors import InputError, ParameterError
from perc_platform.neural_maps._neural_map import NeuralMap
from perc_platform.neural_maps._regions import tile_map
from perc_platform.neural_maps._siren import SirenConfig, init_siren
from perc_platform.neural_maps._spline import residual_targets
from perc_platform.neural_maps._train import FitSettings, ProgressFn, fit_regions, region_seed
from perc_platform.processing._tasks import active_client, finished

__all__ = ["RESIDUAL_SIREN", "fit_neural_map", "normalise_map", "print_progress"]

#: The default SIREN of a residual over the spline base (the sweep in benchmarks/bench_neural.py found no
#: gain from larger ones: 3 x 64 and 3 x 128 at omega_0 = 90 did not learn the half-voxel correction either).
RESIDUAL_SIREN = SirenConfig(hidden_layers=2, hidden_width=64, omega_0=30.0)

log = logging.getLogger("perc_platform.neural_maps")


def print_progress(done: int, total: int, message: str) -> None:
    """A progress callback that prints one line per report to stderr."""
    print(f"[neural map] {done}/{total} regions done; {message}", file=sys.stderr, flush=True)


def _log_progress(done: int, total: int, message: str) -> None:
    log.info("%d/%d regions done; %s", done, total, message)


def normalise_map(values: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Values scaled to [0, 1] by the map's min and max, and that ``(min, max)``."""
    finite = np.isfinite(values)
    if not finite.all():
        raise InputError(f"the map holds {int((~finite).sum())} non-finite values; fill or mask them first")
    low, high = float(values.min()), float(values.max())
    if not high > low:
        raise InputError(f"the map is constant ({low}); there is nothing to fit")
    return ((values - low) / (high - low)).astype(np.float32), (low, high)


def _fit_task(values: list[np.ndarray], seeds: list[int], config: dict[str, Any], settings: dict[str, Any],
              device: str | None, residual: bool = False) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """One Dask task: fit some regions on the worker (its GPU if it has one)."""
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return fit_regions(values, seeds, SirenConfig(**config), FitSettings(**settings), dev, residual=residual)


def fit_neural_map(density: xr.DataArray, *, config: SirenConfig | None = None,
                   settings: FitSettings | None = None, max_region: int = 64, overlap: int = 4,
                   device: str | torch.device | None = None, client: Any = None,
                   regions_per_task: int = 1, regions_per_batch: int | None = None,
                   progress: ProgressFn | bool | None = None, base: str = "cubic", **fit_options: Any) -> NeuralMap:
    """Fit a neural map (one SIREN per region, blended) to a ``density`` DataArray ``(z, y, x)``.

    ``base="cubic"`` (default): the map is a cubic B-spline through the voxels plus a SIREN residual per
    region, fitted to the band-limited (Fourier) interpolation at the half voxels (``subdivisions=2``).
    The voxel error is then that of the spline (about 1e-7) and the SIREN only corrects between voxels.
    Default SIREN: :data:`RESIDUAL_SIREN` (2 x 64) over the base, the reference's 4 x 256 without one.
    ``base="fourier"``: the spline goes through the map's band-limited (Fourier) refinement to half voxels
    instead, which is the SIREN's training target: nothing is left to fit, so no SIREN is fitted (zero
    residuals, ``stopped="nothing_to_fit"``); upsampling by 2 then equals Fourier zero-padding of the
    mirrored map, which beats cubic splines (``benchmarks/bench_neural.py``, README).
    ``base="none"``: the SIREN alone fits the voxels (the reference design; far slower and less accurate:
    see the README's table). After the fit each region's voxel MAE is in ``attrs["region_stats"]``; regions
    above ``target_mae`` are listed in ``attrs["regions_above_target"]`` and named in a warning.

    Where the regions are fitted:

    * ``device`` given (``"cuda"``, ``"cpu"``...): in this process on that device, ``regions_per_batch``
      regions at a time in one batched model (default: all of them);
    * else ``client`` given: as tasks of ``regions_per_task`` regions on the cluster's workers, each on
      its GPU if it has one;
    * else on this machine's GPU if it has one;
    * else on the active Dask client's workers (``distributed.get_client()``), if there is one;
    * else in process on the CPU.

    ``settings`` (or keyword ``fit_options`` such as ``max_steps=``, ``target_mae=``, ``precision=``) set
    the step cap, early stopping and precision: ``precision="auto"`` (default) fits in mixed precision on
    CUDA (bfloat16 autocast, float16 with a GradScaler on GPUs without bfloat16) and in float32 elsewhere;
    regions whose mixed fit ends above ``target_mae`` are refitted in float32, listed in
    ``attrs["regions_refit_float32"]`` (``attrs["precision"]``: the precisions of the weights kept).
    ``progress``: a callback ``(done, total, message)``, ``True`` to print to stderr,
    default: log to the ``perc_platform.neural_maps`` logger.
    """
    validate_volume(density)
    config = config or (RESIDUAL_SIREN if base == "cubic" else SirenConfig())
    settings = settings or FitSettings()
    if fit_options:
        unknown = set(fit_options) - set(settings.to_dict())
        if unknown:
            raise ParameterError(f"unknown fit options {sorted(unknown)}; known: {sorted(settings.to_dict())}")
        settings = FitSettings(**{**settings.to_dict(), **fit_options})
    report: ProgressFn = print_progress if progress is True else (progress or _log_progress)

    if base not in ("cubic", "fourier", "none"):
        raise ParameterError(f"base={base!r}: use 'cubic' (spline + SIREN residual), 'fourier' (band-limited "
                             "base, no SIREN fit) or 'none' (SIREN alone)")
    values, value_range = normalise_map(np.asarray(density.values, dtype=np.float64))
    if min(values.shape) < 4:
        raise InputError(f"the map {values.shape} is too small to fit; it needs >= 4 voxels along each axis")
    tiling = tile_map(values.shape, max_region, overlap)
    residual = base in ("cubic", "fourier")
    if base == "fourier":
        blocks: list[np.ndarray] = []  # the base passes through the half-voxel targets already: nothing left to fit
    elif residual:
        blocks = residual_targets(values, tiling.region_slices(), settings.subdivisions)
    else:
        blocks = [np.ascontiguousarray(values[s]) for s in tiling.region_slices()]
    seeds = [region_seed(settings.seed, r) for r in range(tiling.n_regions)]

    start = time.perf_counter()
    if device is None and client is None and torch.cuda.is_available():
        device = "cuda"
    cluster = None if device is not None else (client if client is not None else active_client())
    if base == "fourier":
        mode = "no SIREN fit (fourier base)"
        params, stats = _idle_residuals(config, seeds)
    elif cluster is not None:
        mode = "dask"
        params, stats = _fit_on_cluster(cluster, blocks, seeds, config, settings, regions_per_task, report,
                                        residual)
    else:
        dev = torch.device(device if device is not None else "cpu")
        mode = f"in-process {dev}"
        per_batch = regions_per_batch or len(blocks)
        parts = []
        for i in range(0, len(blocks), per_batch):
            parts.append(fit_regions(blocks[i:i + per_batch], seeds[i:i + per_batch], config, settings, dev,
                                     report, residual=residual))
        params = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        stats = [s for p in parts for s in p[1]]
    elapsed = time.perf_counter() - start
    report(len(seeds), len(seeds), f"fitted {len(seeds)} regions ({mode}) in {elapsed:.1f} s")

    voxel = tuple(float(v) for v in density.attrs.get("voxel_size") or _voxel_from_coords(density))
    origin = tuple(float(density.coords[d].values[0]) for d in ("x", "y", "z"))
    attrs = {k: density.attrs[k] for k in ("source_id", "source_uri", "retrieved", "history", "resolution")
             if k in density.attrs}
    mean, sd = float(values.mean()), float(values.std())
    refit = [r for r, s in enumerate(stats) if s.get("refit_float32")]
    precisions = sorted({str(s.get("precision", "float32")) for s in stats})
    line = (f"fitted neural map: {len(seeds)} regions of <= {max_region}^3 (overlap {overlap}), "
            f"{base + ' spline + ' if residual else ''}SIREN {config.hidden_layers}x{config.hidden_width} "
            f"omega_0={config.omega_0}, {mode}, {'/'.join(precisions)}"
            f"{f' (regions {refit} refitted in float32 after mixed precision)' if refit else ''}, {elapsed:.1f} s")
    if refit:
        log.info("neural map: regions %s ended above target_mae in mixed precision and were refitted in float32",
                 refit)
    attrs["history"] = f"{attrs['history']}\n{line}" if attrs.get("history") else line
    attrs.update(fit_mode=mode, fit_seconds=elapsed, fit_settings=settings.to_dict(), region_stats=stats,
                 normalised_mean=mean, normalised_sd=sd, base=base, precision=precisions,
                 regions_refit_float32=refit)
    nmap = NeuralMap(params, config, tiling, origin, voxel, value_range, attrs,  # type: ignore[arg-type]
                     base=values if residual else None, base_kind="fourier" if base == "fourier" else "cubic")
    _score_regions(nmap, values, settings.target_mae)
    return nmap


def _idle_residuals(config: SirenConfig, seeds: list[int]) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Zero SIREN residuals (the ``"fourier"`` base alone), with the per-region record of a fit."""
    params = {k: v.numpy() for k, v in init_siren(config, seeds).items()}
    for name in (f"w{config.hidden_layers}", f"b{config.hidden_layers}"):
        params[name][:] = 0.0
    stats = [{"steps": 0, "mae": 0.0, "mse": 0.0, "stopped": "nothing_to_fit", "residual_dropped": True,
              "seconds": 0.0, "points": 0, "precision": "float32", "refit_float32": False} for _ in seeds]
    return params, stats


def _score_regions(nmap: NeuralMap, values: np.ndarray, target: float) -> None:
    """Each region's MAE at its voxel centres (normalised map); warn about those above ``target``."""
    fitted = nmap.sample(normalized=True).values
    above = []
    for r, region in enumerate(nmap.tiling.region_slices()):
        mae = float(np.abs(fitted[region] - values[region]).mean())
        nmap.attrs["region_stats"][r]["voxel_mae"] = mae
        if mae > target:
            above.append(r)
    nmap.attrs["voxel_mae"] = float(np.abs(fitted - values).mean())
    nmap.attrs["regions_above_target"] = above
    if above:
        worst = max(nmap.attrs["region_stats"][r]["voxel_mae"] for r in above)
        warnings.warn(f"neural map of {nmap.attrs.get('source_id', 'the map')}: regions {above} stopped above "
                      f"target_mae={target} (worst voxel MAE {worst:.4f}); raise max_steps or use base='cubic'",
                      UserWarning, stacklevel=3)


def _voxel_from_coords(density: xr.DataArray) -> tuple[float, float, float]:
    steps = []
    for d in ("x", "y", "z"):
        c = np.asarray(density.coords[d].values, dtype=np.float64)
        steps.append(float(c[1] - c[0]) if c.size > 1 else 1.0)
    return steps[0], steps[1], steps[2]


def _fit_on_cluster(client: Any, blocks: list[np.ndarray], seeds: list[int], config: SirenConfig,
                    settings: FitSettings, regions_per_task: int, report: Callable[[int, int, str], None],
                    residual: bool) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Submit groups of regions as tasks; gather the weights in region order as they finish."""
    if regions_per_task < 1:
        raise ParameterError(f"regions_per_task={regions_per_task} must be >= 1")
    groups = [list(range(i, min(i + regions_per_task, len(blocks))))
              for i in range(0, len(blocks), regions_per_task)]
    futures = {}
    for group in groups:
        future = client.submit(_fit_task, [blocks[r] for r in group], [seeds[r] for r in group],
                               config.to_dict(), settings.to_dict(), None, residual, pure=False,
                               key=f"fit-neural-region-{group[0]}-{uuid.uuid4().hex[:12]}")
        futures[future] = group
    results: dict[int, tuple[dict[str, np.ndarray], dict[str, Any]]] = {}
    done = 0
    for future in finished(client, futures):
        weights, stats = future.result()
        for row, r in enumerate(futures[future]):
            results[r] = ({k: v[row] for k, v in weights.items()}, stats[row])
        done += len(futures[future])
        report(done, len(blocks), f"region task {futures[future][0]} done on the cluster")
    names = list(results[0][0])
    params = {k: np.stack([results[r][0][k] for r in range(len(blocks))]) for k in names}
    return params, [results[r][1] for r in range(len(blocks))]
