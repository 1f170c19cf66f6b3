"""EMDB maps by id as lazy ``density`` DataArrays (the ``.map.gz`` is fetched and decompressed once)."""

from __future__ import annotations

from typing import Any

import xarray as xr

from perc_platform.archives import emdb
from perc_platform.archives._ids import validate_emdb_id
from perc_platform.conventions import add_history
from perc_platform.datasets.volumes import open_volume
from perc_platform.errors import DataNotFoundError

__all__ = ["open_emdb_map"]


def open_emdb_map(emdb_id: str | int, *, chunks: int | None = None, metadata: bool = True) -> xr.DataArray:
    """Map ``emdb_id`` as a lazy ``density`` DataArray ``(z, y, x)`` in Angstrom coords.

    The gzipped map is downloaded once into the cache and decompressed once; reads are lazy from disk.
    With ``metadata`` the entry's resolution, fitted PDB ids and contour level are added to the attrs
    when the entry metadata can be had (a missing entry record does not stop the map from opening).
    """
    eid = validate_emdb_id(emdb_id)
    path = emdb.fetch_emdb_map(eid)
    density = open_volume(path, chunks=chunks)
    density.attrs.update({"source_id": eid, "source_uri": emdb.emdb_map_url(eid), "cache_path": str(path)})
    if metadata:
        try:
            entry = emdb.fetch_emdb_entry(eid)
        except DataNotFoundError as exc:
            add_history(density, f"no entry metadata: {exc}")
        else:
            extra: dict[str, Any] = {"title": entry.title or "", "fitted_pdb_ids": entry.fitted_pdb_ids}
            if entry.resolution is not None:
                extra["resolution"] = entry.resolution
            if entry.contour_level is not None:
                extra["contour_level"] = entry.contour_level
            density.attrs.update(extra)
    add_history(density, f"fetched {eid} from {emdb.emdb_map_url(eid)}")
    return density
