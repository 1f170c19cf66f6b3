"""PyTorch adapters: particle DataArrays (lazy or not) as GPU-ready batches, streamed or from memory.

``ParticleLoader(images, batch_size, mode="stream" | "memory" | "auto", device=..., split=..., seed=...,
labels=..., transforms=...)`` yields dicts of tensors (``image``, ``index``, ``label``, metadata columns)::

    import perc_platform
    from perc_platform.ml import ParticleLoader, train_validation_loaders, transforms as T

    images = perc_platform.open_particles(star="particles.star")          # lazy, nothing read yet
    train, val, split = train_validation_loaders(
        images, 256, validation=0.1, seed=0, labels="class_number", device="cuda", mode="auto",
        transforms=[T.Standardize(), T.CircularMask(), T.RandomFlip(), T.RandomRotate90()],
        save_split="split.json")
    print(train.mode_reason)                                              # which mode auto chose, and why
    for batch in train:                                                   # batch["image"]: (256, y, x) on the GPU
        ...
    state = train.state_dict()                                            # resume mid-epoch with load_state_dict

Reading goes through a replaceable chunk reader (``reader=``; see ``perc_platform.ml._reader``), the seam where
cluster prefetching plugs in. Importing this subpackage imports torch; ``import perc_platform`` does not.
"""

from perc_platform.ml import transforms as transforms
from perc_platform.ml._batches import BatchIterable as BatchIterable
from perc_platform.ml._dataset import ParticleDataset as ParticleDataset
from perc_platform.ml._labels import FILE_PREFIX as FILE_PREFIX
from perc_platform.ml._labels import Labels as Labels
from perc_platform.ml._labels import resolve_labels as resolve_labels
from perc_platform.ml._loader import ParticleLoader as ParticleLoader
from perc_platform.ml._loader import choose_mode as choose_mode
from perc_platform.ml._loader import train_validation_loaders as train_validation_loaders
from perc_platform.ml._memory import MemoryBatches as MemoryBatches
from perc_platform.ml._reader import ChunkReader as ChunkReader
from perc_platform.ml._reader import DaskChunkReader as DaskChunkReader
from perc_platform.ml._reader import MrcChunkReader as MrcChunkReader
from perc_platform.ml._reader import NumpyChunkReader as NumpyChunkReader
from perc_platform.ml._reader import Segment as Segment
from perc_platform.ml._reader import chunk_reader_for as chunk_reader_for
from perc_platform.ml._split import Split as Split
from perc_platform.ml._split import make_split as make_split
from perc_platform.ml._stream import StreamBatches as StreamBatches

#: The streaming iterable (an IterableDataset of whole batches), by its issue name.
ParticleStream = StreamBatches

__all__ = [
    "FILE_PREFIX",
    "BatchIterable",
    "ChunkReader",
    "DaskChunkReader",
    "Labels",
    "MemoryBatches",
    "MrcChunkReader",
    "NumpyChunkReader",
    "ParticleDataset",
    "ParticleLoader",
    "ParticleStream",
    "Segment",
    "Split",
    "StreamBatches",
    "choose_mode",
    "chunk_reader_for",
    "make_split",
    "resolve_labels",
    "train_validation_loaders",
    "transforms",
]
