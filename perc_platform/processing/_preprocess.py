"""Preprocess particle stacks for training: window, Fourier-crop, normalise, into a chunked Zarr store.

Each chunk of particles is read, processed and written to its own region of the store by a task on the
Dask cluster; only small task results come back to the client, so client memory stays flat however large
the stack. After a chunk's region is written, the task writes a done-marker (``.perc-done/<chunk>``), so
a rerun after an interruption skips finished chunks. The store is an xarray Dataset (``image`` plus the
per-particle coords) that ``open_preprocessed`` opens lazily.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from perc_platform.config import get_config
from perc_platform.conventions import IMAGE_NAME, PARTICLE_DIMS, add_history, validate_particles
from perc_platform.errors import DataNotFoundError, FormatError, ParameterError
from perc_platform.processing._export import MrcsRegion, create_mrcs, write_star_for
from perc_platform.processing._images import NORMALISE, Normalise, preprocess_block
from perc_platform.processing._tasks import Progress, run_chunk_tasks
from perc_platform.storage.cache import write_atomically

__all__ = ["DONE_DIR", "open_preprocessed", "preprocess", "store_progress"]

DONE_DIR = ".perc-done"
_PARAMS_ATTR = "perc_preprocess"


def _attr_value(value: Any) -> Any:
    """A JSON-serialisable version of an attr value (Zarr stores attrs as JSON)."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_attr_value(v) for v in value]
    return value if isinstance(value, (str, bool, int, float)) or value is None else str(value)


def _template(images: xr.DataArray, box: int, chunk: int, attrs: dict[str, Any]) -> xr.Dataset:
    """The store's layout: a lazy ``image`` of the output shape (never computed) and the per-particle coords."""
    data = da.zeros((images.shape[0], box, box), chunks=(chunk, box, box), dtype=np.float32)
    coords = {}
    for name, coord in images.coords.items():
        if coord.dims == (images.dims[0],):
            values = np.asarray(coord.values)
            coords[str(name)] = (PARTICLE_DIMS[0], values.astype(str) if values.dtype == object else values)
    return xr.Dataset({IMAGE_NAME: (PARTICLE_DIMS, data)}, coords=coords, attrs=attrs)


def _process_chunk(block: np.ndarray, store: str, index: int, start: int, box: int,
                   window: tuple[float, float] | None, normalise: Normalise, mrcs: MrcsRegion | None) -> int:
    """Worker task: preprocess one chunk, write its region (and the .mrcs region), then its done-marker."""
    import zarr

    out = preprocess_block(block, box, window, normalise)
    zarr.open_array(store, path=IMAGE_NAME, mode="r+")[start:start + out.shape[0]] = out
    if mrcs is not None:
        mrcs[start:start + out.shape[0]] = out
    marker = Path(store) / DONE_DIR / f"{index:08d}"
    # atomic: a marker exists only for a chunk that is fully written
    write_atomically(marker, lambda tmp: tmp.write_text(f"{start} {out.shape[0]}\n"))
    return index


def _store_params(path: Path) -> dict[str, Any] | None:
    """The parameters of the preprocessing store at ``path``; None when there is nothing (or an empty folder)."""
    import zarr

    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return None
    try:
        return dict(json.loads(str(zarr.open_group(str(path), mode="r").attrs[_PARAMS_ATTR])))
    except (KeyError, FileNotFoundError, ValueError, TypeError) as exc:
        raise FormatError(f"{path} exists and is not a perc preprocessing store; choose another path (it is "
                          "never overwritten)") from exc


def store_progress(store: str | os.PathLike[str]) -> tuple[int, int]:
    """``(done, total)`` chunks of a preprocessed Zarr store."""
    import zarr

    group = zarr.open_group(os.fspath(store), mode="r")
    params = json.loads(str(group.attrs[_PARAMS_ATTR]))
    done_dir = Path(store) / DONE_DIR
    done = len([p for p in done_dir.iterdir() if p.name.isdigit()]) if done_dir.is_dir() else 0
    return done, int(params["n_chunks"])


def preprocess(images: xr.DataArray, store: str | os.PathLike[str], *, box: int | None = None,
               window: bool | tuple[float, float] = True, normalise: Normalise = "background",
               chunk_size: int | None = None, mrcs: str | os.PathLike[str] | None = None, overwrite: bool = False,
               progress: Progress | None = None, random: int | None = None, seed: int = 0) -> xr.DataArray:
    """Window, Fourier-crop to ``box`` and normalise ``images`` chunk-parallel on the cluster into ``store``.

    Parameters
    ----------
    images
        Particles ``(particle, y, x)``, square, lazy (dask) or in memory; coords and attrs are kept, the
        pixel size grows by ``N / box``.
    store
        Zarr store directory to write. If it exists from an interrupted run with the same parameters, only
        the chunks without a done-marker are computed (resume); different parameters are an error unless
        ``overwrite``.
    box
        Output side in pixels (Fourier cropping; default: keep the size).
    window
        cryoDRGN's soft circular window before cropping: True for radii (0.85, 0.99) of the half box, a
        pair of radii, or False.
    normalise
        ``"background"`` (RELION-style, outside 0.85 of the half box), ``"standard"``, ``"percentile"``
        (95th percentile of positive values, clipped to [-1, 1]) or None.
    chunk_size
        Particles per chunk and per Zarr chunk (default: about ``PERC_CHUNK_BYTES`` of input, at most 1024).
    mrcs
        Also write the result to this ``.mrcs`` with a RELION 3.1 STAR file beside it.
    progress
        Called with ``(done, total)`` chunks as chunks finish (the CLI shows a progress line).
    random, seed
        Keep only a random subset of ``random`` particles, drawn with ``seed`` (cryoDRGN's ``select_random``;
        sorted, so reads stay in file order); the ``source_index`` coord holds their positions in ``images``.

    Returns the result opened lazily from the store (``open_preprocessed``).
    """
    validate_particles(images)
    if random is not None:
        from perc_platform.datasets.selection import random_subset, select_particles

        chosen = random_subset(int(images.shape[0]), random, seed)
        images = select_particles(images, chosen).assign_coords(source_index=(images.dims[0], chosen))
    n, ny, nx = images.shape
    if ny != nx:
        raise ParameterError(f"images are {nx}x{ny}; preprocessing needs square images")
    box = nx if box is None else int(box)
    if not 1 <= box <= nx:
        raise ParameterError(f"box={box}: give an output size from 1 to the image size {nx}")
    radii = (0.85, 0.99) if window is True else (tuple(window) if window else None)
    if normalise not in (*NORMALISE, None):
        raise ParameterError(f"normalise={normalise!r}: use one of {NORMALISE} or None")
    chunk = chunk_size or max(1, min(1024, get_config().chunk_bytes // (nx * nx * images.dtype.itemsize)))
    n_chunks = -(-n // chunk)
    params = {"n": n, "input_size": nx, "box": box, "window": list(radii) if radii else None,
              "normalise": normalise, "chunk_size": chunk, "n_chunks": n_chunks, "dtype": str(images.dtype),
              "mrcs": os.path.abspath(mrcs) if mrcs is not None else None}
    if random is not None:
        params.update(random=int(random), seed=int(seed))
    store = os.fspath(store)
    path = Path(store)
    previous = _store_params(path)
    if previous is not None and overwrite:
        shutil.rmtree(path)
        previous = None
    if previous is not None and previous != params:
        raise ParameterError(f"{store} holds a preprocessing run with other parameters ({previous}); pass "
                             "overwrite=True to start again, or the same parameters to resume")
    resuming = previous is not None
    pixel = images.attrs.get("pixel_size")
    attrs = {k: _attr_value(v) for k, v in images.attrs.items()}
    if pixel:
        attrs["pixel_size"] = float(pixel) * nx / box
    attrs[_PARAMS_ATTR] = json.dumps(params)
    holder = xr.Dataset(attrs=attrs)
    add_history(holder, f"preprocessed {n} particles {nx}->{box} px (window {radii}, normalise {normalise})")
    attrs = holder.attrs
    if not resuming:
        shutil.rmtree(path, ignore_errors=True)  # an empty folder
        # Zarr format 2: its string coords and consolidated metadata are specified (format 3's are not yet).
        # Images are stored uncompressed: noisy cryo-EM pixels do not compress, and compressing costs CPU.
        _template(images, box, chunk, attrs).to_zarr(store, mode="w", compute=False, zarr_format=2,
                                                     consolidated=True, encoding={IMAGE_NAME: {"compressors": None}})
        (path / DONE_DIR).mkdir()
    mrcs_target = None
    if mrcs is not None:
        if not resuming:
            mrcs_target = create_mrcs(mrcs, (n, box, box), attrs.get("pixel_size"))
        elif Path(mrcs).exists():
            mrcs_target = MrcsRegion(mrcs, (n, box, box))
        else:
            raise DataNotFoundError(f"{mrcs} was written by the interrupted run of {store} and is gone; pass "
                                    "overwrite=True to start again")
    done_before = {int(p.name) for p in (path / DONE_DIR).iterdir() if p.name.isdigit()}  # not temp files
    data = images.data if isinstance(images.data, da.Array) else da.from_array(images.values, chunks=chunk)
    blocks = data.rechunk((chunk, nx, nx)).to_delayed().ravel()
    pending = [i for i in range(n_chunks) if i not in done_before]
    task = dask.delayed(_process_chunk, pure=False)
    tasks = [task(blocks[i], store, i, i * chunk, box, radii, normalise, mrcs_target) for i in pending]
    run_chunk_tasks(tasks, total=n_chunks, done=len(done_before), progress=progress, start_cluster=True)
    result = open_preprocessed(store)
    if done_before:
        add_history(result, f"resumed: computed {len(pending)} of {n_chunks} chunks ({len(done_before)} already done)")
    if mrcs is not None:
        write_star_for(result, Path(mrcs).with_suffix(".star"), mrcs)
    return result


def open_preprocessed(store: str | os.PathLike[str]) -> xr.DataArray:
    """Open a store written by :func:`preprocess` lazily as an ``image`` DataArray ``(particle, y, x)``."""
    store = os.fspath(store)
    if not Path(store).exists():
        raise DataNotFoundError(f"preprocessed store {store} does not exist; run `perc preprocess` to make it")
    done, total = store_progress(store)
    if done < total:
        raise FormatError(f"{store} is incomplete ({done} of {total} chunks written); rerun preprocess with the "
                          "same parameters to finish it")
    ds = xr.open_zarr(store, consolidated=True)
    images = ds[IMAGE_NAME]
    images = images.assign_coords({name: coord.compute() for name, coord in images.coords.items()})
    images.attrs = dict(ds.attrs)
    images.attrs.pop(_PARAMS_ATTR, None)
    images.attrs["preprocess"] = json.loads(ds.attrs[_PARAMS_ATTR])
    return images
