"""Random access into lazy particle stacks that reads only the particles asked for.

Dask does not fuse a fancy index into the chunk getter; ``_fused_reads`` adds that graph optimisation, so
``images.isel(particle=idx)`` on a lazy stack reads only the frames indexed. :func:`select_particles` also
builds a new lazy array over exactly the chosen particles, with chunks planned for them (runs of
consecutive images coalesce into one ranged read).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import dask.array as da
import dask.local
import dask.threaded
import numpy as np
import xarray as xr
from dask._task_spec import DataNode, Task, TaskRef
from dask.array.core import getter
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

from perc_platform.config import get_config
from perc_platform.datasets import _fused_reads
from perc_platform.io.stack_array import StackArray

__all__ = ["READ_PREFIX", "block_plan", "lazy_particles", "select_particles", "stack_source"]

#: Key prefix of the read tasks of lazy stacks; the format name follows (``perc-read-mrc-``, ``perc-read-tiff-``).
READ_PREFIX = "perc-read-"


def block_plan(file_ids: np.ndarray, local: np.ndarray, section_bytes: int, chunk_size: int | None) -> tuple[int, ...]:
    """Particles per chunk: about ``chunk_bytes`` each.

    In file order, a file of at least one chunk starts a new chunk and is cut into whole chunks (its remainder
    may share a chunk with the small files after it), so a chunk is one contiguous byte range of a big file.
    Files smaller than a chunk are packed, whole, into shared chunks: a folder of 2,000 single-image files
    makes a few chunks, not 2,000 tiny dask tasks, and a chunk reads one range per file it holds.
    """
    per_chunk = chunk_size or max(1, get_config().chunk_bytes // max(1, section_bytes))
    n = int(file_ids.size)
    if n == 0:
        return (0,)
    in_file_order = bool(np.all(np.diff(file_ids) >= 0))
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(file_ids) != 0) + 1, [n]]) if in_file_order \
        else np.array([0, n])
    sizes: list[int] = []
    open_chunk = 0  # particles gathered so far into the chunk being filled
    for length in np.diff(bounds).tolist():
        if length >= per_chunk:
            if open_chunk:
                sizes.append(open_chunk)
            full, open_chunk = divmod(length, per_chunk)
            sizes.extend([per_chunk] * full)
            continue
        if open_chunk + length > per_chunk:
            sizes.append(open_chunk)
            open_chunk = 0
        open_chunk += length
    if open_chunk:
        sizes.append(open_chunk)
    return tuple(sizes)


def stack_source(images: xr.DataArray) -> StackArray | None:
    """The StackArray behind a stack opened by ``open_particles`` (None once other ops were applied)."""
    data = images.data
    if not isinstance(data, da.Array) or not data.name.startswith(READ_PREFIX):
        return None
    return _own_source(data)


def _small_graphs_here(dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """Dask's threaded scheduler, except for a graph of one read (the stack and one task), which runs in the
    calling thread: handing one task to a pool thread and back costs more than reading a few particles."""
    graph = dsk.__dask_graph__() if hasattr(dsk, "__dask_graph__") else dsk
    if len(graph) <= 2:
        return dask.local.get_sync(dsk, keys, **kwargs)
    return dask.threaded.get(dsk, keys, **kwargs)


class _LazyStack(da.Array):
    """The dask array of a lazy stack; only its default scheduler differs (:func:`_small_graphs_here`).

    Anything computed from it is a plain dask array again, and a configured scheduler or a distributed
    client always takes precedence (dask asks the collection last)."""

    __slots__ = ()
    __dask_scheduler__ = staticmethod(_small_graphs_here)

    def __getitem__(self, key: Any) -> Any:
        """A selection of whole particles (``images[:5000]``, ``isel(particle=[...])``) is a lazy stack again,
        over exactly those particles, so the loaders keep reading its files directly (and only its frames);
        any other index is dask's."""
        positions = _particle_positions(key, self.shape)
        source = _own_source(self) if positions is not None else None
        if source is None or positions is None:
            return super().__getitem__(key)
        return lazy_particles(source.subset(positions), max(self.chunks[0]))  # the stack's chunk size


def _particle_positions(key: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """The particle positions a key selects when it keeps every other axis whole (else None)."""
    key = key if isinstance(key, tuple) else (key,)
    if not key or len(key) > len(shape) or any(k is None or k is Ellipsis for k in key):
        return None
    if any(not (isinstance(k, slice) and k == slice(None)) for k in key[1:]):
        return None
    first = key[0]
    if isinstance(first, slice):
        positions = np.arange(shape[0])[first]
    elif isinstance(first, (list, np.ndarray)) and np.asarray(first).ndim == 1 and \
            np.asarray(first).dtype.kind in "iu" and np.asarray(first).size:
        positions = np.arange(shape[0])[np.asarray(first, dtype=np.int64)]  # bounds and negatives as NumPy
    else:
        return None
    return positions if positions.size else None


def _own_source(data: da.Array) -> StackArray | None:
    """The StackArray in the graph of a lazy stack (a task-spec DataNode wraps graph constants)."""
    for layer in data.dask.layers.values():
        for value in layer.values():
            value = getattr(value, "value", value)
            if isinstance(value, StackArray) and value.shape == data.shape:
                return value
    return None


def lazy_particles(array: StackArray, chunk_size: int | None = None) -> da.Array:
    """A dask array over ``array`` chunked by the block plan (one batch of ranged reads per chunk).

    Indexing it with a list (``isel(particle=[5, 600])``) reads only the frames indexed: see ``_fused_reads``.
    """
    _fused_reads.install()
    chunks = block_plan(array.file_ids, array.local, array.frame_bytes, chunk_size)
    name = f"{READ_PREFIX}{array.format}-" + tokenize([f.url for f in array.files], array.file_ids, array.local, chunks)
    # The graph ``da.from_array(array, chunks, asarray=False, fancy=True)`` makes, built directly (its
    # blockwise machinery cost more than the rest of opening a stack). The reads stay a materialised layer:
    # a Blockwise read layer would be fused into whatever consumes it, and the Dask dashboard would name
    # those tasks after the consumer only; here they stay visible as perc-read-<format> tasks.
    original, (ny, nx) = f"original-{name}", array.shape[1:]
    bounds = np.concatenate([[0], np.cumsum(chunks)]).tolist()
    reads = {(name, i, 0, 0): Task((name, i, 0, 0), getter, TaskRef(original),
                                   DataNode(None, (slice(a, b), slice(0, ny), slice(0, nx))), asarray=False, lock=False)
             for i, (a, b) in enumerate(itertools.pairwise(bounds))}
    graph = HighLevelGraph({original: MaterializedLayer({original: array}), name: MaterializedLayer(reads)},
                           {original: set(), name: {original}})
    return _LazyStack(graph, name, (chunks, (ny,), (nx,)), meta=np.empty((0, 0, 0), dtype=array.dtype))


def select_particles(images: xr.DataArray, indices: Sequence[int] | np.ndarray | slice,
                     chunk_size: int | None = None) -> xr.DataArray:
    """``images.isel(particle=indices)`` that stays lazy and reads only the selected particles."""
    source = stack_source(images)
    positions = np.arange(images.sizes["particle"])[indices] if source is not None else None
    if source is None or positions is None or positions.ndim != 1:
        return images.isel(particle=indices)
    # Only the coords are indexed here: indexing the dask array as well would build a graph to throw away.
    coords = {name: var.isel(particle=positions) if "particle" in var.dims else var
              for name, var in images.coords.variables.items()}
    return xr.DataArray(lazy_particles(source.subset(positions), chunk_size), dims=images.dims, coords=coords,
                        attrs=dict(images.attrs), name=images.name)


def random_subset(n: int | np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` positions drawn without replacement (seeded) from ``range(n)`` or from given positions, sorted.

    cryoDRGN's ``select_random`` with a seed: the same ``(n, count, seed)`` always gives the same subset, and
    sorted positions keep reads in file order.
    """
    pool = np.asarray(n, dtype=np.int64) if np.ndim(n) else np.arange(int(n))  # type: ignore[arg-type]
    if not 0 < int(count) <= pool.size:
        from perc_platform.errors import ParameterError

        raise ParameterError(f"random={count}: give a subset size from 1 to the {pool.size} particles selected")
    return np.sort(np.random.default_rng(int(seed)).choice(pool, size=int(count), replace=False)).astype(np.int64)
