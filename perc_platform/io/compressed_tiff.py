"""bzip2- and gzip-compressed TIFF movies (``.tif.bz2``, ``.tiff.gz``...) read lazily through a seekable index.

A TIFF finds its strips by byte offset, and those offsets are offsets into the *decompressed* file. With the
seek index that :mod:`perc_platform.io.compressed_mrc` builds and caches (``indexed_bzip2`` block offsets,
``indexed_gzip`` seek points), the decompressed stream is a seekable file: tifffile parses the IFDs from it like
from a plain file, and each frame is read by seeking to its strips and decompressing only the blocks that hold
them. Decoding is the plain TIFF codec (:class:`~perc_platform.io.tiff_codec.TiffCodec`).

The first open scans the file once to build the index; the IFDs, spread through the file (one per page), are
then parsed through the index, which reads (decompresses) the blocks that hold them: for a movie, most of the
file. What they say (strip offsets and lengths, the decode step, the pixel size) is cached beside the index, so a
later open reads neither; frames touch only their own blocks.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from perc_platform.errors import DataNotFoundError, FormatError, TruncatedFileError
from perc_platform.io.compressed_mrc import codec_of, open_decompressed, read_decompressed_into, stream_index
from perc_platform.io.layout import SegmentLayout
from perc_platform.io.tiff_codec import TiffCodec
from perc_platform.io.tiff_file import TiffImageFile, describe_tiff
from perc_platform.storage.cache import atomic_path
from perc_platform.storage.ranges import is_remote, local_path

__all__ = ["CompressedSegmentLayout", "open_compressed_tiff"]


@dataclasses.dataclass(frozen=True, eq=False)
class CompressedSegmentLayout(SegmentLayout):
    """TIFF segments at offsets of the decompressed stream, read through the cached seek index."""

    compression: str = "bz2"  # "bz2" or "gz"
    index: str = ""  # path of the cached index

    def read_ranges_into(self, url: str, ranges: Sequence[tuple[int, int]], buffers: Sequence[np.ndarray],
                         storage_options: dict[str, Any] | None = None) -> list[int]:
        """Fill each buffer with the decompressed bytes of its range."""
        return read_decompressed_into(url, self.compression, self.index, ranges, buffers, storage_options)


Description = tuple[np.ndarray, np.ndarray, TiffCodec, float, int]  # offsets, lengths, codec, pixel size, size


def _describe(url: str, compression: str, index: str, storage_options: dict[str, Any] | None) -> Description:
    """The IFDs' facts, from the cache beside the index or parsed through the index (then cached)."""
    cached = index + ".ifds.npz"
    if os.path.exists(cached):
        try:
            with np.load(cached, allow_pickle=False) as saved:
                facts = json.loads(str(saved["facts"]))
                fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in facts["codec"].items()}
                return saved["offsets"], saved["lengths"], TiffCodec(**fields), float(facts["pixel_size"]), \
                    int(facts["size"])
        except (OSError, ValueError, KeyError, TypeError):  # an unreadable cache entry is parsed again
            os.unlink(cached)
    stream = open_decompressed(url, compression, storage_options, index)
    try:
        offsets, lengths, codec, pixel_size = describe_tiff(stream, url)
        size = stream.seek(0, os.SEEK_END)
    except (OSError, EOFError, RuntimeError, ValueError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"{url}: the {compression} stream is damaged or truncated ({exc}); download it "
                          "again") from None
    finally:
        stream.close()
    facts = json.dumps({"codec": dataclasses.asdict(codec), "pixel_size": pixel_size, "size": size})
    with atomic_path(cached) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, offsets=offsets, lengths=lengths, facts=np.array(facts))
    return offsets, lengths, codec, pixel_size, size


def open_compressed_tiff(url: str, storage_options: dict[str, Any] | None = None) -> TiffImageFile:
    """Index a compressed TIFF once (cached) and parse its IFDs through the index; the data stay compressed."""
    url = os.fspath(url)
    url = url if is_remote(url) else local_path(url)
    if not is_remote(url) and not os.path.isfile(url):
        raise DataNotFoundError(f"{url}: no such file; check the path")
    compression = codec_of(url)
    index = stream_index(url, compression, storage_options)
    try:
        offsets, lengths, codec, pixel_size, size = _describe(url, compression, index, storage_options)
    except BaseException:
        os.unlink(index)  # an index of a file that does not open is kept nowhere
        raise
    end = int((offsets + lengths).max())
    if end > size:
        raise TruncatedFileError(f"{url}: its TIFF tags place strips up to byte {end} but the decompressed stream "
                                 f"has {size} bytes; the file is truncated")
    layout = CompressedSegmentLayout(offsets, lengths, codec, compression=compression, index=index)
    return TiffImageFile(url=url if is_remote(url) else os.path.abspath(url),
                         shape=(offsets.shape[0], *codec.image_shape), dtype=np.dtype(codec.dtype).newbyteorder("="),
                         layout=layout, storage_options=tuple(sorted((storage_options or {}).items())),
                         pixel_size=pixel_size)
