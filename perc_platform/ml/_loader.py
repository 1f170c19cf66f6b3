"""``ParticleLoader``: one interface over stream and memory modes, feeding batches to a device."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import psutil
import torch
import xarray as xr
from torch.utils.data import DataLoader

from perc_platform.datasets.selection import random_subset
from perc_platform.errors import ParameterError
from perc_platform.ml._batches import BatchIterable
from perc_platform.ml._dataset import ParticleDataset
from perc_platform.ml._device import DeviceFeeder, resolve_device
from perc_platform.ml._labels import resolve_labels
from perc_platform.ml._memory import MemoryBatches
from perc_platform.ml._reader import ChunkReader
from perc_platform.ml._sharding import capture_rank
from perc_platform.ml._split import Split, make_split
from perc_platform.ml._stream import StreamBatches
from perc_platform.ml.transforms import compose

__all__ = ["ParticleLoader", "choose_mode", "train_validation_loaders"]

log = logging.getLogger("perc_platform.ml")

#: Memory mode keeps its images on a GPU by default only when they take at most this share of its free memory.
DEVICE_MEMORY_FRACTION = 0.25

SplitSpec = Sequence[int] | np.ndarray | tuple[Split | str | os.PathLike[str], str] | None


def choose_mode(nbytes: int, memory_fraction: float = 0.5, available: int | None = None) -> tuple[str, str]:
    """``("memory" | "stream", reason)``: memory when the data fit in ``memory_fraction`` of free memory."""
    free = psutil.virtual_memory().available if available is None else available
    limit = memory_fraction * free
    mode = "memory" if nbytes <= limit else "stream"
    sign = "<=" if mode == "memory" else ">"
    reason = (f"mode='auto' chose {mode!r}: the selected images take {nbytes / 2**30:.2f} GiB {sign} "
              f"{memory_fraction:.0%} of the {free / 2**30:.2f} GiB of memory available")
    return mode, reason


def _split_indices(split: SplitSpec, n: int) -> np.ndarray | None:
    if split is None:
        return None
    if isinstance(split, tuple) and len(split) == 2 and isinstance(split[1], str) and \
            isinstance(split[0], (Split, str, os.PathLike)):
        source, part = split
        chosen = source if isinstance(source, Split) else Split.load(source)
        chosen.check(n)
        return chosen[part]
    return np.asarray(split, dtype=np.int64)


def _passthrough(item: Any) -> Any:
    return item


class ParticleLoader:
    """Batches of particles as dicts of tensors on ``device``, streamed or from memory.

    ``for batch in loader`` yields ``{"image": (B, y, x), "index": (B,), "label": (B,), <metadata>: (B,)}``;
    every particle of the selection appears once per epoch across all ranks and workers, in an order fixed by
    ``seed`` and the epoch (which advances after each full pass, or with :meth:`set_epoch`).

    Parameters
    ----------
    images
        Particle DataArray ``(particle, y, x)``, lazy (dask) or in memory.
    batch_size
        Particles per batch.
    mode
        ``"stream"`` (bounded memory, whole-chunk reads, chunk-aware shuffling, read-ahead),
        ``"memory"`` (materialise once, true random access) or ``"auto"`` (memory when the selected images
        take at most ``memory_fraction`` of available memory; the choice is logged and kept in
        :attr:`mode_reason`).
    device
        Where batches go (default CUDA when available). On CUDA, host batches are pinned and copied with
        ``non_blocking``, the next batch prefetched on a side stream; transforms run on the device.
    split
        Particles to use: positions, or ``(split, "train" | "validation")`` with a :class:`Split` or the path
        of a saved one.
    seed
        Seeds the epoch orders and random transforms.
    labels, classes
        Labels from a coord name (e.g. ``"class_number"``), ``"file_prefix"`` (``{class}_...`` file names) or
        one value per particle; ``classes`` fixes the known classes. ``label`` holds class codes (indices into
        :attr:`classes`).
    transforms
        A transform, a plain callable or a list of them (see ``perc_platform.ml.transforms``).
    num_workers
        DataLoader worker processes (0: read in this process with threads).
    buffer_bytes, prefetch, threads
        Stream mode: shuffle-buffer size (default 64 MiB, at least one chunk), buffers read ahead, reading
        threads (default one per usable core, at most 8; also used to materialise in memory mode).
    rank, world_size
        Distributed position; default from ``torch.distributed`` when initialised, captured here.
    reader
        Chunk reader replacing the default (the seam for cluster prefetch; see ``perc_platform.ml._reader``).
    memory_on_device
        Memory mode on a GPU: keep the materialised images in device memory and gather each batch there
        (``index_select``), skipping the host gather and the host-to-device copy. ``None`` (default) does so
        when ``device`` is CUDA, ``num_workers`` is 0 and the images take at most a quarter of the device's
        free memory (``DEVICE_MEMORY_FRACTION``, leaving room for the model); the choice is in
        :attr:`mode_reason`. The images are read there through small pinned staging arrays, with no host
        copy of the whole selection. ``True`` also works on the CPU (a torch gather instead of NumPy's).
    random
        Use a random subset of this many of the selected particles (seeded by ``seed``, sorted; see
        ``perc_platform.datasets.selection.random_subset``), as cryoDRGN's ``select_random``.
    """

    def __init__(self, images: xr.DataArray, batch_size: int = 256, mode: str = "auto", *,
                 device: str | torch.device | None = None, split: SplitSpec = None, seed: int = 0,
                 labels: str | Sequence[Any] | np.ndarray | None = None, classes: Sequence[Any] | None = None,
                 transforms: Callable[..., torch.Tensor] | Sequence[Any] | None = None,
                 metadata: Sequence[str] | None = None, shuffle: bool = True, drop_last: bool = False,
                 num_workers: int = 0, buffer_bytes: int | None = None, prefetch: int = 1, threads: int | None = None,
                 rank: int | None = None, world_size: int | None = None, memory_fraction: float = 0.5,
                 reader: ChunkReader | None = None, dtype: Any = "float32", non_blocking: bool = True,
                 pin_memory: bool = True, multiprocessing_context: Any = None,
                 memory_on_device: bool | None = None, random: int | None = None) -> None:
        if mode not in ("stream", "memory", "auto"):
            raise ParameterError(f"mode={mode!r}: choose 'stream', 'memory' or 'auto'")
        if num_workers < 0:
            raise ParameterError(f"num_workers={num_workers} must be >= 0")
        self.device = resolve_device(device)
        indices = _split_indices(split, int(images.shape[0]))
        if random is not None:
            indices = random_subset(int(images.shape[0]) if indices is None else indices, random, seed)
        self.dataset = ParticleDataset(images, indices=indices, labels=labels,
                                       classes=classes, metadata=metadata, dtype=dtype, reader=reader)
        self.rank = capture_rank(rank, world_size)
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.multiprocessing_context = multiprocessing_context
        self.requested_mode = mode
        if mode == "auto":
            mode, self.mode_reason = choose_mode(self.dataset.nbytes, memory_fraction)
            log.info("ParticleLoader: %s", self.mode_reason)
        else:
            self.mode_reason = f"mode={mode!r} was asked for"
        self.mode = mode
        pin = pin_memory and self.device.type == "cuda"
        self._pin = pin
        common = dict(seed=self.seed, shuffle=shuffle, drop_last=drop_last, rank=self.rank, pin=pin)
        if mode == "memory":
            resident = self._resident_device(memory_on_device)
            if resident is None:
                self.dataset.materialize(threads)
            else:
                self.dataset.to_device(resident, threads)  # read straight there: no host copy of it all
            self.batches: BatchIterable = MemoryBatches(self.dataset, batch_size, on_device=resident,
                                                        **common)  # type: ignore[arg-type]
        else:
            self.batches = StreamBatches(self.dataset, batch_size, buffer_bytes=buffer_bytes, prefetch=prefetch,
                                         threads=threads, **common)  # type: ignore[arg-type]
        self.transforms = compose(transforms)
        self._feeder = DeviceFeeder(self.device, self.transforms, self.seed, non_blocking=non_blocking, pin=pin)
        self.epoch = 0
        self._consumed: dict[int, int] = {}
        self._skip: dict[int, int] = {}

    def _resident_device(self, asked: bool | None) -> torch.device | None:
        """Where memory mode keeps its images besides the host (see ``memory_on_device``), or None."""
        if asked is False or (asked is None and self.device.type != "cuda"):
            return None
        if self.num_workers > 0:
            if asked:
                raise ParameterError(f"memory_on_device=True needs num_workers=0 (got {self.num_workers}): "
                                     "worker processes cannot share device memory; drop one of the two")
            return None
        if asked is None:
            free, _total = torch.cuda.mem_get_info(self.device)
            if self.dataset.nbytes > DEVICE_MEMORY_FRACTION * free:
                self.mode_reason += (f"; the images ({self.dataset.nbytes / 2**30:.2f} GiB) stay on the host: more "
                                     f"than {DEVICE_MEMORY_FRACTION:.0%} of the {free / 2**30:.2f} GiB free on "
                                     f"{self.device}")
                return None
        self.mode_reason += f"; the images are kept on {self.device} and each batch is gathered there"
        return self.device

    # -- information -------------------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[Any, ...] | None:
        """The classes that ``label`` codes index (None without labels)."""
        return self.dataset.classes

    @property
    def batch_size(self) -> int:
        return self.batches.batch_size

    @property
    def num_shards(self) -> int:
        return self.rank.world_size * max(1, self.num_workers)

    def _my_shards(self) -> list[int]:
        workers = max(1, self.num_workers)
        return [self.rank.rank * workers + w for w in range(workers)]

    def __len__(self) -> int:
        """Batches this rank yields per epoch."""
        return sum(self.batches.shard_batches(s, self.num_shards) for s in self._my_shards())

    def __repr__(self) -> str:
        return (f"ParticleLoader(n={len(self.dataset)}, batch_size={self.batch_size}, mode={self.mode!r}, "
                f"device={str(self.device)!r}, rank={self.rank.rank}/{self.rank.world_size}, "
                f"workers={self.num_workers})")

    # -- iteration ---------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Start the next iteration at ``epoch`` (from its beginning)."""
        self.epoch = int(epoch)
        self._consumed, self._skip = {}, {}

    def _source(self) -> Iterator[Any]:
        """CPU batches ``(shard, k, batch)`` of this epoch, from this process or from DataLoader workers."""
        self.batches.set_epoch(self.epoch)
        self.batches.skip = dict(self._skip)
        if self.num_workers == 0:
            return iter(self.batches)
        loader = DataLoader(self.batches, batch_size=None, num_workers=self.num_workers, collate_fn=_passthrough,
                            pin_memory=self._pin, multiprocessing_context=self.multiprocessing_context)
        return (item for item in loader if item[2] is not None)  # drop resume stand-ins

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self._consumed = dict(self._skip)
        for shard, k, batch in self._feeder.feed(self._source(), self.epoch):
            self._consumed[shard] = k + 1
            yield batch
        self.epoch += 1
        self._consumed, self._skip = {}, {}

    # -- checkpointing -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where iteration stands: epoch and batches handed out per shard (resume with load_state_dict)."""
        return {"epoch": self.epoch, "consumed": {int(k): int(v) for k, v in self._consumed.items()},
                "seed": self.seed, "mode": self.mode, "batch_size": self.batch_size, "num_shards": self.num_shards,
                "rank": self.rank.rank, "n": len(self.dataset)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration continues the saved epoch after the batches already handed out."""
        mine = {"seed": self.seed, "mode": self.mode, "batch_size": self.batch_size, "num_shards": self.num_shards,
                "rank": self.rank.rank, "n": len(self.dataset)}
        differ = {k: (state.get(k), v) for k, v in mine.items() if state.get(k) != v}
        if differ:
            shown = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differ.items())
            raise ParameterError(f"cannot resume: the loader differs from the saved one ({shown}); build it with "
                                 "the same data, seed, mode, batch size, workers and world size")
        self.epoch = int(state["epoch"])
        self._skip = {int(k): int(v) for k, v in state.get("consumed", {}).items()}
        self._consumed = dict(self._skip)


def train_validation_loaders(images: xr.DataArray, batch_size: int = 256, *, validation: float = 0.2,
                             seed: int = 0, stratify: bool = True, split: Split | str | os.PathLike[str] | None = None,
                             save_split: str | os.PathLike[str] | None = None,
                             **kwargs: Any) -> tuple[ParticleLoader, ParticleLoader, Split]:
    """A seeded (stratified by label when labels are given) train/validation pair of loaders and the split.

    ``split`` reuses a saved split (a :class:`Split` or its path); ``save_split`` writes the new one. The
    validation loader does not shuffle. Other keywords go to both loaders.
    """
    n = int(images.shape[0])
    if split is not None:
        chosen = split if isinstance(split, Split) else Split.load(split)
        chosen.check(n)
    else:
        codes = None
        if stratify and kwargs.get("labels") is not None:
            codes = resolve_labels(images, kwargs["labels"], kwargs.get("classes")).codes  # type: ignore[union-attr]
        chosen = make_split(n, validation, seed, codes)
    if save_split is not None:
        chosen.save(save_split)
    train = ParticleLoader(images, batch_size, split=chosen.train, seed=seed, **kwargs)
    val_kwargs = {**kwargs, "shuffle": False}
    val = ParticleLoader(images, batch_size, split=chosen.validation, seed=seed, **val_kwargs)
    return train, val, chosen
