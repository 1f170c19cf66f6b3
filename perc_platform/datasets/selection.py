"""Random access into lazy particle stacks that reads only the particles asked for.

Dask does not fuse a fancy index into the chunk getter, so ``images.isel(particle=idx)`` on a dask-backed
stack reads every chunk it touches in full. :func:`select_particles` instead builds a new lazy array over
exactly the chosen particles (runs of consecutive images still coalesce into one ranged read).
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from perc_platform.io.mrc_array import MrcStackArray

__all__ = ["lazy_particles", "select_particles", "stack_source"]


def stack_source(images: xr.DataArray) -> MrcStackArray | None:
    """The MrcStackArray behind a stack opened by ``open_particles`` (None once other ops were applied)."""
    data = images.data
    if not isinstance(data, da.Array) or not data.name.startswith("perc-read-mrc-"):
        return None
    for layer in data.dask.layers.values():
        for value in layer.values():
            value = getattr(value, "value", value)  # task-spec DataNode wraps graph constants
            if isinstance(value, MrcStackArray) and value.shape == data.shape:
                return value
    return None


def lazy_particles(array: MrcStackArray, chunk_size: int | None = None) -> da.Array:
    """A dask array over ``array`` chunked by the block plan (one ranged read per chunk)."""
    from perc_platform.datasets.particles import block_plan

    chunks = block_plan(array.file_ids, array.local, array.files[0].header.section_bytes, chunk_size)
    name = "perc-read-mrc-" + tokenize([f.url for f in array.files], array.file_ids, array.local, chunks)
    data = da.from_array(array, chunks=(chunks, (array.shape[1],), (array.shape[2],)), name=name,
                         meta=np.empty((0, 0, 0), dtype=array.dtype), asarray=False, fancy=True)
    # A Blockwise read layer is fused into whatever consumes it (a reduction's chunk step), and the Dask
    # dashboard would name those tasks after the consumer only; materialised, the reads stay visible there
    # as perc-read-mrc tasks (task prefixes come from key names).
    layers = {k: MaterializedLayer(dict(v)) if k == name else v for k, v in data.dask.layers.items()}
    return da.Array(HighLevelGraph(layers, data.dask.dependencies), name, data.chunks, meta=data._meta)


def select_particles(images: xr.DataArray, indices: Sequence[int] | np.ndarray | slice,
                     chunk_size: int | None = None) -> xr.DataArray:
    """``images.isel(particle=indices)`` that stays lazy and reads only the selected particles."""
    picked = images.isel(particle=indices)
    source = stack_source(images)
    if source is None:
        return picked
    positions = np.arange(images.sizes["particle"])[indices]
    subset = MrcStackArray(source.files, source.file_ids[positions], source.local[positions])
    return picked.copy(data=lazy_particles(subset, chunk_size))
