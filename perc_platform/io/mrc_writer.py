"""Write MRC2014 files: volumes, stacks, stacks appended block by block, and pre-sized stacks for parallel writes.

The header is encoded here from the same field layout :mod:`perc_platform.io.mrc_header` parses (REFERENCE.md):
little-endian, no extended header, MAPC/MAPR/MAPS = 1, 2, 3, NVERSION 20141, CELLA = voxel size x sampling.
Whole files are written atomically (a temp file renamed into place once complete), so a failed write
leaves nothing behind; tests check the files with mrcfile.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from perc_platform.errors import ParameterError
from perc_platform.io.mrc_header import HEADER_BYTES

__all__ = ["MrcStackWriter", "create_stack", "encode_header", "write_stack", "write_volume"]

_MODES = {"int8": 0, "int16": 1, "float32": 2, "uint16": 6, "float16": 12}


def _mode(dtype: Any) -> int:
    name = np.dtype(dtype).name
    if name not in _MODES:
        raise ParameterError(f"MRC files hold {', '.join(_MODES)} data, not {name}; convert it first "
                             "(e.g. .astype('float32'))")
    return _MODES[name]


def _xyz(value: float | Sequence[float]) -> tuple[float, float, float]:
    if isinstance(value, (int, float, np.floating, np.integer)):
        return (float(value),) * 3
    x, y, z = (float(v) for v in value)
    return (x, y, z)


def encode_header(shape: tuple[int, int, int], dtype: Any, *, voxel_size: float | Sequence[float] = 1.0,
                  origin: Sequence[float] = (0.0, 0.0, 0.0), ispg: int = 0,
                  stats: tuple[float, float, float, float] = (0.0, -1.0, -2.0, -1.0),
                  labels: Sequence[str] = ()) -> bytes:
    """The 1024-byte MRC2014 header for data of ``shape`` (sections, rows, columns) and ``dtype``.

    ``stats`` is (DMIN, DMAX, DMEAN, RMS); the default says "not computed" (DMAX < DMIN, as MRC2014 allows).
    """
    nz, ny, nx = (int(n) for n in shape)
    vx, vy, vz = _xyz(voxel_size)
    head = bytearray(HEADER_BYTES)
    struct.pack_into("<10i", head, 0, nx, ny, nz, _mode(dtype), 0, 0, 0, nx, ny, nz)
    struct.pack_into("<6f", head, 40, vx * nx, vy * ny, vz * nz, 90.0, 90.0, 90.0)
    struct.pack_into("<3i", head, 64, 1, 2, 3)
    struct.pack_into("<3f", head, 76, *stats[:3])
    struct.pack_into("<2i", head, 88, int(ispg), 0)
    struct.pack_into("<i", head, 108, 20141)
    struct.pack_into("<3f", head, 196, *(float(o) for o in origin))
    head[208:212] = b"MAP "
    head[212:216] = b"\x44\x44\x00\x00"
    struct.pack_into("<f", head, 216, stats[3])
    labels = [str(label)[:80] for label in labels][:10]
    struct.pack_into("<i", head, 220, len(labels))
    for i, label in enumerate(labels):
        text = label.encode("ascii", "replace")
        head[224 + 80 * i: 224 + 80 * i + len(text)] = text
    return bytes(head)


class MrcStackWriter:
    """Append images (or sections) to an MRC file block by block, in bounded memory; the header (count and
    statistics) is written on :meth:`close`, and the file appears only then.

    Use as a context manager; an exception inside the block leaves no file.
    """

    def __init__(self, path: str | os.PathLike[str], image_shape: tuple[int, int], dtype: Any = "float32", *,
                 voxel_size: float | Sequence[float] = 1.0, origin: Sequence[float] = (0.0, 0.0, 0.0),
                 ispg: int = 0, labels: Sequence[str] = ()) -> None:
        from perc_platform.storage.cache import atomic_path

        if np.dtype(dtype) == np.uint8:
            dtype = np.uint16  # MRC has no unsigned 8-bit mode; widened, as mrcfile does
        _mode(dtype)
        self.path = Path(path)
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self._meta: dict[str, Any] = {"voxel_size": voxel_size, "origin": tuple(origin), "ispg": ispg,
                                      "labels": tuple(labels)}
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 (closed in close/abort)
        self._fh.write(bytes(HEADER_BYTES))
        self.count = 0
        self._min, self._max, self._sum, self._sumsq = np.inf, -np.inf, 0.0, 0.0

    def append(self, images: np.ndarray) -> None:
        """Append one image ``(y, x)`` or a block ``(n, y, x)``."""
        block = np.asarray(images)
        if block.ndim == 2:
            block = block[None]
        if block.ndim != 3 or block.shape[1:] != self.image_shape:
            raise ParameterError(f"{self.path}: images of shape {block.shape[1:]} do not fit a stack of "
                                 f"{self.image_shape} images")
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.size:
            values = block.astype(np.float64, copy=False)
            self._min = min(self._min, float(values.min()))
            self._max = max(self._max, float(values.max()))
            self._sum += float(values.sum())
            self._sumsq += float(np.square(values).sum())
        self._fh.write(block.tobytes())
        self.count += block.shape[0]

    def close(self) -> Path:
        """Write the header and put the file in place."""
        if self.count == 0:
            self.abort()
            raise ParameterError(f"{self.path}: no images were appended; an MRC file holds at least one section")
        n = self.count * self.image_shape[0] * self.image_shape[1]
        mean = self._sum / n
        rms = float(np.sqrt(max(0.0, self._sumsq / n - mean * mean)))
        self._fh.seek(0)
        self._fh.write(encode_header((self.count, *self.image_shape), self.dtype,
                                     stats=(self._min, self._max, mean, rms), **self._meta))
        self._fh.close()
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop the partial file."""
        self._fh.close()
        error = exc or RuntimeError("aborted")
        try:
            self._atomic.__exit__(type(error), error, error.__traceback__)
        except BaseException as raised:
            if raised is not error:
                raise

    def __enter__(self) -> MrcStackWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None:
            self.abort(exc)
        else:
            self.close()


def write_stack(path: str | os.PathLike[str], data: np.ndarray, *, pixel_size: float = 1.0,
                labels: Sequence[str] = ()) -> Path:
    """Write a ``(n, y, x)`` array as an image stack (ISPG 0), atomically."""
    data = np.asarray(data)
    with MrcStackWriter(path, data.shape[1:], data.dtype, voxel_size=pixel_size, labels=labels) as writer:
        writer.append(data)
    return Path(path)


def write_volume(path: str | os.PathLike[str], data: np.ndarray, *, voxel_size: float | Sequence[float] = 1.0,
                 origin: Sequence[float] = (0.0, 0.0, 0.0), labels: Sequence[str] = ()) -> Path:
    """Write a ``(z, y, x)`` array as a map (ISPG 1) with the voxel size and ORIGIN (Angstrom), atomically."""
    data = np.asarray(data)
    if data.ndim != 3:
        raise ParameterError(f"{path}: a volume is (z, y, x); got an array of shape {data.shape}")
    with MrcStackWriter(path, data.shape[1:], data.dtype, voxel_size=voxel_size, origin=origin, ispg=1,
                        labels=labels) as writer:
        writer.append(data)
    return Path(path)


def create_stack(path: str | os.PathLike[str], shape: tuple[int, int, int], dtype: Any = "float32", *,
                 pixel_size: float | None = None) -> int:
    """Create a full-size image stack whose data are written later (in parallel, by region); returns the byte
    offset of the data. Statistics are marked "not computed"."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    itemsize = np.dtype(dtype).itemsize
    with open(path, "wb") as fh:
        fh.write(encode_header(tuple(shape), dtype, voxel_size=pixel_size or 0.0))  # type: ignore[arg-type]
        fh.truncate(HEADER_BYTES + int(np.prod(shape)) * itemsize)
    return HEADER_BYTES
