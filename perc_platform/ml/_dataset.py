"""``ParticleDataset``: map-style access to particles with their labels and numeric metadata."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch.utils.data import Dataset

from perc_platform.errors import InputError, ParameterError
from perc_platform.ml._device import default_threads
from perc_platform.ml._labels import Labels, resolve_labels
from perc_platform.ml._reader import ChunkReader, Segment, chunk_reader_for, read_indices, read_into
from perc_platform.ml._sharding import TASK_BYTES, read_tasks, segments_of

__all__ = ["RESERVED", "ParticleDataset"]

#: Batch keys that metadata columns may not take.
RESERVED = ("image", "index", "label")



def _numeric_columns(images: xr.DataArray, names: Sequence[str] | None) -> dict[str, np.ndarray]:
    dim = images.dims[0]
    columns = {str(k): c for k, c in images.coords.items() if c.dims == (dim,) and str(k) not in RESERVED}
    if names is None:
        return {k: np.asarray(c.values) for k, c in columns.items() if np.asarray(c.values).dtype.kind in "biuf"}
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in columns:
            raise ParameterError(f"metadata column {name!r} is not a per-particle coord; have: {sorted(columns)}")
        values = np.asarray(columns[name].values)
        if values.dtype.kind not in "biuf":
            raise ParameterError(f"metadata column {name!r} holds {values.dtype} values, which cannot become a "
                                 "tensor; use it as labels= or leave it out")
        out[name] = values
    return out


class ParticleDataset(Dataset):  # type: ignore[type-arg]
    """Map-style dataset over the particles of an ``image`` DataArray (lazy or not).

    ``dataset[i]`` is a dict of tensors for the ``i``-th selected particle: ``image`` ``(y, x)``, ``index``
    (its position in ``images``), ``label`` (when labels are given) and numeric metadata columns.
    :meth:`batch` assembles many at once as whole NumPy arrays. After :meth:`materialize` the images are held
    in memory (one read of every chunk); otherwise each access reads through the chunk reader.

    Parameters
    ----------
    images
        DataArray ``(particle, y, x)`` (or ``(micrograph, y, x)``), dask-backed or in memory.
    indices
        Particle positions to use (e.g. one part of a :class:`Split`); default all.
    labels, classes
        Labels from a coord name, ``"file_prefix"`` or one value per particle; ``classes`` fixes the known
        classes and their order. Batches carry ``label`` as the class code (an index into ``classes``).
    metadata
        Names of numeric per-particle coords to carry; default all numeric ones.
    dtype
        Image dtype of batches (default float32).
    reader
        Chunk reader (see ``perc_platform.ml._reader``); default the fastest for ``images``.
    """

    def __init__(self, images: xr.DataArray, *, indices: Sequence[int] | np.ndarray | None = None,
                 labels: str | Sequence[Any] | np.ndarray | None = None, classes: Sequence[Any] | None = None,
                 metadata: Sequence[str] | None = None, dtype: Any = "float32",
                 reader: ChunkReader | None = None) -> None:
        if not isinstance(images, xr.DataArray) or images.ndim not in (3, 4):
            raise InputError(f"expected an image DataArray (particle, y, x) or subtomograms (particle, z, y, x), "
                             f"got {type(images).__name__} with dims {getattr(images, 'dims', None)}; pass the "
                             "`image` variable")
        self.images = images
        self.n_total = int(images.shape[0])
        self.image_shape: tuple[int, ...] = tuple(int(s) for s in images.shape[1:])
        chosen = np.arange(self.n_total, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        if chosen.size and (chosen.min() < 0 or chosen.max() >= self.n_total):
            raise ParameterError(f"indices must lie in [0, {self.n_total}); got {chosen.min()}..{chosen.max()}")
        self.indices = np.unique(chosen)
        if self.indices.size != chosen.size:
            raise ParameterError("indices repeat particles; give each particle once")
        self.reader = reader if reader is not None else chunk_reader_for(images)
        self.labels: Labels | None = resolve_labels(images, labels, classes)
        self.metadata = _numeric_columns(images, metadata)
        self.dtype = np.dtype(dtype)
        self._data: torch.Tensor | None = None
        self._on_device: torch.Tensor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_on_device": None}  # device memory does not travel to worker processes

    def __len__(self) -> int:
        return int(self.indices.size)

    @property
    def classes(self) -> tuple[Any, ...] | None:
        return self.labels.classes if self.labels is not None else None

    @property
    def image_nbytes(self) -> int:
        """Bytes of one image in the batch dtype."""
        return int(np.prod(self.image_shape)) * self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the selected images in the batch dtype."""
        return len(self) * self.image_nbytes

    @property
    def materialized(self) -> bool:
        return self._data is not None

    @property
    def data(self) -> np.ndarray:
        """The materialised images (selected particles, in ``indices`` order)."""
        if self._data is None:
            raise ParameterError("the dataset is not materialised; call materialize() first")
        return self._data.numpy()

    def materialize(self, threads: int | None = None) -> ParticleDataset:
        """Read every selected particle once into memory (chunk by chunk, ``threads`` at a time; default one
        per usable core, at most 8)."""
        if self._data is not None:
            return self
        full = self.reader.blocks[-1][1] == self.n_total and len(self) == self.n_total
        raw = getattr(self.reader, "array", None)
        if full and isinstance(raw, np.ndarray) and raw.dtype == self.dtype and raw.flags.c_contiguous:
            self._data = torch.from_numpy(raw) if raw.flags.writeable else torch.from_numpy(raw.copy())
            return self
        out = np.empty((len(self), *self.image_shape), dtype=self.dtype)

        def fill(task: list[tuple[Segment, int]]) -> None:
            for seg, row in task:
                read_into(self.reader, seg, list(out[row:row + len(seg)]))

        self._read_all(fill, threads)
        self._data = torch.from_numpy(out)
        return self

    def to_device(self, device: torch.device, threads: int | None = None) -> torch.Tensor:
        """The selected images as one tensor on ``device``, made once and kept.

        Unless the dataset is already materialised on the host, no host copy of the whole selection is made:
        each read task fills a (pinned, for CUDA) staging array and copies it into its rows of the device
        tensor, so a selection larger than host memory can live on a large GPU.
        """
        held = self._on_device
        if held is not None and held.device == device:
            return held
        if self._data is not None:
            self._on_device = self._data.to(device)
            return self._on_device
        dtype = torch.from_numpy(np.empty(0, self.dtype)).dtype
        out = torch.empty((len(self), *self.image_shape), dtype=dtype, device=device)
        pin = device.type == "cuda"

        def fill(task: list[tuple[Segment, int]]) -> None:
            first = task[0][1]  # a task's pieces cover consecutive rows (see read_tasks)
            count = sum(len(seg) for seg, _ in task)
            stage = torch.empty((count, *self.image_shape), dtype=dtype, pin_memory=pin)
            host = stage.numpy()
            for seg, row in task:
                read_into(self.reader, seg, list(host[row - first:row - first + len(seg)]))
            out[first:first + count].copy_(stage)  # synchronous, so the staging array can go at once

        self._read_all(fill, threads)
        self._on_device = out
        return out

    def _read_all(self, fill: Callable[[list[tuple[Segment, int]]], None], threads: int | None) -> None:
        """Call ``fill(task)`` on a thread pool for read tasks of about 16 MiB that cover the selection."""
        per_task = max(1, TASK_BYTES // max(1, self.image_nbytes))
        tasks = read_tasks(segments_of(self.reader.blocks, self.indices), per_task)
        with ThreadPoolExecutor(max_workers=max(1, threads or default_threads())) as pool:
            list(pool.map(fill, [t for t in tasks if t]))

    def fields(self, particles: np.ndarray) -> dict[str, np.ndarray]:
        """``index``, ``label`` and metadata of the given particle positions (in ``images``)."""
        out: dict[str, np.ndarray] = {"index": np.asarray(particles, dtype=np.int64)}
        if self.labels is not None:
            out["label"] = self.labels.codes[particles]
        for name, values in self.metadata.items():
            out[name] = values[particles]
        return out

    def batch(self, positions: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """Whole-array batch (NumPy) of dataset positions ``positions`` (not particle positions)."""
        positions = np.asarray(positions, dtype=np.int64)
        particles = self.indices[positions]
        if self._data is not None:
            images = np.take(self.data, positions, axis=0)
        else:
            images = np.ascontiguousarray(read_indices(self.reader, particles), dtype=self.dtype)
        return {"image": images, **self.fields(particles)}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} particles")
        batch = self.batch([i % len(self)])
        return {k: torch.as_tensor(v[0]) for k, v in batch.items()}
