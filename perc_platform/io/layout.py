"""Block descriptions: where the bytes of each frame of an image file lie, and how they become pixels.

A format opener (see :mod:`perc_platform.io.formats`) reads only headers and returns an :class:`ImageFile`:
plain, picklable data that says the frame shape and dtype and, through its ``layout``, the byte ranges of
each frame and the decode step. ``storage`` reads those ranges; the lazy arrays wrap them.

* :class:`RawLayout`: frames stored uncompressed one after another (MRC; uncompressed contiguous TIFF is
  read through :class:`SegmentLayout` too, to keep one TIFF path). A run of consecutive frames is one range.
* :class:`SegmentLayout`: each frame is a list of segments (TIFF strips or tiles) decoded by a
  :class:`~perc_platform.io.tiff_codec.TiffCodec`. Contiguous segments of a frame are read as one range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["ImageFile", "RawLayout", "SegmentCodec", "SegmentLayout", "spans"]


@dataclasses.dataclass(frozen=True)
class RawLayout:
    """Frame ``i`` is the ``frame_bytes`` bytes at ``offset + i * frame_bytes``."""

    offset: int
    frame_bytes: int

    def byte_range(self, first: int, count: int = 1) -> tuple[int, int]:
        """``(start, length)`` of ``count`` consecutive frames from ``first``."""
        return (self.offset + first * self.frame_bytes, count * self.frame_bytes)


class SegmentCodec(Protocol):
    """Turns the bytes of one frame's segments into the frame (``decode_frame``)."""

    def decode_frame(self, segments: Sequence[memoryview], out: np.ndarray) -> None:
        ...


def spans(offsets: np.ndarray, lengths: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Merge segments that follow each other in the file: ``(start, length, first, stop)`` per span,
    where ``first:stop`` are the segment indices the span covers."""
    out: list[tuple[int, int, int, int]] = []
    offs, lens = offsets.tolist(), lengths.tolist()
    first = 0
    for j in range(1, len(offs) + 1):
        if j == len(offs) or offs[j] != offs[j - 1] + lens[j - 1]:
            out.append((offs[first], offs[j - 1] + lens[j - 1] - offs[first], first, j))
            first = j
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class SegmentLayout:
    """Frame ``i`` is the segments ``offsets[i, j]`` / ``lengths[i, j]``, decoded by ``codec``."""

    offsets: np.ndarray  # (frames, segments) int64
    lengths: np.ndarray  # (frames, segments) int64
    codec: Any  # a SegmentCodec; Any so that the dataclass stays a plain picklable record

    def frame_spans(self, frame: int) -> list[tuple[int, int, int, int]]:
        """The byte spans of one frame (contiguous segments merged)."""
        return spans(self.offsets[frame], self.lengths[frame])

    def frame_bytes(self, frame: int) -> int:
        """Bytes stored for one frame (what reading it moves)."""
        return int(self.lengths[frame].sum())

    def decode(self, frame: int, blobs: Sequence[np.ndarray], out: np.ndarray) -> None:
        """Decode one frame from the buffers read for its spans (in ``frame_spans`` order) into ``out``."""
        segments: list[memoryview] = []
        offs, lens = self.offsets[frame].tolist(), self.lengths[frame].tolist()
        for (start, _, first, stop), blob in zip(self.frame_spans(frame), blobs, strict=True):
            view = memoryview(blob.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
            segments.extend(view[offs[j] - start: offs[j] - start + lens[j]] for j in range(first, stop))
        self.codec.decode_frame(segments, out)


class ImageFile(Protocol):
    """What a format opener returns and the lazy arrays read: one file of equally shaped frames."""

    @property
    def url(self) -> str:
        ...

    @property
    def format(self) -> str:
        """Row name in the format table (``mrc``, ``tiff``...)."""
        ...

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(frames, y, x)``."""
        ...

    @property
    def dtype(self) -> np.dtype:
        """dtype as stored (byte order included) for raw layouts; the decoded dtype otherwise."""
        ...

    @property
    def layout(self) -> Any:
        """A :class:`RawLayout`, a :class:`SegmentLayout`, or a raw layout of a format's own that has
        ``byte_range`` and reads for itself (``read_ranges_into``)."""
        ...

    @property
    def pixel_size(self) -> float:
        """Angstrom per pixel as the file states it; 0.0 when it does not."""
        ...

    @property
    def options(self) -> dict[str, Any]:
        ...
