"""NeuralMap: a density map as blended region SIRENs, queried anywhere in Angstrom.

Points are ``(N, 3)`` arrays of absolute Angstrom positions in ``(x, y, z)`` order (the order of atom
positions); gradients come back in the same order, in density per Angstrom.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from perc_platform._version import __version__
from perc_platform.conventions import DENSITY_NAME, VOLUME_DIMS, add_history
from perc_platform.errors import FormatError, ParameterError
from perc_platform.neural_maps._regions import Tiling, local_coords
from perc_platform.neural_maps._siren import SirenConfig, siren_forward
from perc_platform.neural_maps._spline import SplineBase

__all__ = ["NeuralMap"]


class NeuralMap:
    """A fitted neural density map.

    Parameters
    ----------
    params
        Stacked SIREN weights, ``w{i}`` ``(R, n_in, n_out)`` and ``b{i}`` ``(R, 1, n_out)``.
    config, tiling
        The SIREN shape and the regions (voxel ranges of the map that was fitted).
    origin, voxel_size
        Angstrom position of voxel (0, 0, 0) and voxel size, both ``(x, y, z)``.
    value_range
        ``(min, max)`` of the fitted map: the networks fit values normalised to [0, 1].
    attrs
        Provenance (``source_id``, ``source_uri``, ``history``...) and fit statistics.
    base
        The normalised voxels ``(z, y, x)`` whose cubic B-spline the SIRENs are residuals over, or ``None``
        (the SIRENs alone are the map).
    base_kind
        ``"cubic"``: the spline through the voxels; ``"fourier"``: through their band-limited (Fourier)
        refinement to half voxels, so the map is Fourier zero-padding at every half voxel.

    Which to use for what (numbers in the README and ``benchmarks/bench_neural.py``): on the voxels, the
    map equals its spline base; between voxels, the SIREN residual is fitted to the map's band-limited
    interpolation but learns no correction, so the default (``"cubic"``) map equals a cubic spline there.
    ``density``/``gradient`` at arbitrary points and :meth:`sample` on any grid are the neural map's
    strength (one differentiable function for the density graph). For upsampling onto a finer grid, fit
    with ``base="fourier"`` (mean error 0.0083 against cubic 0.0089 after a Fourier binning by 2), or use
    Fourier zero-padding directly; the SIREN adds nothing there.
    """

    def __init__(self, params: Mapping[str, torch.Tensor | np.ndarray], config: SirenConfig, tiling: Tiling,
                 origin: tuple[float, float, float], voxel_size: tuple[float, float, float],
                 value_range: tuple[float, float], attrs: dict[str, Any] | None = None,
                 base: np.ndarray | None = None, base_kind: str = "cubic") -> None:
        self.params = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in params.items()}
        self.config = config
        self.tiling = tiling
        self.origin = tuple(float(v) for v in origin)
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.device = torch.device("cpu")
        self._bounds = tiling.region_bounds()
        if base is not None and tuple(np.shape(base)) != tuple(tiling.shape):
            raise FormatError(f"the spline base {np.shape(base)} does not match the tiling {tiling.shape}")
        if base_kind not in ("cubic", "fourier"):
            raise ParameterError(f"base_kind={base_kind!r}: use 'cubic' or 'fourier'")
        self.base_kind = base_kind
        self.base = None if base is None else SplineBase(np.asarray(base, dtype=np.float32),
                                                         refine=2 if base_kind == "fourier" else 1)
        last = self.params[f"w{config.hidden_layers}"].abs().sum(dim=(1, 2)) + \
            self.params[f"b{config.hidden_layers}"].abs().sum(dim=(1, 2))
        self._residual = [base is None or bool(v > 0) for v in last.tolist()]

    @property
    def regions_above_target(self) -> list[int]:
        """Regions whose voxel MAE stayed above the fit's ``target_mae`` (empty when all reached it)."""
        return list(self.attrs.get("regions_above_target", []))

    def __repr__(self) -> str:
        return (f"NeuralMap({self.attrs.get('source_id', '?')}, shape={self.tiling.shape}, "
                f"regions={self.tiling.n_regions}, siren={self.config.hidden_layers}x{self.config.hidden_width})")

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape ``(z, y, x)`` of the map that was fitted."""
        return self.tiling.shape

    def to(self, device: str | torch.device) -> NeuralMap:
        """Move the weights to ``device`` (in place) and return self."""
        self.device = torch.device(device)
        self.params = {k: v.to(self.device) for k, v in self.params.items()}
        if self.base is not None:
            self.base.to(self.device)
        return self

    # -- queries -------------------------------------------------------------------------------------
    def _indices(self, points: torch.Tensor) -> torch.Tensor:
        """Angstrom (x, y, z) -> continuous voxel indices (z, y, x)."""
        origin = torch.tensor(self.origin[::-1], dtype=points.dtype, device=points.device)
        voxel = torch.tensor(self.voxel_size[::-1], dtype=points.dtype, device=points.device)
        return (points.flip(-1) - origin) / voxel

    def evaluate(self, points: torch.Tensor, normalized: bool = False, fill_value: float = 0.0) -> torch.Tensor:
        """Density at ``points`` ``(N, 3)`` as a differentiable tensor (used by density and gradient).

        Points within half a voxel outside the map take the value at the nearest edge; further out,
        ``fill_value``.
        """
        u = self._indices(points)
        upper = torch.tensor([n - 1 for n in self.tiling.shape], dtype=u.dtype, device=u.device)
        inside = ((u >= -0.5) & (u <= upper + 0.5)).all(dim=-1)
        u = torch.minimum(torch.maximum(u, torch.zeros_like(upper)), upper)
        axis = [self.tiling.axis_weights(u[:, a], a) for a in range(3)]
        bounds = self._bounds.to(device=u.device, dtype=u.dtype)
        pair_region, pair_point, pair_weight = [], [], []
        for r, (tz, ty, tx) in enumerate(self.tiling.region_tiles()):
            if not self._residual[r]:
                continue  # a zero residual (the base alone) needs no SIREN evaluation
            w = axis[0][:, tz] * axis[1][:, ty] * axis[2][:, tx]
            idx = torch.nonzero((w > 0) & inside).squeeze(-1)
            if idx.numel():
                pair_region.append(torch.full_like(idx, r))
                pair_point.append(idx)
                pair_weight.append(w[idx])
        out = torch.zeros(points.shape[0], dtype=torch.float32, device=points.device)
        if pair_point:
            regions = torch.cat(pair_region)
            pts = torch.cat(pair_point)
            weight = torch.cat(pair_weight)
            used, rows = torch.unique(regions, return_inverse=True)
            counts = torch.bincount(rows, minlength=used.numel())
            offsets = torch.cumsum(counts, 0) - counts
            slot = torch.arange(rows.numel(), device=rows.device) - offsets[rows]
            lower, top = bounds[used, 0][rows], bounds[used, 1][rows]
            local = local_coords(u[pts], lower, top).to(torch.float32)
            x = torch.zeros(used.numel(), int(counts.max()), 3, dtype=torch.float32, device=u.device)
            x = x.index_put((rows, slot), local)
            params = {k: v.index_select(0, used.to(v.device)) for k, v in self.params.items()}
            values = siren_forward(params, x.to(self.device), self.config.omega_0).to(u.device)[rows, slot]
            out = out.index_add(0, pts, weight.to(torch.float32) * values)
        if self.base is not None:
            out = out + self.base(u.to(self.device)).to(device=out.device, dtype=torch.float32)
        if not normalized:
            low, high = self.value_range
            out = out * (high - low) + low
        fill = torch.full_like(out, float(fill_value))
        return torch.where(inside, out, fill)

    def density(self, points: np.ndarray, *, normalized: bool = False, fill_value: float = 0.0,
                batch_size: int = 65536) -> np.ndarray:
        """Density at Angstrom ``points`` ``(N, 3)`` (x, y, z): in map units, or in [0, 1] if ``normalized``."""
        pts = _as_points(points)
        out = np.empty(len(pts), dtype=np.float32)
        with torch.no_grad():
            for i in range(0, len(pts), batch_size):
                chunk = torch.from_numpy(pts[i:i + batch_size])
                out[i:i + batch_size] = self.evaluate(chunk, normalized, fill_value).cpu().numpy()
        return out

    def gradient(self, points: np.ndarray, *, normalized: bool = False, batch_size: int = 32768) -> np.ndarray:
        """Gradient ``(N, 3)`` (d/dx, d/dy, d/dz) of the density at Angstrom ``points``, per Angstrom (autograd)."""
        pts = _as_points(points)
        out = np.empty((len(pts), 3), dtype=np.float64)
        for i in range(0, len(pts), batch_size):
            chunk = torch.from_numpy(pts[i:i + batch_size]).requires_grad_(True)
            values = self.evaluate(chunk, normalized)
            if not values.requires_grad:  # every point outside the map: the fill value is constant
                out[i:i + batch_size] = 0.0
                continue
            (grad,) = torch.autograd.grad(values.sum(), chunk)
            out[i:i + batch_size] = grad.cpu().numpy()
        return out

    # -- grids ---------------------------------------------------------------------------------------
    def sample(self, like: xr.DataArray | xr.Dataset | None = None, *, normalized: bool = False) -> xr.DataArray:
        """The density on the grid of ``like``'s ``z``, ``y``, ``x`` coords (default: the fitted map's grid).

        At arbitrary (e.g. random) points rather than on a grid, use :meth:`density` (and :meth:`gradient`)
        with an ``(N, 3)`` array of Angstrom (x, y, z); :meth:`resample` makes a grid of another voxel size.
        """
        if like is None:
            coords = {d: self._axis_coords(d) for d in VOLUME_DIMS}
        else:
            missing = [d for d in VOLUME_DIMS if d not in like.coords]
            if missing:
                raise ParameterError(f"`like` lacks the coords {missing}; pass a density DataArray (z, y, x)")
            coords = {d: np.asarray(like.coords[d].values, dtype=np.float64) for d in VOLUME_DIMS}
        z, y, x = np.meshgrid(coords["z"], coords["y"], coords["x"], indexing="ij")
        points = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=-1)
        values = self.density(points, normalized=normalized).reshape(z.shape)
        voxel = [float(np.diff(coords[d][:2])[0]) if len(coords[d]) > 1 else self.voxel_size[2 - i]
                 for i, d in enumerate(VOLUME_DIMS)][::-1]
        attrs = {k: v for k, v in self.attrs.items() if k in ("source_id", "source_uri", "retrieved", "history")}
        attrs.update(voxel_size=voxel, origin=[float(coords[d][0]) for d in ("x", "y", "z")],
                     perc_platform_version=__version__)
        out = xr.DataArray(values, dims=VOLUME_DIMS, coords=coords, name=DENSITY_NAME, attrs=attrs)
        add_history(out, f"sampled neural map on a {values.shape} grid, voxel {[round(v, 4) for v in voxel]} A")
        return out

    def resample(self, voxel_size: float | tuple[float, float, float]) -> xr.DataArray:
        """The density on a grid of ``voxel_size`` (A, or (x, y, z)) from the same origin over the same extent.

        For the density at arbitrary points (not on a grid), use :meth:`density` with ``(N, 3)`` Angstrom
        (x, y, z) positions.
        """
        size = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,))
        if not np.all(size > 0):
            raise ParameterError(f"voxel_size={voxel_size!r} must be positive (Angstrom)")
        coords = {}
        for i, d in enumerate(("x", "y", "z")):
            extent = (self.tiling.shape[2 - i] - 1) * self.voxel_size[i]
            count = int(np.floor(extent / size[i] + 1e-4)) + 1  # float32 voxel sizes: allow 1e-4 voxel
            coords[d] = self.origin[i] + np.arange(count) * size[i]
        like = xr.Dataset(coords={d: coords[d] for d in VOLUME_DIMS})
        return self.sample(like)

    def _axis_coords(self, dim: str) -> np.ndarray:
        i = ("x", "y", "z").index(dim)
        return self.origin[i] + np.arange(self.tiling.shape[2 - i]) * self.voxel_size[i]

    def to_mrc(self, path: str | os.PathLike[str], voxel_size: float | tuple[float, float, float] | None = None,
               *, overwrite: bool = False) -> Path:
        """Write the density (on the fitted grid, or resampled to ``voxel_size``) as an MRC file.

        The ORIGIN field holds the Angstrom position of the first voxel (NXSTART etc. are 0), so
        ``open_volume`` re-opens it at the same placement.
        """
        from perc_platform.io.mrc_writer import write_volume

        target = Path(path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
        grid = self.sample() if voxel_size is None else self.resample(voxel_size)
        label = f"perc-platform {__version__} neural map of {self.attrs.get('source_id', '?')}"
        return write_volume(target, np.ascontiguousarray(grid.values, dtype=np.float32),
                            voxel_size=tuple(grid.attrs["voxel_size"]), origin=tuple(grid.attrs["origin"]),
                            labels=[label[:80]])

    # -- persistence ---------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """Everything but the weights and the base, as JSON-ready data."""
        return {"siren": self.config.to_dict(), "tiling": self.tiling.to_dict(), "origin": list(self.origin),
                "voxel_size": list(self.voxel_size), "value_range": list(self.value_range),
                "base_kind": self.base_kind,
                "attrs": _jsonable(self.attrs)}

    def save(self, path: str | os.PathLike[str], *, precision: str = "uint16") -> Path:
        """Save to a folder: ``neural_map.npz`` (compressed arrays, no pickle) and ``neural_map.json``.

        ``precision``: how the spline base is stored: ``"uint8"`` (error <= 1/510 of the value range),
        ``"uint16"`` (<= 1/131070), ``"float16"`` or ``"float32"``; the SIREN weights are float16 except with
        ``"float32"``. See :mod:`perc_platform.neural_maps._format` for the layout.
        """
        from perc_platform.neural_maps._format import save_neural_map

        return save_neural_map(self, Path(path), precision)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> NeuralMap:
        """Load a folder written by :meth:`save`."""
        from perc_platform.neural_maps._format import load_neural_map

        meta, params, base = load_neural_map(Path(path))
        nmap = cls(dict(params), SirenConfig(**meta["siren"]), Tiling.from_dict(meta["tiling"]), tuple(meta["origin"]),
                   tuple(meta["voxel_size"]), tuple(meta["value_range"]), dict(meta.get("attrs", {})), base=base,
                   base_kind=meta.get("base_kind", "cubic"))
        return nmap.to(device)

    def copy(self) -> NeuralMap:
        return copy.deepcopy(self)


def _as_points(points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim == 1 and pts.size == 3:
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ParameterError(f"points must be an (N, 3) array of Angstrom (x, y, z), got shape {pts.shape}")
    return np.ascontiguousarray(pts)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
