"""OME-Zarr volumes (as the CZ cryoET Data Portal serves tomograms) as lazy ``(z, y, x)`` DataArrays.

Read with ``zarr`` directly rather than ``ome-zarr-py``: the reader needs only the ``multiscales`` block of
the group attributes (NGFF 0.4 in ``.zattrs``, 0.5 under ``ome`` in ``zarr.json``), and ome-zarr-py pulls in
s3fs/botocore and scikit-image and pins pydantic below the version the platform uses. The chosen scale level
becomes a dask array over the zarr chunks (nothing but metadata is read at open); coords are absolute
Angstrom from the level's ``scale`` and ``translation`` transforms and the axes' units.
"""

from __future__ import annotations

import math
import os
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.conventions import DENSITY_NAME, VOLUME_DIMS, provenance
from perc_platform.errors import DataNotFoundError, FormatError, ParameterError
from perc_platform.storage.policy import derived, trusts_caller
from perc_platform.storage.ranges import is_remote

__all__ = ["open_ome_zarr", "read_multiscales"]

#: Factor from an NGFF space unit to Angstrom.
_TO_ANGSTROM = {"angstrom": 1.0, "nanometer": 10.0, "micrometer": 1e4, "millimeter": 1e7, "meter": 1e10,
                "picometer": 0.01, None: 1.0, "": 1.0}


def _group(url: str, storage_options: dict[str, Any] | None) -> Any:
    import zarr

    if is_remote(url):
        from perc_platform.storage.policy import check_url

        check_url(url, what="OME-Zarr volume")
        store: Any = zarr.storage.FsspecStore.from_url(url, read_only=True, storage_options=storage_options or {})
    else:
        if not os.path.isdir(url):
            raise DataNotFoundError(f"{url}: no such OME-Zarr folder; check the path")
        store = zarr.storage.LocalStore(url, read_only=True)
    try:
        return zarr.open_group(store, mode="r")
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise FormatError(f"{url}: not a zarr group ({exc}); an OME-Zarr volume is a folder with .zattrs or "
                          "zarr.json") from None


def read_multiscales(attrs: dict[str, Any], source: str) -> dict[str, Any]:
    """The first ``multiscales`` entry of OME-Zarr group attributes, checked for a z, y, x space."""
    block = attrs.get("ome", attrs)
    scales = block.get("multiscales") if isinstance(block, dict) else None
    if not isinstance(scales, list) or not scales or not isinstance(scales[0], dict):
        raise FormatError(f"{source}: no 'multiscales' metadata; this zarr group is not an OME-Zarr image")
    entry = scales[0]
    datasets = entry.get("datasets")
    if not isinstance(datasets, list) or not datasets or not all(isinstance(d, dict) and "path" in d
                                                                 for d in datasets):
        raise FormatError(f"{source}: multiscales lists no datasets with a 'path'")
    return entry


def _axes(entry: dict[str, Any], ndim: int, source: str) -> tuple[list[str], list[float]]:
    axes = entry.get("axes") or [{"name": n, "type": "space"} for n in ("z", "y", "x")[-ndim:]]
    names = [str(a.get("name")) if isinstance(a, dict) else str(a) for a in axes]
    units = [a.get("unit") if isinstance(a, dict) else None for a in axes]
    if len(names) != ndim or names[-3:] != list(VOLUME_DIMS):
        raise FormatError(f"{source}: axes {names} for a {ndim}-D array; a volume ends in z, y, x")
    factors = []
    for unit in units[-3:]:
        if unit not in _TO_ANGSTROM:
            raise FormatError(f"{source}: space unit {unit!r} is not one of {sorted(u for u in _TO_ANGSTROM if u)}")
        factors.append(_TO_ANGSTROM[unit])
    return names, factors


def _transform(dataset: dict[str, Any], kind: str, ndim: int, source: str) -> list[float] | None:
    for t in dataset.get("coordinateTransformations") or []:
        if isinstance(t, dict) and t.get("type") == kind:
            values = t.get(kind)
            if not isinstance(values, list) or len(values) != ndim or not all(
                    isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise FormatError(f"{source}: the {kind} transform {values!r} is not {ndim} finite numbers")
            return [float(v) for v in values]
    return None


@trusts_caller("url")
def open_ome_zarr(url: str | os.PathLike[str], *, level: int = 0, storage_options: dict[str, Any] | None = None,
                  ) -> xr.DataArray:
    """Open one scale level of an OME-Zarr volume lazily as a ``density`` DataArray ``(z, y, x)``.

    Parameters
    ----------
    url
        The OME-Zarr group (a local folder or an fsspec URL such as ``https://.../TS_01.zarr``).
    level
        Index into ``multiscales[0].datasets`` (0 is full resolution; the portal serves 0, 1, 2 at 1x, 2x, 4x).

    ``voxel_size`` (A, per x, y, z) comes from the level's ``scale`` transform and the axes' units. Leading
    non-space axes (``t``, ``c``) must have length one and are dropped.
    """
    source = derived(url, os.fspath(url).rstrip("/"))
    group = _group(source, storage_options)
    entry = read_multiscales(dict(group.attrs), source)
    datasets = entry["datasets"]
    if not 0 <= level < len(datasets):
        raise ParameterError(f"level={level} for {source}, which has levels 0 to {len(datasets) - 1}")
    path = str(datasets[level]["path"])
    try:
        array = group[path]
    except KeyError:
        raise FormatError(f"{source}: multiscales names level {path!r}, which the group does not hold") from None
    ndim = array.ndim
    names, factors = _axes(entry, ndim, source)
    if any(array.shape[i] != 1 for i in range(ndim - 3)):
        raise FormatError(f"{source}: axes {names[:-3]} have lengths {array.shape[:-3]}; only one volume at a time "
                          "is read (select the time point / channel first)")
    scale = _transform(datasets[level], "scale", ndim, source) or [1.0] * ndim
    shift = _transform(datasets[level], "translation", ndim, source) or [0.0] * ndim
    voxel_zyx = [s * f for s, f in zip(scale[-3:], factors, strict=True)]
    origin_zyx = [t * f for t, f in zip(shift[-3:], factors, strict=True)]
    if not all(v > 0 for v in voxel_zyx):
        raise FormatError(f"{source}: level {path} has scale {scale}; voxel sizes must be positive")
    data = da.from_zarr(array)
    data = data[(0,) * (ndim - 3)] if ndim > 3 else data
    coords = {dim: origin_zyx[i] + np.arange(data.shape[i]) * voxel_zyx[i] for i, dim in enumerate(VOLUME_DIMS)}
    attrs: dict[str, Any] = {"voxel_size": voxel_zyx[::-1], "origin": origin_zyx[::-1], "ome_zarr_level": level,
                             "ome_zarr_path": path, "ome_zarr_levels": len(datasets), "kind": "tomogram"}
    attrs.update(provenance(source_id=os.path.basename(source), source_uri=source,
                            history=f"opened OME-Zarr level {path} lazily"))
    return xr.DataArray(data, dims=VOLUME_DIMS, coords=coords, name=DENSITY_NAME, attrs=attrs)
